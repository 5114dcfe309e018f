"""S2C: from SAM to CAMs (Kweon & Yoon, CVPR 2024), the two training losses and their targets.

- **SSC** (SAM-segment contrasting): every training image's segment map (``se_maps``: segment
  everything with the promptable model, the smallest segment wins where segments overlap;
  computed once and cached on disk). Each segment's prototype is the mean of the classifier's
  L2-normalised features inside it (detached), normalised; InfoNCE pulls every pixel's feature to
  its own segment's prototype against the others of the image (``ssc_loss``; pixels outside any
  segment are not pulled, their prototype is a negative like the others, as in the reference code).
- **CPM** (CAM-based prompting): multi-scale CAM peaks of each labelled class -> promptable-model
  mask (image embeddings computed once per image and kept) -> confidence = mask logit x mean CAM
  inside the mask -> per pixel the class of highest confidence, background where no mask lies
  (``cpm_targets``) -> cross-entropy on the normalised CAMs of the labelled classes plus a
  background channel 1 - max CAM (``cpm_loss``). On a data set without a background class
  (MSRC) pixels no mask covers are ignored instead of taught as background.

Where this differs from the reference code, for a 2-core CPU: the SSC loss runs at the feature
map's resolution (segment maps downsampled by nearest neighbour) instead of features upsampled to
the image; CPM targets are computed for the whole training split every ``refresh`` steps with the
classifier of that moment (the reference computes them for every batch), and follow the batch's
flips, rotations and scale.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from service.models.sam import ImageEmbedding, SamDecoder, SamEncoder
from service.pipeline.everything import EverythingOptions, generate, se_map
from service.pipeline.prompts import cam_peaks
from service.pipeline.types import IGNORE
from training.common import log, to_tensor
from training.nets import CamNet

SE_OPTIONS = EverythingOptions(points_per_side=6, points_per_batch=36, pred_iou_thresh=0.3, stability_score_thresh=0.6, box_nms_thresh=0.7)
"""Segment-everything settings for the SE maps: a 6 x 6 grid (36 prompts an image keep the maps
affordable on a CPU: ~2 s an image on one core with the small decoder) and filters loosened for a
small promptable model, whose predicted IoUs and stability are lower than SAM's (on msrc_v2
training images its median predicted IoU is 0.2-0.65: SAM's 0.88 / 0.95 keep 0-6 masks an image)."""
CAM_SCALES = (0.5, 1.0, 1.5, 2.0)
MASK_INDEX = 3
"""The decoder's mask used for CPM: the last multimask output (the reference code's index 2 of 3)."""


# --- losses -------------------------------------------------------------------------------------


def ssc_loss(features: torch.Tensor, segments: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """InfoNCE of features to their segment's prototype.

    Args:
        features: [B, D, h, w] classifier features (normalised here along D).
        segments: int64 [B, h, w] segment ids, 0 = in no segment (not pulled).
        temperature: logits are cosine similarity x ``temperature`` (the reference code's T, 1).

    Returns:
        Mean cross-entropy over pixels in a segment (0 when there are none).
    """
    b, d = features.shape[:2]
    feats = F.normalize(features, dim=1).reshape(b, d, -1)  # [B, D, HW]
    ids = segments.reshape(b, -1)
    k = int(ids.max().item()) + 1
    if k <= 1:
        return features.sum() * 0.0
    onehot = F.one_hot(ids, k).to(feats.dtype)  # [B, HW, K]
    counts = onehot.sum(dim=1)  # [B, K]
    protos = torch.bmm(feats.detach(), onehot) / counts.clamp(min=1.0).unsqueeze(1)  # [B, D, K]
    protos = F.normalize(protos, dim=1)
    logits = torch.bmm(protos.transpose(1, 2), feats) * temperature  # [B, K, HW]
    present = counts > 0  # absent prototypes are no negatives
    logits = logits.masked_fill(~present.unsqueeze(2), float("-inf"))
    target = ids.clone()
    target[ids == 0] = -100
    if not (target >= 0).any():
        return features.sum() * 0.0
    return F.cross_entropy(logits, target, ignore_index=-100)


def normalised_cams(cams: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ReLU'd CAMs divided by their per-image, per-class maximum, zero for unlabelled classes."""
    cams = F.relu(cams)
    peak = cams.flatten(2).max(dim=2).values[..., None, None]
    return cams / (peak + 1e-5) * labels[..., None, None]


def cpm_loss(cams: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of [normalised CAMs, 1 - max CAM] (as logits) against CPM targets.

    Args:
        cams: [B, C, h, w] raw CAMs, upsampled here to the targets' size.
        labels: [B, C] image-level labels.
        targets: int64 [B, H, W]: class index 0..C-1, C = background, 255 = ignore (``downsample``
            brings them to twice the CAM resolution first: the loss at full image size costs a
            CPU 1.3 s a step with 23 classes).
    """
    cams = F.interpolate(cams, size=targets.shape[1:], mode="bilinear", align_corners=False)
    norm = normalised_cams(cams, labels)
    background = 1.0 - norm.max(dim=1, keepdim=True).values
    logits = torch.cat([norm, background], dim=1)
    if not (targets != IGNORE).any():
        return cams.sum() * 0.0
    return F.cross_entropy(logits, targets, ignore_index=IGNORE)


# --- targets ------------------------------------------------------------------------------------


def _fingerprint(paths: Sequence[Path], images: npt.NDArray[np.uint8], extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for p in paths:
        h.update(p.read_bytes())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()[:20]


def se_maps(
    encoder: SamEncoder, decoder: SamDecoder, images: npt.NDArray[np.uint8], model_files: Sequence[Path], cache: Path | None,
    options: EverythingOptions = SE_OPTIONS, indices: Sequence[int] | None = None,
) -> npt.NDArray[np.int32]:
    """Segment maps int32 [N, H, W] (0 = no segment) of ``images[indices]`` (default: all; the
    others stay 0), read from ``cache`` when these models made them for these images with these
    options before."""
    todo = list(range(len(images))) if indices is None else list(indices)
    key = _fingerprint(model_files, images[todo], repr(options))
    path = None if cache is None else cache / f"se_{key}.npz"
    if path is not None and path.is_file():
        log.info("SE maps from %s", path)
        return np.load(path)["se"].astype(np.int32)
    start = time.perf_counter()
    out = np.zeros(images.shape[:3], np.int32)
    for n, i in enumerate(todo):
        kept = generate(decoder, encoder.embed(images[i]), options)
        out[i] = se_map([k.mask for k in kept], images.shape[1:3])
        if n % 50 == 0:
            log.info("SE maps %d/%d: %d segments (%.0f s)", n, len(todo), len(kept), time.perf_counter() - start)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, se=out.astype(np.uint16))
    log.info("SE maps of %d images in %.0f s", len(todo), time.perf_counter() - start)
    return out


def multiscale_cams(net: CamNet, images: torch.Tensor, scales: Sequence[float] = CAM_SCALES) -> torch.Tensor:
    """[B, C, H, W] sum over scales and flips of ReLU(upsampled CAM), divided by its maximum per class."""
    h, w = images.shape[2:]
    total = torch.zeros(images.shape[0], net.classifier.out_channels, h, w)
    with torch.no_grad():
        for s in scales:
            x = images if s == 1.0 else F.interpolate(images, scale_factor=s, mode="bilinear", align_corners=False)
            for flip in (False, True):
                _, cams, _ = net(x.flip(3) if flip else x)
                cams = F.relu(F.interpolate(cams, size=(h, w), mode="bilinear", align_corners=False))
                total += cams.flip(3) if flip else cams
    return total / (total.flatten(2).max(dim=2).values[..., None, None] + 1e-5)


@dataclass
class CpmSource:
    """What CPM needs of the promptable model: its decoder and every training image's embedding."""

    decoder: SamDecoder
    embeddings: dict[int, ImageEmbedding]
    """Image index -> its embedding (float16 to halve the memory)."""
    background: bool
    """Whether the data set has a background class (else uncovered pixels are ignored)."""

    @classmethod
    def embed(
        cls, encoder: SamEncoder, decoder: SamDecoder, images: npt.NDArray[np.uint8], indices: Sequence[int], background: bool
    ) -> CpmSource:
        """Embed ``images[indices]`` once."""
        start = time.perf_counter()
        embeddings = {}
        for i in indices:
            e = encoder.embed(images[i])
            embeddings[i] = ImageEmbedding(np.asarray(e.embeddings, np.float32).astype(np.float16), e.geometry, e.encoder_version)
        log.info("embedded %d images for CPM in %.0f s", len(indices), time.perf_counter() - start)
        return cls(decoder, embeddings, background)


def cpm_targets(net: CamNet, images: npt.NDArray[np.uint8], labels: npt.NDArray[np.float32], source: CpmSource,
                indices: Sequence[int], batch: int = 16) -> npt.NDArray[np.uint8]:
    """CPM targets uint8 [len(indices), H, W] (class index 0..C-1, C = background, 255 = ignore)."""
    c = labels.shape[1]
    out = np.full((len(indices),) + images.shape[1:3], IGNORE, np.uint8)
    net.eval()
    for start in range(0, len(indices), batch):
        idx = list(indices[start : start + batch])
        cams = multiscale_cams(net, to_tensor(images[idx])).numpy()
        for j, i in enumerate(idx):
            emb = source.embeddings[i]
            emb = ImageEmbedding(np.asarray(emb.embeddings, np.float32), emb.geometry, emb.encoder_version)
            conf = np.full((c,) + images.shape[1:3], -np.inf, np.float32)
            classes = np.flatnonzero(labels[i] > 0)
            for k in classes:
                cam = cams[j, k]
                pts = cam_peaks(cam, 0.5, 20, 8)
                decoded = source.decoder.predict(emb, pts, np.ones(len(pts), np.float32))
                m = MASK_INDEX if decoded.low_res_logits.shape[0] > MASK_INDEX else 0
                logits = source.decoder.upsample(decoded.low_res_logits[m : m + 1], emb.geometry)[0]
                region = logits > 0
                if region.any():
                    conf[k][region] = logits[region] * float(cam[region].mean())
            best = conf.argmax(axis=0)
            covered = np.isfinite(conf.max(axis=0))
            target = np.where(covered, best, c if source.background else IGNORE)
            if len(classes) == 0 and source.background:
                target[:] = c
            out[start + j] = target.astype(np.uint8)
    net.train()
    return out


def augment_like(x: torch.Tensor, flip_w: bool, flip_h: bool, rot: int, scale: float, nearest: bool) -> torch.Tensor:
    """The classifier's batch augmentation applied to [B, C, H, W] (nearest for label maps)."""
    if flip_w:
        x = x.flip(3)
    if flip_h:
        x = x.flip(2)
    x = torch.rot90(x, rot, (2, 3))
    if scale != 1.0:
        if nearest:
            x = F.interpolate(x.float(), scale_factor=scale, mode="nearest").to(x.dtype)
        else:
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    return x


def downsample_targets(targets: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """int64 [B, H, W] label targets to ``size`` by nearest neighbour."""
    return F.interpolate(targets[:, None].float(), size=size, mode="nearest").long()[:, 0]
