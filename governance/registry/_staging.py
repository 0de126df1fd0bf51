"""Crash-safe staging of an upload's sealed weights (private: the registry's facade runs it).

Why this is its own, careful module: the sealed blob must never be left behind without a
version that owns it, whatever fails and wherever the process dies. The order is:

1. the weights are sealed into a temporary blob under a fresh data key, checked as they
   stream by (safetensors framing, the upload limit, then the stated metadata);
2. an *upload record* is committed: the wrapped data key, and this host and process
   (`<hostname>/<pid>.<start time>`), so that the blob can be recognised later;
3. the blob is committed (fsync + rename);
4. the facade inserts the version row and its audit event and deletes the upload record, in
   one transaction (`creation.insert_version`).

If anything fails on the way, the blob and the record are removed again (`discard`). If
the process is killed, the blob store sweeps its temporary, and the next registry start on
this host finds the committed-but-unregistered blob by its upload record and removes it
(`sweep_interrupted_uploads`), even when the new process has the dead one's pid, as a
restarted container's pid 1 has: the record names the process's start time too.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import uuid
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, cast

from sqlalchemy import delete, select
from sqlmodel import Session, col

from privet.governance.architectures.consistency import check_metadata_matches_weights
from privet.governance.audit.log import Event
from privet.governance.basemodels.checker import BaseFacts, BasePackChecker
from privet.governance.crypto import KeyEncryptionKeys, SealedWeights, WeightsTampered, open_weights, seal_weights
from privet.governance.errors import InvalidArgument, NotFound, ResourceExhausted
from privet.governance.processes import identity_alive, process_identity
from privet.governance.registry.base_models import BASE_ARCHITECTURE, check_named_base
from privet.governance.registry.records import VersionSpec, now_us
from privet.governance.registry.weights_format import SafetensorsChecker, TensorInfo
from privet.governance.runtime import Runtime
from privet.governance.store.blobs import BlobWriter
from privet.governance.store.registry_tables import ModelUpload, ModelVersion

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["Staged", "discard", "forget_upload", "stage_upload", "sweep_interrupted_uploads"]

log = logging.getLogger("privet.registry")

_SWEEPER = "service/registry"


@dataclass(frozen=True)
class Staged:
    """An upload whose blob is committed and whose upload record exists, not yet a version."""

    version_id: str
    sealed: SealedWeights
    blob_digest: str
    tensors: list[TensorInfo]
    # A base model's facts, established from the pack as it streamed by (None otherwise).
    base_facts: BaseFacts | None = None


class _BaseChecker:
    """The pack of a base model's folder: framing, rules and facts (`governance.basemodels`);
    its tensors, as the registry lists them, are the folder's files."""

    def __init__(self) -> None:
        self._checker = BasePackChecker()
        self.facts: BaseFacts | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._checker.feed(data)

    def finish(self) -> list[TensorInfo]:
        self.facts = self._checker.finish()
        return [TensorInfo(f"file:{path}", "U8", (int(entry["size"]),)) for path, entry in sorted(self.facts.files.items())]


def stage_upload(rt: Runtime, keyring: KeyEncryptionKeys, spec: VersionSpec, chunks: Iterable[bytes], *, chunk_size: int | None) -> Staged:
    """Steps 1-3 above for the safetensors bytes `chunks`. Raises InvalidArgument (field
    named) for anything that is not safetensors or does not match `spec`,
    ResourceExhausted past the upload limit; on any error nothing is left behind."""
    version_id = uuid.uuid4().hex
    checker: SafetensorsChecker | _BaseChecker = _BaseChecker() if spec.architecture == BASE_ARCHITECTURE else SafetensorsChecker(field="weights")
    source = _CheckedStream(chunks, checker, rt.settings.max_upload_bytes)
    writer = rt.blobs.writer()
    try:
        kwargs = {"chunk_size": chunk_size} if chunk_size else {}
        # seal_weights reads and writes only (read/readinto, write): these adapters are enough.
        sealed = seal_weights(cast(BinaryIO, source), cast(BinaryIO, _Sink(writer)), version_id=version_id, keyring=keyring, **kwargs)
        tensors = checker.finish()
        check_metadata_matches_weights(spec.architecture, spec.preprocessing_json, tensors, [i.get("name", "") for i in spec.inputs])
        with rt.read() as session:
            check_named_base(session, spec.architecture, spec.preprocessing_json)
        if spec.expected_size and spec.expected_size != sealed.size:
            raise InvalidArgument("metadata.expected_size", f"stated {spec.expected_size} bytes, received {sealed.size}")
        # Before the blob becomes visible, note how to recognise it: should this process
        # die before the version row exists, the next start removes the blob.
        upload = ModelUpload(version_id=version_id, model_name=spec.model_name, kek_id=sealed.kek_id, wrapped_key=sealed.wrapped_key,
                             host=_writer_host(), pid=os.getpid(), started_us=now_us())
        rt.write(lambda session: session.add(upload))
    except BaseException:
        writer.abort()
        raise
    try:
        blob_digest = writer.commit()
    except BaseException:
        forget_upload(rt, version_id)
        raise
    return Staged(version_id, sealed, blob_digest, tensors, checker.facts if isinstance(checker, _BaseChecker) else None)


def discard(rt: Runtime, staged: Staged) -> None:
    """Undo a staged upload whose registration failed: its blob (a fresh data key: no other
    version shares it) and its upload record."""
    rt.blobs.delete(staged.blob_digest)
    forget_upload(rt, staged.version_id)


def forget_upload(rt: Runtime, version_id: str) -> None:
    """Drop an upload record; should that fail, the next start's sweep does it."""
    try:
        rt.write(lambda session: session.execute(delete(ModelUpload).where(col(ModelUpload.version_id) == version_id)))
    except Exception:
        log.warning("could not drop the upload record of %s; it is swept at the next start", version_id)


def sweep_interrupted_uploads(rt: Runtime, keyring: KeyEncryptionKeys) -> int:
    """Remove the blobs of uploads that a process on this host left unfinished when it died
    (after its blob was committed, before its version was recorded), and their upload
    records, each audited. Returns the number of blobs removed."""
    with rt.read() as session:
        dead = [u for u in session.scalars(select(ModelUpload)) if _written_here_by_dead_process(u)]
        referenced = set(session.scalars(select(col(ModelVersion.blob_digest)))) if dead else set()
    if not dead:
        return 0
    candidates = [d for d in rt.blobs.digests() if d not in referenced]
    removed = 0
    for upload in dead:
        orphan = next((d for d in candidates if _sealed_for(rt, keyring, d, upload)), None)
        if orphan is not None:
            rt.blobs.delete(orphan)
            candidates.remove(orphan)
            removed += 1

        def unit(session: Session, upload: ModelUpload = upload, orphan: str | None = orphan) -> None:
            session.execute(delete(ModelUpload).where(col(ModelUpload.version_id) == upload.version_id))
            rt.audit.append(Event(principal=_SWEEPER, action="registry.SweepInterruptedUpload", resource=f"model/{upload.model_name}",
                                  decision="info", details={"version_id": upload.version_id, "pid": upload.pid, "writer": upload.host, "removed_blob": orphan}))

        rt.write(unit)
    return removed


def _sealed_for(rt: Runtime, keyring: KeyEncryptionKeys, digest: str, upload: ModelUpload) -> bool:
    """Whether blob `digest` opens as the upload's version under its data key."""
    try:
        with rt.blobs.open(digest) as blob:
            chunks = open_weights(blob, version_id=upload.version_id, kek_id=upload.kek_id, wrapped_key=upload.wrapped_key,
                                  keyring=keyring, expected_digest=None)
            try:
                next(chunks)
            finally:
                if isinstance(chunks, Generator):
                    chunks.close()
        return True
    except (WeightsTampered, NotFound, StopIteration):
        return False


def _writer_host() -> str:
    """What an upload record's `host` holds: `<hostname>/<pid>.<start>` (process_identity),
    so that a later process with the same pid is not taken for the uploader."""
    return f"{socket.gethostname()}/{process_identity()}"


def _written_here_by_dead_process(upload: ModelUpload) -> bool:
    """Whether `upload` was recorded on this host by a process that is gone. Records from
    before the start time was kept hold the bare hostname: their pid is all there is."""
    host, _, identity = upload.host.partition("/")
    return host == socket.gethostname() and not identity_alive(identity or str(upload.pid))


class _Sink:
    """Adapts BlobWriter (whose write returns None) to the raw-stream contract seal_weights needs."""

    def __init__(self, writer: BlobWriter) -> None:
        self._writer = writer

    def write(self, data: bytes | memoryview) -> int:
        self._writer.write(data)
        return len(data)


class _CheckedStream(io.RawIOBase):
    """A readable stream over uploaded chunks that checks the safetensors framing and the
    size limit as the bytes go by."""

    def __init__(self, chunks: Iterable[bytes], checker: SafetensorsChecker | _BaseChecker, limit: int) -> None:
        self._chunks = iter(chunks)
        self._checker = checker
        self._limit = limit
        self._pending = memoryview(b"")
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        while not self._pending:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                return 0
            self.size += len(chunk)
            if self.size > self._limit:
                raise ResourceExhausted(f"weights larger than the upload limit of {self._limit} bytes")
            self._checker.feed(chunk)
            self._pending = memoryview(chunk).cast("B")
        target = memoryview(buffer)
        count = min(len(target), len(self._pending))
        target[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count
