"""Cedar policy files split into single policies, so every error names a file and a line."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

__all__ = ["PolicySource", "split_policies", "read_policy_dir"]


@dataclass(frozen=True)
class PolicySource:
    file: pathlib.Path
    line: int  # 1-based line where the policy starts
    text: str

    @property
    def where(self) -> str:
        return f"{self.file.name}:{self.line}"


def split_policies(text: str, file: pathlib.Path) -> list[PolicySource]:
    """Split Cedar text at top-level ';', skipping string literals and // comments."""
    out: list[PolicySource] = []
    start, line, start_line = 0, 1, None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        elif c == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n":
                    line += 1
                i += 1
        elif c == ";":
            out.append(PolicySource(file, start_line or line, text[start : i + 1]))
            start, start_line = i + 1, None
        elif not c.isspace() and start_line is None:
            start_line = line
        i += 1
    if text[start:].strip() and start_line is not None and any(
        ln.strip() and not ln.strip().startswith("//") for ln in text[start:].splitlines()
    ):
        out.append(PolicySource(file, start_line, text[start:]))  # unterminated: the parser names it
    return out


def read_policy_dir(folder: pathlib.Path) -> list[PolicySource]:
    sources: list[PolicySource] = []
    for path in sorted(folder.glob("*.cedar")):
        sources += split_policies(path.read_text(), path)
    return sources
