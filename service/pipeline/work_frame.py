"""Bounded working resolution: every stage of a request runs on an image whose longest side is at
most ``max_side`` pixels; what a caller sends and gets back stays in original pixels.

An image larger than that is downscaled on entry (Pillow's antialiasing bilinear filter), the
weak labels' coordinates are scaled with it, and the label map is brought back to the original
size at the end (nearest neighbour). The work of a request is then bounded by ``max_side``
whatever the caller sends; only decoding, the final label map and its encodings grow with the
original size, linearly (``estimate_bytes``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
import numpy.typing as npt

from service.errors import Overloaded
from service.models.imageops import resize_image
from service.pipeline.cam_random_walk import walk_bytes
from service.pipeline.types import InstanceMask, Prompt
from service.pipeline.weak_labels import ResolvedBox, ResolvedClick, ResolvedLabels, ResolvedScribble


@dataclass(frozen=True)
class WorkFrame:
    """The original image size and the size the stages work at.

    Attributes:
        height, width: original image size.
        work_height, work_width: working size, each side >= 1, longest side <= the bound.
    """

    height: int
    width: int
    work_height: int
    work_width: int

    @classmethod
    def of(cls, height: int, width: int, max_side: int, upscale: bool = False) -> WorkFrame:
        """The frame of a ``height`` x ``width`` image whose longest side is bounded by ``max_side``
        (with ``upscale``: brought to exactly ``max_side``, a smaller image enlarged)."""
        scale = max_side / max(height, width)
        if not upscale:
            scale = min(1.0, scale)
        if scale == 1.0:
            return cls(height, width, height, width)
        return cls(height, width, max(1, min(max_side, round(height * scale))), max(1, min(max_side, round(width * scale))))

    @property
    def identity(self) -> bool:
        return (self.height, self.width) == (self.work_height, self.work_width)

    @property
    def scale_x(self) -> float:
        """Work pixels per original pixel along x."""
        return self.work_width / self.width

    @property
    def scale_y(self) -> float:
        """Work pixels per original pixel along y."""
        return self.work_height / self.height

    def image_to_work(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """uint8 [H, W, 3] original -> uint8 [work_height, work_width, 3]."""
        return image if self.identity else resize_image(image, self.work_height, self.work_width)

    def labels_to_work(self, labels: ResolvedLabels) -> ResolvedLabels:
        """Box, click and scribble coordinates (and scribble widths) in work pixels."""
        if self.identity:
            return labels
        sx, sy = self.scale_x, self.scale_y
        return replace(
            labels,
            boxes=tuple(ResolvedBox(b.class_id, b.x0 * sx, b.y0 * sy, b.x1 * sx, b.y1 * sy) for b in labels.boxes),
            clicks=tuple(ResolvedClick(c.class_id, c.x * sx, c.y * sy, c.negative) for c in labels.clicks),
            scribbles=tuple(
                ResolvedScribble(s.class_id, tuple((x * sx, y * sy) for x, y in s.points), s.width * math.sqrt(sx * sy)) for s in labels.scribbles
            ),
        )

    def prompts_to_original(self, prompts: Sequence[Prompt]) -> tuple[Prompt, ...]:
        """Prompt points from work pixels back to original pixels."""
        if self.identity:
            return tuple(prompts)
        return tuple(replace(p, x=p.x / self.scale_x, y=p.y / self.scale_y) for p in prompts)

    def instances_to_original(self, instances: Sequence[InstanceMask]) -> tuple[InstanceMask, ...]:
        """Instances with prompts in original pixels and areas in original pixels."""
        if self.identity:
            return tuple(instances)
        per_pixel = 1.0 / (self.scale_x * self.scale_y)
        return tuple(replace(i, prompts=self.prompts_to_original(i.prompts), area=round(i.area * per_pixel)) for i in instances)

    def label_map_to_original(self, label_map: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """uint8 [work_height, work_width] -> uint8 [height, width], nearest neighbour."""
        if self.identity:
            return label_map
        return np.asarray(cv2.resize(label_map, (self.width, self.height), interpolation=cv2.INTER_NEAREST), np.uint8)

    def map_to_original(self, values: npt.NDArray[np.generic], nearest: bool) -> npt.NDArray[np.generic]:
        """A per-pixel map [work_height, work_width] (uint16 indices, float32 scores) -> [height, width]:
        nearest neighbour for indices, bilinear for scores."""
        if self.identity:
            return values
        interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        return np.asarray(cv2.resize(values, (self.width, self.height), interpolation=interpolation))  # type: ignore[arg-type]


FULL_SIZE_BYTES_PER_PIXEL = 16
"""Bytes per original pixel of a request: the decoder's copy and the RGB array (3 + 3), the label
map and one class region at a time (1 + 1), a ground truth (1), the PNG / raw / RLE encodings
(about 2) and slack (measured with ``bench/load_test.py --hostile``; README, Limits)."""
WORK_BYTES_PER_PIXEL = 160
"""Bytes per working pixel at CAM scale 1, per unit of scale squared of the largest CAM scale:
the classifier's input, flipped twin and activations (measured peak RSS over the warm level of
the default classifier, divided by the pixels of its largest scale's input)."""
WORK_BYTES_PER_CLASS_PIXEL = 24
"""Bytes per working pixel and prompted class: the normalised CAM, the mask logits, the
aggregation's confidence and per-class temporaries."""
WALK_BYTES_PER_CLASS_PIXEL = 8
"""Bytes per working pixel and class that the CAM random walk adds: the CAMs' copy with the
walked classes in it and the walk's upsampled output."""


def estimate_bytes(frame: WorkFrame, num_classes: int, max_cam_scale: float, walk_cells: int = 0) -> int:
    """Working memory a Segment request of this frame is expected to need, in bytes; ``walk_cells``:
    the cells of its CAM random walk (0: no walk; ``cam_random_walk.feature_cells``)."""
    work = frame.work_height * frame.work_width
    full = frame.height * frame.width
    per_class = WORK_BYTES_PER_CLASS_PIXEL + (WALK_BYTES_PER_CLASS_PIXEL if walk_cells else 0)
    walk = walk_bytes(walk_cells) if walk_cells else 0
    return int(full * FULL_SIZE_BYTES_PER_PIXEL + work * (WORK_BYTES_PER_PIXEL * max_cam_scale**2 + per_class * num_classes) + walk)


def refuse_over_budget(frame: WorkFrame, need: int, limit: int, advice: str = "send a smaller image") -> None:
    """Raise Overloaded (RESOURCE_EXHAUSTED) when ``need`` bytes exceed ``limit``, saying why and ``advice``."""
    if need > limit:
        raise Overloaded(
            f"a {frame.width}x{frame.height} image needs an estimated {need >> 20} MiB of working memory; this server allows "
            f"{limit >> 20} MiB per request (WSSS_MAX_REQUEST_BYTES): {advice}"
        )
