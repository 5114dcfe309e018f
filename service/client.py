"""Command-line client: ``python -m service.client {segment,predict,models} ...``.

For each image it writes ``<stem>.mask.png`` (label map), ``<stem>.overlay.png`` (colours over the
image) and ``<stem>.json`` (classes, metrics, timings). A folder is sent as one SegmentStream with
a progress bar.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import numpy.typing as npt
from google.protobuf.json_format import MessageToDict
from PIL import Image
from tqdm import tqdm

from service.channel_config import channel_options
from service.labeling import inputs, run
from service.labeling.inputs import LabelingError
from service.pipeline.encoding import decode_rle
from service.render import overlay
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


GT_SUFFIX = "_gt"
"""A folder's ``<stem>_gt.png`` is the ground-truth label map of ``<stem>.*`` (as in examples/), not an image."""


def images_in(path: Path) -> list[Path]:
    """The image of a file argument, or a folder's images (not its ``*_gt.png`` label maps)."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.stem.endswith(GT_SUFFIX))
    return [path]


def ground_truth_for(gt: Path, image: Path) -> Path | None:
    """``--gt``: a file is the ground truth; in a folder, ``<stem>.png`` or ``<stem>_gt.png``."""
    if not gt.is_dir():
        return gt
    for name in (f"{image.stem}.png", f"{image.stem}{GT_SUFFIX}.png"):
        if (gt / name).is_file() and gt / name != image:
            return gt / name
    return None


def _write(out_dir: Path, source: Path, mask_png: bytes, info: dict[str, object]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    label_map = np.asarray(Image.open(io.BytesIO(mask_png)))
    image = np.asarray(Image.open(source).convert("RGB"))
    Image.fromarray(label_map).save(out_dir / f"{source.stem}.mask.png")
    Image.fromarray(overlay(image, label_map)).save(out_dir / f"{source.stem}.overlay.png")
    (out_dir / f"{source.stem}.json").write_text(json.dumps(info, indent=2) + "\n")


def _info(message: object) -> dict[str, object]:
    info = MessageToDict(message, preserving_proto_field_name=True)  # type: ignore[arg-type]
    mask = info.get("mask")
    if isinstance(mask, dict):
        mask.pop("png", None)
        mask.pop("raw", None)
    return info


def _formats(names: str) -> list[pb.MaskFormat]:
    table: dict[str, pb.MaskFormat] = {"png": pb.MASK_FORMAT_PNG, "rle": pb.MASK_FORMAT_COCO_RLE, "raw": pb.MASK_FORMAT_RAW}
    return [table[n.strip()] for n in names.split(",") if n.strip()]


def _numbers(text: str, count: int | None, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: {text!r} is not a comma-separated list of numbers") from None
    if count is not None and len(values) != count:
        raise argparse.ArgumentTypeError(f"{what}: needs {count} numbers, got {len(values)}")
    return values


def parse_box(text: str) -> pb.BoxLabel:
    """``label:x0,y0,x1,y1``"""
    label, _, coords = text.partition(":")
    x0, y0, x1, y1 = _numbers(coords, 4, "--box")
    return pb.BoxLabel(label=label, x0=x0, y0=y0, x1=x1, y1=y1)


def parse_point(text: str) -> pb.PointLabel:
    """``label:x,y`` (positive) or ``label:x,y:neg``"""
    label, _, rest = text.partition(":")
    coords, _, flag = rest.partition(":")
    x, y = _numbers(coords, 2, "--point")
    return pb.PointLabel(label=label, x=x, y=y, negative=flag.strip().lower() in ("neg", "negative"))


def parse_scribble(text: str) -> pb.ScribbleLabel:
    """``label:x,y;x,y;...`` or ``label:x,y;x,y;...:width``"""
    label, _, rest = text.partition(":")
    coords, _, width = rest.partition(":")
    pts = [_numbers(p, 2, "--scribble") for p in coords.split(";") if p.strip()]
    return pb.ScribbleLabel(label=label, points=[pb.Point(x=x, y=y) for x, y in pts], width=float(width) if width else 0.0)


def segment_requests(args: argparse.Namespace, paths: list[Path]) -> Iterator[pb.SegmentRequest]:
    labels = pb.WeakLabels(
        image_labels=[s.strip() for s in (args.labels or "").split(",") if s.strip()],
        boxes=args.box,
        points=args.point,
        scribbles=args.scribble,
    )
    for path in paths:
        req = pb.SegmentRequest(
            id=path.name,
            image=pb.Image(encoded=path.read_bytes()),
            labels=labels,
            options=pb.SegmentOptions(mask_formats=_formats(args.formats)),
        )
        gt_path = ground_truth_for(Path(args.gt), path) if args.gt else None
        if gt_path is not None and gt_path.is_file():
            req.ground_truth.encoded = gt_path.read_bytes()
        yield req


def cmd_segment(stub: pb_grpc.SegmentationServiceStub, args: argparse.Namespace) -> int:
    paths = images_in(Path(args.image))
    out = Path(args.out)
    failures = 0
    if len(paths) == 1:
        resp = stub.Segment(next(segment_requests(args, paths)), timeout=args.timeout)
        _write(out, paths[0], resp.mask.png, _info(resp))
        print(json.dumps({k: v for k, v in _info(resp).items() if k in ("classes", "metrics", "labels_source")}, indent=2))
        print(f"wrote {out / (paths[0].stem + '.mask.png')}, .overlay.png, .json")
        return 0
    by_name = {p.name: p for p in paths}
    for resp in tqdm(stub.SegmentStream(segment_requests(args, paths)), total=len(paths), unit="img"):
        if resp.HasField("error"):
            failures += 1
            tqdm.write(f"{resp.id}: {resp.error.code_name}: {resp.error.message}")
            continue
        _write(out, by_name[resp.id], resp.mask.png, _info(resp))
    print(f"{len(paths) - failures} of {len(paths)} images segmented into {out}")
    return 1 if failures else 0


def cmd_predict(stub: pb_grpc.SegmentationServiceStub, args: argparse.Namespace) -> int:
    paths = images_in(Path(args.image))
    out = Path(args.out)
    for path in tqdm(paths, unit="img", disable=len(paths) == 1):
        resp = stub.Predict(pb.PredictRequest(id=path.name, image=pb.Image(encoded=path.read_bytes())), timeout=args.timeout)
        _write(out, path, resp.mask.png, _info(resp))
    print(f"{len(paths)} image(s) predicted into {out}")
    return 0


def cmd_everything(stub: pb_grpc.SegmentationServiceStub, args: argparse.Namespace) -> int:
    """Class-agnostic proposals of each image: <stem>.everything.json (COCO-style: segmentation RLE,
    bbox, area, scores) and <stem>.everything.png (each proposal in its own colour, smallest on top)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    options = pb.EverythingOptions(points_per_side=args.points_per_side, max_masks=args.max_masks, min_mask_region_area=args.min_area)
    if args.pred_iou_thresh is not None:
        options.pred_iou_thresh = args.pred_iou_thresh
    if args.stability_score_thresh is not None:
        options.stability_score_thresh = args.stability_score_thresh
    paths = images_in(Path(args.image))
    for path in tqdm(paths, unit="img", disable=len(paths) == 1):
        resp = stub.SegmentEverything(
            pb.SegmentEverythingRequest(id=path.name, image=pb.Image(encoded=path.read_bytes()), options=options), timeout=args.timeout
        )
        anns = [
            {"id": i + 1, "segmentation": {"size": list(p.rle.size), "counts": p.rle.counts}, "bbox": list(p.bbox), "area": p.area,
             "predicted_iou": p.predicted_iou, "stability_score": p.stability_score, "point_coords": [[p.point.x, p.point.y]]}
            for i, p in enumerate(resp.proposals)
        ]
        (out / f"{path.stem}.everything.json").write_text(json.dumps({"image": path.name, "annotations": anns}, indent=1) + "\n")
        image = np.asarray(Image.open(path).convert("RGB"))
        label_map = np.zeros(image.shape[:2], np.uint8)
        for i in sorted(range(len(resp.proposals)), key=lambda i: -resp.proposals[i].area):
            label_map[_decode_rle(resp.proposals[i].rle)] = i % 254 + 1
        Image.fromarray(overlay(image, label_map)).save(out / f"{path.stem}.everything.png")
        if len(paths) > 1:
            tqdm.write(f"{path.name}: {len(resp.proposals)} proposals from {resp.points} points")
    print(f"{len(paths)} image(s) into {out} (<stem>.everything.json, .everything.png)")
    return 0


def _decode_rle(rle: pb.CocoRle) -> npt.NDArray[np.bool_]:
    """COCO compressed RLE -> binary [H, W] mask (the inverse of the server's encoding)."""
    h, w = rle.size
    return decode_rle(rle.counts, h, w)


def served_classes(stub: pb_grpc.SegmentationServiceStub, timeout: float, model_set: str = "") -> list[str]:
    """The classes model set ``model_set`` segments ("" = the default set; background excluded)."""
    listed = stub.ListModels(pb.ListModelsRequest(), timeout=timeout)
    wanted = model_set or "default"
    for s in listed.model_sets:
        if s.name == wanted and s.classes:
            return list(s.classes)
    raise LabelingError(f"the server has no model set {wanted!r} with classes (sets: {[s.name for s in listed.model_sets]})")


def _renames(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, target = pair.partition("=")
        if not sep or not name or not target:
            raise LabelingError(f"--map {pair!r}: expected NAME=CLASS")
        out[name] = target
    return out


def cmd_label(stub: pb_grpc.SegmentationServiceStub, args: argparse.Namespace) -> int:
    """Bulk labeling: a data-set folder or images + a COCO detection file -> annotations.json,
    masks/, confidence/, overlays/, review.html in --out (resumable; see service/labeling)."""
    try:
        classes = served_classes(stub, args.timeout, args.model_set)
        source = Path(args.input)
        if args.coco:
            items = inputs.from_coco(source / "images" if (source / "images").is_dir() else source, Path(args.coco), classes, _renames(args.map))
        else:
            items = inputs.from_dataset(source)
    except LabelingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        report = run.label(stub, items, out, classes, window=args.window, retries=args.retries, backoff=args.backoff, title=source.name,
                           stream_seconds=args.stream_seconds, model_set=args.model_set)
    except KeyboardInterrupt:
        print(f"interrupted: what finished is in {out} (annotations.json, review.html); run the same command again to go on", file=sys.stderr)
        return 130
    print(
        f"{report.ok} labelled, {report.known_empty} known empty (not sent), {report.failed} failed, {report.skipped} already done "
        f"of {report.total}; {report.sent} requests in {report.seconds:.1f} s ({report.images_per_second:.2f} images/s)"
    )
    print("wrote " + ", ".join(report.outputs) + f", {out}/masks/, confidence/, overlays/")
    if report.stopped:
        print(f"stopped early: {report.stopped}; run the same command again to go on", file=sys.stderr)
        return 2
    return 1 if report.failed else 0


def cmd_models(stub: pb_grpc.SegmentationServiceStub, args: argparse.Namespace) -> int:
    print(json.dumps(MessageToDict(stub.ListModels(pb.ListModelsRequest(), timeout=args.timeout), preserving_proto_field_name=True), indent=2))
    return 0


def open_channel(address: str, options: list[tuple[str, object]], tls_ca: str = "", tls_cert: str = "", tls_key: str = "") -> grpc.Channel:
    """A plaintext channel, or TLS when ``tls_ca`` is given (mutual TLS with ``tls_cert`` + ``tls_key``)."""
    if not tls_ca:
        return grpc.insecure_channel(address, options=options)
    creds = grpc.ssl_channel_credentials(
        root_certificates=Path(tls_ca).read_bytes(),
        private_key=Path(tls_key).read_bytes() if tls_key else None,
        certificate_chain=Path(tls_cert).read_bytes() if tls_cert else None,
    )
    return grpc.secure_channel(address, creds, options=options)


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):  # type: ignore[misc]
    """Adds ``authorization: Bearer <token>`` to every call."""

    def __init__(self, token: str) -> None:
        self.header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        # grpc hands interceptors a namedtuple (grpc._interceptor._ClientCallDetails)
        return details._replace(metadata=list(details.metadata or []) + [self.header])  # type: ignore[attr-defined,no-any-return]

    def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request_iterator)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.client", description="WeakSeg command-line client")
    parser.add_argument("--address", default="localhost:50051",
                        help="server host:port, or several replicas: dns:///name:port (every address the name resolves to)")
    parser.add_argument("--lb", default="round_robin", choices=["round_robin", "pick_first"], help="load balancing over the addresses")
    parser.add_argument("--no-retry", action="store_true", help="no channel retry policy (UNAVAILABLE on unary calls is retried by default)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per call")
    parser.add_argument("--max-message-mb", type=int, default=64, help="largest gRPC message sent or received, MiB (gRPC's default is 4)")
    parser.add_argument("--token", default=os.environ.get("WSSS_TOKEN", ""), help="bearer token (default: $WSSS_TOKEN)")
    parser.add_argument("--tls-ca", default="", help="PEM CA that signed the server's certificate: connect with TLS")
    parser.add_argument("--tls-cert", default="", help="PEM client certificate (mutual TLS)")
    parser.add_argument("--tls-key", default="", help="PEM key of --tls-cert")
    sub = parser.add_subparsers(dest="command", required=True)
    seg = sub.add_parser("segment", help="image (or folder) + class tags -> mask, overlay, metrics")
    seg.add_argument("image", help="image file or folder of images")
    seg.add_argument("--labels", default="", help="comma-separated class tags; no labels at all = let the classifier decide")
    seg.add_argument("--box", type=parse_box, action="append", default=[], help="label:x0,y0,x1,y1 (repeatable)")
    seg.add_argument("--point", type=parse_point, action="append", default=[], help="label:x,y or label:x,y:neg (repeatable)")
    seg.add_argument("--scribble", type=parse_scribble, action="append", default=[], help="label:x,y;x,y;... [:width] (repeatable)")
    seg.add_argument("--gt", default="", help="ground-truth label map PNG, or a folder of <stem>.png / <stem>_gt.png, for metrics")
    seg.add_argument("--formats", default="png", help="mask formats: png, rle, raw (comma-separated)")
    seg.add_argument("--out", default="out", help="output folder")
    pre = sub.add_parser("predict", help="image (or folder) -> DeepLab mask and overlay")
    pre.add_argument("image")
    pre.add_argument("--out", default="out")
    sub.add_parser("models", help="list the served models")
    eve = sub.add_parser("everything", help="image (or folder) -> class-agnostic mask proposals (SegmentEverything)")
    eve.add_argument("image")
    eve.add_argument("--points-per-side", type=int, default=16, help="grid of N x N point prompts (the server's default is 32)")
    eve.add_argument("--pred-iou-thresh", type=float, default=None)
    eve.add_argument("--stability-score-thresh", type=float, default=None)
    eve.add_argument("--min-area", type=int, default=0, help="min_mask_region_area")
    eve.add_argument("--max-masks", type=int, default=0)
    eve.add_argument("--out", default="out")
    lab = sub.add_parser("label", help="bulk labeling: data-set folder (images/ + labels.json) or images + --coco FILE -> COCO, masks, review.html")
    lab.add_argument("input", help="data-set folder (images/ + labels.json), or with --coco the folder of the COCO file's images")
    lab.add_argument("--out", required=True, help="output folder (re-running with the same one resumes)")
    lab.add_argument("--coco", default="", help="COCO detection JSON: its boxes are the weak labels")
    lab.add_argument("--map", action="append", default=[], help="NAME=CLASS: a COCO category name -> a served class (repeatable)")
    lab.add_argument("--model-set", default="", help="the server's model set to label with (default: its default set)")
    lab.add_argument("--window", type=int, default=4, help="requests in flight on the stream")
    lab.add_argument("--retries", type=int, default=5, help="retries of an item (UNAVAILABLE, RESOURCE_EXHAUSTED) and of a failed stream")
    lab.add_argument("--backoff", type=float, default=0.5, help="first retry wait, seconds (doubles, at most 8)")
    lab.add_argument("--stream-seconds", type=float, default=20.0,
                     help="start a new stream (a fresh connection, maybe another replica) this often; 0 = one stream")
    args = parser.parse_args(argv)
    options = channel_options(args.max_message_mb * 1024 * 1024, args.lb, retry=not args.no_retry)
    with open_channel(args.address, options, args.tls_ca, args.tls_cert, args.tls_key) as channel:
        if args.token:
            channel = grpc.intercept_channel(channel, _BearerToken(args.token))
        stub = pb_grpc.SegmentationServiceStub(channel)
        try:
            commands = {"segment": cmd_segment, "predict": cmd_predict, "models": cmd_models, "everything": cmd_everything, "label": cmd_label}
            return commands[args.command](stub, args)
        except grpc.RpcError as err:
            print(f"error: {err.code().name}: {err.details()}", file=sys.stderr)  # type: ignore[attr-defined]
            return 2


if __name__ == "__main__":
    sys.exit(main())
