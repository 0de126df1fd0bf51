"""What Arrow arrays hold once decoded, counted without decoding them. Private: only
`parquet_reader` should need this.

Why it exists: a Parquet dictionary lets a few bytes stand for a huge value repeated on
every row, and decoding a batch to measure it would be the very allocation the limits are
there to prevent. These walk an array's nesting (structs, maps, lists, extension types) and
add up its dictionary entries' lengths through the indices, with Arrow compute kernels, so a
batch is refused before any of its values is copied out.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["decoded_size", "dictionary_entries", "leaf_owners"]


def leaf_owners(schema: pa.Schema) -> list[int]:
    """The top-level field of each Parquet leaf column, in the file's order (depth first)."""
    owners: list[int] = []
    for index, field in enumerate(schema):
        owners += [index] * _leaf_count(field.type)
    return owners


def _leaf_count(kind: pa.DataType) -> int:
    # Recursion is bounded by MAX_PARQUET_SCHEMA_DEPTH, which the reader enforced already.
    if isinstance(kind, pa.ExtensionType):
        return _leaf_count(kind.storage_type)
    if pa.types.is_struct(kind):
        return sum(_leaf_count(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_map(kind):
        return _leaf_count(kind.key_type) + _leaf_count(kind.item_type)
    if _is_list(kind):
        return _leaf_count(kind.value_type)
    return 1


def _is_list(kind: pa.DataType) -> bool:
    return bool(pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
                or pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind))


def _is_binary_like(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
                or pa.types.is_large_binary(kind) or pa.types.is_string_view(kind) or pa.types.is_binary_view(kind))


def _children(array: pa.Array) -> list[pa.Array]:
    """The arrays nested in `array`, sliced to its own rows (no copy)."""
    kind = array.type
    if pa.types.is_struct(kind):
        return list(array.flatten())
    if pa.types.is_map(kind):  # flatten has no kernel for dictionary keys or items
        offsets = array.offsets
        start, stop = (offsets[0].as_py(), offsets[-1].as_py()) if len(offsets) else (0, 0)
        return [array.keys.slice(start, stop - start), array.items.slice(start, stop - start)]
    if _is_list(kind):
        return [array.flatten()]
    return []


def dictionary_entries(array: pa.Array) -> list[int | None]:
    """The longest entry of each dictionary in `array`, depth first (None for an empty one)."""
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    kind = array.type
    if pa.types.is_dictionary(kind):
        entries = array.dictionary
        if not len(entries):
            return [None]
        return [int(pc.max(pc.binary_length(entries)).as_py() or 0) if _is_binary_like(entries.type) else 0]
    if pa.types.is_struct(kind):
        return [entry for i in range(kind.num_fields) for entry in dictionary_entries(array.field(i))]
    if pa.types.is_map(kind):
        return dictionary_entries(array.keys) + dictionary_entries(array.items)
    if _is_list(kind):
        return dictionary_entries(array.values)
    return []


def decoded_size(array: pa.Array) -> tuple[int, int]:
    """(bytes `array` holds once every dictionary is decoded, its longest binary or text value).
    Counts dictionary-encoded values by their entries' lengths: nothing is copied out."""
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    kind = array.type
    if pa.types.is_dictionary(kind):
        entries = array.dictionary
        if not _is_binary_like(entries.type):
            return len(array) * max(entries.nbytes // max(len(entries), 1), 1), 0
        lengths = pc.take(pc.binary_length(entries), array.indices)
        total, longest = pc.sum(lengths).as_py() or 0, pc.max(lengths).as_py() or 0
        return int(total) + 8 * len(array), int(longest)
    children = _children(array)
    if children:
        sizes = [decoded_size(child) for child in children]
        return sum(s for s, _ in sizes) + 8 * len(array), max((m for _, m in sizes), default=0)
    if _is_binary_like(kind):
        longest = pc.max(pc.binary_length(array)).as_py() if len(array) else 0
        return array.nbytes, int(longest or 0)
    return array.nbytes, 0


