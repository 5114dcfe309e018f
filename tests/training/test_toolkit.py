"""Smoke tests of the data set toolkit commands on a few generated images (a few steps each)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from service.pipeline.types import IGNORE  # noqa: E402
from training import checkpoints  # noqa: E402
from training.__main__ import main as training_main  # noqa: E402
from training.datasets import DatasetError, DatasetFolder, letterbox, training_set  # noqa: E402
from training.evaluate_data import overlay_ids  # noqa: E402
from training.pseudo_label import fill_unlabelled  # noqa: E402
from training.synthetic import CLASSES  # noqa: E402

TRAIN = "1_0000[0-7]"
EVAL = "1_0000[89]|1_0001[0-1]"


def _folder(root: Path) -> Path:
    """12 generated images in two sizes (160x224 and 200x120) and one image labelled as holding no class."""
    labels: dict[str, object] = {}
    for start, count, h, w in ((0, 8, 160, 224), (8, 4, 200, 120)):
        training_main(["generate", "--out", str(root), "--count", str(count), "--start", str(start), "--height", str(h), "--width", str(w)])
        labels.update(json.loads((root / "labels.json").read_text()))
    Image.fromarray(np.zeros((160, 224), np.uint8)).save(root / "masks" / "1_00003.png")
    labels["1_00003"] = {"image_labels": []}
    (root / "labels.json").write_text(json.dumps(labels))
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The whole chain with 3 steps of each training: repo (classifier, promptable, pseudo DeepLab), repo_gt."""
    tmp = tmp_path_factory.mktemp("toolkit")
    data = _folder(tmp / "data")
    other = tmp / "other"
    training_main(["generate", "--out", str(other), "--count", "6", "--seed", "7", "--height", "128", "--width", "128"])
    repo, repo_gt = tmp / "repo", tmp / "repo_gt"
    common = ["--data", str(data), "--ids", TRAIN, "--steps", "3", "--size", "128", "--threads", "2"]
    assert training_main(["train-classifier", *common, "--out", str(tmp / "cls.pt"), "--repo", str(repo)]) == 0
    assert training_main(["train-promptable", "--data", str(other), "--synthetic", "4", "--steps", "3", "--out", str(tmp / "prm.pt"), "--repo", str(repo)]) == 0
    assert training_main(["pseudo-label", "--data", str(data), "--ids", TRAIN, "--model-repo", str(repo), "--out", str(tmp / "pseudo")]) == 0
    assert training_main(["train-deeplab", *common, "--labels", str(tmp / "pseudo" / "masks"), "--init-classifier", str(tmp / "cls.pt"),
                          "--out", str(tmp / "dl.pt"), "--repo", str(repo)]) == 0
    assert training_main(["train-deeplab", *common, "--out", str(tmp / "dl_gt.pt")]) == 0
    assert training_main(["export", "--checkpoint", str(tmp / "dl_gt.pt"), "--repo", str(repo_gt)]) == 0
    return {"tmp": tmp, "data": data, "other": other, "repo": repo, "repo_gt": repo_gt}


def test_split_by_pattern_and_by_file(tmp_path: Path, trained: dict[str, Path]) -> None:
    folder = DatasetFolder(trained["data"])
    assert folder.select(TRAIN) == [f"1_0000{i}" for i in range(8)]
    (tmp_path / "ids.txt").write_text("1_00002\n1_00009\n")
    assert folder.select(None, tmp_path / "ids.txt") == ["1_00002", "1_00009"]
    assert folder.select(TRAIN, tmp_path / "ids.txt") == ["1_00002"]
    with pytest.raises(DatasetError, match="no image id matches"):
        folder.select("nothing_.*")
    (tmp_path / "bad.txt").write_text("1_00002\nmissing_id\n")
    with pytest.raises(DatasetError, match="1 id\\(s\\) have no image"):
        folder.select(None, tmp_path / "bad.txt")


def test_weak_labels_json_in_the_api_form(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(root / "images" / "a.png")
    (root / "labels.txt").write_text("crack\nspot\n")
    entry = {
        "image_labels": ["crack"],
        "boxes": [{"label": "spot", "x0": 1, "y0": 2, "x1": 10, "y1": 12}],
        "points": [{"label": "crack", "x": 3.5, "y": 4, "negative": True}],
        "scribbles": [{"label": "spot", "points": [{"x": 1, "y": 1}, {"x": 5, "y": 6}]}],
    }
    (root / "labels.json").write_text(json.dumps({"a": entry, "b": {"image_labels": ["dent"]}, "c": {"polygons": []}}))
    labels = DatasetFolder(root).weak_labels("a")
    assert labels.image_labels == ("crack",)
    assert (labels.boxes[0].label, labels.boxes[0].x1) == ("spot", 10.0)
    assert labels.points[0].negative and labels.points[0].x == 3.5
    assert labels.scribbles[0].points == ((1.0, 1.0), (5.0, 6.0)) and labels.scribbles[0].width == 3.0
    assert DatasetFolder(root).weak_labels("zzz").empty
    with pytest.raises(DatasetError, match=r"class\(es\) \['dent'\] are not in labels.txt"):
        DatasetFolder(root).weak_labels("b")
    with pytest.raises(DatasetError, match="unknown weak-label field"):
        DatasetFolder(root).weak_labels("c")
    with pytest.raises(DatasetError, match="no labels.txt"):
        (root / "labels.txt").unlink()
        DatasetFolder(root)


def test_letterbox_keeps_aspect_and_pads_with_ignore() -> None:
    image = np.full((100, 50, 3), 200, np.uint8)
    mask = np.ones((100, 50), np.uint8)
    img, lab = letterbox(image, mask, 64)
    assert img.shape == (64, 64, 3) and lab.shape == (64, 64)
    assert (lab[:, :32] == 1).all() and (lab[:, 32:] == IGNORE).all()
    assert (img[:, :32] == 200).all() and (img[:, 40:] != 200).all()


def test_training_set_takes_image_labels_from_labels_json(trained: dict[str, Path]) -> None:
    folder = DatasetFolder(trained["data"])
    data = training_set(folder, folder.ids, 96)
    assert data.images.shape == (12, 96, 96, 3)
    k = folder.ids.index("1_00003")
    assert data.multi_hot()[k].sum() == 0 and data.instances[k].max() == 0 and data.instance_classes[k] == ()
    for n, image_id in enumerate(folder.ids):
        names = {CLASSES[c] for c in np.flatnonzero(data.multi_hot()[n])}
        assert names == set(folder.weak_labels(image_id).image_labels)


def test_chain_writes_validated_repositories(trained: dict[str, Path]) -> None:
    for name in ("cam_classifier", "sam_encoder", "sam_decoder", "deeplab"):
        assert (trained["repo"] / name / "1" / "model.onnx").is_file()
    assert checkpoints.provenance(trained["repo"], "sam_encoder")["datasets"] == ["other", "synthetic:4"]  # type: ignore[index]
    assert checkpoints.provenance(trained["repo"], "deeplab")["labels"].endswith("masks")  # type: ignore[index]
    assert checkpoints.provenance(trained["repo_gt"], "deeplab")["labels"] == "ground truth"  # type: ignore[index]
    assert checkpoints.load(trained["tmp"] / "cls.pt")["classes"] == list(CLASSES)


def test_pseudo_labels_cover_the_split(trained: dict[str, Path]) -> None:
    out = trained["tmp"] / "pseudo"
    summary = json.loads((out / "pseudo_labels.json").read_text())
    assert summary["images"] == 8 and set(summary["per_image"]) == {f"1_0000{i}" for i in range(8)}
    for image_id, info in summary["per_image"].items():
        label_map = np.asarray(Image.open(out / "masks" / f"{image_id}.png"))
        assert label_map.shape == (160, 224)
        assert set(np.unique(label_map).tolist()) <= set(range(len(CLASSES) + 1)) | {IGNORE}
        assert (out / "overlays" / f"{image_id}.png").is_file()
        assert 0.0 <= info["miou_vs_ground_truth"] <= 1.0
    empty = np.asarray(Image.open(out / "masks" / "1_00003.png"))
    assert (empty == 0).all() and "classes" not in summary["per_image"]["1_00003"]


def test_evaluate_report_has_every_method(tmp_path: Path, trained: dict[str, Path]) -> None:
    out = tmp_path / "report.json"
    rc = training_main(["evaluate", "--data", str(trained["data"]), "--ids", EVAL, "--model-repo", str(trained["repo"]),
                        "--deeplab", f"deeplab_gt={trained['repo_gt']}", "--out", str(out), "--overlays", "2"])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["dataset"] == "data"
    assert set(report["methods"]) == {"cam_threshold", "cam_crf", "cam_rw", "s2c", "s2c_crf", "s2c_no_labels", "boxes", "points", "scribbles",
                                      "deeplab", "deeplab_gt"}
    assert report["methods"]["cam_rw"]["random_walk"] == [64.0, 8]  # the walk it ran with
    for m in report["methods"].values():
        assert set(m) >= {"miou", "per_class", "pixel_acc", "images"}
        assert m["images"] == 4 and 0.0 <= m["miou"] <= 1.0 and 0.0 <= m["pixel_acc"] <= 1.0
        assert set(m["per_class"]) <= {"background", *CLASSES}
    md = out.with_suffix(".md").read_text()
    assert "| s2c_crf |" in md and "| deeplab_gt |" in md
    shown = sorted(p.name for p in (tmp_path / "report_overlays").iterdir() if p.is_dir())
    assert shown == report["overlays"]["images"] == sorted(overlay_ids(DatasetFolder(trained["data"]), DatasetFolder(trained["data"]).select(EVAL), 2))
    assert (tmp_path / "report_overlays" / shown[0] / "ground_truth.png").is_file()
    assert (tmp_path / "report_overlays" / shown[0] / "scribbles.png").is_file()
    assert (tmp_path / "report_overlays" / "legend.png").is_file()
    assert set(report["overlays"]["colours"]) == {"background (uncoloured)", *CLASSES, "255: not confident / ignore"}


def test_overlay_images_are_spread_over_the_classes(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    training_main(["generate", "--out", str(root), "--count", "2", "--height", "32", "--width", "32"])
    for i in range(2, 8):
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "images" / f"x{i}.png")
    labels = {"1_00000": {"image_labels": [CLASSES[0]]}, "1_00001": {"image_labels": [CLASSES[0]]}, "x2": {"image_labels": [CLASSES[0]]},
              "x3": {"image_labels": [CLASSES[2]]}, "x4": {"image_labels": [CLASSES[3], CLASSES[0]]}, "x5": {"image_labels": []}}
    (root / "labels.json").write_text(json.dumps(labels))
    folder = DatasetFolder(root)
    chosen = overlay_ids(folder, folder.ids, 4)
    assert chosen == ["1_00000", "x3", "x4", "1_00001"]  # classes 0, 2, 3 first, then the next of class 0
    assert overlay_ids(folder, folder.ids, 8)[-3:] == ["x5", "x6", "x7"]  # untagged last


def test_cam_crf_without_background_class_never_predicts_background() -> None:
    from service.pipeline.cam import CamResult
    from training.cam_labels import CamLabels

    class _Cams(CamLabels):
        def _cams(self, key: str, image: np.ndarray) -> CamResult:  # type: ignore[type-arg]
            return CamResult(np.zeros(4, np.float32), np.zeros((4, 24, 24), np.float32), None)  # nothing fires anywhere

    class _Seg:
        classes = CLASSES

    image, tags = np.zeros((24, 24, 3), np.uint8), (CLASSES[1], CLASSES[2])
    pred = _Cams(_Seg(), background=False).crf("a", image, tags)  # type: ignore[arg-type]
    assert set(np.unique(pred).tolist()) <= {2, 3}
    assert set(np.unique(_Cams(_Seg(), background=True).crf("a", image, tags)).tolist()) <= {0, 2, 3}


def test_the_cam_crfs_use_the_appearance_kernel_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    import training.cam_labels as cam_labels
    from service.pipeline.cam import CamResult

    seen: list[dict[str, float]] = []

    def crf(image: np.ndarray, probs: np.ndarray, **kw: float) -> np.ndarray:  # type: ignore[type-arg]
        seen.append(kw)
        return np.zeros(image.shape[:2], np.uint8)

    monkeypatch.setattr(cam_labels, "dense_crf", crf)

    class _Cams(cam_labels.CamLabels):
        def _cams(self, key: str, image: np.ndarray) -> CamResult:  # type: ignore[type-arg]
            return CamResult(np.zeros(4, np.float32), np.ones((4, 8, 8), np.float32), None)

    class _Seg:
        classes = CLASSES

    image = np.zeros((8, 8, 3), np.uint8)
    _Cams(_Seg(), background=True).crf("a", image, (CLASSES[0],))  # type: ignore[arg-type]
    _Cams(_Seg(), background=True, crf_appearance=(10.0, 13.0)).crf("a", image, (CLASSES[0],))  # type: ignore[arg-type]
    assert cam_labels.CRF_APPEARANCE == (5.0, 8.0)
    assert seen == [{"appearance_compat": 5.0, "appearance_srgb": 8.0}, {"appearance_compat": 10.0, "appearance_srgb": 13.0}]


@pytest.mark.parametrize(("option", "source", "bads", "value", "recorded", "kwargs", "method"), [
    ("--cam-crf", "cam_crf", ("5", "5,x", "0,8", "5,-1"), "1,20", [1.0, 20.0], {"crf_appearance": (1.0, 20.0)}, "crf"),
    ("--random-walk", "cam_rw", ("8", "8,x", "8,1.5", "0,4", "8,0", "-2,3"), "2,1", [2.0, 1], {"random_walk": (2.0, 1)}, "rw_threshold"),
])
def test_pseudo_label_cam_options(option: str, source: str, bads: tuple[str, ...], value: str, recorded: list[float],
                                  kwargs: dict[str, object], method: str, tmp_path: Path, trained: dict[str, Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from training.cam_labels import CamLabels
    from training.toolkit import _load_pipeline

    args = ["pseudo-label", "--data", str(trained["data"]), "--ids", TRAIN, "--model-repo", str(trained["repo"]), "--source", source]
    for bad in bads:
        assert training_main([*args, f"{option}={bad}", "--out", str(tmp_path / "bad")]) == 2
        assert option in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    out = tmp_path / "weak"
    assert training_main([*args, option, value, "--out", str(out)]) == 0
    assert json.loads((out / "pseudo_labels.json").read_text())[option[2:].replace("-", "_")] == recorded
    folder = DatasetFolder(trained["data"])
    segmenter, _ = _load_pipeline(trained["repo"], folder, 0.0)
    cams, default = CamLabels(segmenter, background=True, **kwargs), CamLabels(segmenter, background=True)  # type: ignore[arg-type]
    differs = False
    for image_id in folder.select(TRAIN):
        image, tags = folder.image(image_id), folder.weak_labels(image_id).image_labels
        got = np.asarray(Image.open(out / "masks" / f"{image_id}.png"))
        np.testing.assert_array_equal(got, getattr(cams, method)(image_id, image, tags))
        differs |= not np.array_equal(got, getattr(default, method)(image_id, image, tags))
    assert differs  # the setting reached the labels


def test_pseudo_label_offers_exactly_the_sources_it_knows() -> None:
    # the CLI keeps its own list (importing training.pseudo_label at start-up is slow): it must not drift
    import argparse

    from training import toolkit
    from training.pseudo_label import SOURCES

    sub = argparse.ArgumentParser().add_subparsers()
    toolkit.register(sub)
    source = next(a for a in sub.choices["pseudo-label"]._actions if a.dest == "source")
    assert tuple(source.choices) == SOURCES


def test_the_random_walk_needs_the_classifiers_features_at_scale_1(tmp_path: Path, trained: dict[str, Path]) -> None:
    from dataclasses import replace

    from training.cam_labels import CamLabels
    from training.evaluate_data import methods_for
    from training.pseudo_label import pseudo_label
    from training.toolkit import _load_pipeline

    folder = DatasetFolder(trained["data"])
    segmenter, _ = _load_pipeline(trained["repo"], folder, 0.0)
    assert "cam_rw" in methods_for(segmenter, {}, CamLabels(segmenter, background=True), folder.classes)
    segmenter.config = replace(segmenter.config, cam_scales=(0.5, 1.5))  # no scale-1 run: no features to walk over
    assert "cam_rw" not in methods_for(segmenter, {}, CamLabels(segmenter, background=True), folder.classes)
    with pytest.raises(DatasetError, match=r"lack 1\.0"):
        pseudo_label(segmenter, folder, folder.select(TRAIN), tmp_path / "p", source="cam_rw")
    assert not (tmp_path / "p").exists()


def test_pseudo_labels_from_the_cams_equal_evaluates_cam_methods(tmp_path: Path, trained: dict[str, Path]) -> None:
    from training.cam_labels import CamLabels
    from training.toolkit import _load_pipeline

    folder = DatasetFolder(trained["data"])
    segmenter, _ = _load_pipeline(trained["repo"], folder, 0.0)
    cams = CamLabels(segmenter, background=True)
    for source, make in (("cam_threshold", cams.threshold), ("cam_crf", cams.crf), ("cam_rw", cams.rw_threshold)):
        out = tmp_path / source
        assert training_main(["pseudo-label", "--data", str(trained["data"]), "--ids", TRAIN, "--model-repo", str(trained["repo"]),
                              "--source", source, "--out", str(out)]) == 0
        summary = json.loads((out / "pseudo_labels.json").read_text())
        assert summary["source"] == source and summary["images"] == 8
        assert ("random_walk" in summary) == (source == "cam_rw") and ("cam_crf" in summary) == (source == "cam_crf")
        for image_id in folder.select(TRAIN):
            tags = folder.weak_labels(image_id).image_labels
            expected = make(image_id, folder.image(image_id), tags)
            got = np.asarray(Image.open(out / "masks" / f"{image_id}.png"))
            np.testing.assert_array_equal(got, expected)
            assert summary["per_image"][image_id]["source"] == source
        assert not np.asarray(Image.open(out / "masks" / "1_00003.png")).any()  # labelled as holding no class
    out = tmp_path / "consensus"  # where the pipeline (the fixture's pseudo-labels) and CAM + CRF agree; elsewhere ignored
    assert training_main(["pseudo-label", "--data", str(trained["data"]), "--ids", TRAIN, "--model-repo", str(trained["repo"]),
                          "--source", "consensus", "--out", str(out)]) == 0
    summary = json.loads((out / "pseudo_labels.json").read_text())
    ignored = []
    for image_id in folder.select(TRAIN):
        pipeline = np.asarray(Image.open(trained["tmp"] / "pseudo" / "masks" / f"{image_id}.png"))
        crf = np.asarray(Image.open(tmp_path / "cam_crf" / "masks" / f"{image_id}.png"))
        got = np.asarray(Image.open(out / "masks" / f"{image_id}.png"))
        np.testing.assert_array_equal(got, np.where(pipeline == crf, pipeline, IGNORE))
        assert summary["per_image"][image_id]["labelled_fraction"] == pytest.approx(float(np.mean(got != IGNORE)), abs=1e-4)
        ignored.append(float(np.mean(got == IGNORE)))
    assert 0.0 < np.mean(ignored) < 1.0  # the two methods agree somewhere and disagree somewhere
    filled = tmp_path / "filled"  # no background class: every pixel takes a tagged class
    assert training_main(["pseudo-label", "--data", str(trained["data"]), "--ids", "1_0000[0-2]", "--model-repo", str(trained["repo"]),
                          "--source", "cam_threshold", "--background", "no", "--out", str(filled)]) == 0
    for image_id in ("1_00000", "1_00001", "1_00002"):
        tagged = {CLASSES.index(n) + 1 for n in folder.weak_labels(image_id).image_labels}
        assert set(np.unique(np.asarray(Image.open(filled / "masks" / f"{image_id}.png"))).tolist()) <= tagged


@pytest.fixture(scope="module")
def saliency_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-class (salient object) DeepLab, untrained: the source's plumbing, not its quality."""
    from training.export import export_deeplab
    from training.nets import DeepLab

    torch.manual_seed(3)
    repo = tmp_path_factory.mktemp("saliency")
    export_deeplab(DeepLab(1).eval(), ["object"], repo, input_side=128)
    return repo


def test_pseudo_labels_from_cams_and_saliency_equal_evaluates_method(tmp_path: Path, trained: dict[str, Path], saliency_repo: Path) -> None:
    from training.cam_labels import CamLabels
    from training.saliency import SaliencyModel
    from training.toolkit import _load_pipeline

    folder = DatasetFolder(trained["data"])
    out = tmp_path / "sal"
    assert training_main(["pseudo-label", "--data", str(trained["data"]), "--ids", TRAIN, "--model-repo", str(trained["repo"]),
                          "--source", "cam_saliency", "--saliency", str(saliency_repo), "--out", str(out)]) == 0
    summary = json.loads((out / "pseudo_labels.json").read_text())
    assert summary["source"] == "cam_saliency" and summary["images"] == 8
    assert set(summary["objectness"]) <= set(CLASSES) and all(0.0 <= v <= 1.0 for v in summary["objectness"].values())
    segmenter, _ = _load_pipeline(trained["repo"], folder, 0.0)
    cams = CamLabels(segmenter, background=True, saliency=SaliencyModel(saliency_repo))
    ids = folder.select(TRAIN)
    assert cams.measure_objectness(folder, ids) == summary["objectness"]
    rw = tmp_path / "rw_sal"
    assert training_main(["pseudo-label", "--data", str(trained["data"]), "--ids", TRAIN, "--model-repo", str(trained["repo"]),
                          "--source", "cam_rw_saliency", "--saliency", str(saliency_repo), "--out", str(rw)]) == 0
    rw_summary = json.loads((rw / "pseudo_labels.json").read_text())
    assert rw_summary["objectness"] == summary["objectness"]  # objects are decided on the plain CAMs
    assert rw_summary["random_walk"] == [64.0, 8] and rw_summary["cam_crf"] == [5.0, 8.0]
    for image_id in ids:
        tags = folder.weak_labels(image_id).image_labels
        np.testing.assert_array_equal(np.asarray(Image.open(rw / "masks" / f"{image_id}.png")),
                                      cams.rw_saliency_crf(image_id, folder.image(image_id), tags))
        got = np.asarray(Image.open(out / "masks" / f"{image_id}.png"))
        np.testing.assert_array_equal(got, cams.saliency_crf(image_id, folder.image(image_id), tags))
        assert set(np.unique(got).tolist()) <= {0} | {CLASSES.index(n) + 1 for n in tags}
        assert summary["per_image"][image_id]["empty_cam_classes"] == cams.empty_cams and set(cams.empty_cams) <= set(tags)
    assert summary["images_with_empty_cams"] == sum(bool(i["empty_cam_classes"]) for i in summary["per_image"].values())
    report = tmp_path / "report.json"
    assert training_main(["evaluate", "--data", str(trained["data"]), "--ids", EVAL, "--model-repo", str(trained["repo"]),
                          "--saliency", str(saliency_repo), "--methods", "cam_crf,cam_saliency,cam_rw_saliency", "--overlays", "0",
                          "--out", str(report)]) == 0
    methods = json.loads(report.read_text())["methods"]
    assert set(methods) == {"cam_crf", "cam_saliency", "cam_rw_saliency"}
    assert methods["cam_crf"]["cam_crf"] == methods["cam_saliency"]["cam_crf"] == methods["cam_rw_saliency"]["cam_crf"] == [5.0, 8.0]
    assert methods["cam_rw_saliency"]["random_walk"] == [64.0, 8] and "random_walk" not in methods["cam_saliency"]


def test_evaluate_measures_objectness_only_when_cam_saliency_is_scored(tmp_path: Path, trained: dict[str, Path], saliency_repo: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    args = ["evaluate", "--data", str(trained["data"]), "--ids", EVAL, "--model-repo", str(trained["repo"]), "--saliency", str(saliency_repo),
            "--overlays", "0"]
    assert training_main([*args, "--methods", "cam_crf", "--out", str(tmp_path / "a.json")]) == 0
    assert "objectness:" not in capsys.readouterr().out  # no pass over the images for a method not scored
    assert set(json.loads((tmp_path / "a.json").read_text())["methods"]) == {"cam_crf"}
    assert training_main([*args, "--methods", "cam_saliency", "--out", str(tmp_path / "b.json")]) == 0
    assert "objectness:" in capsys.readouterr().out
    assert set(json.loads((tmp_path / "b.json").read_text())["methods"]) == {"cam_saliency"}


def test_cam_saliency_refuses_a_missing_or_wrong_saliency_model(tmp_path: Path, trained: dict[str, Path], saliency_repo: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    args = ["pseudo-label", "--data", str(trained["data"]), "--ids", TRAIN, "--model-repo", str(trained["repo"]), "--out", str(tmp_path / "p")]
    for source in ("cam_saliency", "cam_rw_saliency"):
        assert training_main([*args, "--source", source]) == 2
        assert "--source cam_saliency/cam_rw_saliency needs --saliency REPO" in capsys.readouterr().err
    for source in ("cam_crf", "cam_rw"):
        assert training_main([*args, "--source", source, "--saliency", str(saliency_repo)]) == 2
        assert "--saliency only applies to them" in capsys.readouterr().err
    assert training_main([*args, "--source", "cam_saliency", "--saliency", str(trained["repo_gt"])]) == 2
    assert "a saliency model has one class" in capsys.readouterr().err
    assert training_main([*args, "--source", "cam_saliency", "--saliency", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_pseudo_labels_from_the_cams_refuse_what_they_cannot_use(tmp_path: Path, trained: dict[str, Path],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    args = ["pseudo-label", "--data", str(trained["data"]), "--ids", TRAIN, "--model-repo", str(trained["repo"]), "--out", str(tmp_path / "p")]
    assert training_main([*args, "--source", "cam_crf", "--refinement", "crf"]) == 2
    assert "does not apply to --source cam_crf" in capsys.readouterr().err
    for source, option in (("cam_threshold", "--cam-crf=5,8"), ("pipeline", "--cam-crf=5,8"), ("cam_crf", "--random-walk=64,8"),
                           ("cam_saliency", "--random-walk=64,8")):  # an option the source would not use is refused, not ignored
        assert training_main([*args, "--source", source, option]) == 2
        assert f"{option.split('=')[0]} applies to --source" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
    boxes_only = tmp_path / "boxes"
    training_main(["generate", "--out", str(boxes_only), "--count", "2", "--height", "64", "--width", "64"])
    (boxes_only / "labels.json").write_text(json.dumps({"1_00000": {"boxes": [{"label": CLASSES[0], "x0": 2, "y0": 2, "x1": 30, "y1": 30}]},
                                                        "1_00001": {"image_labels": [CLASSES[1]]}}))
    rc = training_main(["pseudo-label", "--data", str(boxes_only), "--model-repo", str(trained["repo"]), "--out", str(tmp_path / "q"),
                        "--source", "cam_threshold"])
    assert rc == 2 and "1_00000 (and 0 more) has other labels only" in capsys.readouterr().err
    assert not (tmp_path / "q" / "masks").exists()


def test_evaluate_refuses_a_promptable_model_trained_on_the_evaluated_masks(tmp_path: Path, trained: dict[str, Path],
                                                                             capsys: pytest.CaptureFixture[str]) -> None:
    rc = training_main(["evaluate", "--data", str(trained["other"]), "--model-repo", str(trained["repo"]), "--out", str(tmp_path / "r.json")])
    assert rc == 2
    assert "was trained on the masks of 'other'" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_commands_refuse_bad_input_with_one_line(tmp_path: Path, trained: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    other_classes = tmp_path / "ds"
    (other_classes / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(other_classes / "images" / "a.png")
    (other_classes / "labels.txt").write_text("cow\n")
    rc = training_main(["pseudo-label", "--data", str(other_classes), "--model-repo", str(trained["repo"]), "--out", str(tmp_path / "p")])
    assert rc == 2 and "labels.txt lists ['cow']" in capsys.readouterr().err
    rc = training_main(["evaluate", "--data", str(other_classes), "--model-repo", str(trained["repo"]), "--out", str(tmp_path / "r.json")])
    assert rc == 2 and "has no masks/" in capsys.readouterr().err
    rc = training_main(["train-classifier", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "c.pt")])
    assert rc == 2 and "no images/ folder" in capsys.readouterr().err
    rc = training_main(["evaluate", "--data", str(trained["data"]), "--model-repo", str(trained["repo"]), "--out", str(tmp_path / "r.json"),
                        "--methods", "s2c,magic"])
    assert rc == 2 and "unknown method(s) ['magic']" in capsys.readouterr().err


def test_fill_unlabelled_takes_the_nearest_class() -> None:
    m = np.array([[1, 0, 0, 2], [255, 0, 0, 2]], np.uint8)
    np.testing.assert_array_equal(fill_unlabelled(m, 9), [[1, 1, 2, 2], [1, 1, 2, 2]])
    np.testing.assert_array_equal(fill_unlabelled(np.zeros((2, 2), np.uint8), 3), np.full((2, 2), 3))


def test_balanced_weights_draw_every_class_and_no_class_equally() -> None:
    from training.train_classifier import balanced_weights

    targets = np.zeros((10, 2), np.float32)
    targets[:2, 0] = 1  # 2 images of class 0, 1 of class 1 (also class 0), 7 of neither
    targets[1, 1] = 1
    w = balanced_weights(targets)
    assert w.sum() == pytest.approx(1.0)
    assert w[1] > w[0] > w[2]  # the only class-1 image is drawn most; the 7 empty ones share one group's share
    assert w[2:].sum() == pytest.approx(w[1])


def test_train_classifier_starts_from_a_pretrained_backbone(trained: dict[str, Path], tmp_path: Path) -> None:
    rc = training_main(["train-classifier", "--data", str(trained["data"]), "--ids", TRAIN, "--steps", "0", "--size", "64",
                        "--init", str(trained["tmp"] / "cls.pt"), "--out", str(tmp_path / "c.pt")])
    assert rc == 0
    before = checkpoints.load(trained["tmp"] / "cls.pt")["state"]["net"]
    after = checkpoints.load(tmp_path / "c.pt")
    assert after["provenance"]["init"] == str(trained["tmp"] / "cls.pt") and after["provenance"]["balanced"]
    for k, v in before.items():  # same classes: the class layer is kept too (S2C goes on from the BCE classifier)
        assert torch.equal(v, after["state"]["net"][k]), k
    assert after["provenance"]["init_class_layer"]


def test_train_deeplab_balanced_runs_and_records_it(trained: dict[str, Path], tmp_path: Path) -> None:
    rc = training_main(["train-deeplab", "--data", str(trained["data"]), "--ids", TRAIN, "--steps", "2", "--size", "96", "--balance",
                        "--out", str(tmp_path / "d.pt")])
    assert rc == 0
    assert checkpoints.load(tmp_path / "d.pt")["provenance"]["balanced"] is True


def test_an_exported_deeplab_declares_the_side_it_was_trained_at(trained: dict[str, Path], tmp_path: Path) -> None:
    """train-deeplab letterboxes to --size: the export tells the service (config ``input_side``)."""
    from service.runtime import ModelRepository

    assert ModelRepository(trained["repo"]).get("deeplab").input_side == 128
    assert ModelRepository(trained["repo_gt"]).get("deeplab").input_side == 128


def test_evaluate_defaults_scores_the_served_models(tmp_path: Path) -> None:
    from tests.conftest import DEFAULT_REPO

    out = tmp_path / "recheck.json"
    assert training_main(["evaluate-defaults", "--repo", str(DEFAULT_REPO), "--n", "3", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report) == {"cam_threshold", "s2c_image_labels", "s2c_no_labels", "deeplab"}
    for scores in report.values():
        assert scores["images"] == 3 and 0.0 <= scores["miou"] <= 1.0 and scores["seconds_per_image"] > 0


def test_train_classifier_with_s2c_losses_caches_se_maps(tmp_path: Path, trained: dict[str, Path]) -> None:
    args = ["train-classifier", "--data", str(trained["data"]), "--ids", TRAIN, "--steps", "4", "--size", "96", "--threads", "2",
            "--s2c", str(trained["repo"]), "--se-cache", str(tmp_path / "se"), "--cpm-warmup", "1", "--cpm-refresh", "2"]
    assert training_main([*args, "--out", str(tmp_path / "a.pt")]) == 0
    (cached,) = (tmp_path / "se").glob("se_*.npz")
    se = np.load(cached)["se"]
    assert se.shape == (8, 96, 96) and se[3].max() == 0  # 1_00003 holds no class: no SE map
    stamp = cached.stat().st_mtime_ns
    assert training_main([*args, "--out", str(tmp_path / "b.pt"), "--s2c-losses", "ssc", "--color-jitter", "0.3"]) == 0
    assert cached.stat().st_mtime_ns == stamp  # read back, not recomputed
    prov = checkpoints.load(tmp_path / "a.pt")["provenance"]
    assert prov["s2c"]["losses"] == ["cpm", "ssc"] and prov["s2c"]["promptable_trained_on"] and prov["color_jitter"] == 0.0
    assert checkpoints.load(tmp_path / "b.pt")["provenance"]["color_jitter"] == 0.3


def test_train_classifier_refuses_a_colour_jitter_outside_0_to_1(tmp_path: Path, trained: dict[str, Path],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train-classifier", "--data", str(trained["data"]), "--ids", TRAIN, "--steps", "2", "--size", "64", "--out", str(tmp_path / "c.pt")]
    for bad in ("1", "-0.1", "nan"):
        assert training_main([*args, "--color-jitter", bad]) == 2
        assert f"--color-jitter takes a strength from 0 (none) up to, not including, 1, not {float(bad)}" in capsys.readouterr().err
    assert not (tmp_path / "c.pt").exists()


def test_s2c_refuses_a_promptable_model_trained_on_the_same_masks(tmp_path: Path, trained: dict[str, Path],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rc = training_main(["train-classifier", "--data", str(trained["other"]), "--steps", "2", "--size", "64", "--s2c", str(trained["repo"]),
                        "--out", str(tmp_path / "c.pt")])
    assert rc == 2 and "must never be trained on masks" in capsys.readouterr().err
    rc = training_main(["train-classifier", "--data", str(trained["data"]), "--steps", "2", "--size", "64", "--s2c", str(trained["repo"]),
                        "--s2c-losses", "ssc,foo", "--out", str(tmp_path / "d.pt")])
    assert rc == 2


def test_evaluate_promptable_scores_boxes_and_clicks(tmp_path: Path, trained: dict[str, Path]) -> None:
    out = tmp_path / "p.json"
    assert training_main(["evaluate-promptable", "--data", str(trained["data"]), "--ids", EVAL, "--model-repo", str(trained["repo"]),
                          "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["methods"]) == {"box", "click", "box_index3", "click_index3"}
    assert report["split"]["images"] == 4 and report["split"]["objects"] > 0
    for m in report["methods"].values():
        assert set(m["per_class"]) <= {"background", "object"} and 0.0 <= m["miou"] <= 1.0
    assert report["promptable_trained_on"]
    assert training_main(["evaluate-promptable", "--data", str(trained["other"]), "--model-repo", str(trained["repo"]), "--out", str(out)]) == 2


def test_classifier_can_start_from_a_deeplab_backbone(trained: dict[str, Path]) -> None:
    ckpt = checkpoints.load(trained["tmp"] / "dl_gt.pt")
    net = checkpoints.classifier_from(ckpt)
    backbone = {k.removeprefix("backbone."): v for k, v in ckpt["state"]["net"].items() if k.startswith("backbone.")}
    for k, v in net.backbone.state_dict().items():
        assert torch.equal(v, backbone[k])
    with pytest.raises(ValueError, match="no classifier backbone"):
        checkpoints.classifier_from(checkpoints.load(trained["tmp"] / "prm.pt"))


def test_next_version_brings_older_exports_to_the_new_contract(tmp_path: Path, trained: dict[str, Path]) -> None:
    """A repository exported before the uint8-pixel contract: ``--next-version`` writes the new
    config and upgrades the older versions with it, so a rollback to them still loads, with the
    same labels as before."""
    import shutil

    from service.models.deeplab import DeepLab
    from service.runtime import ModelRepository
    from service.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from training.export import _export, write_config
    from training.nets import DeepLab as DeepLabNet
    from training.synthetic import HELD_OUT_SEED, generate

    ckpt = checkpoints.load(trained["tmp"] / "dl_gt.pt")
    net = DeepLabNet(len(ckpt["classes"]))
    net.load_state_dict(ckpt["state"]["net"])
    repo = tmp_path / "old"
    _export(net.eval(), (torch.zeros(1, 3, 64, 64),), repo / "deeplab" / "1" / "model.onnx", ["image"], ["logits"],
            {"image": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n", 2: "h", 3: "w"}})
    (repo / "deeplab" / "labels.txt").write_text("\n".join(ckpt["classes"]) + "\n")
    write_config(repo / "deeplab", "deeplab", 8, [("image", [3, -1, -1], "")],
                 [("logits", [len(ckpt["classes"]) + 1, -1, -1], 'label_filename: "labels.txt"')], batching=True)

    def deeplab() -> DeepLab:
        backend = OnnxRuntimeBackend(ModelRepository(repo), "CPUExecutionProvider")
        backend.load(["deeplab"])
        return DeepLab(backend)

    image = generate(HELD_OUT_SEED, 2, 96, 128).image
    before = deeplab()
    assert not before.uint8_input
    labels = before.predict(image).label_map
    assert training_main(["export", "--checkpoint", str(trained["tmp"] / "dl_gt.pt"), "--repo", str(repo), "--next-version"]) == 0
    shutil.rmtree(repo / "deeplab" / "2")  # roll back
    after = deeplab()
    assert after.uint8_input and after.version == "1"
    np.testing.assert_array_equal(after.predict(image).label_map, labels)


def test_export_next_version_into_a_live_repository(tmp_path: Path, trained: dict[str, Path]) -> None:
    """``export --next-version`` adds the models as version max + 1 (the highest is then served)
    and leaves no staging folder behind; the live repository's fingerprint ignores staging."""
    import shutil

    from service.runtime import ModelRepository
    from service.runtime.model_repo import repository_fingerprints

    repo = tmp_path / "live"
    shutil.copytree(trained["repo_gt"], repo)
    before = repository_fingerprints(repo)
    (repo / "deeplab" / ".staging-x").mkdir()
    (repo / "deeplab" / ".staging-x" / "model.onnx").write_bytes(b"half written")
    assert repository_fingerprints(repo) == before
    shutil.rmtree(repo / "deeplab" / ".staging-x")
    for expected in (2, 3):
        assert training_main(["export", "--checkpoint", str(trained["tmp"] / "dl_gt.pt"), "--repo", str(repo), "--next-version"]) == 0
        assert ModelRepository(repo).get("deeplab").version == str(expected)
    assert sorted(p.name for p in (repo / "deeplab").iterdir()) == ["1", "2", "3", "config.pbtxt", "labels.txt", "training.json"]
    assert not [p for p in repo.iterdir() if p.name.startswith(".")]
    assert repository_fingerprints(repo)["deeplab"] != before["deeplab"]
    assert training_main(["export", "--checkpoint", str(trained["tmp"] / "dl_gt.pt"), "--repo", str(repo), "--next-version", "--model-set", "tile_b"]) == 0
    config = ModelRepository(repo).get("tile_b.deeplab")
    assert config.version == "1" and (repo / "tile_b.deeplab" / "config.pbtxt").read_text().startswith('name: "tile_b.deeplab"')
    assert training_main(["export", "--checkpoint", str(trained["tmp"] / "dl_gt.pt"), "--repo", str(repo), "--model-set", "../x"]) == 2
    assert not (repo.parent / "x.deeplab").exists()


def test_deeplab_class_weights_are_capped() -> None:
    from training.train_deeplab import class_weights

    masks = np.zeros((2, 100, 100), np.uint8)
    masks[0, :10, :10] = 1  # 100 pixels of class 1 against 13,900 background: sqrt(139) = 11.8
    masks[1, :50, :] = 2  # 5,000 pixels: sqrt(13,900 / 5,000) = 1.67
    masks[1, 50:60, :] = 255  # not counted
    w = class_weights(masks, 3)
    np.testing.assert_allclose(w, [1.0, 10.0, np.sqrt(13900 / 5000), 10.0], rtol=1e-6)  # class 3 absent: the cap
    np.testing.assert_allclose(class_weights(masks, 3, cap=3.0), [1.0, 3.0, np.sqrt(13900 / 5000), 3.0], rtol=1e-6)
    np.testing.assert_allclose(class_weights(masks, 3, cap=0.5), [1.0, 1.0, 1.0, 1.0])


def test_deeplab_batches_keep_up_and_down_without_vflip_and_resize_scaled_windows() -> None:
    from training.train_deeplab import training_batch

    masks = np.zeros((3, 64, 64), np.uint8)
    masks[:, :32] = 1  # "sky" above "grass"
    masks[:, 32:] = 2
    masks[:, 30:34, :8] = 255
    images = np.repeat(masks[..., None], 3, axis=3) * 50
    rng = np.random.default_rng(0)
    idx = np.arange(3)
    for _ in range(20):  # horizontal flips only: class 1 is never below class 2 in any column
        _, y = training_batch(images, masks, idx, rng, 32, vflip=False)
        rows = y.numpy()
        assert y.shape == (3, 32, 32)
        for b in range(3):
            top = np.where((rows[b] == 2).any(1))[0]
            bottom = np.where((rows[b] == 1).any(1))[0]
            assert not len(top) or not len(bottom) or bottom.max() < top.min()
    flipped = [training_batch(images, masks, idx, rng, 32)[1].numpy() for _ in range(20)]
    assert any((f[0, 0] == 2).all() and (f[0, -1] == 1).all() for f in flipped)  # with vflip: upside down sometimes
    x, y = training_batch(images, masks, idx, rng, 32, vflip=False, scales=(0.5,))  # 64 px windows resized to 32
    assert x.shape == (3, 3, 32, 32) and y.shape == (3, 32, 32) and y.dtype == torch.int64
    assert (y[:, :15] == 1).all() and (y[:, 17:] == 2).all()  # the whole image, halved: the boundary at row 16
    assert set(np.unique(y.numpy())) == {1, 2, 255}
    p_x, p_y = training_batch(images, masks, idx, np.random.default_rng(5), 64, vflip=False)  # the whole 64 px image
    j_x, j_y = training_batch(images, masks, idx, np.random.default_rng(5), 64, vflip=False, color_jitter=0.3)
    if not torch.equal(j_y, p_y):  # the jitter's draws come before the flip's
        j_x, j_y = j_x.flip(3), j_y.flip(2)
    assert torch.equal(j_y, p_y) and not torch.allclose(j_x, p_x)  # the same labels, other colours


def test_train_deeplab_rejects_bad_augmentation_and_records_it(trained: dict[str, Path], tmp_path: Path) -> None:
    args = ["train-deeplab", "--data", str(trained["data"]), "--ids", TRAIN, "--steps", "2", "--size", "96"]
    for bad in ("0", "a,1", "", "1,-2"):
        assert training_main([*args, "--scales", bad, "--out", str(tmp_path / "bad.pt")]) == 2
    assert not (tmp_path / "bad.pt").exists()
    for bad in ("-0.1", "1", "2"):
        assert training_main([*args, "--color-jitter", bad, "--out", str(tmp_path / "bad.pt")]) == 2
    assert not (tmp_path / "bad.pt").exists()
    assert training_main([*args, "--no-vflip", "--scales", "0.75,1.25", "--color-jitter", "0.3", "--out", str(tmp_path / "d.pt")]) == 0
    prov = checkpoints.load(tmp_path / "d.pt")["provenance"]
    assert prov["vflip"] is False and prov["scales"] == [0.75, 1.25] and prov["color_jitter"] == 0.3


def test_a_deeplabs_test_time_augmentation_travels_from_training_to_its_config_and_evaluate(
    trained: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``train-deeplab --predict-scales/--predict-flip`` is recorded and exported into the config
    (``predict_scales`` / ``predict_flip``), where ``evaluate`` reads it as a server does (its
    report says what each DeepLab ran with); ``export`` replaces it; bad values are refused."""
    from service.runtime import ModelRepository

    args = ["train-deeplab", "--data", str(trained["data"]), "--ids", TRAIN, "--steps", "2", "--size", "96"]
    for bad in ("0", "1,x", "", "1,9"):
        assert training_main([*args, "--predict-scales", bad, "--out", str(tmp_path / "bad.pt")]) == 2
        assert "--predict-scales" in capsys.readouterr().err
    assert not (tmp_path / "bad.pt").exists()
    repo = tmp_path / "repo"
    assert training_main([*args, "--predict-scales", "0.75,1,1.25", "--predict-flip", "--out", str(tmp_path / "d.pt"), "--repo", str(repo)]) == 0
    prov = checkpoints.load(tmp_path / "d.pt")["provenance"]
    assert prov["predict_scales"] == [0.75, 1.0, 1.25] and prov["predict_flip"] is True
    config = ModelRepository(repo).get("deeplab")
    assert (config.predict_scales, config.predict_flip, config.input_side) == ((0.75, 1.0, 1.25), True, 96)
    assert json.loads((repo / "deeplab" / "training.json").read_text())["predict_scales"] == [0.75, 1.0, 1.25]
    assert training_main([*args, "--no-predict-flip", "--out", str(tmp_path / "n.pt"), "--repo", str(tmp_path / "n")]) == 0
    assert checkpoints.load(tmp_path / "n.pt")["provenance"]["predict_flip"] is False
    assert (ModelRepository(tmp_path / "n").get("deeplab").predict_flip, ModelRepository(tmp_path / "n").get("deeplab").predict_scales) == (False, None)

    out = tmp_path / "eval.json"
    plain = tmp_path / "plain"
    assert training_main(["export", "--checkpoint", str(trained["tmp"] / "dl_gt.pt"), "--repo", str(plain)]) == 0
    assert ModelRepository(plain).get("deeplab").predict_scales is None  # a checkpoint without it: no parameter, the server decides
    shutil.copytree(trained["repo"], tmp_path / "pipeline")
    shutil.rmtree(tmp_path / "pipeline" / "deeplab")
    run = ["evaluate", "--data", str(trained["data"]), "--ids", EVAL, "--model-repo", str(tmp_path / "pipeline"), "--overlays", "0",
           "--methods", "tta,plain", "--deeplab", f"tta={repo}", "--deeplab", f"plain={plain}", "--out", str(out)]
    assert training_main(run) == 0
    methods = json.loads(out.read_text())["methods"]
    assert (methods["tta"]["predict_scales"], methods["tta"]["predict_flip"]) == ([0.75, 1.0, 1.25], True)
    assert (methods["plain"]["predict_scales"], methods["plain"]["predict_flip"]) == ([1.0], False)
    assert training_main([*run, "--predict-scales", "1", "--no-predict-flip"]) == 0  # evaluate's options win, as the server's settings do
    methods = json.loads(out.read_text())["methods"]
    assert (methods["tta"]["predict_scales"], methods["tta"]["predict_flip"]) == ([1.0], False)

    assert training_main(["export", "--checkpoint", str(tmp_path / "d.pt"), "--repo", str(repo), "--predict-scales", "1,1.5",
                          "--no-predict-flip"]) == 0
    assert (ModelRepository(repo).get("deeplab").predict_scales, ModelRepository(repo).get("deeplab").predict_flip) == ((1.0, 1.5), False)
    assert json.loads((repo / "deeplab" / "training.json").read_text())["predict_flip"] is False
    assert training_main(["export", "--checkpoint", str(tmp_path / "d.pt"), "--repo", str(tmp_path / "x"), "--predict-scales", "0"]) == 2
    assert training_main(["export", "--checkpoint", str(trained["tmp"] / "cls.pt"), "--repo", str(tmp_path / "y"), "--predict-flip"]) == 2
    assert "test-time augmentation is a DeepLab's; this is a cam_classifier checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
