"""A Triton-layout model repository: ``<repo>/<name>/config.pbtxt``, ``<repo>/<name>/<version>/model.onnx``.

Only the part of Triton's ``ModelConfig`` the service needs is read (name, platform/backend,
max_batch_size, inputs, outputs, label_filename); the rest is allowed and ignored so the same
folder loads in Triton unchanged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from service.errors import ModelNotFound, ModelRepositoryError

SET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
"""A model set's name: the prefix of its models' folders (``<set>.cam_classifier``); never a path."""

TRITON_TO_NUMPY = {
    "TYPE_FP32": "float32",
    "TYPE_FP16": "float16",
    "TYPE_FP64": "float64",
    "TYPE_INT64": "int64",
    "TYPE_INT32": "int32",
    "TYPE_INT8": "int8",
    "TYPE_UINT8": "uint8",
    "TYPE_BOOL": "bool",
}
ONNX_TO_TRITON = {
    "tensor(float)": "TYPE_FP32",
    "tensor(float16)": "TYPE_FP16",
    "tensor(double)": "TYPE_FP64",
    "tensor(int64)": "TYPE_INT64",
    "tensor(int32)": "TYPE_INT32",
    "tensor(int8)": "TYPE_INT8",
    "tensor(uint8)": "TYPE_UINT8",
    "tensor(bool)": "TYPE_BOOL",
}

_TOKEN = re.compile(r'\s*(?:(#[^\n]*)|("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|([{}\[\]:,;<>])|([^\s{}\[\]:,;<>"\']+))')


def parse_pbtxt(text: str) -> dict[str, Any]:
    """Parse protobuf text format into nested dicts.

    Repeated fields (``input [ {...}, {...} ]`` or a field given several times) become lists;
    scalars stay strings except numbers, which become int or float; enum names stay strings.

    Raises:
        ValueError: on a syntax error, with the offending position.
    """
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"unexpected character {text[pos]!r} at offset {pos}")
        pos = m.end()
        if m.group(1) is not None:
            continue
        tok = m.group(2) or m.group(3) or m.group(4)
        if tok:
            tokens.append(tok)
    result, i = _parse_fields(tokens, 0, None)
    return result


def _scalar(tok: str) -> Any:
    if tok[0] in "\"'":
        return bytes(tok[1:-1], "utf-8").decode("unicode_escape")
    for cast in (int, float):
        try:
            return cast(tok)
        except ValueError:
            pass
    return tok


def _add(out: dict[str, Any], key: str, value: Any) -> None:
    if key in out:
        if not isinstance(out[key], list):
            out[key] = [out[key]]
        if isinstance(value, list):
            out[key].extend(value)
        else:
            out[key].append(value)
    else:
        out[key] = value


def _parse_value(tokens: list[str], i: int) -> tuple[Any, int]:
    tok = tokens[i]
    if tok in ("{", "<"):
        return _parse_fields(tokens, i + 1, "}" if tok == "{" else ">")
    if tok == "[":
        items: list[Any] = []
        i += 1
        while tokens[i] != "]":
            value, i = _parse_value(tokens, i)
            items.append(value)
            if tokens[i] == ",":
                i += 1
        return items, i + 1
    return _scalar(tok), i + 1


def _parse_fields(tokens: list[str], i: int, close: str | None) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    while i < len(tokens):
        tok = tokens[i]
        if close is not None and tok == close:
            return out, i + 1
        if tok in (",", ";"):
            i += 1
            continue
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", tok):
            raise ValueError(f"expected a field name, got {tok!r}")
        i += 1
        if i >= len(tokens):
            raise ValueError(f"field {tok!r} has no value")
        if tokens[i] == ":":
            i += 1
        if i >= len(tokens):
            raise ValueError(f"field {tok!r} has no value")
        value, i = _parse_value(tokens, i)
        _add(out, tok, value)
    if close is not None:
        raise ValueError(f"missing {close!r}")
    return out, i


@dataclass(frozen=True)
class TensorSpec:
    """One input or output as the config declares it.

    Attributes:
        name: tensor name.
        dtype: Triton data type (``TYPE_FP32``).
        shape: full shape, batch dimension included when the model batches; -1 = dynamic.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass(frozen=True)
class ModelConfig:
    """A model of the repository, with the version that will be served.

    Attributes:
        name: model name (folder name).
        platform: ``onnxruntime_onnx`` (Triton's platform or backend name).
        max_batch_size: Triton max_batch_size; 0 = the model does not batch (shapes are full).
        inputs / outputs: tensor specs, batch dimension included.
        version: the newest version served (Triton's default policy serves only it).
        model_path: that version's ``model.onnx``.
        labels: class names from the output's ``label_filename`` (empty if none).
        versions: every version served under the config's ``version_policy`` (``latest {
            num_versions: N }``, ``specific { versions: [...] }``, ``all {}``), newest first.
        input_side: the config's ``input_side`` parameter: the longest image side the model was
            trained at (None when not given; the service then runs it at the image's own size).
        predict_scales / predict_flip: the config's ``predict_scales`` / ``predict_flip``
            parameters: DeepLab's test-time augmentation as its trainer chose it (None when not
            given; the server's ``WSSS_PREDICT_SCALES`` / ``WSSS_PREDICT_FLIP``, when set, win).
    """

    name: str
    platform: str
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    version: str
    model_path: Path
    labels: tuple[str, ...]
    versions: tuple[str, ...] = ()
    input_side: int | None = None
    predict_scales: tuple[float, ...] | None = None
    predict_flip: bool | None = None

    def output(self, name: str) -> TensorSpec | None:
        return next((t for t in self.outputs if t.name == name), None)

    def at(self, version: str) -> ModelConfig:
        """The same model at another served version (its name becomes ``<name>@<version>``).

        Raises:
            ModelNotFound: the version is not served.
        """
        if version not in self.versions:
            raise ModelNotFound(f"model {self.name!r} has no version {version!r} served; served: {', '.join(self.versions)}")
        return replace(self, name=f"{self.name}@{version}", version=version, model_path=self.model_path.parent.parent / version / "model.onnx")


def newest_first(versions: Iterable[str]) -> list[str]:
    """Version folder names (digits) ordered as versions, newest first."""
    return sorted(versions, key=int, reverse=True)


def versions_on_disk(model_dir: Path) -> list[str]:
    """The version folders of a model that hold a model.onnx, newest first."""
    return newest_first(p.name for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit() and (p / "model.onnx").is_file())


def served_versions(name: str, on_disk: list[int], policy: Any) -> list[int]:
    """The versions ``version_policy`` serves among ``on_disk`` (newest first); Triton's default
    (no policy) is the newest one."""
    if not policy:
        return on_disk[:1]
    if not isinstance(policy, dict) or len(policy) != 1:
        raise ModelRepositoryError(f"model {name!r}: version_policy must be one of latest, specific, all; got {policy!r}")
    kind, body = next(iter(policy.items()))
    body = body if isinstance(body, dict) else {}
    if kind == "all":
        return on_disk
    if kind == "latest":
        n = int(body.get("num_versions", 1))
        if n < 1:
            raise ModelRepositoryError(f"model {name!r}: version_policy latest num_versions must be at least 1")
        return on_disk[:n]
    if kind == "specific":
        wanted = sorted({int(v) for v in _as_list(body.get("versions"))}, reverse=True)
        missing = [v for v in wanted if v not in on_disk]
        if not wanted or missing:
            raise ModelRepositoryError(f"model {name!r}: version_policy specific names versions {missing or wanted} with no model.onnx")
        return wanted
    raise ModelRepositoryError(f"model {name!r}: version_policy must be one of latest, specific, all; got {kind!r}")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _tensor(model: str, entry: dict[str, Any], batched: bool, kind: str) -> TensorSpec:
    try:
        name = str(entry["name"])
        dtype = str(entry["data_type"])
        dims = [int(d) for d in _as_list(entry.get("dims"))]
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelRepositoryError(f"model {model!r}: {kind} entry {entry!r} needs name, data_type and dims") from exc
    if dtype not in TRITON_TO_NUMPY:
        raise ModelRepositoryError(f"model {model!r}: {kind} {name!r} has unsupported data_type {dtype}")
    if "reshape" in entry:
        raise ModelRepositoryError(f"model {model!r}: {kind} {name!r} uses reshape, which this service does not support")
    return TensorSpec(name, dtype, tuple(([-1] if batched else []) + dims))


def parameter_of(raw: dict[str, Any], key: str) -> Any:
    """The ``value`` of a parsed config's ``parameters { key: KEY value { ... } }`` entry (Triton's
    free-form model parameters); None when there is no such entry."""
    for entry in _as_list(raw.get("parameters")):
        if isinstance(entry, dict) and entry.get("key") == key:
            return entry.get("value")
    return None


def _string_value(value: Any) -> str:
    return str(value.get("string_value", "")) if isinstance(value, dict) else ""


def input_side_of(name: str, raw: dict[str, Any]) -> int | None:
    """A parsed config's ``parameters { key: "input_side" value { string_value: "N" } }``: N, a
    whole number of pixels from 16 to 4096; None when absent.

    Raises:
        ModelRepositoryError: the parameter is there but not such a number.
    """
    value = parameter_of(raw, "input_side")
    if value is None:
        return None
    text = _string_value(value)
    if not re.fullmatch(r"[0-9]+", text) or not 16 <= int(text) <= 4096:
        raise ModelRepositoryError(f"model {name!r}: parameter input_side must be a string_value holding a whole number of pixels from 16 to 4096, got {value!r}")
    return int(text)


def parse_scales(text: str) -> tuple[float, ...] | None:
    """Comma-separated image scales, each above 0 and at most 4 (e.g. ``"0.75,1,1.25"``); None when
    ``text`` is not such a list."""
    try:
        scales = tuple(float(x) for x in text.split(","))
    except ValueError:
        return None
    return scales if scales and all(0.0 < s <= 4.0 for s in scales) else None


def predict_scales_of(name: str, raw: dict[str, Any]) -> tuple[float, ...] | None:
    """A parsed config's ``predict_scales`` parameter (``string_value: "0.75,1,1.25"``): DeepLab's
    test-time scales, each above 0 and at most 4; None when absent.

    Raises:
        ModelRepositoryError: the parameter is there but not such a list.
    """
    value = parameter_of(raw, "predict_scales")
    if value is None:
        return None
    scales = parse_scales(_string_value(value))
    if scales is None:
        raise ModelRepositoryError(f"model {name!r}: parameter predict_scales must be a string_value holding comma-separated scales "
                                   f"above 0 and at most 4 (e.g. \"0.75,1,1.25\"), got {value!r}")
    return scales


def predict_flip_of(name: str, raw: dict[str, Any]) -> bool | None:
    """A parsed config's ``predict_flip`` parameter (``string_value: "true"`` or ``"false"``): DeepLab
    also runs on the mirrored image; None when absent.

    Raises:
        ModelRepositoryError: the parameter is there but neither word.
    """
    value = parameter_of(raw, "predict_flip")
    if value is None:
        return None
    text = _string_value(value).lower()
    if text not in ("true", "false"):
        raise ModelRepositoryError(f"model {name!r}: parameter predict_flip must be a string_value \"true\" or \"false\", got {value!r}")
    return text == "true"


def load_config(model_dir: Path) -> ModelConfig:
    """Read ``model_dir/config.pbtxt`` and pick the served version.

    Raises:
        ModelRepositoryError: missing or malformed config, no version with a model.onnx, a
            config name that differs from the folder name, or an unreadable labels file.
    """
    name = model_dir.name
    cfg_path = model_dir / "config.pbtxt"
    if not cfg_path.is_file():
        raise ModelRepositoryError(f"model {name!r}: {cfg_path} is missing")
    try:
        raw = parse_pbtxt(cfg_path.read_text())
    except (ValueError, IndexError) as exc:
        raise ModelRepositoryError(f"model {name!r}: {cfg_path} is not valid protobuf text: {exc}") from exc
    if str(raw.get("name", name)) != name:
        raise ModelRepositoryError(f"model {name!r}: config.pbtxt names it {raw.get('name')!r}; Triton needs the folder name")
    platform = str(raw.get("platform", raw.get("backend", "")))
    if platform not in ("onnxruntime_onnx", "onnxruntime"):
        raise ModelRepositoryError(f"model {name!r}: platform/backend {platform!r} is not onnxruntime_onnx")
    max_batch = int(raw.get("max_batch_size", 0))
    inputs = tuple(_tensor(name, e, max_batch > 0, "input") for e in _as_list(raw.get("input")))
    outputs = tuple(_tensor(name, e, max_batch > 0, "output") for e in _as_list(raw.get("output")))
    if not inputs or not outputs:
        raise ModelRepositoryError(f"model {name!r}: config.pbtxt must declare its inputs and outputs")
    versions = [int(v) for v in versions_on_disk(model_dir)]
    if not versions:
        raise ModelRepositoryError(f"model {name!r}: no version folder with a model.onnx under {model_dir}")
    labels: tuple[str, ...] = ()
    for entry in _as_list(raw.get("output")):
        label_file = entry.get("label_filename") if isinstance(entry, dict) else None
        if label_file:
            path = model_dir / str(label_file)
            if not path.is_file():
                raise ModelRepositoryError(f"model {name!r}: label_filename {label_file!r} not found in {model_dir}")
            labels = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    served = served_versions(name, versions, raw.get("version_policy"))
    return ModelConfig(
        name=name,
        platform=platform,
        max_batch_size=max_batch,
        inputs=inputs,
        outputs=outputs,
        version=str(served[0]),
        model_path=model_dir / str(served[0]) / "model.onnx",
        labels=labels,
        versions=tuple(str(v) for v in served),
        input_side=input_side_of(name, raw),
        predict_scales=predict_scales_of(name, raw),
        predict_flip=predict_flip_of(name, raw),
    )


class ModelRepository:
    """The models found in a Triton-layout folder (every subfolder with a config.pbtxt)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ModelRepositoryError(f"model repository {self.root} does not exist")
        self.configs: dict[str, ModelConfig] = {}
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and (sub / "config.pbtxt").is_file():
                self.configs[sub.name] = load_config(sub)

    def __contains__(self, name: object) -> bool:
        return name in self.configs

    def get(self, name: str) -> ModelConfig:
        """The config of model ``name`` (``<name>@<version>``: at that served version). Raises ModelNotFound."""
        base, _, version = name.partition("@")
        try:
            config = self.configs[base]
        except KeyError:
            raise ModelNotFound(f"model {base!r} is not in the model repository {self.root}") from None
        return config.at(version) if version else config


def repository_fingerprints(root: Path) -> dict[str, str]:
    """Model name -> a digest of its folder's files (config.pbtxt, labels, every version's
    model.onnx: name, size and modification time; hidden staging files and folders left out): it
    changes when a version is added, removed, replaced or still being written, and when the config
    changes."""
    import hashlib

    out: dict[str, str] = {}
    root = Path(root)
    if not root.is_dir():
        return out
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and (p / "config.pbtxt").is_file()):
        h = hashlib.sha256()
        for dirpath, dirnames, filenames in os.walk(model_dir, onerror=lambda _: None):  # a folder renamed meanwhile is skipped
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # staging folders are not the model's yet
            for name in sorted(f for f in filenames if not f.startswith(".")):
                path = Path(dirpath) / name
                try:
                    st = path.stat()
                except OSError:  # removed or renamed between the listing and here
                    continue
                h.update(f"{path.relative_to(model_dir)}:{st.st_size}:{st.st_mtime_ns};".encode())
        out[model_dir.name] = h.hexdigest()[:16]
    return out
