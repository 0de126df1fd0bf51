"""The offline audit verifier keeps its promises (issue 19, item 10).

- `privet audit verify --bundle B --from OLD` honours OLD: a log forked after the auditor's
  checkpoint, signed with the operator's own key, fails however the bundle was made.
- Bundle JSON is read as strictly as an export line: duplicate keys and deep nesting fail.
- The checkpoint's key name is the log origin, each `privet init` picks its own origin, and a
  home from before (origin `privet.local/audit`) keeps working.
(Canonical JSON and lone surrogates: tests/unit/audit/test_canonical_json_spec.py.)
"""

from __future__ import annotations

import base64
import copy
import json
import pathlib
import re
import time

import pytest
from typer.testing import CliRunner

from privet.governance.audit.checkpoint import (
    Checkpoint,
    NoteSigner,
    generate_signer,
    open_checkpoint,
    peek_checkpoint,
    sign_checkpoint,
)
from privet.governance.audit.checkpointer import Checkpointer
from privet.governance.audit.leaf import EventRecord, encode_leaf
from privet.governance.audit.log import Event
from privet.governance.audit.merkle import MemoryNodeStore, root
from privet.governance.audit.offline import (
    MAX_BUNDLE_DEPTH,
    make_bundle,
    parse_bundle,
    verify_bundle,
    verify_bundle_json,
    verify_export,
)
from privet.governance.audit.storage import iter_events, record_of
from privet.governance.bootstrap import LEGACY_AUDIT_ORIGIN, init_home
from privet.governance.config import Home
from privet.governance.runtime import Runtime
from privet.services.cli import app

ORIGIN = "privet.test/audit/promises"
SIGNER_TEXT, KEY = generate_signer(ORIGIN)
SIGNER = NoteSigner.from_text(SIGNER_TEXT)
OLD_SIZE, SIZE, FORKED_SEQ = 10, 30, 3


def _event(seq: int, **changes: object) -> EventRecord:
    fields: dict = {"seq": seq, "time_us": 1_750_000_000_000_000 + seq, "principal": "spiffe://privet.local/user/alice",
                    "action": "registry.ReleaseModelVersion", "resource": f"model/fraud/{seq}", "decision": "allow",
                    "details": {"note": f"event {seq}"}}
    fields.update(changes)
    return EventRecord(**fields)


def _log(events: list[EventRecord]) -> tuple[list[bytes], MemoryNodeStore]:
    leaves = [encode_leaf(e) for e in events]
    store = MemoryNodeStore()
    for leaf in leaves:
        store.append(leaf)
    return leaves, store


def _checkpoint(size: int, store: MemoryNodeStore, signer: NoteSigner = SIGNER, origin: str = ORIGIN) -> str:
    return sign_checkpoint(Checkpoint(origin, size, root(size, store)), signer)


HONEST = [_event(i) for i in range(SIZE)]
HONEST_LEAVES, HONEST_STORE = _log(HONEST)
# What the auditor verified and kept last time: the honest log at size 10.
OLD = _checkpoint(OLD_SIZE, HONEST_STORE)
# The operator rewrites event 3 and re-signs everything with its own key: a fork.
FORKED = [_event(i, principal="spiffe://privet.local/user/mallory") if i == FORKED_SEQ else e for i, e in enumerate(HONEST)]
FORKED_LEAVES, FORKED_STORE = _log(FORKED)
FORKED_CP = _checkpoint(SIZE, FORKED_STORE)


def _bundle(leaves: list[bytes], store: MemoryNodeStore, checkpoint: str, older: str | None = None, index: int = 25) -> dict:
    return make_bundle(leaf=leaves[index], index=index, checkpoint_note=checkpoint, reader=store, older_checkpoint_note=older)


def _cli(*args: str) -> tuple[int, dict | str]:
    result = CliRunner().invoke(app, ["--json", "audit", "verify", *args])
    try:
        return result.exit_code, json.loads(result.output)
    except ValueError:
        return result.exit_code, result.output + repr(result.exception)


def _files(tmp_path: pathlib.Path, bundle: dict | str, old: str = OLD) -> dict[str, str]:
    paths = {"bundle": tmp_path / "b.json", "old": tmp_path / "old-cp.txt", "key": tmp_path / "audit.pub"}
    paths["bundle"].write_text(bundle if isinstance(bundle, str) else json.dumps(bundle, indent=2))
    paths["old"].write_text(old)
    paths["key"].write_text(KEY + "\n")
    return {name: str(path) for name, path in paths.items()}


# --- 1. --from in bundle mode exposes a fork ----------------------------------------------------
FORK_BUNDLES = {
    # made without --from: no consistency proof at all
    "no-proof": lambda: _bundle(FORKED_LEAVES, FORKED_STORE, FORKED_CP),
    # made --from the forked log's own checkpoint at the auditor's size: self-consistent
    "own-older": lambda: _bundle(FORKED_LEAVES, FORKED_STORE, FORKED_CP, older=_checkpoint(OLD_SIZE, FORKED_STORE)),
    # made --from the auditor's checkpoint: the proof cannot join the two trees
    "auditors-older": lambda: _bundle(FORKED_LEAVES, FORKED_STORE, FORKED_CP, older=_checkpoint(OLD_SIZE, FORKED_STORE))
    | {"older_checkpoint": OLD},
}
FORK_MESSAGES = {"no-proof": "carries no consistency proof", "own-older": "the log forked", "auditors-older": "not a prefix"}


@pytest.mark.parametrize("made", sorted(FORK_BUNDLES))
def test_a_fork_after_the_auditors_checkpoint_fails_with_from(made: str) -> None:
    bundle = FORK_BUNDLES[made]()
    if made != "auditors-older":
        # On its own the forked bundle is flawless: every signature is the operator's.
        assert verify_bundle(bundle, KEY).ok
    report = verify_bundle(bundle, KEY, older_checkpoint_note=OLD)
    assert not report.ok, report.message
    assert FORK_MESSAGES[made] in report.message, report.message


@pytest.mark.parametrize("made", sorted(FORK_BUNDLES))
def test_the_cli_honours_from_in_bundle_mode(made: str, tmp_path: pathlib.Path) -> None:
    f = _files(tmp_path, FORK_BUNDLES[made]())
    code, out = _cli("--bundle", f["bundle"], "--key", f["key"], "--from", f["old"])
    assert code == 1 and isinstance(out, dict) and out["ok"] is False, out
    assert FORK_MESSAGES[made] in out["message"]


def test_an_honest_bundle_made_from_the_auditors_checkpoint_passes(tmp_path: pathlib.Path) -> None:
    cp = _checkpoint(SIZE, HONEST_STORE)
    bundle = _bundle(HONEST_LEAVES, HONEST_STORE, cp, older=OLD)
    report = verify_bundle(bundle, KEY, older_checkpoint_note=OLD)
    assert report.ok and "your older checkpoint at size 10 is a prefix of it" in report.message, report.message
    f = _files(tmp_path, bundle)
    code, out = _cli("--bundle", f["bundle"], "--key", f["key"], "--from", f["old"])
    assert code == 0 and out["ok"] is True, out


def test_an_honest_bundle_without_a_proof_from_that_size_fails_clearly() -> None:
    cp = _checkpoint(SIZE, HONEST_STORE)
    report = verify_bundle(_bundle(HONEST_LEAVES, HONEST_STORE, cp), KEY, older_checkpoint_note=OLD)
    assert not report.ok and "privet audit bundle --from" in report.message
    report = verify_bundle(_bundle(HONEST_LEAVES, HONEST_STORE, cp, older=_checkpoint(5, HONEST_STORE)), KEY, older_checkpoint_note=OLD)
    assert not report.ok and "starts at size 5, not at the size 10" in report.message


def test_from_at_size_zero_or_at_the_checkpoints_size_needs_no_proof() -> None:
    cp = _checkpoint(SIZE, HONEST_STORE)
    bundle = _bundle(HONEST_LEAVES, HONEST_STORE, cp)
    assert verify_bundle(bundle, KEY, older_checkpoint_note=_checkpoint(0, HONEST_STORE)).ok
    assert verify_bundle(bundle, KEY, older_checkpoint_note=cp).ok
    # The same size with another root: two signed heads of one size.
    report = verify_bundle(_bundle(FORKED_LEAVES, FORKED_STORE, FORKED_CP), KEY, older_checkpoint_note=cp)
    assert not report.ok and "the log forked" in report.message


def test_the_auditors_checkpoint_is_itself_checked() -> None:
    cp = _checkpoint(SIZE, HONEST_STORE)
    bundle = _bundle(HONEST_LEAVES, HONEST_STORE, cp, older=OLD)
    impostor = NoteSigner.from_text(generate_signer(ORIGIN)[0])
    for older, message in [
        (_checkpoint(OLD_SIZE, HONEST_STORE, signer=impostor), "not signed by"),
        (_checkpoint(SIZE + 1, _log([_event(i) for i in range(SIZE + 1)])[1]), "more than the newer"),
        ("not a note", "malformed"),
    ]:
        report = verify_bundle(bundle, KEY, older_checkpoint_note=older)
        assert not report.ok and report.message.startswith("your older checkpoint") and message in report.message, report.message


def test_the_cli_refuses_a_bundle_with_an_export_or_a_checkpoint(tmp_path: pathlib.Path) -> None:
    f = _files(tmp_path, _bundle(HONEST_LEAVES, HONEST_STORE, _checkpoint(SIZE, HONEST_STORE)))
    code, out = _cli("--bundle", f["bundle"], "--key", f["key"], "--checkpoint", f["old"])
    assert code != 0 and "bundle carries its own checkpoint" in str(out)


# --- 2. bundle JSON: duplicate keys and depth -----------------------------------------------------
HONEST_BUNDLE = _bundle(HONEST_LEAVES, HONEST_STORE, _checkpoint(SIZE, HONEST_STORE), older=OLD)


def _with_duplicate(text: str, where: str, duplicate: str) -> str:
    """Insert `duplicate` (a `"key": value` member) right after the `{` that opens `where`."""
    at = text.index(where) + len(where)
    return text[:at] + duplicate + ", " + text[at:]


DUPLICATES = {
    # a reader who stops at the first "index" sees seq 3, json.loads keeps the last
    "top-level": lambda t: _with_duplicate(t, "{", '"index": 3'),
    "in-event": lambda t: _with_duplicate(t, '"event": {', '"principal": "spiffe://privet.local/user/mallory"'),
    "same-value": lambda t: _with_duplicate(t, "{", f'"format": {json.dumps(HONEST_BUNDLE["format"])}'),
}


@pytest.mark.parametrize("where", sorted(DUPLICATES))
def test_a_bundle_with_a_duplicate_key_is_refused(where: str, tmp_path: pathlib.Path) -> None:
    text = DUPLICATES[where](json.dumps(HONEST_BUNDLE))
    assert verify_bundle(json.loads(text), KEY).ok  # what json.loads makes of it would pass
    report = verify_bundle_json(text, KEY)
    assert not report.ok and "duplicate JSON key" in report.message, report.message
    f = _files(tmp_path, text)
    code, out = _cli("--bundle", f["bundle"], "--key", f["key"])
    assert code == 1 and out["ok"] is False and "duplicate JSON key" in out["message"], out


def test_the_untouched_bundle_file_verifies(tmp_path: pathlib.Path) -> None:
    assert verify_bundle_json(json.dumps(HONEST_BUNDLE, indent=2).encode(), KEY, older_checkpoint_note=OLD).ok
    f = _files(tmp_path, HONEST_BUNDLE)
    code, out = _cli("--bundle", f["bundle"], "--key", f["key"])
    assert code == 0 and out["ok"] is True, out


@pytest.mark.parametrize("depth", [MAX_BUNDLE_DEPTH + 1, 100_000, 2_000_000])
def test_a_deeply_nested_bundle_is_refused_before_parsing(depth: int, tmp_path: pathlib.Path) -> None:
    text = '{"format": ' + "[" * depth + "]" * depth + "}"
    started = time.perf_counter()
    report = verify_bundle_json(text, KEY)
    assert time.perf_counter() - started < 5
    assert not report.ok and f"nested deeper than the limit of {MAX_BUNDLE_DEPTH} levels" in report.message
    if depth < 1000:
        f = _files(tmp_path, text)
        code, out = _cli("--bundle", f["bundle"], "--key", f["key"])
        assert code == 1 and "nested deeper than the limit" in out["message"]


def test_the_depth_check_reads_strings_as_strings() -> None:
    # Brackets, quotes and backslashes inside strings are not structure.
    tricky = '[[[{{{ \\" \\\\" ' + "[" * 200
    events = [_event(i, details={"s": tricky, "t": "\\", "u": '"]]]}}}'}) for i in range(4)]
    leaves, store = _log(events)
    bundle = _bundle(leaves, store, _checkpoint(4, store), index=2)
    assert parse_bundle(json.dumps(bundle)) == bundle
    assert verify_bundle_json(json.dumps(bundle), KEY).ok
    at_limit = "[" * (MAX_BUNDLE_DEPTH - 1) + "]" * (MAX_BUNDLE_DEPTH - 1)
    assert parse_bundle('{"a": ' + at_limit + "}") == {"a": json.loads(at_limit)}
    with pytest.raises(ValueError, match="nested deeper than the limit"):
        parse_bundle('{"a": "\\\\", "b": ' + "[" * MAX_BUNDLE_DEPTH + "]" * MAX_BUNDLE_DEPTH + "}")


def test_a_bundle_file_that_is_not_utf8_or_not_json_is_reported() -> None:
    assert not verify_bundle_json(b'{"format": "\xff"}', KEY).ok
    assert not verify_bundle_json("{", KEY).ok


# --- 3. the key name is the origin; each init its own origin ---------------------------------
_ORIGIN_RE = re.compile(r"privet\.local/audit/[0-9a-f]{16}")


def _key_name(home: Home, name: str) -> str:
    text = (home.keys / name).read_text().strip()
    return NoteSigner.from_text(text).name if name == "audit.key" else text.split("+", 1)[0]


def test_two_inits_get_different_origins_named_by_their_keys(tmp_path: pathlib.Path) -> None:
    homes = [Home(tmp_path / "one"), Home(tmp_path / "two")]
    for home in homes:
        init_home(home)
    origins = [home.settings().audit_origin for home in homes]
    assert origins[0] != origins[1]
    for home, origin in zip(homes, origins):
        assert _ORIGIN_RE.fullmatch(origin), origin
        assert f'origin = "{origin}"' in home.config_path.read_text()
        assert _key_name(home, "audit.key") == origin == _key_name(home, "audit.pub")
    # init is idempotent: the origin and the key stay
    key_before = (homes[0].keys / "audit.key").read_text()
    init_home(homes[0])
    assert homes[0].settings().audit_origin == origins[0] and (homes[0].keys / "audit.key").read_text() == key_before


def test_a_checkpoint_is_signed_with_the_key_named_after_the_origin(tmp_path: pathlib.Path) -> None:
    home = Home(tmp_path / "home")
    init_home(home)
    rt = Runtime.open(home)
    try:
        rt.write(lambda _s: rt.audit.append(Event("user/alice", "x", "r", "allow")))
        note = rt.checkpointer.checkpoint_now().note
    finally:
        rt.close()
    origin = home.settings().audit_origin
    assert note.startswith(origin + "\n")
    assert f"\n\n\u2014 {origin} " in note  # the signature line names the origin
    assert open_checkpoint(note, NoteSigner.from_text((home.keys / "audit.key").read_text()).verifier).origin == origin


def test_a_home_from_before_keeps_its_origin_and_key(tmp_path: pathlib.Path) -> None:
    """privet.toml saying `privet.local/audit` (or nothing) and audit.key named so: unchanged."""
    for variant in ("explicit", "absent"):
        home = Home(tmp_path / variant)
        init_home(home)
        text = re.sub(r'(?m)^origin = ".*"\n', f'origin = "{LEGACY_AUDIT_ORIGIN}"\n' if variant == "explicit" else "", home.config_path.read_text())
        home.config_path.write_text(text)
        signer_text, verifier_text = generate_signer(LEGACY_AUDIT_ORIGIN)
        (home.keys / "audit.key").write_text(signer_text + "\n")
        (home.keys / "audit.pub").write_text(verifier_text + "\n")
        init_home(home)  # re-running init changes nothing of it
        assert home.settings().audit_origin == LEGACY_AUDIT_ORIGIN
        assert (home.keys / "audit.key").read_text() == signer_text + "\n"
        rt = Runtime.open(home)
        try:
            rt.write(lambda _s, rt=rt: rt.audit.append(Event("user/alice", "x", "r", "allow")))
            note = rt.checkpointer.checkpoint_now().note
            with rt.read() as session:
                lines = [json.dumps(record_of(row).as_dict() | {"leaf": base64.b64encode(row.leaf).decode()}) for row in iter_events(session)]
        finally:
            rt.close()
        assert peek_checkpoint(note).origin == LEGACY_AUDIT_ORIGIN
        report = verify_export(lines, note, verifier_text)
        assert report.ok and report.size == 1, report.message


def test_a_restored_key_without_a_toml_keeps_its_origin(tmp_path: pathlib.Path) -> None:
    home = Home(tmp_path / "home")
    home.keys.mkdir(parents=True)
    signer_text, _ = generate_signer("privet.example/restored")
    (home.keys / "audit.key").write_text(signer_text + "\n")
    init_home(home)
    assert home.settings().audit_origin == "privet.example/restored"


def test_a_key_not_named_after_the_origin_stops_the_checkpointer() -> None:
    with pytest.raises(ValueError, match="key name must be its origin"):
        Checkpointer(None, SIGNER, "privet.test/audit/other", every_events=1, every_seconds=1)


def test_verification_refuses_a_checkpoint_whose_origin_is_not_the_key_name() -> None:
    _, store = _log(HONEST[:5])
    elsewhere = _checkpoint(5, store, origin="privet.test/audit/elsewhere")  # the right key, another log's name
    report = verify_export([], elsewhere, KEY)
    assert not report.ok and "is for log 'privet.test/audit/elsewhere', but the key is for log" in report.message
    bundle = make_bundle(leaf=encode_leaf(HONEST[2]), index=2, checkpoint_note=elsewhere, reader=store)
    report = verify_bundle(copy.deepcopy(bundle), KEY)
    assert not report.ok and "is for log" in report.message
