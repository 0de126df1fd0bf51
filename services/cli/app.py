"""The root `privet` command: global options, error handling, and the command groups."""

from __future__ import annotations

import os
import pathlib
import sys

import grpc
import typer
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from privet.governance.config import Home
from privet.governance.errors import PrivetError
from privet.governance.policy.engine import PolicyError
from privet.services.cli import audit_cmds, infer_cmds, ingest_cmds, platform_cmds, policy_cmds, registry_cmds, report_cmds, train_cmds
from privet.services.cli.context import Ctx, err_console

__all__ = ["app", "main"]

app = typer.Typer(name="privet", help="Privet: masked ingestion, DP training, gated releases, governed inference.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
@app.callback()
def root(
    ctx: typer.Context,
    as_: str | None = typer.Option(None, "--as", help="Act as this principal (else $PRIVET_PRINCIPAL, else admin)."),
    home: pathlib.Path | None = typer.Option(None, "--home", help="PRIVET_HOME (default $PRIVET_HOME or ./.privet)."),
    json_: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    root_dir = home or pathlib.Path(os.environ.get("PRIVET_HOME", ".privet"))
    ctx.obj = Ctx(Home(root_dir.resolve()), as_ or os.environ.get("PRIVET_PRINCIPAL") or "admin", json_)


# The commands, registered here and nowhere else: top-level commands, then the groups.
for command in (ingest_cmds.ingest, train_cmds.train, infer_cmds.infer, platform_cmds.init, platform_cmds.serve, platform_cmds.status, platform_cmds.demo):
    app.command()(command)
audit_cmds.audit_app.command("report")(report_cmds.report)
for group, name in ((ingest_cmds.datasets_app, "datasets"), (train_cmds.jobs_app, "jobs"), (registry_cmds.models_app, "models"),
                    (registry_cmds.release_app, "release"), (registry_cmds.keys_app, "keys"), (audit_cmds.audit_app, "audit"),
                    (policy_cmds.policies_app, "policies")):
    app.add_typer(group, name=name)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, grpc.RpcError):
        code = exc.code().name if exc.code() else "UNKNOWN"
        return f"{code}: {exc.details()}"
    if isinstance(exc, PrivetError):
        return f"{type(exc).__name__}: {exc.message}"
    return str(exc) or type(exc).__name__


def main() -> None:
    try:
        result = app(standalone_mode=False)
        if isinstance(result, int) and result:
            sys.exit(result)  # click hands typer.Exit codes back instead of exiting
    except (PrivetError, PolicyError, grpc.RpcError, OSError, ValueError, RuntimeError, SQLAlchemyError) as exc:
        err_console.print(f"[red]error:[/red] {escape(_one_line(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: bad options, missing arguments
        show = getattr(exc, "show", None)
        if show:
            show()
        else:
            err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        sys.exit(getattr(exc, "exit_code", 2))
