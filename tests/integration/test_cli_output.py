"""The `privet` command against real servers: one JSON shape per object across commands, what
k cost said in words, errors as JSON objects, `audit events` newest first with seq 0."""

from __future__ import annotations

import json
import pathlib

import pytest

from privet.services.cli.app import main


def _run(capsys: pytest.CaptureFixture[str], home: pathlib.Path, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as ended:
        main(["--home", str(home), *args])
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(ended.value.code or 0), out.out, out.err


def _shape(value):  # type: ignore[no-untyped-def]
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return "list" if isinstance(value, list) else type(value).__name__


def test_cli_output_against_servers(served, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = served.home.root
    data = tmp_path / "people.csv"
    data.write_text("age,zip,spend\n" + "".join(f"{20 + i % 50},{10000 + i * 7},{i % 13}\n" for i in range(60)))
    code, out, err = _run(capsys, home, "--as", "alice", "ingest", str(data), "--name", "people", "--quasi-identifiers", "age,zip", "--k", "30", "--personal")
    assert code == 0, err
    code, shown, err = _run(capsys, home, "--as", "alice", "--json", "datasets", "show", "people")
    assert code == 0, err
    code, listed, _ = _run(capsys, home, "--as", "alice", "--json", "datasets", "list")
    one, many = json.loads(shown), json.loads(listed)
    assert {k: v for k, v in _shape(one).items() if k != "ledger"} == {k: v for k, v in _shape(many[0]).items() if k != "ledger"}
    assert isinstance(one["rows"], int) and one["created_at"].endswith("Z") and one["ledger"][0]["time"].endswith("Z")
    if one["report"]["suppressed_columns"] or one["report"]["suppressed_rows"]:
        code, _, err = _run(capsys, home, "--as", "alice", "datasets", "show", "people")
        assert "warning: k=30" in " ".join(err.split())
    # An error from the server, as one JSON object naming the field.
    code, out, _ = _run(capsys, home, "--as", "alice", "--json", "ingest", str(data), "--name", "people2", "--epsilon", "-1")
    error = json.loads(out)["error"]
    assert code == 1 and error["code"] == "INVALID_ARGUMENT" and error["field"] == "header.epsilon_budget"
    code, out, _ = _run(capsys, home, "--as", "alice", "--json", "datasets", "show", "nobody-knows")
    assert code == 1 and json.loads(out)["error"]["code"] in ("NOT_FOUND", "PERMISSION_DENIED")
    # Newest first, every event with its time; seq 0 is printed, not dropped.
    code, out, err = _run(capsys, home, "--as", "carol", "--json", "audit", "events", "--limit", "1000")
    assert code == 0, err
    events = json.loads(out)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs, reverse=True) and seqs[-1] == 0 and all(e["time"].endswith("Z") for e in events)
    code, out, _ = _run(capsys, home, "--as", "carol", "--json", "audit", "events", "--resource", "dataset/*", "--since", "1h")
    assert code == 0 and json.loads(out) and all(e["resource"].startswith("dataset/") for e in json.loads(out))
