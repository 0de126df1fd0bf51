"""Benchmark: ingesting a Faker customer table, beside the raw CSV read and Presidio.

    python -m tests.bench.ingest --rows 1000000 --json

One CSV file is generated into a temporary directory, then, in the same run:
  raw_read      pyarrow.csv.read_csv of the whole file (multithreaded): the floor any
                CSV ingestion pays
  raw_stream    pyarrow.csv.open_csv in the pipeline's block size, batch by batch
  end_to_end    governance.datasets.formats.spool of the file (in 1 MiB chunks, as the
                gRPC stream delivers it) + governance.datasets.pipeline.mask_upload with
                the shipped default profile into one Parquet file (with `--k K` > 1, also
                k-anonymity over age, zip, sex)
  scan          governance.masking.replace_entities (the `scan` operator) on the whole
                free-text column `notes`, already in memory
  presidio      Microsoft Presidio's AnalyzerEngine with its predefined English
                PatternRecognizers only (no spaCy model: a stub NLP engine returns no
                tokens) on the first `--presidio-rows` cells of the same column
Ratios: end_to_end / raw_read (target ≥ 1/20), scan / presidio in rows/s (target ≥ 100).
MB = 10^6 bytes of the CSV file (for scan and presidio: of the column's UTF-8 text);
cells = rows × columns. Each timing is the median of `--repeat` rounds.

Up to `_FAKER_ROWS` rows the table is `governance.datasets.synthetic.customer_table`
itself. Beyond that, Faker is too slow (~10 k rows/s), so a pool of that many Faker rows
is drawn from column by column, and the identifiers the pipeline hashes or tokenises once
per distinct value (email, phone, card, IBAN) are made unique per row, so that
de-duplication does not flatter the result; the notes quote the row's own phone, email
and IBAN as customer_table's do.

presidio-analyzer is a benchmark-only dependency (`pip install presidio-analyzer`, which
brings spaCy but no model); without it the Presidio row is skipped and the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from privet.governance.datasets.formats import BLOCK_SIZE, CsvDialect, spool
from privet.governance.datasets.pipeline import AnonymisationSpec, mask_upload
from privet.governance.datasets.synthetic import customer_table
from privet.governance.masking import MaskingKeys, load_profile, replace_entities

_POLICIES = pathlib.Path(__file__).resolve().parents[2] / "policies" / "masking"
_FAKER_ROWS = 20_000
_CHUNK = 1 << 20
_MB = 1e6
_TARGET_E2E_SHARE = 1 / 20
_TARGET_PRESIDIO_RATIO = 100
_QIS = ("age", "zip", "sex")


# --- data ------------------------------------------------------------------------------------

def _luhn_cards(rng: np.random.Generator, n: int) -> list[str]:
    """16-digit Visa numbers with a valid Luhn check digit, vectorised."""
    body = np.concatenate([np.full((n, 1), 4), rng.integers(0, 10, size=(n, 14))], axis=1)
    # With the check digit appended, every second body digit from the right is doubled.
    doubled = body[:, ::-1][:, 0::2] * 2
    total = np.where(doubled > 9, doubled - 9, doubled).sum(axis=1) + body[:, ::-1][:, 1::2].sum(axis=1)
    check = (10 - total % 10) % 10
    digits = np.concatenate([body, check[:, None]], axis=1).astype(np.uint8) + ord("0")
    return [row.tobytes().decode() for row in digits]


def _ibans(pool: list[str], rng: random.Random, n: int) -> list[str]:
    """IBANs of the pool's countries and banks with fresh account digits and check digits."""
    out = []
    for _ in range(n):
        base = rng.choice(pool)
        country, bban = base[:2], base[4:]
        head = bban[:len(bban) - 8] if len(bban) > 8 else ""
        bban = head + "".join(rng.choice("0123456789") for _ in range(len(bban) - len(head)))
        numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
        out.append(f"{country}{98 - int(numeric) % 97:02d}{bban}")
    return out


def customer_csv_table(rows: int, seed: int = 7) -> pa.Table:
    """`rows` rows shaped like customer_table's (see the module docstring)."""
    if rows <= _FAKER_ROWS:
        return customer_table(rows, seed=seed)
    pool = customer_table(_FAKER_ROWS, seed=seed)
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    cols: dict[str, Any] = {}
    for name in pool.column_names:
        cols[name] = pool[name].take(pa.array(rng.integers(0, pool.num_rows, rows)))
    locals_, domains = zip(*(e.split("@", 1) for e in pool["email"].to_pylist()))
    emails = [f"{prng.choice(locals_)}{i}@{prng.choice(domains)}" for i in range(rows)]
    area = rng.integers(200, 1000, rows)
    line = rng.integers(0, 10_000_000, rows)
    phones = [f"({a}) {n // 10_000:03d}-{n % 10_000:04d}" for a, n in zip(area.tolist(), line.tolist())]
    ibans = _ibans(pool["iban"].to_pylist(), prng, rows)
    kind = rng.integers(0, 4, rows).tolist()
    notes = []
    for i in range(rows):
        k = kind[i]
        if k == 0:
            notes.append(f"Customer called from {phones[i]} about billing; follow up by {emails[i]}.")
        elif k == 1:
            notes.append(f"Asked to move payments to IBAN {ibans[i]}.")
        elif k == 2:
            notes.append("Happy with the service, no action needed.")
        else:
            notes.append(f"Reported issue with invoice; contact {emails[i]}.")
    cols.update(email=pa.array(emails), phone=pa.array(phones), card=pa.array(_luhn_cards(rng, rows)),
                iban=pa.array(ibans), notes=pa.array(notes))
    return pa.table({name: cols[name] for name in pool.column_names})


# --- measuring -------------------------------------------------------------------------------

def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float], Any]:
    samples, result = [], None
    for _ in range(repeat):
        # Drop the last round's result first: a whole table still alive makes the next round
        # fault in fresh pages, which halved every second raw read before.
        result = None
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), samples, result


def _file_chunks(path: pathlib.Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def _presidio_engine():
    """AnalyzerEngine with the predefined English PatternRecognizers and no NLP model."""
    # tldextract (used by Presidio's email recognizer) would fetch the public suffix list;
    # an empty URL list makes it use its bundled snapshot, offline.
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    from presidio_analyzer import AnalyzerEngine, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine

    class NoNlp(NlpEngine):  # the analyzer wants an engine; this one finds nothing
        def load(self) -> None:
            pass

        def is_loaded(self) -> bool:
            return True

        def process_text(self, text, language):
            return NlpArtifacts([], [], [], [], self, language)

        def process_batch(self, texts, language, batch_size=1, n_process=1, **kwargs):
            for text in texts:
                yield text, self.process_text(text, language)

        def is_stopword(self, word, language) -> bool:
            return False

        def is_punct(self, word, language) -> bool:
            return False

        def get_supported_entities(self) -> list[str]:
            return []

        def get_supported_languages(self) -> list[str]:
            return ["en"]

    nlp = NoNlp()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    registry.recognizers = [r for r in registry.recognizers if isinstance(r, PatternRecognizer)]
    engine = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
    names = sorted(type(r).__name__ for r in registry.recognizers)
    return engine, names


def run(rows: int, repeat: int, presidio_rows: int, k: int, seed: int, workdir: pathlib.Path,
        log: Callable[[str], None]) -> dict[str, Any]:
    t0 = time.perf_counter()
    table = customer_csv_table(rows, seed)
    csv_path = workdir / "customers.csv"
    pacsv.write_csv(table, csv_path)
    size = csv_path.stat().st_size
    cells = rows * table.num_columns
    notes = table["notes"]
    notes_bytes = pc.sum(pc.binary_length(notes)).as_py()
    log(f"generated {rows} rows × {table.num_columns} columns, {size / _MB:.1f} MB CSV "
        f"({size / rows:.0f} B/row) in {time.perf_counter() - t0:.1f} s")
    del table
    out: dict[str, Any] = {
        "rows": rows, "columns": cells // rows, "csv_bytes": size, "bytes_per_row": round(size / rows, 1),
        "repeat": repeat, "k": k,
        "env": {"python": platform.python_version(), "pyarrow": pa.__version__, "cpus": os.cpu_count(),
                "machine": platform.machine()},
    }

    med, samples, _ = _timed(lambda: pacsv.read_csv(csv_path), repeat)
    out["raw_read"] = {"seconds": med, "samples": samples, "MB_per_s": size / _MB / med, "cells_per_s": cells / med}
    log(f"raw pyarrow.csv read      {size / _MB / med:9.1f} MB/s")

    def stream() -> int:
        reader = pacsv.open_csv(csv_path, read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE))
        return sum(b.num_rows for b in reader)

    med, samples, _ = _timed(stream, repeat)
    out["raw_stream"] = {"seconds": med, "samples": samples, "MB_per_s": size / _MB / med}
    log(f"raw pyarrow.csv stream    {size / _MB / med:9.1f} MB/s")

    profile = load_profile(_POLICIES / "default.yaml")
    keys = MaskingKeys.derive(b"benchmark-secret-of-32-bytes-ok!", key_id="bench/v1")
    spec = AnonymisationSpec(_QIS, k) if k > 1 else AnonymisationSpec()

    def end_to_end() -> dict[str, Any]:
        spooled = spool(_file_chunks(csv_path), workdir, limit=1 << 40)
        try:
            masked = mask_upload(spooled, "csv", CsvDialect(), profile, keys, spec, workdir)
        finally:
            spooled.discard()
        try:
            return {"rows_out": masked.report.rows_out, "parquet_bytes": masked.path.stat().st_size,
                    "actions": {c.column: c.action for c in masked.report.columns}}
        finally:
            masked.discard()

    med, samples, info = _timed(end_to_end, repeat)
    out["end_to_end"] = {"seconds": med, "samples": samples, "MB_per_s": size / _MB / med,
                         "cells_per_s": cells / med, "rows_per_s": rows / med, **info}
    log(f"end-to-end default        {size / _MB / med:9.1f} MB/s  {cells / med / 1e6:.2f} M cells/s")

    med, samples, _ = _timed(lambda: replace_entities(notes, default_region="US"), repeat)
    out["scan"] = {"seconds": med, "samples": samples, "rows_per_s": rows / med,
                   "MB_per_s": notes_bytes / _MB / med}
    log(f"scan notes (free text)    {rows / med:9.0f} rows/s")

    try:
        engine, recognizers = _presidio_engine()
    except ImportError as exc:
        out["presidio"] = {"skipped": f"presidio-analyzer is not installed ({exc}); pip install presidio-analyzer"}
        log("presidio                  skipped: not installed")
    else:
        sample = notes.slice(0, min(presidio_rows, rows)).to_pylist()
        engine.analyze(sample[0], language="en")  # compile the patterns outside the timing
        med, samples, found = _timed(lambda: sum(len(engine.analyze(t, language="en")) for t in sample), repeat)
        ours, _, _ = _timed(lambda: replace_entities(pa.array(sample), default_region="US"), repeat)
        out["presidio"] = {"rows": len(sample), "seconds": med, "rows_per_s": len(sample) / med,
                           "findings": found, "recognizers": recognizers,
                           "scan_same_rows_per_s": len(sample) / ours}
        log(f"presidio patterns         {len(sample) / med:9.0f} rows/s  (on {len(sample)} rows)")

    e2e_share = out["end_to_end"]["MB_per_s"] / out["raw_read"]["MB_per_s"]
    out["ratios"] = {"end_to_end_over_raw_read": e2e_share, "target_end_to_end_over_raw_read": _TARGET_E2E_SHARE}
    if "rows_per_s" in out["presidio"]:
        out["ratios"]["scan_over_presidio"] = out["scan"]["rows_per_s"] / out["presidio"]["rows_per_s"]
        out["ratios"]["target_scan_over_presidio"] = _TARGET_PRESIDIO_RATIO
    out["max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    log(f"end-to-end / raw read     {e2e_share:9.3f}  (target ≥ {_TARGET_E2E_SHARE:.3f})")
    if "scan_over_presidio" in out["ratios"]:
        log(f"scan / presidio           {out['ratios']['scan_over_presidio']:9.0f}× (target ≥ {_TARGET_PRESIDIO_RATIO}×)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds per timing; the median is reported")
    parser.add_argument("--presidio-rows", type=int, default=2000, help="cells Presidio analyses")
    parser.add_argument("--k", type=int, default=1, help="k-anonymity over age, zip, sex in the end-to-end run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeat < 1 or args.presidio_rows < 1:
        parser.error("--rows, --repeat and --presidio-rows must be positive")
    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    with tempfile.TemporaryDirectory(prefix="privet-bench-ingest-") as tmp:
        result = run(args.rows, args.repeat, args.presidio_rows, args.k, args.seed, pathlib.Path(tmp), log)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
