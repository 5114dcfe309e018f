"""A real Open Inference Protocol server for tests: KServe's Python model server serving the
model repository's ONNX files through ONNX Runtime (the protocol Triton speaks; Triton itself
needs Docker, which these machines lack).

    python tests/oip_server.py --repo model_repo --grpc-port 8081 --http-port 8080
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from kserve import Model, ModelServer
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.utils.utils import from_np_dtype

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.runtime.model_repo import ModelRepository  # noqa: E402

DATATYPES = {"TYPE_FP32": "FP32", "TYPE_INT64": "INT64", "TYPE_INT32": "INT32", "TYPE_UINT8": "UINT8"}


class OnnxModel(Model):
    """One model of the repository, run by ONNX Runtime on the CPU."""

    def __init__(self, name: str, path: Path, inputs: list[dict[str, object]], outputs: list[dict[str, object]]) -> None:
        super().__init__(name)
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.inputs, self.outputs = inputs, outputs
        self.ready = True

    def get_input_types(self) -> list[dict[str, object]]:
        return self.inputs

    def get_output_types(self) -> list[dict[str, object]]:
        return self.outputs

    async def predict(self, payload: InferRequest, headers: dict[str, str] | None = None, response_headers: dict[str, str] | None = None) -> InferResponse:  # type: ignore[override]
        feeds = {i.name: i.as_numpy() for i in payload.inputs}
        names = [o.name for o in self.session.get_outputs()]
        if payload.request_outputs:  # only what the client asked for, as Triton does
            names = [o.name for o in payload.request_outputs]
        values = self.session.run(names, feeds)
        outputs = []
        for name, value in zip(names, values):
            value = np.ascontiguousarray(value)
            out = InferOutput(name=name, shape=list(value.shape), datatype=from_np_dtype(value.dtype))
            out.set_data_from_numpy(value, binary_data=True)
            outputs.append(out)
        return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=outputs, use_binary_outputs=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    args, _ = parser.parse_known_args()  # the rest (e.g. --grpc_max_receive_message_length) is KServe's
    repo = ModelRepository(Path(args.repo))
    models = []
    for name, cfg in repo.configs.items():
        spec = lambda ts: [{"name": t.name, "datatype": DATATYPES[t.dtype], "shape": list(t.shape)} for t in ts]  # noqa: E731
        models.append(OnnxModel(name, cfg.model_path, spec(cfg.inputs), spec(cfg.outputs)))
    ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, workers=1, enable_docs_url=False).start(models)


if __name__ == "__main__":
    main()
