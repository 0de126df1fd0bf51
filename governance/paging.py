"""Page sizes of list calls: the one rule every List RPC follows."""

from __future__ import annotations

from privet.governance.errors import InvalidArgument

__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "page_size"]

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def page_size(size: int) -> int:
    """The number of items a page holds: `size` (0 = the default), at most MAX_PAGE.
    InvalidArgument("page.page_size") when negative (it would reach SQL as "no limit")."""
    if size < 0:
        raise InvalidArgument("page.page_size", "must not be negative")
    return min(size or DEFAULT_PAGE, MAX_PAGE)
