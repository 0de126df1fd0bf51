"""Stubs for CLI commands: the acting principal's mTLS channel to the right service."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from privet.services.cli.context import Ctx
from privet.services.common.client import secure_channel

__all__ = ["every_page", "stub"]


@contextlib.contextmanager
def stub(c: Ctx, service: str, stub_class: type) -> Iterator[Any]:
    """A stub for `service` ("ingestion" | "training" | "registry" | "inference")."""
    address = c.home.settings().addresses[service]
    with secure_channel(c.home, c.principal, address) as channel:
        yield stub_class(channel)


def every_page(list_call: Callable[[Any], Any], field: str) -> list[Any]:
    """Every item of a List RPC, page after page: `list_call(page)` sends one request with
    the given PageRequest; `field` names the reply's repeated field."""
    from privet.common.v1 import types_pb2

    items: list[Any] = []
    token = ""
    while True:
        reply = list_call(types_pb2.PageRequest(page_size=1000, page_token=token))
        items.extend(getattr(reply, field))
        token = reply.next_page_token
        if not token:
            return items
