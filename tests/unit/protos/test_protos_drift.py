"""The checked-in generated code matches the .proto sources, and KServe v2 stays wire-compatible."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_generated_code_matches_sources(tmp_path: pathlib.Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(tmp_path)], check=True)
    # privet/__init__.py is the package's own module (the TLS pin), not generated code.
    own = pathlib.Path("privet/__init__.py")
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.suffix in (".py", ".pyi") and p.relative_to(tmp_path) != own)
    assert generated, "generator wrote nothing"
    drift = [str(rel) for rel in generated if (ROOT / "protos" / rel).read_bytes() != (tmp_path / rel).read_bytes()]
    assert not drift, f"generated code drifted from the .proto sources; run scripts/gen_protos.py: {drift}"
    checked_in = sorted(p.relative_to(ROOT / "protos") for p in (ROOT / "protos").rglob("*_pb2*.py*"))
    assert [str(p) for p in checked_in] == [str(p) for p in generated if "_pb2" in str(p)]


_DUMP = """
import json, sys
mod = __import__(sys.argv[1], fromlist=['DESCRIPTOR'])
out = {}
def walk(d, prefix):
    for f in d.fields:
        out[prefix + d.name + '.' + f.name] = [f.number, f.type, f.label if hasattr(f, 'label') else 0]
    for n in d.nested_types:
        walk(n, prefix + d.name + '.')
for d in mod.DESCRIPTOR.message_types_by_name.values():
    walk(d, '')
svc = mod.DESCRIPTOR.services_by_name['GRPCInferenceService']
out['__methods__'] = {m.name: [m.input_type.full_name, m.output_type.full_name] for m in svc.methods}
print(json.dumps(out))
"""


def _descriptor_fields(module: str) -> dict:
    # Each in its own process: both define package `inference`, which one protobuf pool refuses.
    out = subprocess.run([sys.executable, "-c", _DUMP, module], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_kserve_v2_is_wire_compatible_with_tritonclient() -> None:
    ours = _descriptor_fields("privet.kserve.v2.grpc_predict_v2_pb2")
    triton = _descriptor_fields("tritonclient.grpc.service_pb2")
    for method, types in ours.pop("__methods__").items():
        assert triton["__methods__"][method] == types, method
    triton.pop("__methods__")
    mismatched = {k: (v, triton.get(k)) for k, v in ours.items() if triton.get(k) != v}
    assert not mismatched, mismatched
