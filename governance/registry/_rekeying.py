"""Key-encryption-key rotation, and registering an upload under the current key (private:
the registry's facade runs both).

Why these two live together: they are the two sides of one locking protocol. A version is
only ever registered under the keyring's current key-encryption key, but an upload's data
key is wrapped when sealing starts, so a rotation may overtake it. `rotate_keys` locks the
upload records before the version rows; `registered_key` locks the upload's record and
rewraps its key if a rotation made another key current. Whichever runs second therefore
sees what the first committed: no registered key is left under a retired KEK.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlmodel import Session, col

from privet.governance.audit.log import Event
from privet.governance.crypto import KeyEncryptionKeys, WeightsTampered, rewrap
from privet.governance.errors import FailedPrecondition
from privet.governance.identity.principals import Principal
from privet.governance.runtime import Runtime
from privet.governance.store.registry_tables import ModelUpload, ModelVersion

__all__ = ["registered_key", "rotate_keys"]

log = logging.getLogger("privet.registry")


def registered_key(session: Session, keyring: KeyEncryptionKeys, version_id: str) -> tuple[str, bytes]:
    """The upload's data key, wrapped under the keyring's current key-encryption key.

    Sealing wrapped it when the upload began; a rotation since then made another key
    current and rewrapped only the rows it found, so the key is read from the upload
    record (which a rotation rewraps too), locked, and rewrapped here if it is not under
    the current key. A rotation that makes a key current after the check below rewraps
    in a transaction that locks this record first, so it waits for this one to commit
    and then finds the version row; one before the check is seen by it. (Write units are
    also serialised by the audit log's head lock today; this does not rely on that.)
    Raises FailedPrecondition when the record is gone or its key no longer unwraps.
    """
    upload = session.get(ModelUpload, version_id, with_for_update=True)
    if upload is None:
        raise FailedPrecondition(f"the upload record of version {version_id} is gone (swept as interrupted?); upload the weights again")
    if upload.kek_id == keyring.active_id:
        return upload.kek_id, upload.wrapped_key
    try:
        return rewrap(upload.kek_id, upload.wrapped_key, keyring)
    except WeightsTampered:  # the key file it began under was removed after a rotation
        raise FailedPrecondition(f"the key-encryption key {upload.kek_id} this upload began under is gone; upload the weights again") from None


def rotate_keys(rt: Runtime, keyring: KeyEncryptionKeys, principal: Principal) -> tuple[str, int]:
    """Make a new key-encryption key active and rewrap every live data key under it, those
    of uploads in flight included, audited. Blobs are not touched. Returns (new key id,
    number of versions' keys rewrapped)."""
    new_id = keyring.rotate()
    who = principal.id.principal

    def unit(session: Session) -> int:
        # Upload records first: an upload registering now holds its record's lock, so this
        # waits for it to commit and the version query below then sees its row.
        in_flight = _rewrap_uploads(session, keyring)
        rows = list(session.scalars(select(ModelVersion).where(col(ModelVersion.wrapped_key).is_not(None)).with_for_update()))
        count = 0
        for row in rows:
            assert row.kek_id is not None and row.wrapped_key is not None
            kek_id, wrapped = rewrap(row.kek_id, row.wrapped_key, keyring)
            if (kek_id, wrapped) != (row.kek_id, row.wrapped_key):
                row.kek_id, row.wrapped_key = kek_id, wrapped
                count += 1
        session.flush()
        rt.audit.append(Event(principal=who, action="registry.RotateKeys", resource="keys/kek", decision="allow",
                              details={"active_key": keyring.active_id, "rewrapped": count, "uploads_rewrapped": in_flight}))
        return count

    return new_id, rt.write(unit)


def _rewrap_uploads(session: Session, keyring: KeyEncryptionKeys) -> int:
    """Rewrap the data keys of uploads not yet registered (and of interrupted ones, so
    that the sweep still recognises their blobs once old key files are removed)."""
    count = 0
    for upload in session.scalars(select(ModelUpload).with_for_update()):
        try:
            kek_id, wrapped = rewrap(upload.kek_id, upload.wrapped_key, keyring)
        except WeightsTampered:  # its key file is gone already: its registration fails anyway
            log.warning("the data key of upload %s does not unwrap; left as it is", upload.version_id)
            continue
        if (kek_id, wrapped) != (upload.kek_id, upload.wrapped_key):
            upload.kek_id, upload.wrapped_key = kek_id, wrapped
            count += 1
    session.flush()
    return count
