"""privet policies check: run the policy test cases (policies/tests) against the home's policies."""

from __future__ import annotations

import pathlib

import typer
from rich.table import Table

from privet.governance.policy.checks import run_policy_tests
from privet.services.cli.context import ctx_of, emit

__all__: list[str] = []

policies_app = typer.Typer(help="Check the policies an operator edits.", no_args_is_help=True)


@policies_app.command("check")
def check(
    ctx: typer.Context,
    folder: pathlib.Path | None = typer.Option(None, "--dir", help="policies folder (default: PRIVET_HOME/policies)"),
) -> None:
    """Load the policies and run every case under tests/ALLOW and tests/DENY; exit 1 if any fails."""
    c = ctx_of(ctx)
    results = run_policy_tests(folder or c.home.policies)
    failed = [r for r in results if not r.passed]
    table = Table("case", "result", "decided", title=f"{len(results) - len(failed)} of {len(results)} policy cases pass")
    for r in results:
        table.add_row(r.name, "[green]pass[/green]" if r.passed else "[red]FAIL[/red]", r.message)
    emit(c, [{"case": r.name, "passed": r.passed, "message": r.message} for r in results], table)
    if failed or not results:
        raise typer.Exit(1)
