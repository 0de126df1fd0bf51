"""A budget belongs to the data's content, not its bytes, on SQLite and PostgreSQL: the same
rows with CRLF line endings, in another order, as JSON Lines or Parquet, the masked table
exported and uploaded again, or most of the rows, all draw on the first upload's budget
(what it spent included); an unrelated table gets its own."""

from __future__ import annotations

import io
import json
import pathlib
import random

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from privet.governance.bootstrap import init_home
from privet.governance.datasets.catalog import DatasetSpec, create_dataset, dataset_batches, dataset_budget, delete_dataset
from privet.governance.datasets.fingerprint import SKETCH_SIZE, ContentSketch, containment_in, row_hashes, similarity
from privet.governance.datasets.formats import CsvDialect
from privet.governance.datasets.pipeline import AnonymisationSpec
from privet.governance.privacy.accounting import Mechanism
from privet.governance.privacy.ledger import BudgetLedger
from privet.governance.runtime import Runtime
from privet.governance.store.dataset_tables import DatasetContent
from privet.governance.store.tables import AuditEvent
from tests.conftest import make_home

DELTA = 1e-5
RUN = Mechanism(1.5234375, 0.01, 1000, DELTA)


def _rows(seed: int = 0, n: int = 400) -> list[str]:
    rng = random.Random(seed)
    return [f"user{seed}x{i}@example.com,{rng.randint(18, 90)},{rng.random() * 100:.2f},{rng.randint(0, 1)}" for i in range(n)]


def _csv(rows: list[str], newline: str = "\n") -> bytes:
    return ("email,age,spend,label" + newline + "".join(r + newline for r in rows)).encode()


def _table(data: bytes) -> pa.Table:
    return pacsv.read_csv(io.BytesIO(data))


def _jsonl(table: pa.Table) -> bytes:
    return "".join(json.dumps(dict(reversed(list(r.items())))) + "\n" for r in table.to_pylist()).encode()


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _ingest(rt: Runtime, name: str, data: bytes, fmt: str = "csv", epsilon: float = 8.0):
    return create_dataset(rt, "user/alice", DatasetSpec(name, fmt, "default", AnonymisationSpec(), CsvDialect(), epsilon, DELTA), [data])


def _spend(rt: Runtime, dataset_id: str) -> float:
    ledger = BudgetLedger(rt.audit)
    rt.write(lambda s: ledger.reserve(s, dataset_id, "j1", 2.0, DELTA, "user/alice"))
    rt.write(lambda s: ledger.settle(s, dataset_id, "j1", 2.0, RUN, "service/training"))
    spent = dataset_budget(rt, dataset_id).epsilon_spent
    assert spent > 0
    return spent


def _masked_export(rt: Runtime, name: str) -> pa.Table:
    """What `privet datasets export` writes: the stored masked table."""
    return pa.Table.from_batches(list(dataset_batches(rt, name, [])))


# -- the same data in other bytes shares the budget ---------------------------------------

def _variants(rt: Runtime, rows: list[str]) -> dict[str, tuple[bytes, str]]:
    original = _table(_csv(rows))
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    masked = _masked_export(rt, "custs")
    return {
        "crlf": (_csv(rows, "\r\n"), "csv"),
        "reversed": (_csv(rows[::-1]), "csv"),
        "jsonl": (_jsonl(original), "jsonl"),
        "parquet": (_parquet(original.select(["label", "spend", "age", "email"])), "parquet"),
        "ninety_five_percent": (_csv(shuffled[: len(rows) * 95 // 100]), "csv"),
        "masked_export": (_parquet(masked), "parquet"),
        "masked_export_subset": (_parquet(masked.take(np.arange(0, masked.num_rows, 3)[::-1])), "parquet"),
    }


@pytest.mark.parametrize("variant", ["crlf", "reversed", "jsonl", "parquet", "ninety_five_percent", "masked_export", "masked_export_subset"])
def test_the_same_data_in_other_bytes_draws_on_the_first_budget(runtime: Runtime, variant: str) -> None:
    rows = _rows()
    first = _ingest(runtime, "custs", _csv(rows), epsilon=4.0)
    spent = _spend(runtime, first.id)
    data, fmt = _variants(runtime, rows)[variant]
    again = _ingest(runtime, "again", data, fmt, epsilon=8.0)
    assert again.raw_digest != first.raw_digest  # other bytes
    budget = dataset_budget(runtime, again.id)
    assert budget.budget_id == f"sha256:{first.raw_digest}"
    assert budget.epsilon_spent == spent and budget.epsilon_total == 4.0 and again.epsilon_total == 4.0
    note = json.loads(again.report_json)["privacy_budget"]
    assert "stands" in note["note"] and [m["dataset_id"] for m in note["matched"]] == [first.id]
    assert note["matched"][0]["of"] == ("masked" if variant.startswith("masked") else "raw")
    with runtime.read() as s:
        links = s.execute(select(AuditEvent).where(AuditEvent.action == "privacy.link")).scalars().all()
    assert len(links) == 1 and json.loads(links[0].details)["match"]["datasets"][0]["dataset_id"] == first.id


def test_an_erased_datasets_content_still_finds_its_budget(runtime: Runtime) -> None:
    rows = _rows()
    first = _ingest(runtime, "custs", _csv(rows))
    spent = _spend(runtime, first.id)
    delete_dataset(runtime, "user/alice", "custs", "erasure request")
    again = _ingest(runtime, "custs", _csv(rows[::-1], "\r\n"))
    assert dataset_budget(runtime, again.id).epsilon_spent == spent


def test_unrelated_data_and_a_small_share_of_rows_get_their_own_budgets(runtime: Runtime) -> None:
    rows = _rows()
    first = _ingest(runtime, "custs", _csv(rows))
    _spend(runtime, first.id)
    other = _ingest(runtime, "others", _csv(_rows(seed=1)))
    # A fifth of the rows beside four times as many new ones: 20 % of the upload, under the threshold.
    mixed = _ingest(runtime, "mixed", _csv(rows[:80] + _rows(seed=2, n=320)))
    budgets = {dataset_budget(runtime, d.id).budget_id for d in (first, other, mixed)}
    assert len(budgets) == 3
    assert dataset_budget(runtime, other.id).epsilon_spent == 0
    assert "note" not in json.loads(other.report_json)["privacy_budget"]


def test_each_dataset_records_its_raw_and_masked_content(runtime: Runtime) -> None:
    rows = _rows()
    ds = _ingest(runtime, "custs", _csv(rows))
    with runtime.read() as s:
        stored = {c.kind: c for c in s.execute(select(DatasetContent).where(DatasetContent.dataset_id == ds.id)).scalars()}
    key = runtime.home.content_key()
    raw, masked = ContentSketch(key=key), ContentSketch(key=key)
    raw.add(_table(_csv(rows)))
    masked.add(_masked_export(runtime, "custs"))
    assert stored["raw"].fingerprint == raw.fingerprint and stored["raw"].rows == 400
    assert stored["masked"].fingerprint == masked.fingerprint != raw.fingerprint  # the emails are masked
    assert len(stored["raw"].sketch) == 8 * SKETCH_SIZE
    unkeyed = ContentSketch()
    unkeyed.add(_table(_csv(rows)))
    assert unkeyed.fingerprint != raw.fingerprint  # the installation's key is in every row hash


# -- padding: rows added to hide the data from the upload's own sketch ---------------------

def _padding(rows: list[str], key: bytes | None, count: int = SKETCH_SIZE) -> list[str]:
    """`count` extra rows (a null label: training drops them) whose hashes under `key` are
    below every row of `rows`, found by trying candidates: what an attacker who knew the key
    (None: the public, unkeyed hashes) would add so that a bottom-k sketch saw only them."""
    floor = row_hashes(_table(_csv(rows)), key).min()
    chosen: list[str] = []
    start = 0
    while len(chosen) < count:
        candidates = [f"pad{i}@example.com,{18 + i % 70},{i % 9973 / 100:.2f}," for i in range(start, start + 100_000)]
        hashes = row_hashes(_table(_csv(rows + candidates)), key)[len(rows):]
        chosen += [c for c, h in zip(candidates, hashes, strict=True) if h < floor]
        start += 100_000
    return chosen[:count]


def test_padding_an_upload_does_not_hide_the_data_it_holds(runtime: Runtime) -> None:
    rows = _rows()
    key = runtime.home.content_key()
    first = _ingest(runtime, "custs", _csv(rows), epsilon=4.0)
    spent = _spend(runtime, first.id)
    # White-box, with the installation's own key: the padded upload's sketch is all padding.
    padded = rows + _padding(rows, key)
    random.Random(3).shuffle(padded)
    upload = ContentSketch(key=key)
    upload.add(_table(_csv(padded)))
    original = ContentSketch(key=key)
    original.add(_table(_csv(rows)))
    assert not np.isin(upload.sketch, original.sketch).any()
    assert not similarity(upload.sketch, original.sketch).same_data  # the sketches alone are fooled
    again = _ingest(runtime, "padded", _csv(padded), epsilon=8.0)
    budget = dataset_budget(runtime, again.id)
    assert budget.budget_id == f"sha256:{first.raw_digest}" and budget.epsilon_spent == spent and budget.epsilon_total == 4.0
    matched = json.loads(again.report_json)["privacy_budget"]["matched"]
    assert matched == [{"dataset_id": first.id, "of": "raw", "by": "containment", "contains": 1.0}]


def test_padded_data_ingested_first_still_holds_the_budget_of_its_rows(runtime: Runtime) -> None:
    rows = _rows()
    # The attacker knows the code but not the key: padding chosen on the unkeyed hashes.
    padding = _padding(rows, None)
    unkeyed_padded, unkeyed_rows = ContentSketch(), ContentSketch()
    unkeyed_padded.add(_table(_csv(rows + padding)))
    unkeyed_rows.add(_table(_csv(rows)))
    # Unkeyed, the padded table's stored sketch would be all padding: nothing would match.
    assert not similarity(unkeyed_rows.sketch, unkeyed_padded.sketch).same_data
    padded = _ingest(runtime, "padded", _csv(padding + rows), epsilon=4.0)
    spent = _spend(runtime, padded.id)
    clean = _ingest(runtime, "clean", _csv(rows), epsilon=8.0)
    budget = dataset_budget(runtime, clean.id)
    assert budget.budget_id == f"sha256:{padded.raw_digest}" and budget.epsilon_spent == spent and budget.epsilon_total == 4.0
    assert [m["dataset_id"] for m in json.loads(clean.report_json)["privacy_budget"]["matched"]] == [padded.id]


def test_each_installation_hashes_rows_with_its_own_key(tmp_path: pathlib.Path) -> None:
    one, two = make_home(tmp_path / "one"), make_home(tmp_path / "two")
    key = one.content_key()
    assert len(key) == 32 and key != two.content_key()
    assert one.content_key_path.stat().st_mode & 0o777 == 0o600
    init_home(one)  # idempotent: the key is kept
    assert one.content_key() == key
    table = _table(_csv(_rows()))
    mine, theirs = row_hashes(table, key), row_hashes(table, two.content_key())
    assert (mine == row_hashes(table, one.content_key())).all()
    assert not np.isin(mine, theirs).any() and not np.isin(mine, row_hashes(table)).any()
    a, b = ContentSketch(key=key), ContentSketch(key=two.content_key())
    a.add(table)
    b.add(table)
    assert a.fingerprint != b.fingerprint and not similarity(a.sketch, b.sketch).same_data


def test_containment_in_the_whole_upload() -> None:
    rows = pa.table({"i": np.arange(20_000)})
    whole = ContentSketch(keep_hashes=True)
    for batch in rows.to_batches(max_chunksize=999):
        whole.add(batch)
    assert (whole.hashes == np.unique(row_hashes(rows))).all()
    half, other, tiny = _sketch(rows.slice(0, 10_000)).sketch, _sketch(pa.table({"i": np.arange(-5_000, 0)})).sketch, _sketch(rows.slice(0, 3)).sketch
    shares = containment_in(whole.hashes, [half, other, tiny, np.zeros(0, np.uint64)])
    assert shares[0] == 1.0 and shares[1] == 0.0 and shares[2] == 1.0 and np.isnan(shares[3])


# -- the fingerprint itself (no database) -------------------------------------------------

def _sketch(*tables: pa.Table) -> ContentSketch:
    content = ContentSketch()
    for table in tables:
        for batch in table.to_batches(max_chunksize=37):
            content.add(batch)
    return content


def test_the_fingerprint_ignores_order_batching_and_number_formatting() -> None:
    a = pa.table({"name": ["ann", "bob", None, ""], "n": [1, 2, 3, None], "x": [1.5, 2.0, float("nan"), -0.0]})
    b = pa.table({"x": [0.0, float("nan"), 2.0, 1.5], "n": pa.array([None, 3, 2, 1], pa.int32()), "name": pa.array(["", None, "bob", "ann"], pa.large_string())})
    c = pa.table({"name": pa.array(["ann", "bob", None, ""]).dictionary_encode(), "n": [1.0, 2.0, 3.0, None], "x": [1.5, 2, float("nan"), 0]})
    assert _sketch(a).fingerprint == _sketch(b).fingerprint == _sketch(c).fingerprint
    assert _sketch(a.slice(1)).fingerprint != _sketch(a).fingerprint
    assert _sketch(a.rename_columns(["Name", "n", "x"])).fingerprint != _sketch(a).fingerprint  # names count
    assert _sketch(pa.table({"name": ["ann "], "n": [1], "x": [1.5]})).fingerprint != _sketch(a.slice(0, 1)).fingerprint  # text is exact
    assert _sketch(pa.table({"v": ["1"]})).fingerprint != _sketch(pa.table({"v": [1]})).fingerprint


def test_string_hashes_depend_on_every_byte_and_not_on_the_buffer() -> None:
    values = ["", "a", "abcdefgh", "abcdefghi", "abcdefgh\x00", "x" * 100, "x" * 99 + "y", "é"]
    hashes = row_hashes(pa.table({"s": values}))
    assert len(set(hashes.tolist())) == len(values)
    sliced = row_hashes(pa.table({"s": ["pad", "pad2", *values]}).slice(2))
    assert (sliced == hashes).all()


def test_similarity_estimates_the_overlap_of_rows() -> None:
    rows = pa.table({"i": np.arange(20_000)})
    whole = _sketch(rows).sketch
    most = _sketch(rows.slice(0, 19_000)).sketch
    fifth = _sketch(rows.slice(0, 4_000)).sketch
    other = _sketch(pa.table({"i": np.arange(20_000, 40_000)})).sketch
    assert similarity(most, whole).same_data and similarity(most, whole).jaccard > 0.9
    assert similarity(fifth, whole).contained == 1.0 and similarity(fifth, whole).same_data  # a subset is the same data
    assert similarity(other, whole).jaccard == 0 and not similarity(other, whole).same_data
