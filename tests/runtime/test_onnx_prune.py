"""A call that fetches some of a model's outputs runs only the nodes they need (ONNX Runtime alone
runs every node whatever a call fetches)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from service.runtime import ModelRepository
from service.runtime.onnx_prune import prune_to_outputs
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend
from tests.conftest import DEFAULT_REPO
from tests.onnx_builders import decoder_repo

SERVED = ("low_res_masks", "iou_predictions")


def _feeds(size: tuple[float, float], batch: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "image_embeddings": rng.standard_normal((1, 256, 64, 64)).astype(np.float32),
        "point_coords": rng.uniform(0, 1024, (batch, 2, 2)).astype(np.float32),
        "point_labels": np.tile(np.array([1.0, -1.0], np.float32), (batch, 1)),
        "mask_input": np.zeros((batch, 1, 256, 256), np.float32),
        "has_mask_input": np.zeros(1, np.float32),
        "orig_im_size": np.array(size, np.float32),
    }


def _backend(tmp_path: Path) -> OnnxRuntimeBackend:
    backend = OnnxRuntimeBackend(ModelRepository(decoder_repo(tmp_path, 4, batch_axis=True)), "CPUExecutionProvider")
    backend.load(["sam_decoder"])
    return backend


def test_the_cut_decoder_keeps_the_served_outputs_and_drops_the_full_size_masks(tmp_path: Path) -> None:
    repo = decoder_repo(tmp_path, 4, batch_axis=True)
    full = onnx.load(str(repo / "sam_decoder" / "1" / "model.onnx"))
    cut = prune_to_outputs(full, SERVED)
    onnx.checker.check_model(cut)
    assert [o.name for o in cut.graph.output] == ["iou_predictions", "low_res_masks"]  # the graph's order
    assert [i.name for i in cut.graph.input] == [i.name for i in full.graph.input]  # fed as before
    assert "Resize" not in {n.op_type for n in cut.graph.node} and "Resize" in {n.op_type for n in full.graph.node}
    feeds = _feeds((480, 640))
    want = ort.InferenceSession(full.SerializeToString()).run(list(SERVED), feeds)
    got = ort.InferenceSession(cut.SerializeToString()).run(list(SERVED), feeds)
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)


def test_an_output_the_graph_lacks_is_refused(tmp_path: Path) -> None:
    full = onnx.load(str(decoder_repo(tmp_path, 1) / "sam_decoder" / "1" / "model.onnx"))
    with pytest.raises(ValueError, match="'scores'"):
        prune_to_outputs(full, ["low_res_masks", "scores"])


def test_a_value_only_a_subgraph_reads_is_kept() -> None:
    # "a" is an If whose branches read "r" from the outer scope: "r" is no input of the If node itself
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    branch = helper.make_graph([helper.make_node("Identity", ["r"], ["o"])], "branch", [],
                               [helper.make_tensor_value_info("o", TensorProto.FLOAT, [2])])
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node("Constant", [], ["c"], value=helper.make_tensor("cv", TensorProto.BOOL, [], [True])),
            helper.make_node("If", ["c"], ["a"], then_branch=branch, else_branch=branch),
            helper.make_node("Neg", ["x"], ["b"]),
        ],
        "g", [x], [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2]), helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    cut = prune_to_outputs(model, ["a"])
    assert [n.op_type for n in cut.graph.node] == ["Relu", "Constant", "If"]
    out = ort.InferenceSession(cut.SerializeToString()).run(["a"], {"x": np.array([-1.0, 2.0], np.float32)})
    np.testing.assert_array_equal(out[0], [0.0, 2.0])


def test_the_backend_runs_the_cut_graph_for_the_outputs_a_call_fetches(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    feeds = _feeds((480, 640))
    everything = backend.infer("sam_decoder", feeds)
    served = backend.infer("sam_decoder", feeds, outputs=SERVED)
    assert set(served) == set(SERVED)
    for name in SERVED:
        np.testing.assert_array_equal(served[name], everything[name])
    cut = backend._cut[("sam_decoder", ("iou_predictions", "low_res_masks"))]
    assert [o.name for o in cut.get_outputs()] == ["iou_predictions", "low_res_masks"]
    # the full graph would resize three prompts' four masks to 10^6 x 10^6 pixels (48 TB): the cut
    # graph never computes them
    huge = backend.infer("sam_decoder", _feeds((1e6, 1e6)), outputs=SERVED)
    np.testing.assert_array_equal(huge["low_res_masks"], served["low_res_masks"])


def test_a_reload_drops_the_cut_sessions_of_the_old_model(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    backend.infer("sam_decoder", _feeds((64, 64)), outputs=SERVED)
    assert len(backend._cut) == 1
    backend.load(["sam_decoder"])
    assert backend._cut == {}
    backend.infer("sam_decoder", _feeds((64, 64)), outputs=SERVED)
    assert len(backend._cut) == 1


def test_a_cut_that_drops_nothing_runs_the_models_own_session() -> None:
    # every output of the DeepLab export needs its logits: fetching labels and confidence cuts nothing away
    backend = OnnxRuntimeBackend(ModelRepository(DEFAULT_REPO), "CPUExecutionProvider")
    backend.load(["deeplab"])
    session = backend._sessions["deeplab"]
    names = [o.name for o in session.get_outputs()]
    assert backend._cut_session("deeplab", session, names) is session
    kept = [n for n in names if n != "logits"]
    assert backend._cut_session("deeplab", session, kept) is session
