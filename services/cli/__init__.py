"""The `privet` command (Typer + Rich). Each sub-module adds one group of commands."""

from __future__ import annotations

from privet.services.cli.app import app, main

__all__ = ["app", "main"]
