"""Text as the detectors read it: identifiers written with look-alike characters brought
back to the plain forms the patterns know.

A card with no-break spaces between its groups, an SSN with an em dash, an email with a
full-width ＠ or a zero-width space inside read the same to a person and to whoever the
data leaks to, and slip past every pattern; copied from documents and web pages, they are
common even without an adversary. Cells holding such characters are rewritten (the masked
text keeps the plain forms): full-width letters, digits and ＠ by NFKC, no-break and
figure spaces as spaces, dashes and the minus sign as "-", zero-width characters removed.
Full-width punctuation alone (Japanese and Chinese prose) is left as written.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["LOOK_ALIKES", "plain_forms"]

_FULL_WIDTH_ALNUM = r"[\x{FF10}-\x{FF19}\x{FF20}-\x{FF3A}\x{FF41}-\x{FF5A}]"
_SPACES = r"[\x{00A0}\x{2007}\x{202F}]"
_ZERO_WIDTH = r"[\x{200B}-\x{200D}\x{2060}\x{FEFF}]"
_DASHES = r"[\x{2010}-\x{2015}\x{2212}\x{FE63}\x{FF0D}]"
# Any of them: cells without one (nearly all) are not touched.
LOOK_ALIKES = "|".join((_FULL_WIDTH_ALNUM, _SPACES, _ZERO_WIDTH, _DASHES))


def plain_forms(chunk: pa.Array) -> pa.Array:
    """`chunk` (strings) with the look-alikes of its cells brought to their plain forms."""
    hit = pc.match_substring_regex(chunk, LOOK_ALIKES).fill_null(False)
    if not pc.any(hit).as_py():
        return chunk
    cells = chunk.filter(hit)
    wide = pc.match_substring_regex(cells, _FULL_WIDTH_ALNUM).fill_null(False)
    cells = pc.if_else(wide, pc.utf8_normalize(cells, form="NFKC"), cells)
    cells = pc.replace_substring_regex(cells, _SPACES, " ")
    cells = pc.replace_substring_regex(cells, _ZERO_WIDTH, "")
    cells = pc.replace_substring_regex(cells, _DASHES, "-")
    return pc.replace_with_mask(chunk, hit, cells.cast(chunk.type))
