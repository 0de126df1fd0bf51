"""What every `privet` command shares: the acting context (home, principal, --json) and how
output is written. Command modules import this, never the root command, so that the root
registers them explicitly and nothing imports in a cycle."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console

from privet.governance.config import Home

__all__ = ["Ctx", "console", "ctx_of", "emit", "err_console"]

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
