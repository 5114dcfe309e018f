"""The promptable decoder computes the embedding's terms once per image: same logits as per prompt."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.nets import PromptDecoderNet


def _per_prompt_fused(net: PromptDecoderNet, emb: torch.Tensor, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The straightforward formula: every term on the embedding expanded to the prompt batch."""
    b = coords.shape[0]
    e = emb.expand(b, -1, -1, -1)
    mask = torch.zeros(b, 1, 256, 256)
    maps = net.prompt_maps(e, coords, labels, mask, torch.zeros(1))
    x = F.relu(net.embed_proj(e) + net.prompt_proj(maps))
    up = F.interpolate(net.body(F.avg_pool2d(x, 2)), size=x.shape[2:], mode="bilinear", align_corners=False)
    fused = net.fuse(torch.cat([up, e, maps], 1))
    return F.pixel_shuffle(net.mask_head(fused), 4)


def test_shared_embedding_terms_give_the_same_logits() -> None:
    torch.manual_seed(0)
    net = PromptDecoderNet().eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    emb = torch.randn(1, 256, 64, 64)
    coords = torch.rand(5, 3, 2) * 1024
    labels = torch.tensor([[1.0, 0.0, -1.0], [2.0, 3.0, 1.0], [1.0, 1.0, -1.0], [0.0, 1.0, -1.0], [1.0, -1.0, -1.0]])
    with torch.no_grad():
        low, _ = net.forward_low_res(emb, coords, labels, torch.zeros(1, 1, 256, 256), torch.zeros(1))
        want = _per_prompt_fused(net, emb, coords, labels)
    assert torch.allclose(low, want, atol=1e-4)
