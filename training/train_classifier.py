"""Train the CAM classifier on image-level labels (multi-label BCE)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from training.common import TrainingSet, batches, log, lr_at, to_tensor
from training.nets import CamNet


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


def train_classifier(
    data: TrainingSet, out: Path | None = None, steps: int = 700, batch_size: int = 16, lr: float = 2e-3, seed: int = 0,
    balanced: bool = False, scales: tuple[float, ...] = (0.5, 0.625, 0.75, 1.0), init_from: CamNet | None = None,
) -> CamNet:
    """Train ``CamNet`` on ``data`` and save its state dict to ``out``.

    Augmentation: flips, 90-degree rotations and a random scale per batch (``scales``), so CAMs
    agree across the scales used at inference; small scales keep each step cheap on a CPU.
    ``balanced``: draw batches with ``balanced_weights`` instead of uniformly, and weigh each
    class's positives by its negatives / positives (capped at 10) in the loss.
    ``init_from``: start the backbone from this (pre)trained classifier; the class layer starts anew.
    """
    rng = np.random.default_rng(seed)
    net = CamNet(data.num_classes)
    if init_from is not None:
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
    net.train()
    start = time.perf_counter()
    for step, idx in enumerate(sampler):
        if step >= steps:
            break
        x = to_tensor(data.images[idx])
        if rng.random() < 0.5:
            x = x.flip(3)
        if rng.random() < 0.5:
            x = x.flip(2)
        x = torch.rot90(x, int(rng.integers(4)), (2, 3))
        scale = float(rng.choice(scales))
        if scale != 1.0:
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        logits, _, _ = net(x)
        loss = F.binary_cross_entropy_with_logits(logits, targets[idx], pos_weight=pos_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            acc = ((logits > 0).float() == targets[idx]).float().mean().item()
            log.info("classifier step %d/%d loss %.4f acc %.3f (%.0f s)", step, steps, loss.item(), acc, time.perf_counter() - start)
    net.eval()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), out)
    return net
