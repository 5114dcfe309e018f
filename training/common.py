"""Shared helpers of the training scripts: data in memory, normalisation, logging, seeding."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from service.models.imageops import IMAGENET_MEAN, IMAGENET_STD
from training.synthetic import Sample, generate

log = logging.getLogger("training")


@dataclass
class TrainingSet:
    """Training images stacked in memory (generated, or letterboxed from a data set folder)."""

    images: npt.NDArray[np.uint8]  # [N,H,W,3]
    masks: npt.NDArray[np.uint8]  # [N,H,W]
    instances: npt.NDArray[np.int32]  # [N,H,W]
    instance_classes: list[tuple[int, ...]]
    num_classes: int
    labels: npt.NDArray[np.float32] | None = None
    """[N, C] image-level labels when they are given apart from the masks (a folder's labels.json)."""

    def multi_hot(self) -> npt.NDArray[np.float32]:
        """[N, C] image-level labels: ``labels`` when given, else 1 where the class has visible pixels."""
        if self.labels is not None:
            return self.labels
        return class_presence(self.masks, self.num_classes)


def class_presence(masks: npt.NDArray[np.uint8], num_classes: int) -> npt.NDArray[np.float32]:
    """[N, C] 1 where label map n holds pixels of class c + 1 (0 and 255 not classes)."""
    out = np.zeros((len(masks), num_classes), np.float32)
    for i, m in enumerate(masks):
        present = np.unique(m)
        present = present[(present > 0) & (present <= num_classes)]
        out[i, present - 1] = 1.0
    return out


def _gen(args: tuple[int, int, int]) -> Sample:
    seed, index, size = args
    return generate(seed, index, size, size)


def synthetic_set(seed: int, count: int, size: int = 256, num_classes: int = 4, workers: int = 2) -> TrainingSet:
    """Generate ``count`` samples of stream ``seed`` using ``workers`` processes."""
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        samples = list(pool.map(_gen, [(seed, i, size) for i in range(count)], chunksize=16))
    log.info("generated %d samples (seed %d) in %.1f s", count, seed, time.perf_counter() - start)
    return TrainingSet(
        images=np.stack([s.image for s in samples]),
        masks=np.stack([s.mask for s in samples]),
        instances=np.stack([s.instances for s in samples]),
        instance_classes=[s.instance_classes for s in samples],
        num_classes=num_classes,
    )


def to_tensor(images: npt.NDArray[np.uint8] | npt.NDArray[np.float32]) -> torch.Tensor:
    """[N,H,W,3] RGB, uint8 or float32 on the same 0-255 scale (e.g. colour-jittered) -> float32
    [N,3,H,W] ImageNet-normalised (0-255 mean/std)."""
    x = (images.astype(np.float32) - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[npt.NDArray[np.int64]]:
    """Endless shuffled index batches over ``range(n)`` (of min(batch_size, n) indices)."""
    if n <= 0:
        raise ValueError("no training examples")
    batch_size = min(batch_size, n)
    while True:
        order = rng.permutation(n)
        for i in range(0, n - batch_size + 1, batch_size):
            yield order[i : i + batch_size]


def setup(seed: int, threads: int | None = None) -> None:
    """Seed torch and numpy, set torch's CPU threads, configure logging."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)


PRECISIONS = ("auto", "fp32", "bf16")
"""``--precision``: a training's forward passes in float32, or autocast to bfloat16 (weights, optimiser
state and losses stay float32); auto takes bfloat16 where the CPU computes it natively."""


def bf16_native() -> bool:
    """Whether this CPU has native bfloat16 dot products (AVX512-BF16 or AMX), as oneDNN sees it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(choice: str) -> str:
    """``auto`` -> bf16 where ``bf16_native``, else fp32; fp32 and bf16 as given (ValueError otherwise)."""
    if choice not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {choice!r}")
    if choice == "auto":
        return "bf16" if bf16_native() else "fp32"
    return choice


def autocast(precision: str) -> contextlib.AbstractContextManager[None]:
    """The context a training's forward pass runs in: bfloat16 autocast for ``bf16``, nothing for ``fp32``.
    Callers cast what comes out to float32 (``.float()``) before their losses."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    if precision == "fp32":
        return contextlib.nullcontext()
    raise ValueError(f"a training runs in fp32 or bf16, not {precision!r} (resolve_precision turns auto into one of them)")


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` [N, C, H, W] stored channels-last, the layout oneDNN's convolutions run fastest on
    (a training step 10-30 % faster here); a network takes it with ``net.to(memory_format=torch.channels_last)``."""
    return x.contiguous(memory_format=torch.channels_last)


def lr_at(step: int, total: int, base: float, warmup: int = 50) -> float:
    """Linear warm-up then cosine decay to 2% of ``base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * t)))
