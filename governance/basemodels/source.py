"""Where a process gets the files of a registered base model, checked against its record.

The registry holds a base's pack sealed; a process that trains or serves a model built on
it (the training worker, the inference service) fetches the pack over gRPC with its own
identity and never writes it to disk. This module does not know how the bytes travel (no
gRPC in `governance/`): the service installs a fetcher with `use_fetcher`, and every
caller asks `base_files(ref)` with the reference Privet recorded when the job was
submitted (`{"model", "version", "digest", "files"}`). The pack's SHA-256 must equal the
recorded digest and every file its manifest entry, or DataLoss: a base that differs from
the one a job was charged for is never used.

A few bases stay in memory (by digest): a base of 100 M parameters is 400 MB, and every
job and served version built on it shares the same files.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from privet.governance.basemodels.files import BaseFiles
from privet.governance.errors import DataLoss, FailedPrecondition, InvalidArgument

__all__ = ["BaseFetcher", "base_files", "check_ref", "use_fetcher"]

#: (base model name, version) -> the pack's bytes, as the registry sent them.
BaseFetcher = Callable[[str, int], bytes]

_KEPT = 2
_lock = threading.Lock()
_fetcher: BaseFetcher | None = None
_kept: OrderedDict[str, BaseFiles] = OrderedDict()


def use_fetcher(fetcher: BaseFetcher | None) -> None:
    """Install how this process fetches base packs (None: none; forgets what was kept)."""
    global _fetcher
    with _lock:
        _fetcher = fetcher
        _kept.clear()


def check_ref(ref: Any, field: str = "hparams.base") -> Mapping[str, Any]:
    """A recorded base reference, well formed: InvalidArgument naming `field` otherwise."""
    if not isinstance(ref, Mapping):
        raise InvalidArgument(field, "a reference to a registered base model (model, version, digest, files)")
    model, version, digest, files = ref.get("model"), ref.get("version"), ref.get("digest"), ref.get("files")
    if not isinstance(model, str) or not model or isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidArgument(field, "names no base model version")
    if not isinstance(digest, str) or len(digest) != 64 or not isinstance(files, Mapping) or not files:
        raise InvalidArgument(field, "carries no digest or file manifest of the base")
    return ref


def base_files(ref: Mapping[str, Any]) -> BaseFiles:
    """The verified files of the base `ref` records. FailedPrecondition when this process
    has no fetcher; DataLoss when the pack or a file differs from the record; what the
    fetcher raises (the registry's refusal of a base that is no longer released)."""
    ref = check_ref(ref)
    digest = str(ref["digest"])
    with _lock:
        if digest in _kept:
            _kept.move_to_end(digest)
            return _kept[digest]
        fetcher = _fetcher
    if fetcher is None:
        raise FailedPrecondition("this process cannot fetch base models (no registry connection was set up)")
    data = fetcher(str(ref["model"]), int(ref["version"]))
    if hashlib.sha256(data).hexdigest() != digest:
        raise DataLoss(f"the base {ref['model']}:{ref['version']} is not the one recorded (sha256 differs): refusing to use it")
    files = BaseFiles.from_pack(data, ref["files"])
    with _lock:
        _kept[digest] = files
        while len(_kept) > _KEPT:
            _kept.popitem(last=False)
    return files
