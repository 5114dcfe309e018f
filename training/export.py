"""Export trained networks to a Triton-layout model repository (ONNX + config.pbtxt + labels.txt).

Every export is checked by loading it with the service's own model-repository loader.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from service.models.imageops import IMAGENET_MEAN, IMAGENET_STD
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
) -> None:
    """Write a Triton config.pbtxt (dims exclude the batch dimension when max_batch_size > 0);
    tensors are TYPE_FP32 unless ``dtypes`` names another type for them.

    One instance on a GPU (``KIND_GPU``): the repository is for GPU Triton deployments; this
    service's own ONNX Runtime backend reads the same file and ignores instance groups.
    """
    text = f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {max_batch_size}\n'
    text += _tensor_block("input", inputs, dtypes or {}) + _tensor_block("output", outputs, dtypes or {})
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


DEEPLAB_DTYPES = {"image": "TYPE_UINT8", "labels": "TYPE_UINT8"}


def serve_in_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """A DeepLab graph of the logits contract (``image`` float32 [N,3,H,W] ImageNet-normalised ->
    ``logits`` [N,C+1,H,W]) wrapped with the per-pixel work the service would otherwise do:

    ``image`` uint8 [N,H,W,3] RGB, the decoded pixels as they are -> cast, NHWC -> NCHW,
    (x - mean) / std -> the network -> ``logits`` (kept), ``labels`` uint8 [N,H,W] (ArgMax, the
    first class on ties, as ``np.argmax``) and ``confidence`` float32 [N,H,W] (the softmax
    probability of that class: 1 / sum(exp(logits - max))). The service asks for ``labels`` and
    ``confidence`` only, so on a GPU the logits of every class never leave the device. Works on
    any export of the logits contract (``upgrade-deeplab`` uses it on older repositories).
    """
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    if [i.name for i in g.input] != ["image"] or [o.name for o in g.output] != ["logits"]:
        raise ValueError(f"not a DeepLab of the logits contract: inputs {[i.name for i in g.input]}, outputs {[o.name for o in g.output]}")
    if g.input[0].type.tensor_type.elem_type != TensorProto.FLOAT:
        raise ValueError("its image input is not float32 (already served in graph?)")
    net_in, net_out = "image_normalised", "logits"
    for node in g.node:
        node.input[:] = [net_in if n == "image" else n for n in node.input]
    del g.input[:]
    g.input.append(helper.make_tensor_value_info("image", TensorProto.UINT8, ["n", "h", "w", 3]))
    g.initializer.extend([
        numpy_helper.from_array(IMAGENET_MEAN.reshape(1, 3, 1, 1).astype(np.float32), "pixel_mean"),
        numpy_helper.from_array(IMAGENET_STD.reshape(1, 3, 1, 1).astype(np.float32), "pixel_std"),
        numpy_helper.from_array(np.array([1], np.int64), "class_axis"),
    ])
    pre = [
        helper.make_node("Cast", ["image"], ["image_float"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["image_float"], ["image_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Sub", ["image_nchw", "pixel_mean"], ["image_centred"]),
        helper.make_node("Div", ["image_centred", "pixel_std"], [net_in]),
    ]
    post = [
        helper.make_node("ArgMax", [net_out], ["labels_int64"], axis=1, keepdims=0, select_last_index=0),
        helper.make_node("Cast", ["labels_int64"], ["labels"], to=TensorProto.UINT8),
        helper.make_node("ReduceMax", [net_out], ["logits_max"], axes=[1], keepdims=1),
        helper.make_node("Sub", [net_out, "logits_max"], ["logits_shifted"]),
        helper.make_node("Exp", ["logits_shifted"], ["logits_exp"]),
        helper.make_node("ReduceSum", ["logits_exp", "class_axis"], ["exp_sum"], keepdims=0),
        helper.make_node("Reciprocal", ["exp_sum"], ["confidence"]),
    ]
    nodes = pre + list(g.node) + post
    del g.node[:]
    g.node.extend(nodes)
    g.output.extend([
        helper.make_tensor_value_info("labels", TensorProto.UINT8, ["n", "h", "w"]),
        helper.make_tensor_value_info("confidence", TensorProto.FLOAT, ["n", "h", "w"]),
    ])
    onnx.checker.check_model(model)
    return model


def write_deeplab_config(model_dir: Path, name: str, classes: Sequence[str]) -> None:
    write_config(
        model_dir, name, 8,
        [("image", [-1, -1, 3], "")],
        [("logits", [len(classes) + 1, -1, -1], 'label_filename: "labels.txt"'), ("labels", [-1, -1], ""), ("confidence", [-1, -1], "")],
        batching=True,
        dtypes=DEEPLAB_DTYPES,
    )


def export_deeplab(net: DeepLab, classes: Sequence[str], repo: Path, name: str = "deeplab", version: int = 1) -> None:
    """``image`` uint8 [N,H,W,3] -> ``logits`` [N,C+1,H,W] (background at 0), ``labels`` uint8 [N,H,W],
    ``confidence`` [N,H,W] (``serve_in_graph``)."""
    model_dir = repo / name
    path = model_dir / str(version) / "model.onnx"
    dyn = {"image": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n", 2: "h", 3: "w"}}
    _export(net, (torch.zeros(1, 3, 128, 128),), path, ["image"], ["logits"], dyn)
    onnx.save(serve_in_graph(onnx.load(str(path))), str(path))
    (model_dir / "labels.txt").write_text("\n".join(classes) + "\n")
    write_deeplab_config(model_dir, name, classes)


def upgrade_deeplab(repo: Path, name: str = "deeplab") -> list[str]:
    """Rewrite every version of ``repo/name`` that has the logits contract into the in-graph one
    (``serve_in_graph``; the network's numbers unchanged) and its config.pbtxt; returns the versions
    rewritten. Each model file is replaced atomically, but the config is shared by the versions:
    run it on a copy of a repository a server is watching, then swap the folder.

    Raises:
        ValueError: the model is not a DeepLab of either contract.
    """
    from service.runtime.model_repo import versions_on_disk

    model_dir = repo / name
    labels = model_dir / "labels.txt"
    if not labels.is_file():
        raise ValueError(f"{model_dir} has no labels.txt: not a DeepLab model folder")
    classes = [c for c in labels.read_text().splitlines() if c.strip()]
    done = []
    for version in versions_on_disk(model_dir):
        path = model_dir / str(version) / "model.onnx"
        model = onnx.load(str(path))
        if model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8:
            continue
        tmp = path.with_name(".model.onnx.tmp")
        onnx.save(serve_in_graph(model), str(tmp))
        tmp.replace(path)
        done.append(str(version))
    write_deeplab_config(model_dir, name, classes)
    check_repo(repo, [name])
    return done


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
