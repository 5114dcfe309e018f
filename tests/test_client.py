"""The command-line client against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from service.api.background import BackgroundServer
from service.client import main
from service.render import overlay
from training.synthetic import HELD_OUT_SEED, generate
from wsss.v1 import segmentation_pb2 as pb


def test_segment_one_image_writes_mask_overlay_and_json(server: BackgroundServer, tmp_path: Path) -> None:
    s = generate(HELD_OUT_SEED, 2)
    Image.fromarray(s.image).save(tmp_path / "part.png")
    Image.fromarray(s.mask).save(tmp_path / "part_gt.png")
    out = tmp_path / "out"
    code = main(["--address", server.address, "segment", str(tmp_path / "part.png"), "--labels", ",".join(s.labels),
                 "--gt", str(tmp_path / "part_gt.png"), "--out", str(out)])
    assert code == 0
    mask = np.asarray(Image.open(out / "part.mask.png"))
    assert mask.shape == s.mask.shape and set(np.unique(mask)) - {0, 255} <= set(np.unique(s.mask))
    ov = np.asarray(Image.open(out / "part.overlay.png"))
    assert (ov != s.image).any(axis=2)[mask > 0].all() and (ov == s.image)[mask == 0].all()
    info = json.loads((out / "part.json").read_text())
    assert info["labels_source"] == "LABELS_SOURCE_REQUEST" and "miou" in info["metrics"]
    assert "png" not in info["mask"]


def test_segment_folder_streams_with_per_item_errors(server: BackgroundServer, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(generate(HELD_OUT_SEED, i).image).save(src / f"{i}.png")
    (src / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    code = main(["--address", server.address, "segment", str(src), "--out", str(out)])
    assert code == 1
    assert sorted(p.name for p in out.glob("*.mask.png")) == ["0.mask.png", "1.mask.png", "2.mask.png"]


def test_examples_folder_with_its_gt_maps(server: BackgroundServer, tmp_path: Path) -> None:
    """``segment examples/ --gt examples/``: the *_gt.png label maps are not segmented as images,
    and each image finds its <stem>_gt.png as its ground truth."""
    from service.settings import REPO_ROOT

    examples = REPO_ROOT / "examples"
    out = tmp_path / "out"
    assert main(["--address", server.address, "segment", str(examples), "--gt", str(examples), "--out", str(out)]) == 0
    stems = sorted(p.stem for p in examples.glob("*.png") if not p.stem.endswith("_gt"))
    assert sorted(p.name for p in out.glob("*.mask.png")) == [f"{s}.mask.png" for s in stems]
    for stem in stems:
        assert "miou" in json.loads((out / f"{stem}.json").read_text())["metrics"], stem


def test_predict_and_models(server: BackgroundServer, tmp_path: Path, capsys: object) -> None:
    Image.fromarray(generate(HELD_OUT_SEED, 3).image).save(tmp_path / "x.png")
    assert main(["--address", server.address, "predict", str(tmp_path / "x.png"), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "x.mask.png").is_file() and (tmp_path / "o" / "x.overlay.png").is_file()
    assert main(["--address", server.address, "models"]) == 0
    assert "sam_decoder" in capsys.readouterr().out  # type: ignore[attr-defined]


def test_bad_address_is_reported(tmp_path: Path, capsys: object) -> None:
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "x.png")
    assert main(["--address", "127.0.0.1:1", "--timeout", "2", "segment", str(tmp_path / "x.png"), "--out", str(tmp_path)]) == 2
    assert "UNAVAILABLE" in capsys.readouterr().err  # type: ignore[attr-defined]


def test_overlay_colours_only_labelled_pixels() -> None:
    img = np.full((2, 2, 3), 100, np.uint8)
    lm = np.array([[0, 1], [255, 0]], np.uint8)
    ov = overlay(img, lm)
    assert (ov[0, 0] == 100).all() and (ov[0, 1] != 100).any() and (ov[1, 0] > 100).all()


def test_weak_label_flags(server: BackgroundServer, tmp_path: Path) -> None:
    s = generate(HELD_OUT_SEED, 2)
    Image.fromarray(s.image).save(tmp_path / "x.png")
    ys, xs = np.nonzero(s.mask > 0)
    label = s.labels[0]
    args = ["--address", server.address, "segment", str(tmp_path / "x.png"), "--out", str(tmp_path / "o"),
            "--box", f"{label}:{xs.min()},{ys.min()},{xs.max() + 1},{ys.max() + 1}",
            "--point", f"{label}:{xs[0]},{ys[0]}", "--point", f"{label}:1,1:neg",
            "--scribble", f"{label}:{xs[0]},{ys[0]};{xs[-1]},{ys[-1]}:2"]
    assert main(args) == 0
    info = json.loads((tmp_path / "o" / "x.json").read_text())
    (cls,) = info["classes"]
    assert [i["kind"] for i in cls["instances"]] == ["box"]  # clicks and scribble points inside the box go with it
    sources = {(p["source"], p.get("label", 0)) for p in cls["prompts"]}
    assert {("box", 2), ("box", 3), ("click", 1), ("scribble", 1)} <= sources


def test_bad_flag_is_a_usage_error(capsys: object) -> None:
    import pytest

    with pytest.raises(SystemExit):
        main(["segment", "x.png", "--box", "spot:1,2,3"])
    assert "needs 4 numbers, got 3" in capsys.readouterr().err  # type: ignore[attr-defined]


def test_everything_writes_coco_proposals_and_an_overlay(server: BackgroundServer, tmp_path: Path) -> None:
    from pycocotools import mask as coco_mask

    from service.client import _decode_rle

    Image.fromarray(generate(HELD_OUT_SEED, 2).image[:120, :100]).save(tmp_path / "x.png")
    assert main(["--address", server.address, "everything", str(tmp_path / "x.png"), "--points-per-side", "4", "--pred-iou-thresh", "0",
                 "--stability-score-thresh", "0", "--out", str(tmp_path / "o")]) == 0
    result = json.loads((tmp_path / "o" / "x.everything.json").read_text())
    assert result["image"] == "x.png" and result["annotations"]
    for ann in result["annotations"]:
        rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
        want = coco_mask.decode(rle).astype(bool)
        got = _decode_rle(pb.CocoRle(size=ann["segmentation"]["size"], counts=ann["segmentation"]["counts"]))
        assert np.array_equal(got, want) and got.sum() == ann["area"]
    assert Image.open(tmp_path / "o" / "x.everything.png").size == (100, 120)
