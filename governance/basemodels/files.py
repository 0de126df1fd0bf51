"""A registered base model's files, decrypted, checked against its manifest, in memory.

A job or the inference service gets a base's pack from the registry; `BaseFiles.from_pack`
compares every file with the manifest the registry wrote when the base was registered
(`BaseFacts.files`), so that what is used is exactly what was checked and approved.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import torch
from safetensors.torch import load as load_safetensors

from privet.governance.basemodels import rules
from privet.governance.basemodels.pack import unpack
from privet.governance.errors import DataLoss, InvalidArgument, NotFound

__all__ = ["BaseFiles"]


class BaseFiles:
    """The files of a base model, by name. Build with `from_pack`."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self._files = dict(files)

    @classmethod
    def from_pack(cls, data: bytes, manifest: Mapping[str, Mapping[str, Any]]) -> BaseFiles:
        """The files of the pack `data`. DataLoss naming the file unless the pack holds
        exactly the manifest's files, each of the size and SHA-256 it lists: a base that
        differs from what was registered is never used."""
        files = unpack(data)
        for name in sorted(set(manifest) | set(files)):
            if name not in files:
                raise DataLoss(f"base model file {name!r} is in the manifest but not in the pack")
            if name not in manifest:
                raise DataLoss(f"base model file {name!r} is in the pack but not in the manifest")
            entry, content = manifest[name], files[name]
            if len(content) != entry["size"] or hashlib.sha256(content).hexdigest() != entry["sha256"]:
                raise DataLoss(f"base model file {name!r} differs from the registered one (size or SHA-256)")
        return cls(files)

    @property
    def names(self) -> list[str]:
        return sorted(self._files)

    def file(self, name: str) -> bytes:
        try:
            return self._files[name]
        except KeyError:
            raise NotFound(f"the base model has no file {name!r}") from None

    @cached_property
    def config(self) -> dict[str, Any]:
        """config.json, parsed (checked when the base was registered)."""
        config: dict[str, Any] = json.loads(self.file(rules.CONFIG))
        return config

    @property
    def tokenizer_json(self) -> str:
        """tokenizer.json, for `tokenizers.Tokenizer.from_str`."""
        return self.file(rules.TOKENIZER).decode("utf-8")

    def weights(self) -> dict[str, torch.Tensor]:
        """Every tensor of every weights file, merged (safetensors only: nothing is
        unpickled). InvalidArgument when two files hold a tensor of one name."""
        tensors: dict[str, torch.Tensor] = {}
        where: dict[str, str] = {}
        for name in self.names:
            if not rules.is_weights(name):
                continue
            for key, tensor in load_safetensors(self._files[name]).items():
                if key in where:
                    raise InvalidArgument(rules.file_field(name), f"tensor {key!r} is also in {where[key]}")
                tensors[key], where[key] = tensor, name
        return tensors
