"""Running a fuzz target: under atheris (coverage-guided, libFuzzer flags) when it is
installed, else a plain loop over seeds and random mutations of them.

A target is a module with `check(data: bytes) -> None`, which returns normally when the
code under test parsed the input or refused it with its documented error, and lets
anything else propagate (that is the crash), and `SEEDS`, a few valid inputs.

    python -m tests.security.fuzz.fuzz_formats -runs=2000 CORPUS_DIR   # libFuzzer flags
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

__all__ = ["Cursor", "KnownGaps", "fuzz_main"]


class Cursor:
    """Takes option bytes off the front of a fuzz input, then hands over the rest. Never
    fails: past the end, every choice is the first one."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def byte(self) -> int:
        if self._at >= len(self._data):
            return 0
        self._at += 1
        return self._data[self._at - 1]

    def pick(self, options: Sequence):
        return options[self.byte() % len(options)]

    def rest(self) -> bytes:
        return self._data[self._at:]

    def value(self, words: Sequence[str], depth: int = 0):
        """A JSON/YAML-shaped value chosen by the input: scalars of every type (edge values
        included), words from the parser's own vocabulary, and nested lists and maps. This
        is what reaches type confusion that byte mutation of a valid file rarely does."""
        kind = self.byte() % (10 if depth < 4 else 7)
        if kind == 0:
            return None
        if kind == 1:
            return bool(self.byte() & 1)
        if kind == 2:
            return self.pick((0, 1, -1, 2, 3, 4, 8, 16, 255, 2**31, 2**63, 2**64 + 1, -(2**63), 10**30))
        if kind == 3:
            return self.pick((0.0, -0.0, 0.5, 1.0, 1e-300, 1e300, float("inf"), float("-inf"), float("nan")))
        if kind in (4, 5):
            return self.pick(words)
        if kind == 6:
            return self.pick(("", " ", "x", "\u00e9", "\x00", "0", "[]", "{}", "-1", "*"))
        size = self.byte() % 4
        if kind in (7, 8):
            return [self.value(words, depth + 1) for _ in range(size)]
        return {self.pick(words): self.value(words, depth + 1) for _ in range(size)}


class KnownGaps:
    """Failures the fuzzers found that the product has not fixed yet, each pinned by a
    strict-xfail regression test in tests/security/test_fuzz.py. A target tolerates them
    only so that the fuzzer keeps looking for new ones; delete an entry when its fix lands
    (its regression test then XPASSes and fails, as a reminder). PRIVET_FUZZ_STRICT=1
    tolerates nothing."""

    def __init__(self, **matchers: Callable[[BaseException], bool]) -> None:
        self.matchers = matchers

    def __contains__(self, exc: BaseException) -> bool:
        import os

        return os.environ.get("PRIVET_FUZZ_STRICT") != "1" and any(match(exc) for match in self.matchers.values())

    @staticmethod
    def raised_in(exc: BaseException, function: str) -> bool:
        import traceback

        return any(frame.name == function for frame in traceback.extract_tb(exc.__traceback__))


def fuzz_main(check: Callable[[bytes], None], argv: list[str] | None = None) -> None:
    import atheris

    atheris.Setup(sys.argv if argv is None else argv, check)
    atheris.Fuzz()
