"""Evidence an operator hands an auditor, read and checked (private: `offline` and `bundles`
share it). Why apart: an export and a bundle are checked by the same rules (base64 fields,
canonical leaves, checkpoint notes opened against the auditor's key, an older checkpoint
that must be a prefix), and every failure is a `BadEvidence` that becomes a failed
`VerifyReport`, never an exception the auditor sees.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from privet.governance.audit.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from privet.governance.audit.leaf import EventRecord, decode_leaf
from privet.governance.errors import DataLoss

__all__ = [
    "BadEvidence",
    "VerifyReport",
    "b64decode",
    "decode_leaf_evidence",
    "first_field_difference",
    "open_note",
    "open_older",
    "open_pair",
]


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of an offline check.

    `size` is the tree size of the signed checkpoint (None when it could not be opened).
    On failure `first_bad_seq` (and, for exports, the 1-based `first_bad_line`) name the
    first event that does not verify when that can be determined; when only a root differs
    the altered event cannot be pinpointed and `bad_range` gives the half-open seq range
    [start, end) that contains it. `events` counts the export lines read.
    """

    ok: bool
    message: str
    size: int | None = None
    first_bad_seq: int | None = None
    first_bad_line: int | None = None
    bad_range: tuple[int, int] | None = None
    events: int = 0


class BadEvidence(Exception):
    """One piece of evidence failed; carries what the report should say."""

    def __init__(
        self,
        message: str,
        *,
        seq: int | None = None,
        line: int | None = None,
        bad_range: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.seq = seq
        self.line = line
        self.bad_range = bad_range


def b64decode(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise BadEvidence(f"{what} must be a base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise BadEvidence(f"{what} is not standard base64") from None


def _canonical(value: Any) -> str:
    # Compares values as the leaf encodes them, so true != 1 and 1 != 1.0.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def first_field_difference(claimed: dict[str, Any], event: EventRecord) -> str | None:
    """The name of the first field (in sorted order) where `claimed` and the leaf disagree."""
    truth = event.as_dict()
    for name in sorted(set(claimed) | set(truth)):
        if name not in claimed:
            return f"field {name!r} is missing"
        if name not in truth:
            return f"field {name!r} is not in the leaf"
        if _canonical(claimed[name]) != _canonical(truth[name]):
            return f"field {name!r} differs from the leaf"
    return None


def decode_leaf_evidence(leaf: bytes, seq: int | None = None) -> EventRecord:
    try:
        return decode_leaf(leaf)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        # A crafted leaf may break decode_leaf in any of these ways; all mean "not ours".
        raise BadEvidence(f"leaf is not a canonical privet.audit.v1 leaf ({exc!r})", seq=seq) from None


def open_note(note: object, verifier: NoteVerifier, label: str) -> Checkpoint:
    if not isinstance(note, (str, bytes)):
        raise BadEvidence(f"{label} is not text")
    try:
        cp = open_checkpoint(note, verifier)
    except DataLoss as exc:
        raise BadEvidence(f"{label}: {exc.message}") from None
    except ValueError as exc:
        raise BadEvidence(f"{label} is malformed: {exc}") from None
    if cp.origin != verifier.name:
        # C2SP: a log's key is named after its origin, so one key vouches for one log.
        raise BadEvidence(f"{label} is for log {cp.origin!r}, but the key is for log {verifier.name!r} (a log's key name is its origin)")
    return cp


def open_older(older_note: object, cp: Checkpoint, verifier: NoteVerifier, label: str) -> Checkpoint:
    """Open an older checkpoint of the log `cp` is a head of: same origin, no larger, and
    (at equal size) the same root."""
    older = open_note(older_note, verifier, label)
    if older.origin != cp.origin:
        raise BadEvidence(f"{label} is for log {older.origin!r}, not {cp.origin!r}")
    if older.size > cp.size:
        raise BadEvidence(f"{label} covers {older.size} events, more than the newer one's {cp.size}")
    if older.size == cp.size and older.root_hash != cp.root_hash:
        raise BadEvidence(f"two signed checkpoints of size {cp.size} have different roots: the log forked")
    return older


def open_pair(checkpoint_note: object, older_note: object, verifier: NoteVerifier) -> tuple[Checkpoint, Checkpoint | None]:
    cp = open_note(checkpoint_note, verifier, "checkpoint")
    if older_note is None:
        return cp, None
    return cp, open_older(older_note, cp, verifier, "older checkpoint")
