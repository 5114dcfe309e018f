"""The inference-backend interface every model wrapper talks to."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from service.errors import InvalidInput
from service.runtime.model_repo import TRITON_TO_NUMPY, TensorSpec

InferenceObserver = Callable[[str, str, float], None]
"""Called after each inference with (model name, provider, seconds)."""


@dataclass(frozen=True)
class LoadedModel:
    """What a backend serves for one model.

    Attributes:
        name: model name.
        version: version served.
        backend: ``onnxruntime`` or ``triton``.
        device: ``CPU`` or ``GPU``.
        provider: execution provider actually in use (e.g. ``CUDAExecutionProvider``).
        inputs / outputs: tensor specs (batch dimension included; -1 = dynamic).
        labels: class names of the model (empty if it has none).
    """

    name: str
    version: str
    backend: str
    device: str
    provider: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labels: tuple[str, ...]

    def output(self, name: str) -> TensorSpec | None:
        return next((t for t in self.outputs if t.name == name), None)


def checked_inputs(model: str, specs: tuple[TensorSpec, ...], inputs: Mapping[str, npt.NDArray[np.generic]]) -> dict[str, npt.NDArray[np.generic]]:
    """Every input ``specs`` declares, as a contiguous array of its dtype, rank checked.

    Raises:
        InvalidInput: an input missing or of the wrong rank.
    """
    out: dict[str, npt.NDArray[np.generic]] = {}
    for spec in specs:
        if spec.name not in inputs:
            raise InvalidInput(f"model {model!r} needs input {spec.name!r}")
        arr = np.ascontiguousarray(inputs[spec.name], dtype=TRITON_TO_NUMPY[spec.dtype])
        if arr.ndim != spec.rank:
            raise InvalidInput(f"model {model!r} input {spec.name!r} must have rank {spec.rank}, got shape {arr.shape}")
        out[spec.name] = arr
    return out


class InferenceBackend(Protocol):
    """Runs models by name. Implementations: ONNX Runtime in process; Triton over gRPC."""

    def load(self, names: list[str]) -> None:
        """Load, validate and warm up the named models. Raises ModelRepositoryError."""

    def models(self) -> dict[str, LoadedModel]:
        """The loaded models by name."""

    def infer(self, model: str, inputs: Mapping[str, npt.NDArray[np.generic]]) -> dict[str, npt.NDArray[np.generic]]:
        """Run ``model`` on named input arrays; returns all its outputs by name.

        Raises:
            ModelNotFound: the model is not loaded.
            InvalidInput: an input is missing or has the wrong dtype or rank.
            ModelNotReady: the backend cannot run it now.
        """

    def close(self) -> None:
        """Release sessions and connections."""
