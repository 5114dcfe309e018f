"""Model repository and inference backends (no knowledge of the pipeline or the API)."""

from __future__ import annotations

from service.errors import ModelRepositoryError
from service.runtime.backend import InferenceBackend, InferenceObserver, LoadedModel
from service.runtime.model_repo import ModelRepository


def create_backend(kind: str, repo: ModelRepository, providers: str = "auto", intra_op_threads: int = 0,
                   inter_op_threads: int = 0, observer: InferenceObserver | None = None) -> InferenceBackend:
    """The backend named ``kind`` (``onnxruntime``) over ``repo``."""
    if kind == "onnxruntime":
        from service.runtime.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(repo, providers, intra_op_threads, inter_op_threads, observer)
    raise ModelRepositoryError(f"unknown backend {kind!r} (supported: onnxruntime)")


__all__ = ["InferenceBackend", "InferenceObserver", "LoadedModel", "ModelRepository", "create_backend"]
