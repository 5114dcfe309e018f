"""Train the class-agnostic promptable mask model (SAM decoder contract) from instance masks.

Each training example is one prompt set on one image, sampled the way the service prompts:
- points (60%): all instances of one class, 1-3 positive points in a random subset of them (the
  target is the union of the prompted instances), sometimes jittered off the object by a few
  pixels as CAM peaks are, sometimes with negative points on the background or other defects;
- box (25%): the jittered bounding box of one instance, sometimes with a positive point;
- previous mask (15%): a degraded mask of one instance as ``mask_input`` plus one click.
Each example is then cropped to ``CROP`` pixels around its first prompt, which keeps a step cheap
on a CPU (the networks are fully convolutional). Loss: BCE + Dice on the 256x256 low-res logits for mask 0 and mask 3, the best of masks 1-2
(SAM's ambiguity loss), and MSE of the predicted IoU.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from training.common import TrainingSet, autocast, batches, channels_last, log, lr_at, to_tensor
from training.nets import NUM_MASKS, PromptDecoderNet, PromptEncoderBody

MAX_POINTS = 6
SCALE = 4.0  # training images are at 1/4 of the SAM frame
CROP = 128


def _pick(rng: np.random.Generator, region: npt.NDArray[np.bool_]) -> tuple[float, float]:
    ys, xs = np.nonzero(region)
    k = int(rng.integers(len(xs)))
    return float(xs[k]), float(ys[k])


def sample_prompt(
    rng: np.random.Generator, instances: npt.NDArray[np.int32], classes: tuple[int, ...]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32], float, npt.NDArray[np.float32]]:
    """One prompt set for one image: (coords [P,2] in 256 px, labels [P], mask_input [256,256], has_mask, target [256,256])."""
    coords: list[tuple[float, float]] = []
    labels: list[float] = []
    mask_in = np.zeros(instances.shape, np.float32)
    has_mask = 0.0
    mode = rng.random()
    ids = np.arange(1, len(classes) + 1)
    if mode < 0.6:
        cls = classes[int(rng.integers(len(classes)))]
        same = [k for k in ids if classes[k - 1] == cls and (instances == k).any()]
        chosen = list(rng.choice(same, size=int(rng.integers(1, len(same) + 1)), replace=False)) if same else []
        target = np.isin(instances, chosen)
        for k in chosen:
            for _ in range(int(rng.integers(1, 3))):
                x, y = _pick(rng, instances == k)
                if rng.random() < 0.3:
                    x, y = x + rng.uniform(-4, 4), y + rng.uniform(-4, 4)
                coords.append((x, y))
                labels.append(1.0)
        if rng.random() < 0.3:
            for _ in range(int(rng.integers(1, 3))):
                coords.append(_pick(rng, ~ndi.binary_dilation(target, iterations=3)))
                labels.append(0.0)
    else:
        present = [k for k in ids if (instances == k).any()]
        k = int(rng.choice(present)) if present else 1
        target = instances == k
        if mode < 0.85 and target.any():
            ys, xs = np.nonzero(target)
            x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
            jw, jh = 0.08 * (x1 - x0 + 4), 0.08 * (y1 - y0 + 4)
            coords += [(x0 + rng.uniform(-jw, jw), y0 + rng.uniform(-jh, jh)), (x1 + rng.uniform(-jw, jw), y1 + rng.uniform(-jh, jh))]
            labels += [2.0, 3.0]
            if rng.random() < 0.3:
                coords.append(_pick(rng, target))
                labels.append(1.0)
        elif target.any():
            it = int(rng.integers(1, 4))
            degraded = ndi.binary_dilation(target, iterations=it) if rng.random() < 0.5 else ndi.binary_erosion(target, iterations=1)
            mask_in = np.where(degraded, 8.0, -8.0).astype(np.float32)
            has_mask = 1.0
            coords.append(_pick(rng, target))
            labels.append(1.0)
    if not any(lab == 2.0 for lab in labels):
        coords.append((0.0, 0.0))
        labels.append(-1.0)
    return (
        np.array(coords[:MAX_POINTS], np.float32).reshape(-1, 2),
        np.array(labels[:MAX_POINTS], np.float32),
        mask_in,
        has_mask,
        target.astype(np.float32),
    )


Prompt = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32], float, npt.NDArray[np.float32]]


def crop_example(rng: np.random.Generator, image: npt.NDArray[np.uint8], prompt: Prompt, size: int = CROP) -> tuple[npt.NDArray[np.uint8], Prompt]:
    """Crop image and prompt to ``size`` px around the first prompt point; points left outside become padding."""
    coords, labels, mask_in, has_mask, target = prompt
    h, w = target.shape
    ax, ay = coords[0] if labels[0] != 2.0 else (coords[0] + coords[1]) / 2
    x0 = int(rng.integers(max(0, min(int(ax) - size + 1, w - size)), min(max(int(ax), 0), w - size) + 1))
    y0 = int(rng.integers(max(0, min(int(ay) - size + 1, h - size)), min(max(int(ay), 0), h - size) + 1))
    coords = coords - np.array([x0, y0], np.float32)
    labels = labels.copy()
    inside = (coords[:, 0] >= 0) & (coords[:, 0] < size) & (coords[:, 1] >= 0) & (coords[:, 1] < size)
    box = (labels == 2.0) | (labels == 3.0)
    labels[~inside & ~box & (labels >= 0)] = -1.0
    coords[box] = np.clip(coords[box], 0, size - 1)
    win = (slice(y0, y0 + size), slice(x0, x0 + size))
    return image[win], (coords, labels, mask_in[win], has_mask, target[win])


def _mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example BCE + Dice, [B]."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(1, 2))
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * target).sum(dim=(1, 2)) + 1) / (p.sum(dim=(1, 2)) + target.sum(dim=(1, 2)) + 1)
    return bce * 4.0 + dice


def train_promptable(
    data: TrainingSet, out: Path | None = None, steps: int = 900, batch_size: int = 12, lr: float = 2e-3, seed: int = 0,
    crop: int = CROP, precision: str = "fp32",
) -> tuple[PromptEncoderBody, PromptDecoderNet]:
    """Train encoder body and decoder on ``data``'s instance masks (class-agnostic); save both to ``out``.

    ``crop``: side of the training window (px of the 256 frame); large objects (salient-object data
    such as DUTS) need a window that holds them, defects are fine with the default 128.
    ``precision``: fp32, or bf16 forward passes (``training.common.autocast``; the losses in fp32).
    """
    rng = np.random.default_rng(seed)
    enc, dec = PromptEncoderBody(), PromptDecoderNet()
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    usable = np.array([i for i, c in enumerate(data.instance_classes) if c and data.instances[i].any()])
    enc.to(memory_format=torch.channels_last).train()
    dec.to(memory_format=torch.channels_last).train()
    start = time.perf_counter()
    for step, pick in enumerate(batches(len(usable), batch_size, rng)):
        if step >= steps:
            break
        idx = usable[pick]
        examples = [crop_example(rng, data.images[i], sample_prompt(rng, data.instances[i], data.instance_classes[i]), crop) for i in idx]
        images = np.stack([e[0] for e in examples])
        prompts = [e[1] for e in examples]
        coords = np.zeros((len(idx), MAX_POINTS, 2), np.float32)
        labels = np.full((len(idx), MAX_POINTS), -1.0, np.float32)
        for b, (c, lab, _, _, _) in enumerate(prompts):
            coords[b, : len(c)] = c * SCALE
            labels[b, : len(lab)] = lab
        mask_in = torch.from_numpy(np.stack([p[2] for p in prompts])[:, None])
        has_mask = torch.tensor([p[3] for p in prompts], dtype=torch.float32)
        target = torch.from_numpy(np.stack([p[4] for p in prompts]))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        with autocast(precision):
            emb = enc(channels_last(to_tensor(images)))
            low_res, iou = (t.float() for t in dec.forward_low_res(emb, torch.from_numpy(coords), torch.from_numpy(labels), mask_in, has_mask))
        losses = torch.stack([_mask_loss(low_res[:, k], target) for k in range(NUM_MASKS)], 1)  # [B,4]
        mask_loss = losses[:, 0] + losses[:, 3] + losses[:, 1:3].min(dim=1).values
        with torch.no_grad():
            pred = (low_res > 0).float()
            inter = (pred * target[:, None]).sum(dim=(2, 3))
            union = ((pred + target[:, None]) > 0).float().sum(dim=(2, 3))
            true_iou = inter / union.clamp(min=1)
        loss = mask_loss.mean() + F.mse_loss(iou, true_iou)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            log.info(
                "promptable step %d/%d loss %.4f iou(mask3) %.3f (%.0f s)",
                step, steps, loss.item(), true_iou[:, 3].mean().item(), time.perf_counter() - start,
            )
    enc.to(memory_format=torch.contiguous_format).eval()
    dec.to(memory_format=torch.contiguous_format).eval()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"encoder": enc.state_dict(), "decoder": dec.state_dict()}, out)
    return enc, dec
