"""The layering, read from the source: servicers only translate (no tables, sessions or
storage formats: they get records from governance), and governance never reaches up into
gRPC or a service. ruff enforces the second through banned imports; this checks both from
the import statements themselves, so a weakened lint configuration cannot hide a breach."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
SERVICERS = sorted(ROOT.glob("services/*/servicer.py")) + sorted(ROOT.glob("services/*/*_servicer.py"))
STORAGE = ("privet.governance.store", "sqlalchemy", "sqlmodel")
ABOVE_GOVERNANCE = ("grpc", "grpc_status", "grpc_health", "grpc_reflection", "privet.services", "google.rpc")


def _imports(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _under(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == r or name.startswith(r + ".") for r in roots)


@pytest.mark.parametrize("servicer", SERVICERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_servicer_touches_no_storage(servicer: pathlib.Path) -> None:
    assert not {n for n in _imports(servicer) if _under(n, STORAGE)}


def test_there_are_servicers_to_check() -> None:
    assert len(SERVICERS) >= 5


def test_governance_never_imports_grpc_or_a_service() -> None:
    breaches = {str(p.relative_to(ROOT)): sorted(n for n in _imports(p) if _under(n, ABOVE_GOVERNANCE))
                for p in (ROOT / "governance").rglob("*.py")}
    assert not {k: v for k, v in breaches.items() if v}
