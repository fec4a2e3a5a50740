"""The committed generated code must be exactly what grpcio-tools makes of the .proto files."""

from __future__ import annotations

from pathlib import Path

from protos.generate import PROTOS, ROOT, generate


def _generated_files(proto: str) -> list[str]:
    stem = proto.removesuffix(".proto")
    return [f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"]


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    generate(tmp_path)
    for proto in PROTOS:
        for rel in _generated_files(proto):
            fresh = (tmp_path / rel).read_bytes()
            committed = (ROOT / rel).read_bytes()
            assert fresh == committed, (
                f"{rel} is stale: run `python -m protos.generate` and commit the result"
            )


def test_generation_writes_every_expected_file(tmp_path: Path) -> None:
    generate(tmp_path)
    produced = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.py*"))
    expected = sorted(rel for proto in PROTOS for rel in _generated_files(proto))
    assert produced == expected
