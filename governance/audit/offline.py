"""What an auditor runs with no network: check an export, or one event's bundle.

Trust comes only from the verifier key the auditor holds. Everything else (the export
lines, the checkpoint notes, the proofs) is evidence handed over by the operator and is
checked, never believed: a problem with it yields a failed `VerifyReport` that names the
first event that does not verify, not an exception. Formats: docs/audit-format.md.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from privet.governance.audit.checkpoint import (
    Checkpoint,
    NoteVerifier,
    open_checkpoint,
    peek_checkpoint,
)
from privet.governance.audit.hashing import HASH_SIZE, leaf_hash
from privet.governance.audit.leaf import EventRecord, decode_leaf
from privet.governance.audit.merkle import (
    MerkleFrontier,
    NodeReader,
    consistency_proof,
    inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from privet.governance.errors import DataLoss, InvalidArgument
from privet.governance.jsonlimits import check_json_depth, object_without_duplicates

__all__ = [
    "BUNDLE_FORMAT",
    "MAX_BUNDLE_DEPTH",
    "VerifyReport",
    "bundle_from_proofs",
    "make_bundle",
    "parse_bundle",
    "verify_bundle",
    "verify_bundle_json",
    "verify_export",
]

BUNDLE_FORMAT = "privet.audit.bundle.v1"
# Nesting a bundle file may have before it is parsed at all: a bundle is 3 deep plus its
# event's details, and json.loads recurses once per level.
MAX_BUNDLE_DEPTH = 64


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


class _BadEvidence(Exception):
    """Internal: one piece of evidence failed; carries what the report should say."""

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


def _b64decode(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise _BadEvidence(f"{what} must be a base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise _BadEvidence(f"{what} is not standard base64") from None


def _canonical(value: Any) -> str:
    # Compares values as the leaf encodes them, so true != 1 and 1 != 1.0.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _first_field_difference(claimed: dict[str, Any], event: EventRecord) -> str | None:
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


def _decode_leaf_evidence(leaf: bytes, seq: int | None = None) -> EventRecord:
    try:
        return decode_leaf(leaf)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        # A crafted leaf may break decode_leaf in any of these ways; all mean "not ours".
        raise _BadEvidence(f"leaf is not a canonical privet.audit.v1 leaf ({exc!r})", seq=seq) from None


def _leaf_of_line(text: str, expected_seq: int) -> bytes:
    """Check one export line that should hold seq `expected_seq`; return its leaf bytes."""
    try:
        check_json_depth(text, field="line")
        obj = json.loads(text, object_pairs_hook=object_without_duplicates)
    except InvalidArgument as exc:
        raise _BadEvidence(f"line is not an event ({exc.message})") from None
    except (ValueError, RecursionError) as exc:
        raise _BadEvidence(f"line is not a JSON object ({exc})") from None
    if not isinstance(obj, dict):
        raise _BadEvidence("line is not a JSON object")
    seq = obj.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise _BadEvidence("line has no integer seq")
    if seq > expected_seq:
        raise _BadEvidence(f"found seq {seq} instead (an event was deleted, or lines reordered)")
    if seq < expected_seq:
        raise _BadEvidence(f"found seq {seq} again (a line was inserted, or lines reordered)")
    leaf = _b64decode(obj.get("leaf"), "leaf")
    event = _decode_leaf_evidence(leaf)
    if event.seq != seq:
        raise _BadEvidence(f"leaf says seq {event.seq} but the line says seq {seq}")
    claimed = {k: v for k, v in obj.items() if k != "leaf"}
    difference = _first_field_difference(claimed, event)
    if difference:
        raise _BadEvidence(difference)
    return leaf


def _open(note: object, verifier: NoteVerifier, label: str) -> Checkpoint:
    if not isinstance(note, (str, bytes)):
        raise _BadEvidence(f"{label} is not text")
    try:
        cp = open_checkpoint(note, verifier)
    except DataLoss as exc:
        raise _BadEvidence(f"{label}: {exc.message}") from None
    except ValueError as exc:
        raise _BadEvidence(f"{label} is malformed: {exc}") from None
    if cp.origin != verifier.name:
        # C2SP: a log's key is named after its origin, so one key vouches for one log.
        raise _BadEvidence(f"{label} is for log {cp.origin!r}, but the key is for log {verifier.name!r} (a log's key name is its origin)")
    return cp


def _open_older(older_note: object, cp: Checkpoint, verifier: NoteVerifier, label: str) -> Checkpoint:
    """Open an older checkpoint of the log `cp` is a head of: same origin, no larger, and
    (at equal size) the same root."""
    older = _open(older_note, verifier, label)
    if older.origin != cp.origin:
        raise _BadEvidence(f"{label} is for log {older.origin!r}, not {cp.origin!r}")
    if older.size > cp.size:
        raise _BadEvidence(f"{label} covers {older.size} events, more than the newer one's {cp.size}")
    if older.size == cp.size and older.root_hash != cp.root_hash:
        raise _BadEvidence(f"two signed checkpoints of size {cp.size} have different roots: the log forked")
    return older


def _open_pair(checkpoint_note: object, older_note: object, verifier: NoteVerifier) -> tuple[Checkpoint, Checkpoint | None]:
    cp = _open(checkpoint_note, verifier, "checkpoint")
    if older_note is None:
        return cp, None
    return cp, _open_older(older_note, cp, verifier, "older checkpoint")


def _suspects(start: int, end: int) -> str:
    if start >= end:
        return "no event could have changed it, so the signed root itself"
    return f"an event with seq in {start}..{end - 1}"


def verify_export(
    lines: Iterable[str | bytes],
    checkpoint_note: str,
    verifier_key: str,
    *,
    older_checkpoint_note: str | None = None,
) -> VerifyReport:
    """Recompute the log from an export and check it against a signed checkpoint.

    Each non-blank line is ``{"seq": N, <EventRecord.as_dict() fields>, "leaf": base64}``.
    Checks, in stream order: seqs run 0, 1, 2, … with no gap, repeat or swap; each line's
    fields equal its decoded canonical leaf; the root recomputed over the first
    older-checkpoint-size events equals the older checkpoint's (so the log only grew); the
    root over the first checkpoint-size events equals the checkpoint's; the export is not
    shorter than the checkpoint. Both notes must be validly signed by `verifier_key`.
    Lines beyond the checkpoint's size are checked for form but are not covered by it (the
    message says how many). Memory is O(log n): only the tree's right edge is kept.

    Requires a well-formed `verifier_key` (raises ValueError otherwise); every problem with
    the evidence is reported, not raised.
    """
    verifier = NoteVerifier.from_text(verifier_key)
    try:
        cp, older = _open_pair(checkpoint_note, older_checkpoint_note, verifier)
    except _BadEvidence as bad:
        return VerifyReport(ok=False, message=bad.message)

    frontier = MerkleFrontier()

    def check_roots_at_current_size() -> None:
        # Every line verified on its own, so only an edit made consistently to a leaf
        # and its fields (or a fork) is left; a root cannot say which event, only a range.
        if older is not None and frontier.size == older.size and frontier.root() != older.root_hash:
            raise _BadEvidence(
                f"the root over the first {older.size} events differs from the older checkpoint's: "
                f"{_suspects(0, older.size)} was altered (leaf and fields edited together), or the log forked",
                bad_range=(0, older.size),
            )
        if frontier.size == cp.size and frontier.root() != cp.root_hash:
            start = older.size if older is not None else 0
            raise _BadEvidence(
                f"the root over the first {cp.size} events differs from the checkpoint's: "
                f"{_suspects(start, cp.size)} was altered (leaf and fields edited together)",
                bad_range=(start, cp.size),
            )

    try:
        check_roots_at_current_size()  # empty trees
        for line_no, raw in enumerate(lines, start=1):
            try:
                text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            except UnicodeDecodeError:
                raise _BadEvidence("line is not UTF-8", seq=frontier.size, line=line_no) from None
            if not text.strip():
                continue  # blank lines carry no event; a blanked event shows up as a seq gap
            try:
                leaf = _leaf_of_line(text, frontier.size)
            except _BadEvidence as bad:
                raise _BadEvidence(bad.message, seq=frontier.size, line=line_no) from None
            frontier.append(leaf)
            check_roots_at_current_size()
        if frontier.size < cp.size:
            raise _BadEvidence(
                f"missing: the export ends after {frontier.size} events but the checkpoint covers "
                f"{cp.size} (events deleted, or the export truncated)",
                seq=frontier.size,
            )
    except _BadEvidence as bad:
        message = bad.message
        if bad.seq is not None:
            where = f"seq {bad.seq}" + (f" (line {bad.line})" if bad.line is not None else "")
            message = f"{where}: {message}"
        return VerifyReport(
            ok=False,
            message=message,
            size=cp.size,
            first_bad_seq=bad.seq,
            first_bad_line=bad.line,
            bad_range=bad.bad_range,
            events=frontier.size,
        )

    message = f"{cp.size} events verify against the checkpoint of {cp.origin} at size {cp.size}"
    if older is not None:
        message += f"; the older checkpoint at size {older.size} is a prefix of it"
    if frontier.size > cp.size:
        message += f"; {frontier.size - cp.size} later events are not covered by this checkpoint"
    return VerifyReport(ok=True, message=message, size=cp.size, events=frontier.size)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def make_bundle(
    *,
    leaf: bytes,
    index: int,
    checkpoint_note: str,
    reader: NodeReader,
    older_checkpoint_note: str | None = None,
) -> dict[str, Any]:
    """A self-contained proof that the event with leaf bytes `leaf` is at `index` in the
    checkpointed log (and, given the auditor's older checkpoint, that the log only grew).

    The proofs are computed from `reader` at the sizes the notes state and checked against
    their roots before returning. Requires: `leaf` is a canonical leaf whose seq is
    `index`; index < the checkpoint's size; the older checkpoint (if any) is no larger and
    of the same origin (ValueError otherwise). Raises DataLoss when the stored tree does not
    reproduce the checkpoint's roots.
    """
    event = decode_leaf(leaf)
    if event.seq != index:
        raise ValueError(f"leaf has seq {event.seq}, not {index}")
    cp = peek_checkpoint(checkpoint_note)
    if not 0 <= index < cp.size:
        raise ValueError(f"index {index} is not below the checkpoint's size {cp.size}")
    proof = inclusion_proof(index, cp.size, reader)
    if not verify_inclusion(leaf_hash(leaf), index, cp.size, proof, cp.root_hash):
        raise DataLoss(f"stored tree does not reproduce the checkpoint root at size {cp.size}")
    consistency: list[bytes] | None = None
    if older_checkpoint_note is not None:
        older = peek_checkpoint(older_checkpoint_note)
        if older.origin != cp.origin or older.size > cp.size:
            raise ValueError("older checkpoint must be of the same log and no larger")
        consistency = consistency_proof(older.size, cp.size, reader)
        if not verify_consistency(older.size, cp.size, older.root_hash, cp.root_hash, consistency):
            raise DataLoss(f"older checkpoint at size {older.size} is not a prefix of the stored tree")
    return bundle_from_proofs(leaf=leaf, index=index, checkpoint_note=checkpoint_note, inclusion=proof, older_checkpoint_note=older_checkpoint_note, consistency=consistency)


def bundle_from_proofs(
    *,
    leaf: bytes,
    index: int,
    checkpoint_note: str,
    inclusion: list[bytes],
    older_checkpoint_note: str | None = None,
    consistency: list[bytes] | None = None,
) -> dict[str, Any]:
    """Assemble a bundle from proofs fetched elsewhere (e.g. from the AuditService).

    Nothing here is trusted: `verify_bundle` checks every part. Requires `leaf` to decode.
    """
    bundle: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "index": index,
        "leaf": _b64(leaf),
        "event": decode_leaf(leaf).as_dict(),
        "inclusion_proof": [_b64(h) for h in inclusion],
        "checkpoint": checkpoint_note,
    }
    if older_checkpoint_note is not None:
        bundle["older_checkpoint"] = older_checkpoint_note
        bundle["consistency_proof"] = [_b64(h) for h in consistency or []]
    return bundle


_REQUIRED_BUNDLE_KEYS = {"format", "index", "leaf", "inclusion_proof", "checkpoint"}
_OPTIONAL_BUNDLE_KEYS = {"event", "older_checkpoint", "consistency_proof"}


def _hash_list(value: object, what: str) -> list[bytes]:
    if not isinstance(value, list):
        raise _BadEvidence(f"{what} must be a list")
    hashes = [_b64decode(item, what) for item in value]
    if any(len(h) != HASH_SIZE for h in hashes):
        raise _BadEvidence(f"{what} holds a hash that is not {HASH_SIZE} bytes")
    return hashes


def _open_bundle(bundle: object, verifier: NoteVerifier) -> tuple[int, Checkpoint, Checkpoint | None]:
    """Shape checks and checkpoint signatures; returns (index, checkpoint, older)."""
    if not isinstance(bundle, dict):
        raise _BadEvidence("bundle is not a JSON object")
    keys = set(bundle)
    if not _REQUIRED_BUNDLE_KEYS <= keys or not keys <= _REQUIRED_BUNDLE_KEYS | _OPTIONAL_BUNDLE_KEYS:
        raise _BadEvidence(
            f"bundle keys must be {sorted(_REQUIRED_BUNDLE_KEYS)} plus optional {sorted(_OPTIONAL_BUNDLE_KEYS)}"
        )
    if bundle["format"] != BUNDLE_FORMAT:
        raise _BadEvidence(f"bundle format is not {BUNDLE_FORMAT}")
    if ("older_checkpoint" in bundle) != ("consistency_proof" in bundle):
        raise _BadEvidence("older_checkpoint and consistency_proof come together")
    index = bundle["index"]
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise _BadEvidence("index must be a non-negative integer")
    cp, older = _open_pair(bundle["checkpoint"], bundle.get("older_checkpoint"), verifier)
    return index, cp, older


_YOURS = "your older checkpoint"


def _check_auditors_checkpoint(mine: Checkpoint, cp: Checkpoint, older: Checkpoint | None) -> None:
    """The auditor's own older checkpoint `mine` (already opened against `cp`) must be a
    prefix of `cp`. At size 0 or at `cp`'s size no proof is needed (it is empty); otherwise
    the bundle must carry the consistency proof from exactly that tree head, which
    `_check_bundle_proofs` then verifies. Without this, a log forked after the auditor's
    checkpoint would pass on the strength of the operator's signature alone."""
    if mine.size in (0, cp.size):
        if not verify_consistency(mine.size, cp.size, mine.root_hash, cp.root_hash, []):
            raise _BadEvidence(
                f"the tree at size {mine.size} ({_YOURS}) is not a prefix of the tree at size {cp.size}: "
                "the log was rewritten or forked"
            )
        return
    if older is None:
        raise _BadEvidence(
            f"the bundle carries no consistency proof, so it cannot show that the log at size {cp.size} extends "
            f"{_YOURS} at size {mine.size}: make the bundle with `privet audit bundle --from` that checkpoint"
        )
    if older.size != mine.size:
        raise _BadEvidence(
            f"the bundle's consistency proof starts at size {older.size}, not at the size {mine.size} of {_YOURS}: "
            "make the bundle with `privet audit bundle --from` that checkpoint"
        )
    if older.root_hash != mine.root_hash:
        raise _BadEvidence(
            f"two signed checkpoints of size {mine.size} have different roots ({_YOURS} and the bundle's): the log forked"
        )


def _check_bundle_proofs(bundle: dict[str, Any], index: int, cp: Checkpoint, older: Checkpoint | None) -> str:
    """Leaf, readable event, inclusion and consistency; returns the success message."""
    leaf = _b64decode(bundle["leaf"], "leaf")
    event = _decode_leaf_evidence(leaf, seq=index)
    if event.seq != index:
        raise _BadEvidence(f"leaf says seq {event.seq} but the bundle's index is {index}", seq=index)
    if "event" in bundle:
        claimed = bundle["event"]
        difference = _first_field_difference(claimed, event) if isinstance(claimed, dict) else "is not an object"
        if difference:
            raise _BadEvidence(f"event {difference}", seq=index)
    if index >= cp.size:
        raise _BadEvidence(f"seq {index} is beyond the checkpoint's size {cp.size}", seq=index)
    proof = _hash_list(bundle["inclusion_proof"], "inclusion_proof")
    if not verify_inclusion(leaf_hash(leaf), index, cp.size, proof, cp.root_hash):
        raise _BadEvidence(
            f"seq {index} is not in the checkpointed tree: the leaf or the inclusion proof was altered", seq=index
        )
    message = f"seq {index} is in the log {cp.origin} at size {cp.size}"
    if older is not None:
        cproof = _hash_list(bundle["consistency_proof"], "consistency_proof")
        if not verify_consistency(older.size, cp.size, older.root_hash, cp.root_hash, cproof):
            raise _BadEvidence(
                f"the tree at size {older.size} is not a prefix of the tree at size {cp.size}: "
                "the log was rewritten or forked, or the consistency proof was altered"
            )
        message += f", which extends the older checkpoint at size {older.size}"
    return message


def verify_bundle(bundle: dict[str, Any], verifier_key: str, *, older_checkpoint_note: str | None = None) -> VerifyReport:
    """Check a bundle from `make_bundle` with no network: the checkpoint signature(s), the
    leaf's canonical form and seq, the readable `event` (if present) against the leaf, the
    inclusion proof, and the consistency proof from the older checkpoint (if present).

    `older_checkpoint_note` is the auditor's own older checkpoint (`--from`): it must be
    signed by `verifier_key`, be of the same log, and be a prefix of the bundle's
    checkpoint, which (unless its size is 0 or the checkpoint's) takes the bundle's
    consistency proof from exactly that tree head; a bundle without one fails.

    Requires a well-formed `verifier_key` (raises ValueError otherwise); every problem with
    the bundle or the older checkpoint is reported, not raised.
    """
    verifier = NoteVerifier.from_text(verifier_key)
    try:
        index, cp, older = _open_bundle(bundle, verifier)
    except _BadEvidence as bad:
        return VerifyReport(ok=False, message=bad.message)
    try:
        mine = None
        if older_checkpoint_note is not None:
            mine = _open_older(older_checkpoint_note, cp, verifier, _YOURS)
            _check_auditors_checkpoint(mine, cp, older)
        message = _check_bundle_proofs(bundle, index, cp, older)
    except _BadEvidence as bad:
        return VerifyReport(ok=False, message=bad.message, size=cp.size, first_bad_seq=bad.seq)
    if mine is not None:
        message += f"; {_YOURS} at size {mine.size} is a prefix of it"
    return VerifyReport(ok=True, message=message, size=cp.size)


def parse_bundle(text: str | bytes) -> Any:
    """Parse a bundle file's JSON, as strictly as an export line: UTF-8, nesting bounded by
    `MAX_BUNDLE_DEPTH` (checked before parsing, in linear time), no duplicate key in any
    object (a reader's eye may stop at the first, json.loads keeps the last).

    Raises ValueError on any of those; the shape is `verify_bundle`'s to judge.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")  # UnicodeDecodeError is a ValueError
    try:
        check_json_depth(text, field="bundle", limit=MAX_BUNDLE_DEPTH)
    except InvalidArgument as exc:
        raise ValueError(exc.description) from None
    return json.loads(text, object_pairs_hook=object_without_duplicates)


def verify_bundle_json(text: str | bytes, verifier_key: str, *, older_checkpoint_note: str | None = None) -> VerifyReport:
    """`parse_bundle` then `verify_bundle`: what `privet audit verify --bundle` runs. A
    bundle file that does not parse is a failed report, not an exception."""
    try:
        bundle = parse_bundle(text)
    except ValueError as exc:
        return VerifyReport(ok=False, message=f"bundle is not acceptable JSON: {exc}")
    return verify_bundle(bundle, verifier_key, older_checkpoint_note=older_checkpoint_note)
