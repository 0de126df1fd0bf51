"""`PretrainedTokenizer`: a user's `tokenizer.json` (Hugging Face `tokenizers` format),
set up for fixed-width training batches.

Padding and truncation are set here, explicitly, whatever the file says: every text becomes
exactly `max_length` ids, padded on the right (the model wrapper masks `ids == pad_id`, and
decoder classifiers read the last non-pad token). The pad id is the file's own pad token;
failing that, a special token conventionally named as padding; failing that, the
end-of-sequence token (GPT-2 and Llama ship no pad token); failing that, refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
from tokenizers import Tokenizer

from privet.governance.errors import InvalidArgument

__all__ = ["PretrainedTokenizer"]

_MAX_LENGTH = 32768
_PAD_NAMES = ("[PAD]", "<pad>", "<|pad|>")
_EOS_NAMES = ("</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>")


class PretrainedTokenizer:
    """Texts → int64 token ids (rows × max_length) and back.

    `eos_id`: the model's end-of-sequence id (config.json's ``eos_token_id``); when None, a
    special token named like one (``</s>``, ``<|endoftext|>``, …) is used if there is one.
    Attributes: `pad_id`, `eos_id` (None when there is none), `max_length`, `sha256` (of
    the tokenizer.json bytes; a str argument is hashed as UTF-8), `vocab_size`.
    Raises InvalidArgument("tokenizer") for a file that does not parse or has neither a pad
    nor an end-of-sequence token, ("max_length") for a bad length.
    """

    def __init__(self, tokenizer_json: str | bytes, max_length: int, *, eos_id: int | None = None) -> None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or not 2 <= max_length <= _MAX_LENGTH:
            raise InvalidArgument("max_length", f"an integer in 2..{_MAX_LENGTH}")
        raw = tokenizer_json.encode("utf-8") if isinstance(tokenizer_json, str) else bytes(tokenizer_json)
        try:
            tok = Tokenizer.from_str(raw.decode("utf-8"))
        except Exception as exc:  # the Rust parser raises its own exception type
            raise InvalidArgument("tokenizer", f"not a tokenizer.json ({exc})") from None
        self.vocab_size = int(tok.get_vocab_size(with_added_tokens=True))
        self.eos_id = self._eos(tok, eos_id)
        self.pad_id = self._pad(tok, self.eos_id)
        pad_token = tok.id_to_token(self.pad_id)
        if pad_token is None:
            raise InvalidArgument("tokenizer", f"pad id {self.pad_id} is not in the vocabulary")
        # Set explicitly: what the file says about padding and truncation is not what
        # training records.
        tok.enable_truncation(max_length=max_length)
        tok.enable_padding(length=max_length, pad_id=self.pad_id, pad_token=pad_token, direction="right")
        self.max_length = max_length
        self.sha256 = hashlib.sha256(raw).hexdigest()
        self._tokenizer = tok

    def _special(self, tok: Tokenizer, names: Sequence[str]) -> int | None:
        specials = {t.content: i for i, t in tok.get_added_tokens_decoder().items() if t.special}
        return next((specials[n] for n in names if n in specials), None)

    def _eos(self, tok: Tokenizer, eos_id: int | None) -> int | None:
        if eos_id is None:
            return self._special(tok, _EOS_NAMES)
        if isinstance(eos_id, bool) or not isinstance(eos_id, int) or not 0 <= eos_id < self.vocab_size:
            raise InvalidArgument("tokenizer", f"eos id {eos_id!r} is not in the vocabulary")
        return eos_id

    def _pad(self, tok: Tokenizer, eos_id: int | None) -> int:
        padding = tok.padding
        if padding is not None and padding.get("pad_token") is not None:
            pad_id = tok.token_to_id(padding["pad_token"])
            if pad_id is not None:
                return int(pad_id)
        pad_id = self._special(tok, _PAD_NAMES)
        if pad_id is not None:
            return pad_id
        if eos_id is not None:
            return eos_id
        raise InvalidArgument("tokenizer", "the tokenizer has no pad token and no end-of-sequence token to pad with")

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Token ids of `texts`, int64 (len(texts) × max_length), right-padded."""
        if not texts:
            return torch.zeros((0, self.max_length), dtype=torch.int64)
        encodings = self._tokenizer.encode_batch(list(texts))
        return torch.from_numpy(np.asarray([e.ids for e in encodings], dtype=np.int64))

    def token_ids(self, text: str) -> list[int]:
        """The ids of one text without the padding (truncated to max_length), e.g. a prompt."""
        encoding = self._tokenizer.encode(text)
        return encoding.ids[: sum(encoding.attention_mask)]

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The text of `ids` (one sequence), special tokens (padding, eos) left out."""
        values = ids.reshape(-1).tolist() if isinstance(ids, torch.Tensor) else [int(i) for i in ids]
        return str(self._tokenizer.decode(values, skip_special_tokens=True))

    def __repr__(self) -> str:
        return f"PretrainedTokenizer(max_length={self.max_length}, pad_id={self.pad_id}, sha256={self.sha256[:12]}…)"
