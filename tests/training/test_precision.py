"""Training precision: fp32, or forward passes autocast to bf16 (``--precision``), and each training
command's checkpoint saying which ran."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from training import checkpoints, common  # noqa: E402
from training.__main__ import main as training_main  # noqa: E402
from training.common import autocast, resolve_precision  # noqa: E402


def test_auto_takes_bf16_only_where_the_cpu_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "bf16_native", lambda: True)
    assert resolve_precision("auto") == "bf16"
    monkeypatch.setattr(common, "bf16_native", lambda: False)
    assert resolve_precision("auto") == "fp32"
    assert resolve_precision("bf16") == "bf16" and resolve_precision("fp32") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, not 'fp16'"):
        resolve_precision("fp16")


def test_autocast_runs_convolutions_in_bf16_and_fp32_untouched() -> None:
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    with autocast("bf16"):
        assert conv(x).dtype == torch.bfloat16
    with autocast("fp32"):
        y = conv(x)
    assert y.dtype == torch.float32 and torch.equal(y, conv(x))
    with pytest.raises(ValueError, match="runs in fp32 or bf16, not 'auto'"):
        autocast("auto")


def _folder(root: Path) -> Path:
    training_main(["generate", "--out", str(root), "--count", "6", "--height", "96", "--width", "96"])
    return root


@pytest.mark.parametrize("command", ["train-classifier", "train-deeplab", "train-promptable", "pretrain-backbone"])
def test_each_training_runs_in_both_precisions_and_records_which(tmp_path: Path, command: str) -> None:
    """Both precisions train (finite weights, stored in the plain layout the exporter reads), bf16 is
    not a no-op (its weights differ from fp32's of the same seed), and the checkpoint names it."""
    data = _folder(tmp_path / "data")
    args = {
        "train-classifier": ["--data", str(data), "--size", "64"],
        "train-deeplab": ["--data", str(data), "--size", "64"],
        "train-promptable": ["--data", str(data), "--batch-size", "2"],
        "pretrain-backbone": ["--data", str(data), "--batch-size", "4", "--side", "64", "--crop", "48"],
    }[command]
    states = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.pt"
        assert training_main([command, *args, "--steps", "2", "--threads", "2", "--precision", precision, "--out", str(out)]) == 0
        ckpt = checkpoints.load(out)
        assert ckpt["provenance"]["precision"] == precision
        states[precision] = {f"{part}.{k}": v for part, sd in ckpt["state"].items() for k, v in sd.items()}
        for k, v in states[precision].items():
            assert v.is_contiguous() and bool(torch.isfinite(v.float()).all()), k
    assert any(not torch.equal(v, states["bf16"][k]) for k, v in states["fp32"].items() if v.is_floating_point())


def test_fp32_is_the_default_and_auto_is_resolved_in_the_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _folder(tmp_path / "data")
    out = tmp_path / "d.pt"
    assert training_main(["train-deeplab", "--data", str(data), "--size", "64", "--steps", "1", "--out", str(out)]) == 0
    assert checkpoints.load(out)["provenance"]["precision"] == "fp32"
    assert training_main(["train-deeplab", "--data", str(data), "--size", "64", "--steps", "1", "--precision", "auto", "--out", str(out)]) == 0
    assert checkpoints.load(out)["provenance"]["precision"] == resolve_precision("auto")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        training_main(["train-deeplab", "--data", str(data), "--steps", "1", "--precision", "fp16", "--out", str(tmp_path / "x.pt")])
    assert "argument --precision: invalid choice: 'fp16'" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
