"""Train the CAM classifier on image-level labels (multi-label BCE)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training.common import TrainingSet, batches, log, lr_at, to_tensor
from training.nets import CamNet


def train_classifier(data: TrainingSet, out: Path | None = None, steps: int = 700, batch_size: int = 16, lr: float = 2e-3, seed: int = 0) -> CamNet:
    """Train ``CamNet`` on ``data`` and save its state dict to ``out``.

    Augmentation: flips, 90-degree rotations and a random scale (0.5-1.0) per batch, so CAMs
    agree across the scales used at inference; small scales keep each step cheap on a CPU.
    """
    rng = np.random.default_rng(seed)
    net = CamNet(data.num_classes)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    targets = torch.from_numpy(data.multi_hot())
    net.train()
    start = time.perf_counter()
    for step, idx in enumerate(batches(len(data.images), batch_size, rng)):
        if step >= steps:
            break
        x = to_tensor(data.images[idx])
        if rng.random() < 0.5:
            x = x.flip(3)
        if rng.random() < 0.5:
            x = x.flip(2)
        x = torch.rot90(x, int(rng.integers(4)), (2, 3))
        scale = float(rng.choice([0.5, 0.625, 0.75, 1.0]))
        if scale != 1.0:
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        logits, _, _ = net(x)
        loss = F.binary_cross_entropy_with_logits(logits, targets[idx])
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
