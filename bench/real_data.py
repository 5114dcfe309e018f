"""The toolkit end to end on a real data set of ../shared/data, each step timed.

    python bench/real_data.py magnetic_tile   # or msrc_v2; --quick for a few steps of each, --ablation for Table 1

Steps (each one ``python -m training <command>`` process, so its wall time is what a user sees):
1. shared by the data sets (trained once, reused by later runs, its time reported apart):
   pretrain a classifier on procedural samples (our stand-in for an ImageNet backbone), a
   backbone self-supervised on duts_tr's images (``pretrain-backbone``, no labels; the classifiers
   of a data set whose ``Config.pretrain`` is ``simclr`` start from it), and
   train the promptable (SAM-contract) model on ``PROMPTABLE_FROM`` (salient objects of natural
   images + cracks + procedural samples): never on the evaluated data set, nor on ecssd; and a
   salient-object model (a one-class DeepLab on duts_tr's object masks) for the ``cam_saliency``
   pseudo-labels (``training/saliency.py``), reported for every data set.
2. per data set: train-classifier with plain BCE (the baseline; on msrc_v2 both trainings jitter
   the images' colours, ``Config.color_jitter``), then S2C: the BCE classifier
   trained on with S2C's losses (SSC + CPM, ``--s2c``) for ``s2c`` more steps (the BCE run is
   S2C's warm-up; the paper switches CPM on after its first epochs), pseudo-label the training split with the S2C classifier, train-deeplab on
   the pseudo-labels and on the ground truth (the upper bound; class-balanced on data sets of rare
   small defects), evaluate every method on the evaluation split.
3. ``--ablation``: also S2C with each loss alone; every classifier's CAM-threshold mIoU in a
   table like the paper's Table 1.

Writes work/real/<name>/ (checkpoints, repositories, pseudo-labels, overlay PNGs: nothing of it is
committed, the images stay in ../shared/data) and docs/results/<name>.json + .md (figures only).
A data set the promptable model should learn from but that is missing is an error, not a silent
fall-back to procedural samples.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PROMPTABLE_FROM = ["duts_tr", "deepcrack"]
IMAGE_LABEL_METHODS = ("cam_threshold", "cam_crf", "cam_saliency", "cam_rw", "cam_rw_saliency", "s2c", "s2c_crf")
"""The evaluated methods that make a pseudo-mask from image-level tags alone (the issue's "best image-label pseudo-mask")."""


@dataclass(frozen=True)
class Config:
    """One data set's run: train/eval id regexes, letterbox size, whether DeepLab needs class
    balancing, the pipeline's stuff agreement and the S2C losses (an ``ABLATION`` key), each chosen
    on a part of the training split (docs/RESULTS.md)."""

    train: str
    eval: str
    size: int
    balance: bool
    stuff_agreement: float
    s2c: str = "ssc+cpm"
    pseudo_source: str = "pipeline"
    max_class_weight: float = 10.0  # with balance: train-deeplab --max-class-weight
    deeplab_steps: int = 500  # each DeepLab training (--deeplab-steps overrides)
    color_jitter: float = 0.0  # each classifier training (BCE and S2C): train-classifier --color-jitter
    pretrain: str = "procedural"  # the BCE classifier's starting backbone: procedural (classifier) or simclr (pretrain-backbone)
    deeplab_vflip: bool = True  # each DeepLab training flips vertically too (False: train-deeplab --no-vflip)
    deeplab_scales: str = "1"  # each DeepLab training: train-deeplab --scales
    predict_scales: str = "1"  # DeepLab's test-time scales (train-deeplab --predict-scales: its exported config's predict_scales)
    predict_flip: bool = False  # ... and mirrors (train-deeplab --predict-flip: config predict_flip)
    cam_crf: str = ""  # the CAM labels' CRF appearance kernel WEIGHT,COLOUR_SCALE (evaluate / pseudo-label --cam-crf); "": CRF_APPEARANCE


CONFIGS = {
    # On magnetic_tile's training split (docs/RESULTS.md): S2C with SSC alone (pipeline on exp1, a
    # part of the training images: 0.241; SSC + CPM 0.221, BCE 0.231); DeepLab (trained on exp0, 2, 3,
    # scored on exp1) with class weights capped at 3 (0.280; cap 5 0.250, cap 10 0.245, plain 0.162),
    # 3,000 steps (0.429; 1,500: 0.347, 500: 0.280), on CAM-threshold pseudo-labels (0.215; the pipeline's 0.178);
    # classifiers from the SimCLR backbone of duts_tr (bench/select_mt_classifier.sh, CAM threshold on exp1: 0.207 -> 0.236;
    # SimCLR on exp0-3's own pixels 0.169, duts_tr then the tiles 0.184; bench/select_mt_deeplab.sh, DeepLab on ground
    # truth from that classifier: 0.429 -> 0.584), evaluated at three scales and mirrored (that DeepLab: 0.584 -> 0.606;
    # TTA=1 ARMS=balance_cap3 STEPS=3000 FROM=... bench/select_mt_deeplab.sh), trained at those scales too
    # (ARMS=balance_cap3_scales: 0.588 plain, 0.640 evaluated so)
    # The CAM labels' CRF with a light appearance kernel, 0.5, 8 (bench/select_mt_cam_crf.sh, exp1: cam_rw_saliency 0.238 with
    # msrc_v2's 5, 8 -> 0.300; thin defects no longer smoothed away; msrc_v2 keeps 5, 8, where lighter ones score no better)
    "magnetic_tile": Config(".*_exp[0-3]_.*", ".*_exp4_.*", 320, True, 1.0, s2c="ssc", pseudo_source="cam_threshold",
                            max_class_weight=3.0, deeplab_steps=3000, pretrain="simclr", deeplab_scales="0.75,1,1.25",
                            predict_scales="0.75,1,1.25", predict_flip=True, cam_crf="0.5,8"),
    # On msrc_v2's training split (train n 6..15, scored on n 1..5; docs/RESULTS.md): S2C with SSC alone
    # (S2C pipeline 0.417 with SSC, 0.356 with SSC + CPM, 0.394 BCE only) and DeepLab on CAM + CRF split
    # between salient objects and stuff (0.323; consensus of the pipeline and CAM + CRF 0.269, CAM + CRF
    # 0.269, CAM threshold 0.262, pipeline 0.246, each DeepLab run at its training scale), 500 steps
    # (1,500 steps on ground truth: +0.002 for 3x the time); classifiers with colour jitter 0.3 (cam_saliency
    # pseudo-masks, seeds 0 / 1: 0.541 / 0.390 -> 0.572 / 0.465; DeepLab on the training split's pseudo-labels -0.025);
    # the BCE classifier from the SimCLR backbone (bench/select_msrc_backbone.sh; two SimCLR runs: CAM threshold 0.403 ->
    # 0.445 / 0.404, DeepLab on ground truth, mean of seeds 0 and 1: 0.405 -> 0.440 / 0.403; with the cell-level loss: 0.430, 0.397)
    # DeepLab with horizontal flips only and a window scale per batch (bench/select_msrc_deeplab.sh, on ground truth, seeds 0 / 1:
    # 0.409 / 0.442 with flips both ways at scale 1 -> 0.479 / 0.483; horizontal flips alone 0.472 / 0.461), evaluated
    # at those three scales and mirrored (the same DeepLabs: 0.510 / 0.518; on pseudo-labels 0.349 -> 0.349, 0.321 -> 0.342)
    "msrc_v2": Config(r"\d+_([1-9]|1[0-5])_s", r"\d+_(1[6-9]|20)_s", 256, False, 1.0, s2c="ssc", pseudo_source="cam_saliency",
                      color_jitter=0.3, pretrain="simclr", deeplab_vflip=False, deeplab_scales="0.75,1,1.25",
                      predict_scales="0.75,1,1.25", predict_flip=True),
}
STEPS = {"pretrain": 1200, "pretrain_images": 1500, "backbone": 1500, "promptable": 4000, "classifier": 2000, "s2c": 600,  # DeepLab's: Config.deeplab_steps
         "synthetic": 600, "cpm_warmup": 0, "cpm_refresh": 300, "saliency": 3000}
QUICK = {"pretrain": 20, "pretrain_images": 32, "backbone": 5, "promptable": 20, "classifier": 20, "s2c": 10, "deeplab": 20, "synthetic": 16,
         "cpm_warmup": 0, "cpm_refresh": 5, "saliency": 10}
SALIENCY_VFLIP, SALIENCY_SCALES = False, "0.75,1,1.25"
"""The salient-object model's flips and window scales (bench/select_saliency.sh; ``deeplab_augmentation``)."""
SALIENCY_FROM = ["duts_tr"]
"""The salient-object model's masks (class-agnostic objects of natural images; never an evaluated set)."""
BACKBONE_FROM = ["duts_tr"]
"""The self-supervised backbone's images (natural images, their masks and labels never read)."""
FAST_SHARED = ("pretrain_backbone", "train_promptable")
"""The shared trainings that run with ``--precision auto`` (bf16 where the CPU computes it natively)
unless ``--precision`` sets every training's: 1.6x / 1.4x faster in bf16 here, and on training
splits their bf16 models scored within the spread of two fp32 runs on all checks but one DeepLab
seed and the promptable model's boxes (bench/select_precision_shared.sh);
bf16 costs the classifier and the DeepLab (bench/select_precision.sh), so they stay fp32."""
ABLATION = {"bce": None, "ssc": "ssc", "cpm": "cpm", "ssc+cpm": "ssc,cpm"}


class MissingData(RuntimeError):
    pass


def wall_record(checkpoint: Path) -> Path:
    """Where ``run_step`` keeps the wall time of the command that wrote ``checkpoint``."""
    return checkpoint.with_name(checkpoint.name + ".wall.json")


def reused_seconds(checkpoint: Path) -> tuple[float, str]:
    """An earlier run's seconds for ``checkpoint``: the wall time ``run_step`` recorded beside it
    (the command as a user waits for it: loading the data included), else the training seconds
    its provenance records (a checkpoint made outside this script)."""
    record = wall_record(checkpoint)
    if record.is_file():
        return float(json.loads(record.read_text())["seconds"]), "wall time"
    from training.checkpoints import load

    return float(load(checkpoint)["provenance"]["seconds"]), "training seconds, no wall time recorded"


def run_step(name: str, args: list[str], times: dict[str, float], reuse: Path | None = None, export_args: Sequence[str] = ()) -> None:
    """Run one toolkit command and time it (the wall time is kept beside the checkpoint it writes,
    ``--out``); with ``reuse`` (a checkpoint of an earlier run) take that run's seconds
    (``reused_seconds``) instead of training again (and export it where ``--repo`` says, with
    ``export_args``)."""
    if reuse is not None and reuse.is_file():
        times[name], kind = reused_seconds(reuse)
        print(f"== {name}: reusing {reuse} ({times[name]} s, {kind})", flush=True)
        if "--repo" in args:
            subprocess.run([sys.executable, "-m", "training", "export", "--checkpoint", str(reuse), "--repo", args[args.index("--repo") + 1],
                            *export_args], cwd=ROOT, check=True)
        return
    cmd = [sys.executable, "-m", "training", *args]
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    times[name] = round(time.perf_counter() - start, 1)
    if "--out" in args and args[-1] != "--out":
        out = Path(args[args.index("--out") + 1])
        if out.suffix == ".pt" and out.is_file():  # a checkpoint (evaluate's --out is a report)
            wall_record(out).write_text(json.dumps({"seconds": times[name], "command": args[0]}) + "\n")
    print(f"== {name}: {times[name]} s", flush=True)


def promptable_sources(names: list[str]) -> list[str]:
    """``--data`` arguments of the promptable model's data sets; MissingData names any that is absent."""
    missing = [n for n in names if not (DATA / n).is_dir()]
    if missing:
        raise MissingData(f"the promptable model learns from {names}, but {[str(DATA / n) for n in missing]} "
                          "is not there: without it the model would learn from procedural samples only")
    return [a for n in names for a in ("--data", str(DATA / n))]


def shared_models(work: Path, steps: dict[str, int], suffix: str, times: dict[str, float], pretrain_kind: str,
                  precision: str, fast: str) -> tuple[Path, Path, Path]:
    """The BCE classifiers' starting backbone (``pretrain_kind``: the procedurally pretrained
    classifier or the SimCLR backbone), the promptable model and the salient-object model's
    repository (each trained once for every data set; the salient-object model always starts from
    the procedural pretraining: from the SimCLR backbone its cam_saliency scored 0.449 against 0.477
    on a part of msrc_v2's training split, bench/select_msrc_saliency.sh; ``SALIENCY_VFLIP``, ``SALIENCY_SCALES`` and
    ``steps["saliency"]``: bench/select_saliency.sh). Its files name its recipe (``saliency_recipe``),
    so --reuse never takes one trained otherwise. ``suffix`` names the folder of a quick or a bf16 run
    (main); ``precision``: each training's ``--precision``, ``fast`` that of ``FAST_SHARED``'s (their
    files name it where it differs)."""
    shared = work / f"shared{suffix}"
    tag = "" if fast == precision else f"_{fast}"
    prec, prec_fast = ["--precision", precision], ["--precision", fast]
    pretrain = shared / "pretrain_classifier.pt"
    if not pretrain.is_file():
        run_step("generate_pretrain_images", ["generate", "--out", str(shared / "synthetic"), "--count", str(steps["pretrain_images"]), "--seed", "0"], times)
    run_step("pretrain_classifier", ["train-classifier", "--data", str(shared / "synthetic"), "--steps", str(steps["pretrain"]),
                                     *prec, "--out", str(pretrain)], times, pretrain)
    start = pretrain
    if pretrain_kind == "simclr":
        start = shared / f"backbone_simclr{tag}.pt"
        run_step("pretrain_backbone", ["pretrain-backbone", *promptable_sources(BACKBONE_FROM), "--steps", str(steps["backbone"]),
                                       *prec_fast, "--out", str(start)], times, start)
    promptable = shared / f"promptable{tag}.pt"
    run_step("train_promptable", ["train-promptable", *promptable_sources(PROMPTABLE_FROM), "--synthetic", str(steps["synthetic"]),
                                  "--steps", str(steps["promptable"]), "--crop", "192", "--batch-size", "10", *prec_fast, "--out", str(promptable)],
             times, promptable)
    saliency = shared / f"saliency{saliency_recipe(steps)}"
    run_step("train_saliency", ["train-deeplab", *promptable_sources(SALIENCY_FROM), "--size", "256", "--steps", str(steps["saliency"]),
                                *deeplab_augmentation(SALIENCY_VFLIP, SALIENCY_SCALES)[0], "--init-classifier", str(pretrain), *prec,
                                "--out", f"{saliency}.pt", "--repo", str(saliency)],
             times, saliency.with_name(saliency.name + ".pt"))
    return start, promptable, saliency


def deeplab_augmentation(vflip: bool, scales: str) -> tuple[list[str], str]:
    """``train-deeplab``'s flip and window-scale options, and their name in checkpoint file names."""
    args = ([] if vflip else ["--no-vflip"]) + ([] if scales == "1" else ["--scales", scales])
    return args, ("" if vflip else "_hflip") + ("" if scales == "1" else "_s" + scales.replace(",", "-"))


def saliency_recipe(steps: dict[str, int]) -> str:
    """The salient-object model's recipe in its file names (and the cam_saliency pseudo-labels')."""
    return f"_{steps['saliency']}steps" + deeplab_augmentation(SALIENCY_VFLIP, SALIENCY_SCALES)[1]


def cam_labels_recipe(source: str, cam_crf: str = "") -> str:
    """The CAM CRF's appearance kernel (``cam_crf``, else ``CRF_APPEARANCE``) and the CAM random walk's
    setting in the names of pseudo-labels made through them (``_crf5-8``, ``_rw64-8``); empty for
    sources with neither."""
    from service.pipeline.cam_random_walk import RANDOM_WALK
    from training.pseudo_label import CRF_SOURCES, RW_SOURCES
    from training.toolkit import parse_cam_crf

    kernel = parse_cam_crf(cam_crf or None)  # the toolkit's own reading of --cam-crf
    crf = "_crf" + "-".join(f"{v:g}" for v in kernel) if source in CRF_SOURCES else ""
    return crf + ("_rw" + "-".join(f"{v:g}" for v in RANDOM_WALK) if source in RW_SOURCES else "")


def chain_steps(cfg: Config, times: dict[str, float], shared_times: dict[str, float]) -> dict[str, float]:
    """The steps of the chain a user runs to get this data set's DeepLab from its image-level tags,
    with their seconds: the shared models it uses (the classifiers' starting backbone, the promptable
    model for S2C's losses, the salient-object model and its procedural start for cam_saliency), the
    BCE classifier (S2C's warm-up), the S2C classifier, pseudo-labels, DeepLab on them and the
    evaluation. Left out: what only the benchmark needs (the DeepLab on ground truth, the other
    classifiers' CAM evaluation) and shared models this data set's chain does not use."""
    from training.pseudo_label import SALIENCY_SOURCES

    shared = ["train_promptable"]
    if cfg.pretrain == "simclr":
        shared.append("pretrain_backbone")
    if cfg.pretrain == "procedural" or cfg.pseudo_source in SALIENCY_SOURCES:
        shared += ["generate_pretrain_images", "pretrain_classifier"]
    if cfg.pseudo_source in SALIENCY_SOURCES:
        shared.append("train_saliency")
    own = ["export_promptable", "train_classifier_bce", f"train_classifier_{cfg.s2c}", "pseudo_label", "train_deeplab_pseudo", "evaluate"]
    return {**{k: shared_times[k] for k in shared if k in shared_times}, **{k: times[k] for k in own if k in times}}


def repo_with_promptable(repo: Path, promptable: Path, times: dict[str, float]) -> None:
    """A fresh model repository holding the promptable model: exported once beside its checkpoint,
    copied byte for byte (so the SE-map cache, keyed by the model files, serves every repository)."""
    exported = promptable.with_suffix("")
    if not (exported / "sam_decoder").is_dir():
        run_step("export_promptable", ["export", "--checkpoint", str(promptable), "--repo", str(exported)], times)
    if repo.exists():
        shutil.rmtree(repo)
    for name in ("sam_encoder", "sam_decoder"):
        shutil.copytree(exported / name, repo / name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(CONFIGS))
    parser.add_argument("--quick", action="store_true", help="a few steps of each training (checks the plumbing only)")
    parser.add_argument("--work", default=str(ROOT / "work" / "real"), help="work root: <work>/<dataset>, <work>/shared")
    parser.add_argument("--results", default=str(ROOT / "docs" / "results"))
    parser.add_argument("--ablation", action="store_true", help="also S2C with SSC alone and CPM alone (the ablation table)")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the checkpoints and pseudo-labels of an earlier run of this data set (their recorded wall times)")
    parser.add_argument("--deeplab-steps", type=int, default=None, help="steps of each DeepLab training (default: the data set's Config)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=None,
                        help="every training's --precision (default: fp32, as bf16 cost msrc_v2's DeepLab 0.01-0.03 on its training "
                        "split, but auto for the SimCLR backbone and the promptable model, FAST_SHARED); a bf16 run works in "
                        "<work>/<dataset>_bf16 and <work>/shared_bf16, so --reuse never mixes the two")
    args = parser.parse_args()
    cfg = CONFIGS[args.dataset]
    data = DATA / args.dataset
    if not data.is_dir():
        print(f"skipped: {data} is not here (the real data sets live in ../shared/data)")
        return 0
    steps = dict(QUICK if args.quick else STEPS)
    steps["deeplab"] = args.deeplab_steps or (QUICK["deeplab"] if args.quick else cfg.deeplab_steps)
    work_root = Path(args.work)
    from training.common import resolve_precision
    from training.pseudo_label import CRF_SOURCES, SALIENCY_SOURCES

    precision = resolve_precision(args.precision or "fp32")
    fast = resolve_precision(args.precision or "auto")
    suffix = ("_quick" if args.quick else "") + ("" if precision == "fp32" else f"_{precision}")
    work = work_root / (args.dataset + suffix)
    prec = ["--precision", precision]
    shared_times: dict[str, float] = {}
    times: dict[str, float] = {}
    try:
        backbone, promptable, saliency = shared_models(work_root, steps, suffix, shared_times, cfg.pretrain, precision, fast)
    except MissingData as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    split = ["--data", str(data), "--ids", cfg.train, "--size", str(cfg.size)]
    s2c_args = ["--cpm-warmup", str(steps["cpm_warmup"]), "--cpm-refresh", str(steps["cpm_refresh"]), "--se-cache", str(work_root / "se_cache")]
    variants = ABLATION if args.ablation else {"bce": None, cfg.s2c: ABLATION[cfg.s2c]}
    jitter = ["--color-jitter", str(cfg.color_jitter)] if cfg.color_jitter else []
    cls_recipe = ((f"_jitter{cfg.color_jitter:g}" if cfg.color_jitter else "") + ("" if cfg.pretrain == "procedural" else f"_{cfg.pretrain}")
                  + ("" if fast == precision else f"_shared{fast}"))  # the shared models' precision: the backbone's, the promptable model's

    def classifier(name: str) -> Path:  # its checkpoint names its recipe, so --reuse never takes one trained otherwise
        return work / f"classifier_{name}{cls_recipe}.pt"

    repos = {}
    for name, losses in variants.items():
        repo = work / f"repo_{name.replace('+', '_')}"
        repo_with_promptable(repo, promptable, times)
        ckpt = classifier(name)
        if losses is None:
            cmd = ["--steps", str(steps["classifier"]), "--init", str(backbone)]
        else:
            cmd = ["--steps", str(steps["s2c"]), "--init", str(classifier("bce")), "--s2c", str(repo), "--s2c-losses", losses, *s2c_args]
        run_step(f"train_classifier_{name}", ["train-classifier", *split, *cmd, *jitter, *prec, "--out", str(ckpt), "--repo", str(repo)], times,
                 ckpt if args.reuse else None)
        repos[name] = repo
    # a DeepLab's checkpoint (and the pseudo-labels) name their recipe and the classifier's, so --reuse never takes one made otherwise
    dl_aug, aug_name = deeplab_augmentation(cfg.deeplab_vflip, cfg.deeplab_scales)
    recipe = ("" if not cfg.balance or cfg.max_class_weight == 10.0 else f"_w{cfg.max_class_weight:g}") + f"_{steps['deeplab']}steps" + aug_name + cls_recipe
    repo, repo_gt = repos[cfg.s2c], work / f"repo_gt{recipe}"
    tag = (cfg.s2c.replace("+", "_") + ("" if cfg.pseudo_source == "pipeline" else f"_{cfg.pseudo_source}") + cls_recipe
           + (saliency_recipe(steps).replace("_", "_sal", 1) if cfg.pseudo_source in SALIENCY_SOURCES else "") + cam_labels_recipe(cfg.pseudo_source, cfg.cam_crf))
    pseudo_dir, deeplab_ckpt = work / f"pseudo_{tag}", work / f"deeplab_{tag}{recipe}.pt"
    balance = ["--balance", "--max-class-weight", str(cfg.max_class_weight)] if cfg.balance else []
    stuff = ["--stuff-agreement", str(cfg.stuff_agreement)]
    cam_crf = ["--cam-crf", cfg.cam_crf] if cfg.cam_crf else []
    summary = pseudo_dir / "pseudo_labels.json"
    if args.reuse and summary.is_file():
        times["pseudo_label"] = float(json.loads(summary.read_text())["seconds"])
        print(f"== pseudo_label: reusing {summary} (made in {times['pseudo_label']} s)", flush=True)
    else:
        with_saliency = ["--saliency", str(saliency)] if cfg.pseudo_source in SALIENCY_SOURCES else []
        run_step("pseudo_label", ["pseudo-label", "--data", str(data), "--ids", cfg.train, "--model-repo", str(repo),
                                  "--source", cfg.pseudo_source, *with_saliency, "--out", str(pseudo_dir), "--no-overlays", *stuff,
                                  *(cam_crf if cfg.pseudo_source in CRF_SOURCES else [])], times)
    # the DeepLabs' test-time augmentation goes into their exported configs (evaluate reads it there, as a server does)
    tta = ["--predict-scales", cfg.predict_scales, "--predict-flip" if cfg.predict_flip else "--no-predict-flip"]
    run_step("train_deeplab_pseudo", ["train-deeplab", *split, "--labels", str(pseudo_dir / "masks"), "--init-classifier",
                                      str(classifier(cfg.s2c)), "--steps", str(steps["deeplab"]), *balance, *dl_aug, *tta, *prec,
                                      "--out", str(deeplab_ckpt), "--repo", str(repo)], times,
             deeplab_ckpt if args.reuse else None, tta)
    run_step("train_deeplab_gt", ["train-deeplab", *split, "--init-classifier", str(classifier("bce")), "--steps",
                                  str(steps["deeplab"]), *balance, *dl_aug, *tta, *prec, "--out", str(work / f"deeplab_gt{recipe}.pt"), "--repo", str(repo_gt)],
             times, work / f"deeplab_gt{recipe}.pt" if args.reuse else None, tta)
    report_path = work / "report.json"
    run_step("evaluate", ["evaluate", "--data", str(data), "--ids", cfg.eval, "--model-repo", str(repo),
                          "--deeplab", f"deeplab_gt={repo_gt}", "--saliency", str(saliency), "--out", str(report_path), *stuff, *cam_crf], times)
    report = json.loads(report_path.read_text())
    ablation = {}
    for name, r in repos.items():
        if r == repo:
            ablation[name] = report["methods"]["cam_threshold"]["miou"]
            continue
        path = work / f"cam_{name}.json"
        run_step(f"evaluate_cam_{name}", ["evaluate", "--data", str(data), "--ids", cfg.eval, "--model-repo", str(r),
                                          "--methods", "cam_threshold", "--overlays", "0", "--out", str(path)], times)
        ablation[name] = json.loads(path.read_text())["methods"]["cam_threshold"]["miou"]
    pseudo = json.loads(summary.read_text())
    methods = report["methods"]
    baseline = ablation["bce"]
    chain = chain_steps(cfg, times, shared_times)
    report.update({
        "train_split": cfg.train, "eval_split": cfg.eval, "letterbox_size": cfg.size, "deeplab_balanced": cfg.balance,
        "deeplab_max_class_weight": cfg.max_class_weight if cfg.balance else None, "deeplab_vflip": cfg.deeplab_vflip,
        "deeplab_scales": cfg.deeplab_scales, "predict_scales": cfg.predict_scales, "predict_flip": cfg.predict_flip,
        "stuff_agreement": cfg.stuff_agreement, "s2c_losses": cfg.s2c, "pseudo_label_source": cfg.pseudo_source, "cam_crf": cfg.cam_crf or "default",
        "classifier_color_jitter": cfg.color_jitter, "classifier_pretraining": cfg.pretrain,
        "promptable_trained_on": PROMPTABLE_FROM + [f"synthetic:{steps['synthetic']}"],
        "steps": steps, "seconds": times, "total_seconds": round(sum(times.values()), 1),
        "shared_seconds": shared_times, "shared_total_seconds": round(sum(shared_times.values()), 1), "precision": precision,
        "precision_of": {step: fast for step in FAST_SHARED},
        "chain_seconds": chain, "chain_total_seconds": round(sum(chain.values()), 1),
        "machine": f"{platform.machine()} x{os.cpu_count()} cores, CPU only",
        "pseudo_labels_on_training_split_mean_image_miou": round(
            sum(v.get("miou_vs_ground_truth", 0.0) for v in pseudo["per_image"].values()) / max(1, len(pseudo["per_image"])), 4),
        "ablation_cam_threshold_miou": ablation,
        "bce_cam_threshold_miou": baseline,
        "ratios": {
            "s2c_over_bce_cam_threshold": round(methods["s2c"]["miou"] / max(baseline, 1e-9), 3),
            "deeplab_pseudo_over_gt": round(methods["deeplab"]["miou"] / max(methods["deeplab_gt"]["miou"], 1e-9), 3),
        },
        "best_image_label_pseudo_mask_minus_bce_cam": round(
            max(methods[m]["miou"] for m in IMAGE_LABEL_METHODS if m in methods) - baseline, 3),
        "quick": args.quick,
    })
    out = Path(args.results) / (args.dataset + ("_quick" if args.quick else "") + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    md = (work / "report.md").read_text()
    md += "\nCAM-threshold mIoU per classifier (ablation): " + ", ".join(f"{k} {v:.3f}" for k, v in ablation.items()) + "\n"
    md += "\nStep times (s): " + ", ".join(f"{k} {v}" for k, v in times.items()) + f"; total {report['total_seconds']}\n"
    md += "\nShared steps (s): " + ", ".join(f"{k} {v}" for k, v in shared_times.items()) + f"; total {report['shared_total_seconds']}\n"
    md += (f"\nThe chain to this data set's DeepLab ({precision}, {' and '.join(FAST_SHARED)} {fast}; chain_steps: without the DeepLab on ground truth and the other "
           f"classifiers' CAM evaluation): {report['chain_total_seconds']} s = {report['chain_total_seconds'] / 60:.0f} min\n")
    md += f"\nRatios: {json.dumps(report['ratios'])}\n"
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
