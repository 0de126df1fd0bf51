"""The root `privet` command: global options, error handling, and the command groups."""

from __future__ import annotations

import json
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
from privet.services.cli.choices import AllowedValuesCommand
from privet.services.cli.context import Ctx, err_console
from privet.services.cli.output import error_object

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
app.command(cls=AllowedValuesCommand)(ingest_cmds.ingest)  # options whose help lists their allowed values
app.command(cls=AllowedValuesCommand)(train_cmds.train)
for command in (infer_cmds.infer, platform_cmds.init, platform_cmds.serve, platform_cmds.status, platform_cmds.demo):
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
    if isinstance(exc, typer.TyperException) and hasattr(exc, "format_message"):
        command = getattr(getattr(exc, "ctx", None), "command_path", "privet")
        return f"{exc.format_message()} (see `{command} --help`)"
    return str(exc) or type(exc).__name__


def _wants_json(argv: list[str]) -> bool:
    """Whether the root options ask for --json: read from the arguments themselves, since a
    usage error can come before the root callback has run."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--json":
            return True
        elif arg in ("--as", "--home"):
            skip = True
        elif not arg.startswith("-"):
            return False  # the command's name: what follows is the command's
    return False


def _fail(exc: BaseException, argv: list[str]) -> None:
    """One line on stderr (a JSON error object on stdout with --json), exit 1."""
    if _wants_json(argv):
        print(json.dumps(error_object(exc), indent=2, sort_keys=True))
    else:
        err_console.print(f"[red]error:[/red] {escape(_one_line(exc))}", highlight=False, soft_wrap=True)
    sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        result = app(args=args, standalone_mode=False)
        if isinstance(result, int) and result:
            sys.exit(result)  # click hands typer.Exit codes back instead of exiting
    except (PrivetError, PolicyError, grpc.RpcError, OSError, ValueError, RuntimeError, SQLAlchemyError) as exc:
        _fail(exc, args)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: bad options, missing arguments
        show = getattr(exc, "show", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and show is not None:
            show()  # `privet models` alone: the group's help is the answer
            sys.exit(getattr(exc, "exit_code", 2))
        _fail(exc, args)
