"""Regenerate the committed Python code for the wire contract.

Run ``python -m protos.generate`` from the repository root after editing a .proto
file; ``tests/protos/test_generated.py`` fails when the committed code differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ("protos/diag/v1/agent.proto",)


def generate(out_dir: Path) -> None:
    """Generate ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` under ``out_dir``."""
    from grpc_tools import protoc  # dev-only dependency: imported on demand

    for proto in PROTOS:
        args = [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(ROOT / proto),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed for {proto}")


def main() -> int:
    generate(ROOT)
    print("regenerated:", ", ".join(PROTOS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
