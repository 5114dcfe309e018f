"""NVIDIA Triton (or any Open Inference Protocol server) over gRPC, with ``tritonclient.grpc.aio``.

The server serves the same ``model_repo/``; this side reads the repository's configs and labels
for the contracts and checks them against the server's model metadata at load. A server that
cannot be reached is ``ModelNotReady`` (UNAVAILABLE to callers) with the address in the message;
the channel reconnects by itself, so calls succeed again once the server is back.

Calls go through the asyncio client on one event loop owned by the backend (its own thread): the
pipeline is synchronous numpy code running in worker threads, and each of its model calls waits
on a future while every in-flight request shares one HTTP/2 channel and one loop, rather than
holding a blocking gRPC call per thread. ``infer_async`` is the coroutine itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException

from service.errors import ModelNotFound, ModelNotReady, ModelRepositoryError
from service.runtime.backend import InferenceObserver, LoadedModel, Tensor, checked_inputs, host_arrays
from service.runtime.model_repo import ModelRepository

log = logging.getLogger(__name__)

OIP_DATATYPES = {"TYPE_FP32": "FP32", "TYPE_FP16": "FP16", "TYPE_FP64": "FP64", "TYPE_INT64": "INT64", "TYPE_INT32": "INT32",
                 "TYPE_INT8": "INT8", "TYPE_UINT8": "UINT8", "TYPE_BOOL": "BOOL"}
T = TypeVar("T")
UNREACHABLE = ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "failed to connect", "Connection refused")


class TritonBackend:
    """Runs the repository's models on a remote Triton / Open Inference Protocol server.

    Args:
        repo: the model repository the server serves (read here for configs and labels).
        url: the server's gRPC ``host:port``.
        timeout: seconds per call.
        max_message_bytes: gRPC message bound (SAM's encoder input is 12 MiB).
        observer: called with (model, "triton", seconds) after each inference.
    """

    name = "triton"

    def __init__(self, repo: ModelRepository, url: str, timeout: float = 30.0, max_message_bytes: int = 64 << 20,
                 observer: InferenceObserver | None = None) -> None:
        self.repo = repo
        self.url = url
        self.timeout = timeout
        self.observer = observer
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="triton-client", daemon=True)
        self._thread.start()
        options = [("grpc.max_receive_message_length", max_message_bytes), ("grpc.max_send_message_length", max_message_bytes)]
        self.client: aioclient.InferenceServerClient = self._run(self._connect(options))

    async def _connect(self, options: list[tuple[str, int]]) -> aioclient.InferenceServerClient:
        return aioclient.InferenceServerClient(self.url, channel_args=options)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the client's loop and wait for it (from any thread but the loop's)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout + 5.0)

    def _unavailable(self, what: str, exc: Exception) -> ModelNotReady:
        return ModelNotReady(f"Triton server at {self.url} is unreachable ({what}): {exc}")

    def load(self, names: list[str]) -> None:
        for name in names:
            config = self.repo.get(name)
            base, _, pinned = name.partition("@")  # "deeplab@2": Triton's model deeplab, version 2
            try:
                ready = self._run(self.client.is_model_ready(base, model_version=pinned, client_timeout=self.timeout))
            except InferenceServerException as exc:
                raise self._unavailable(f"model {name!r} readiness", exc) from exc
            if not ready:
                raise ModelNotReady(f"Triton server at {self.url} has model {name!r} but it is not ready")
            try:
                meta = self._run(self.client.get_model_metadata(base, model_version=pinned, client_timeout=self.timeout))
            except InferenceServerException as exc:
                raise self._unavailable(f"model {name!r} metadata", exc) from exc
            remote_in = {t.name: t for t in meta.inputs}
            if remote_in and set(remote_in) != {t.name for t in config.inputs}:
                raise ModelRepositoryError(f"model {name!r}: Triton serves inputs {sorted(remote_in)}, config.pbtxt declares {[t.name for t in config.inputs]}")
            for spec in config.inputs:
                remote = remote_in.get(spec.name)
                if remote is not None and remote.datatype != OIP_DATATYPES[spec.dtype]:
                    raise ModelRepositoryError(f"model {name!r} input {spec.name!r}: Triton says {remote.datatype}, config.pbtxt {spec.dtype}")
            version = pinned or (meta.versions[-1] if meta.versions else config.version)
            with self._lock:
                self._loaded[name] = LoadedModel(name, str(version), self.name, "remote", f"triton@{self.url}", config.inputs, config.outputs, config.labels,
                                                  config.input_side, config.predict_scales, config.predict_flip)
            log.info("model %s version %s served by Triton at %s", name, version, self.url)

    def models(self) -> dict[str, LoadedModel]:
        with self._lock:
            return dict(self._loaded)

    def infer(
        self, model: str, inputs: Mapping[str, Tensor], keep_on_device: frozenset[str] = frozenset(), outputs: Sequence[str] | None = None
    ) -> dict[str, Tensor]:
        """Run ``model`` on the server (blocking the calling thread, not the client's loop).
        Outputs always come back to this host (``keep_on_device`` has nothing to keep here)."""
        return dict(self._run(self.infer_async(model, inputs, outputs)))

    async def infer_async(self, model: str, inputs: Mapping[str, Tensor], outputs: Sequence[str] | None = None) -> dict[str, npt.NDArray[np.generic]]:
        """The inference as a coroutine of the client's loop."""
        loaded = self._loaded.get(model)
        if loaded is None:
            raise ModelNotFound(f"model {model!r} is not loaded")
        request = []
        for spec, arr in zip(loaded.inputs, host_arrays(checked_inputs(model, loaded.inputs, inputs)).values()):
            tensor = grpcclient.InferInput(spec.name, list(arr.shape), OIP_DATATYPES[spec.dtype])
            tensor.set_data_from_numpy(arr)
            request.append(tensor)
        names = [o.name for o in loaded.outputs] if outputs is None else list(outputs)
        requested = [grpcclient.InferRequestedOutput(n) for n in names]
        start = time.perf_counter()
        try:
            base, _, pinned = model.partition("@")
            result = await self.client.infer(base, request, model_version=pinned, outputs=requested, client_timeout=self.timeout)
        except InferenceServerException as exc:
            if any(marker in str(exc) for marker in UNREACHABLE) or "UNAVAILABLE" in str(exc.status()):
                raise self._unavailable(f"inference of {model!r}", exc) from exc
            raise ModelRepositoryError(f"Triton server at {self.url} failed model {model!r}: {exc}") from exc
        if self.observer is not None:
            self.observer(model, f"triton@{self.url}", time.perf_counter() - start)
        return {n: result.as_numpy(n) for n in names}

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self.client.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5.0)
            self._loop.close()
