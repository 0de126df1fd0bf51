"""Regenerate the Python beside every .proto under protos/ (the one command; CI checks drift).

    python scripts/gen_protos.py            # rewrite the checked-in code
    python scripts/gen_protos.py --out DIR  # write elsewhere (the drift test compares)
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[1] / "protos"
PACKAGE_DIRS = ("privet",)


def proto_files() -> list[pathlib.Path]:
    return sorted(p for d in PACKAGE_DIRS for p in (ROOT / d).rglob("*.proto"))


def ensure_init_files(out: pathlib.Path) -> None:
    for proto in proto_files():
        folder = out / proto.parent.relative_to(ROOT)
        while folder != out:
            (folder / "__init__.py").touch()
            folder = folder.parent


def generate(out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    files = [str(p.relative_to(ROOT)) for p in proto_files()]
    args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", *files]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    ensure_init_files(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT)
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
