"""The uint8-pixel contracts and the older float ones, both served: DeepLab (in-graph pixels ->
labels + confidence, or float -> logits) and the SAM encoder (resized uint8 image, normalised and
padded in the graph, or the normalised padded float frame); ``upgrade-models`` turns the older
into the newer with the same numbers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from service.errors import ModelRepositoryError  # noqa: E402
from service.models.deeplab import DeepLab  # noqa: E402
from service.models.imageops import IMAGENET_STD, normalise  # noqa: E402
from service.models.sam import SAM_IMG_SIZE, SamEncoder  # noqa: E402
from service.pipeline.predict import Predictor  # noqa: E402
from service.runtime import ModelRepository  # noqa: E402
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from tests.conftest import DEFAULT_REPO  # noqa: E402
from training.evaluate import MethodScore  # noqa: E402
from training.export import _export, upgrade_models, write_config, write_deeplab_config  # noqa: E402
from training.nets import DeepLab as DeepLabNet  # noqa: E402
from training.nets import PromptEncoderBody, PromptEncoderNet  # noqa: E402
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

    assert upgrade_models(tmp_path, "deeplab") == ["2", "1"]
    new = _deeplab(tmp_path)
    assert new.uint8_input and new.in_graph_labels
    model = new.backend.models()["deeplab"]
    assert {t.name: t.dtype for t in model.inputs} == {"image": "TYPE_UINT8"}
    assert {t.name: t.dtype for t in model.outputs} == {"logits": "TYPE_FP32", "labels": "TYPE_UINT8", "confidence": "TYPE_FP32"}
    for img, a in zip(images, before):
        b = new.predict(img)
        np.testing.assert_array_equal(b.label_map, a.label_map)
        np.testing.assert_allclose(b.confidence, a.confidence, atol=1e-5)
    assert upgrade_models(tmp_path, "deeplab") == []  # already in graph: nothing rewritten


def test_the_default_deeplab_is_served_in_graph() -> None:
    deeplab = _deeplab(DEFAULT_REPO)
    assert deeplab.uint8_input and deeplab.in_graph_labels
    logits = deeplab.backend.infer("deeplab", {"image": generate(HELD_OUT_SEED, 0).image[None]})
    labels = logits["logits"][0].argmax(0)
    np.testing.assert_array_equal(labels, logits["labels"][0])


def test_a_deeplab_with_an_input_side_sees_every_image_at_its_training_scale(tmp_path: Path) -> None:
    """The same scenes sent at twice the resolution are segmented as well as at the training
    resolution when the model's config says which side it was trained at (each image is resized
    to it); without it, the model sees every defect twice as large as in training."""
    shutil.copytree(DEFAULT_REPO / "deeplab", tmp_path / "deeplab")
    classes = (tmp_path / "deeplab" / "labels.txt").read_text().split()
    native = Predictor(_deeplab(tmp_path))
    write_deeplab_config(tmp_path / "deeplab", "deeplab", classes, input_side=256)  # the default's training images are 256 x 256
    scaled = Predictor(_deeplab(tmp_path))
    assert scaled.deeplab.input_side == 256 and native.deeplab.input_side is None
    sf, nf = scaled.frame(600, 400), native.frame(600, 400)
    assert (sf.work_height, sf.work_width, nf.work_height, nf.work_width) == (256, 171, 600, 400)
    up = scaled.frame(64, 100)  # a smaller image is enlarged to the training side
    assert (up.work_height, up.work_width) == (164, 256)
    scores = {name: MethodScore(len(classes) + 1) for name in ("at 256", "512 resized", "512 as sent")}
    for i in range(6):
        sample = generate(HELD_OUT_SEED, i)  # 256 x 256, as in training
        twice, gt2 = (a.repeat(2, axis=0).repeat(2, axis=1) for a in (sample.image, sample.mask))
        at_side = scaled.predict(sample.image).label_map
        np.testing.assert_array_equal(at_side, native.predict(sample.image).label_map)  # already at the side: untouched
        scores["at 256"].add(at_side, sample.mask, 0.0)
        resized = scaled.predict(twice).label_map
        assert resized.shape == twice.shape[:2]
        scores["512 resized"].add(resized, gt2, 0.0)
        scores["512 as sent"].add(native.predict(twice).label_map, gt2, 0.0)
    miou = {name: s.report(classes)["miou"] for name, s in scores.items()}
    # measured: 0.769 at 256, 0.643 resized (the 2x downscale blurs the thinnest defects a little), 0.416 as sent
    assert miou["512 resized"] >= miou["at 256"] - 0.2, miou
    assert miou["512 resized"] >= miou["512 as sent"] + 0.15, miou


def test_upgrade_keeps_the_input_side(tmp_path: Path) -> None:
    _logits_export(tmp_path)
    text = (tmp_path / "deeplab" / "config.pbtxt").read_text()
    (tmp_path / "deeplab" / "config.pbtxt").write_text(text + 'parameters { key: "input_side" value { string_value: "320" } }\n')
    assert upgrade_models(tmp_path, "deeplab") == ["1"]
    assert _deeplab(tmp_path).input_side == 320 and _deeplab(tmp_path).in_graph_labels


def test_upgrade_refuses_other_models(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_REPO / "sam_decoder", tmp_path / "sam_decoder")
    with pytest.raises(ValueError, match="neither a DeepLab's"):
        upgrade_models(tmp_path, "sam_decoder")
    shutil.copytree(DEFAULT_REPO / "cam_classifier", tmp_path / "cam_classifier")
    with pytest.raises(ValueError, match="neither a DeepLab's"):
        upgrade_models(tmp_path, "cam_classifier")
    with pytest.raises(ValueError, match="no version"):
        upgrade_models(tmp_path, "missing")


def test_labels_beyond_the_classes_are_a_repository_error(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_REPO / "deeplab", tmp_path / "deeplab")
    (tmp_path / "deeplab" / "labels.txt").write_text("only_one\n")  # the graph still has 4 foreground classes
    deeplab = _deeplab(tmp_path)
    with pytest.raises(ModelRepositoryError, match="for 1 classes"):
        for i in range(5):  # held-out images with defects of several classes
            deeplab.predict(generate(HELD_OUT_SEED, i).image)


def _float_encoder(repo: Path) -> None:
    """A SAM encoder of the older contract: float32 [1,3,1024,1024], normalised and padded by the caller."""
    torch.manual_seed(1)
    net = PromptEncoderNet(PromptEncoderBody()).eval()
    _export(net, (torch.zeros(1, 3, 1024, 1024),), repo / "sam_encoder" / "1" / "model.onnx", ["image"], ["image_embeddings"], {})
    write_config(repo / "sam_encoder", "sam_encoder", 0, [("image", [1, 3, 1024, 1024], "")], [("image_embeddings", [1, 256, 64, 64], "")])


def _encoder(repo: Path) -> SamEncoder:
    backend = OnnxRuntimeBackend(ModelRepository(repo), "CPUExecutionProvider")
    backend.load(["sam_encoder"])
    return SamEncoder(backend)


SHAPES = [(200, 300), (1200, 700), (300, 200), (97, 411), (256, 256), (50, 40)]


def test_float_encoder_input_is_segment_anythings_and_its_buffer_is_reused(tmp_path: Path) -> None:
    """The older contract's input, made here: Pillow-resized, normalised, zero-padded; the per-thread
    buffer is reused and each image's padding is zero whatever the image before it was."""
    _float_encoder(tmp_path)
    encoder = _encoder(tmp_path)
    assert not encoder.uint8_input
    rng = np.random.default_rng(0)
    first = None
    for shape in SHAPES:
        image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
        x, geometry = encoder.preprocess(image)
        first = x if first is None else first
        assert x is first  # same buffer
        rh, rw = geometry.resized
        want = np.zeros((1, 3, SAM_IMG_SIZE, SAM_IMG_SIZE), np.float32)
        want[0, :, :rh, :rw] = normalise(_pillow(image, rh, rw))  # segment-anything: Pillow resize of the uint8 image, then normalise
        assert not x[0, :, rh:].any() and not x[0, :, :, rw:].any()
        # equal but where Pillow's 22-bit fixed-point weights and float32 round a value near half a
        # grey level apart (the short side's non-dyadic scale): one grey level, under 1 % of pixels
        apart = np.abs(x - want) > 1e-6
        assert apart.mean() < 0.01
        assert np.abs(x - want).max() <= 1.01 / IMAGENET_STD.min()


def _pillow(image: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def test_encoder_upgrade_keeps_the_embeddings(tmp_path: Path) -> None:
    _float_encoder(tmp_path)
    old = _encoder(tmp_path)
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, shape + (3,), dtype=np.uint8) for shape in SHAPES]
    before = [np.asarray(old.embed(img).embeddings) for img in images]
    assert upgrade_models(tmp_path, "sam_encoder") == ["1"]
    new = _encoder(tmp_path)
    assert new.uint8_input
    assert {t.name: (t.dtype, t.shape) for t in new.backend.models()["sam_encoder"].inputs} == {"image": ("TYPE_UINT8", (1, -1, -1, 3))}
    for img, want in zip(images, before):
        x, geometry = new.preprocess(img)
        rh, rw = geometry.resized
        assert x.dtype == np.uint8 and x.shape == (1, rh, rw, 3)  # resized only: normalised and padded in the graph
        np.testing.assert_allclose(np.asarray(new.embed(img).embeddings), want, atol=1e-5)
    assert upgrade_models(tmp_path, "sam_encoder") == []


def test_the_default_encoder_takes_uint8_pixels() -> None:
    assert _encoder(DEFAULT_REPO).uint8_input


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=0))
    return e / e.sum(axis=0)


@pytest.mark.parametrize("contract", ["in-graph", "logits"])
def test_test_time_augmentation_averages_the_runs_of_scales_and_mirrors(tmp_path: Path, contract: str) -> None:
    if contract == "in-graph":
        deeplab = _deeplab(DEFAULT_REPO)
    else:
        _logits_export(tmp_path)
        deeplab = _deeplab(tmp_path)
    image = generate(HELD_OUT_SEED, 1, 96, 128).image
    plain = deeplab.predict(image)
    same = deeplab.predict_augmented(image, (1.0,), False)  # no augmentation: predict itself
    np.testing.assert_array_equal(same.label_map, plain.label_map)
    # with the mirror: the mean of the two runs' probabilities, the mirrored run mirrored back
    x = image if deeplab.uint8_input else normalise(image)
    both = np.stack([x, x[:, ::-1] if deeplab.uint8_input else x[:, :, ::-1]])
    logits = np.asarray(deeplab.backend.infer("deeplab", {"image": both}, outputs=("logits",))["logits"], np.float32)
    mean = (_softmax(logits[0]) + _softmax(logits[1])[:, :, ::-1]) / 2
    flipped = deeplab.predict_augmented(image, (1.0,), True)
    np.testing.assert_array_equal(flipped.label_map, mean.argmax(axis=0))
    np.testing.assert_allclose(flipped.confidence, mean.max(axis=0), atol=1e-5)
    assert not np.allclose(flipped.confidence, plain.confidence, atol=1e-4)  # the mirror's run counts
    mirror = deeplab.predict_augmented(np.ascontiguousarray(image[:, ::-1]), (1.0,), True)  # mirrored in, mirrored out
    np.testing.assert_array_equal(mirror.label_map, flipped.label_map[:, ::-1])
    scaled = deeplab.predict_augmented(image, (0.5, 1.0, 1.5), True)
    assert scaled.label_map.shape == scaled.confidence.shape == image.shape[:2]
    assert int(scaled.label_map.max()) <= len(deeplab.classes)
    assert (scaled.confidence >= 1 / (len(deeplab.classes) + 1) - 1e-6).all() and (scaled.confidence <= 1 + 1e-6).all()
    assert not np.allclose(scaled.confidence, flipped.confidence, atol=1e-4)  # the other scales' runs count


def test_test_time_augmentation_counts_in_the_memory_budget() -> None:
    from service.errors import Overloaded

    deeplab = _deeplab(DEFAULT_REPO)
    plain, augmented = Predictor(deeplab), Predictor(deeplab, scales=(0.75, 1.0, 1.25), flip=True)
    h, w = 900, 1200
    assert augmented.working_bytes(h, w) > 3 * plain.working_bytes(h, w) - 3 * h * w * 64  # the 1.25 scale's run of two images
    between = Predictor(deeplab, max_request_bytes=(plain.working_bytes(h, w) + augmented.working_bytes(h, w)) // 2,
                        scales=(0.75, 1.0, 1.25), flip=True)
    Predictor(deeplab, max_request_bytes=between.max_request_bytes).check_budget(h, w)  # fits without augmentation
    with pytest.raises(Overloaded):
        between.check_budget(h, w)
    image = generate(HELD_OUT_SEED, 2).image
    out = augmented.predict(image)
    assert out.label_map.shape == image.shape[:2]
    np.testing.assert_array_equal(out.label_map, deeplab.predict_augmented(image, (0.75, 1.0, 1.25), True).label_map)


def test_a_deeplab_config_carries_its_test_time_augmentation_and_a_setting_overrides_it(tmp_path: Path) -> None:
    """``predict_scales`` / ``predict_flip`` in the DeepLab's config are what Predict uses when the
    server sets neither (``Predictor(scales=None, flip=None)``); each argument given wins over the
    config; without either, Predict is plain. ``upgrade-models`` keeps them."""
    shutil.copytree(DEFAULT_REPO / "deeplab", tmp_path / "deeplab")
    classes = (tmp_path / "deeplab" / "labels.txt").read_text().split()
    plain = Predictor(_deeplab(tmp_path))
    assert (plain.scales, plain.flip) == ((1.0,), False)
    write_deeplab_config(tmp_path / "deeplab", "deeplab", classes, predict_scales=(0.75, 1.0, 1.25), predict_flip=True)
    assert 'key: "predict_scales"' in (tmp_path / "deeplab" / "config.pbtxt").read_text()
    deeplab = _deeplab(tmp_path)
    configured = Predictor(deeplab)
    assert (configured.scales, configured.flip) == ((0.75, 1.0, 1.25), True)
    image = generate(HELD_OUT_SEED, 3, 96, 128).image
    np.testing.assert_array_equal(configured.predict(image).label_map, Predictor(deeplab, scales=(0.75, 1.0, 1.25), flip=True).predict(image).label_map)
    assert configured.working_bytes(900, 1200) == Predictor(deeplab, scales=(0.75, 1.0, 1.25), flip=True).working_bytes(900, 1200)
    overridden = Predictor(deeplab, scales=(1.0,), flip=False)  # the server's settings win
    assert (overridden.scales, overridden.flip) == ((1.0,), False)
    np.testing.assert_array_equal(overridden.predict(image).label_map, plain.predict(image).label_map)
    assert (Predictor(deeplab, flip=False).scales, Predictor(deeplab, scales=(2.0,)).flip) == ((0.75, 1.0, 1.25), True)  # each on its own


def test_upgrade_keeps_the_test_time_augmentation(tmp_path: Path) -> None:
    _logits_export(tmp_path)
    text = (tmp_path / "deeplab" / "config.pbtxt").read_text()
    (tmp_path / "deeplab" / "config.pbtxt").write_text(
        text + 'parameters { key: "predict_scales" value { string_value: "0.5,1" } }\nparameters { key: "predict_flip" value { string_value: "false" } }\n')
    assert upgrade_models(tmp_path, "deeplab") == ["1"]
    upgraded = _deeplab(tmp_path)
    assert (upgraded.predict_scales, upgraded.predict_flip, upgraded.in_graph_labels) == ((0.5, 1.0), False, True)


def test_predict_scales_setting_is_checked() -> None:
    from pydantic import ValidationError

    from service.settings import Settings

    assert (Settings().predict_scales, Settings().predict_flip) == (None, None)  # unset: each DeepLab's config decides
    assert Settings(predict_scales=(0.75, 1.0, 1.25), predict_flip=True).predict_scales == (0.75, 1.0, 1.25)
    for bad in ((), (0.0, 1.0), (1.0, 5.0)):
        with pytest.raises(ValidationError, match="predict_scales"):
            Settings(predict_scales=bad)
