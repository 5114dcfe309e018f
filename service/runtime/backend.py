"""The inference-backend interface every model wrapper talks to."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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
        input_side: the longest image side the model was trained at (config ``input_side``), if given.
        predict_scales / predict_flip: DeepLab's test-time augmentation from its config, if given.
    """

    name: str
    version: str
    backend: str
    device: str
    provider: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labels: tuple[str, ...]
    input_side: int | None = None
    predict_scales: tuple[float, ...] | None = None
    predict_flip: bool | None = None

    def output(self, name: str) -> TensorSpec | None:
        return next((t for t in self.outputs if t.name == name), None)

    def takes_uint8(self, name: str = "image") -> bool:
        """Whether input ``name`` is uint8 (the pixel contracts normalise inside the graph)."""
        spec = next((t for t in self.inputs if t.name == name), None)
        return spec is not None and spec.dtype == "TYPE_UINT8"


@dataclass(frozen=True, eq=False)
class DeviceTensor:
    """A model output left in the backend's device memory (ONNX Runtime I/O binding on a GPU), to
    be fed to another model of the same backend without a round trip through host memory.

    ``np.asarray(t)`` copies it to the host, so code that needs the numbers still gets them.

    Attributes:
        value: the backend's handle (an ``onnxruntime.OrtValue``).
        shape: tensor shape.
        dtype: numpy dtype of the elements.
        device: where it lives, as ONNX Runtime names it: ``cuda``, or ``cpu`` when I/O binding is
            forced on a CPU session.
        to_host: copies it into a new numpy array.
    """

    value: Any
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    device: str
    to_host: Callable[[], npt.NDArray[Any]]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __array__(self, dtype: Any = None, copy: Any = None) -> npt.NDArray[Any]:
        host = self.to_host()
        return host if dtype is None else host.astype(dtype, copy=False)


Tensor = npt.NDArray[Any] | DeviceTensor
"""What backends take and give: numpy arrays, or tensors they left on their device."""


def checked_inputs(model: str, specs: tuple[TensorSpec, ...], inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Every input ``specs`` declares, as a contiguous array of its dtype (device tensors as they
    are, dtype checked), rank checked.

    Raises:
        InvalidInput: an input missing or of the wrong rank or dtype.
    """
    out: dict[str, Tensor] = {}
    for spec in specs:
        if spec.name not in inputs:
            raise InvalidInput(f"model {model!r} needs input {spec.name!r}")
        value = inputs[spec.name]
        dtype = np.dtype(TRITON_TO_NUMPY[spec.dtype])
        if isinstance(value, DeviceTensor):
            if value.dtype != dtype:
                raise InvalidInput(f"model {model!r} input {spec.name!r} must be {dtype}, got a device tensor of {value.dtype}")
            arr: Tensor = value
        else:
            arr = np.ascontiguousarray(value, dtype=dtype)
        if arr.ndim != spec.rank:
            raise InvalidInput(f"model {model!r} input {spec.name!r} must have rank {spec.rank}, got shape {arr.shape}")
        out[spec.name] = arr
    return out


def host_arrays(inputs: Mapping[str, Tensor]) -> dict[str, npt.NDArray[Any]]:
    """``inputs`` with every device tensor copied to the host (for backends that cannot take them)."""
    return {k: np.asarray(v) for k, v in inputs.items()}


class InferenceBackend(Protocol):
    """Runs models by name. Implementations: ONNX Runtime in process; Triton over gRPC."""

    def load(self, names: list[str]) -> None:
        """Load, validate and warm up the named models. Raises ModelRepositoryError."""

    def models(self) -> dict[str, LoadedModel]:
        """The loaded models by name."""

    def infer(
        self, model: str, inputs: Mapping[str, Tensor], keep_on_device: frozenset[str] = frozenset(), outputs: Sequence[str] | None = None
    ) -> dict[str, Tensor]:
        """Run ``model`` on named input arrays; returns its outputs by name: all of them, or only
        those named in ``outputs`` (in process the model then computes no more than they need; a
        Triton server's ONNX Runtime computes every output and sends only these).

        Outputs named in ``keep_on_device`` may come back as ``DeviceTensor`` where the backend can
        keep them in device memory (ONNX Runtime with I/O binding); every other output, and every
        output of a backend that cannot, is a numpy array. Inputs may be device tensors this
        backend returned.

        Raises:
            ModelNotFound: the model is not loaded.
            InvalidInput: an input is missing or has the wrong dtype or rank.
            ModelNotReady: the backend cannot run it now.
        """

    def close(self) -> None:
        """Release sessions and connections."""
