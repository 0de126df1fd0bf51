"""The root `privet` command: global options, error handling, and the command groups."""

from __future__ import annotations

import json
import os
import pathlib
import sys
from dataclasses import dataclass
from typing import Any

import grpc
import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from privet.governance.config import Home
from privet.governance.errors import PrivetError
from privet.governance.policy.engine import PolicyError

__all__ = ["app", "main", "Ctx", "ctx_of", "emit"]

app = typer.Typer(name="privet", help="Privet: masked ingestion, DP training, gated releases, governed inference.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()
err_console = Console(stderr=True)


@dataclass
class Ctx:
    home: Home
    principal: str
    json: bool


def ctx_of(ctx: typer.Context) -> Ctx:
    obj = ctx.obj
    assert isinstance(obj, Ctx), "the command line's callback sets ctx.obj"
    return obj


def emit(c: Ctx, data: Any, human: Any = None) -> None:
    """Print `data` as JSON with --json, else the Rich renderable `human` (or data)."""
    if c.json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        console.print(human if human is not None else data)


@app.callback()
def root(
    ctx: typer.Context,
    as_: str | None = typer.Option(None, "--as", help="Act as this principal (else $PRIVET_PRINCIPAL, else admin)."),
    home: pathlib.Path | None = typer.Option(None, "--home", help="PRIVET_HOME (default $PRIVET_HOME or ./.privet)."),
    json_: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    root_dir = home or pathlib.Path(os.environ.get("PRIVET_HOME", ".privet"))
    ctx.obj = Ctx(Home(root_dir.resolve()), as_ or os.environ.get("PRIVET_PRINCIPAL") or "admin", json_)


def _register_commands() -> None:
    from privet.services.cli import audit_cmds, infer_cmds, ingest_cmds, platform_cmds, policy_cmds, registry_cmds, report_cmds, train_cmds  # noqa: F401 - they attach to `app`


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, grpc.RpcError):
        code = exc.code().name if exc.code() else "UNKNOWN"
        return f"{code}: {exc.details()}"
    if isinstance(exc, PrivetError):
        return f"{type(exc).__name__}: {exc.message}"
    return str(exc) or type(exc).__name__


def main() -> None:
    _register_commands()
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
