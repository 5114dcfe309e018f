"""The toolkit end to end on a real data set of ../shared/data, each step timed.

    python bench/real_data.py magnetic_tile   # or msrc_v2; --quick for a few steps of each

Steps (each one ``python -m training <command>`` process, so its wall time is what a user sees):
pretrain a classifier on procedural samples (generate + train-classifier; shared by the data sets,
like an ImageNet backbone) -> train-promptable on the *other* data sets' masks (+ procedural
samples) -> train-classifier on the training split's image-level labels, from the pretrained
backbone -> pseudo-label the training split -> train-deeplab on the
pseudo-labels -> train-deeplab on the ground truth (the upper bound) -> evaluate every method on
the evaluation split. Writes work/real/<name>/ (checkpoints, repositories, pseudo-labels, overlay
PNGs: nothing of it is committed, the images stay in ../shared/data) and
docs/results/<name>.json + .md (figures only).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Config:
    """One data set's run: train/eval id regexes, letterbox size, data sets the promptable model learns from."""

    train: str
    eval: str
    size: int
    promptable_from: list[str]


CONFIGS = {
    "magnetic_tile": Config(".*_exp[0-3]_.*", ".*_exp4_.*", 320, ["msrc_v2", "deepcrack"]),
    "msrc_v2": Config(r"\d+_([1-9]|1[0-5])_s", r"\d+_(1[6-9]|20)_s", 256, ["magnetic_tile", "deepcrack"]),
}
STEPS = {"pretrain": 1200, "pretrain_images": 1500, "promptable": 1500, "classifier": 2000, "deeplab": 1000, "synthetic": 600}
QUICK = {"pretrain": 20, "pretrain_images": 32, "promptable": 20, "classifier": 20, "deeplab": 20, "synthetic": 16}


def run_step(name: str, args: list[str], times: dict[str, float], reuse: Path | None = None) -> None:
    """Run one toolkit command and time it; with ``reuse`` (a checkpoint of an earlier run) take that
    run's recorded training seconds instead of training again."""
    if reuse is not None and reuse.is_file():
        from training.checkpoints import load

        times[name] = float(load(reuse)["provenance"]["seconds"])
        print(f"== {name}: reusing {reuse} (trained in {times[name]} s)", flush=True)
        return
    cmd = [sys.executable, "-m", "training", *args]
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    times[name] = round(time.perf_counter() - start, 1)
    print(f"== {name}: {times[name]} s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(CONFIGS))
    parser.add_argument("--quick", action="store_true", help="a few steps of each training (checks the plumbing only)")
    parser.add_argument("--work", default=None, help="default: work/real/<dataset>")
    parser.add_argument("--results", default=str(ROOT / "docs" / "results"))
    parser.add_argument("--reuse", action="store_true", help="reuse the pretrained and promptable checkpoints of an earlier run")
    args = parser.parse_args()
    cfg = CONFIGS[args.dataset]
    data = DATA / args.dataset
    if not data.is_dir():
        print(f"skipped: {data} is not here (the real data sets live in ../shared/data)")
        return 0
    steps = QUICK if args.quick else STEPS
    work = Path(args.work or ROOT / "work" / "real" / args.dataset)
    repo, repo_gt = work / "model_repo", work / "model_repo_gt"
    split = ["--data", str(data), "--ids", cfg.train, "--size", str(cfg.size)]
    times: dict[str, float] = {}
    pretrain = work.parent / ("pretrain_quick" if args.quick else "pretrain")
    synthetic = pretrain / "synthetic"
    if not (args.reuse and (pretrain / "classifier.pt").is_file()):
        run_step("generate_pretrain_images", ["generate", "--out", str(synthetic), "--count", str(steps["pretrain_images"]), "--seed", "0"], times)
    run_step("pretrain_classifier", ["train-classifier", "--data", str(synthetic), "--steps", str(steps["pretrain"]),
                                     "--out", str(pretrain / "classifier.pt")], times, pretrain / "classifier.pt" if args.reuse else None)
    sources = [a for d in cfg.promptable_from if (DATA / d).is_dir() for a in ("--data", str(DATA / d))]
    run_step("train_promptable", ["train-promptable", *sources, "--synthetic", str(steps["synthetic"]), "--steps", str(steps["promptable"]),
                                  "--out", str(work / "promptable.pt"), "--repo", str(repo)], times,
             work / "promptable.pt" if args.reuse else None)
    if args.reuse:
        run_step("export_promptable", ["export", "--checkpoint", str(work / "promptable.pt"), "--repo", str(repo)], times)
    run_step("train_classifier", ["train-classifier", *split, "--steps", str(steps["classifier"]), "--init", str(pretrain / "classifier.pt"),
                                  "--out", str(work / "classifier.pt"), "--repo", str(repo)], times)
    run_step("pseudo_label", ["pseudo-label", "--data", str(data), "--ids", cfg.train, "--model-repo", str(repo),
                              "--out", str(work / "pseudo"), "--no-overlays"], times)
    run_step("train_deeplab_pseudo", ["train-deeplab", *split, "--labels", str(work / "pseudo" / "masks"), "--init-classifier",
                                      str(work / "classifier.pt"), "--steps", str(steps["deeplab"]),
                                      "--out", str(work / "deeplab.pt"), "--repo", str(repo)], times)
    run_step("train_deeplab_gt", ["train-deeplab", *split, "--init-classifier", str(work / "classifier.pt"), "--steps",
                                  str(steps["deeplab"]), "--out", str(work / "deeplab_gt.pt"), "--repo", str(repo_gt)], times)
    report_path = work / "report.json"
    run_step("evaluate", ["evaluate", "--data", str(data), "--ids", cfg.eval, "--model-repo", str(repo),
                          "--deeplab", f"deeplab_gt={repo_gt}", "--out", str(report_path)], times)
    report = json.loads(report_path.read_text())
    pseudo = json.loads((work / "pseudo" / "pseudo_labels.json").read_text())
    methods = report["methods"]
    report.update({
        "train_split": cfg.train, "eval_split": cfg.eval, "letterbox_size": cfg.size,
        "promptable_trained_on": cfg.promptable_from + [f"synthetic:{steps['synthetic']}"],
        "steps": steps, "seconds": times, "total_seconds": round(sum(times.values()), 1),
        "machine": f"{platform.machine()} x{__import__('os').cpu_count()} cores, CPU only",
        "pseudo_labels_on_training_split_mean_image_miou": round(
            sum(v.get("miou_vs_ground_truth", 0.0) for v in pseudo["per_image"].values()) / max(1, len(pseudo["per_image"])), 4),
        "ratios": {
            "s2c_over_cam_threshold": round(methods["s2c"]["miou"] / max(methods["cam_threshold"]["miou"], 1e-9), 3),
            "deeplab_pseudo_over_gt": round(methods["deeplab"]["miou"] / max(methods["deeplab_gt"]["miou"], 1e-9), 3),
        },
        "quick": args.quick,
    })
    out = Path(args.results) / (args.dataset + ("_quick" if args.quick else "") + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    md = (work / "report.md").read_text()
    md += "\nStep times (s): " + ", ".join(f"{k} {v}" for k, v in times.items()) + f"; total {report['total_seconds']}\n"
    md += f"\nRatios: {json.dumps(report['ratios'])}\n"
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
