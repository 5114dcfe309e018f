"""Train the CAM classifier on image-level labels (multi-label BCE), optionally with S2C's SSC and
CPM losses (``training/s2c.py``)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from training.common import TrainingSet, autocast, batches, channels_last, log, lr_at, to_tensor
from training.nets import CamNet
from training.s2c import CpmSource, augment_like, cpm_loss, cpm_targets, downsample_targets, ssc_loss


@dataclass
class S2C:
    """S2C's losses for ``train_classifier``: SSC when ``se`` is given, CPM when ``cpm`` is.

    Attributes:
        se: int32 [N, H, W] segment maps of the training images (``s2c.se_maps``), 0 = no segment.
        cpm: the promptable model's decoder and the images' embeddings.
        warmup: CPM starts after this many steps (the paper: after the first epochs).
        refresh: CPM targets are recomputed from the current classifier every this many steps.
        temperature: SSC's logit scale.
    """

    se: npt.NDArray[np.int32] | None = None
    cpm: CpmSource | None = None
    warmup: int = 300
    refresh: int = 300
    temperature: float = 1.0
    ssc_weight: float = 1.0
    cpm_weight: float = 1.0


def balanced_weights(targets: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Sampling probability per image so that every class (and "no class") is drawn equally often.

    An image weighs 1 / (number of images of its rarest class); images with no class form a group
    of their own. Real defect sets are mostly defect-free images with a rare class or two: drawn
    uniformly, the classifier learns "nothing here" and its CAMs stay empty.
    """
    counts = targets.sum(axis=0)
    empty = targets.sum(axis=1) == 0
    w = np.where(empty, 1.0 / max(int(empty.sum()), 1), 0.0)
    for i in np.flatnonzero(~empty):
        w[i] = 1.0 / counts[targets[i] > 0].min()
    return w / w.sum()


LUMA = np.array([0.299, 0.587, 0.114], np.float32)
"""RGB weights of a pixel's grey (ITU-R BT.601)."""


def jitter_colours(images: npt.NDArray[np.uint8], strength: float, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """float32 [B, H, W, 3] (0..255): each image's brightness, contrast (about its mean grey) and
    saturation (about each pixel's grey) scaled by factors drawn uniformly from 1 ± ``strength``."""
    x = images.astype(np.float32)
    b, c, sat = (rng.uniform(1 - strength, 1 + strength, (3, len(x), 1, 1, 1))).astype(np.float32)
    x = x * b
    mean_grey = (x @ LUMA).mean(axis=(1, 2))[:, None, None, None]
    x = (x - mean_grey) * c + mean_grey
    grey = (x @ LUMA)[..., None]
    x = (x - grey) * sat + grey
    return np.clip(x, 0.0, 255.0)


def train_classifier(
    data: TrainingSet, out: Path | None = None, steps: int = 700, batch_size: int = 16, lr: float = 2e-3, seed: int = 0,
    balanced: bool = False, scales: tuple[float, ...] = (0.5, 0.625, 0.75, 1.0), init_from: CamNet | None = None,
    s2c: S2C | None = None, keep_head: bool = False, color_jitter: float = 0.0, precision: str = "fp32",
) -> CamNet:
    """Train ``CamNet`` on ``data`` and save its state dict to ``out``.

    Augmentation: flips, 90-degree rotations and a random scale per batch (``scales``), so CAMs
    agree across the scales used at inference; small scales keep each step cheap on a CPU.
    ``balanced``: draw batches with ``balanced_weights`` instead of uniformly, and weigh each
    class's positives by its negatives / positives (capped at 10) in the loss.
    ``init_from``: start the backbone from this (pre)trained classifier; the class layer starts anew.
    ``keep_head``: also keep ``init_from``'s class layer (fine-tuning a classifier of the same classes).
    ``s2c``: add S2C's losses (their targets follow the batch's flips, rotation and scale).
    ``color_jitter``: each image's brightness, contrast and saturation scaled by factors drawn from
    1 ± this (``jitter_colours``); 0 leaves the colours alone.
    ``precision``: fp32, or bf16 forward passes (``training.common.autocast``; the losses in fp32).
    """
    rng = np.random.default_rng(seed)
    net = CamNet(data.num_classes)
    if init_from is not None:
        if keep_head:
            net.load_state_dict(init_from.state_dict())
        else:
            net.backbone.load_state_dict(init_from.backbone.state_dict())
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    hot = data.multi_hot()
    targets = torch.from_numpy(hot)
    pos_weight = None
    if balanced:
        weights = balanced_weights(hot)
        pos = hot.sum(axis=0)
        pos_weight = torch.from_numpy(np.clip((len(hot) - pos) / np.maximum(pos, 1), 1.0, 10.0).astype(np.float32))
        batch_size = min(batch_size, len(hot))
        sampler: Iterator[npt.NDArray[np.int64]] = (rng.choice(len(hot), batch_size, replace=False, p=weights) for _ in itertools.count())
    else:
        sampler = batches(len(data.images), batch_size, rng)
    net.to(memory_format=torch.channels_last).train()
    start = time.perf_counter()
    cpm: npt.NDArray[np.uint8] | None = None
    labelled = [i for i in range(len(hot)) if hot[i].any()]
    for step, idx in enumerate(sampler):
        if step >= steps:
            break
        aug = (rng.random() < 0.5, rng.random() < 0.5, int(rng.integers(4)), float(rng.choice(scales)))
        pixels = jitter_colours(data.images[idx], color_jitter, rng) if color_jitter > 0 else data.images[idx]
        x = augment_like(to_tensor(pixels), *aug, nearest=False)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        with autocast(precision):
            logits, cams, feats = (t.float() for t in net(channels_last(x)))
        loss = F.binary_cross_entropy_with_logits(logits, targets[idx], pos_weight=pos_weight)
        parts = {"cls": loss.item()}
        if s2c is not None and s2c.se is not None:
            seg = augment_like(torch.from_numpy(s2c.se[idx].astype(np.int64))[:, None], *aug, nearest=True)
            seg = F.interpolate(seg.float(), size=feats.shape[2:], mode="nearest").long()[:, 0]
            ssc = ssc_loss(feats, seg, s2c.temperature)
            loss = loss + s2c.ssc_weight * ssc
            parts["ssc"] = ssc.item()
        if s2c is not None and s2c.cpm is not None and step >= s2c.warmup:
            if cpm is None or (step - s2c.warmup) % s2c.refresh == 0:
                cpm = _all_cpm_targets(net, data, hot, s2c.cpm, labelled)
            target = augment_like(torch.from_numpy(cpm[idx].astype(np.int64))[:, None], *aug, nearest=True)[:, 0]
            target = downsample_targets(target, (2 * cams.shape[2], 2 * cams.shape[3]))
            cpm_term = cpm_loss(cams, targets[idx], target)
            loss = loss + s2c.cpm_weight * cpm_term
            parts["cpm"] = cpm_term.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            acc = ((logits > 0).float() == targets[idx]).float().mean().item()
            terms = " ".join(f"{k} {v:.4f}" for k, v in parts.items())
            log.info("classifier step %d/%d loss %.4f (%s) acc %.3f (%.0f s)", step, steps, loss.item(), terms, acc, time.perf_counter() - start)
    net.to(memory_format=torch.contiguous_format).eval()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), out)
    return net


def _all_cpm_targets(
    net: CamNet, data: TrainingSet, hot: npt.NDArray[np.float32], source: CpmSource, labelled: list[int]
) -> npt.NDArray[np.uint8]:
    """CPM targets of every training image: from the current CAMs for labelled images; all
    background (or all ignored without a background class) for the rest."""
    start = time.perf_counter()
    c = hot.shape[1]
    out = np.full(data.images.shape[:3], c if source.background else 255, np.uint8)
    if labelled:
        out[labelled] = cpm_targets(net, data.images, hot, source, labelled)
    log.info("CPM targets of %d labelled images in %.0f s", len(labelled), time.perf_counter() - start)
    return out
