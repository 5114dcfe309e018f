"""Train DeepLabv3+ on label maps (pseudo-labels or ground truth), 255 ignored."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from training.common import autocast, batches, channels_last, class_presence, log, lr_at, to_tensor
from training.nets import CamNet, DeepLab
from training.train_classifier import balanced_weights, jitter_colours

CROP = 160


def class_weights(masks: npt.NDArray[np.uint8], num_classes: int, cap: float = 10.0) -> npt.NDArray[np.float32]:
    """Loss weight per class (background first): sqrt(background pixels / the class's pixels),
    between 1 and ``cap``; 255 pixels are not counted."""
    counts = np.bincount(masks[masks != 255].ravel(), minlength=num_classes + 1)[: num_classes + 1].astype(np.float64)
    ref = counts[0] if counts[0] > 0 else counts.max()
    return np.clip(np.sqrt(ref / np.maximum(counts, 1)), 1.0, max(1.0, cap)).astype(np.float32)


def training_batch(
    images: npt.NDArray[np.uint8], masks: npt.NDArray[np.uint8], idx: npt.NDArray[np.int64], rng: np.random.Generator, crop: int,
    fg: list[npt.NDArray[np.int64]] | None = None, vflip: bool = True, scales: tuple[float, ...] = (1.0,), color_jitter: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of ``crop`` px windows of images ``idx`` (float [B,3,crop,crop], labels int64 [B,crop,crop]).

    A scale drawn from ``scales`` sets the windows' side (``crop / scale``, at most the image), resized
    to ``crop`` (bilinear; labels nearest, 255 kept); ``fg`` (each image's labelled foreground pixels):
    half the windows centred on one of them; flips: horizontal, and vertical with ``vflip``; each
    window's colours jittered by 1 ± up to ``color_jitter`` (``jitter_colours``; 0 draws nothing).
    """
    h, w = masks.shape[1:]
    win = min(round(crop / float(rng.choice(scales))), h, w) if tuple(scales) != (1.0,) else crop  # scale 1 alone draws nothing
    ys = rng.integers(0, h - win + 1, len(idx))
    xs = rng.integers(0, w - win + 1, len(idx))
    for j, i in enumerate(idx):
        if fg is not None and len(fg[i]) and rng.random() < 0.5:
            cy, cx = fg[i][rng.integers(len(fg[i]))]
            ys[j] = np.clip(cy - win // 2, 0, h - win)
            xs[j] = np.clip(cx - win // 2, 0, w - win)
    img = np.stack([images[i, y : y + win, x : x + win] for i, y, x in zip(idx, ys, xs)])
    lab = np.stack([masks[i, y : y + win, x : x + win] for i, y, x in zip(idx, ys, xs)])
    x_t, y_t = to_tensor(jitter_colours(img, color_jitter, rng) if color_jitter > 0 else img), torch.from_numpy(lab.astype(np.int64))
    if win != crop:
        x_t = F.interpolate(x_t, size=(crop, crop), mode="bilinear", align_corners=False)
        y_t = F.interpolate(y_t[:, None].float(), size=(crop, crop), mode="nearest")[:, 0].long()
    if rng.random() < 0.5:
        x_t, y_t = x_t.flip(3), y_t.flip(2)
    if vflip and rng.random() < 0.5:
        x_t, y_t = x_t.flip(2), y_t.flip(1)
    return x_t, y_t


def train_deeplab(
    images: npt.NDArray[np.uint8],
    masks: npt.NDArray[np.uint8],
    num_classes: int,
    out: Path | None = None,
    steps: int = 600,
    batch_size: int = 16,
    lr: float = 2e-3,
    seed: int = 0,
    init_from: CamNet | None = None,
    balanced: bool = False,
    max_class_weight: float = 10.0,
    vflip: bool = True,
    scales: tuple[float, ...] = (1.0,),
    color_jitter: float = 0.0,
    precision: str = "fp32",
) -> DeepLab:
    """Train on ``images`` uint8 [N,H,W,3] and label maps ``masks`` uint8 [N,H,W] (0..C, 255 ignore).

    Random ``CROP`` crops (the whole image when smaller), horizontal flips and, with ``vflip``, vertical
    flips (off for photographs, whose sky is up); a scale drawn from ``scales`` per batch: the batch's
    windows are ``CROP / scale`` px, resized to ``CROP`` (below 1 the network sees more context, smaller);
    colours jittered by up to ``color_jitter`` (``training_batch``). The backbone starts from the classifier's (``init_from``), the way DeepLab
    starts from an ImageNet backbone. ``balanced`` (for rare, small classes such as defects): images
    are drawn so that every class (and "no class") comes up equally often (rare class sampling,
    ``balanced_weights`` of the classes each label map holds: on magnetic_tile 70 % of the images
    are defect-free), half the crops are centred on a random labelled foreground
    pixel, and the loss weighs each class by sqrt(background pixels / its pixels), capped at
    ``max_class_weight`` (lower: fewer false defects on clean images, fewer defect pixels found).
    ``precision``: fp32, or bf16 forward passes (``training.common.autocast``).
    """
    rng = np.random.default_rng(seed)
    net = DeepLab(num_classes)
    if init_from is not None:
        net.backbone.load_state_dict(init_from.backbone.state_dict())
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    n, h, w = masks.shape
    crop = min(CROP, h, w)
    weight = None
    fg = [np.argwhere((m > 0) & (m != 255)) for m in masks] if balanced else None
    if balanced:
        weight = torch.from_numpy(class_weights(masks, num_classes, max_class_weight))
        log.info("deeplab class weights %s", np.round(weight.numpy(), 2).tolist())
    net.to(memory_format=torch.channels_last).train()
    start = time.perf_counter()
    sampler: Iterator[npt.NDArray[np.int64]] = batches(n, batch_size, rng)
    if balanced:
        p = balanced_weights(class_presence(masks, num_classes))
        size = min(batch_size, n)
        sampler = (rng.choice(n, size, replace=False, p=p) for _ in itertools.count())
    for step, idx in enumerate(sampler):
        if step >= steps:
            break
        x_t, y_t = training_batch(images, masks, idx, rng, crop, fg, vflip, scales, color_jitter)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        with autocast(precision):
            logits = net(channels_last(x_t)).float()
        loss = F.cross_entropy(logits, y_t, weight=weight, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            log.info("deeplab step %d/%d loss %.4f (%.0f s)", step, steps, loss.item(), time.perf_counter() - start)
    net.to(memory_format=torch.contiguous_format).eval()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), out)
    return net
