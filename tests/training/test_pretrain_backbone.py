"""Self-supervised backbone pretraining: its losses on tiny fixed tensors against hand-computed
values, the views' geometry against the cell matching the dense loss relies on, and the
``pretrain-backbone`` command end to end (a few steps) with its refusals."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from training import checkpoints  # noqa: E402
from training.__main__ import main as training_main  # noqa: E402
from training.pretrain_backbone import ViewSpec, dense_nce, matched_cells, nt_xent, views  # noqa: E402

PLAIN = ViewSpec(side=32, jitter_p=0.0, grey_p=0.0)


def test_nt_xent_picks_each_views_partner() -> None:
    e = torch.eye(2)
    # each of the 4 embeddings: cosine 1 with its partner, 0 with the two others -> -log(e / (e + 2))
    assert nt_xent(e, e, 1.0).item() == pytest.approx(math.log((math.e + 2) / math.e))
    # temperature 0.5 doubles every logit: -log(e^2 / (e^2 + 2))
    assert nt_xent(e, 3 * e, 0.5).item() == pytest.approx(math.log((math.e**2 + 2) / math.e**2))
    # partners swapped: each embedding's partner is orthogonal, and its twin sits among the negatives
    assert nt_xent(e, e.flip(0), 1.0).item() == pytest.approx(math.log(math.e + 2))


def test_matched_cells_by_hand() -> None:
    identity = torch.tensor([[[1.0, 0, 0], [0, 1, 0]]])
    left_half = torch.tensor([[[0.5, 0, -0.5], [0, 1, 0]]])
    mirrored = torch.tensor([[[-1.0, 0, 0], [0, 1, 0]]])
    # cell centres of a 1 x 2 grid lie at x = -0.5 and 0.5 of view 1
    grid, inside = matched_cells(left_half, mirrored, 1, 2)  # image x -0.75, -0.25 -> mirrored view 0.75, 0.25
    assert grid[0, 0, :, 0].tolist() == [0.75, 0.25] and grid[0, 0, :, 1].tolist() == [0.0, 0.0] and inside.all()
    grid, inside = matched_cells(identity, left_half, 1, 2)  # image x -0.5, 0.5 -> left-half view 0, 2 (outside)
    assert grid[0, 0, :, 0].tolist() == [0.0, 2.0] and inside[0, 0].tolist() == [True, False]


def test_views_and_cell_matching_agree_on_where_each_pixel_came_from() -> None:
    """Two views of an image whose red and green are its x and y ramps: view 2 sampled where
    ``matched_cells`` says each pixel of view 1 went holds the same image point."""
    side = 64
    ramp = torch.linspace(40, 215, side)
    image = torch.stack([ramp.view(1, side).expand(side, side), ramp.view(side, 1).expand(side, side), torch.full((side, side), 128.0)])
    images = image.round().to(torch.uint8).unsqueeze(0).repeat(8, 1, 1, 1)
    g = torch.Generator().manual_seed(3)
    (v1, t1), (v2, t2) = views(images, PLAIN, g), views(images, PLAIN, g)
    assert v1.shape == (8, 3, 32, 32) and (t1[:, 0, 0] < 0).any() and (t1[:, 0, 0] > 0).any()  # some views mirrored
    grid, inside = matched_cells(t1, t2, 32, 32)
    sampled = torch.nn.functional.grid_sample(v2, grid, mode="bilinear", align_corners=False)
    inner = inside & (grid.abs() < 0.9).all(-1)  # away from view 2's border pixels
    assert inner.sum() > 1000
    diff = (sampled - v1).abs().permute(0, 2, 3, 1)[inner][:, :2]
    assert diff.max() < 0.05  # normalised units: under 1.2 grey levels of 0-255


def test_dense_nce_by_hand() -> None:
    identity = torch.tensor([[[1.0, 0, 0], [0, 1, 0]]])
    cells = torch.eye(2).view(1, 2, 1, 2)  # two cells, orthogonal features
    g = torch.Generator().manual_seed(0)
    # each cell finds itself (cosine 1) against the other (0): -log(e / (e + 1)) both ways
    assert dense_nce(cells, cells, identity, identity, 1.0, 1024, g).item() == pytest.approx(math.log((math.e + 1) / math.e))
    # view 2 mirrored: each cell's point holds the other cell's feature
    mirrored = torch.tensor([[[-1.0, 0, 0], [0, 1, 0]]])
    assert dense_nce(cells, cells, identity, mirrored, 1.0, 1024, g).item() == pytest.approx(math.log(math.e + 1))


def test_pretrain_backbone_command_starts_a_classifier(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    training_main(["generate", "--out", str(data), "--count", "6", "--height", "96", "--width", "80"])
    out = tmp_path / "bb.pt"
    args = ["pretrain-backbone", "--data", str(data), "--steps", "2", "--batch-size", "4", "--side", "64", "--crop", "48",
            "--threads", "2", "--out", str(out)]
    assert training_main([*args, "--dense", "1"]) == 0
    ckpt = checkpoints.load(out)
    assert ckpt["kind"] == "backbone" and ckpt["classes"] == []
    prov = ckpt["provenance"]
    assert prov["images"] == 6 and prov["steps"] == 2 and prov["dense"] == 1.0 and not prov["masks_used"] and not prov["labels_used"]
    net = checkpoints.classifier_from(ckpt)
    for k, v in net.backbone.state_dict().items():
        assert torch.equal(v, ckpt["state"]["net"][f"backbone.{k}"]), k
    assert training_main(["train-classifier", "--data", str(data), "--steps", "1", "--size", "64", "--init", str(out),
                          "--out", str(tmp_path / "c.pt")]) == 0
    assert checkpoints.load(tmp_path / "c.pt")["provenance"]["init"] == str(out)
    assert training_main([*args, "--ids", r"1_0000[0-3]"]) == 0  # a training split's own pixels only
    prov = checkpoints.load(out)["provenance"]
    assert prov["images"] == 4 and prov["ids"] == r"1_0000[0-3]"
    capsys.readouterr()

    refusals = [
        (["export", "--checkpoint", str(out), "--repo", str(tmp_path / "repo")], "is a backbone checkpoint: it holds no model the service serves"),
        (["export", "--checkpoint", str(out), "--repo", str(tmp_path / "repo"), "--next-version"], "is a backbone checkpoint"),
        ([*args, "--repo", str(tmp_path / "repo")], "a pretrained backbone holds no model the service serves"),
        ([*args, "--side", "32"], "--side 32 is smaller than the views' --crop 48"),
        ([*args, "--dense", "-1"], "--dense takes a weight of 0 (off) or more"),
        (["pretrain-backbone", "--steps", "1", "--out", str(tmp_path / "x.pt")], "give at least one --data folder"),
        ([*args, "--ids", "nothing_.*"], "no image id matches the split (pattern 'nothing_.*'"),
    ]
    for argv, message in refusals:
        assert training_main(argv) == 2, argv
        assert message in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()
