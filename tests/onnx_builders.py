"""Small ONNX models built with onnx.helper, for contract and validation tests (no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DISC_RADIUS = 64.0  # in the 1024 frame


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name + "_v"))


def official_decoder(path: Path, num_masks: int, batch_axis: bool = False) -> None:
    """A decoder with exactly the segment-anything ONNX contract (``SamOnnxModel`` names and shapes).

    ``low_res_masks`` holds +10 inside a disc of ``DISC_RADIUS`` (1024-frame pixels) around each
    prompt set's first point and down to -10 outside; mask k's disc is k+1 times wider in x. ``masks`` is
    ``low_res_masks`` resized straight to ``orig_im_size``, ignoring the padding: the aspect-ratio
    bug of the PyPI segment-anything export, which the service must not depend on.
    """
    b = "B" if batch_axis else 1
    inputs = [
        helper.make_tensor_value_info("image_embeddings", TensorProto.FLOAT, [1, 256, 64, 64]),
        helper.make_tensor_value_info("point_coords", TensorProto.FLOAT, [b, "N", 2]),
        helper.make_tensor_value_info("point_labels", TensorProto.FLOAT, [b, "N"]),
        helper.make_tensor_value_info("mask_input", TensorProto.FLOAT, [b, 1, 256, 256]),
        helper.make_tensor_value_info("has_mask_input", TensorProto.FLOAT, [1]),
        helper.make_tensor_value_info("orig_im_size", TensorProto.FLOAT, [2]),
    ]
    outputs = [
        helper.make_tensor_value_info("masks", TensorProto.FLOAT, [b, num_masks, "H", "W"]),
        helper.make_tensor_value_info("iou_predictions", TensorProto.FLOAT, [b, num_masks]),
        helper.make_tensor_value_info("low_res_masks", TensorProto.FLOAT, [b, num_masks, 256, 256]),
    ]
    centres = (np.arange(256, dtype=np.float32) + 0.5) * 4.0
    nodes = [
        _const("gx", centres.reshape(1, 1, 1, 256)),
        _const("gy", centres.reshape(1, 1, 256, 1)),
        _const("s0", np.array([0, 0, 0], np.int64)),
        _const("e0", np.array([2**62, 1, 1], np.int64)),
        _const("s1", np.array([0, 0, 1], np.int64)),
        _const("e1", np.array([2**62, 1, 2], np.int64)),
        _const("shape4", np.array([-1, 1, 1, 1], np.int64)),
        helper.make_node("Slice", ["point_coords", "s0", "e0"], ["px3"]),
        helper.make_node("Slice", ["point_coords", "s1", "e1"], ["py3"]),
        helper.make_node("Reshape", ["px3", "shape4"], ["px"]),
        helper.make_node("Reshape", ["py3", "shape4"], ["py"]),
        helper.make_node("Sub", ["gx", "px"], ["dx"]),
        helper.make_node("Sub", ["gy", "py"], ["dy"]),
        helper.make_node("Mul", ["dy", "dy"], ["dy2"]),
        _const("r2", np.array(DISC_RADIUS**2, np.float32)),
        _const("ten", np.array(10.0, np.float32)),
        _const("lo", np.array(-10.0, np.float32)),
        _const("hi", np.array(10.0, np.float32)),
    ]
    masks = []
    for k in range(num_masks):
        sx = np.array(1.0 / (k + 1) ** 2, np.float32)
        nodes += [
            _const(f"sx{k}", sx),
            helper.make_node("Mul", ["dx", "dx"], [f"dx2_{k}"]),
            helper.make_node("Mul", [f"dx2_{k}", f"sx{k}"], [f"dxs{k}"]),
            helper.make_node("Add", [f"dxs{k}", "dy2"], [f"d2_{k}"]),
            helper.make_node("Div", [f"d2_{k}", "r2"], [f"q{k}"]),
            helper.make_node("Sub", ["ten", f"q{k}"], [f"u{k}"]),
            helper.make_node("Sub", [f"u{k}", "ten"], [f"v{k}"]),
            helper.make_node("Mul", [f"v{k}", "ten"], [f"w{k}"]),
            helper.make_node("Add", [f"w{k}", "ten"], [f"z{k}"]),
            helper.make_node("Clip", [f"z{k}", "lo", "hi"], [f"m{k}"]),
        ]
        masks.append(f"m{k}")
    nodes.append(helper.make_node("Concat", masks, ["low_res_masks"], axis=1) if num_masks > 1 else helper.make_node("Identity", masks, ["low_res_masks"]))
    iou = np.linspace(0.9, 0.6, num_masks, dtype=np.float32).reshape(1, num_masks)
    nodes += [
        _const("iou", iou),
        helper.make_node("Shape", ["point_coords"], ["pc_shape"]),
        _const("zero", np.array([0], np.int64)),
        _const("one", np.array([1], np.int64)),
        helper.make_node("Slice", ["pc_shape", "zero", "one"], ["bdim"]),
        _const("mdim", np.array([num_masks], np.int64)),
        helper.make_node("Concat", ["bdim", "mdim"], ["iou_shape"], axis=0),
        helper.make_node("Expand", ["iou", "iou_shape"], ["iou_predictions"]),
        helper.make_node("Cast", ["orig_im_size"], ["hw"], to=TensorProto.INT64),
        helper.make_node("Shape", ["low_res_masks"], ["lr_shape"]),
        _const("two", np.array([2], np.int64)),
        helper.make_node("Slice", ["lr_shape", "zero", "two"], ["bm"]),
        helper.make_node("Concat", ["bm", "hw"], ["out_size"], axis=0),
        helper.make_node("Resize", ["low_res_masks", "", "", "out_size"], ["masks"], mode="linear"),
    ]
    graph = helper.make_graph(nodes, "official_decoder", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def identity_model(path: Path, input_name: str = "image", output_name: str = "logits", dtype: int = TensorProto.FLOAT, rank: int = 4) -> None:
    """``output = input`` with a dynamic shape of ``rank``; for model-repository validation tests."""
    shape = [f"d{i}" for i in range(rank)]
    graph = helper.make_graph(
        [helper.make_node("Identity", [input_name], [output_name])],
        "identity",
        [helper.make_tensor_value_info(input_name, dtype, shape)],
        [helper.make_tensor_value_info(output_name, dtype, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


DECODER_CONFIG = """name: "sam_decoder"
platform: "onnxruntime_onnx"
max_batch_size: 0
input [
  { name: "image_embeddings" data_type: TYPE_FP32 dims: [ 1, 256, 64, 64 ] },
  { name: "point_coords" data_type: TYPE_FP32 dims: [ BATCH, -1, 2 ] },
  { name: "point_labels" data_type: TYPE_FP32 dims: [ BATCH, -1 ] },
  { name: "mask_input" data_type: TYPE_FP32 dims: [ BATCH, 1, 256, 256 ] },
  { name: "has_mask_input" data_type: TYPE_FP32 dims: [ 1 ] },
  { name: "orig_im_size" data_type: TYPE_FP32 dims: [ 2 ] }
]
output [
  { name: "masks" data_type: TYPE_FP32 dims: [ BATCH, M, -1, -1 ] },
  { name: "iou_predictions" data_type: TYPE_FP32 dims: [ BATCH, M ] },
  { name: "low_res_masks" data_type: TYPE_FP32 dims: [ BATCH, M, 256, 256 ] }
]
"""


def decoder_repo(root: Path, num_masks: int, batch_axis: bool = False) -> Path:
    """A model repository holding only the official-contract test decoder as ``sam_decoder``."""
    official_decoder(root / "sam_decoder" / "1" / "model.onnx", num_masks, batch_axis)
    batch = "-1" if batch_axis else "1"
    (root / "sam_decoder" / "config.pbtxt").write_text(DECODER_CONFIG.replace("BATCH", batch).replace("M", str(num_masks)))
    return root
