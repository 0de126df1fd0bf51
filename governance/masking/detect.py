"""Find personal data in pyarrow columns: classify structured columns by sampling
(`classify`), find entities inside free text, and replace them (`free_text`).

The work is shaped by cost: a pyarrow regex over a whole column runs at millions of rows
a second, a Python validator (phonenumbers, a checksum) at tens of thousands. So every
entry point first runs the recognizers' patterns as one RE2 alternation over the column,
keeps the cells that matched, de-duplicates them (dictionary encoding), and only then
calls Python, once per distinct candidate string. A cell no pattern matched never reaches
Python. Replacing entities with type tokens for the types whose pattern is the whole
check (email, URL, IPv4, MAC) is a pyarrow regex replace with no Python at all.

Where each part lives:

- `patterns`: the recognizers (pattern, validator, context words), and what a column's
  name lends them; `column_patterns` and `column_names` for the types only a column's
  name can vouch for;
- `finding`: the rules inside one text (spans, scores, context, overlaps, replacement),
  and `pseudonyms` for keyed replacement;
- `classify`, `free_text`: the entry points, re-exported here;
- `_column_regex`, `_batch_finder`, `_columns`: the column-speed machinery, which must
  give what the rules give one string at a time.
"""

from __future__ import annotations

from privet.governance.masking.classify import (
    DEFAULT_MIN_SHARE,
    DEFAULT_SAMPLE,
    ColumnClassification,
    classify_column,
)
from privet.governance.masking.free_text import SCAN_MIN_SCORE, replace_entities, scan_text

__all__ = [
    "DEFAULT_MIN_SHARE",
    "DEFAULT_SAMPLE",
    "SCAN_MIN_SCORE",
    "ColumnClassification",
    "classify_column",
    "replace_entities",
    "scan_text",
]
