"""Boxes, clicks and mixed labels through Segment on the default models: masks follow the objects."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from PIL import Image

from service.api.background import BackgroundServer
from tests.conftest import iou, png_bytes
from training import derive_labels
from training.synthetic import CLASSES, HELD_OUT_SEED, Sample, generate
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc

SAMPLES = [s for s in (generate(HELD_OUT_SEED, i) for i in range(30)) if s.labels][:14]


def _label_map(resp: pb.SegmentResponse) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(resp.mask.png)))


def _boxes(s: Sample) -> list[pb.BoxLabel]:
    return [pb.BoxLabel(label=b.label, x0=b.x0, y0=b.y0, x1=b.x1, y1=b.y1) for b in derive_labels.boxes(s.mask, CLASSES)]


def _interior_clicks(s: Sample) -> list[pb.PointLabel]:
    return [pb.PointLabel(label=c.label, x=c.x, y=c.y) for c in derive_labels.points(s.mask, CLASSES)]


def _scribbles(s: Sample) -> list[pb.ScribbleLabel]:
    return [
        pb.ScribbleLabel(label=c.label, points=[pb.Point(x=x, y=y) for x, y in c.points], width=c.width)
        for c in derive_labels.scribbles(s.mask, CLASSES)
    ]


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


def test_interactive_round_reuses_the_embedding_and_the_cams(server: BackgroundServer, stub: pb_grpc.SegmentationServiceStub) -> None:
    s = next(s for s in SAMPLES if _interior_clicks(s))
    click = _interior_clicks(s)[0]
    image = pb.Image(encoded=png_bytes(s.image))
    opts = pb.SegmentOptions(return_low_res_logits=True)
    first = stub.Segment(pb.SegmentRequest(image=image, labels=pb.WeakLabels(points=[click]), options=opts), timeout=60)
    (cls,) = first.classes
    assert len(cls.low_res_logits) == 256 * 256 * 4
    encoder_runs = server.metric("wsss_model_inference_seconds_count", {"model": "sam_encoder", "provider": "CPUExecutionProvider"})
    classifier_runs = server.metric("wsss_model_inference_seconds_count", {"model": "cam_classifier", "provider": "CPUExecutionProvider"})
    hits = server.metric("wsss_embedding_cache_total", {"result": "hit"})
    cam_hits = server.metric("wsss_cam_cache_total", {"result": "hit"})
    again = pb.WeakLabels(points=[click], mask_inputs=[pb.MaskInput(label=click.label, low_res_logits=cls.low_res_logits)])
    second = stub.Segment(pb.SegmentRequest(image=image, labels=again, options=opts), timeout=60)
    assert server.metric("wsss_model_inference_seconds_count", {"model": "sam_encoder", "provider": "CPUExecutionProvider"}) == encoder_runs
    assert server.metric("wsss_model_inference_seconds_count", {"model": "cam_classifier", "provider": "CPUExecutionProvider"}) == classifier_runs
    assert server.metric("wsss_embedding_cache_total", {"result": "hit"}) == hits + 1
    assert server.metric("wsss_cam_cache_total", {"result": "hit"}) == cam_hits + 1
    k = CLASSES.index(click.label) + 1
    assert iou(_label_map(second) == k, s.mask == k) > 0.3


def test_a_tags_round_again_reuses_the_walk_and_the_caches_report_their_bytes(server: BackgroundServer,
                                                                                  stub: pb_grpc.SegmentationServiceStub) -> None:
    s = next(s for s in (generate(HELD_OUT_SEED, 900 + i) for i in range(20)) if s.labels)  # an image no other test sends
    request = pb.SegmentRequest(image=pb.Image(encoded=png_bytes(s.image)), labels=pb.WeakLabels(image_labels=s.labels))
    misses = server.metric("wsss_cam_walk_cache_total", {"result": "miss"})
    hits = server.metric("wsss_cam_walk_cache_total", {"result": "hit"})
    first = stub.Segment(request, timeout=60)
    assert server.metric("wsss_cam_walk_cache_total", {"result": "miss"}) == misses + 1
    cam_bytes = server.metric("wsss_cache_bytes", {"cache": "cam"})
    assert cam_bytes > 0 and server.metric("wsss_cache_bytes", {"cache": "embedding"}) >= 256 * 64 * 64 * 4  # at least this image's embedding
    again = stub.Segment(request, timeout=60)
    assert server.metric("wsss_cam_walk_cache_total", {"result": "hit"}) == hits + 1
    assert server.metric("wsss_cache_bytes", {"cache": "cam"}) == cam_bytes  # nothing new kept
    assert again.mask.png == first.mask.png


def test_bad_mask_input(stub: pb_grpc.SegmentationServiceStub) -> None:
    s = SAMPLES[0]
    for logits, message in ((b"\0" * 100, "must be 256x256 float32 = 262144 bytes, got 100"),
                            (np.full((256, 256), np.nan, "<f4").tobytes(), "must be finite")):
        labels = pb.WeakLabels(mask_inputs=[pb.MaskInput(label=s.labels[0], low_res_logits=logits)])
        with pytest.raises(grpc.RpcError) as info:
            stub.Segment(pb.SegmentRequest(image=pb.Image(encoded=png_bytes(s.image)), labels=labels), timeout=30)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in info.value.details()


def test_scribbles(stub: pb_grpc.SegmentationServiceStub) -> None:
    score, responses = _mean_iou(stub, lambda s: pb.WeakLabels(scribbles=_scribbles(s)))
    assert score > 0.5, score
    for resp in responses:
        assert "scribbles" in [t.stage for t in resp.timings]
        for c in resp.classes:
            assert [i.kind for i in c.instances] == ["scribble"]
            assert any(p.source == "scribble" and p.label == 1 for p in c.prompts)


def test_instance_per_peak(stub: pb_grpc.SegmentationServiceStub) -> None:
    s = next(s for s in (generate(HELD_OUT_SEED, i) for i in range(200)) if len(derive_labels.points(s.mask, CLASSES)) >= 3)
    req = pb.SegmentRequest(image=pb.Image(encoded=png_bytes(s.image)), labels=pb.WeakLabels(image_labels=s.labels),
                            options=pb.SegmentOptions(instance_per_peak=True))
    resp = stub.Segment(req, timeout=60)
    for c in resp.classes:
        assert len(c.instances) == len(c.prompts) and all(len(i.prompts) == 1 for i in c.instances)
    k_iou = [iou(_label_map(resp) == c.class_id, s.mask == c.class_id) for c in resp.classes]
    assert np.mean(k_iou) > 0.3


def _decode(rle: pb.CocoRle) -> np.ndarray:
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": list(rle.size), "counts": rle.counts.encode()}).astype(bool)


def test_instance_rles_partition_their_class(stub: pb_grpc.SegmentationServiceStub) -> None:
    """With COCO RLE each box's instance carries its own share of the class; the shares are
    disjoint and their union is the class's pixels in the label map."""
    checked = 0
    for s in SAMPLES:
        request = pb.SegmentRequest(image=pb.Image(encoded=png_bytes(s.image)), labels=pb.WeakLabels(boxes=_boxes(s)),
                                    options=pb.SegmentOptions(mask_formats=[pb.MASK_FORMAT_PNG, pb.MASK_FORMAT_COCO_RLE]))
        resp = stub.Segment(request, timeout=60)
        lm = _label_map(resp)
        for c in resp.classes:
            shares = [_decode(i.rle) for i in c.instances]
            assert all(list(i.rle.size) == [lm.shape[0], lm.shape[1]] for i in c.instances)
            assert np.array_equal(np.logical_or.reduce(shares), lm == c.class_id)
            assert sum(int(m.sum()) for m in shares) == int((lm == c.class_id).sum())  # disjoint
            checked += len(c.instances) > 1 and all(m.any() for m in shares)
    assert checked, "no class had several boxes that each kept pixels in the samples"


def test_confidence_map(stub: pb_grpc.SegmentationServiceStub) -> None:
    """MASK_FORMAT_CONFIDENCE: an 8-bit PNG the size of the image; 0 exactly on the not-confident
    pixels; confident inside the boxed objects; only that PNG when only it is asked for."""
    s = SAMPLES[0]
    request = pb.SegmentRequest(image=pb.Image(encoded=png_bytes(s.image)), labels=pb.WeakLabels(boxes=_boxes(s)),
                                options=pb.SegmentOptions(mask_formats=[pb.MASK_FORMAT_PNG, pb.MASK_FORMAT_CONFIDENCE]))
    resp = stub.Segment(request, timeout=60)
    lm = _label_map(resp)
    conf = Image.open(io.BytesIO(resp.mask.confidence))
    assert conf.mode == "L" and conf.size == (lm.shape[1], lm.shape[0])
    q = np.asarray(conf)
    assert (q[lm == 255] == 0).all()
    fg = (lm > 0) & (lm < 255) & (s.mask == lm)
    assert fg.any() and np.median(q[fg]) > 127  # boxes: sigmoid(logit) > 0.5 inside the mask, no CAM weight
    only = stub.Segment(pb.SegmentRequest(image=request.image, labels=request.labels,
                                          options=pb.SegmentOptions(mask_formats=[pb.MASK_FORMAT_CONFIDENCE])), timeout=60)
    assert only.mask.confidence == resp.mask.confidence and not only.mask.png


def test_predict_confidence_map(stub: pb_grpc.SegmentationServiceStub) -> None:
    """Predict's confidence map: DeepLab's winning softmax probability, its mean per class close to
    PredictedClass.mean_confidence."""
    s = SAMPLES[0]
    resp = stub.Predict(pb.PredictRequest(image=pb.Image(encoded=png_bytes(s.image)), mask_formats=[pb.MASK_FORMAT_PNG, pb.MASK_FORMAT_CONFIDENCE]),
                        timeout=60)
    lm = _label_map(resp)  # type: ignore[arg-type]
    q = np.asarray(Image.open(io.BytesIO(resp.mask.confidence))).astype(np.float64) / 255
    for c in resp.classes:
        assert abs(q[lm == c.class_id].mean() - c.mean_confidence) < 0.01
