"""Model repository and inference backends (no knowledge of the pipeline or the API)."""

from __future__ import annotations

from service.errors import ModelRepositoryError
from service.runtime.backend import DeviceTensor, InferenceBackend, InferenceObserver, LoadedModel, Tensor
from service.runtime.model_repo import ModelRepository


def create_backend(kind: str, repo: ModelRepository, providers: str = "auto", intra_op_threads: int = 0,
                   inter_op_threads: int = 0, observer: InferenceObserver | None = None, triton_url: str = "",
                   timeout: float = 30.0, max_message_bytes: int = 64 << 20, allow_spinning: bool = False,
                   io_binding: str = "auto") -> InferenceBackend:
    """The backend named ``kind`` (``onnxruntime`` in process, or ``triton`` at ``triton_url``) over ``repo``."""
    if kind == "onnxruntime":
        from service.runtime.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(repo, providers, intra_op_threads, inter_op_threads, observer, allow_spinning, io_binding)
    if kind == "triton":
        if not triton_url:
            raise ModelRepositoryError("the triton backend needs WSSS_TRITON_URL (host:port of the server's gRPC endpoint)")
        from service.runtime.triton_backend import TritonBackend

        return TritonBackend(repo, triton_url, timeout, max_message_bytes, observer)
    raise ModelRepositoryError(f"unknown backend {kind!r} (supported: onnxruntime, triton)")


__all__ = ["DeviceTensor", "InferenceBackend", "Tensor", "InferenceObserver", "LoadedModel", "ModelRepository", "create_backend"]
