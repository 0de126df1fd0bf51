"""The sealed weights of registered versions: reading them back (`download`) and erasing
what is left of them once a version's data key is dropped (`erase_remains`, `sweep_erased`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import BinaryIO

from sqlalchemy import select
from sqlmodel import col

from privet.governance.audit.log import Event
from privet.governance.crypto import KeyEncryptionKeys, open_weights
from privet.governance.errors import DataLoss, FailedPrecondition, NotFound
from privet.governance.identity.principals import Principal
from privet.governance.policy.ownership import require
from privet.governance.registry.facts import owned_version
from privet.governance.registry.records import find_version, version_resource
from privet.governance.runtime import Runtime
from privet.governance.store.registry_tables import Model, ModelVersion

__all__ = ["download", "erase_remains", "sweep_erased"]

log = logging.getLogger("privet.registry")


def download(rt: Runtime, keyring: KeyEncryptionKeys, principal: Principal, name: str, version: int) -> Iterator[bytes]:
    """Decrypted weights, chunk by chunk; the download is audited before the first byte.

    The key is unwrapped and the blob opened before this returns. A consumer must treat
    the bytes as unverified until iteration ends without error: every chunk is
    authenticated, the end of the stream and the plaintext digest only at the end.
    Raises FailedPrecondition for erased weights, DataLoss (WeightsTampered) for a
    blob that is missing or does not verify.
    """
    with rt.read() as session:
        row = find_version(session, name, version, "")
        model = session.get(Model, row.model_name)
    require(rt, principal, "model.weights", owned_version(row, model))
    if row.erased or row.wrapped_key is None or row.kek_id is None:
        raise FailedPrecondition(f"the weights of {name}:{row.version} were erased")
    rt.record(Event(principal=principal.id.principal, action="registry.DownloadWeights", resource=version_resource(name, row.version),
                    decision="allow", details={"version_id": row.id, "digest": row.digest, "size": row.size_bytes}))
    try:
        blob = rt.blobs.open(row.blob_digest)
    except NotFound:
        raise DataLoss(f"the sealed weights of {name}:{row.version} are missing from the blob store") from None
    try:
        chunks = open_weights(blob, version_id=row.id, kek_id=row.kek_id, wrapped_key=row.wrapped_key,
                              keyring=keyring, expected_digest=row.digest)
    except BaseException:
        blob.close()
        raise
    return _closing(chunks, blob)


def _closing(chunks: Iterator[bytes], handle: BinaryIO) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        handle.close()


def erase_remains(rt: Runtime, blob_digest: str) -> None:
    """After an erasure committed: the sealed blob goes (its data key is gone already; no
    other version shares a blob), and the database's files keep no copy of the key."""
    rt.blobs.delete(blob_digest)
    if not rt.scrub() and rt.engines.sqlite:
        log.warning("the database's write-ahead log could not be emptied after an erasure (a long reader?); it is retried at the next erasure or start")


def sweep_erased(rt: Runtime) -> int:
    """Finish erasures a crash interrupted (the blob of an erased version still on disk).
    Returns how many blobs were removed."""
    with rt.read() as session:
        digests = list(session.scalars(select(col(ModelVersion.blob_digest)).where(col(ModelVersion.erased).is_(True))))
    left = [d for d in digests if rt.blobs.exists(d)]
    for digest in left:
        erase_remains(rt, digest)
    return len(left)
