"""`privet demo` runs the whole path end to end on a fresh home, as a user would run it."""

from __future__ import annotations

from tests.conftest import DemoRuns


def test_demo_runs_the_whole_path(demo_runs: DemoRuns) -> None:
    # Twice in one home (`demo_runs`: the second run with --keep, for the audit report's
    # tests): a rerun ingests fresh customers, so it has a budget of its own (the same bytes
    # again would resume the budget the first run spent).
    for result in demo_runs.runs:
        out = result.stdout
        assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
        for expected in ("REGISTERED → CANDIDATE", "APPROVED → RELEASED", "P(churn)", "PERMISSION_DENIED", "✓ verified offline"):
            assert expected in out, expected
        assert "unexpectedly allowed" not in out
    assert len(demo_runs.runs) == 2
