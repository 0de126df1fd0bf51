"""The registry's check of a base model pack, as the upload streams by.

`BasePackChecker` takes the place of the plain safetensors check for a base: it checks the
pack's framing (the registry's `SafetensorsChecker`, through `framing.HeaderTap`), hashes
every file, keeps the files that are not weights, checks each weights file as the
safetensors file it must be (a `SafetensorsChecker` of its own, fed its bytes), and at the
end applies `rules` to the whole folder. Memory: the headers and the small files, never the
weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from privet.governance.basemodels import rules
from privet.governance.basemodels.framing import MAX_PACK_HEADER, HeaderTap, Member, members
from privet.governance.errors import InvalidArgument
from privet.governance.registry.weights_format import SafetensorsChecker, TensorInfo

__all__ = ["BaseFacts", "BasePackChecker"]


@dataclass(frozen=True)
class BaseFacts:
    """What the registry establishes from a base model's files."""

    model_type: str
    architectures: list[str]
    # Elements of every tensor the weights files hold (tied weights are stored, and
    # counted, once), in all and per safetensors dtype.
    parameters: int
    parameters_by_dtype: dict[str, int]
    config: dict[str, Any]
    # The manifest: each file's SHA-256 (hex) and size, of the original file's bytes, so
    # they compare with the digests its publisher lists.
    files: dict[str, dict[str, Any]]
    tensor_names: list[str]  # every tensor of the weights files, sorted

    def to_json(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type, "architectures": list(self.architectures), "parameters": self.parameters,
            "parameters_by_dtype": dict(self.parameters_by_dtype), "config": self.config,
            "files": {path: dict(entry) for path, entry in self.files.items()}, "tensor_names": list(self.tensor_names),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> BaseFacts:
        return cls(
            model_type=str(doc["model_type"]), architectures=[str(a) for a in doc["architectures"]], parameters=int(doc["parameters"]),
            parameters_by_dtype={str(k): int(v) for k, v in doc["parameters_by_dtype"].items()}, config=dict(doc["config"]),
            files={str(path): {"sha256": str(entry["sha256"]), "size": int(entry["size"])} for path, entry in doc["files"].items()},
            tensor_names=[str(name) for name in doc["tensor_names"]],
        )


class _File:
    """One file as its bytes go by: digest and size, and its bytes (small files) or its own
    safetensors check (weights files); `close` when its last byte has gone by."""

    def __init__(self, path: str) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._kept: bytearray | None = None if rules.is_weights(path) else bytearray()
        self._weights = SafetensorsChecker(field=rules.file_field(path)) if rules.is_weights(path) else None
        self.data: bytes | None = None  # a small file's bytes, once closed
        self.tensors: list[TensorInfo] | None = None  # a weights file's tensors, once closed

    def feed(self, piece: memoryview) -> None:
        self.sha256.update(piece)
        self.size += len(piece)
        if self._weights is not None:
            self._weights.feed(piece)
        else:
            assert self._kept is not None
            self._kept += piece

    def close(self) -> None:
        if self._weights is not None:
            self.tensors = self._weights.finish()  # raises unless the file was exactly complete
        else:
            assert self._kept is not None
            self.data, self._kept = bytes(self._kept), None


class BasePackChecker:
    """`feed(data)` each piece of an upload in order, then `finish()` for its `BaseFacts`.

    InvalidArgument("weights") when the bytes are not a pack (the registry's name for the
    upload), InvalidArgument("files[<path>]" or "config.json") when a file breaks the rules.
    Files are refused by name and size as soon as the pack's header is read, a weights file
    as soon as its own bytes are; the rest of the rules apply at `finish`."""

    def __init__(self) -> None:
        self._tap = HeaderTap(field="weights", max_header=MAX_PACK_HEADER)
        self._members: list[Member] | None = None
        self._files: dict[str, _File] = {}
        self._at = 0  # index of the member the next body byte belongs to
        self._offset = 0  # body bytes seen
        self._tensors = 0  # tensors of the weights files closed so far

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        body = self._tap.feed(data)
        if self._tap.tensors is None:
            return
        if self._members is None:
            self._members = members(self._tap)
            rules.check_listing({m.path: m.size for m in self._members})
            self._files = {m.path: _File(m.path) for m in self._members}
        # The tap's checker has refused any byte past the last file's end.
        while body:
            member = self._members[self._at]
            piece = body[:member.end - self._offset]
            self._files[member.path].feed(piece)
            self._offset += len(piece)
            body = body[len(piece):]
            self._close_complete()

    def _close_complete(self) -> None:
        """Close each member whose bytes have all gone by (empty ones included)."""
        assert self._members is not None
        while self._at < len(self._members) and self._members[self._at].end <= self._offset:
            file = self._files[self._members[self._at].path]
            file.close()
            # The tensor list is what a header's size turns into in memory: bounded as it grows.
            self._tensors += len(file.tensors or ())
            rules.check_tensor_count(self._tensors)
            self._at += 1

    def finish(self) -> BaseFacts:
        self._tap.finish()  # raises unless the stream held the whole pack
        self._close_complete()  # empty files at the end, or every file of a pack of empty files
        tensors = {path: file.tensors for path, file in self._files.items() if file.tensors is not None}
        small = {path: file.data for path, file in self._files.items() if file.data is not None}
        sizes = {path: file.size for path, file in self._files.items()}
        folder = rules.check_folder(sizes, small, {path: [t.name for t in infos] for path, infos in tensors.items()})
        _check_weights_fit_config(folder.config, [info for infos in tensors.values() for info in infos])
        by_dtype = _parameters_by_dtype(info for infos in tensors.values() for info in infos)
        return BaseFacts(
            model_type=folder.model_type, architectures=list(folder.architectures), parameters=sum(by_dtype.values()),
            parameters_by_dtype=by_dtype, config=folder.config,
            files={path: {"sha256": file.sha256.hexdigest(), "size": file.size} for path, file in sorted(self._files.items())},
            tensor_names=sorted(info.name for infos in tensors.values() for info in infos),
        )


def _check_weights_fit_config(config: dict[str, Any], tensors: list[TensorInfo]) -> None:
    """The weights are the ones config.json describes, name by name and shape by shape, as
    a job will load them: the facts the registry records (model type, config) may not
    contradict the weights they describe."""
    from privet.governance.architectures.pretrained import check_base_weights

    try:
        check_base_weights(config, {info.name: info.shape for info in tensors})
    except InvalidArgument as exc:
        raise InvalidArgument(rules.CONFIG, f"does not describe these weights: {exc.message}") from None


def _parameters_by_dtype(tensors: Iterable[TensorInfo]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for info in tensors:
        elements = 1
        for d in info.shape:
            elements *= d
        counts[info.dtype] = counts.get(info.dtype, 0) + elements
    return dict(sorted(counts.items()))
