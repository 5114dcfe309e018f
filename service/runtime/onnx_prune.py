"""An ONNX graph cut down to the outputs a caller reads.

ONNX Runtime's inference builds run every node of a graph whatever outputs a call fetches
(onnxruntime issues #3128, #16483; Triton's ONNX Runtime backend likewise). The
segment-anything decoder contract has a ``masks`` output that upsamples every mask to 1,024² and
then to the original image (``orig_im_size``); the service reads only ``low_res_masks`` and
``iou_predictions``. Computing ``masks`` anyway was 87 % of a 36-prompt decoder call of the
toolkit's promptable model, and its memory grows with the image's pixels times the prompts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import onnx


def _subgraph_names(node: onnx.NodeProto) -> Iterable[str]:
    """Every value name a node's subgraphs (If / Loop / Scan bodies) read: outer-scope values they
    use are not in the node's inputs. A superset (names the body makes itself too) keeps a little
    more than needed, never less."""
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for graph in graphs:
            for inner in graph.node:
                yield from inner.input
                yield from _subgraph_names(inner)
            yield from (o.name for o in graph.output)


def prune_to_outputs(model: onnx.ModelProto, outputs: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph has only ``outputs`` and the nodes and initializers they need.

    Every graph input stays, used or not, so callers feed the model as before.

    Raises:
        ValueError: an output that is not one of the graph's.
    """
    graph = model.graph
    unknown = set(outputs) - {o.name for o in graph.output}
    if unknown:
        raise ValueError(f"outputs {sorted(unknown)} are not outputs of the graph (has {[o.name for o in graph.output]})")
    needed = set(outputs)
    kept: list[onnx.NodeProto] = []
    for node in reversed(graph.node):  # an ONNX graph's nodes are in topological order
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
            needed.update(_subgraph_names(node))
    pruned = onnx.ModelProto()
    pruned.CopyFrom(model)
    out = pruned.graph
    del out.node[:]
    out.node.extend(reversed(kept))
    del out.output[:]
    out.output.extend(o for o in graph.output if o.name in outputs)
    del out.initializer[:]
    out.initializer.extend(t for t in graph.initializer if t.name in needed)
    del out.value_info[:]
    out.value_info.extend(v for v in graph.value_info if v.name in needed)
    return pruned
