"""Proof bundles: one event's inclusion (and the log's consistency) proof with its signed
checkpoint, made by the operator (`make_bundle`, `bundle_from_proofs`) and checked by an
auditor with no network (`verify_bundle`, `verify_bundle_json`). Format:
docs/audit-format.md. Nothing in a bundle is trusted: every problem is a failed report.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from privet.governance.audit._evidence import (
    BadEvidence,
    VerifyReport,
    b64decode,
    decode_leaf_evidence,
    first_field_difference,
    open_older,
    open_pair,
)
from privet.governance.audit.checkpoint import Checkpoint, NoteVerifier, peek_checkpoint
from privet.governance.audit.hashing import HASH_SIZE, leaf_hash
from privet.governance.audit.leaf import decode_leaf
from privet.governance.audit.merkle import NodeReader, consistency_proof, inclusion_proof, verify_consistency, verify_inclusion
from privet.governance.errors import DataLoss, InvalidArgument
from privet.governance.jsonlimits import check_json_depth, object_without_duplicates

__all__ = [
    "BUNDLE_FORMAT",
    "MAX_BUNDLE_DEPTH",
    "bundle_from_proofs",
    "make_bundle",
    "parse_bundle",
    "verify_bundle",
    "verify_bundle_json",
]

BUNDLE_FORMAT = "privet.audit.bundle.v1"
# Nesting a bundle file may have before it is parsed at all: a bundle is 3 deep plus its
# event's details, and json.loads recurses once per level.
MAX_BUNDLE_DEPTH = 64


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
        raise BadEvidence(f"{what} must be a list")
    hashes = [b64decode(item, what) for item in value]
    if any(len(h) != HASH_SIZE for h in hashes):
        raise BadEvidence(f"{what} holds a hash that is not {HASH_SIZE} bytes")
    return hashes


def _open_bundle(bundle: object, verifier: NoteVerifier) -> tuple[int, Checkpoint, Checkpoint | None]:
    """Shape checks and checkpoint signatures; returns (index, checkpoint, older)."""
    if not isinstance(bundle, dict):
        raise BadEvidence("bundle is not a JSON object")
    keys = set(bundle)
    if not _REQUIRED_BUNDLE_KEYS <= keys or not keys <= _REQUIRED_BUNDLE_KEYS | _OPTIONAL_BUNDLE_KEYS:
        raise BadEvidence(
            f"bundle keys must be {sorted(_REQUIRED_BUNDLE_KEYS)} plus optional {sorted(_OPTIONAL_BUNDLE_KEYS)}"
        )
    if bundle["format"] != BUNDLE_FORMAT:
        raise BadEvidence(f"bundle format is not {BUNDLE_FORMAT}")
    if ("older_checkpoint" in bundle) != ("consistency_proof" in bundle):
        raise BadEvidence("older_checkpoint and consistency_proof come together")
    index = bundle["index"]
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise BadEvidence("index must be a non-negative integer")
    cp, older = open_pair(bundle["checkpoint"], bundle.get("older_checkpoint"), verifier)
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
            raise BadEvidence(
                f"the tree at size {mine.size} ({_YOURS}) is not a prefix of the tree at size {cp.size}: "
                "the log was rewritten or forked"
            )
        return
    if older is None:
        raise BadEvidence(
            f"the bundle carries no consistency proof, so it cannot show that the log at size {cp.size} extends "
            f"{_YOURS} at size {mine.size}: make the bundle with `privet audit bundle --from` that checkpoint"
        )
    if older.size != mine.size:
        raise BadEvidence(
            f"the bundle's consistency proof starts at size {older.size}, not at the size {mine.size} of {_YOURS}: "
            "make the bundle with `privet audit bundle --from` that checkpoint"
        )
    if older.root_hash != mine.root_hash:
        raise BadEvidence(
            f"two signed checkpoints of size {mine.size} have different roots ({_YOURS} and the bundle's): the log forked"
        )


def _check_bundle_proofs(bundle: dict[str, Any], index: int, cp: Checkpoint, older: Checkpoint | None) -> str:
    """Leaf, readable event, inclusion and consistency; returns the success message."""
    leaf = b64decode(bundle["leaf"], "leaf")
    event = decode_leaf_evidence(leaf, seq=index)
    if event.seq != index:
        raise BadEvidence(f"leaf says seq {event.seq} but the bundle's index is {index}", seq=index)
    if "event" in bundle:
        claimed = bundle["event"]
        difference = first_field_difference(claimed, event) if isinstance(claimed, dict) else "is not an object"
        if difference:
            raise BadEvidence(f"event {difference}", seq=index)
    if index >= cp.size:
        raise BadEvidence(f"seq {index} is beyond the checkpoint's size {cp.size}", seq=index)
    proof = _hash_list(bundle["inclusion_proof"], "inclusion_proof")
    if not verify_inclusion(leaf_hash(leaf), index, cp.size, proof, cp.root_hash):
        raise BadEvidence(
            f"seq {index} is not in the checkpointed tree: the leaf or the inclusion proof was altered", seq=index
        )
    message = f"seq {index} is in the log {cp.origin} at size {cp.size}"
    if older is not None:
        cproof = _hash_list(bundle["consistency_proof"], "consistency_proof")
        if not verify_consistency(older.size, cp.size, older.root_hash, cp.root_hash, cproof):
            raise BadEvidence(
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
    except BadEvidence as bad:
        return VerifyReport(ok=False, message=bad.message)
    try:
        mine = None
        if older_checkpoint_note is not None:
            mine = open_older(older_checkpoint_note, cp, verifier, _YOURS)
            _check_auditors_checkpoint(mine, cp, older)
        message = _check_bundle_proofs(bundle, index, cp, older)
    except BadEvidence as bad:
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
