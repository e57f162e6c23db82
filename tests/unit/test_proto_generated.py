"""The committed Python classes are what scripts/gen-proto generates from proto/flightsql.proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_current(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "proto"),
         f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", str(ROOT / "proto" / "flightsql.proto")],
        check=True,
    )
    committed = ROOT / "hyprstream" / "flightsql" / "_proto"
    for name in ("flightsql_pb2.py", "flightsql_pb2.pyi"):
        assert (tmp_path / name).read_text() == (committed / name).read_text(), (
            f"{name} is stale: run scripts/gen-proto"
        )
