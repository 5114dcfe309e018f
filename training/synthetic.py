"""Deterministic procedural surface-defect images with exact masks.

Every sample is a function of ``(seed, index)`` alone, so a data set can be regenerated bit for bit
anywhere. Surfaces are brushed metal, glazed ceramic or cast/rough material with uneven lighting;
defects are drawn on top with exact pixel masks:

- ``scratch``: a long, thin, smooth curve, brighter or darker than the surface;
- ``spot``: a small round or elliptical pit, dark with a light rim;
- ``crack``: a jagged, branching dark line;
- ``stain``: a large irregular discoloured blob.

Label maps follow the project convention: 0 background, 1..4 the classes in ``CLASSES`` order.
This module needs numpy and scipy only (no torch), so tests and benchmarks can use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

CLASSES: tuple[str, ...] = ("scratch", "spot", "crack", "stain")

TRAIN_SEED = 0
"""Seed of the default models' training samples."""
HELD_OUT_SEED = 1
"""Seed of the held-out samples the default pipeline is evaluated on (never trained on)."""


@dataclass(frozen=True)
class Sample:
    """One generated image.

    Attributes:
        image: uint8 [H, W, 3] RGB.
        mask: uint8 [H, W] label map (0 background, i = ``CLASSES[i - 1]``).
        instances: int32 [H, W] instance ids (0 none, 1..K in drawing order).
        instance_classes: class id (1-based) of each instance, ``instance_classes[k - 1]`` for id k.
    """

    image: npt.NDArray[np.uint8]
    mask: npt.NDArray[np.uint8]
    instances: npt.NDArray[np.int32]
    instance_classes: tuple[int, ...]

    @property
    def labels(self) -> list[str]:
        """Names of the classes with at least one visible pixel, in class order."""
        present = set(np.unique(self.mask).tolist()) - {0}
        return [CLASSES[c - 1] for c in sorted(present)]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float | tuple[float, float]) -> npt.NDArray[np.float64]:
    field = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (field - field.mean()) / (field.std() + 1e-8)


def _surface(rng: np.random.Generator, h: int, w: int) -> npt.NDArray[np.float64]:
    kind = rng.integers(3)
    base = rng.uniform(0.35, 0.7)
    if kind == 0:  # brushed metal: streaks along one direction
        streak = _smooth_noise(rng, (h, w), (0.6, 25.0))
        lum = base + 0.05 * streak + 0.015 * rng.standard_normal((h, w))
        tint = np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.04, 0.04, 3)
        if rng.random() < 0.5:
            lum = lum.T.copy() if h == w else lum
    elif kind == 1:  # glazed ceramic: smooth blotches and fine speckle
        lum = base + 0.15 + 0.04 * _smooth_noise(rng, (h, w), 18.0) + 0.02 * rng.standard_normal((h, w))
        tint = np.array([1.0, 0.97, 0.92]) + rng.uniform(-0.05, 0.05, 3)
    else:  # cast / rough material: mid-frequency grain
        lum = base + 0.06 * _smooth_noise(rng, (h, w), 2.0) + 0.03 * _smooth_noise(rng, (h, w), 8.0)
        tint = np.array([0.95, 0.97, 1.0]) + rng.uniform(-0.05, 0.05, 3)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    gx, gy = rng.uniform(-0.15, 0.15, 2)
    lum = lum + gx * (xx - 0.5) + gy * (yy - 0.5)
    return lum[..., None] * tint[None, None, :]


def _segment_distance(px: npt.NDArray[np.float64], py: npt.NDArray[np.float64], pts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Distance from each pixel (px, py) to the polyline through ``pts`` [K, 2] (x, y)."""
    best = np.full(px.shape, np.inf)
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((px - x0) * dx + (py - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
        best = np.minimum(best, np.hypot(px - (x0 + t * dx), py - (y0 + t * dy)))
    return best


def _stroke(h: int, w: int, pts: npt.NDArray[np.float64], width: float) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    """Pixels within width/2 of a polyline, and a soft profile (1 on the line, 0 outside)."""
    pad = width + 2
    x0, y0 = np.floor(pts.min(axis=0) - pad).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0) + pad).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    hard = np.zeros((h, w), bool)
    soft = np.zeros((h, w))
    if x1 <= x0 or y1 <= y0:
        return hard, soft
    py, px = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    dist = _segment_distance(px, py, pts)
    hard[y0:y1, x0:x1] = dist <= width / 2
    soft[y0:y1, x0:x1] = np.clip(1.0 - dist / (width / 2 + 0.75), 0.0, 1.0)
    return hard, soft


def _scratch(rng: np.random.Generator, h: int, w: int) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    length = rng.uniform(0.3, 0.8) * min(h, w)
    angle = rng.uniform(0, np.pi)
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    d = np.array([np.cos(angle), np.sin(angle)]) * length / 2
    normal = np.array([-d[1], d[0]]) / max(np.linalg.norm(d), 1e-9)
    bend = rng.uniform(-0.12, 0.12) * length
    t = np.linspace(-1, 1, 24)[:, None]
    pts = np.array([cx, cy]) + t * d + (1 - t**2) * bend * normal
    width = rng.uniform(2.0, 4.0)
    hard, soft = _stroke(h, w, pts, width)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return hard, sign * rng.uniform(0.2, 0.35) * soft[..., None] * np.ones(3)


def _spot(rng: np.random.Generator, h: int, w: int) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    r = rng.uniform(4.0, 12.0)
    cx, cy = rng.uniform(r + 2, w - r - 2), rng.uniform(r + 2, h - r - 2)
    ratio = rng.uniform(0.6, 1.0)
    theta = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    rho = np.sqrt(u**2 + (v / ratio) ** 2) / r
    hard = rho <= 1.0
    depth = -rng.uniform(0.25, 0.45) * np.clip(1.0 - rho**2, 0, 1)
    rim = 0.12 * np.exp(-((rho - 1.1) ** 2) / 0.02)
    return hard, (depth + rim)[..., None] * np.ones(3)


def _crack(rng: np.random.Generator, h: int, w: int) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    hard = np.zeros((h, w), bool)
    soft = np.zeros((h, w))
    start = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h])
    heading = rng.uniform(0, 2 * np.pi)
    branches = [(start, heading, int(rng.integers(10, 22)))]
    width = rng.uniform(2.0, 3.2)
    while branches:
        pos, head, steps = branches.pop()
        pts = [pos]
        for _ in range(steps):
            head += rng.normal(0, 0.45)
            pos = pos + rng.uniform(4, 8) * np.array([np.cos(head), np.sin(head)])
            pos = np.clip(pos, 1, [w - 2, h - 2])
            pts.append(pos)
            if rng.random() < 0.06 and len(branches) < 3:
                branches.append((pos, head + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2), int(rng.integers(4, 10))))
        bh, bs = _stroke(h, w, np.array(pts), width)
        hard |= bh
        soft = np.maximum(soft, bs)
    return hard, -rng.uniform(0.3, 0.45) * soft[..., None] * np.ones(3)


def _stain(rng: np.random.Generator, h: int, w: int) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    r = rng.uniform(0.08, 0.2) * min(h, w)
    cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    rho = np.hypot(xx - cx, yy - cy) / r
    field = 1.0 - rho + 0.35 * _smooth_noise(rng, (h, w), r / 4)
    hard = field > 0
    labels, n = ndi.label(hard)
    if n > 1:  # keep the component nearest the centre: one stain, one connected blob
        keep = labels[int(np.clip(cy, 0, h - 1)), int(np.clip(cx, 0, w - 1))]
        if keep == 0:
            keep = int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
        hard = labels == keep
    alpha = np.clip(ndi.gaussian_filter(hard.astype(np.float64), 1.0) * 1.2, 0, 1)
    colour = np.array([0.02, -0.06, -0.16]) + rng.uniform(-0.04, 0.04, 3) - rng.uniform(0.05, 0.15)
    return hard, alpha[..., None] * colour[None, None, :]


_DRAW = (_scratch, _spot, _crack, _stain)


def generate(seed: int, index: int, height: int = 256, width: int = 256, defect_free_rate: float = 0.1) -> Sample:
    """Generate sample ``index`` of the stream ``seed``.

    Args:
        seed: stream seed (``TRAIN_SEED``, ``HELD_OUT_SEED`` or any other int).
        index: sample number within the stream.
        height: image height in pixels (>= 64).
        width: image width in pixels (>= 64).
        defect_free_rate: probability of an image with no defect at all.

    Returns:
        The sample; identical for identical arguments on any machine.
    """
    rng = np.random.default_rng([seed, index, height, width])
    img = _surface(rng, height, width)
    mask = np.zeros((height, width), np.uint8)
    instances = np.zeros((height, width), np.int32)
    classes: list[int] = []
    if rng.random() >= defect_free_rate:
        n_classes = 1 if rng.random() < 0.6 else 2
        chosen = rng.choice(len(CLASSES), size=n_classes, replace=False)
        for cls in chosen:
            for _ in range(1 if rng.random() < 0.65 else int(rng.integers(2, 4))):
                hard, delta = _DRAW[cls](rng, height, width)
                if hard.sum() < 6:
                    continue
                img = img + delta
                mask[hard] = cls + 1
                classes.append(int(cls) + 1)
                instances[hard] = len(classes)
    img = img + 0.012 * rng.standard_normal(img.shape)
    image = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Sample(image=image, mask=mask, instances=instances, instance_classes=tuple(classes))
