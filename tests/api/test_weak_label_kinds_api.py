"""Boxes, clicks and mixed labels through Segment on the default models: masks follow the objects."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from service.api.background import BackgroundServer
from tests.conftest import iou, png_bytes
from training.synthetic import CLASSES, HELD_OUT_SEED, Sample, generate
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc

SAMPLES = [s for s in (generate(HELD_OUT_SEED, i) for i in range(30)) if s.labels][:14]


def _label_map(resp: pb.SegmentResponse) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(resp.mask.png)))


def _boxes(s: Sample) -> list[pb.BoxLabel]:
    out = []
    for k in range(1, len(s.instance_classes) + 1):
        ys, xs = np.nonzero(s.instances == k)
        if len(xs) >= 6:
            out.append(pb.BoxLabel(label=CLASSES[s.instance_classes[k - 1] - 1], x0=xs.min(), y0=ys.min(), x1=xs.max() + 1, y1=ys.max() + 1))
    return out


def _interior_clicks(s: Sample) -> list[pb.PointLabel]:
    out = []
    for k in range(1, len(s.instance_classes) + 1):
        region = s.instances == k
        if region.sum() < 6:
            continue
        dist = ndi.distance_transform_edt(region)
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        out.append(pb.PointLabel(label=CLASSES[s.instance_classes[k - 1] - 1], x=x + 0.5, y=y + 0.5))
    return out


def _mean_iou(stub: pb_grpc.SegmentationServiceStub, make: object) -> tuple[float, list[pb.SegmentResponse]]:
    ious, responses = [], []
    for s in SAMPLES:
        resp = stub.Segment(pb.SegmentRequest(image=pb.Image(encoded=png_bytes(s.image)), labels=make(s)), timeout=60)  # type: ignore[operator]
        responses.append(resp)
        lm = _label_map(resp)
        for k in set(np.unique(s.mask).tolist()) - {0}:
            ious.append(iou(lm == k, s.mask == k))
    return float(np.mean(ious)), responses


def test_boxes(stub: pb_grpc.SegmentationServiceStub) -> None:
    score, responses = _mean_iou(stub, lambda s: pb.WeakLabels(boxes=_boxes(s)))
    assert score > 0.5, score
    for s, resp in zip(SAMPLES, responses):
        n_instances = sum(len(c.instances) for c in resp.classes)
        assert n_instances == len(_boxes(s))
        for c in resp.classes:
            assert all(i.kind == "box" and [p.label for p in i.prompts][:2] == [2, 3] for i in c.instances)


def test_clicks(stub: pb_grpc.SegmentationServiceStub) -> None:
    score, responses = _mean_iou(stub, lambda s: pb.WeakLabels(points=_interior_clicks(s)))
    assert score > 0.45, score
    for resp in responses:
        for c in resp.classes:
            assert [i.kind for i in c.instances] == ["click"]


def test_mixed_tags_boxes_and_clicks(stub: pb_grpc.SegmentationServiceStub) -> None:
    def mixed(s: Sample) -> pb.WeakLabels:
        boxes = _boxes(s)[:1]
        boxed = {b.label for b in boxes}
        clicks = [c for c in _interior_clicks(s) if c.label not in boxed][:1]
        return pb.WeakLabels(image_labels=s.labels, boxes=boxes, points=clicks)

    score, _ = _mean_iou(stub, mixed)
    assert score > 0.5, score


def test_negative_click_removes_an_instance(stub: pb_grpc.SegmentationServiceStub) -> None:
    """Two instances of one class: clicking both covers both; a negative click on the second removes it."""
    def two_of_a_kind(s: Sample) -> bool:
        clicks = _interior_clicks(s)
        return len(clicks) >= 2 and clicks[0].label == clicks[1].label

    s = next(s for s in (generate(HELD_OUT_SEED, i) for i in range(200)) if two_of_a_kind(s))
    a, b = _interior_clicks(s)[:2]
    k = CLASSES.index(a.label) + 1
    first, second = (s.instances == s.instances[int(c.y), int(c.x)] for c in (a, b))
    image = pb.Image(encoded=png_bytes(s.image))
    both = _label_map(stub.Segment(pb.SegmentRequest(image=image, labels=pb.WeakLabels(points=[a, b])), timeout=60))
    neg_b = pb.PointLabel(label=b.label, x=b.x, y=b.y, negative=True)
    only_a = _label_map(stub.Segment(pb.SegmentRequest(image=image, labels=pb.WeakLabels(points=[a, neg_b])), timeout=60))
    assert (both == k)[second].mean() > 0.3
    assert (only_a == k)[second].mean() < 0.5 * (both == k)[second].mean()
    assert (only_a == k)[first].mean() > 0.3


def test_review_score_and_omit_mask(stub: pb_grpc.SegmentationServiceStub) -> None:
    s = SAMPLES[0]
    req = pb.SegmentRequest(image=pb.Image(encoded=png_bytes(s.image)), labels=pb.WeakLabels(image_labels=s.labels),
                            options=pb.SegmentOptions(omit_mask=True, mask_formats=[pb.MASK_FORMAT_PNG, pb.MASK_FORMAT_COCO_RLE]))
    resp = stub.Segment(req, timeout=60)
    assert resp.mask.png == b"" and resp.mask.raw == b"" and all(not c.HasField("rle") for c in resp.classes)
    assert 0.0 <= resp.review_score <= 1.0
    worst = min(c.sam_iou * c.stability_score for c in resp.classes)
    assert resp.review_score >= 1 - worst - 1e-6


def test_interactive_round_reuses_the_embedding(server: BackgroundServer, stub: pb_grpc.SegmentationServiceStub) -> None:
    s = next(s for s in SAMPLES if _interior_clicks(s))
    click = _interior_clicks(s)[0]
    image = pb.Image(encoded=png_bytes(s.image))
    opts = pb.SegmentOptions(return_low_res_logits=True)
    first = stub.Segment(pb.SegmentRequest(image=image, labels=pb.WeakLabels(points=[click]), options=opts), timeout=60)
    (cls,) = first.classes
    assert len(cls.low_res_logits) == 256 * 256 * 4
    encoder_runs = server.metric("wsss_model_inference_seconds_count", {"model": "sam_encoder", "provider": "CPUExecutionProvider"})
    hits = server.metric("wsss_embedding_cache_total", {"result": "hit"})
    again = pb.WeakLabels(points=[click], mask_inputs=[pb.MaskInput(label=click.label, low_res_logits=cls.low_res_logits)])
    second = stub.Segment(pb.SegmentRequest(image=image, labels=again, options=opts), timeout=60)
    assert server.metric("wsss_model_inference_seconds_count", {"model": "sam_encoder", "provider": "CPUExecutionProvider"}) == encoder_runs
    assert server.metric("wsss_embedding_cache_total", {"result": "hit"}) == hits + 1
    k = CLASSES.index(click.label) + 1
    assert iou(_label_map(second) == k, s.mask == k) > 0.3


def test_bad_mask_input(stub: pb_grpc.SegmentationServiceStub) -> None:
    s = SAMPLES[0]
    for logits, message in ((b"\0" * 100, "must be 256x256 float32 = 262144 bytes, got 100"),
                            (np.full((256, 256), np.nan, "<f4").tobytes(), "must be finite")):
        labels = pb.WeakLabels(mask_inputs=[pb.MaskInput(label=s.labels[0], low_res_logits=logits)])
        with pytest.raises(grpc.RpcError) as info:
            stub.Segment(pb.SegmentRequest(image=pb.Image(encoded=png_bytes(s.image)), labels=labels), timeout=30)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in info.value.details()


def _scribbles(s: Sample) -> list[pb.ScribbleLabel]:
    """A 6-vertex polyline along each instance's skeleton (its main axis order)."""
    from skimage.morphology import skeletonize

    out = []
    for k in range(1, len(s.instance_classes) + 1):
        ys, xs = np.nonzero(skeletonize(s.instances == k))
        if len(xs) < 2:
            continue
        pts = np.c_[xs, ys].astype(float)
        axis = np.linalg.svd(pts - pts.mean(0))[2][0]
        order = np.argsort((pts - pts.mean(0)) @ axis)
        sel = order[np.linspace(0, len(order) - 1, 6).astype(int)]
        out.append(pb.ScribbleLabel(label=CLASSES[s.instance_classes[k - 1] - 1], points=[pb.Point(x=xs[j] + 0.5, y=ys[j] + 0.5) for j in sel], width=3))
    return out


def test_scribbles(stub: pb_grpc.SegmentationServiceStub) -> None:
    score, responses = _mean_iou(stub, lambda s: pb.WeakLabels(scribbles=_scribbles(s)))
    assert score > 0.5, score
    for resp in responses:
        assert "scribbles" in [t.stage for t in resp.timings]
        for c in resp.classes:
            assert [i.kind for i in c.instances] == ["scribble"]
            assert any(p.source == "scribble" and p.label == 1 for p in c.prompts)
