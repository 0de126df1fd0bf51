"""The compliance report: a verified audit log rendered as one self-contained HTML page.

Pure: events and the checkpoint they were verified against in, an HTML string out; no
network, no clock (the caller passes the generation time), no files. The page holds no
script and loads nothing (a Content-Security-Policy says so to the browser), charts are
inline SVG, and every value taken from the log goes through `html.escape`, because the log
records what principals sent and a principal may be hostile.

The facts come from `summary.summarise` (lineage, ledgers, denials; re-exported here); this
module only renders them, with the checkpoint and the verification result. Only an
established version's lineage is shown as fact (its ε, dataset and trainer); a claimed
one's appears labelled as the uploader's claim.

Key numbers carry ``data-*`` attributes (see the `data-` names below) so that tests and
scripts can read the page without scraping prose.
"""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from privet.governance.audit.checkpoint import Checkpoint
from privet.governance.audit.leaf import EventRecord
from privet.governance.audit.summary import (
    AuditSummary,
    DatasetLedger,
    Denials,
    LedgerEntry,
    ModelLineage,
    as_text,
    summarise,
)

__all__ = ["AuditSummary", "DatasetLedger", "Denials", "LedgerEntry", "ModelLineage", "render_report", "summarise"]


# -- formatting ---------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(as_text(value), quote=True)


def _eps(value: Decimal | None) -> str:
    if value is None:
        return "unknown"
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".") or "0"


def _when(time_us: int | None) -> str:
    if time_us is None:
        return "—"
    try:
        moment = _dt.datetime.fromtimestamp(time_us / 1_000_000, tz=_dt.UTC)
    except (OverflowError, OSError, ValueError):
        return f"{time_us} µs since the epoch"  # outside what datetime can show; still say it
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _digest(value: str) -> str:
    if not value:
        return '<span class="missing">not in the log</span>'
    return f'<code class="digest" title="{_e(value)}">{_e(value)}</code>'


def _missing(text: str) -> str:
    return f'<span class="missing">{_e(text)}</span>'


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2433;margin:0;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 12px;border-bottom:2px solid #d8dde6;padding-bottom:4px}
h3{font-size:16px;margin:0 0 8px}
.meta{color:#5b6478}.card{background:#fff;border:1px solid #d8dde6;border-radius:8px;padding:16px;margin:12px 0}
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e6e9ef;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
pre{background:#f0f2f5;padding:8px;border-radius:6px;white-space:pre-wrap;word-break:break-all;font-size:12px}
ol.chain{list-style:none;padding:0;margin:0}ol.chain li{position:relative;padding:6px 10px 6px 14px;margin:0 0 14px;border-left:4px solid #4b6cb7;background:#f8f9fc}
ol.chain li:not(:last-child)::after{content:"\\2193";position:absolute;left:-12px;bottom:-17px;color:#4b6cb7;font-weight:700}
.label{display:inline-block;min-width:150px;font-weight:600}
.ok{color:#13653f;font-weight:700}.bad{color:#a1191f;font-weight:700}.missing{color:#a15c00;font-style:italic}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;background:#e3f4ea;color:#13653f;font-weight:600}
.badge.revoked{background:#fde7e8;color:#a1191f}
svg.epsilon-chart{background:#fff;border:1px solid #e6e9ef;border-radius:6px;max-width:100%;height:auto}
"""


# -- sections -----------------------------------------------------------------------------
def _lineage_section(summary: AuditSummary) -> str:
    released = summary.released
    parts = [f'<section id="lineage" data-released-models="{len(released)}"><h2>1. Released models and their lineage</h2>']
    if not released:
        parts.append('<p class="meta">No model version was released in the verified log.</p>')
    for m in released:
        established = m.provenance == "established"
        # A claimed lineage is the uploader's word: nothing of the data or its ledger is
        # attributed to the version as fact.
        ds = summary.datasets.get(m.dataset_id) if established else None
        charges = [x for x in (ds.entries if ds else []) if x.kind == "charge" and x.job_id == m.job_id and m.job_id]
        spent = sum((x.epsilon for x in charges), Decimal(0))
        mechanism = "; ".join(
            f"{x.accountant or 'accountant?'}: σ {x.noise_multiplier or '?'}, q {x.sample_rate or '?'}, {x.steps if x.steps is not None else '?'} steps" for x in charges
        )
        status = f'<span class="badge revoked">revoked {_e(_when(m.revoked[1]))} by {_e(m.revoked[0])}</span>' if m.revoked else '<span class="badge">released</span>'
        status += ' <span class="badge" data-field="provenance">established</span>' if established else ' <span class="badge revoked" data-field="provenance">claimed</span>'
        claim = (f'claimed by {_e(m.registered_by)}, not established: dataset <code>{_e(m.dataset_id) or "?"}</code>, job <code>{_e(m.job_id) or "?"}</code>'
                 + (f", trained by {_e(m.trained_by)}" if m.trained_by else ""))
        raw = _digest(ds.raw_digest) if ds else (_missing(claim) if not established else _missing("dataset not in the log"))
        if ds is None:
            masking = _missing("dataset not in the log" if established else "claimed lineage: not established")
        else:
            masking = f'profile <strong data-field="profile">{_e(ds.profile) or "?"}</strong>, digest {_digest(ds.profile_digest)}' + (f", k = {_e(ds.k)}" if ds.k is not None else "")
            masking += f"<br>masked data digest {_digest(ds.digest)}"
            if m.dataset_digest and ds.digest and m.dataset_digest != ds.digest:
                masking += '<br><span class="bad">the model\'s lineage names a different dataset digest: ' + _e(m.dataset_digest) + "</span>"
        total = ds.epsilon_total if ds else None
        budget = f'<strong data-field="epsilon-spent" data-value="{_e(_eps(spent))}">ε {_e(_eps(spent))}</strong> of the budget ε {_e(_eps(total))}'
        budget += f' of dataset <strong>{_e(ds.name or ds.dataset_id)}</strong>' if ds else ""
        budget += f" by job <code>{_e(m.job_id)}</code>" if m.job_id else ""
        budget += f"<br><span class=\"meta\">{_e(mechanism)}</span>" if mechanism else "<br>" + _missing("no privacy.charge for this job in the log")
        if not established:
            budget = _missing("claimed lineage: no privacy budget is attributed to this version")
        trainer = (f", trained by {_e(m.trained_by)}" if established else f", trainer claimed: {_e(m.trained_by)}") if m.trained_by else ""
        weights = f"{_digest(m.weights_digest)}<br><span class=\"meta\">registered by {_e(m.registered_by)} at {_e(_when(m.registered_us))}" + trainer + "</span>"
        for flag in summary.flags(m):
            weights += f'<br><span class="bad" data-field="flag">{_e(flag)}</span>'

        if m.served_digests - {m.weights_digest}:
            weights += '<br><span class="bad">inference served other weights digests: ' + _e(", ".join(sorted(m.served_digests - {m.weights_digest}))) + "</span>"
        approvals = "".join(
            f'<div class="approval" data-approver="{_e(who)}">{_e(who)} at {_e(_when(when))}' + (f" — “{_e(note)}”" if note else "") + "</div>" for who, when, note in m.approvals
        ) or _missing("no approval in the log")
        if m.requested:
            approvals = f'<div class="meta">requested by {_e(m.requested[0])} at {_e(_when(m.requested[1]))}</div>' + approvals
        assert m.released is not None  # `summary.released` holds released versions only
        who, when = m.released
        release = f'<span data-field="released-by">{_e(who)}</span> at {_e(_when(when))}; {_e(m.requests_served)} inference request(s) served'
        parts.append(
            f'<article class="card model" id="model-{_e(m.version_id)}" data-model="{_e(m.ref)}" data-version-id="{_e(m.version_id)}" '
            f'data-dataset-id="{_e(m.dataset_id)}" data-job-id="{_e(m.job_id)}" data-epsilon-spent="{_e(_eps(spent))}" '
            f'data-weights-digest="{_e(m.weights_digest)}" data-raw-digest="{_e(ds.raw_digest if ds else "")}" data-approvals="{len(m.approvals)}" '
            f'data-released-by="{_e(who)}" data-provenance="{_e(m.provenance)}" data-flags="{len(summary.flags(m))}"><h3>{_e(m.ref)} {status}</h3><ol class="chain">'
            f'<li><span class="label">Raw data</span>{raw}</li>'
            f'<li><span class="label">Masking recipe</span>{masking}</li>'
            f'<li><span class="label">ε spent</span>{budget}</li>'
            f'<li><span class="label">Weights</span>{weights}</li>'
            f'<li><span class="label">Approvals</span>{approvals}</li>'
            f'<li><span class="label">Release</span>{release}</li></ol></article>'
        )
    parts.append("</section>")
    return "".join(parts)


def _chart(ledger: DatasetLedger) -> str:
    """Cumulative ε charged over time as a step line, with the budget as a dashed line."""
    width, height, left, right, top, bottom = 640, 220, 56, 16, 16, 36
    charges = [x for x in ledger.entries if x.kind == "charge"]
    start = ledger.opened_us if ledger.opened_us is not None else min((x.time_us for x in ledger.entries), default=0)
    end = max([start] + [x.time_us for x in ledger.entries])
    span = max(end - start, 1)
    total = ledger.epsilon_total or Decimal(0)
    top_value = max([total, Decimal(1) if not total else Decimal(0)] + [v for _, v in ledger.committed_series()])

    def x(t: int) -> float:
        return left + (width - left - right) * (t - start) / span

    def y(value: Decimal) -> float:
        return top + (height - top - bottom) * (1 - float(value / top_value))

    path, cumulative, points = [f"M{x(start):.1f},{y(Decimal(0)):.1f}"], Decimal(0), []
    for c in charges:
        cumulative += c.epsilon
        path.append(f"H{x(c.time_us):.1f}V{y(cumulative):.1f}")
        points.append((c, cumulative))
    path.append(f"H{x(end):.1f}")
    # Committed = spent + still reserved: shows a running job's claim before it is charged.
    committed_path = [f"M{x(start):.1f},{y(Decimal(0)):.1f}"]
    committed_path += [f"H{x(t):.1f}V{y(value):.1f}" for t, value in ledger.committed_series()]
    committed_path.append(f"H{x(end):.1f}")
    chart_id = f"chart-{ledger.dataset_id}"
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="epsilon-chart" id="{_e(chart_id)}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-labelledby="{_e(chart_id)}-title" data-points="{len(points)}" data-final-epsilon="{_e(_eps(cumulative))}">'
        ),
        f'<title id="{_e(chart_id)}-title">Cumulative ε spent on {_e(ledger.name or ledger.dataset_id)}</title>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#8a93a6"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#8a93a6"/>',
    ]
    for tick in (Decimal(0), top_value / 2, top_value):
        out.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11" fill="#5b6478">{_e(f"{float(tick):g}")}</text>')
    if total:
        out.append(f'<line x1="{left}" y1="{y(total):.1f}" x2="{width - right}" y2="{y(total):.1f}" stroke="#a1191f" stroke-dasharray="6 4"/>')
        out.append(f'<text x="{width - right}" y="{y(total) - 4:.1f}" text-anchor="end" font-size="11" fill="#a1191f">budget ε {_e(_eps(total))}</text>')
    out.append(f'<path class="committed" d="{"".join(committed_path)}" fill="none" stroke="#9aa5bd" stroke-width="1.5" stroke-dasharray="3 3"/>')
    out.append(f'<path class="spent" d="{"".join(path)}" fill="none" stroke="#4b6cb7" stroke-width="2.5"/>')
    out.append(f'<text x="{left + 8}" y="{top + 12}" font-size="11" fill="#4b6cb7">— ε spent (charged)</text>')
    out.append(f'<text x="{left + 8}" y="{top + 26}" font-size="11" fill="#7a849b">--- ε spent + reserved</text>')
    for c, value in points:
        out.append(f'<circle cx="{x(c.time_us):.1f}" cy="{y(value):.1f}" r="4" fill="#4b6cb7"><title>{_e(_when(c.time_us))}: +ε {_e(_eps(c.epsilon))} (job {_e(c.job_id)}), total ε {_e(_eps(value))}</title></circle>')
    out.append(f'<text x="{left}" y="{height - 10}" font-size="11" fill="#5b6478">{_e(_when(start))}</text>')
    out.append(f'<text x="{width - right}" y="{height - 10}" text-anchor="end" font-size="11" fill="#5b6478">{_e(_when(end))}</text>')
    out.append(f'<text x="14" y="{(top + height - bottom) / 2:.0f}" font-size="11" fill="#5b6478" transform="rotate(-90 14 {(top + height - bottom) / 2:.0f})" text-anchor="middle">ε spent</text>')
    if not points:
        out.append(f'<text x="{(left + width - right) / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" font-size="13" fill="#5b6478">no ε spent yet</text>')
    out.append("</svg>")
    return "".join(out)


def _ledger_section(summary: AuditSummary, job_models: dict[str, str]) -> str:
    parts = [f'<section id="ledger" data-datasets="{len(summary.datasets)}"><h2>2. Privacy ledger per dataset</h2>']
    if not summary.datasets:
        parts.append('<p class="meta">No privacy budget in the verified log.</p>')
    for ds in summary.datasets.values():
        title = _e(ds.name or "(name not in the log)")
        deleted = f' <span class="badge revoked">erased {_e(_when(ds.deleted_us))}</span>' if ds.deleted_us else ""
        rows = []
        for x in ds.entries:
            mechanism = ""
            if x.kind == "charge":
                mechanism = f"{_e(x.accountant)}: σ {_e(x.noise_multiplier)}, q {_e(x.sample_rate)}, {_e(x.steps)} steps"
            job = f"<code>{_e(x.job_id)}</code>" + (f"<br>→ {_e(job_models[x.job_id])}" if x.job_id in job_models else "") if x.job_id else "—"
            rows.append(
                f'<tr class="ledger-entry" data-seq="{x.seq}" data-kind="{_e(x.kind)}" data-epsilon="{_e(_eps(x.epsilon))}" data-job-id="{_e(x.job_id)}">'
                f"<td>{_e(_when(x.time_us))}</td><td>{_e(x.kind)}</td><td class=\"num\">{_e(_eps(x.epsilon))}</td><td>{job}</td>"
                f"<td>{mechanism or '—'}</td><td>{_e(x.principal)}</td></tr>"
            )
        remaining = ds.epsilon_total - ds.epsilon_spent - ds.epsilon_reserved_open if ds.epsilon_total is not None else None
        parts.append(
            f'<article class="card dataset" id="dataset-{_e(ds.dataset_id)}" data-dataset-id="{_e(ds.dataset_id)}" data-dataset-name="{_e(ds.name)}" '
            f'data-epsilon-total="{_e(_eps(ds.epsilon_total) if ds.epsilon_total is not None else "")}" data-epsilon-spent="{_e(_eps(ds.epsilon_spent))}" '
            f'data-epsilon-reserved="{_e(_eps(ds.epsilon_reserved_open))}"><h3>{title}{deleted} <span class="meta">{_e(ds.dataset_id)}</span></h3>'
            f'<p>Budget ε <strong>{_e(_eps(ds.epsilon_total))}</strong>; spent <strong class="epsilon-spent">{_e(_eps(ds.epsilon_spent))}</strong>; '
            f'reserved by running jobs {_e(_eps(ds.epsilon_reserved_open))}; remaining <strong>{_e(_eps(remaining))}</strong>.</p>'
            f"{_chart(ds)}"
            '<table><thead><tr><th>time</th><th>entry</th><th class="num">ε</th><th>job → model</th><th>mechanism</th><th>by</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></article>"
        )
    parts.append("</section>")
    return "".join(parts)


def _denials_section(summary: AuditSummary) -> str:
    ordered = sorted(summary.denials.values(), key=lambda d: (-d.events, d.principal))
    total = sum(d.events for d in ordered)
    parts = [f'<section id="denials" data-deny-events="{total}"><h2>3. Denials by principal</h2>']
    if not ordered:
        parts.append('<p class="meta">Nothing was denied in the verified log.</p>')
    else:
        parts.append('<p class="meta">One audit event may stand for several inference requests (they are metered in batches).</p>')
        parts.append('<table><thead><tr><th>principal</th><th class="num">events</th><th class="num">requests</th><th>deciding policies</th><th>actions</th></tr></thead><tbody>')
        for d in ordered:
            policies = ", ".join(f'<code class="policy" data-policy-id="{_e(p)}" data-count="{n}">{_e(p)}</code> ×{n}' for p, n in sorted(d.policies.items()))
            actions = ", ".join(f"{_e(a)} ×{n}" for a, n in sorted(d.actions.items()))
            parts.append(
                f'<tr class="denial" data-principal="{_e(d.principal)}" data-deny-events="{d.events}" data-deny-requests="{d.requests}">'
                f'<td>{_e(d.principal)}</td><td class="num">{d.events}</td><td class="num">{d.requests}</td><td>{policies}</td><td>{actions}</td></tr>'
            )
        parts.append("</tbody></table>")
    parts.append("</section>")
    return "".join(parts)


def _checkpoint_section(checkpoint: Checkpoint, note: str, verified_message: str, verifier: str) -> str:
    return (
        f'<section id="checkpoint" data-origin="{_e(checkpoint.origin)}" data-size="{checkpoint.size}" data-root-hash="{checkpoint.root_hash.hex()}" data-verified="true">'
        "<h2>4. Checkpoint this report was verified against</h2><div class=\"card\"><table>"
        f"<tr><th>log origin</th><td>{_e(checkpoint.origin)}</td></tr>"
        f'<tr><th>tree size</th><td class="tree-size">{checkpoint.size} events</td></tr>'
        f"<tr><th>root hash (SHA-256, hex)</th><td><code>{checkpoint.root_hash.hex()}</code></td></tr>"
        f"<tr><th>verifier key</th><td><code>{_e(verifier)}</code></td></tr>"
        f'<tr><th>verification</th><td><span class="ok" id="verification-result">✓ verified offline</span>: {_e(verified_message)}</td></tr>'
        f"</table><h3>Signed note</h3><pre id=\"checkpoint-note\">{_e(note)}</pre>"
        '<p class="meta">Re-check it yourself: <code>privet audit export --out events.jsonl</code>, save this note as checkpoint.txt, then '
        "<code>privet audit verify events.jsonl --checkpoint checkpoint.txt --key audit.pub</code>.</p></div></section>"
    )


def render_report(
    events: Sequence[EventRecord],
    checkpoint: Checkpoint,
    *,
    note: str,
    verified_message: str,
    verifier: str,
    generated_at_us: int,
) -> str:
    """The report page for `events`, which the caller has verified against `checkpoint`.

    Requires: `events` are exactly the events with seq 0 … checkpoint.size - 1, in order
    (the verified prefix of an export; later events are not covered by the checkpoint and
    must be left out), `note` is the checkpoint's signed note, `verified_message` the
    successful `VerifyReport.message` and `verifier` the verifier key text used. Raises
    ValueError otherwise (this module never renders an unverified log).
    """
    if len(events) != checkpoint.size or any(e.seq != i for i, e in enumerate(events)):
        raise ValueError(f"events must be seq 0..{checkpoint.size - 1} in order, as verified against the checkpoint")
    summary = summarise(events)
    job_models = {m.job_id: m.ref for m in summary.models.values() if m.job_id}
    body = "".join((
        _lineage_section(summary),
        _ledger_section(summary, job_models),
        _denials_section(summary),
        _checkpoint_section(checkpoint, note, verified_message, verifier),
    ))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        # No script, no fetches: even a value that escaped escaping could not act or phone home.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>Privet audit report — {_e(checkpoint.origin)} at size {checkpoint.size}</title><style>{_CSS}</style></head>"
        f'<body><main id="report" data-events="{summary.events}" data-generated-at="{_e(_when(generated_at_us))}">'
        f"<h1>Privet audit report</h1><p class=\"meta\">Log {_e(checkpoint.origin)}: {summary.events} events from {_e(_when(summary.first_us))} "
        f"to {_e(_when(summary.last_us))}, verified against a signed checkpoint. Generated {_e(_when(generated_at_us))}. "
        "Everything below is derived from the verified events only.</p>"
        f"{body}</main></body></html>\n"
    )
