"""What a base model folder may hold: the one home of these rules.

Both sides apply them: the packing client before it sends a byte (`pack.pack_folder`), and
the registry as the pack streams in (`checker.BasePackChecker`). A folder is flat and holds
only the files `transformers` and `tokenizers` read as data: JSON, text and safetensors.

What is refused, and why:
- pickles (`*.bin`, `*.pt`, `*.pth`, `*.pkl`, `*.ckpt`, and any small file that starts like
  a pickle or a zip written by `torch.save`): unpickling runs code;
- code (`*.py`) and every file name not on the list: a loader that finds it may run it;
- a JSON file naming `auto_map` or `trust_remote_code` anywhere: the way `transformers`
  is told to fetch and run a repository's own code;
- a `model_type` that `transformers` does not implement itself (the same door);
- a folder the platform cannot use: no `tokenizer.json`, no weights, an index and shards
  that disagree.

Weights files are checked by their safetensors framing (their header must be a JSON object
whose offsets cover the file exactly), which refuses a pickle too. The pickle sniff is not
applied to them: a real safetensors file whose header is 640 bytes long starts with the
bytes `80 02`, a pickle's marker.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from privet.governance.errors import InvalidArgument
from privet.governance.jsonlimits import check_json_depth, object_without_duplicates

__all__ = [
    "CONFIG",
    "INDEX",
    "MAX_CONFIG_BYTES",
    "MAX_FILES",
    "MAX_PATH_CHARS",
    "MAX_SMALL_FILE_BYTES",
    "MAX_SMALL_TOTAL_BYTES",
    "MAX_TENSORS",
    "SINGLE_WEIGHTS",
    "TOKENIZER",
    "Folder",
    "check_folder",
    "check_listing",
    "check_member",
    "check_path",
    "check_tensor_count",
    "file_field",
    "is_weights",
]

CONFIG = "config.json"
INDEX = "model.safetensors.index.json"
TOKENIZER = "tokenizer.json"
SINGLE_WEIGHTS = "model.safetensors"

MAX_FILES = 64
MAX_PATH_CHARS = 128
# Every file but the weights is held in memory while it is checked (the largest real
# tokenizer.json files are tens of MiB); the total bounds the checker's memory.
MAX_SMALL_FILE_BYTES = 64 << 20
MAX_SMALL_TOTAL_BYTES = 256 << 20
MAX_CONFIG_BYTES = 1 << 20
# Tensors in all the weights files together: the largest published checkpoints hold under
# 100,000; each costs a few hundred bytes of the checker's memory.
MAX_TENSORS = 1 << 18

_SHARD = re.compile(r"model-(\d{5})-of-(\d{5})\.safetensors")
_SMALL_FILES = frozenset({
    CONFIG, "generation_config.json", INDEX, TOKENIZER, "tokenizer_config.json", "special_tokens_map.json",
    "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json", "README.md", "LICENSE", "LICENSE.txt",
})
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
# Keys by which a JSON file asks `transformers` to import a repository's own code.
_REMOTE_CODE_KEYS = frozenset({"auto_map", "trust_remote_code"})
_ARCHITECTURE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_NO_TOKENIZER = ("required: the platform tokenizes with the `tokenizers` library from tokenizer.json only "
                 "(save it with a fast tokenizer's save_pretrained, or tokenizers.Tokenizer.save)")


@dataclass(frozen=True)
class Folder:
    """What the rules read from a folder that passed them."""

    config: dict[str, Any]
    model_type: str
    architectures: list[str]
    # The index's tensor -> shard map (None for a single model.safetensors).
    weight_map: dict[str, str] | None


def file_field(path: str) -> str:
    """The error field naming a file: `files[<path>]`, shown printable and bounded."""
    shown = path if path.isprintable() else ascii(path)[1:-1]
    if len(shown) > MAX_PATH_CHARS:
        shown = shown[:MAX_PATH_CHARS] + "..."
    return f"files[{shown}]"


def is_weights(path: str) -> bool:
    """A safetensors weights file: `model.safetensors` or a `model-XXXXX-of-XXXXX` shard."""
    return path == SINGLE_WEIGHTS or _SHARD.fullmatch(path) is not None


def check_path(path: str) -> None:
    """InvalidArgument(files[path]) unless `path` is a file name a folder may hold."""
    field = file_field(path)
    if not path or "\x00" in path or len(path) > MAX_PATH_CHARS:
        raise InvalidArgument(field, f"a file name is 1-{MAX_PATH_CHARS} characters without NUL")
    if "/" in path or "\\" in path or ".." in path or path.startswith("."):
        raise InvalidArgument(field, "the folder must be flat: no subfolders, '..' or hidden files")
    if path.lower().endswith(_PICKLE_SUFFIXES):
        raise InvalidArgument(field, "pickle files are refused (nothing is ever unpickled): save the weights as safetensors")
    if path.lower().endswith(".py"):
        raise InvalidArgument(field, "code is refused: a base model must be one that transformers implements itself")
    if path not in _SMALL_FILES and not is_weights(path):
        raise InvalidArgument(field, f"not a file a base model folder may hold (allowed: {', '.join(sorted(_SMALL_FILES))}, "
                                     f"{SINGLE_WEIGHTS} or model-XXXXX-of-XXXXX.safetensors shards)")


def check_member(path: str, size: int) -> None:
    """`check_path`, and the size cap of a file held in memory."""
    check_path(path)
    if not is_weights(path) and size > MAX_SMALL_FILE_BYTES:
        raise InvalidArgument(file_field(path), f"{size} bytes; files other than the weights are at most {MAX_SMALL_FILE_BYTES}")


def check_listing(sizes: Mapping[str, int]) -> None:
    """The rules that need only the names and sizes: run before any content is read."""
    if len(sizes) > MAX_FILES:
        raise InvalidArgument("files", f"{len(sizes)} files; a base model folder holds at most {MAX_FILES}")
    for path, size in sizes.items():
        check_member(path, size)
    small = sum(size for path, size in sizes.items() if not is_weights(path))
    if small > MAX_SMALL_TOTAL_BYTES:
        raise InvalidArgument("files", f"{small} bytes besides the weights; at most {MAX_SMALL_TOTAL_BYTES}")
    for required, why in ((CONFIG, "required"), (TOKENIZER, _NO_TOKENIZER)):
        if required not in sizes:
            raise InvalidArgument(file_field(required), why)
    if not any(is_weights(path) for path in sizes):
        raise InvalidArgument("files", f"no weights: {SINGLE_WEIGHTS}, or shards and {INDEX}")


def check_tensor_count(count: int) -> None:
    """InvalidArgument unless `count` tensors in all the weights files are within bounds."""
    if count > MAX_TENSORS:
        raise InvalidArgument("files", f"{count} tensors in the weights files; at most {MAX_TENSORS}")


def check_folder(sizes: Mapping[str, int], small: Mapping[str, bytes], tensors: Mapping[str, Iterable[str]]) -> Folder:
    """Every rule, over a whole folder: `sizes` of all its files, the bytes of the files that
    are not weights (`small`), and the tensor names each weights file holds (`tensors`,
    read from its safetensors header, which the caller has checked)."""
    check_listing(sizes)
    for path, data in small.items():
        _check_small_file(path, data)
    config = _check_config(small[CONFIG])
    _check_padding(small[TOKENIZER], config)
    weights = {path for path in sizes if is_weights(path)}
    weight_map = _weight_map(small[INDEX]) if INDEX in small else None
    _check_shards(weights, weight_map)
    _check_tensors(tensors, weight_map)
    return Folder(config, config["model_type"], config.get("architectures", []), weight_map)


def _check_small_file(path: str, data: bytes) -> None:
    field = CONFIG if path == CONFIG else file_field(path)  # the config's content is named as the config
    # A pickle (protocol 2-5 starts with PROTO, 0x80 and the protocol) or a torch.save zip.
    if (len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5) or data.startswith(b"PK\x03\x04"):
        raise InvalidArgument(field, "starts like a pickle or a torch.save zip: refused (nothing is ever unpickled)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(field, "not UTF-8 text: only the weights files may be binary") from None
    if path.endswith(".json") and path != CONFIG:  # the config is read by _check_config
        _load_json(field, data)
    if path == TOKENIZER:
        _check_tokenizer(text)


def _load_json(field: str, data: bytes) -> dict[str, Any]:
    """A JSON object, its nesting bounded before it is parsed; duplicate keys, NaN and
    Infinity (not JSON: other readers refuse them) and remote-code keys are refused."""
    check_json_depth(data, field=field)
    try:
        doc = json.loads(data, object_pairs_hook=object_without_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(field, f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(field, "must be a JSON object")
    key = _remote_code_key(doc)
    if key is not None:
        raise InvalidArgument(field, f"names {key!r}: a model's own code is never run; only models transformers implements itself are accepted")
    return doc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _remote_code_key(value: Any) -> str | None:
    """The first remote-code key at any depth (the depth is bounded: recursion is safe)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _REMOTE_CODE_KEYS:
                return str(key)
            found = _remote_code_key(item)
            if found is not None:
                return found
    elif isinstance(value, list):
        for item in value:
            found = _remote_code_key(item)
            if found is not None:
                return found
    return None


def _check_tokenizer(text: str) -> None:
    # Parsed by the Rust library the platform tokenizes with: a file it cannot load is
    # refused now rather than when a job starts. Parsing builds data, it runs no code.
    from tokenizers import Tokenizer

    try:
        Tokenizer.from_str(text)
    except Exception as exc:  # the library raises plain Exception on a bad file
        raise InvalidArgument(file_field(TOKENIZER), f"the tokenizers library cannot load it ({exc})") from None


def _check_padding(tokenizer: bytes, config: Mapping[str, Any]) -> None:
    """The tokenizer can pad a batch the way training and serving will (its pad token, else
    the model's end-of-sequence token): a base it cannot pad is refused now, not after a
    job has reserved its budget."""
    from privet.governance.architectures.pretrained_text import PretrainedTokenizer

    eos = config.get("eos_token_id")
    try:
        PretrainedTokenizer(tokenizer, 8, eos_id=eos if isinstance(eos, int) and not isinstance(eos, bool) else None)
    except InvalidArgument as exc:
        raise InvalidArgument(file_field(TOKENIZER), exc.message) from None


def _check_config(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_CONFIG_BYTES:
        raise InvalidArgument(CONFIG, f"{len(data)} bytes; at most {MAX_CONFIG_BYTES}")
    config = _load_json(CONFIG, data)
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise InvalidArgument(CONFIG, "model_type is required (a model type transformers implements)")
    if model_type not in _native_model_types():
        raise InvalidArgument(CONFIG, f"model_type {model_type!r} is not one transformers implements itself (models that need their own code are refused)")
    architectures = config.get("architectures", [])
    if not (isinstance(architectures, list) and len(architectures) <= 16 and all(isinstance(a, str) and _ARCHITECTURE.fullmatch(a) for a in architectures)):
        raise InvalidArgument(CONFIG, "architectures must be a list of at most 16 class names")
    return config


@functools.cache
def _native_model_types() -> frozenset[str]:
    """The model types transformers implements itself. CONFIG_MAPPING_NAMES is the static
    table behind CONFIG_MAPPING, without what a process registered at run time; reading it
    imports no model code. Imported here, not at the top: transformers takes seconds to
    import, and only a folder's check needs it (mypy sees Any: it stays out of transformers)."""
    module = importlib.import_module("transformers.models.auto.configuration_auto")
    return frozenset(module.CONFIG_MAPPING_NAMES)


def _weight_map(data: bytes) -> dict[str, str]:
    field = file_field(INDEX)
    weight_map = _load_json(field, data).get("weight_map")
    if not (isinstance(weight_map, dict) and weight_map and all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items())):
        raise InvalidArgument(field, "weight_map must map tensor names to shard file names")
    return weight_map


def _check_shards(weights: set[str], weight_map: Mapping[str, str] | None) -> None:
    """With an index, the shards it names are exactly the weights files present; without
    one, the weights are the single model.safetensors."""
    if weight_map is None:
        _refuse_any(weights - {SINGLE_WEIGHTS}, lambda path: (file_field(path), f"a shard needs {INDEX} naming the tensors it holds"))
        return
    named = set(weight_map.values())
    _refuse_any(named - weights, lambda path: (file_field(path), f"named by {INDEX} but not in the folder"))
    _refuse_any(weights - named, lambda path: (file_field(path), f"in the folder but not named by {INDEX}"))


def _check_tensors(tensors: Mapping[str, Iterable[str]], weight_map: Mapping[str, str] | None) -> None:
    """Each tensor lies in one weights file, and in the shard the index names for it."""
    names = {path: list(tensors[path]) for path in sorted(tensors)}
    check_tensor_count(sum(map(len, names.values())))
    where: dict[str, str] = {}
    for path in names:
        for name in names[path]:
            if name in where:
                raise InvalidArgument(file_field(path), f"tensor {name!r} is also in {where[name]}")
            where[name] = path
    if weight_map is None:
        return
    field = file_field(INDEX)
    for name, shard in sorted(weight_map.items()):
        if where.get(name) != shard:
            raise InvalidArgument(field, f"tensor {name!r} is not in {shard}, the shard the index names")
    _refuse_any(set(where) - set(weight_map), lambda name: (field, f"tensor {name!r} in {where[name]} is not in the index"))


def _refuse_any(found: set[str], why: Callable[[str], tuple[str, str]]) -> None:
    """InvalidArgument for the first of `found` (sorted: the same one every time), if any."""
    if found:
        raise InvalidArgument(*why(min(found)))
