"""Base models: pre-trained `transformers` folders, registered as one safetensors *pack*.

A base model is a folder (`config.json`, safetensors weights — one `model.safetensors`, or
shards and `model.safetensors.index.json` — and `tokenizer.json`, among a few other data
files). The registry takes one safetensors stream per upload, so a folder travels as a
pack: one valid safetensors file in which each file is a `U8` tensor of shape `[size]`
named `file:<name>`, its data exactly the file's bytes (`framing`). Why:

- the registry's sealing, download, key rotation, erasure and audit apply to a base
  unchanged: to them it is one weights stream like any other;
- nothing is ever unpickled: the pack is safetensors, and so must every weights file in it
  be; pickles, code and configs that ask for a model's own code are refused (`rules`,
  applied by the packing client and again by the registry as the pack streams in);
- the manifest (`BaseFacts.files`) lists the SHA-256 of each original file, not of the
  pack, so it can be compared with the digests its publisher lists; and every use of a
  base checks its files against it (`BaseFiles.from_pack`);
- any safetensors reader, not only Privet's, reads each file back.

Modules: `rules` (what a folder may hold), `framing` (the pack's format), `pack` (folder
to pack and back), `checker` (the registry's streaming check, `BaseFacts`), `files` (a
registered base's files in memory, `BaseFiles`).
"""

# The registry imports `checker.BaseFacts`, and `checker` reads safetensors with the
# registry's `weights_format`, whose package imports the registry: the registry is loaded
# first so that the cycle resolves the same way whichever package a process imports first.
import privet.governance.registry  # noqa: F401

# isort: split
from privet.governance.basemodels.checker import BaseFacts, BasePackChecker
from privet.governance.basemodels.files import BaseFiles
from privet.governance.basemodels.pack import pack_folder, unpack

__all__ = ["BaseFacts", "BaseFiles", "BasePackChecker", "pack_folder", "unpack"]
