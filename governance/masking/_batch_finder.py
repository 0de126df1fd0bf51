"""`Finder`'s rules over an Arrow array of distinct candidate strings, at column speed.

Everything here is a fast path that must give what `Finder.find_in` and `substitute` give
one string at a time (tests/unit/masking/test_masking_vectorised.py holds them to it):

- per recognizer, which texts its pattern matches, with the recognizers an even sample
  finds nothing for tried first as one alternation (`_masks`);
- a text holding one match of one recognizer rewritten in pyarrow, with Python once per
  distinct match rather than per text (`replace`);
- a recognizer with a vectorised validator decided for every match its scores settle,
  refined spans included, without Python (`_pieces_vectorised`);
- the batch validators run on every distinct match up front, so that `Finder.score`
  mostly finds its scores ready (`_prescore_matches`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from privet.governance.masking._column_regex import first_match, prefilter
from privet.governance.masking.entities import Finding, type_token
from privet.governance.masking.finding import KEYWORDS, LABELLED, NOT_PII_LABEL_RE2, Finder, labelled_otherwise, substitute
from privet.governance.masking.patterns import CONTEXT_BOOST, LAYOUT_BYTES, Recognizer
from privet.governance.masking.patterns import MAX_SCORE as _MAX_BOOSTED
from privet.governance.masking.pseudonyms import Pseudonyms
from privet.governance.masking.strings import translate_bytes

__all__ = ["MASK_SAMPLE", "BatchFinder"]

# Texts per batch of candidates on which each recognizer's pattern is tried first (_masks).
MASK_SAMPLE = 1024

_Bools = npt.NDArray[np.bool_]
_Floats = npt.NDArray[np.float64]
_Ints = npt.NDArray[np.int64]


class BatchFinder(Finder):
    """A `Finder` over a batch of texts. Requires `texts` to be a pyarrow string array
    with no nulls (distinct strings, so that Python runs once per candidate); the
    per-recognizer RE2 masks say which recognizers are worth running in Python on which
    string."""

    def find(self, texts: pa.Array) -> list[list[Finding]]:
        """`find_in` of each text, with the recognizers its patterns matched."""
        out: list[list[Finding]] = [[] for _ in range(len(texts))]
        py, per_cell = self._prepare(texts)
        for cell, recs in per_cell.items():
            out[cell] = self.find_in(py[cell], recs)
        return out

    def replace(self, texts: pa.Array, pseudonyms: Pseudonyms | None) -> pa.Array:
        """Each text with its entities replaced, as `substitute(text, find(...))` gives.

        Most texts hold one match of one recognizer; those are rewritten in pyarrow, with
        Python once per distinct match (its score, its replacement) and not per text.
        The rest take the general path; a text only one recognizer matched, whose matches
        do not depend on the words around them, still skips the overlap logic."""
        if not self._fresh(texts):
            return texts
        masks = self._masks(texts)
        alone = masks.sum(axis=0) == 1
        general = ~alone
        done_idx, done_val = [], []
        for i, rec in enumerate(self.recs):
            idx = np.flatnonzero(masks[i] & alone)
            if not idx.size:
                continue
            pre, matched, post = first_match(texts.take(pa.array(idx)), rec.pattern)
            # One match only: nothing after the first matches again.
            single = ~pc.match_substring_regex(post, rec.pattern).to_numpy(zero_copy_only=False)
            one = idx[single]
            general[idx[~single]] = True
            if not one.size:
                continue
            if rec.type in LABELLED and not self.hints.get(rec.type):
                # A label before the number ("Order no.") decides: the general path reads it.
                labelled = (pc.match_substring_regex(pre, NOT_PII_LABEL_RE2).fill_null(False).to_numpy(zero_copy_only=False)
                            & pc.match_substring_regex(matched, r"^\s*[0-9]+\s*$").fill_null(False).to_numpy(zero_copy_only=False))
                general[idx[single & labelled]] = True
                single &= ~labelled
                one = idx[single]
                if not one.size:
                    continue
            keep = pa.array(single)
            pre, matched, post = pre.filter(keep), matched.filter(keep), post.filter(keep)
            enc = pc.dictionary_encode(matched)
            pieces = self._pieces(rec, enc.dictionary, pseudonyms)
            decided = pieces.is_valid().to_numpy(zero_copy_only=False)[enc.indices.to_numpy()]
            general[one[~decided]] = True
            rows = pa.array(np.flatnonzero(decided))
            piece = pieces.take(enc.indices.filter(pa.array(decided)))
            done_idx.append(one[decided])
            done_val.append(pc.binary_join_element_wise(pre.take(rows), piece, post.take(rows), ""))
        rest = np.flatnonzero(general)
        if rest.size:
            done_idx.append(rest)
            done_val.append(pa.array(self._replace_general(texts.take(pa.array(rest)), masks[:, rest], pseudonyms),
                                     type=pa.string()))
        if not done_idx:
            return texts
        order = np.concatenate(done_idx)
        values = pa.concat_arrays([v.cast(pa.string()) for v in done_val])
        out = texts.cast(pa.string())
        positions = np.zeros(len(texts), dtype=bool)
        positions[order] = True
        # replace_with_mask fills masked slots in order: sort the new values by position.
        return pc.replace_with_mask(out, pa.array(positions), values.take(pa.array(np.argsort(order, kind="stable"))))

    def _pieces(self, rec: Recognizer, distinct: pa.Array, pseudonyms: Pseudonyms | None) -> pa.Array:
        """What each distinct match of `rec` becomes (`Finder.piece`), null where its
        context decides. In token mode, a recognizer with a vectorised validator is decided
        in pyarrow for every match its scores settle (a whole valid phone number or IBAN; a
        refined span); only the rest reach Python."""
        n = len(distinct)
        vectorised = rec.validate_many is not None and pseudonyms is None and not self.hints.get(rec.type)
        if vectorised:
            pieces, todo, scores = self._pieces_vectorised(rec, distinct)
        else:
            pieces, todo = pa.nulls(n, pa.string()), np.ones(n, dtype=bool)
        rest = np.flatnonzero(todo)
        if not rest.size:
            return pieces
        texts = distinct.take(pa.array(rest)).to_pylist()
        if vectorised:
            self._keep_scores(rec, texts, scores[rest])
        self._prescore_matches(rec, texts)
        mask = np.zeros(n, dtype=bool)
        mask[rest] = True
        return pc.replace_with_mask(pieces, pa.array(mask),
                                    pa.array([self.piece(rec, t, pseudonyms) for t in texts], type=pa.string()))

    def _pieces_vectorised(self, rec: Recognizer, distinct: pa.Array) -> tuple[pa.Array, _Bools, _Floats]:
        """(pieces, undecided, whole-match scores): `GroupRefiner.pick` and `Finder.piece`
        run a layout of spaces at a time, every span scored by `rec.validate_many`."""
        assert rec.validate_many is not None
        n = len(distinct)
        scores = rec.validate_many(distinct, self.region)
        best = scores.copy()  # REJECTED (-1) reads as "no span yet", as None does in pick
        lengths: _Ints = pc.utf8_length(distinct).to_numpy(zero_copy_only=False).astype(np.int64)
        start, end = np.zeros(n, dtype=np.int64), lengths.copy()
        undecided = np.isnan(scores)
        if rec.refine is not None:
            good = rec.refine.good_enough
            candidates = np.flatnonzero(~undecided & (scores < good))
            opened = distinct.take(pa.array(candidates))
            layouts = pc.dictionary_encode(translate_bytes(opened, LAYOUT_BYTES))
            codes = layouts.indices.to_numpy(zero_copy_only=False)
            # Every shorter span of every layout, scored in one vectorised call (each call
            # pays for its regexes), then picked span by span as GroupRefiner.pick does.
            groups, subs = [], []
            for code, layout in enumerate(layouts.dictionary.to_pylist()):
                members = np.flatnonzero(codes == code)
                rows = candidates[members]
                group = opened.take(pa.array(members))
                spans = rec.refine.spans(layout)
                groups.append((rows, spans))
                subs += [pc.utf8_slice_codeunits(group, s, e) for s, e in spans]
            got_all = rec.validate_many(pa.concat_arrays(subs), self.region) if subs else np.zeros(0)
            at = 0
            for rows, spans in groups:
                done = np.zeros(rows.size, dtype=bool)
                for s, e in spans:
                    got = got_all[at:at + rows.size]
                    at += rows.size
                    undecided[rows[~done & np.isnan(got)]] = True
                    prior = best[rows]
                    better = ~done & (got >= 0) & ((prior < 0) | (got > prior))
                    best[rows[better]] = got[better]
                    start[rows[better]], end[rows[better]] = s, e
                    done |= better & (got >= good)
        found = ~undecided & (best >= 0)
        keep = found & (best >= self.min_score)
        if KEYWORDS.get(id(rec)) is not None:  # a nearby keyword could lift it: context decides
            undecided |= found & ~keep & (best < 0.95) & (np.minimum(best + CONTEXT_BOOST, _MAX_BOOSTED) >= self.min_score)
        token = type_token(rec.type)
        whole = keep & (start == 0) & (end == lengths)
        pieces = pc.if_else(pa.array(whole), pa.scalar(token, pa.string()), distinct)
        refined = np.flatnonzero(keep & ~whole)  # a shorter span won: rare, built one by one
        if refined.size:
            texts = distinct.take(pa.array(refined)).to_pylist()
            built = [f"{m[:s]}{token}{m[e:]}" for m, s, e in zip(texts, start[refined].tolist(), end[refined].tolist())]
            mask = np.zeros(n, dtype=bool)
            mask[refined] = True
            pieces = pc.replace_with_mask(pieces, pa.array(mask), pa.array(built, type=pa.string()))
        pieces = pc.if_else(pa.array(undecided), pa.scalar(None, pa.string()), pieces)
        return pieces, undecided, scores

    def _replace_general(self, texts: pa.Array, masks: _Bools, pseudonyms: Pseudonyms | None) -> list[str]:
        py, per_cell = self._per_cell(texts, masks)
        out = list(py)
        pieces: dict[tuple[int, str], str | None] = {}
        for cell, recs in per_cell.items():
            text = py[cell]
            got = self._replace_alone(text, recs[0], pseudonyms, pieces) if len(recs) == 1 else None
            if got is None:
                found = self.find_in(text, recs)
                got = substitute(text, found, pseudonyms) if found else text
            out[cell] = got
        return out

    def _masks(self, texts: pa.Array) -> _Bools:
        """Per recognizer (rows), which texts (columns) its pattern matches. A regex pass
        costs about the same whatever it finds, and in most text most recognizers find
        nothing: those that match nothing in an even sample of the texts run first as one
        alternation, and each alone only on the texts that alternation matched."""
        out = np.zeros((len(self.recs), len(texts)), dtype=bool)
        rare: list[int]
        if len(texts) <= 4 * MASK_SAMPLE:
            common, rare = list(range(len(self.recs))), []
        else:
            sample = texts.take(pa.array(np.linspace(0, len(texts) - 1, MASK_SAMPLE).astype(np.int64)))
            found = [pc.any(pc.match_substring_regex(sample, rec.pattern)).as_py() for rec in self.recs]
            common = [i for i, f in enumerate(found) if f]
            rare = [i for i, f in enumerate(found) if not f]
            if len(rare) == 1:
                common, rare = common + rare, []
        for i in common:
            out[i] = pc.match_substring_regex(texts, self.recs[i].pattern).to_numpy(zero_copy_only=False)
        if rare:
            some = np.flatnonzero(prefilter(texts, [self.recs[i] for i in rare]))
            if some.size:
                subset = texts.take(pa.array(some))
                for i in rare:
                    out[i, some] = pc.match_substring_regex(subset, self.recs[i].pattern).to_numpy(zero_copy_only=False)
        return out

    def _fresh(self, texts: pa.Array) -> bool:
        """Start a batch (`new_batch`). Whether there is anything to look for."""
        self.new_batch()
        return len(texts) > 0 and bool(self.recs)

    def _prepare(self, texts: pa.Array) -> tuple[list[str], dict[int, list[Recognizer]]]:
        if not self._fresh(texts):
            return [], {}
        return self._per_cell(texts, self._masks(texts))

    def _per_cell(self, texts: pa.Array, masks: _Bools) -> tuple[list[str], dict[int, list[Recognizer]]]:
        """The texts as Python strings and, per text any pattern matched, the recognizers
        to run on it (in RECOGNIZERS order); batch validators have run on every match."""
        cells, which = np.nonzero(masks.T)
        py = texts.to_pylist()
        per_cell: dict[int, list[Recognizer]] = {}
        for cell, r in zip(cells.tolist(), which.tolist()):
            per_cell.setdefault(cell, []).append(self.recs[r])
        for i, rec in enumerate(self.recs):
            if rec.validate_many is not None:
                matched = {m.group() for c in np.flatnonzero(masks[i]).tolist() for m in rec.compiled.finditer(py[c])}
                self._prescore_matches(rec, list(matched))
        return py, per_cell

    def _replace_alone(self, text: str, rec: Recognizer, pseudonyms: Pseudonyms | None,
                       pieces: dict[tuple[int, str], str | None]) -> str | None:
        """`text` with `rec`'s matches replaced, or None when a match's fate depends on
        the words around it (a keyword would lift it over the bar)."""
        parts: list[str] = []
        pos = 0
        for m in rec.compiled.finditer(text):
            matched = m.group()
            if not self.hints.get(rec.type) and labelled_otherwise(rec, text[:m.start()], matched):
                return None  # context decides: find_in reads the label
            key = (id(rec), matched)
            if key not in pieces:
                pieces[key] = self.piece(rec, matched, pseudonyms)
            piece = pieces[key]
            if piece is None:
                return None
            parts.append(text[pos:m.start()])
            parts.append(piece)
            pos = m.end()
        parts.append(text[pos:])
        return "".join(parts)

    def _prescore_matches(self, rec: Recognizer, matched: list[str]) -> None:
        """Score the distinct matches of `rec` (and the shorter spans its refiner would
        try) in vectorised calls, so that `Finder.checked` mostly finds its scores ready."""
        if rec.validate_many is None:
            return
        self._prescore(rec, [t for t in matched if (id(rec), t) not in self._scores])
        if rec.refine is not None:
            good = rec.refine.good_enough
            short = {t[s:e] for t in matched
                     if (got := self._scores.get((id(rec), t), good)) is None or got < good
                     for s, e in rec.refine.spans(t)}
            self._prescore(rec, [t for t in short if (id(rec), t) not in self._scores])

    def _prescore(self, rec: Recognizer, texts: list[str]) -> None:
        if texts:
            assert rec.validate_many is not None
            self._keep_scores(rec, texts, rec.validate_many(texts, self.region))

    def _keep_scores(self, rec: Recognizer, texts: list[str], scores: _Floats) -> None:
        for text, score in zip(texts, scores.tolist()):
            if score == score:  # NaN: left to rec.validate
                self._scores[(id(rec), text)] = None if score < 0 else score
