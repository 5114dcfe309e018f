"""``wsss.v1.ModelRepositoryService``: the repository's models and, with
``WSSS_MODEL_CONTROL_MODE=explicit``, loading and unloading them one at a time (Triton's names).
Admin tokens are checked by ``security.BearerTokenInterceptor``; loads run off the event loop."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import Any

import grpc

from service.api.state import SERVED_MODELS, ServiceState, model_set_of
from service.runtime.model_repo import ModelRepository, versions_on_disk
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc

NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}")


class ModelRepositoryServicer(pb_grpc.ModelRepositoryServiceServicer):
    def __init__(self, state: ServiceState, executor: Executor, on_switch: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.state = state
        self.executor = executor
        self.on_switch = on_switch
        self._lock = asyncio.Lock()

    def _index(self) -> pb.RepositoryIndexResponse:
        root = self.state.settings.model_repo
        generation = self.state.generation
        served = generation.versions() if generation is not None else {}
        models = []
        for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and (p / "config.pbtxt").is_file()) if root.is_dir() else []:
            versions = versions_on_disk(model_dir)
            name = model_dir.name
            if name in served:
                state, reason = "READY", ""
            elif name in self.state.last_error and self.state.last_error:
                state, reason = "UNAVAILABLE", self.state.last_error
            else:
                state, reason = "UNLOADED", "" if model_set_of(name) is not None else "not a model this service serves"
            models.append(pb.RepositoryModel(name=name, versions_on_disk=versions, version_served=served.get(name, ""), state=state, reason=reason))
        return pb.RepositoryIndexResponse(models=models, model_control_mode=self.state.settings.model_control_mode)

    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext) -> pb.RepositoryIndexResponse:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._index)

    async def _check(self, name: str, context: grpc.aio.ServicerContext) -> None:
        mode = self.state.settings.model_control_mode
        if mode != "explicit":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"model control mode is {mode!r}: LoadModel and UnloadModel need WSSS_MODEL_CONTROL_MODE=explicit")
        if not NAME.fullmatch(name):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name: a model name (letters, digits, '_', '.', '-'), not a path")
        if model_set_of(name) is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"name: {name!r} is not a model this service serves ({', '.join(SERVED_MODELS)}, or <set>.<one of them>)")

    async def LoadModel(self, request: pb.LoadModelRequest, context: grpc.aio.ServicerContext) -> pb.LoadModelResponse:
        await self._check(request.name, context)
        if request.name not in ModelRepository(self.state.settings.model_repo):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"model {request.name!r} is not in the repository {self.state.settings.model_repo}")
        async with self._lock:  # one load at a time
            switched = await asyncio.get_running_loop().run_in_executor(self.executor, lambda: self.state.reload(only=request.name))
        if not switched:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"model {request.name!r} was refused, the serving models stay: {self.state.last_error}")
        await self.on_switch()
        generation = self.state.generation
        return pb.LoadModelResponse(name=request.name, version=generation.versions().get(request.name, "") if generation is not None else "")

    async def UnloadModel(self, request: pb.UnloadModelRequest, context: grpc.aio.ServicerContext) -> pb.UnloadModelResponse:
        await self._check(request.name, context)
        generation = self.state.generation
        if generation is None or request.name not in generation.versions():
            await context.abort(grpc.StatusCode.NOT_FOUND, f"model {request.name!r} is not loaded")
        async with self._lock:
            switched = await asyncio.get_running_loop().run_in_executor(self.executor, lambda: self.state.reload(unload=request.name))
        if not switched:
            await context.abort(grpc.StatusCode.INTERNAL, f"unloading {request.name!r} failed: {self.state.last_error}")
        return pb.UnloadModelResponse(name=request.name)
