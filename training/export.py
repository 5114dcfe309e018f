"""Export trained networks to a Triton-layout model repository (ONNX + config.pbtxt + labels.txt).

Every export is checked by loading it with the service's own model-repository loader.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import onnx
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
from training.pixels_graph import deeplab_outputs, uint8_pixels_in

log = logging.getLogger("training")
OPSET = 17


def _tensor_block(kind: str, entries: Sequence[tuple[str, Sequence[int], str]], dtypes: Mapping[str, str]) -> str:
    lines = []
    for name, dims, extra in entries:
        body = f'    name: "{name}"\n    data_type: {dtypes.get(name, "TYPE_FP32")}\n    dims: [ {", ".join(str(d) for d in dims)} ]'
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
    dtypes: Mapping[str, str] | None = None,
    parameters: Mapping[str, str] | None = None,
) -> None:
    """Write a Triton config.pbtxt (dims exclude the batch dimension when max_batch_size > 0);
    tensors are TYPE_FP32 unless ``dtypes`` names another type for them; ``parameters`` become
    Triton's model ``parameters`` (string values, e.g. ``input_side``).

    One instance on a GPU (``KIND_GPU``): the repository is for GPU Triton deployments; this
    service's own ONNX Runtime backend reads the same file and ignores instance groups.
    """
    text = f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {max_batch_size}\n'
    text += _tensor_block("input", inputs, dtypes or {}) + _tensor_block("output", outputs, dtypes or {})
    if batching:
        text += "dynamic_batching {\n  max_queue_delay_microseconds: 2000\n}\n"
    for key, value in (parameters or {}).items():
        text += f'parameters {{\n  key: "{key}"\n  value {{\n    string_value: "{value}"\n  }}\n}}\n'
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


DEEPLAB_DTYPES = {"image": "TYPE_UINT8", "labels": "TYPE_UINT8"}


def deeplab_in_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """A DeepLab of the logits contract (``image`` float32 [N,3,H,W] ImageNet-normalised -> ``logits``)
    as the service runs it: uint8 pixels in, ``labels`` + ``confidence`` (and ``logits``) out
    (``training.pixels_graph``). The service asks for ``labels`` and ``confidence`` only, so on a
    GPU the logits of every class never leave the device."""
    return deeplab_outputs(uint8_pixels_in(model))


def encoder_in_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """A ``sam_encoder`` of the float contract ([1,3,1024,1024], normalised, zero-padded) taking
    the resized uint8 image [1,h,w,3] instead (longest side 1024): normalisation and padding run
    in the graph (``training.pixels_graph``)."""
    return uint8_pixels_in(model, pad_to=SAM_IMG_SIZE)


def rewrite_onnx(path: Path, rewrite: Callable[[onnx.ModelProto], onnx.ModelProto]) -> None:
    """Replace the ONNX file at ``path`` by ``rewrite`` of it, atomically (a hidden file renamed
    into place); weights kept in an external data file stay in one (SAM ViT-H is over protobuf's
    2 GB)."""
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in onnx.load(str(path), load_external_data=False).graph.initializer)
    model = rewrite(onnx.load(str(path)))
    tmp = path.with_name(".model.onnx.tmp")
    if external:
        onnx.save(model, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True, location="model.onnx.data")
    else:
        onnx.save(model, str(tmp))
    tmp.replace(path)


def write_encoder_config(model_dir: Path, name: str) -> None:
    write_config(model_dir, name, 0, [("image", [1, -1, -1, 3], "")], [("image_embeddings", [1, EMBED_DIM, 64, 64], "")],
                 dtypes={"image": "TYPE_UINT8"})


def write_deeplab_config(
    model_dir: Path, name: str, classes: Sequence[str], input_side: int | None = None,
    predict_scales: Sequence[float] | None = None, predict_flip: bool | None = None,
) -> None:
    """The DeepLab's config; ``input_side``: the longest image side it was trained at (the
    service resizes each image to it before the model runs; README, model repository);
    ``predict_scales`` / ``predict_flip``: its test-time augmentation (each written when given)."""
    parameters = {"input_side": str(input_side)} if input_side else {}
    if predict_scales is not None:
        parameters["predict_scales"] = ",".join(f"{s:g}" for s in predict_scales)
    if predict_flip is not None:
        parameters["predict_flip"] = "true" if predict_flip else "false"
    write_config(
        model_dir, name, 8,
        [("image", [-1, -1, 3], "")],
        [("logits", [len(classes) + 1, -1, -1], 'label_filename: "labels.txt"'), ("labels", [-1, -1], ""), ("confidence", [-1, -1], "")],
        batching=True,
        dtypes=DEEPLAB_DTYPES,
        parameters=parameters,
    )


def export_deeplab(
    net: DeepLab, classes: Sequence[str], repo: Path, name: str = "deeplab", version: int = 1, input_side: int | None = None,
    predict_scales: Sequence[float] | None = None, predict_flip: bool | None = None,
) -> None:
    """``image`` uint8 [N,H,W,3] -> ``logits`` [N,C+1,H,W] (background at 0), ``labels`` uint8 [N,H,W],
    ``confidence`` [N,H,W] (``deeplab_in_graph``); ``input_side``: the longest side of its training
    images; ``predict_scales`` / ``predict_flip``: its test-time augmentation (``write_deeplab_config``)."""
    model_dir = repo / name
    path = model_dir / str(version) / "model.onnx"
    dyn = {"image": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n", 2: "h", 3: "w"}}
    _export(net, (torch.zeros(1, 3, 128, 128),), path, ["image"], ["logits"], dyn)
    rewrite_onnx(path, deeplab_in_graph)
    (model_dir / "labels.txt").write_text("\n".join(classes) + "\n")
    write_deeplab_config(model_dir, name, classes, input_side, predict_scales, predict_flip)


PIXEL_MODELS = ("deeplab", "sam_encoder")
"""The models with a uint8-pixel contract (their folder names, after any ``<set>.`` prefix)."""


def _rewrite_for(path: Path) -> Callable[[onnx.ModelProto], onnx.ModelProto] | None:
    """How to bring the model file at ``path`` to the uint8 contract; None when it is there already.

    Raises:
        ValueError: neither a DeepLab (``image`` -> ``logits``) nor a SAM encoder (``image`` -> ``image_embeddings``).
    """
    graph = onnx.load(str(path), load_external_data=False).graph
    outputs = [o.name for o in graph.output]
    if [i.name for i in graph.input] == ["image"] and graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8:
        return None
    if outputs == ["logits"]:
        return deeplab_in_graph
    if outputs == ["image_embeddings"]:
        return encoder_in_graph
    raise ValueError(f"{path}: outputs {outputs} are neither a DeepLab's (logits) nor a SAM encoder's (image_embeddings)")


def upgrade_versions(model_dir: Path) -> list[str]:
    """Rewrite every version in ``model_dir`` that takes float images into the uint8 contract
    (``deeplab_in_graph`` / ``encoder_in_graph``, the network's numbers unchanged), each file
    atomically; returns the versions rewritten. The caller writes the config."""
    from service.runtime.model_repo import versions_on_disk

    done = []
    for version in versions_on_disk(model_dir):
        path = model_dir / version / "model.onnx"
        rewrite = _rewrite_for(path)
        if rewrite is not None:
            rewrite_onnx(path, rewrite)
            done.append(version)
    return done


def upgrade_models(repo: Path, name: str) -> list[str]:
    """``upgrade_versions`` of ``repo/name``, then its config.pbtxt for the uint8 contract; returns
    the versions rewritten. The config is shared by the versions: run it on a copy of a repository
    a server is watching, then swap the folder.

    Raises:
        ValueError: no version there, or the model is neither kind.
    """
    from service.runtime.model_repo import input_side_of, parse_pbtxt, predict_flip_of, predict_scales_of, versions_on_disk

    model_dir = repo / name
    versions = versions_on_disk(model_dir) if model_dir.is_dir() else []
    if not versions:
        raise ValueError(f"{model_dir} holds no version with a model.onnx")
    labels = model_dir / "labels.txt"
    if _rewrite_for(model_dir / versions[0] / "model.onnx") is deeplab_in_graph and not labels.is_file():
        raise ValueError(f"{model_dir} has logits but no labels.txt: not a DeepLab model folder")
    config = model_dir / "config.pbtxt"
    raw = parse_pbtxt(config.read_text()) if config.is_file() else {}
    input_side, scales, flip = input_side_of(name, raw), predict_scales_of(name, raw), predict_flip_of(name, raw)
    done = upgrade_versions(model_dir)
    if done:
        outputs = [o.name for o in onnx.load(str(model_dir / versions[0] / "model.onnx"), load_external_data=False).graph.output]
        if outputs == ["image_embeddings"]:
            write_encoder_config(model_dir, name)
        else:
            write_deeplab_config(model_dir, name, [c for c in labels.read_text().splitlines() if c.strip()], input_side, scales, flip)
    check_repo(repo, [name])
    return done


def export_sam_encoder(body: PromptEncoderBody, repo: Path, name: str = "sam_encoder", version: int = 1) -> None:
    """``image`` uint8 [1,h,w,3] (resized, longest side 1024) -> ``image_embeddings`` [1,256,64,64] (``encoder_in_graph``)."""
    model_dir = repo / name
    path = model_dir / str(version) / "model.onnx"
    _export(PromptEncoderNet(body), (torch.zeros(1, 3, SAM_IMG_SIZE, SAM_IMG_SIZE),), path, ["image"], ["image_embeddings"], {})
    rewrite_onnx(path, encoder_in_graph)
    write_encoder_config(model_dir, name)


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
