"""Bounded fuzzing in the suite: each target under tests/security/fuzz/ runs for a fixed
number of inputs (atheris, coverage-guided, in a subprocess; a crash fails the test with
the input that caused it), and the same targets are driven in-process by hypothesis so that
they are exercised where atheris is not installed. Then the regression inputs of the gaps
the fuzzers found, pinned as strict xfails until the product fixes them.

More runs, another seed:  PRIVET_FUZZ_RUNS=200000 PRIVET_FUZZ_SEED=7 pytest tests/security/test_fuzz.py
or by hand:               python -m tests.security.fuzz.fuzz_safetensors -runs=1000000 CORPUS_DIR
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import pathlib
import struct
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privet.governance.datasets.formats import CsvDialect, read_batches, spool
from privet.governance.errors import InvalidArgument

REPO = pathlib.Path(__file__).resolve().parents[2]
HAVE_ATHERIS = importlib.util.find_spec("atheris") is not None

# target module -> (runs, max input length): a few seconds each
TARGETS = {
    "fuzz_formats": (2000, 8192),
    "fuzz_masking_profile": (3000, 4096),
    "fuzz_safetensors": (30000, 4096),
}


def _target(name: str):
    return importlib.import_module(f"tests.security.fuzz.{name}")


@pytest.mark.skipif(not HAVE_ATHERIS, reason="atheris is not installed (the hypothesis run below still covers the targets)")
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_atheris_finds_no_crash(name: str, tmp_path: pathlib.Path) -> None:
    runs, max_len = TARGETS[name]
    runs = int(os.environ.get("PRIVET_FUZZ_RUNS", runs))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for seed in _target(name).SEEDS:
        (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    command = [
        sys.executable, "-m", f"tests.security.fuzz.{name}",
        f"-runs={runs}", f"-seed={os.environ.get('PRIVET_FUZZ_SEED', '1')}", f"-max_len={max_len}",
        "-timeout=10",  # seconds per input: slower is a hang
        "-rss_limit_mb=2048", "-print_final_stats=1", f"-artifact_prefix={artifacts}/", str(corpus),
    ]
    proc = subprocess.run(command, check=False, cwd=REPO, capture_output=True, text=True, timeout=240)
    found = {str(p): p.read_bytes() for p in artifacts.iterdir()}
    shown = {path: data if len(data) <= 256 else data[:256] + b"..." for path, data in found.items()}
    assert proc.returncode == 0 and not found, (
        f"{name} crashed (exit {proc.returncode}); replay with `python -m tests.security.fuzz.{name} FILE`; inputs: {shown!r}\n"
        f"{proc.stderr[-4000:]}"
    )
    assert "Done " in proc.stderr


def _mutated(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """A seed with a few bytes overwritten, inserted or cut; or arbitrary bytes."""
    def apply(args) -> bytes:
        seed, edits, cut = args
        out = bytearray(seed)
        for at, value, insert in edits:
            at = at % (len(out) + 1)
            if insert or at == len(out):
                out.insert(at, value)
            else:
                out[at] = value
        return bytes(out[: len(out) - cut % (len(out) + 1)]) if cut else bytes(out)

    edit = st.tuples(st.integers(0, 1 << 16), st.integers(0, 255), st.booleans())
    return st.one_of(
        st.tuples(st.sampled_from(seeds), st.lists(edit, max_size=6), st.integers(0, 64)).map(apply),
        st.binary(max_size=512),
    )


# pyarrow reports (and swallows) a UnicodeDecodeError from the CSV invalid-row handler when a
# ragged row is not UTF-8; the reader still ends in InvalidArgument.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_hypothesis_finds_no_crash(name: str) -> None:
    target = _target(name)

    @settings(max_examples=150, deadline=10_000, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(_mutated(list(target.SEEDS)))
    def run(data: bytes) -> None:
        target.check(data)

    run()


def test_the_seeds_are_accepted() -> None:
    """Each target's seeds are valid inputs, so the fuzzers start from the parsers' depths."""
    from privet.governance.masking.profile import parse_profile
    from privet.governance.registry.weights_format import parse_safetensors

    # The first byte picks the mode: raw text/bytes, or a value built from the rest.
    for seed in _target("fuzz_masking_profile").SEEDS:
        if not seed[0] & 1:
            parse_profile(seed[1:].decode())
    for seed in _target("fuzz_safetensors").SEEDS:
        if not seed[0] & 0x80:
            assert parse_safetensors(seed[1:])


# --- what the fuzzers found, pinned until fixed -----------------------------------------------
# Each input makes read_batches raise something other than InvalidArgument, which the
# services map to INTERNAL ("internal error") instead of INVALID_ARGUMENT naming the fault.
# When a fix lands, the test XPASSes (strict: fails): delete its mark, and the matching
# entry in the target's KNOWN_GAPS (the dialect gaps are not fuzzed; see DELIMITERS in
# fuzz_formats).

def _read(tmp_path: pathlib.Path, body: bytes, fmt: str, dialect: CsvDialect) -> None:
    upload = spool([body], tmp_path, limit=1 << 24)
    try:
        list(read_batches(upload, fmt, dialect))
    finally:
        upload.discard()


def _parquet(transform) -> bytes:
    return transform(_target("fuzz_formats")._parquet_seed())


def _zero_first_page(data: bytes) -> bytes:
    return data[:4] + bytes(36) + data[40:]


GAPS = [
    pytest.param(b"\xc6\n\xc5\n", "csv", dict(), id="csv-non-utf8-header-and-cell"),
    pytest.param(_parquet(lambda d: d.replace(b"email", b"\x9fmail")), "parquet", dict(), id="parquet-non-utf8-column-name"),
    pytest.param(_parquet(_zero_first_page), "parquet", dict(), id="parquet-corrupt-page"),
    pytest.param(b"a,b\n1,2\n", "csv", dict(delimiter="ab"), id="csv-delimiter-two-characters"),
    pytest.param(b"a,b\n1,2\n", "csv", dict(delimiter="\u00e9"), id="csv-delimiter-not-ascii"),
    pytest.param(b"a,b\n1,2\n", "csv", dict(quote_char='""'), id="csv-quote-two-characters"),
    pytest.param(b"a,b\n1,2\n", "csv", dict(encoding="no-such-codec"), id="csv-unknown-encoding"),
    pytest.param(b"a,b\n1,2\n", "csv", dict(encoding="utf-16"), id="csv-utf16-without-bom"),
]


@pytest.mark.parametrize("body,fmt,dialect", GAPS)
def test_bad_uploads_are_invalid_argument(tmp_path: pathlib.Path, body: bytes, fmt: str, dialect: dict) -> None:
    with pytest.raises(InvalidArgument):
        _read(tmp_path, body, fmt, CsvDialect(**dialect))


def _safetensors(header: bytes, body: bytes = bytes(4)) -> bytes:
    return struct.pack("<Q", len(header)) + header + body


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_safetensors(b'{"a": {"dtype": [], "shape": [1], "data_offsets": [0, 4]}}'), id="dtype-list"),
        pytest.param(_safetensors(b'{"a": {"dtype": {}, "shape": [1], "data_offsets": [0, 4]}}'), id="dtype-map"),
        pytest.param(_safetensors(b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}"), id="nested-5000-deep"),
    ],
)
def test_bad_safetensors_headers_are_invalid_argument(data: bytes) -> None:
    from privet.governance.registry.weights_format import parse_safetensors

    with pytest.raises(InvalidArgument):
        parse_safetensors(data)


def test_a_deeply_nested_profile_is_invalid_argument() -> None:
    from privet.governance.masking.profile import parse_profile

    with pytest.raises(InvalidArgument):
        parse_profile("rules: " + "[" * 5000 + "]" * 5000)
