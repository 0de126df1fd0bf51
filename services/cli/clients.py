"""Stubs for CLI commands: the acting principal's mTLS channel to the right service."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from privet.services.cli.context import Ctx
from privet.services.common.client import secure_channel

__all__ = ["stub"]


@contextlib.contextmanager
def stub(c: Ctx, service: str, stub_class: type) -> Iterator[Any]:
    """A stub for `service` ("ingestion" | "training" | "registry" | "inference")."""
    address = c.home.settings().addresses[service]
    with secure_channel(c.home, c.principal, address) as channel:
        yield stub_class(channel)
