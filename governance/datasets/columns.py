"""Column names an upload must have, whatever its format: every later stage picks columns by name."""

from __future__ import annotations

import pyarrow as pa

from privet.governance.errors import InvalidArgument
from privet.governance.masking.profile import require_unique_columns

__all__ = ["column_names", "require_named_columns"]


def column_names(schema: pa.Schema) -> list[str]:
    """The schema's names; InvalidArgument naming the column whose name is not valid UTF-8."""
    names = []
    for position in range(len(schema)):
        try:
            names.append(schema.field(position).name)
        except UnicodeDecodeError:
            raise InvalidArgument(f"column #{position + 1}", "the column name is not valid UTF-8") from None
    return names


def require_named_columns(names: list[str]) -> None:
    """InvalidArgument for a blank or repeated name: either is ambiguous."""
    for position, name in enumerate(names, start=1):
        if not name.strip():
            raise InvalidArgument(f"column #{position}", "the column has no name; every column needs one")
    require_unique_columns(names)
