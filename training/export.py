"""Export trained networks to a Triton-layout model repository (ONNX + config.pbtxt + labels.txt).

Every export is checked by loading it with the service's own model-repository loader.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from training.nets import (
    EMBED_DIM,
    LOW_RES,
    NUM_MASKS,
    SAM_IMG_SIZE,
    CamNet,
    DeepLab,
    PromptDecoderNet,
    PromptEncoderBody,
    PromptEncoderNet,
)

log = logging.getLogger("training")
OPSET = 17


def _tensor_block(kind: str, entries: Sequence[tuple[str, Sequence[int], str]]) -> str:
    lines = []
    for name, dims, extra in entries:
        body = f'    name: "{name}"\n    data_type: TYPE_FP32\n    dims: [ {", ".join(str(d) for d in dims)} ]'
        if extra:
            body += f"\n    {extra}"
        lines.append("  {\n" + body + "\n  }")
    return f"{kind} [\n" + ",\n".join(lines) + "\n]\n"


def write_config(
    model_dir: Path,
    name: str,
    max_batch_size: int,
    inputs: Sequence[tuple[str, Sequence[int], str]],
    outputs: Sequence[tuple[str, Sequence[int], str]],
    batching: bool = False,
) -> None:
    """Write a Triton config.pbtxt (dims exclude the batch dimension when max_batch_size > 0).

    One instance on a GPU (``KIND_GPU``): the repository is for GPU Triton deployments; this
    service's own ONNX Runtime backend reads the same file and ignores instance groups.
    """
    text = f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {max_batch_size}\n'
    text += _tensor_block("input", inputs) + _tensor_block("output", outputs)
    if batching:
        text += "dynamic_batching {\n  max_queue_delay_microseconds: 2000\n}\n"
    text += "instance_group [\n  {\n    kind: KIND_GPU\n    count: 1\n  }\n]\n"
    (model_dir / "config.pbtxt").write_text(text)


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, input_names: list[str], output_names: list[str], dynamic_axes: dict[str, dict[int, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    log.info("exported %s (%.1f MB)", path, path.stat().st_size / 1e6)


def export_classifier(net: CamNet, classes: Sequence[str], repo: Path, name: str = "cam_classifier", version: int = 1) -> None:
    """``image`` [N,3,H,W] -> ``logits`` [N,C], ``cams`` [N,C,h,w], ``features`` [N,D,h,w]."""
    model_dir = repo / name
    dyn = {"image": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n"}, "cams": {0: "n", 2: "ch", 3: "cw"}, "features": {0: "n", 2: "ch", 3: "cw"}}
    _export(net, (torch.zeros(1, 3, 128, 128),), model_dir / str(version) / "model.onnx", ["image"], ["logits", "cams", "features"], dyn)
    (model_dir / "labels.txt").write_text("\n".join(classes) + "\n")
    c = len(classes)
    d = net.classifier.in_channels
    write_config(
        model_dir, name, 16,
        [("image", [3, -1, -1], "")],
        [("logits", [c], 'label_filename: "labels.txt"'), ("cams", [c, -1, -1], ""), ("features", [d, -1, -1], "")],
        batching=True,
    )


def export_deeplab(net: DeepLab, classes: Sequence[str], repo: Path, name: str = "deeplab", version: int = 1) -> None:
    """``image`` [N,3,H,W] -> ``logits`` [N,C+1,H,W] (background at 0)."""
    model_dir = repo / name
    dyn = {"image": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n", 2: "h", 3: "w"}}
    _export(net, (torch.zeros(1, 3, 128, 128),), model_dir / str(version) / "model.onnx", ["image"], ["logits"], dyn)
    (model_dir / "labels.txt").write_text("\n".join(classes) + "\n")
    write_config(
        model_dir, name, 8,
        [("image", [3, -1, -1], "")],
        [("logits", [len(classes) + 1, -1, -1], 'label_filename: "labels.txt"')],
        batching=True,
    )


def export_sam_encoder(body: PromptEncoderBody, repo: Path, name: str = "sam_encoder", version: int = 1) -> None:
    """``image`` [1,3,1024,1024] -> ``image_embeddings`` [1,256,64,64]."""
    model_dir = repo / name
    _export(PromptEncoderNet(body), (torch.zeros(1, 3, SAM_IMG_SIZE, SAM_IMG_SIZE),), model_dir / str(version) / "model.onnx", ["image"], ["image_embeddings"], {})
    write_config(model_dir, name, 0, [("image", [1, 3, SAM_IMG_SIZE, SAM_IMG_SIZE], "")], [("image_embeddings", [1, EMBED_DIM, 64, 64], "")])


def export_sam_decoder(dec: PromptDecoderNet, repo: Path, name: str = "sam_decoder", version: int = 1) -> None:
    """The official segment-anything ONNX decoder contract, 4 masks, dynamic prompt-batch and point axes."""
    model_dir = repo / name
    args = (
        torch.randn(1, EMBED_DIM, 64, 64),
        torch.randint(0, SAM_IMG_SIZE, (1, 3, 2), dtype=torch.float32),
        torch.tensor([[1.0, 0.0, -1.0]]),
        torch.zeros(1, 1, LOW_RES, LOW_RES),
        torch.zeros(1),
        torch.tensor([256.0, 256.0]),
    )
    inputs = ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"]
    dyn = {
        "point_coords": {0: "b", 1: "num_points"},
        "point_labels": {0: "b", 1: "num_points"},
        "mask_input": {0: "b"},
        "masks": {0: "b", 2: "h", 3: "w"},
        "iou_predictions": {0: "b"},
        "low_res_masks": {0: "b"},
    }
    _export(dec, args, model_dir / str(version) / "model.onnx", inputs, ["masks", "iou_predictions", "low_res_masks"], dyn)
    write_config(
        model_dir, name, 0,
        [
            ("image_embeddings", [1, EMBED_DIM, 64, 64], ""),
            ("point_coords", [-1, -1, 2], ""),
            ("point_labels", [-1, -1], ""),
            ("mask_input", [-1, 1, LOW_RES, LOW_RES], ""),
            ("has_mask_input", [1], ""),
            ("orig_im_size", [2], ""),
        ],
        [("masks", [-1, NUM_MASKS, -1, -1], ""), ("iou_predictions", [-1, NUM_MASKS], ""), ("low_res_masks", [-1, NUM_MASKS, LOW_RES, LOW_RES], "")],
    )


def check_repo(repo: Path, names: Sequence[str]) -> None:
    """Load the named models with the service's loader (validates ONNX against config.pbtxt)."""
    from service.runtime import ModelRepository
    from service.runtime.onnxruntime_backend import OnnxRuntimeBackend

    OnnxRuntimeBackend(ModelRepository(repo), "CPUExecutionProvider").load(list(names))
    log.info("model repository %s: %s load and validate", repo, ", ".join(names))
