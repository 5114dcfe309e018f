"""The committed generated code in wsss/ is what protos/ generates with the pinned grpcio-tools."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from service.settings import REPO_ROOT

GENERATED = ("segmentation_pb2.py", "segmentation_pb2.pyi", "segmentation_pb2_grpc.py")


def test_generated_code_is_current(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", str(REPO_ROOT / "protos"), f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}", str(REPO_ROOT / "protos/wsss/v1/segmentation.proto")],
        check=True,
    )
    for name in GENERATED:
        fresh = (tmp_path / "wsss" / "v1" / name).read_text()
        committed = (REPO_ROOT / "wsss" / "v1" / name).read_text()
        assert fresh == committed, f"wsss/v1/{name} is stale: run `make proto` and commit"
