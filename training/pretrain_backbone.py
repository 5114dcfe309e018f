"""Self-supervised pretraining of the classifier's backbone on unlabelled images (SimCLR).

No ImageNet weights can be had here, and the procedural pretraining (``generate`` +
``train-classifier``) shows the backbone shapes on flat colours, not photographs. This trains the
same ``Backbone`` on natural images without any of their labels: two random views of each image
(a resized crop of 20-100 % of it, a flip, colour jitter, sometimes grey), each view's pooled
stride-8 features through a small projection head, and InfoNCE (NT-Xent, Chen et al. 2020)
pulling the two views of an image together against the other images of the batch. Optionally
(``dense``) the same at every feature cell: a cell of one view against the other view's features
at the same image point (DenseCL / PixPro-like), the cells of other places and images as negatives.

The checkpoint (kind ``backbone``) holds only the backbone; ``train-classifier --init`` and
``train-deeplab --init-classifier`` start from it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from service.models.imageops import IMAGENET_MEAN, IMAGENET_STD
from training import train_classifier
from training.common import autocast, channels_last, log, lr_at
from training.nets import Backbone

MEAN = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
LUMA = torch.from_numpy(train_classifier.LUMA).view(1, 3, 1, 1)


@dataclass(frozen=True)
class ViewSpec:
    """How a view is drawn: crop area and aspect ranges, colour jitter strength and probability,
    probability of grey, output side in pixels."""

    side: int = 96
    area: tuple[float, float] = (0.2, 1.0)
    aspect: tuple[float, float] = (3 / 4, 4 / 3)
    jitter: float = 0.4
    jitter_p: float = 0.8
    grey_p: float = 0.2


def crop_thetas(n: int, spec: ViewSpec, g: torch.Generator) -> torch.Tensor:
    """[n, 2, 3] affine maps (``F.affine_grid``'s convention) from a view's normalised coordinates to
    the image's: a random crop of ``spec.area`` of the image at aspect in ``spec.aspect``, mirrored
    half of the time. No rotation or shear: theta[:, 0, 0] and theta[:, 1, 1] scale, column 2 shifts."""
    area = spec.area[0] + (spec.area[1] - spec.area[0]) * torch.rand(n, generator=g)
    lo, hi = math.log(spec.aspect[0]), math.log(spec.aspect[1])
    ratio = torch.exp(lo + (hi - lo) * torch.rand(n, generator=g))
    sx = torch.sqrt(area * ratio).clamp(max=1.0)
    sy = torch.sqrt(area / ratio).clamp(max=1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = sx * torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    theta[:, 1, 1] = sy
    theta[:, 0, 2] = (1 - sx) * (2 * torch.rand(n, generator=g) - 1)
    theta[:, 1, 2] = (1 - sy) * (2 * torch.rand(n, generator=g) - 1)
    return theta


def jitter(x: torch.Tensor, spec: ViewSpec, g: torch.Generator) -> torch.Tensor:
    """float [n, 3, H, W] on the 0-255 scale: with probability ``jitter_p`` brightness, contrast
    (about the image's mean grey) and saturation (about each pixel's grey) scaled by 1 ± up to
    ``jitter``; then grey with probability ``grey_p``."""
    n = x.shape[0]
    on = (torch.rand(n, 1, 1, 1, generator=g) < spec.jitter_p).float()
    b, c, s = 1 + on * spec.jitter * (2 * torch.rand(3, n, 1, 1, 1, generator=g) - 1)
    x = x * b
    mean_grey = (x * LUMA).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    x = (x - mean_grey) * c + mean_grey
    grey = (x * LUMA).sum(1, keepdim=True)
    x = (x - grey) * s + grey
    to_grey = (torch.rand(n, 1, 1, 1, generator=g) < spec.grey_p).float()
    x = to_grey * (x * LUMA).sum(1, keepdim=True).expand_as(x) + (1 - to_grey) * x
    return x.clamp(0.0, 255.0)


def views(images: torch.Tensor, spec: ViewSpec, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [n, 3, H, W] -> (normalised float views [n, 3, side, side], their ``crop_thetas``)."""
    theta = crop_thetas(images.shape[0], spec, g)
    grid = F.affine_grid(theta, [images.shape[0], 3, spec.side, spec.side], align_corners=False)
    x = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return (jitter(x, spec, g) - MEAN) / STD, theta


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: row i of ``z1`` and of ``z2`` are two views of one image; each of the 2n
    embeddings (L2-normalised) must pick its partner among the 2n - 1 others (cosine / temperature,
    cross-entropy), averaged."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, partner)


def matched_cells(theta1: torch.Tensor, theta2: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For every cell centre of view 1's [h, w] feature grid: where that image point lies in view 2
    (normalised coordinates, [n, h, w, 2] as ``F.grid_sample`` takes them) and whether it lies inside
    view 2 ([n, h, w] bool)."""
    n = theta1.shape[0]
    ys = (2 * (torch.arange(h) + 0.5) / h - 1).view(1, h, 1).expand(n, h, w)
    xs = (2 * (torch.arange(w) + 0.5) / w - 1).view(1, 1, w).expand(n, h, w)

    def col(t: torch.Tensor, i: int, j: int) -> torch.Tensor:
        return t[:, i, j].view(n, 1, 1)

    px = col(theta1, 0, 0) * xs + col(theta1, 0, 2)
    py = col(theta1, 1, 1) * ys + col(theta1, 1, 2)
    ux = (px - col(theta2, 0, 2)) / col(theta2, 0, 0)
    uy = (py - col(theta2, 1, 2)) / col(theta2, 1, 1)
    return torch.stack([ux, uy], dim=-1), (ux.abs() <= 1) & (uy.abs() <= 1)


def dense_nce(d1: torch.Tensor, d2: torch.Tensor, theta1: torch.Tensor, theta2: torch.Tensor, temperature: float,
              max_cells: int, g: torch.Generator) -> torch.Tensor:
    """Cell-level InfoNCE: each cell of view 1 (``d1`` [n, D, h, w]) whose image point lies in view 2
    against ``d2`` sampled at that point (bilinear); the other chosen cells' samples are the
    negatives. At most ``max_cells`` cells, drawn at random; symmetric cross-entropy."""
    grid, inside = matched_cells(theta1, theta2, d1.shape[2], d1.shape[3])
    sampled = F.grid_sample(d2, grid, mode="bilinear", align_corners=False)
    q = F.normalize(d1.permute(0, 2, 3, 1)[inside], dim=1)
    k = F.normalize(sampled.permute(0, 2, 3, 1)[inside], dim=1)
    if len(q) > max_cells:
        keep = torch.randperm(len(q), generator=g)[:max_cells]
        q, k = q[keep], k[keep]
    logits = q @ k.t() / temperature
    target = torch.arange(len(q))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


class ContrastiveNet(nn.Module):
    """The backbone with SimCLR's projection head on its pooled features and a 1x1 one on its cells."""

    def __init__(self, feat_dim: int = 64, hidden: int = 256, out: int = 128) -> None:
        super().__init__()
        self.backbone = Backbone(out_ch=feat_dim)
        self.head = nn.Sequential(nn.Linear(feat_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))
        self.cell_head = nn.Sequential(nn.Conv2d(feat_dim, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
                                       nn.Conv2d(hidden, out, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, feats = self.backbone(x)
        return self.head(feats.mean((2, 3))), self.cell_head(feats)


def pretrain_backbone(
    images: torch.Tensor, steps: int = 1500, batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
    spec: ViewSpec = ViewSpec(), temperature: float = 0.2, dense: float = 0.0, init: Backbone | None = None, precision: str = "fp32",
) -> Backbone:
    """Train ``Backbone`` on uint8 ``images`` [N, 3, S, S] (no labels) with ``nt_xent`` over two
    ``views`` of each image of a batch, plus ``dense`` × ``dense_nce`` when ``dense`` > 0; ``precision``:
    fp32, or bf16 forward passes (``training.common.autocast``; the losses in fp32)."""
    if len(images) < 2:
        raise ValueError("self-supervised pretraining needs at least 2 images (each batch's other images are the negatives)")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = ContrastiveNet()
    if init is not None:
        net.backbone.load_state_dict(init.state_dict())
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    batch_size = min(batch_size, len(images))
    net.to(memory_format=torch.channels_last).train()
    start = time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        idx = torch.randperm(len(images), generator=g)[:batch_size]
        (v1, t1), (v2, t2) = views(images[idx], spec, g), views(images[idx], spec, g)
        with autocast(precision):
            z, cells = (t.float() for t in net(channels_last(torch.cat([v1, v2]))))
        loss = nt_xent(z[:batch_size], z[batch_size:], temperature)
        parts = {"global": loss.item()}
        if dense > 0:
            cell_loss = dense_nce(cells[:batch_size], cells[batch_size:], t1, t2, temperature, 1024, g)
            loss = loss + dense * cell_loss
            parts["dense"] = cell_loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            terms = " ".join(f"{k} {v:.4f}" for k, v in parts.items())
            log.info("pretrain step %d/%d loss %.4f (%s) (%.0f s)", step, steps, loss.item(), terms, time.perf_counter() - start)
    return net.backbone.to(memory_format=torch.contiguous_format).eval()
