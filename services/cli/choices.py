"""Options whose allowed values have a home elsewhere: the CLI asks that home, never a copy.

- `--arch`: the architectures registry (`governance/architectures/models.py`);
- `--accountant`: the accountant registry (`governance/privacy/accounting.py`);
- `--device`: `governance/training/job_spec.DEVICES`;
- `--profile`: the masking profiles in the home's `policies/masking` (a client's home
  without policies leaves the choice to the server);
- `--format`: the ingestion API's `DataFormat` enum.

The registries import torch, so they are read only when a command's help is shown or its
option checked (`AllowedValuesCommand`, `allowed`), never when the CLI starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperCommand

__all__ = ["ALLOWED", "AllowedValuesCommand", "allowed", "allowed_values"]


def _architectures(_ctx: Any) -> tuple[str, ...]:
    from privet.governance.architectures.models import architectures

    return architectures()


def _accountants(_ctx: Any) -> tuple[str, ...]:
    from privet.governance.privacy.accounting import accountant_names

    return accountant_names()


def _devices(_ctx: Any) -> tuple[str, ...]:
    from privet.governance.training.job_spec import DEVICES

    return tuple(DEVICES)


def _formats(_ctx: Any) -> tuple[str, ...]:
    from privet.ingestion.v1 import ingestion_pb2

    return tuple(v.name.removeprefix("DATA_FORMAT_").lower() for v in ingestion_pb2.DataFormat.DESCRIPTOR.values if v.number)


def _profiles(ctx: Any) -> tuple[str, ...] | None:
    obj = ctx.find_root().obj if ctx is not None else None
    home = getattr(obj, "home", None)
    folder = home.policies / "masking" if home is not None else None
    if folder is None or not folder.is_dir():
        return None  # a client's home: the server's profiles decide
    return tuple(sorted(p.stem for p in folder.glob("*.yaml")))


# Option parameter name -> where its allowed values live.
ALLOWED: dict[str, Callable[[Any], tuple[str, ...] | None]] = {
    "arch": _architectures, "accountant": _accountants, "device": _devices, "fmt": _formats, "profile": _profiles,
}


def allowed_values(name: str, ctx: Any = None) -> tuple[str, ...] | None:
    """The allowed values of option parameter `name`, or None where the server decides."""
    return ALLOWED[name](ctx)


def allowed(name: str) -> Callable[..., Any]:
    """A Typer option callback refusing a value outside `allowed_values(name)`."""

    def check(ctx: typer.Context, value: str | None) -> str | None:
        if value in (None, "") or ctx.resilient_parsing:
            return value
        values = allowed_values(name, ctx)
        folded = value.lower() if name == "fmt" else value
        if values is not None and folded not in values:
            raise typer.BadParameter(f"{value!r} is not one of: {', '.join(values)}")
        return value

    return check


class AllowedValuesCommand(TyperCommand):
    """A command whose help lists each option's allowed values, read when help is shown."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.params:
            source = ALLOWED.get(param.name or "")
            if source is None or not hasattr(param, "help"):
                continue
            base = getattr(param, "_privet_help", None)
            if base is None:
                base = param.help or ""
                param._privet_help = base  # type: ignore[attr-defined]
            values = source(ctx)
            listed = f"one of: {', '.join(values)}" if values is not None else "as the server's policies/masking defines"
            param.help = f"{base} ({listed})".strip()
        super().format_help(ctx, formatter)
