"""Privet installs one import name, `privet`: every module imports under it, and nothing
Privet runs ever imports a module under the repository's folder names (which would load a
second copy of a module, with its own globals, beside the first)."""

from __future__ import annotations

import subprocess
import sys

import pytest

BARE = ("governance", "services", "inference", "policies")

_IMPORT_EVERYTHING = """
import importlib, pkgutil, sys
failed, seen = [], []
# walk_packages cannot see through the install's folder mapping: walk each mapped root.
roots = [importlib.import_module(n) for n in ("privet", "privet.governance", "privet.services")]
for info in (i for r in roots for i in pkgutil.walk_packages(r.__path__, r.__name__ + ".")):
    seen.append(info.name)
    if ".migrations" in info.name or info.name.endswith(".__main__"):
        continue  # Alembic loads those itself, as scripts; __main__ runs the command line
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        failed.append(f"{info.name}: {exc!r}")
bare = sorted(m for m in sys.modules if m.split(".")[0] in %r)
assert len(seen) > 150, seen
assert not failed, failed
assert not bare, bare
"""


def test_every_module_imports_under_privet_and_nothing_under_a_folder_name() -> None:
    done = subprocess.run([sys.executable, "-c", _IMPORT_EVERYTHING % (BARE,)], capture_output=True, text=True, timeout=240, cwd="/")
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("name", ["governance", "services", "inference"])
def test_the_folder_names_are_not_importable_outside_the_checkout(name: str) -> None:
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({name!r}) is not None)"
    assert subprocess.run([sys.executable, "-c", probe], cwd="/", timeout=60).returncode == 0
