"""Model repository parsing and validation of ONNX files against config.pbtxt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto

from service.errors import InvalidInput, ModelNotFound, ModelRepositoryError
from service.runtime import ModelRepository
from service.runtime.model_repo import parse_pbtxt
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend, choose_providers
from service.settings import REPO_ROOT
from tests.onnx_builders import identity_model

CONFIG = """name: "m"
platform: "onnxruntime_onnx"
max_batch_size: 4
input [ { name: "image" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] } ]
output [ { name: "logits" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] label_filename: "labels.txt" } ]
"""


def _repo(tmp_path: Path, config: str = CONFIG, **model: object) -> Path:
    identity_model(tmp_path / "m" / "1" / "model.onnx", **model)  # type: ignore[arg-type]
    (tmp_path / "m" / "config.pbtxt").write_text(config)
    (tmp_path / "m" / "labels.txt").write_text("a\nb\n")
    return tmp_path


def _load(root: Path) -> OnnxRuntimeBackend:
    backend = OnnxRuntimeBackend(ModelRepository(root), "CPUExecutionProvider")
    backend.load(["m"])
    return backend


def test_parse_pbtxt_handles_triton_syntax() -> None:
    cfg = parse_pbtxt(
        '# comment\nname: "x"\nmax_batch_size: 8\ninput [ { name: "a" dims: [ 1, -1 ] }, { name: "b" dims: [2] } ]\n'
        "output { name: 'o' dims: [ 3 ] }\noutput { name: 'p' dims: [ 4 ] }\n"
        "dynamic_batching { max_queue_delay_microseconds: 100 }\ninstance_group [ { kind: KIND_GPU count: 1 } ]\n"
    )
    assert cfg["name"] == "x" and cfg["max_batch_size"] == 8
    assert [i["name"] for i in cfg["input"]] == ["a", "b"] and cfg["input"][0]["dims"] == [1, -1]
    assert [o["name"] for o in cfg["output"]] == ["o", "p"]
    assert cfg["instance_group"][0]["kind"] == "KIND_GPU"


def test_valid_model_loads_with_labels_version_and_provider(tmp_path: Path) -> None:
    backend = _load(_repo(tmp_path))
    m = backend.models()["m"]
    assert (m.version, m.labels, m.provider, m.device) == ("1", ("a", "b"), "CPUExecutionProvider", "CPU")
    assert m.inputs[0].shape == (-1, 3, -1, -1)
    out = backend.infer("m", {"image": np.ones((1, 3, 2, 2), np.float32)})
    np.testing.assert_array_equal(out["logits"], np.ones((1, 3, 2, 2)))


def test_highest_version_is_served(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    identity_model(root / "m" / "7" / "model.onnx")
    (root / "m" / "3").mkdir()
    assert ModelRepository(root).get("m").version == "7"


@pytest.mark.parametrize(
    ("config", "model", "message"),
    [
        (CONFIG.replace('name: "image"', 'name: "pixels"'), {}, r"inputs are \['image'\] in the ONNX file but \['pixels'\] in config.pbtxt"),
        (CONFIG, {"dtype": TensorProto.UINT8}, "input 'image' is TYPE_UINT8 in the ONNX file but TYPE_FP32 in config.pbtxt"),
        (CONFIG, {"rank": 3}, "input 'image' has rank 3"),
        (CONFIG.replace('name: "logits"', 'name: "scores"'), {}, "output 'scores' is in config.pbtxt but not in the ONNX file"),
    ],
    ids=["input-name", "dtype", "rank", "output-name"],
)
def test_mismatch_with_config_is_a_clear_error(tmp_path: Path, config: str, model: dict[str, object], message: str) -> None:
    with pytest.raises(ModelRepositoryError, match=message) as info:
        _load(_repo(tmp_path, config, **model))
    assert "model 'm' version 1 does not match its config" in str(info.value)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda root: (root / "m" / "config.pbtxt").unlink(), "not in the model repository"),
        (lambda root: (root / "m" / "config.pbtxt").write_text("name: {"), "is not valid protobuf text"),
        (lambda root: (root / "m" / "1" / "model.onnx").unlink(), "no version folder with a model.onnx"),
        (lambda root: (root / "m" / "config.pbtxt").write_text(CONFIG.replace('name: "m"', 'name: "other"')), "names it 'other'"),
        (lambda root: (root / "m" / "config.pbtxt").write_text(CONFIG.replace("onnxruntime_onnx", "tensorrt_plan")), "is not onnxruntime_onnx"),
        (lambda root: (root / "m" / "labels.txt").unlink(), "label_filename 'labels.txt' not found"),
        (lambda root: (root / "m" / "1" / "model.onnx").write_bytes(b"not an onnx file"), "cannot load"),
    ],
    ids=["no-config", "bad-syntax", "no-version", "wrong-name", "wrong-platform", "no-labels", "corrupt-onnx"],
)
def test_broken_repository_is_a_clear_error(tmp_path: Path, mutate: object, message: str) -> None:
    root = _repo(tmp_path)
    mutate(root)  # type: ignore[operator]
    with pytest.raises((ModelRepositoryError, ModelNotFound), match=message):
        _load(root)


def _side(value: str) -> str:
    return CONFIG + f'parameters {{ key: "input_side" value {{ string_value: "{value}" }} }}\n'


def test_input_side_parameter_reaches_the_loaded_model(tmp_path: Path) -> None:
    assert ModelRepository(_repo(tmp_path / "none")).get("m").input_side is None
    two = _side("320") + 'parameters { key: "other" value { string_value: "x" } }\n'
    assert ModelRepository(_repo(tmp_path / "two", two)).get("m").input_side == 320
    assert _load(_repo(tmp_path / "one", _side("256"))).models()["m"].input_side == 256


@pytest.mark.parametrize("value", ["abc", "8", "5000", "-256", "256.5", ""])
def test_a_bad_input_side_is_a_repository_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(ModelRepositoryError, match="parameter input_side must be a string_value holding a whole number of pixels from 16 to 4096"):
        ModelRepository(_repo(tmp_path, _side(value)))


def _parameters(**values: str) -> str:
    return CONFIG + "".join(f'parameters {{ key: "{k}" value {{ string_value: "{v}" }} }}\n' for k, v in values.items())


def test_test_time_parameters_reach_the_loaded_model(tmp_path: Path) -> None:
    """``predict_scales`` / ``predict_flip`` (a DeepLab's test-time augmentation, as ``export`` writes
    it) reach the config and the model a backend loads; absent, both are None (the server decides)."""
    plain = ModelRepository(_repo(tmp_path / "none")).get("m")
    assert plain.predict_scales is None and plain.predict_flip is None
    config = _parameters(input_side="320", predict_scales="0.75,1,1.25", predict_flip="true")
    repo = ModelRepository(_repo(tmp_path / "both", config)).get("m")
    assert (repo.input_side, repo.predict_scales, repo.predict_flip) == (320, (0.75, 1.0, 1.25), True)
    loaded = _load(_repo(tmp_path / "loaded", _parameters(predict_scales="1", predict_flip="False"))).models()["m"]
    assert (loaded.predict_scales, loaded.predict_flip) == ((1.0,), False)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("predict_scales", "", "parameter predict_scales must be a string_value holding comma-separated scales above 0 and at most 4"),
    ("predict_scales", "0.75,,1", "parameter predict_scales must be"),
    ("predict_scales", "0,1", "parameter predict_scales must be"),
    ("predict_scales", "1,5", "parameter predict_scales must be"),
    ("predict_scales", "nan", "parameter predict_scales must be"),
    ("predict_scales", "big", "parameter predict_scales must be"),
    ("predict_flip", "yes", 'parameter predict_flip must be a string_value "true" or "false"'),
    ("predict_flip", "", "parameter predict_flip must be"),
])
def test_a_bad_test_time_parameter_is_a_repository_error(tmp_path: Path, key: str, value: str, message: str) -> None:
    with pytest.raises(ModelRepositoryError, match=message):
        ModelRepository(_repo(tmp_path, _parameters(**{key: value})))


def test_missing_repository_and_model(tmp_path: Path) -> None:
    with pytest.raises(ModelRepositoryError, match="does not exist"):
        ModelRepository(tmp_path / "nope")
    with pytest.raises(ModelNotFound, match="'x' is not in the model repository"):
        ModelRepository(_repo(tmp_path)).get("x")


def test_infer_checks_inputs(tmp_path: Path) -> None:
    backend = _load(_repo(tmp_path))
    with pytest.raises(InvalidInput, match="needs input 'image'"):
        backend.infer("m", {})
    with pytest.raises(InvalidInput, match="must have rank 4"):
        backend.infer("m", {"image": np.ones((3, 2, 2), np.float32)})
    with pytest.raises(ModelNotFound):
        backend.infer("other", {})


def test_provider_selection_on_this_machine() -> None:
    providers = choose_providers("auto")
    assert providers[-1] == "CPUExecutionProvider"
    with pytest.raises(ModelRepositoryError, match="not available"):
        choose_providers("NoSuchExecutionProvider")


def test_default_repository_validates() -> None:
    backend = OnnxRuntimeBackend(ModelRepository(REPO_ROOT / "model_repo"), "CPUExecutionProvider")
    backend.load(["cam_classifier", "sam_encoder", "sam_decoder", "deeplab"])
    assert backend.models()["cam_classifier"].labels == ("scratch", "spot", "crack", "stain")


def test_default_configs_are_ready_for_triton() -> None:
    for name in ("cam_classifier", "sam_encoder", "sam_decoder", "deeplab"):
        cfg = parse_pbtxt((REPO_ROOT / "model_repo" / name / "config.pbtxt").read_text())
        assert cfg["name"] == name and cfg["platform"] == "onnxruntime_onnx"
        assert cfg["instance_group"][0]["kind"] == "KIND_GPU"
        if name in ("cam_classifier", "deeplab"):
            assert cfg["max_batch_size"] > 0 and "max_queue_delay_microseconds" in cfg["dynamic_batching"]
