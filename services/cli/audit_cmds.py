"""privet audit …"""

from __future__ import annotations

import typer

from services.cli.app import app

audit_app = typer.Typer(help="Read, export and verify the tamper-evident audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
