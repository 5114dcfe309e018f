"""DeepLab's two contracts: in-graph pixels -> labels + confidence (what the toolkit exports now) and
the older float -> logits one (still served); ``upgrade-deeplab`` turns the second into the first
with the same numbers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from service.errors import ModelRepositoryError  # noqa: E402
from service.models.deeplab import DeepLab  # noqa: E402
from service.models.imageops import normalise  # noqa: E402
from service.runtime import ModelRepository  # noqa: E402
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from tests.conftest import DEFAULT_REPO  # noqa: E402
from training.export import _export, upgrade_deeplab, write_config  # noqa: E402
from training.nets import DeepLab as DeepLabNet  # noqa: E402
from training.synthetic import HELD_OUT_SEED, generate  # noqa: E402

CLASSES = ["scratch", "spot", "crack"]


def _logits_export(repo: Path, versions: tuple[int, ...] = (1,)) -> DeepLabNet:
    """A DeepLab of the older contract, as the toolkit exported it before: float image, logits only."""
    torch.manual_seed(0)
    net = DeepLabNet(len(CLASSES)).eval()
    for v in versions:
        _export(net, (torch.zeros(1, 3, 64, 64),), repo / "deeplab" / str(v) / "model.onnx", ["image"], ["logits"],
                {"image": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n", 2: "h", 3: "w"}})
    (repo / "deeplab" / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    write_config(repo / "deeplab", "deeplab", 8, [("image", [3, -1, -1], "")], [("logits", [len(CLASSES) + 1, -1, -1], 'label_filename: "labels.txt"')],
                 batching=True)
    return net


def _deeplab(repo: Path) -> DeepLab:
    backend = OnnxRuntimeBackend(ModelRepository(repo), "CPUExecutionProvider")
    backend.load(["deeplab"])
    return DeepLab(backend)


def test_upgrade_keeps_every_label_and_confidence(tmp_path: Path) -> None:
    net = _logits_export(tmp_path, versions=(1, 2))
    old = _deeplab(tmp_path)
    assert not old.uint8_input and not old.in_graph_labels
    images = [generate(HELD_OUT_SEED, i, 96 + 16 * i, 128).image for i in range(4)]
    before = [old.predict(img) for img in images]
    # the older contract's numbers are the network's: argmax of torch's logits
    with torch.no_grad():
        want = net(torch.from_numpy(normalise(images[0])[None])).argmax(1)[0].numpy()
    np.testing.assert_array_equal(before[0].label_map, want)

    assert upgrade_deeplab(tmp_path) == ["2", "1"]
    new = _deeplab(tmp_path)
    assert new.uint8_input and new.in_graph_labels
    model = new.backend.models()["deeplab"]
    assert {t.name: t.dtype for t in model.inputs} == {"image": "TYPE_UINT8"}
    assert {t.name: t.dtype for t in model.outputs} == {"logits": "TYPE_FP32", "labels": "TYPE_UINT8", "confidence": "TYPE_FP32"}
    for img, a in zip(images, before):
        b = new.predict(img)
        np.testing.assert_array_equal(b.label_map, a.label_map)
        np.testing.assert_allclose(b.confidence, a.confidence, atol=1e-5)
    assert upgrade_deeplab(tmp_path) == []  # already in graph: nothing rewritten


def test_the_default_deeplab_is_served_in_graph() -> None:
    deeplab = _deeplab(DEFAULT_REPO)
    assert deeplab.uint8_input and deeplab.in_graph_labels
    logits = deeplab.backend.infer("deeplab", {"image": generate(HELD_OUT_SEED, 0).image[None]})
    labels = logits["logits"][0].argmax(0)
    np.testing.assert_array_equal(labels, logits["labels"][0])


def test_upgrade_refuses_what_is_not_a_deeplab(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_REPO / "sam_decoder", tmp_path / "sam_decoder")
    with pytest.raises(ValueError, match="not a DeepLab"):
        upgrade_deeplab(tmp_path, "sam_decoder")
    shutil.copytree(DEFAULT_REPO / "cam_classifier", tmp_path / "cam_classifier")
    with pytest.raises(ValueError, match="not a DeepLab of the logits contract"):
        upgrade_deeplab(tmp_path, "cam_classifier")


def test_labels_beyond_the_classes_are_a_repository_error(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_REPO / "deeplab", tmp_path / "deeplab")
    (tmp_path / "deeplab" / "labels.txt").write_text("only_one\n")  # the graph still has 4 foreground classes
    deeplab = _deeplab(tmp_path)
    with pytest.raises(ModelRepositoryError, match="for 1 classes"):
        for i in range(5):  # held-out images with defects of several classes
            deeplab.predict(generate(HELD_OUT_SEED, i).image)
