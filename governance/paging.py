"""Pages of list calls: the one rule every List RPC follows for its page size and for the
tokens it issues (the key of the last item it gave: a name, an id or a sequence number)."""

from __future__ import annotations

from privet.governance.errors import InvalidArgument

__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "MAX_TOKEN_CHARS", "after_number", "after_text", "page_size"]

DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_TOKEN_CHARS = 128  # a name (63) or an id (36) is shorter: a longer token was never issued
_MAX_SEQ = 2**63 - 1
_NOT_OURS = "not a token this service issued"


def page_size(size: int) -> int:
    """The number of items a page holds: `size` (0 = the default), at most MAX_PAGE.
    InvalidArgument("page.page_size") when negative (it would reach SQL as "no limit")."""
    if size < 0:
        raise InvalidArgument("page.page_size", "must not be negative")
    return min(size or DEFAULT_PAGE, MAX_PAGE)


def after_text(token: str) -> str:
    """The name or id a text token carries ("" for the first page). InvalidArgument
    ("page.page_token") for a token no list could have issued: too long, or with control
    characters."""
    if len(token) > MAX_TOKEN_CHARS or not token.isprintable():
        raise InvalidArgument("page.page_token", _NOT_OURS)
    return token


def after_number(token: str, *, first: int = -1) -> int:
    """The number a numeric token carries (`first` for the first page). InvalidArgument
    ("page.page_token") for anything else: only ASCII digits in range were ever issued."""
    if not token:
        return first
    if not (token.isascii() and token.isdigit() and len(token) <= 19 and int(token) <= _MAX_SEQ):
        raise InvalidArgument("page.page_token", _NOT_OURS)
    return int(token)
