"""Segment everything: the filters against plain reference implementations, the generator on a
fixed decoder against the same filters applied by hand, the SE map, options and the working frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask
from skimage.measure import label as sk_label

from service.errors import InvalidInput, Overloaded
from service.models.sam import ImageEmbedding, ResizeLongestSide, SamDecoder
from service.pipeline.amg_filters import box_nms, mask_boxes, point_grid, remove_small_regions, stability_scores
from service.pipeline.everything import Candidate, EverythingGenerator, EverythingOptions, generate, se_map
from service.runtime import ModelRepository
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend
from tests.onnx_builders import decoder_repo

# --- reference implementations, written the plain way -------------------------------------------


def ref_stability(logits: np.ndarray, offset: float) -> float:
    hi = sum(1 for v in logits.ravel() if v > offset)
    lo = sum(1 for v in logits.ravel() if v > -offset)
    return hi / lo if lo else 1.0


def ref_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    return (0.0, 0.0, 0.0, 0.0) if len(xs) == 0 else (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))


def ref_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def ref_nms(boxes: list[tuple[float, ...]], scores: list[float], thresh: float) -> list[int]:
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    keep: list[int] = []
    for i in order:
        if all(ref_iou(boxes[i], boxes[j]) <= thresh for j in keep):
            keep.append(i)
    return keep


def ref_small_regions(mask: np.ndarray, area: int, mode: str) -> tuple[np.ndarray, bool]:
    target = ~mask if mode == "holes" else mask
    labels = sk_label(target, connectivity=2)
    sizes = {k: int((labels == k).sum()) for k in range(1, labels.max() + 1)}
    small = [k for k, s in sizes.items() if s < area]
    if not small:
        return mask, False
    out = mask.copy()
    if mode == "holes":
        for k in small:
            out[labels == k] = True
        return out, True
    big = [k for k in sizes if k not in small] or [max(sizes, key=lambda k: (sizes[k], -k))]
    return np.isin(labels, big), True


# --- the filters ---------------------------------------------------------------------------------


def test_point_grid_is_segment_anythings() -> None:
    grid = point_grid(4)
    assert grid.shape == (16, 2)
    assert np.allclose(grid[:4, 0], [0.125, 0.375, 0.625, 0.875]) and np.allclose(grid[:4, 1], 0.125)
    assert np.allclose(grid[4:8, 1], 0.375)


def test_stability_matches_counts() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (5, 17, 23)).astype(np.float32)
    logits[4] = -5.0  # empty mask: stable by definition
    got = stability_scores(logits, 0.0, 1.0)
    assert got == pytest.approx([ref_stability(m, 1.0) for m in logits])
    assert got[4] == 1.0


def test_boxes_are_inclusive_and_zero_when_empty() -> None:
    rng = np.random.default_rng(1)
    masks = rng.random((6, 20, 30)) > 0.97
    masks[0] = False
    masks[1] = False
    masks[1, 7, 11] = True
    assert [tuple(b) for b in mask_boxes(masks)] == [ref_box(m) for m in masks]
    assert tuple(mask_boxes(masks)[1]) == (11.0, 7.0, 11.0, 7.0)


@pytest.mark.parametrize("thresh", [0.0, 0.3, 0.7, 1.0])
def test_nms_matches_greedy_reference(thresh: float) -> None:
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 80, (60, 2))
    wh = rng.uniform(1, 40, (60, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = np.round(rng.uniform(0, 1, 60), 1).astype(np.float32)  # ties on purpose
    got = box_nms(boxes, scores, thresh).tolist()
    assert got == ref_nms([tuple(b) for b in boxes.tolist()], scores.tolist(), thresh)


@pytest.mark.parametrize("mode", ["holes", "islands"])
def test_small_regions_match_reference(mode: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        mask = rng.random((40, 40)) > rng.uniform(0.3, 0.8)
        got, changed = remove_small_regions(mask, 12, mode)
        want, want_changed = ref_small_regions(mask, 12, mode)
        assert changed == want_changed
        assert np.array_equal(got, want)


def test_every_island_small_keeps_the_largest() -> None:
    mask = np.zeros((20, 20), bool)
    mask[1:3, 1:3] = True  # 4 px
    mask[10:13, 10:12] = True  # 6 px
    out, changed = remove_small_regions(mask, 50, "islands")
    assert changed and out.sum() == 6 and out[10, 10]


def test_se_map_smallest_segment_wins() -> None:
    big = np.zeros((10, 10), bool)
    big[:, :] = True
    small = np.zeros((10, 10), bool)
    small[2:4, 2:4] = True
    empty_corner = np.zeros((10, 10), bool)
    out = se_map([small, big, empty_corner], (10, 10))
    assert (out[2:4, 2:4] == 1).all() and out[0, 0] == 2 and (out == 3).sum() == 0


# --- the generator on a fixed decoder --------------------------------------------------------------


@pytest.fixture
def decoder(tmp_path: Path) -> SamDecoder:
    backend = OnnxRuntimeBackend(ModelRepository(decoder_repo(tmp_path, 4, batch_axis=True)), "CPUExecutionProvider")
    backend.load(["sam_decoder"])
    return SamDecoder(backend)


def reference_proposals(decoder: SamDecoder, emb: ImageEmbedding, opts: EverythingOptions) -> list[tuple[np.ndarray, float, float]]:
    """The generator's steps, one point and one mask at a time, with the reference filters."""
    h, w = emb.geometry.height, emb.geometry.width
    n = opts.points_per_side
    cands = []
    for j in range(n):
        for i in range(n):
            x, y = (i + 0.5) / n * w, (j + 0.5) / n * h
            out = decoder.predict(emb, np.array([[x, y]], np.float32), np.array([1.0], np.float32))
            for k in (1, 2, 3):
                iou = float(out.iou_predictions[k])
                if not np.float32(iou) > np.float32(opts.pred_iou_thresh):
                    continue
                logits = decoder.upsample(out.low_res_logits[k : k + 1], emb.geometry)[0]
                stab = ref_stability(logits, opts.stability_score_offset)
                if stab < opts.stability_score_thresh:
                    continue
                cands.append((logits > 0, iou, stab))
    keep = ref_nms([ref_box(m) for m, _, _ in cands], [c[1] for c in cands], opts.box_nms_thresh)
    cands = [cands[i] for i in keep]
    if opts.min_mask_region_area:
        cleaned, scores = [], []
        for m, iou, stab in cands:
            m2, c1 = ref_small_regions(m, opts.min_mask_region_area, "holes")
            m2, c2 = ref_small_regions(m2, opts.min_mask_region_area, "islands")
            cleaned.append((m2, iou, stab))
            scores.append(0.0 if (c1 or c2) else 1.0)
        keep = ref_nms([ref_box(m) for m, _, _ in cleaned], scores, opts.box_nms_thresh)
        cands = [cleaned[i] for i in keep]
    return cands


@pytest.mark.parametrize(
    "opts",
    [
        EverythingOptions(points_per_side=5, points_per_batch=7, pred_iou_thresh=0.65, stability_score_thresh=0.5, box_nms_thresh=0.7),
        EverythingOptions(points_per_side=4, points_per_batch=64, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=0.3),
        EverythingOptions(
            points_per_side=4, pred_iou_thresh=0.65, stability_score_thresh=0.5, box_nms_thresh=0.9, min_mask_region_area=800
        ),
    ],
    ids=["filters", "nms-only", "small-regions"],
)
def test_generator_matches_reference_filters(decoder: SamDecoder, opts: EverythingOptions) -> None:
    emb = ImageEmbedding(np.zeros((1, 256, 64, 64), np.float32), ResizeLongestSide(150, 220), "test")
    got = generate(decoder, emb, opts)
    want = reference_proposals(decoder, emb, opts)
    assert len(got) == len(want) > 0
    for g, (mask, iou, stab) in zip(got, want):
        assert np.array_equal(g.mask, mask)
        assert g.iou == pytest.approx(iou) and g.stability == pytest.approx(stab)


def test_iou_filter_is_strict_in_float32(decoder: SamDecoder) -> None:
    emb = ImageEmbedding(np.zeros((1, 256, 64, 64), np.float32), ResizeLongestSide(100, 100), "test")
    assert generate(decoder, emb, EverythingOptions(points_per_side=2, pred_iou_thresh=0.8, stability_score_thresh=0.0)) == []


class _Encoder:
    name, version = "sam_encoder", "7"
    run_bytes = 0

    def embed(self, image: np.ndarray, pixels: str | None = None) -> ImageEmbedding:
        return ImageEmbedding(np.zeros((1, 256, 64, 64), np.float32), ResizeLongestSide(*image.shape[:2]), self.version)

    def warmup(self) -> None:
        pass


def test_run_returns_original_size_proposals_as_coco(decoder: SamDecoder) -> None:
    image = np.zeros((300, 200, 3), np.uint8)
    gen = EverythingGenerator(_Encoder(), decoder, max_work_side=128, max_request_bytes=1 << 30)
    opts = EverythingOptions(points_per_side=3, pred_iou_thresh=0.65, stability_score_thresh=0.5, max_masks=4)
    result = gen.run(image, opts)
    assert 0 < len(result.proposals) <= 4
    assert result.points == 9 and result.model_versions == {"sam_encoder": "7", "sam_decoder": "1"}
    for p in result.proposals:
        mask = p.mask()
        assert mask.shape == (300, 200) and mask.sum() == p.area > 0
        ys, xs = np.nonzero(mask)
        assert p.box == (xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min())
        assert 0 <= p.point[0] < 200 and 0 <= p.point[1] < 300
        rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert coco_mask.area(rle) == p.area
    ious = [p.predicted_iou for p in result.proposals]
    assert ious == sorted(ious, reverse=True)


@pytest.mark.parametrize(
    "bad, words",
    [
        (dict(points_per_side=0), "points_per_side"),
        (dict(points_per_side=65), "points_per_side"),
        (dict(points_per_batch=0), "points_per_batch"),
        (dict(pred_iou_thresh=1.5), "pred_iou_thresh"),
        (dict(stability_score_thresh=-0.1), "stability_score_thresh"),
        (dict(stability_score_offset=0.0), "stability_score_offset"),
        (dict(box_nms_thresh=2.0), "box_nms_thresh"),
        (dict(min_mask_region_area=-1), "min_mask_region_area"),
        (dict(max_masks=-1), "max_masks"),
    ],
)
def test_bad_options_are_invalid_input(bad: dict[str, float], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        EverythingOptions(**bad).validated()  # type: ignore[arg-type]


def test_stop_is_honoured_between_batches(decoder: SamDecoder) -> None:
    from service.errors import Cancelled

    emb = ImageEmbedding(np.zeros((1, 256, 64, 64), np.float32), ResizeLongestSide(100, 100), "test")
    with pytest.raises(Cancelled):
        generate(decoder, emb, EverythingOptions(points_per_side=4, points_per_batch=2), should_stop=lambda: True)


def test_candidates_keep_their_masks_packed() -> None:
    rng = np.random.default_rng(3)
    mask = rng.random((37, 53)) > 0.6  # a width that is not a multiple of 8
    c = Candidate.of(mask, 0.9, 0.8, (1.0, 2.0))
    assert c.packed.nbytes == -(-mask.size // 8) and np.array_equal(c.mask, mask)
    assert tuple(c.box) == tuple(mask_boxes(mask[None])[0])
    smaller = np.zeros_like(mask)
    smaller[5:9, 10:20] = True
    c.mask = smaller  # the cleanup's assignment packs the new mask and boxes it again
    assert np.array_equal(c.mask, smaller) and tuple(c.box) == (10.0, 5.0, 19.0, 8.0)


def test_estimate_counts_packed_masks_and_admits_a_1024_image(decoder: SamDecoder) -> None:
    """Every filter off, each grid point keeps 3 masks until NMS: the estimate covers their packed
    bytes, and a 1024 x 1024 image with the default options fits the default 1.5 GiB a request."""
    gen = EverythingGenerator(_Encoder(), decoder, max_work_side=1024, max_request_bytes=1536 << 20)
    emb = ImageEmbedding(np.zeros((1, 256, 64, 64), np.float32), ResizeLongestSide(90, 130), "test")
    opts = EverythingOptions(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    kept = generate(decoder, emb, opts)
    packed = sum(k.packed.nbytes for k in kept)
    assert len(kept) == 3 * 16 and packed == 48 * -(-90 * 130 // 8)
    fixed = gen.working_bytes(90, 130, EverythingOptions(points_per_side=1, points_per_batch=1))
    assert gen.working_bytes(90, 130, opts) - fixed >= packed
    gen.check_budget(1024, 1024)  # admitted: 980 MiB estimated (3.6 GiB when the masks were kept a byte a pixel)
    with pytest.raises(Overloaded, match="WSSS_MAX_REQUEST_BYTES.*fewer points_per_side"):
        gen.check_budget(1024, 1024, EverythingOptions(points_per_side=64))
