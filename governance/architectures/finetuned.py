"""`transformer`: a registered base model fine-tuned under DP, as a catalog architecture.

The catalog builds a model from `(n_features, n_classes, **hparams)`; for this one the
hyperparameters name the base as Privet recorded it when the job was submitted (model,
version, digest, file manifest, config: `governance.registry.base_models.resolve_base`)
and what is trained (`pretrained_tuning.TuneSpec`). The base's files come from the
process's fetcher (`governance.basemodels.source`), checked against that record; on
PyTorch's `meta` device (the registry's shape check) only the recorded config is used.

Only the trained part is exported (adapter, head, unfrozen blocks): the base is rebuilt
from the registry, and a base whose digest differs is refused.

`BaseTextPreprocessor` tokenizes one text column with the base's own `tokenizer.json`,
loaded on first use, so that metadata alone (the registry's checks) needs no files.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn

from privet.governance.architectures.models import _Architecture, _register
from privet.governance.architectures.pretrained import build_model
from privet.governance.architectures.pretrained_text import PretrainedTokenizer
from privet.governance.architectures.pretrained_tuning import TuneSpec
from privet.governance.errors import DataLoss, InvalidArgument

__all__ = ["DEFAULT_MAX_LENGTH", "FINE_TUNED_ARCH", "BaseTextPreprocessor", "check_hparams", "is_causal_lm"]

FINE_TUNED_ARCH = "transformer"
DEFAULT_MAX_LENGTH = 128
_MAX_LENGTH = 512
_TUNE_KEYS = ("task", "tune", "lora_rank", "lora_alpha", "lora_targets", "last_k")
_REF_KEYS = ("model", "version", "digest", "model_type", "config", "files")
_PREPROCESSOR_VERSION = 1
#: Characters of text the tokenizer reads per token kept (WordPiece's longest word is 100).
MAX_CHARS_PER_TOKEN = 128


def _positions(config: Mapping[str, Any]) -> int:
    """How many tokens the base reads at most (its position table), capped."""
    limit = config.get("max_position_embeddings") or config.get("n_positions") or _MAX_LENGTH
    return min(int(limit), _MAX_LENGTH) if isinstance(limit, int) and not isinstance(limit, bool) else _MAX_LENGTH


def _source() -> Any:
    # Deferred: governance.basemodels reads the registry's safetensors framing, and the
    # registry checks uploads against this catalog; importing it here would be a cycle.
    from privet.governance.basemodels import source

    return source


def check_hparams(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters, checked and normalised: InvalidArgument naming `hparams.<name>`."""
    base = _source().check_ref(hparams.get("base"))
    config = base.get("config")
    if not isinstance(config, Mapping) or not isinstance(base.get("model_type"), str):
        raise InvalidArgument("hparams.base", "carries no config of the base")
    tune = TuneSpec.from_json({k: hparams[k] for k in _TUNE_KEYS if k in hparams})
    length = hparams.get("max_length", DEFAULT_MAX_LENGTH)
    if isinstance(length, bool) or not isinstance(length, int) or not 2 <= length <= _positions(config):
        raise InvalidArgument("hparams.max_length", f"an integer in 2..{_positions(config)} (tokens per text)")
    return {"base": {k: base[k] for k in _REF_KEYS}, **tune.to_json(), "max_length": length}


def is_causal_lm(arch: str, hparams: Mapping[str, Any] | None) -> bool:
    """Whether a job or model of `arch` with `hparams` is a causal language model (text in,
    text out, no target column)."""
    return arch == FINE_TUNED_ARCH and (hparams or {}).get("task") == "causal-lm"


def _on_meta() -> bool:
    return torch.get_default_device().type == "meta"


def _tokenizer_of(files: Any, max_length: int) -> PretrainedTokenizer:
    """The base's own tokenizer (its files were checked against the recorded manifest)."""
    eos = files.config.get("eos_token_id")
    return PretrainedTokenizer(files.tokenizer_json, max_length, eos_id=eos if isinstance(eos, int) and not isinstance(eos, bool) else None)


def _build(n_features: int, n_classes: int, *, base: Mapping[str, Any], max_length: int, **tuning: Any) -> nn.Module:
    if n_features != max_length:
        raise InvalidArgument("n_features", f"{n_features} tokens, but the model reads {max_length}")
    tune = TuneSpec.from_json(tuning)
    # A causal LM's "classes" are its vocabulary (the catalog records its output width).
    classes = None if tune.task == "causal-lm" else n_classes
    if _on_meta():
        # Shapes only (the registry's check): the recorded config is all there is to read.
        return build_model(dict(base["config"]), tune, classes, None)
    files = _source().base_files(base)
    if files.config != base["config"]:
        raise DataLoss(f"the config of base {base['model']}:{base['version']} is not the one recorded")
    # Padding is masked by the tokenizer's pad id: the model must mask the same one.
    pad = _tokenizer_of(files, max_length).pad_id
    return build_model(files.config, tune, classes, files.weights(), pad_id=pad)


_register(
    _Architecture(
        name=FINE_TUNED_ARCH,
        description="a registered base transformer (BERT, RoBERTa, GPT-2, Llama, ...) fine-tuned with LoRA, its head or its last blocks",
        defaults={"base": None, "task": "sequence-classification", "tune": "lora", "lora_rank": 8, "lora_alpha": 16.0,
                  "lora_targets": None, "last_k": 1, "max_length": DEFAULT_MAX_LENGTH},
        build=_build,
        check=check_hparams,
        input_kind="tokens",
    )
)


def _is_string(dtype: pa.DataType) -> bool:
    if pa.types.is_dictionary(dtype):
        return _is_string(dtype.value_type)
    return bool(pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype))


class BaseTextPreprocessor:
    """One string column → the base's token ids, int64 (rows × max_length), padded with the
    base tokenizer's pad id. The tokenizer is the base's own `tokenizer.json` (its SHA-256
    recorded), fetched and checked on first use."""

    KIND = "base-text"

    def __init__(self, column: str, max_length: int, base: Mapping[str, Any], tokenizer_sha256: str = "") -> None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or not 2 <= max_length <= _MAX_LENGTH:
            raise InvalidArgument("max_length", f"must be an integer in 2..{_MAX_LENGTH}")
        self.column = column
        self.max_length = max_length
        self.base = {k: _source().check_ref(base, "preprocessing.base")[k] for k in ("model", "version", "digest", "files")}
        manifest = self.base["files"].get("tokenizer.json")
        if not isinstance(manifest, Mapping) or not isinstance(manifest.get("sha256"), str):
            raise InvalidArgument("preprocessing.base", "the base's manifest lists no tokenizer.json")
        if tokenizer_sha256 and tokenizer_sha256 != manifest["sha256"]:
            raise InvalidArgument("preprocessing.tokenizer_sha256", "not the base's tokenizer.json")
        self.tokenizer_sha256 = str(manifest["sha256"])
        self._lock = threading.Lock()
        self._tokenizer: PretrainedTokenizer | None = None

    @classmethod
    def fit(cls, table: pa.Table, features: Sequence[str], *, base: Mapping[str, Any], max_length: int) -> BaseTextPreprocessor:
        """InvalidArgument naming `features` or the column unless `features` is one string column of `table`."""
        if len(features) != 1:
            raise InvalidArgument("features", f"{FINE_TUNED_ARCH} takes exactly one text column")
        (column,) = features
        if column not in table.column_names:
            raise InvalidArgument(column, "column not in the table")
        if not _is_string(table.column(column).type):
            raise InvalidArgument(column, f"{FINE_TUNED_ARCH} needs a string column, got {table.column(column).type}")
        return cls(column, max_length, base)

    def tokenizer(self) -> PretrainedTokenizer:
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = _tokenizer_of(_source().base_files(self.base), self.max_length)
            return self._tokenizer

    def to_metadata(self) -> dict[str, Any]:
        return {"version": _PREPROCESSOR_VERSION, "kind": self.KIND, "column": self.column, "max_length": self.max_length,
                "base": dict(self.base), "tokenizer_sha256": self.tokenizer_sha256}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> BaseTextPreprocessor:
        try:
            if metadata["version"] != _PREPROCESSOR_VERSION or metadata["kind"] != cls.KIND:
                raise InvalidArgument("preprocessing", "not base-text preprocessing metadata of a known version")
            return cls(str(metadata["column"]), int(metadata["max_length"]), dict(metadata["base"]), str(metadata["tokenizer_sha256"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument("preprocessing", f"malformed metadata ({exc!r})") from None

    @property
    def features(self) -> tuple[str, ...]:
        return (self.column,)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return (self.column,)

    @property
    def n_features(self) -> int:
        return self.max_length

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        if not texts:
            return torch.zeros((0, self.max_length), dtype=torch.int64)
        return self.tokenizer().encode(list(texts))

    def texts(self, table: pa.Table) -> list[str]:
        """The text column of `table` ("" for a missing value). InvalidArgument naming the
        column when it is missing or not text."""
        if self.column not in table.column_names:
            raise InvalidArgument(self.column, "column not in the table")
        column = table.column(self.column)
        if not _is_string(column.type):
            raise InvalidArgument(self.column, f"expected a string column, got {column.type}")
        # Only the first max_length tokens are kept: the tokenizer is given no more text than
        # they can span (a word-piece covers at most MAX_CHARS_PER_TOKEN characters), so a
        # huge text costs what a long one does. Training, serving and prompts cut alike.
        limit = self.max_length * MAX_CHARS_PER_TOKEN
        texts: list[str] = pc.utf8_slice_codeunits(pc.fill_null(pc.cast(column, pa.string()), ""), 0, limit).to_pylist()
        return texts

    def transform(self, table: pa.Table) -> torch.Tensor:
        return self.encode(self.texts(table))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BaseTextPreprocessor) and (self.column, self.max_length, self.base["digest"]) == (
            other.column, other.max_length, other.base["digest"])

    def __hash__(self) -> int:
        return hash((self.column, self.max_length, self.base["digest"]))

    def __repr__(self) -> str:
        return f"BaseTextPreprocessor(column={self.column!r}, max_length={self.max_length}, base={self.base['model']}:{self.base['version']})"
