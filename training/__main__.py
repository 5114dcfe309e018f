"""``python -m training <command>``: the WeakSeg training toolkit."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from training import toolkit
from training.common import setup
from training.synthetic import CLASSES, generate


def cmd_generate(args: argparse.Namespace) -> None:
    """Write a data set folder: images/, masks/, labels.json, labels.txt."""
    out = Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    labels = {}
    for i in range(args.count):
        s = generate(args.seed, args.start + i, args.height, args.width)
        name = f"{args.seed}_{args.start + i:05d}"
        Image.fromarray(s.image).save(out / "images" / f"{name}.png")
        Image.fromarray(s.mask).save(out / "masks" / f"{name}.png")
        labels[name] = {"image_labels": s.labels}
    (out / "labels.json").write_text(json.dumps(labels, indent=1, sort_keys=True) + "\n")
    (out / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    print(f"wrote {args.count} samples to {out}")


def cmd_build_defaults(args: argparse.Namespace) -> None:
    from training.defaults import build_defaults

    setup(0, args.threads)
    with tempfile.TemporaryDirectory() as work:
        build_defaults(
            Path(args.repo), Path(args.report), Path(work),
            n_train=args.n_train, n_pseudo=args.n_pseudo, n_eval=args.n_eval,
            classifier_steps=args.classifier_steps, promptable_steps=args.promptable_steps, deeplab_steps=args.deeplab_steps,
        )


def cmd_evaluate_defaults(args: argparse.Namespace) -> None:
    """The held-out methods table of ``build-defaults`` for models already in a repository."""
    from training.defaults import evaluate_defaults

    results = evaluate_defaults(Path(args.repo), args.n)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


def cmd_evaluate_kinds(args: argparse.Namespace) -> None:
    """mIoU of the Segment pipeline per weak-label kind on held-out generator samples."""
    import platform
    import time

    from service.pipeline.types import SegmentInput
    from training.defaults import load_segmenter
    from training.derive_labels import KINDS, derive
    from training.evaluate import MethodScore
    from training.synthetic import HELD_OUT_SEED

    segmenter, _ = load_segmenter(Path(args.repo))
    samples = [generate(HELD_OUT_SEED, i) for i in range(args.n)]
    report: dict[str, object] = {"dataset": f"synthetic held-out (seed {HELD_OUT_SEED}, {args.n} images, 256x256)",
                                 "machine": f"{platform.machine()} x{__import__('os').cpu_count()} cores", "methods": {}}
    for kind in KINDS:
        score = MethodScore(len(CLASSES))
        for s in samples:
            labels = derive(kind, s.mask, CLASSES)
            start = time.perf_counter()
            pred = segmenter.segment(SegmentInput(image=s.image, labels=labels)).label_map
            score.add(pred, s.mask, time.perf_counter() - start)
        report["methods"][kind] = score.report(CLASSES)  # type: ignore[index]
        print(kind, json.dumps(report["methods"][kind]))  # type: ignore[index]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


def cmd_export_sam(args: argparse.Namespace) -> None:
    from training.export import check_repo
    from training.export_sam import export_checkpoint

    export_checkpoint(args.model_type, Path(args.checkpoint), Path(args.repo), encoder=not args.decoder_only)
    check_repo(Path(args.repo), ["sam_decoder"] + ([] if args.decoder_only else ["sam_encoder"]))
    print(f"exported SAM {args.model_type} into {args.repo}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write procedural surface-defect samples as a data set folder")
    gen.add_argument("--out", required=True)
    gen.add_argument("--count", type=int, default=20)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--start", type=int, default=0)
    gen.add_argument("--height", type=int, default=256)
    gen.add_argument("--width", type=int, default=256)
    gen.set_defaults(func=cmd_generate)
    b = sub.add_parser("build-defaults", help="train, export and evaluate the default models")
    b.add_argument("--repo", default="model_repo")
    b.add_argument("--report", default="docs/default_models.json")
    b.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    b.add_argument("--n-train", type=int, default=1500)
    b.add_argument("--n-pseudo", type=int, default=400)
    b.add_argument("--n-eval", type=int, default=100)
    b.add_argument("--classifier-steps", type=int, default=1200)
    b.add_argument("--promptable-steps", type=int, default=1500)
    b.add_argument("--deeplab-steps", type=int, default=1000)
    b.set_defaults(func=cmd_build_defaults)
    v = sub.add_parser("evaluate-defaults", help="re-evaluate a repository's models as build-defaults does, without training")
    v.add_argument("--repo", default="model_repo")
    v.add_argument("--n", type=int, default=100)
    v.add_argument("--out", default=None, help="also write the JSON here")
    v.set_defaults(func=cmd_evaluate_defaults)
    k = sub.add_parser("evaluate-kinds", help="mIoU per weak-label kind (tags, boxes, points, scribbles, mixed) on held-out samples")
    k.add_argument("--repo", default="model_repo")
    k.add_argument("--n", type=int, default=100)
    k.add_argument("--out", default="docs/weak_labels.json")
    k.set_defaults(func=cmd_evaluate_kinds)
    e = sub.add_parser("export-sam", help="export an official SAM checkpoint (vit_h/l/b, MobileSAM vit_t) into a model repository")
    e.add_argument("--model-type", required=True, choices=["vit_h", "vit_l", "vit_b", "vit_t"])
    e.add_argument("--checkpoint", required=True, help="the .pth file (e.g. sam_vit_b_01ec64.pth)")
    e.add_argument("--repo", default="model_repo")
    e.add_argument("--decoder-only", action="store_true", help="export the prompt decoder alone")
    e.set_defaults(func=cmd_export_sam)
    toolkit.register(sub)
    args = parser.parse_args(argv)
    return toolkit.run(args)


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
