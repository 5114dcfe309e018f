"""Export official SAM checkpoints (vit_h / vit_l / vit_b, or MobileSAM's vit_t) into a model repository.

- ``sam_encoder``: the image encoder alone, ``image`` [1,3,1024,1024] (resized longest side 1024,
  ImageNet-normalised, zero-padded bottom/right) -> ``image_embeddings`` [1,256,64,64].
- ``sam_decoder``: segment-anything's ``SamOnnxModel`` (4 masks: no ``return_single_mask``),
  legacy exporter (``dynamo=False``; the dynamo exporter fails on it), opset 17, the official
  input and output names, a dynamic number of points.

segment-anything imports torchvision at import time, which has no CPU build for this project's
torch; the export never calls it, so when torchvision cannot be imported a stand-in module is
registered whose functions raise if anything does call them. Install with
``pip install -e '.[sam]'``; the service itself never needs any of this.

    python -m training export-sam --model-type vit_b --checkpoint sam_vit_b_01ec64.pth --repo model_repo
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.export import OPSET, encoder_in_graph, rewrite_onnx, write_config, write_encoder_config

EMBED_DIM = 256
LOW_RES = 256
IMG_SIZE = 1024


def _torchvision_stand_in() -> None:
    """Register the few torchvision names segment-anything imports (``transforms.functional.resize``,
    ``to_pil_image``, ``ops.boxes.batched_nms``, ``box_area``) when the real ones cannot be imported."""
    try:
        importlib.import_module("torchvision.transforms.functional")
        importlib.import_module("torchvision.ops.boxes")
        return
    except Exception:  # missing, or PyPI's build failing against this torch ("operator torchvision::nms does not exist")
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]

    def unavailable(*_: Any, **__: Any) -> None:
        raise RuntimeError("torchvision is not installed: segment-anything's image transforms are unavailable (export does not need them)")

    modules = {n: types.ModuleType(n) for n in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.ops", "torchvision.ops.boxes")}
    for name, module in modules.items():
        module.__path__ = []  # type: ignore[attr-defined]  # a package, so submodules resolve
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(modules[parent], child, module)
    for fn in ("resize", "to_pil_image"):
        setattr(modules["torchvision.transforms.functional"], fn, unavailable)
    for fn in ("batched_nms", "box_area"):
        setattr(modules["torchvision.ops.boxes"], fn, unavailable)
    sys.modules.update(modules)


def import_segment_anything(package: str = "segment_anything") -> types.ModuleType:
    """Import segment-anything (or ``mobile_sam``), with the torchvision stand-in where needed."""
    _torchvision_stand_in()
    return importlib.import_module(package)


class _Encoder(nn.Module):
    def __init__(self, image_encoder: nn.Module) -> None:
        super().__init__()
        self.image_encoder = image_encoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(image)  # type: ignore[no-any-return]


def export_decoder(sam: nn.Module, repo: Path, package: str = "segment_anything", name: str = "sam_decoder", version: int = 1) -> Path:
    """Export ``sam``'s prompt encoder + mask decoder with ``SamOnnxModel`` (4 masks)."""
    onnx_mod = importlib.import_module(f"{package}.utils.onnx")
    model = onnx_mod.SamOnnxModel(sam, return_single_mask=False)
    grid = sam.prompt_encoder.image_embedding_size
    dummy = {
        "image_embeddings": torch.randn(1, EMBED_DIM, *grid, dtype=torch.float),
        "point_coords": torch.randint(low=0, high=IMG_SIZE, size=(1, 5, 2), dtype=torch.float),
        "point_labels": torch.randint(low=0, high=4, size=(1, 5), dtype=torch.float),
        "mask_input": torch.randn(1, 1, 4 * grid[0], 4 * grid[1], dtype=torch.float),
        "has_mask_input": torch.tensor([1], dtype=torch.float),
        "orig_im_size": torch.tensor([1500, 2250], dtype=torch.float),
    }
    path = repo / name / str(version) / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            tuple(dummy.values()),
            str(path),
            input_names=list(dummy.keys()),
            output_names=["masks", "iou_predictions", "low_res_masks"],
            dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    write_config(
        repo / name, name, 0,
        [
            ("image_embeddings", [1, EMBED_DIM, 64, 64], ""),
            ("point_coords", [1, -1, 2], ""),
            ("point_labels", [1, -1], ""),
            ("mask_input", [1, 1, LOW_RES, LOW_RES], ""),
            ("has_mask_input", [1], ""),
            ("orig_im_size", [2], ""),
        ],
        [("masks", [1, 4, -1, -1], ""), ("iou_predictions", [1, 4], ""), ("low_res_masks", [1, 4, LOW_RES, LOW_RES], "")],
    )
    return path


def export_encoder(sam: nn.Module, repo: Path, name: str = "sam_encoder", version: int = 1) -> Path:
    """Export ``sam.image_encoder`` to the ``sam_encoder`` contract: the resized uint8 image in,
    normalisation and zero-padding to 1024 x 1024 in the graph (``training.export.encoder_in_graph``)."""
    path = repo / name / str(version) / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Encoder(sam.image_encoder).eval(),
            (torch.zeros(1, 3, IMG_SIZE, IMG_SIZE),),
            str(path),
            input_names=["image"],
            output_names=["image_embeddings"],
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    rewrite_onnx(path, encoder_in_graph)
    write_encoder_config(repo / name, name)
    return path


def export_checkpoint(model_type: str, checkpoint: Path, repo: Path, encoder: bool = True) -> None:
    """Build SAM ``model_type`` (vit_h, vit_l, vit_b; vit_t = MobileSAM) from ``checkpoint`` and export it."""
    package = "mobile_sam" if model_type == "vit_t" else "segment_anything"
    sa = import_segment_anything(package)
    if model_type not in sa.sam_model_registry:
        raise ValueError(f"unknown SAM model type {model_type!r}; known: {sorted(sa.sam_model_registry)}")
    sam = sa.sam_model_registry[model_type](checkpoint=str(checkpoint)).eval()
    export_decoder(sam, repo, package)
    if encoder:
        export_encoder(sam, repo)
