"""ONNX Runtime in process: TensorRT -> CUDA -> CPU, whichever this machine has."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from service.errors import ModelNotFound, ModelRepositoryError
from service.runtime.backend import DeviceTensor, InferenceObserver, LoadedModel, Tensor, checked_inputs, host_arrays
from service.runtime.model_repo import ONNX_TO_TRITON, TRITON_TO_NUMPY, ModelConfig, ModelRepository, TensorSpec
from service.runtime.onnx_prune import prune_to_outputs

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def gpu_available() -> bool:
    """True when ONNX Runtime sees a GPU device (``get_ep_devices``, not ``get_available_providers``,
    which lists what the package was built with, not what the machine has)."""
    try:
        devices = ort.get_ep_devices()
    except AttributeError:  # older onnxruntime
        return False
    return any(d.device.type == ort.OrtHardwareDeviceType.GPU for d in devices)


def choose_providers(preference: str = "auto") -> list[str]:
    """Execution providers to ask for, best first.

    Args:
        preference: ``auto`` (TensorRT, CUDA, CPU where a GPU exists; CPU otherwise) or a
            comma-separated list of provider names.

    Raises:
        ModelRepositoryError: a named provider is not in this onnxruntime build.
    """
    built = ort.get_available_providers()
    if preference.strip().lower() == "auto":
        wanted = [p for p in GPU_PROVIDERS if p in built] if gpu_available() else []
        return wanted + ["CPUExecutionProvider"]
    wanted = [p.strip() for p in preference.split(",") if p.strip()]
    missing = [p for p in wanted if p not in built]
    if missing:
        raise ModelRepositoryError(f"providers {missing} are not available in this onnxruntime build (has {built})")
    return wanted


def _shape(dims: Sequence[object]) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in dims)


def validate_session(config: ModelConfig, session: ort.InferenceSession) -> None:
    """Check the ONNX graph against its config: input names, every config output, dtypes, ranks, fixed dims.

    Raises:
        ModelRepositoryError: naming the model and every mismatch found.
    """
    problems: list[str] = []
    graph_inputs = {i.name: i for i in session.get_inputs()}
    graph_outputs = {o.name: o for o in session.get_outputs()}
    cfg_inputs = {t.name for t in config.inputs}
    if set(graph_inputs) != cfg_inputs:
        problems.append(f"inputs are {sorted(graph_inputs)} in the ONNX file but {sorted(cfg_inputs)} in config.pbtxt")

    def check(spec: TensorSpec, node: ort.NodeArg | None, kind: str) -> None:
        if node is None:
            problems.append(f"{kind} {spec.name!r} is in config.pbtxt but not in the ONNX file (has {sorted(graph_outputs)})")
            return
        dtype = ONNX_TO_TRITON.get(node.type, node.type)
        if dtype != spec.dtype:
            problems.append(f"{kind} {spec.name!r} is {dtype} in the ONNX file but {spec.dtype} in config.pbtxt")
        shape = _shape(node.shape)
        if len(shape) != spec.rank:
            problems.append(f"{kind} {spec.name!r} has rank {len(shape)} {list(shape)} in the ONNX file but {spec.rank} {list(spec.shape)} in config.pbtxt")
            return
        for axis, (a, b) in enumerate(zip(shape, spec.shape)):
            if a >= 0 and b >= 0 and a != b:
                problems.append(f"{kind} {spec.name!r} axis {axis} is {a} in the ONNX file but {b} in config.pbtxt")

    for spec in config.inputs:
        check(spec, graph_inputs.get(spec.name), "input")
    for spec in config.outputs:
        check(spec, graph_outputs.get(spec.name), "output")
    if problems:
        raise ModelRepositoryError(f"model {config.name!r} version {config.version} does not match its config: " + "; ".join(problems))


def session_options(intra_op_threads: int = 0, inter_op_threads: int = 0, allow_spinning: bool = False) -> ort.SessionOptions:
    """The options every session of this backend gets (the benchmarks' raw sessions use them too).

    Args:
        intra_op_threads / inter_op_threads: thread pool sizes (0 = ONNX Runtime decides).
        allow_spinning: let idle intra-op threads busy-wait for the next inference. ONNX Runtime
            spins by default; with several sessions per request (Segment runs three in turn) each
            session's spinning pool takes the cores from the next one, so the service turns it
            off unless asked (``WSSS_ORT_ALLOW_SPINNING``).

    ONNX Runtime's own CPU memory arena is off: it keeps the peak of the largest request for the
    life of the process (a 4096 x 4096 Segment left the server at 840 MiB against 310 warm). The
    process allocator keeps freed memory for the next request instead (``service.malloc``) and
    gives it back after a large one; measured no slower (classifier 20.1 vs 22.3 ms, DeepLab
    7.3 vs 8.3 ms per run at the test sizes, median of 30).
    """
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.log_severity_level = 3
    flag = "1" if allow_spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", flag)
    options.add_session_config_entry("session.inter_op.allow_spinning", flag)
    return options


class OnnxRuntimeBackend:
    """Runs the repository's ONNX models in this process.

    Args:
        repo: the model repository.
        providers: ``auto`` or a comma-separated provider list (see ``choose_providers``).
        intra_op_threads / inter_op_threads: ONNX Runtime thread pools per session (0 = default).
        allow_spinning: idle ONNX Runtime threads busy-wait (see ``session_options``).
        io_binding: ``auto`` (on where the session runs on a GPU), ``on`` or ``off``. With it,
            outputs a caller asks to keep on the device (SAM's image embedding) stay in device
            memory as ``DeviceTensor`` and go back in as inputs without a host round trip;
            ``on`` with a CPU session exercises the same path in host memory.
        observer: called with (model, provider, seconds) after each inference (metrics).

    A call that fetches only some of a model's outputs runs a session of the graph cut down to them
    (``onnx_prune``; built on the first such call and kept, one per set of outputs, where the cut
    drops any node): ONNX Runtime itself computes every output whatever a call fetches. Each such
    session holds its own copy of the weights it needs.
    """

    name = "onnxruntime"

    def __init__(
        self,
        repo: ModelRepository,
        providers: str = "auto",
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
        observer: InferenceObserver | None = None,
        allow_spinning: bool = False,
        io_binding: str = "auto",
    ) -> None:
        if io_binding not in ("auto", "on", "off"):
            raise ModelRepositoryError(f"io_binding must be auto, on or off, got {io_binding!r}")
        self.repo = repo
        self.providers = choose_providers(providers)
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        self.allow_spinning = allow_spinning
        self.io_binding = io_binding
        self.observer = observer
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._bound: set[str] = set()
        """Models whose calls go through I/O binding."""
        self._loaded: dict[str, LoadedModel] = {}
        self._paths: dict[str, str] = {}
        self._cut: dict[tuple[str, tuple[str, ...]], ort.InferenceSession] = {}
        """(model, outputs fetched) -> the session of the graph cut down to them; the model's own
        session where the cut drops nothing."""
        self._lock = threading.Lock()
        self._cut_lock = threading.Lock()

    def load(self, names: list[str]) -> None:
        for name in names:
            config = self.repo.get(name)
            options = session_options(self.intra_op_threads, self.inter_op_threads, self.allow_spinning)
            try:
                session = ort.InferenceSession(str(config.model_path), options, providers=self.providers)
            except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
                raise ModelRepositoryError(f"model {name!r}: cannot load {config.model_path}: {exc}") from exc
            validate_session(config, session)
            provider = session.get_providers()[0]
            loaded = LoadedModel(
                name=name,
                version=config.version,
                backend=self.name,
                device="GPU" if provider in GPU_PROVIDERS else "CPU",
                provider=provider,
                inputs=config.inputs,
                outputs=config.outputs,
                labels=config.labels,
                input_side=config.input_side,
                predict_scales=config.predict_scales,
                predict_flip=config.predict_flip,
            )
            bind = self.io_binding == "on" or (self.io_binding == "auto" and loaded.device == "GPU")
            with self._lock:
                self._sessions[name] = session
                self._loaded[name] = loaded
                self._paths[name] = str(config.model_path)
                self._cut = {k: v for k, v in self._cut.items() if k[0] != name}
                if bind:
                    self._bound.add(name)
                else:
                    self._bound.discard(name)
            log.info("loaded model %s version %s on %s (%s)%s", name, config.version, loaded.device, provider, ", I/O binding" if bind else "")

    def models(self) -> dict[str, LoadedModel]:
        with self._lock:
            return dict(self._loaded)

    def infer(
        self, model: str, inputs: Mapping[str, Tensor], keep_on_device: frozenset[str] = frozenset(), outputs: Sequence[str] | None = None
    ) -> dict[str, Tensor]:
        session = self._sessions.get(model)
        if session is None:
            raise ModelNotFound(f"model {model!r} is not loaded")
        loaded = self._loaded[model]
        feeds = checked_inputs(model, loaded.inputs, inputs)
        if outputs is not None:
            session = self._cut_session(model, session, outputs)
        on_device = any(isinstance(v, DeviceTensor) for v in feeds.values())
        start = time.perf_counter()
        if model in self._bound and (on_device or keep_on_device):
            out = self._run_bound(session, feeds, keep_on_device, "cuda" if loaded.device == "GPU" else "cpu", outputs)
        else:
            names = [o.name for o in session.get_outputs()] if outputs is None else list(outputs)
            out = dict(zip(names, session.run(names, host_arrays(feeds))))
        elapsed = time.perf_counter() - start
        if self.observer is not None:
            self.observer(model, loaded.provider, elapsed)
        return out

    def _cut_session(self, model: str, session: ort.InferenceSession, outputs: Sequence[str]) -> ort.InferenceSession:
        """The session that computes ``outputs`` of ``model`` and nothing else (see the class); after
        the first call for these outputs, one dictionary lookup."""
        key = (model, tuple(sorted(set(outputs))))
        cut = self._cut.get(key)
        if cut is not None:
            return cut
        with self._cut_lock:
            cut = self._cut.get(key)
            if cut is None:
                cut = self._build_cut(model, session, key[1])
                with self._lock:
                    if self._sessions.get(model) is session:  # not reloaded meanwhile
                        self._cut[key] = cut
        return cut

    def _build_cut(self, model: str, session: ort.InferenceSession, outputs: Sequence[str]) -> ort.InferenceSession:
        """A session of ``model``'s graph cut down to ``outputs``, or ``session`` itself where the cut
        would keep every node (or fails: the full graph still answers, slower, never wrong)."""
        everything = [o.name for o in session.get_outputs()]
        wanted = [o for o in everything if o in outputs]
        if not wanted or len(wanted) == len(everything):
            return session
        try:
            full = onnx.load(self._paths[model])
            pruned = prune_to_outputs(full, wanted)
            if len(pruned.graph.node) == len(full.graph.node):
                return session
            options = session_options(self.intra_op_threads, self.inter_op_threads, self.allow_spinning)
            cut = ort.InferenceSession(pruned.SerializeToString(), options, providers=self.providers)
        except Exception as exc:
            log.warning("model %s: no session cut down to outputs %s (%s); every output is computed", model, wanted, exc)
            return session
        log.info("model %s: a session for outputs %s only (%d of %d nodes)", model, wanted, len(pruned.graph.node), len(full.graph.node))
        return cut

    @staticmethod
    def _run_bound(
        session: ort.InferenceSession, feeds: Mapping[str, Tensor], keep: frozenset[str], device: str, outputs: Sequence[str] | None = None
    ) -> dict[str, Tensor]:
        """One inference through I/O binding: host inputs are copied in by ONNX Runtime, device
        tensors bound as they are; outputs in ``keep`` stay on ``device``, the rest come to the host."""
        binding = session.io_binding()
        for name, value in feeds.items():
            if isinstance(value, DeviceTensor):
                binding.bind_ortvalue_input(name, value.value)
            else:
                binding.bind_cpu_input(name, value)
        names = [o.name for o in session.get_outputs()] if outputs is None else list(outputs)
        for name in names:
            binding.bind_output(name, device if name in keep else "cpu")
        session.run_with_iobinding(binding)
        out: dict[str, Tensor] = {}
        for name, value in zip(names, binding.get_outputs()):
            if name in keep:
                dtype = np.dtype(TRITON_TO_NUMPY[ONNX_TO_TRITON[value.data_type()]])
                out[name] = DeviceTensor(value, tuple(value.shape()), dtype, value.device_name(), value.numpy)
            else:
                out[name] = value.numpy()
        return out

    def close(self) -> None:
        with self._lock:
            self._sessions.clear()
            self._loaded.clear()
            self._bound.clear()
            self._paths.clear()
            self._cut.clear()


def adopt(backend: object, previous: object, names: list[str]) -> list[str]:
    """Take over ``previous``'s loaded sessions of ``names`` (unchanged models across a reload:
    not loaded twice, no second copy in memory); returns the names taken over (none unless both
    are ONNX Runtime backends, possibly inside a BatchingBackend)."""
    new, old = getattr(backend, "backend", backend), getattr(previous, "backend", previous)
    if not isinstance(new, OnnxRuntimeBackend) or not isinstance(old, OnnxRuntimeBackend):
        return []
    taken = []
    with old._lock, new._lock:
        for name in names:
            if name in old._sessions:
                new._sessions[name] = old._sessions[name]
                new._loaded[name] = old._loaded[name]
                new._paths[name] = old._paths[name]
                new._cut.update({k: v for k, v in old._cut.items() if k[0] == name})
                if name in old._bound:
                    new._bound.add(name)
                taken.append(name)
    return taken
