"""`privet audit report`: a page built only from a verified log, whose numbers match the log,
and which a real browser renders.

The log comes from the real path: `privet demo`, then `privet demo --keep`, on a fresh home
(`demo_runs`, which test_demo checks: ingest, DP training, release with an approval,
inference, denials, twice), whose services stay up for the report.
"""

from __future__ import annotations

import base64
import html
import json
import pathlib
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from privet.governance.audit.checkpoint import Checkpoint, NoteVerifier, generate_signer, open_checkpoint
from privet.governance.audit.leaf import EventRecord, decode_leaf
from privet.governance.audit.report import render_report
from tests.conftest import DemoRuns

SECTIONS = ("lineage", "ledger", "denials", "checkpoint")


def _privet(home: pathlib.Path, *args: str, principal: str = "carol", timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "privet.services.cli", "--home", str(home), "--as", principal, *args], check=False, capture_output=True, text=True, timeout=timeout)


class _Elements(HTMLParser):
    """Every start tag with its attributes, plus the text of <pre id="checkpoint-note">."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.note = ""
        self._in_note = False

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.elements.append((tag, a))
        self._in_note = a.get("id") == "checkpoint-note"

    def handle_endtag(self, tag):
        self._in_note = False

    def handle_data(self, data):
        if self._in_note:
            self.note += data

    def by_id(self, element_id: str) -> dict[str, str]:
        return next(a for _, a in self.elements if a.get("id") == element_id)

    def with_class(self, cls: str) -> list[dict[str, str]]:
        return [a for _, a in self.elements if cls in a.get("class", "").split()]


@pytest.fixture(scope="module")
def reported(demo_runs: DemoRuns) -> Iterator[dict]:
    home, root = demo_runs.home, demo_runs.root
    try:
        for demo in demo_runs.runs:
            assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        assert len(demo_runs.runs) == 2
        out = root / "report.html"
        result = _privet(home.root, "audit", "report", "--out", str(out))
        assert result.returncode == 0, result.stdout + result.stderr
        export = root / "events.jsonl"  # the log as the auditor's own export sees it, after the report
        assert _privet(home.root, "audit", "export", "--out", str(export)).returncode == 0
        yield {"home": home, "root": root, "out": out, "export": export}
    finally:
        demo_runs.stop()


def test_report_numbers_match_the_log(reported: dict) -> None:
    page = _Elements()
    page.feed(reported["out"].read_text(encoding="utf-8"))
    home = reported["home"]

    # (4) The checkpoint on the page is genuinely signed by the log key and is what the
    # report's events were verified against.
    cp_attrs = page.by_id("checkpoint")
    assert cp_attrs["data-verified"] == "true"
    cp = open_checkpoint(page.note, NoteVerifier.from_text((home.keys / "audit.pub").read_text()))
    size = cp.size
    assert int(cp_attrs["data-size"]) == size and cp_attrs["data-root-hash"] == cp.root_hash.hex() and cp_attrs["data-origin"] == cp.origin
    assert int(page.by_id("report")["data-events"]) == size

    lines = [json.loads(line) for line in reported["export"].read_text().splitlines() if line.strip()]
    events = [decode_leaf(base64.b64decode(line["leaf"])) for line in lines][:size]
    assert [e.seq for e in events] == list(range(size))

    # (2) ε spent per dataset = the sum of its privacy.charge events; total = its privacy.open.
    charges: dict[str, Decimal] = defaultdict(Decimal)
    totals: dict[str, Decimal] = {}
    for e in events:
        if e.action == "privacy.charge":
            charges[e.details["dataset_id"]] += Decimal(e.details["epsilon"])
        elif e.action == "privacy.open":
            totals[e.details["dataset_id"]] = Decimal(e.details["epsilon"])
    datasets = {a["data-dataset-id"]: a for a in page.with_class("dataset")}
    assert set(datasets) == set(totals)
    for dataset_id, attrs in datasets.items():
        assert Decimal(attrs["data-epsilon-spent"]) == charges[dataset_id], dataset_id
        assert Decimal(attrs["data-epsilon-total"]) == totals[dataset_id]
    assert any(charges.values()), "the demo should have spent some ε"
    charge_rows = [a for a in page.with_class("ledger-entry") if a["data-kind"] == "charge"]
    assert sum(Decimal(a["data-epsilon"]) for a in charge_rows) == sum(charges.values())
    assert all(a.get("data-points") for a in page.with_class("epsilon-chart"))

    # (3) Denials by principal = deny events by principal.
    denied = Counter(e.principal for e in events if e.decision == "deny")
    assert denied, "the demo makes denied calls"
    assert {a["data-principal"]: int(a["data-deny-events"]) for a in page.with_class("denial")} == dict(denied)
    policies = {a["data-policy-id"] for a in page.with_class("policy")}
    assert {p for e in events if e.decision == "deny" for p in e.policy_ids} <= policies

    # (1) The released model's lineage: weights digest, raw data digest, ε of its job, approvals, release.
    created = {e.details["version_id"]: e for e in events if e.action == "registry.CreateModelVersion"}
    released = [e for e in events if e.action == "registry.ReleaseModelVersion" and e.decision == "allow"]
    models = page.with_class("model")
    assert len(models) == len(released) >= 1
    for m in models:
        version = created[m["data-version-id"]]
        lineage = version.details["lineage"]
        assert m["data-weights-digest"] == version.details["digest"]
        raw = next(e.details["raw_digest"] for e in events if e.action == "ingestion.CreateDataset" and e.details["dataset_id"] == lineage["dataset_id"])
        assert m["data-raw-digest"] == raw
        job_charges = sum((Decimal(e.details["epsilon"]) for e in events if e.action == "privacy.charge" and e.details["job_id"] == lineage["training_job_id"]), Decimal(0))
        assert Decimal(m["data-epsilon-spent"]) == job_charges > 0
        approvers = [e.principal for e in events if e.action == "registry.ApproveRelease" and e.decision == "allow" and e.details.get("version_id") == m["data-version-id"]]
        assert int(m["data-approvals"]) == len(approvers) >= 1
        assert m["data-released-by"] == next(e.principal for e in released if e.details["version_id"] == m["data-version-id"])


def test_report_is_refused_when_the_log_does_not_verify(reported: dict) -> None:
    _, other_key = generate_signer("privet.local/audit")  # same name, another key: not the log's
    key = reported["root"] / "other.pub"
    key.write_text(other_key + "\n")
    out = reported["root"] / "refused.html"
    result = _privet(reported["home"].root, "audit", "report", "--out", str(out), "--key", str(key))
    assert result.returncode == 1
    assert "not verified, no report written" in result.stdout and "not signed by" in result.stdout
    assert not out.exists() and not out.with_name(out.name + ".part").exists()


def _chromium() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def test_report_renders_in_headless_chromium(reported: dict, tmp_path: pathlib.Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium: install Debian's `chromium` package (`.ci/run` does)")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    url = reported["out"].resolve().as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], check=False, capture_output=True, text=True, timeout=60)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for section in SECTIONS:
        assert f'id="{section}"' in dom.stdout, section
    assert "<svg" in dom.stdout and "verified offline" in dom.stdout and "customers-mlp:1" in dom.stdout
    shot = tmp_path / "report.png"
    taken = subprocess.run([*flags, "--window-size=1200,2000", f"--screenshot={shot}", url], check=False, capture_output=True, text=True, timeout=60)
    assert taken.returncode == 0, taken.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000  # a blank page is a few KB


# -- the pure renderer, on hostile content (no servers) -------------------------------------
def _event(seq: int, principal: str, action: str, resource: str, decision: str = "allow", policy_ids: tuple[str, ...] = (), **details: object) -> EventRecord:
    return EventRecord(seq=seq, time_us=1_800_000_000_000_000 + seq * 1_000_000, principal=principal, action=action, resource=resource, decision=decision, policy_ids=policy_ids, details=details)


def test_every_value_from_the_log_is_escaped() -> None:
    evil = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    events = [
        _event(0, "user/alice", "privacy.open", "dataset/d1", dataset_id="d1", job_id="", epsilon="8.0"),
        _event(1, "user/alice", "ingestion.CreateDataset", f"dataset/{evil}", dataset_id="d1", raw_digest=evil, digest="ab", profile=evil, profile_digest="cd", k=5),
        _event(2, "user/alice", "privacy.reserve", "dataset/d1", dataset_id="d1", job_id=evil, epsilon="3.0"),
        _event(3, "service/training", "registry.CreateModelVersion", f"model/{evil}/1", version_id="v1", digest=evil, provenance="established", lineage={"dataset_id": "d1", "training_job_id": evil}),
        _event(4, "service/training", "privacy.charge", "dataset/d1", dataset_id="d1", job_id=evil, epsilon="2.5", accountant=evil, noise_multiplier="1.1", sample_rate="0.01", steps=10),
        _event(5, "user/dana", "registry.ApproveRelease", f"model/{evil}/1", version_id="v1", note=evil),
        _event(6, "user/bob", "registry.ReleaseModelVersion", f"model/{evil}/1", version_id="v1"),
        _event(7, f"user/{evil}", "inference.ModelInfer", "model/x:1", "deny", (evil,), requests=4),
    ]
    cp = Checkpoint("privet.local/audit", len(events), b"\x00" * 32)
    page = render_report(events, cp, note=f"{evil}\n", verified_message=evil, verifier=evil, generated_at_us=1_800_000_100_000_000)
    lowered = page.lower()
    assert "<script" not in lowered and "<img" not in lowered  # only as text: &lt;script&gt;
    assert html.escape(evil, quote=True) in page
    parsed = _Elements()
    parsed.feed(page)
    assert parsed.with_class("denial")[0]["data-principal"] == f"user/{evil}"  # the attribute round-trips intact
    assert parsed.with_class("denial")[0]["data-deny-requests"] == "4"
    assert parsed.with_class("model")[0]["data-epsilon-spent"] == "2.5"
    assert parsed.with_class("dataset")[0]["data-epsilon-reserved"] == "0.5"  # 3 reserved, 2.5 charged, no release yet
    with pytest.raises(ValueError):
        render_report(events[:-1], cp, note="", verified_message="", verifier="", generated_at_us=0)  # not the checkpointed prefix
