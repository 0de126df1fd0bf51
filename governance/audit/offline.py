"""What an auditor runs with no network: check an export, or one event's bundle.

Trust comes only from the verifier key the auditor holds. Everything else (the export
lines, the checkpoint notes, the proofs) is evidence handed over by the operator and is
checked, never believed: a problem with it yields a failed `VerifyReport` that names the
first event that does not verify, not an exception. Formats: docs/audit-format.md.

An export is checked here (`verify_export`); bundles are made and checked in `bundles`
(re-exported here, the path callers use), by the shared rules of `_evidence`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from privet.governance.audit._evidence import (
    BadEvidence,
    VerifyReport,
    b64decode,
    decode_leaf_evidence,
    first_field_difference,
    open_pair,
)
from privet.governance.audit.bundles import (
    BUNDLE_FORMAT,
    MAX_BUNDLE_DEPTH,
    bundle_from_proofs,
    make_bundle,
    parse_bundle,
    verify_bundle,
    verify_bundle_json,
)
from privet.governance.audit.checkpoint import NoteVerifier
from privet.governance.audit.merkle import MerkleFrontier
from privet.governance.errors import InvalidArgument
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


def _leaf_of_line(text: str, expected_seq: int) -> bytes:
    """Check one export line that should hold seq `expected_seq`; return its leaf bytes."""
    try:
        check_json_depth(text, field="line")
        obj = json.loads(text, object_pairs_hook=object_without_duplicates)
    except InvalidArgument as exc:
        raise BadEvidence(f"line is not an event ({exc.message})") from None
    except (ValueError, RecursionError) as exc:
        raise BadEvidence(f"line is not a JSON object ({exc})") from None
    if not isinstance(obj, dict):
        raise BadEvidence("line is not a JSON object")
    seq = obj.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise BadEvidence("line has no integer seq")
    if seq > expected_seq:
        raise BadEvidence(f"found seq {seq} instead (an event was deleted, or lines reordered)")
    if seq < expected_seq:
        raise BadEvidence(f"found seq {seq} again (a line was inserted, or lines reordered)")
    leaf = b64decode(obj.get("leaf"), "leaf")
    event = decode_leaf_evidence(leaf)
    if event.seq != seq:
        raise BadEvidence(f"leaf says seq {event.seq} but the line says seq {seq}")
    claimed = {k: v for k, v in obj.items() if k != "leaf"}
    difference = first_field_difference(claimed, event)
    if difference:
        raise BadEvidence(difference)
    return leaf


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
        cp, older = open_pair(checkpoint_note, older_checkpoint_note, verifier)
    except BadEvidence as bad:
        return VerifyReport(ok=False, message=bad.message)

    frontier = MerkleFrontier()

    def check_roots_at_current_size() -> None:
        # Every line verified on its own, so only an edit made consistently to a leaf
        # and its fields (or a fork) is left; a root cannot say which event, only a range.
        if older is not None and frontier.size == older.size and frontier.root() != older.root_hash:
            raise BadEvidence(
                f"the root over the first {older.size} events differs from the older checkpoint's: "
                f"{_suspects(0, older.size)} was altered (leaf and fields edited together), or the log forked",
                bad_range=(0, older.size),
            )
        if frontier.size == cp.size and frontier.root() != cp.root_hash:
            start = older.size if older is not None else 0
            raise BadEvidence(
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
                raise BadEvidence("line is not UTF-8", seq=frontier.size, line=line_no) from None
            if not text.strip():
                continue  # blank lines carry no event; a blanked event shows up as a seq gap
            try:
                leaf = _leaf_of_line(text, frontier.size)
            except BadEvidence as bad:
                raise BadEvidence(bad.message, seq=frontier.size, line=line_no) from None
            frontier.append(leaf)
            check_roots_at_current_size()
        if frontier.size < cp.size:
            raise BadEvidence(
                f"missing: the export ends after {frontier.size} events but the checkpoint covers "
                f"{cp.size} (events deleted, or the export truncated)",
                seq=frontier.size,
            )
    except BadEvidence as bad:
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
