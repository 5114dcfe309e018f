"""segment-anything's real SAM architecture with random weights, for the tests (no checkpoint can
be downloaded here)."""

from __future__ import annotations

from typing import Any


def random_sam(image_encoder: Any, mlp_dim: int = 2048, seed: int = 0) -> Any:
    """``Sam`` with segment-anything's prompt encoder and two-way mask decoder (4 masks), random
    weights from ``seed``, around ``image_encoder``."""
    import torch
    from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(seed)
    return Sam(
        image_encoder=image_encoder,
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024), mask_in_chans=16),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=mlp_dim, num_heads=8),
            transformer_dim=256,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
    ).eval()
