"""The ingestion pipeline: upload → batches → mask → k-anonymise → one Parquet file.

Two passes over the spooled upload keep memory bounded: pass one masks each batch (the
quasi-identifiers stay raw, held in memory as those columns alone) into a temporary Parquet
file; k-anonymity is planned over the quasi-identifier columns; pass two generalises and
suppresses batch by batch into the final Parquet file.
"""

from __future__ import annotations

import itertools
import os
import pathlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from privet.governance.datasets.fingerprint import ContentSketch
from privet.governance.datasets.formats import CsvDialect, Spooled, read_batches
from privet.governance.datasets.prefetch import BackgroundWriter, prefetched
from privet.governance.datasets.workers import masked_in_workers
from privet.governance.errors import InvalidArgument
from privet.governance.masking.kanon import KAnonymityPlan, KAnonymityReport, plan_k_anonymity
from privet.governance.masking.operators import MaskingKeys
from privet.governance.masking.profile import ColumnPreview, MaskingPlan, MaskingProfile, MaskingReport, plan_masking, preview
from privet.governance.store.blobs import temporary_name

__all__ = ["PARALLEL_MIN_BYTES", "AnonymisationSpec", "MaskedFile", "mask_upload", "preview_upload"]

# Below this size an upload is masked in-process: a few batches do not pay for workers.
PARALLEL_MIN_BYTES = 64 << 20

# Operators whose output is all but unique per row: a Parquet dictionary is built for
# nothing (Arrow tries one, then falls back) and min/max statistics over hex digests,
# tokens or prose prune nothing. Skipping both takes a third off the encoding.
_UNIQUE_OUTPUT_ACTIONS = frozenset({"hash", "tokenise", "scan"})


def _parquet_writer(path: pathlib.Path, schema: pa.Schema, plan: MaskingPlan) -> pq.ParquetWriter:
    unique = {c.column for c in plan.columns if c.action in _UNIQUE_OUTPUT_ACTIONS}
    ordinary = [name for name in schema.names if name not in unique]
    return pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=ordinary, write_statistics=ordinary)


@dataclass(frozen=True)
class AnonymisationSpec:
    quasi_identifiers: tuple[str, ...] = ()
    k: int = 1
    sensitive_column: str = ""
    l_diversity: int = 1
    max_suppression: float | None = None

    @property
    def active(self) -> bool:
        return bool(self.quasi_identifiers) and (self.k > 1 or self.l_diversity > 1)


@dataclass(frozen=True)
class MaskedFile:
    path: pathlib.Path
    report: MaskingReport
    schema: pa.Schema
    # What the upload held and what the stored table holds (`governance/datasets/fingerprint.py`):
    # the budget of the data is found by them.
    raw_content: ContentSketch = field(default_factory=ContentSketch)
    masked_content: ContentSketch = field(default_factory=ContentSketch)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def _temp(workdir: pathlib.Path, label: str) -> pathlib.Path:
    return workdir / f"{temporary_name(label)}.parquet"


def _check_columns(schema: pa.Schema, spec: AnonymisationSpec) -> None:
    names = set(schema.names)
    for i, qi in enumerate(spec.quasi_identifiers):
        if qi not in names:
            raise InvalidArgument(f"header.quasi_identifiers[{i}]", f"no column {qi!r} in the file (columns: {', '.join(schema.names)})")
    if spec.sensitive_column and spec.sensitive_column not in names:
        raise InvalidArgument("header.sensitive_column", f"no column {spec.sensitive_column!r} in the file")


def _hashed(batches: Iterator[pa.RecordBatch], content: ContentSketch) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        content.add(batch)
        yield batch


def _masked_batches(batches: Iterator[pa.RecordBatch], plan: MaskingPlan, first: pa.RecordBatch,
                    workers: int, workdir: pathlib.Path) -> Iterator[pa.Table]:
    if workers > 1:  # the first batch too: the workers start on it while the next is parsed
        yield from masked_in_workers(itertools.chain([first], batches), plan, workers, workdir)
        return
    yield plan.mask(first)
    for batch in batches:
        # The plan was made on the first batch: PII that first shows up later in a column the
        # plan keeps must still stop the ingestion.
        plan.verify(batch)
        yield plan.mask(batch)


def mask_upload(spooled: Spooled, fmt: str, dialect: CsvDialect, profile: MaskingProfile, keys: MaskingKeys,
                spec: AnonymisationSpec, workdir: pathlib.Path, *, workers: int | None = None,
                parallel_min_bytes: int = PARALLEL_MIN_BYTES, content_key: bytes | None = None) -> MaskedFile:
    """Mask the whole upload into one Parquet file under `workdir` (the caller discards it).
    An upload of at least `parallel_min_bytes` is masked by `workers` processes (default:
    one per core); a smaller one in this process, where starting workers would cost more.

    Raises InvalidArgument (bad file, unknown column), FailedPrecondition (PII no rule
    covers; k not reachable within the suppression bound). Leaves no file behind on error.

    Rows are hashed with `content_key` (the installation's, `Home.content_key`; None: the
    unkeyed hashes); the raw content keeps every distinct row hash for matching budgets.
    """
    batches = read_batches(spooled, fmt, dialect)
    first = next(batches)
    raw_content, masked_content = ContentSketch(key=content_key, keep_hashes=True), ContentSketch(key=content_key)
    raw_content.add(first)
    # The next block is parsed (and its rows hashed) while this one is masked.
    batches = prefetched(_hashed(batches, raw_content))
    _check_columns(first.schema, spec)
    qis = spec.quasi_identifiers if spec.active else ()
    plan = plan_masking(pa.Table.from_batches([first]), profile, keys, quasi_identifiers=qis)
    stage_one = _temp(workdir, "masked")
    final = _temp(workdir, "final") if spec.active else stage_one
    keep_columns = [*qis, *([spec.sensitive_column] if spec.active and spec.sensitive_column else [])]
    qi_parts: list[pa.Table] = []
    rows_in = 0
    writes: BackgroundWriter[pa.Table] | None = None
    try:
        writer: pq.ParquetWriter | None = None
        if workers is None:
            workers = os.cpu_count() or 1
        parallel = workers if spooled.size >= parallel_min_bytes else 1
        for masked in _masked_batches(batches, plan, first, parallel, workdir):
            rows_in += masked.num_rows
            if keep_columns:
                qi_parts.append(masked.select(keep_columns))
            if writer is None:
                writer = _parquet_writer(stage_one, masked.schema, plan)
                # Hashed and compressed while the next batch is masked; with k-anonymity the
                # stored table is the generalised one, hashed as it is written.
                write = writer.write_table if spec.active else _hashing(writer.write_table, masked_content)
                writes = BackgroundWriter(write)
            assert writes is not None  # made with the writer, just above
            writes.put(masked.cast(writer.schema) if masked.schema != writer.schema else masked)
        assert writer is not None and writes is not None
        plan.forget_values()  # the memos hold raw values: not a moment longer than masking
        writes.close()
        writes = None
        writer.close()
        kreport = None
        if spec.active:
            hierarchies = profile.hierarchies(qis)
            kplan = plan_k_anonymity(
                pa.concat_tables(qi_parts),
                hierarchies,
                spec.k,
                max_suppression=profile.max_suppression if spec.max_suppression is None else spec.max_suppression,
                sensitive=spec.sensitive_column or None,
                l=spec.l_diversity,
                t=profile.t_closeness,
            )
            qi_parts.clear()
            kreport = _generalise_into(stage_one, final, kplan, plan, masked_content)
            stage_one.unlink()
        schema = pq.read_schema(final)
        rows_out = pq.ParquetFile(final).metadata.num_rows
        return MaskedFile(final, plan.report(rows_in, rows_out, kreport), schema, raw_content, masked_content)
    except BaseException:
        plan.forget_values()
        if writes is not None:
            try:
                writes.close()
            except BaseException:
                pass
        stage_one.unlink(missing_ok=True)
        final.unlink(missing_ok=True)
        raise


def _hashing(write: Callable[[pa.Table], None], content: ContentSketch) -> Callable[[pa.Table], None]:
    def hash_and_write(table: pa.Table) -> None:
        content.add(table)
        write(table)
    return hash_and_write


def _generalise_into(source: pathlib.Path, target: pathlib.Path, kplan: KAnonymityPlan, plan: MaskingPlan, content: ContentSketch) -> KAnonymityReport:
    offset = 0
    writer: pq.ParquetWriter | None = None
    for batch in pq.ParquetFile(source).iter_batches(batch_size=64 * 1024):
        released = kplan.apply(batch, offset)
        offset += batch.num_rows
        if writer is None:
            writer = _parquet_writer(target, released.schema, plan)
        released = released.cast(writer.schema) if released.schema != writer.schema else released
        content.add(released)
        writer.write_table(released)
    assert writer is not None
    writer.close()
    return kplan.report


def preview_upload(spooled: Spooled, fmt: str, dialect: CsvDialect, profile: MaskingProfile, keys: MaskingKeys, spec: AnonymisationSpec, rows: int = 10) -> list[ColumnPreview]:
    """What each column would become, on the first rows. Stores nothing."""
    first = next(read_batches(spooled, fmt, dialect))
    _check_columns(first.schema, spec)
    table = pa.Table.from_batches([first]).slice(0, max(rows, 1000))
    return preview(table, profile, keys, rows=rows, quasi_identifiers=spec.quasi_identifiers if spec.active else ())


