"""`governance.jsonlimits`: nesting is counted the way a parser meets it, before it parses.

A naive character-by-character reference (`_reference_depths`) checks the vectorised scanner
on seeded random text, whole and fed in random pieces; real JSON built by hypothesis checks
that the count is exactly the nesting `json.loads` recurses through.
"""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privet.governance.errors import InvalidArgument
from privet.governance.jsonlimits import (
    MAX_JSON_DEPTH,
    PIECE_BYTES,
    JsonDepthScanner,
    check_json_depth,
)


def _nested(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


def test_the_default_limit_is_64_and_counts_the_outermost_container() -> None:
    assert MAX_JSON_DEPTH == 64
    check_json_depth(_nested(64), field="f")
    check_json_depth('{"a": ' + _nested(63) + "}", field="f")
    with pytest.raises(InvalidArgument) as err:
        check_json_depth('{"a": ' + _nested(64) + "}", field="metadata.preprocessing_json")
    assert err.value.field == "metadata.preprocessing_json"
    assert "limit of 64 levels" in err.value.description


def test_the_limit_is_the_callers() -> None:
    check_json_depth(_nested(3), field="f", limit=3)
    with pytest.raises(InvalidArgument, match="limit of 3 levels"):
        check_json_depth(_nested(4), field="f", limit=3)
    with pytest.raises(InvalidArgument):
        check_json_depth("[]", field="f", limit=0)
    check_json_depth('"[[["', field="f", limit=0)


def test_the_error_names_where_the_limit_was_passed() -> None:
    with pytest.raises(InvalidArgument, match=r"at byte 7\)"):
        check_json_depth('{"a": [[1]]}', field="f", limit=2)
    # Long text is scanned a piece at a time; the offset is still the text's own.
    far = '["' + "x" * PIECE_BYTES + '", [[1]]]'
    with pytest.raises(InvalidArgument, match=rf"at byte {PIECE_BYTES + 6}\)"):
        check_json_depth(far, field="f", limit=2)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "' + "[" * 200 + '"}',  # brackets in a string
        '{"a": "x\\"' + "[" * 200 + '"}',  # ... after an escaped quote
        '{"a": "x\\\\\\"' + "{" * 200 + '"}',  # ... after an escaped backslash and an escaped quote
        '["\\\\\\\\", "' + "[" * 200 + '"]',  # an even run of backslashes before a quote ends nothing
        "]]]]]" + _nested(10),  # closers first never make the depth negative
        "",
    ],
)
def test_brackets_a_parser_does_not_nest_are_not_counted(text: str) -> None:
    check_json_depth(text, field="f", limit=10)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "x\\\\", "b": ' + _nested(11) + "}",  # the quote after an escaped backslash ends the string
        "]]]]]]]]]]]]" + _nested(12),  # closers at depth 0 do not buy depth for later openers
        '{"é": "ü", "x": ' + _nested(11) + "}",  # text beyond ASCII
    ],
)
def test_brackets_a_parser_nests_are_counted(text: str) -> None:
    with pytest.raises(InvalidArgument):
        check_json_depth(text, field="f", limit=11)
    with pytest.raises(InvalidArgument):
        check_json_depth(text.encode(), field="f", limit=11)


def test_a_line_break_ends_a_string_only_in_json_lines() -> None:
    # Arrow refuses a raw line break in a string and starts each block of lines afresh: the
    # second line is nested, whatever the first left open (its `{` still counts: a record may
    # span lines). Python's json reads one document: all of it is in the string.
    text = b'{"a": "open\n' + b'{"b": ' + _nested(20).encode() + b"}\n"
    assert JsonDepthScanner(limit=10, json_lines=True).feed(text) == len(b'{"a": "open\n{"b": ') + 8
    assert JsonDepthScanner(limit=10).feed(text) is None


def test_depth_carries_across_lines_and_pieces() -> None:
    scanner = JsonDepthScanner(limit=5, json_lines=True)
    assert scanner.feed(b'{"a":\n[[') is None
    assert scanner.depth == 3
    assert scanner.feed(b"[\n[") is None
    assert scanner.feed(b"[") == 0  # the sixth level, at offset 0 of this piece


def test_a_huge_flat_document_passes_and_a_huge_deep_one_stops() -> None:
    flat = ("[" + ",".join(['{"k": "v[{"}'] * 200_000) + "]").encode()
    check_json_depth(flat, field="f")
    with pytest.raises(InvalidArgument):
        check_json_depth(b"[" * 5_000_000, field="f")


# --- the scanner against a naive reference ----------------------------------------------------

def _reference_depths(data: bytes, limit: int, json_lines: bool) -> int | None:
    """Character by character: the offset of the first opener past `limit` (None if none)."""
    depth, in_string, backslashes = 0, False, 0
    for offset, char in enumerate(data):
        if char == ord('"') and backslashes % 2 == 0:
            in_string = not in_string
        elif json_lines and char in b"\r\n":
            in_string = False
        elif not in_string and char in b"[{":
            depth += 1
            if depth > limit:
                return offset
        elif not in_string and char in b"]}":
            depth = max(depth - 1, 0)
        backslashes = backslashes + 1 if char == ord("\\") else 0
    return None


def _fed(data: bytes, cuts: list[int], limit: int, json_lines: bool) -> int | None:
    scanner, start = JsonDepthScanner(limit=limit, json_lines=json_lines), 0
    for end in [*sorted(cuts), len(data)]:
        hit = scanner.feed(data[start:end])
        if hit is not None:
            return start + hit
        start = end
    return None


@pytest.mark.parametrize("json_lines", [False, True])
def test_the_scanner_agrees_with_the_reference_on_random_text(json_lines: bool) -> None:
    rng = random.Random(19)
    alphabet = b'[[[{{{]]]}}}""\\\\\\\n\rab ,:'
    for _ in range(3000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
        limit = rng.randrange(0, 6)
        expected = _reference_depths(data, limit, json_lines)
        assert JsonDepthScanner(limit=limit, json_lines=json_lines).feed(data) == expected, data
        cuts = [rng.randrange(0, len(data) + 1) for _ in range(rng.randrange(0, 5))]
        assert _fed(data, cuts, limit, json_lines) == expected, (data, cuts)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n\t', max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"\\k', max_size=4), inner, max_size=3),
    max_leaves=40,
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_json, st.booleans())
def test_the_count_is_the_nesting_json_loads_sees(value: object, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    depth = _depth(json.loads(text))
    check_json_depth(text, field="f", limit=depth)
    if depth:
        with pytest.raises(InvalidArgument):
            check_json_depth(text, field="f", limit=depth - 1)
    # A JSON Lines record holds no raw line break: the same count there.
    assert JsonDepthScanner(limit=max(depth - 1, 0), json_lines=True).feed(text.encode()) is not None or depth == 0


def test_a_deep_safetensors_header_is_refused_naming_the_limit() -> None:
    import struct

    from privet.governance.registry.weights_format import parse_safetensors

    header = b'{"a": ' + _nested(100).encode() + b"}"
    with pytest.raises(InvalidArgument) as err:
        parse_safetensors(struct.pack("<Q", len(header)) + header + bytes(4))
    assert err.value.field == "weights" and "limit of 64 levels" in err.value.description
