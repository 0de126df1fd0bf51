"""`privet demo` runs the whole path end to end on a fresh home, as a user would run it."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from tests.conftest import make_home, use_any_ports


def test_demo_runs_the_whole_path(tmp_path: pathlib.Path) -> None:
    home = make_home(tmp_path / "home")
    use_any_ports(home)  # the demo itself would use the default ports; keep tests independent
    # Twice in one home: a rerun ingests fresh customers, so it has a budget of its own
    # (the same bytes again would resume the budget the first run spent).
    for _ in range(2):
        result = subprocess.run([sys.executable, "-m", "privet.services.cli", "--home", str(home.root), "demo"], capture_output=True, text=True, timeout=600)
        out = result.stdout
        assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
        for expected in ("REGISTERED → CANDIDATE", "APPROVED → RELEASED", "P(churn)", "PERMISSION_DENIED", "✓ verified offline"):
            assert expected in out, expected
        assert "unexpectedly allowed" not in out
