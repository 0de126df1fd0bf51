"""Type-check Privet with mypy under its one import name.

The repository keeps its top-level folders (governance/, services/, ...) and setup.py maps
them under `privet`; mypy cannot follow setuptools' editable-install finder, so this lays the
same mapping out as symbolic links in a temporary folder and checks `privet.governance`
(strict, per pyproject.toml) and `privet.services`. Reported paths are the repository's.

    python scripts/typecheck.py
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAPPED = {"governance": ROOT / "governance", "services": ROOT / "services", "policies": ROOT / "policies"}
PACKAGES = ("privet.governance", "privet.services")


def lay_out(tree: pathlib.Path) -> None:
    package = tree / "privet"
    package.mkdir()
    for entry in (ROOT / "protos" / "privet").iterdir():
        (package / entry.name).symlink_to(entry)
    for name, folder in MAPPED.items():
        (package / name).symlink_to(folder)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="privet-typecheck-") as tmp:
        tree = pathlib.Path(tmp)
        lay_out(tree)
        args = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), *[a for p in PACKAGES for a in ("-p", p)]]
        done = subprocess.run(args, cwd=tree, env={**os.environ, "MYPYPATH": str(tree)}, capture_output=True, text=True)
        sys.stdout.write(done.stdout.replace("privet/governance/", "governance/").replace("privet/services/", "services/"))
        sys.stderr.write(done.stderr)
        return done.returncode


if __name__ == "__main__":
    sys.exit(main())
