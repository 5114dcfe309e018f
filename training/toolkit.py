"""The toolkit's commands on data set folders: pretrain-backbone, train-classifier, train-promptable,
pseudo-label, train-deeplab, export, evaluate (``python -m training <command> --help``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from training import checkpoints
from training.common import PRECISIONS, resolve_precision, setup
from training.datasets import DatasetError, DatasetFolder, concatenate, training_set


def add_split(p: argparse.ArgumentParser, required_data: bool = True) -> None:
    p.add_argument("--data", required=required_data, help="data set folder (images/, masks/, labels.txt, labels.json)")
    p.add_argument("--ids", default=None, help="regular expression the image ids must match in full, e.g. '.*_exp[0-3]_.*'")
    p.add_argument("--ids-file", default=None, help="file of image ids, one per line")


def _split(args: argparse.Namespace) -> tuple[DatasetFolder, list[str]]:
    folder = DatasetFolder(Path(args.data))
    return folder, folder.select(args.ids, Path(args.ids_file) if args.ids_file else None)


def _scales(text: str, option: str = "--scales") -> tuple[float, ...]:
    """``--scales`` (or ``option``): comma-separated positive numbers (DatasetError otherwise)."""
    from service.runtime.model_repo import parse_scales

    scales = parse_scales(text)
    if scales is None:
        raise DatasetError(f"{option} takes comma-separated numbers above 0 and at most 4, not {text!r}")
    return scales


def _predict_scales(text: str | None) -> tuple[float, ...] | None:
    """``--predict-scales``: None when not given (the model's config decides), else as ``_scales``."""
    return None if text is None else _scales(text, "--predict-scales")


def _provenance(folder: DatasetFolder, ids: list[str], args: argparse.Namespace, seconds: float, **extra: Any) -> dict[str, Any]:
    return {"datasets": [folder.name], "split": {"ids": args.ids, "ids_file": args.ids_file, "images": len(ids)},
            "steps": args.steps, "size": args.size, "seconds": round(seconds, 1), **extra}


def _finish(out: Path, repo: str | None) -> None:
    if repo:
        names = checkpoints.export(out, Path(repo))
        print(f"exported {', '.join(names)} into {repo}")
    print(f"wrote {out}")


def _color_jitter(strength: float) -> float:
    """``--color-jitter``: a strength in [0, 1) (DatasetError otherwise)."""
    if not 0.0 <= strength < 1.0:
        raise DatasetError(f"--color-jitter takes a strength from 0 (none) up to, not including, 1, not {strength}")
    return strength


def cmd_train_classifier(args: argparse.Namespace) -> None:
    from training.train_classifier import train_classifier

    _color_jitter(args.color_jitter)
    setup(args.seed, args.threads)
    precision = resolve_precision(args.precision)
    scales = _scales(args.scales)
    folder, ids = _split(args)
    data = training_set(folder, ids, args.size, need_masks=False)
    start = time.perf_counter()
    init_ckpt = checkpoints.load(Path(args.init)) if args.init else None
    init = checkpoints.classifier_from(init_ckpt) if init_ckpt is not None else None
    keep_head = init_ckpt is not None and init_ckpt["kind"] == "cam_classifier" and tuple(init_ckpt["classes"]) == folder.classes
    s2c, s2c_prov = _s2c(args, folder, data) if args.s2c else (None, None)
    net = train_classifier(data, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, balanced=not args.no_balance,
                           scales=scales, init_from=init, s2c=s2c, keep_head=keep_head, color_jitter=args.color_jitter, precision=precision)
    prov = _provenance(folder, ids, args, time.perf_counter() - start, precision=precision, masks_used=False, balanced=not args.no_balance,
                       scales=scales, init=args.init, init_class_layer=keep_head, s2c=s2c_prov, color_jitter=args.color_jitter)
    checkpoints.save(Path(args.out), "cam_classifier", folder.classes, {"net": net.state_dict()}, prov)
    _finish(Path(args.out), args.repo)


def _s2c(args: argparse.Namespace, folder: DatasetFolder, data: Any) -> tuple[Any, dict[str, Any]]:
    """S2C's losses from the promptable model in ``args.s2c`` (a model repository), targets for the
    images with at least one label."""
    from service.models.sam import SamDecoder, SamEncoder
    from service.runtime import ModelRepository
    from service.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from training.s2c import CpmSource, se_maps
    from training.train_classifier import S2C

    repo = Path(args.s2c)
    _check_promptable(repo, folder)
    losses = set(args.s2c_losses.split(","))
    if not losses or losses - {"ssc", "cpm"}:
        raise DatasetError(f"--s2c-losses takes ssc, cpm or ssc,cpm, not {args.s2c_losses!r}")
    backend = OnnxRuntimeBackend(ModelRepository(repo), "CPUExecutionProvider")
    backend.load(["sam_encoder", "sam_decoder"])
    encoder, decoder = SamEncoder(backend), SamDecoder(backend)
    files = [repo / name / m.version / "model.onnx" for name, m in sorted(backend.models().items())]
    hot = data.multi_hot()
    labelled = [i for i in range(len(hot)) if hot[i].any()]
    cache = Path(args.se_cache) if args.se_cache else repo / "se_cache"
    se = se_maps(encoder, decoder, data.images, files, cache, indices=labelled) if "ssc" in losses else None
    cpm = CpmSource.embed(encoder, decoder, data.images, labelled, folder.has_background) if "cpm" in losses else None
    s2c = S2C(se=se, cpm=cpm, warmup=args.cpm_warmup, refresh=args.cpm_refresh)
    prov = {"promptable_repo": str(repo), "losses": sorted(losses), "cpm_warmup": args.cpm_warmup, "cpm_refresh": args.cpm_refresh,
            "promptable_trained_on": (checkpoints.provenance(repo, "sam_encoder") or {}).get("datasets")}
    return s2c, prov


def _check_promptable(repo: Path, folder: DatasetFolder) -> None:
    """Refuse a promptable model trained on the masks of the data set it is used on."""
    prov = checkpoints.provenance(repo, "sam_encoder")
    if prov is not None and folder.name in prov.get("datasets", []):
        raise DatasetError(
            f"{repo}/sam_encoder was trained on the masks of {folder.name!r} ({repo}/sam_encoder/training.json); "
            "a promptable model must never be trained on masks of the data set it labels or is evaluated on"
        )


def cmd_train_promptable(args: argparse.Namespace) -> None:
    from training.common import synthetic_set
    from training.synthetic import TRAIN_SEED
    from training.train_promptable import train_promptable

    setup(args.seed, args.threads)
    sets, names = [], []
    for d in args.data:
        folder = DatasetFolder(Path(d))
        sets.append(training_set(folder, folder.ids, 256))
        names.append(folder.name)
    if args.synthetic:
        sets.append(synthetic_set(TRAIN_SEED, args.synthetic))
        names.append(f"synthetic:{args.synthetic}")
    if not sets:
        raise DatasetError("give at least one --data folder or --synthetic N")
    start = time.perf_counter()
    precision = resolve_precision(args.precision)
    enc, dec = train_promptable(concatenate(sets), steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, crop=args.crop,
                                precision=precision)
    prov = {"datasets": names, "images": sum(len(s.images) for s in sets), "steps": args.steps, "size": 256, "crop": args.crop,
            "seconds": round(time.perf_counter() - start, 1), "precision": precision, "masks_used": True}
    checkpoints.save(Path(args.out), "promptable", [], {"encoder": enc.state_dict(), "decoder": dec.state_dict()}, prov)
    _finish(Path(args.out), args.repo)


def cmd_pretrain_backbone(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from PIL import Image

    from training.pretrain_backbone import ViewSpec, pretrain_backbone

    if args.repo:
        raise DatasetError("a pretrained backbone holds no model the service serves: it has no --repo to go to")
    if args.side < args.crop:
        raise DatasetError(f"--side {args.side} is smaller than the views' --crop {args.crop}")
    if args.dense < 0:
        raise DatasetError(f"--dense takes a weight of 0 (off) or more, not {args.dense}")
    setup(args.seed, args.threads)
    folders = [DatasetFolder(Path(d)) for d in args.data]
    if not folders:
        raise DatasetError("give at least one --data folder (only its images are read, never its masks or labels)")
    load_start = time.perf_counter()
    stack = []
    for folder in folders:
        for image_id in folder.select(args.ids):
            img = Image.fromarray(folder.image(image_id)).resize((args.side, args.side), Image.Resampling.BILINEAR)
            stack.append(np.asarray(img))
    images = torch.from_numpy(np.stack(stack)).permute(0, 3, 1, 2).contiguous()
    print(f"read {len(images)} images in {time.perf_counter() - load_start:.0f} s", flush=True)
    init = checkpoints.classifier_from(checkpoints.load(Path(args.init))).backbone if args.init else None
    start = time.perf_counter()
    precision = resolve_precision(args.precision)
    backbone = pretrain_backbone(images, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                 spec=ViewSpec(side=args.crop), dense=args.dense, init=init, precision=precision)
    prov = {"datasets": [f.name for f in folders], "ids": args.ids, "images": len(images), "steps": args.steps, "side": args.side, "crop": args.crop,
            "dense": args.dense, "init": args.init, "seconds": round(time.perf_counter() - start, 1), "precision": precision, "masks_used": False,
            "labels_used": False}
    checkpoints.save(Path(args.out), "backbone", [], {"net": {f"backbone.{k}": v for k, v in backbone.state_dict().items()}}, prov)
    print(f"wrote {args.out}")


def cmd_train_deeplab(args: argparse.Namespace) -> None:
    from training.train_deeplab import train_deeplab

    jitter = _color_jitter(args.color_jitter)
    setup(args.seed, args.threads)
    precision = resolve_precision(args.precision)
    folder, ids = _split(args)
    labels_dir = Path(args.labels) if args.labels else None
    if labels_dir is not None and (labels_dir / "masks").is_dir():
        labels_dir = labels_dir / "masks"  # a pseudo-label or weakseg label output folder
    scales = _scales(args.scales)
    predict_scales = _predict_scales(args.predict_scales)
    data = training_set(folder, ids, args.size, masks_dir=labels_dir)
    init = checkpoints.classifier_from(checkpoints.load(Path(args.init_classifier))) if args.init_classifier else None
    start = time.perf_counter()
    net = train_deeplab(data.images, data.masks, len(folder.classes), steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                        seed=args.seed, init_from=init, balanced=args.balance, max_class_weight=args.max_class_weight,
                        vflip=not args.no_vflip, scales=scales, color_jitter=jitter, precision=precision)
    prov = _provenance(folder, ids, args, time.perf_counter() - start, precision=precision, labels=args.labels or "ground truth",
                       masks_used=not args.labels,
                       balanced=args.balance, max_class_weight=args.max_class_weight if args.balance else None,
                       vflip=not args.no_vflip, scales=list(scales), color_jitter=jitter,
                       **({"predict_scales": list(predict_scales)} if predict_scales else {}), **({"predict_flip": args.predict_flip} if args.predict_flip is not None else {}))
    checkpoints.save(Path(args.out), "deeplab", folder.classes, {"net": net.state_dict()}, prov)
    _finish(Path(args.out), args.repo)


def cmd_export(args: argparse.Namespace) -> None:
    from service.runtime.model_repo import SET_NAME

    if args.model_set and not SET_NAME.fullmatch(args.model_set):
        raise DatasetError(f"--model-set {args.model_set!r}: lower-case letters, digits, '_' and '-' (it prefixes folder names)")
    augmentation = checkpoints.PredictAugmentation(_predict_scales(args.predict_scales),
                                                   args.predict_flip)
    try:  # export loads the checkpoint once: a file that holds no servable model is a ValueError
        if args.next_version:
            placed = checkpoints.export_next_version(Path(args.checkpoint), Path(args.repo), args.model_set, augmentation)
            print(f"exported {', '.join(f'{n} version {v}' for n, v in placed)} into {args.repo} (validated by the service's loader)")
            return
        names = checkpoints.export(Path(args.checkpoint), Path(args.repo), args.model_set, augmentation)
    except ValueError as exc:
        raise DatasetError(str(exc)) from exc
    print(f"exported {', '.join(names)} into {args.repo} (validated by the service's loader)")


def _load_pipeline(repo: Path, folder: DatasetFolder, stuff_agreement: float = 0.0) -> Any:
    from training.defaults import load_segmenter

    _check_promptable(repo, folder)
    from service.pipeline.segment import PipelineConfig

    segmenter, backend = load_segmenter(repo, PipelineConfig(stuff_agreement=stuff_agreement))
    if tuple(segmenter.classes) != folder.classes:
        raise DatasetError(f"{repo}/cam_classifier knows {list(segmenter.classes)} but {folder.root}/labels.txt lists {list(folder.classes)}")
    return segmenter, backend


def _background(folder: DatasetFolder, choice: str) -> bool:
    return folder.has_background if choice == "auto" else choice == "yes"


def parse_cam_crf(text: str | None) -> tuple[float, float]:
    """``--cam-crf COMPAT,SRGB`` -> (weight, colour scale), both positive; None: ``CRF_APPEARANCE``."""
    if text is None:
        from training.cam_labels import CRF_APPEARANCE

        return CRF_APPEARANCE
    try:
        compat, srgb = (float(v) for v in text.split(","))
    except ValueError:
        raise DatasetError(f"--cam-crf takes WEIGHT,COLOUR_SCALE (e.g. 5,8), not {text!r}") from None
    if not (compat > 0 and srgb > 0):
        raise DatasetError(f"--cam-crf values must be positive, not {text!r}")
    return compat, srgb


def _random_walk(text: str | None) -> tuple[float, int]:
    """``--random-walk BETA,STEPS`` -> (affinity power > 0, steps >= 1); None: ``RANDOM_WALK``."""
    if text is None:
        from service.pipeline.cam_random_walk import RANDOM_WALK

        return RANDOM_WALK
    try:
        beta_text, steps_text = text.split(",")
        beta, steps = float(beta_text), int(steps_text)
    except ValueError:
        raise DatasetError(f"--random-walk takes BETA,STEPS (e.g. 64,8), not {text!r}") from None
    if not (beta > 0 and steps >= 1):
        raise DatasetError(f"--random-walk needs BETA > 0 and STEPS >= 1, not {text!r}")
    return beta, steps


def _saliency(repo: str | None) -> Any:
    from training.saliency import SaliencyModel

    return SaliencyModel(Path(repo)) if repo else None


def cmd_pseudo_label(args: argparse.Namespace) -> None:
    from service.pipeline.types import Refinement
    from training.pseudo_label import CRF_SOURCES, RW_SOURCES, pseudo_label

    cam_crf = parse_cam_crf(args.cam_crf)
    walk = _random_walk(args.random_walk)
    for option, given, sources in (("--cam-crf", args.cam_crf, CRF_SOURCES), ("--random-walk", args.random_walk, RW_SOURCES)):
        if given is not None and args.source not in sources:
            raise DatasetError(f"{option} applies to --source {'/'.join(sources)}, not {args.source}")
    folder, ids = _split(args)
    segmenter, _ = _load_pipeline(Path(args.model_repo), folder, args.stuff_agreement)
    refinement = Refinement[args.refinement.upper()]
    saliency = _saliency(args.saliency)
    summary = pseudo_label(segmenter, folder, ids, Path(args.out), refinement, not _background(folder, args.background), not args.no_overlays,
                           args.source, saliency, cam_crf, walk)
    print(f"pseudo-labelled {summary['images']} images in {summary['seconds']} s into {args.out}")


def cmd_score_coco(args: argparse.Namespace) -> None:
    import json

    from training.score_coco import score

    folder, ids = _split(args)
    report = score(folder, ids, Path(args.coco))
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


def cmd_upgrade_models(args: argparse.Namespace) -> None:
    from training.export import PIXEL_MODELS, upgrade_models

    repo = Path(args.repo)
    names = args.name or sorted(p.name for p in repo.iterdir() if p.is_dir() and p.name.split(".")[-1] in PIXEL_MODELS)
    for name in names:
        done = upgrade_models(repo, name)
        print(f"{repo / name}: versions {', '.join(done) or 'none'} rewritten; every version takes uint8 pixels")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from service.models.deeplab import DeepLab
    from service.pipeline.predict import Predictor
    from service.runtime import ModelRepository
    from service.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from training.cam_labels import CamLabels
    from training.evaluate_data import evaluate_folder, methods_for
    from training.pseudo_label import CRF_SOURCES, RW_SOURCES

    predict_scales = _predict_scales(args.predict_scales)
    cam_crf = parse_cam_crf(args.cam_crf)
    walk = _random_walk(args.random_walk)
    folder, ids = _split(args)
    if not folder.has_masks:
        raise DatasetError(f"{folder.root} has no masks/: nothing to evaluate against")
    repo = Path(args.model_repo)
    segmenter, backend = _load_pipeline(repo, folder, args.stuff_agreement)
    deeplabs = {}
    extra = [("deeplab", str(repo))] if (repo / "deeplab").is_dir() else []
    for spec in args.deeplab:
        name, _, path = spec.partition("=")
        if not path:
            raise DatasetError(f"--deeplab takes NAME=REPO, not {spec!r}")
        extra.append((name, path))
    for name, path in extra:
        b = backend if Path(path) == repo else OnnxRuntimeBackend(ModelRepository(Path(path)), "CPUExecutionProvider")
        b.load(["deeplab"])
        deeplabs[name] = Predictor(DeepLab(b), scales=predict_scales, flip=args.predict_flip)
    wanted = args.methods.split(",") if args.methods else None
    cams = CamLabels(segmenter, folder.has_background, _saliency(args.saliency), cam_crf, walk)
    if cams.saliency is not None and (wanted is None or {"cam_saliency", "cam_rw_saliency"} & set(wanted)):  # a pass over every image: only when it is scored
        print("objectness:", cams.measure_objectness(folder, ids))
    methods = methods_for(segmenter, deeplabs, cams, folder.classes)
    if wanted is not None:
        unknown = sorted(set(wanted) - set(methods))
        if unknown:
            raise DatasetError(f"unknown method(s) {unknown}; known: {sorted(methods)}")
        methods = {k: v for k, v in methods.items() if k in wanted}
    details: dict[str, dict[str, object]] = {name: {"predict_scales": list(p.scales), "predict_flip": p.flip} for name, p in deeplabs.items()}
    for name in methods:  # the CAM settings each method ran with
        if name in CRF_SOURCES:
            details.setdefault(name, {})["cam_crf"] = list(cam_crf)
        if name in RW_SOURCES:
            details.setdefault(name, {})["random_walk"] = list(walk)
    report = evaluate_folder(folder, ids, methods, Path(args.out), args.overlays, details)
    for name, m in report["methods"].items():  # type: ignore[attr-defined]
        print(f"{name:16s} mIoU {m['miou']:.3f}  pixel acc {m['pixel_acc']:.3f}  {m['seconds_per_image']:.3f} s/image")
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.md')}")


def cmd_evaluate_promptable(args: argparse.Namespace) -> None:
    import json

    from training.evaluate_promptable import evaluate_promptable

    folder, ids = _split(args)
    if not folder.has_masks:
        raise DatasetError(f"{folder.root} has no masks/: nothing to evaluate against")
    repo = Path(args.model_repo)
    _check_promptable(repo, folder)
    report = evaluate_promptable(repo, folder, ids)
    report["promptable_trained_on"] = (checkpoints.provenance(repo, "sam_encoder") or {}).get("datasets")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for name, m in report["methods"].items():  # type: ignore[attr-defined]
        print(f"{name:14s} mIoU {m['miou']:.3f}  object IoU {m['per_class'].get('object', 0.0):.3f}  {m['seconds_per_image']:.3f} s/image")
    print(f"wrote {args.out}")


def _cam_label_options(p: argparse.ArgumentParser, what: str) -> None:
    """``--cam-crf`` and ``--random-walk`` (parsed by ``parse_cam_crf``, ``_random_walk``); ``what``: the
    command's word for what they apply to (sources, methods)."""
    p.add_argument("--cam-crf", default=None,
                   help=f"the CAM {what}' dense CRF appearance kernel: WEIGHT,COLOUR_SCALE (default: training/cam_labels.py "
                   "CRF_APPEARANCE, 5,8, chosen on training splits; the service's refinement uses 10,13)")
    p.add_argument("--random-walk", default=None,
                   help=f"the cam_rw {what}' random walk: BETA,STEPS (affinity power, steps; default: service/pipeline/cam_random_walk.py "
                   "RANDOM_WALK, 64,8, chosen on training splits)")


def _common(p: argparse.ArgumentParser, steps: int, batch_size: int, size: bool = True) -> None:
    p.add_argument("--out", required=True, help="checkpoint (.pt) to write")
    p.add_argument("--repo", default=None, help="also export into this model repository")
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=2e-3)
    if size:
        p.add_argument("--size", type=int, default=256, help="letterbox images to this many pixels (long side)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="forward passes in fp32 (default), or autocast to bf16 (weights and losses stay fp32: 1.3-2x faster "
                   "steps on a CPU with AVX512-BF16, but a DeepLab on msrc_v2 scored 0.01-0.03 lower, docs/RESULTS.md); auto: bf16 "
                   "where the CPU computes it natively (AVX512-BF16, AMX), else fp32. The checkpoint records which ran")


def register(sub: Any) -> None:
    """Add the data set commands to ``python -m training``'s subparsers."""
    p = sub.add_parser("train-classifier", help="train the CAM classifier on a folder's image-level labels")
    add_split(p)
    p.add_argument("--no-balance", action="store_true", help="draw images uniformly (default: every class, and 'no class', equally often)")
    p.add_argument("--scales", default="0.5,0.625,0.75,1.0", help="training scales of the letterboxed image, one per batch")
    p.add_argument("--init", default=None,
                   help="start the backbone from this classifier or DeepLab checkpoint (e.g. one pretrained on another folder)")
    p.add_argument("--s2c", default=None, metavar="REPO",
                   help="add S2C's losses with the promptable model (sam_encoder + sam_decoder) of this model repository")
    p.add_argument("--s2c-losses", default="ssc,cpm", help="which S2C losses: ssc, cpm or ssc,cpm")
    p.add_argument("--se-cache", default=None, help="folder caching the SE maps (default: REPO/se_cache)")
    p.add_argument("--cpm-warmup", type=int, default=300, help="steps of plain training before CPM starts")
    p.add_argument("--cpm-refresh", type=int, default=300, help="recompute CPM targets with the current classifier every this many steps")
    p.add_argument("--color-jitter", type=float, default=0.0, help="scale each image's brightness, contrast and saturation by 1 ± up to this")
    _common(p, 1200, 16)
    p.set_defaults(func=cmd_train_classifier)

    p = sub.add_parser("train-promptable", help="train the class-agnostic SAM-contract model on the masks of other data sets")
    p.add_argument("--data", action="append", default=[], help="data set folder whose masks to learn from (repeatable; all its images)")
    p.add_argument("--synthetic", type=int, default=0, help="also this many procedural samples")
    p.add_argument("--crop", type=int, default=128, help="training window side in px of the 256 frame (192-256 for large objects)")
    _common(p, 1500, 12, size=False)
    p.set_defaults(func=cmd_train_promptable)

    p = sub.add_parser("pretrain-backbone", help="self-supervised (SimCLR) pretraining of the classifier's backbone on a folder's images, "
                       "no labels or masks read")
    p.add_argument("--data", action="append", default=[], help="data set folder whose images to learn from (repeatable)")
    p.add_argument("--ids", default=None, help="regular expression every --data folder's image ids must match in full, e.g. "
                   "'.*_exp[0-3]_.*' (a training split's own pixels; default: all its images)")
    p.add_argument("--side", type=int, default=128, help="images are resized to this square side once, in memory")
    p.add_argument("--crop", type=int, default=96, help="each view's side in px (a random crop of 20-100 %% of the image)")
    p.add_argument("--dense", type=float, default=0.0, help="weight of the cell-level loss (0 = image-level SimCLR only)")
    p.add_argument("--init", default=None, help="start from this classifier, DeepLab or backbone checkpoint's backbone")
    _common(p, 1500, 128, size=False)
    p.set_defaults(func=cmd_pretrain_backbone)

    p = sub.add_parser("pseudo-label", help="run the Segment pipeline in process over a folder's weak labels")
    add_split(p)
    p.add_argument("--model-repo", required=True)
    p.add_argument("--out", required=True, help="folder for masks/, overlays/, pseudo_labels.json")
    p.add_argument("--source", choices=["pipeline", "cam_threshold", "cam_crf", "cam_saliency", "cam_rw", "cam_rw_saliency", "consensus"], default="pipeline",
                   help="what makes the label maps: the Segment pipeline (default), the classifier's CAMs of the image's tags "
                   "(cam_saliency: split between salient objects and stuff by --saliency; cam_rw, cam_rw_saliency: the CAMs "
                   "spread by a random walk over the classifier's feature affinity first), "
                   "or consensus (pipeline and CAM + CRF agree; elsewhere 255, ignored by train-deeplab)")
    p.add_argument("--saliency", default=None, help="with --source cam_saliency or cam_rw_saliency: a salient-object model repository (a one-class "
                   "deeplab, e.g. train-deeplab on duts_tr)")
    p.add_argument("--refinement", choices=["none", "crf", "superpixel"], default="none", help="the pipeline's refinement")
    _cam_label_options(p, "sources")
    p.add_argument("--background", choices=["auto", "yes", "no"], default="auto",
                   help="whether the data set has a background class (auto: from its masks; 'no' fills 0/255 pixels)")
    p.add_argument("--no-overlays", action="store_true")
    p.add_argument("--stuff-agreement", type=float, default=0.0, help="the pipeline's WSSS_STUFF_AGREEMENT (0 = off)")
    p.set_defaults(func=cmd_pseudo_label)

    p = sub.add_parser("train-deeplab", help="train DeepLabv3+ on pseudo-labels (--labels DIR) or on the folder's ground truth")
    add_split(p)
    p.add_argument("--labels", default=None, help="folder of label-map PNGs, or a folder holding them in masks/ (pseudo-label's or weakseg label's output); default: the ground truth")
    p.add_argument("--init-classifier", default=None, help="start the backbone from this classifier (or DeepLab) checkpoint")
    p.add_argument("--balance", action="store_true", help="defect-centred crops and class-weighted loss (rare, small classes)")
    p.add_argument("--max-class-weight", type=float, default=10.0, help="with --balance: the largest loss weight of a rare class")
    p.add_argument("--no-vflip", action="store_true", help="horizontal flips only (images with an up and a down: photographs)")
    p.add_argument("--scales", default="1", help="training scales, one drawn per batch (e.g. 0.75,1,1.25: windows of 160/scale px resized to 160)")
    p.add_argument("--color-jitter", type=float, default=0.0, help="scale each window's brightness, contrast and saturation by 1 ± up to this")
    p.add_argument("--predict-scales", default=None, help="the test-time scales Predict should average (e.g. 0.75,1,1.25): recorded "
                   "and written into the exported config (predict_scales)")
    p.add_argument("--predict-flip", action=argparse.BooleanOptionalAction, default=None,
                   help="Predict should also run it on the mirrored image, or not (config predict_flip; default: not recorded)")
    _common(p, 1000, 16)
    p.set_defaults(func=cmd_train_deeplab)

    p = sub.add_parser("export", help="export a checkpoint into a model repository (validated by the service's loader)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--repo", required=True)
    p.add_argument("--model-set", default="", help="export as that model set's models (<set>.deeplab, ...); default: the default set")
    p.add_argument("--next-version", action="store_true",
                   help="add the models as their next version (a live repository: a server with WSSS_MODEL_CONTROL_MODE=poll switches to it)")
    p.add_argument("--predict-scales", default=None, help="a DeepLab's test-time scales in its config (default: the checkpoint's, if any)")
    p.add_argument("--predict-flip", action=argparse.BooleanOptionalAction, default=None,
                   help="a DeepLab's config says to run it on the mirrored image too, or not (default: the checkpoint's, if any)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("upgrade-models", help="rewrite a repository's older exports (float images in) to take uint8 pixels: DeepLab "
                       "(+ labels and confidence from the graph) and the SAM encoder (normalise and pad in the graph)")
    p.add_argument("--repo", required=True, help="model repository")
    p.add_argument("--name", action="append", default=[],
                   help="a model folder (repeatable; default: every deeplab and sam_encoder, of every set)")
    p.set_defaults(func=cmd_upgrade_models)

    p = sub.add_parser("evaluate", help="mIoU of every method on a folder with masks; JSON + Markdown + overlays")
    add_split(p)
    p.add_argument("--model-repo", required=True)
    p.add_argument("--out", required=True, help="report .json (the .md and <stem>_overlays/ go beside it)")
    p.add_argument("--deeplab", action="append", default=[], help="NAME=REPO: also evaluate that repository's deeplab (repeatable)")
    p.add_argument("--methods", default="", help="comma-separated subset of the methods")
    p.add_argument("--overlays", type=int, default=6, help="overlay PNGs for this many images")
    p.add_argument("--stuff-agreement", type=float, default=0.0, help="the pipeline's WSSS_STUFF_AGREEMENT (0 = off)")
    p.add_argument("--saliency", default=None, help="also the cam_saliency and cam_rw_saliency methods with this salient-object model repository "
                   "(objectness measured over the images evaluated, from their tags)")
    _cam_label_options(p, "methods")
    p.add_argument("--predict-scales", default=None, help="DeepLab's test-time scales, as WSSS_PREDICT_SCALES (e.g. 0.75,1,1.25; "
                   "default: each DeepLab's config, else 1)")
    p.add_argument("--predict-flip", action=argparse.BooleanOptionalAction, default=None,
                   help="DeepLab also runs (or not) on the mirrored image, as WSSS_PREDICT_FLIP (default: each DeepLab's config, else not)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("score-coco", help="mIoU of a COCO segmentation file (weakseg label's annotations.json) against a folder's masks")
    add_split(p)
    p.add_argument("--coco", required=True, help="COCO file with compressed-RLE segmentations")
    p.add_argument("--out", default="", help="report .json")
    p.set_defaults(func=cmd_score_coco)

    p = sub.add_parser("evaluate-promptable", help="the promptable model alone: box and 1-click mIoU on a folder's objects")
    add_split(p)
    p.add_argument("--model-repo", required=True, help="repository with sam_encoder and sam_decoder")
    p.add_argument("--out", required=True, help="report .json")
    p.set_defaults(func=cmd_evaluate_promptable)


def run(args: argparse.Namespace) -> int:
    """Run a command; a data set problem is one line on stderr and exit status 2."""
    try:
        args.func(args)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0

