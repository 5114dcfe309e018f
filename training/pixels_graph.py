"""ONNX graph surgery: the per-pixel work around a network moved into its graph.

- ``uint8_pixels_in``: a float ``image`` input [N,3,H,W] (ImageNet-normalised) becomes ``image``
  uint8 [N,H,W,3], the decoded RGB pixels as they are; cast, NHWC -> NCHW and (x - mean) / std run
  in the graph, and with ``pad_to`` the normalised image is zero-padded bottom/right to a square
  (SAM's frame: padding after normalisation, as segment-anything pads).
- ``deeplab_outputs``: beside ``logits`` [N,C+1,H,W], ``labels`` uint8 [N,H,W] (ArgMax, the first
  class on ties, as ``np.argmax``) and ``confidence`` [N,H,W] (the softmax probability of that
  class: 1 / sum(exp(logits - max))).

The network's own nodes are untouched, so its numbers are the same (tests/models/test_deeplab_contracts.py,
tests/models/test_sam_contract.py). Used by the exports and by ``upgrade-models`` on older repositories.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from service.models.imageops import IMAGENET_MEAN, IMAGENET_STD

NORMALISED = "image_normalised"


def _image_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    inputs = list(model.graph.input)
    if [i.name for i in inputs] != ["image"]:
        raise ValueError(f"expected one input named 'image', the graph has {[i.name for i in inputs]}")
    if inputs[0].type.tensor_type.elem_type != TensorProto.FLOAT:
        raise ValueError("its image input is not float32 (already taking uint8 pixels?)")
    return inputs[0]


def uint8_pixels_in(model: onnx.ModelProto, pad_to: int | None = None) -> onnx.ModelProto:
    """``model`` with its float ``image`` input replaced by uint8 pixels (module docstring)."""
    g = model.graph
    _image_input(model)
    for node in g.node:
        node.input[:] = [NORMALISED if n == "image" else n for n in node.input]
    del g.input[:]
    g.input.append(helper.make_tensor_value_info("image", TensorProto.UINT8, ["n", "h", "w", 3]))
    g.initializer.extend([
        numpy_helper.from_array(IMAGENET_MEAN.reshape(1, 3, 1, 1).astype(np.float32), "pixel_mean"),
        numpy_helper.from_array(IMAGENET_STD.reshape(1, 3, 1, 1).astype(np.float32), "pixel_std"),
    ])
    last = NORMALISED if pad_to is None else "image_unpadded"
    nodes = [
        helper.make_node("Cast", ["image"], ["image_float"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["image_float"], ["image_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Sub", ["image_nchw", "pixel_mean"], ["image_centred"]),
        helper.make_node("Div", ["image_centred", "pixel_std"], [last]),
    ]
    if pad_to is not None:
        g.initializer.extend([
            numpy_helper.from_array(np.array([1], np.int64), "hw_start"),
            numpy_helper.from_array(np.array([3], np.int64), "hw_end"),
            numpy_helper.from_array(np.array([pad_to, pad_to], np.int64), "pad_frame"),
            numpy_helper.from_array(np.zeros(6, np.int64), "pad_begin"),
        ])
        nodes += [
            helper.make_node("Shape", ["image"], ["image_shape"]),
            helper.make_node("Slice", ["image_shape", "hw_start", "hw_end"], ["image_hw"]),
            helper.make_node("Sub", ["pad_frame", "image_hw"], ["pad_hw"]),
            helper.make_node("Concat", ["pad_begin", "pad_hw"], ["pads"], axis=0),  # N, C, H, W begins; N, C ends; H, W ends
            helper.make_node("Pad", ["image_unpadded", "pads"], [NORMALISED], mode="constant"),
        ]
    network = list(g.node)
    del g.node[:]
    g.node.extend(nodes + network)
    onnx.checker.check_model(model)
    return model


def deeplab_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """``labels`` and ``confidence`` computed from ``logits`` in the graph (module docstring)."""
    g = model.graph
    if [o.name for o in g.output] != ["logits"]:
        raise ValueError(f"not a DeepLab of the logits contract: outputs {[o.name for o in g.output]}")
    g.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "class_axis"))
    g.node.extend([
        helper.make_node("ArgMax", ["logits"], ["labels_int64"], axis=1, keepdims=0, select_last_index=0),
        helper.make_node("Cast", ["labels_int64"], ["labels"], to=TensorProto.UINT8),
        helper.make_node("ReduceMax", ["logits"], ["logits_max"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["logits", "logits_max"], ["logits_shifted"]),
        helper.make_node("Exp", ["logits_shifted"], ["logits_exp"]),
        helper.make_node("ReduceSum", ["logits_exp", "class_axis"], ["exp_sum"], keepdims=0),
        helper.make_node("Reciprocal", ["exp_sum"], ["confidence"]),
    ])
    g.output.extend([
        helper.make_tensor_value_info("labels", TensorProto.UINT8, ["n", "h", "w"]),
        helper.make_tensor_value_info("confidence", TensorProto.FLOAT, ["n", "h", "w"]),
    ])
    onnx.checker.check_model(model)
    return model
