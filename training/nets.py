"""The small default networks, in plain torch (no torchvision).

- ``CamNet``: the CAM classifier (GAP over class activation maps, output stride 8).
- ``PromptEncoderNet`` / ``PromptDecoderNet``: a small promptable mask model with SAM's ONNX
  contract. The encoder takes SAM's 1024x1024 normalised, padded input and returns a
  [1, 256, 64, 64] embedding; the decoder takes the official segment-anything ONNX decoder inputs
  and returns ``masks``, ``iou_predictions`` and ``low_res_masks`` with 4 masks (index 0 the
  single-mask output, 1-3 the multimask outputs), like ``SamOnnxModel`` without
  ``return_single_mask``.
- ``DeepLab``: DeepLabv3+ (atrous backbone, ASPP, low-level decoder) with background at logit 0.

Prompts are given to the decoder as maps on the 64x64 embedding grid (click maps, a box map, the
previous mask), an approach from interactive segmentation that trains fast on a CPU.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

SAM_IMG_SIZE = 1024
EMBED_GRID = 64
EMBED_DIM = 256
LOW_RES = 256
NUM_MASKS = 4


def conv_bn(cin: int, cout: int, stride: int = 1, dilation: int = 1, k: int = 3) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class ResBlock(nn.Module):
    """x + BN(conv3x3(x)), then ReLU: one dilated convolution with a skip."""

    def __init__(self, ch: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, 1, dilation, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.bn(self.conv(x)))


class Backbone(nn.Module):
    """Output stride 8 with dilated residual blocks; returns (stride-4 features [32 ch], stride-8 features)."""

    def __init__(self, out_ch: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 16, 2), conv_bn(16, 32, 2), ResBlock(32, 1))
        self.mid = nn.Sequential(conv_bn(32, out_ch, 2), *[ResBlock(out_ch, d) for d in (1, 2, 4, 1)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.stem(x)
        return low, self.mid(low)


class CamNet(nn.Module):
    """CAM classifier: ``image`` [N,3,H,W] -> ``logits`` [N,C], ``cams`` [N,C,H/8,W/8], ``features`` [N,D,H/8,W/8].

    The CAM of class c is the classifier weight of c applied to the last feature map. The logits
    pool the CAMs with log-sum-exp (``r`` = 5, between average and max pooling): plain global
    average pooling drowns a thin scratch in thousands of background cells.
    """

    def __init__(self, num_classes: int, feat_dim: int = 64, r: float = 5.0) -> None:
        super().__init__()
        self.backbone = Backbone(out_ch=feat_dim)
        self.classifier = nn.Conv2d(feat_dim, num_classes, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(num_classes))
        self.r = r

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _, feats = self.backbone(image)
        cams = self.classifier(feats)
        flat = cams.flatten(2) * self.r
        logits = (torch.logsumexp(flat, dim=2) - torch.log(torch.tensor(float(flat.shape[2])))) / self.r + self.bias
        return logits, cams, feats


class ASPP(nn.Module):
    def __init__(self, cin: int, cout: int, rates: tuple[int, ...] = (2, 4, 6)) -> None:
        super().__init__()
        self.branches = nn.ModuleList([conv_bn(cin, cout, k=1)] + [conv_bn(cin, cout, dilation=r) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True))
        self.project = conv_bn(cout * (len(rates) + 2), cout, k=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        outs.append(self.pool(x).expand(-1, -1, x.shape[2], x.shape[3]))
        return self.project(torch.cat(outs, dim=1))


class DeepLab(nn.Module):
    """DeepLabv3+: ``image`` [N,3,H,W] -> ``logits`` [N,C+1,H,W] (background at 0)."""

    def __init__(self, num_classes: int, feat_dim: int = 64) -> None:
        super().__init__()
        self.backbone = Backbone(out_ch=feat_dim)
        self.aspp = ASPP(feat_dim, 64)
        self.low_proj = conv_bn(32, 24, k=1)
        self.decoder = conv_bn(64 + 24, 48)
        self.head = nn.Conv2d(48, num_classes + 1, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        low, high = self.backbone(image)
        x = F.interpolate(self.aspp(high), size=low.shape[2:], mode="bilinear", align_corners=False)
        x = self.decoder(torch.cat([x, self.low_proj(low)], dim=1))
        return F.interpolate(self.head(x), size=image.shape[2:], mode="bilinear", align_corners=False)


class PromptEncoderBody(nn.Module):
    """Image at 1/4 of SAM's frame (256 px long side) -> [N, 256, H/4, W/4] embedding.

    Half the channels are semantic (stride-8 dilated blocks, wide receptive field, upsampled),
    half keep the 4x4 pixel detail of each grid cell (space-to-depth), so the decoder can draw
    thin defects.
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 16, 2), conv_bn(16, 32, 2), conv_bn(32, width, 2))
        self.blocks = nn.Sequential(*[ResBlock(width, d) for d in (1, 2, 4, 8)])
        self.semantic = nn.Conv2d(width, EMBED_DIM // 2, 1)
        self.detail = nn.Sequential(conv_bn(3, 8), nn.Conv2d(8, 8, 3, 1, 1))
        self.detail_proj = nn.Conv2d(8 * 16, EMBED_DIM // 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        det = self.detail_proj(F.pixel_unshuffle(self.detail(x), 4))
        sem = self.semantic(self.blocks(self.stem(x)))
        sem = F.interpolate(sem, size=det.shape[2:], mode="bilinear", align_corners=False)
        return torch.cat([sem, det], dim=1)


class PromptEncoderNet(nn.Module):
    """The exported ``sam_encoder``: ``image`` [1,3,1024,1024] -> ``image_embeddings`` [1,256,64,64]."""

    def __init__(self, body: PromptEncoderBody) -> None:
        super().__init__()
        self.body = body

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.body(F.avg_pool2d(image, 4))


CELL = SAM_IMG_SIZE / EMBED_GRID  # 16 px of the 1024 frame per embedding cell


def _grid(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres of the embedding cells of ``like`` [B,C,h,w] in SAM's 1024 frame: x [1,1,1,w], y [1,1,h,1]."""
    gy = (torch.arange(like.shape[2], dtype=torch.float32) + 0.5) * CELL
    gx = (torch.arange(like.shape[3], dtype=torch.float32) + 0.5) * CELL
    return gx.view(1, 1, 1, -1), gy.view(1, 1, -1, 1)


class PromptDecoderNet(nn.Module):
    """SAM-contract decoder (see module docstring). Shapes follow ``SamOnnxModel``:

    ``image_embeddings`` [1,256,64,64] (or [B,...]); ``point_coords`` [B,N,2] (x, y in the 1024
    frame); ``point_labels`` [B,N] (1 positive, 0 negative, -1 padding, 2/3 box corners);
    ``mask_input`` [B,1,256,256] logits; ``has_mask_input`` [1]; ``orig_im_size`` [2] (h, w).
    Returns ``masks`` [B,4,h,w], ``iou_predictions`` [B,4], ``low_res_masks`` [B,4,256,256].
    """

    def __init__(self, width: int = 48) -> None:
        super().__init__()
        self.embed_proj = nn.Conv2d(EMBED_DIM, width, 1)
        self.prompt_proj = nn.Conv2d(7, width, 1)
        self.body = nn.Sequential(*[ResBlock(width, d) for d in (1, 2, 4, 8, 1)])
        self.fuse = nn.Sequential(conv_bn(width + EMBED_DIM + 7, width, k=1), conv_bn(width, width))
        self.mask_head = nn.Conv2d(width, NUM_MASKS * 16, 1)
        self.iou_head = nn.Sequential(nn.Linear(2 * width, 64), nn.ReLU(inplace=True), nn.Linear(64, NUM_MASKS))

    def prompt_maps(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> torch.Tensor:
        gx, gy = _grid(image_embeddings)
        px = point_coords[:, :, 0].unsqueeze(-1).unsqueeze(-1) + 0.5
        py = point_coords[:, :, 1].unsqueeze(-1).unsqueeze(-1) + 0.5
        d2 = ((gx - px) ** 2 + (gy - py) ** 2) / CELL**2  # [B,N,h,w] squared distance in cells
        lab = point_labels.unsqueeze(-1).unsqueeze(-1)
        near = torch.exp(-d2 / 2.0)
        far = torch.exp(-d2 / 50.0)
        pos = (lab == 1).float()
        neg = (lab == 0).float()
        pos_near, pos_far = (near * pos).amax(dim=1, keepdim=True), (far * pos).amax(dim=1, keepdim=True)
        neg_near, neg_far = (near * neg).amax(dim=1, keepdim=True), (far * neg).amax(dim=1, keepdim=True)
        tl = (point_labels == 2).float()
        br = (point_labels == 3).float()
        has_box = tl.amax(dim=1).view(-1, 1, 1, 1)
        x0 = (point_coords[:, :, 0] * tl).sum(1) / tl.sum(1).clamp(min=1.0)
        y0 = (point_coords[:, :, 1] * tl).sum(1) / tl.sum(1).clamp(min=1.0)
        x1 = (point_coords[:, :, 0] * br).sum(1) / br.sum(1).clamp(min=1.0)
        y1 = (point_coords[:, :, 1] * br).sum(1) / br.sum(1).clamp(min=1.0)
        s = 8.0
        box = (
            torch.sigmoid((gx - x0.view(-1, 1, 1, 1)) / s)
            * torch.sigmoid((x1.view(-1, 1, 1, 1) - gx) / s)
            * torch.sigmoid((gy - y0.view(-1, 1, 1, 1)) / s)
            * torch.sigmoid((y1.view(-1, 1, 1, 1) - gy) / s)
        ) * has_box
        prev = torch.tanh(F.avg_pool2d(mask_input, 4) / 4.0) * has_mask_input.view(-1, 1, 1, 1)
        return torch.cat([pos_near, pos_far, neg_near, neg_far, box, prev, has_mask_input.view(-1, 1, 1, 1).expand_as(prev)], 1)

    def forward_low_res(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b = point_coords.shape[0]
        mask_input = mask_input.expand(b, -1, -1, -1)
        maps = self.prompt_maps(image_embeddings.expand(b, -1, -1, -1), point_coords, point_labels, mask_input, has_mask_input)
        # The embedding's terms run once per image, not once per prompt (1.5x faster per prompt):
        # embed_proj, and the embedding's share of the fuse 1x1 convolution
        # (conv(cat(u, e, m)) = conv_u(u) + conv_e(e) + conv_m(m); same state dict, same export).
        x = F.relu(self.embed_proj(image_embeddings) + self.prompt_proj(maps))
        coarse = self.body(F.avg_pool2d(x, 2))
        up = F.interpolate(coarse, size=x.shape[2:], mode="bilinear", align_corners=False)
        first = cast(nn.Sequential, self.fuse[0])
        conv, bn = cast(nn.Conv2d, first[0]), first[1]
        w, width = conv.weight, up.shape[1]
        shared = F.conv2d(image_embeddings, w[:, width : width + EMBED_DIM])
        mixed = shared + F.conv2d(torch.cat([up, maps], 1), torch.cat([w[:, :width], w[:, width + EMBED_DIM :]], 1))
        fused = self.fuse[1](F.relu(bn(mixed)))
        logits = F.pixel_shuffle(self.mask_head(fused), 4)
        weight = torch.sigmoid(F.avg_pool2d(logits, 4)).amax(dim=1, keepdim=True)
        pooled = torch.cat([fused.mean(dim=(2, 3)), (fused * weight).sum(dim=(2, 3)) / weight.sum(dim=(2, 3)).clamp(min=1e-3)], 1)
        iou = torch.sigmoid(self.iou_head(pooled))
        return logits, iou

    def forward(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
        orig_im_size: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        low_res, iou = self.forward_low_res(image_embeddings, point_coords, point_labels, mask_input, has_mask_input)
        masks = F.interpolate(low_res, size=(SAM_IMG_SIZE, SAM_IMG_SIZE), mode="bilinear", align_corners=False)
        size = orig_im_size.to(torch.float32)
        prepadded = torch.floor(size * (SAM_IMG_SIZE / torch.max(size)) + 0.5).to(torch.int64)
        masks = masks[..., : prepadded[0], : prepadded[1]]
        hw = orig_im_size.to(torch.int64)
        masks = F.interpolate(masks, size=(hw[0], hw[1]), mode="bilinear", align_corners=False)
        return masks, iou, low_res
