"""A facade module whose names stay one value with the modules that own them. Private:
only `formats` uses it.

Why it exists: tests and benchmarks lower a reader's limit on the facade they have always
imported, `monkeypatch.setattr(formats, "BLOCK_SIZE", 4096)` or `formats.BLOCK_SIZE = n`,
from before formats.py was split into a module per format. The readers read each limit
where it is defined (`limits.BLOCK_SIZE`), at call time. A plain re-export would be a
second copy that such a write changes alone; a forwarded name has no copy on the facade:
reading it reads the owner, setting it sets it on the owner. New code should patch the owner
(`limits`, `jsonl_reader`, `parquet_reader`) directly; once no caller patches the facade,
this module can go.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping
from typing import Any

__all__ = ["forward"]

Target = tuple[types.ModuleType, str]  # the owning module, and the name there


def _view(owner: types.ModuleType, name: str) -> property:
    def get(_module: types.ModuleType) -> Any:
        return getattr(owner, name)

    def set_(_module: types.ModuleType, value: Any) -> None:
        setattr(owner, name, value)

    return property(get, set_, doc=f"{owner.__name__}.{name}")


def forward(module_name: str, targets: Mapping[str, Target]) -> None:
    """Make each name in `targets` on the module `module_name` a view of its target (the
    owning module and the name there): the module's own copy (a re-export) is dropped, and
    the name becomes a property of the module's class, so that reading, setting and
    `monkeypatch` (which restores a data descriptor by setting it back) all reach the owner.
    Raises AttributeError for a target that does not exist."""
    module = sys.modules[module_name]
    for name, (owner, owner_name) in targets.items():
        getattr(owner, owner_name)  # fail at import, not at the first use
        module.__dict__.pop(name, None)
    views = {name: _view(owner, owner_name) for name, (owner, owner_name) in targets.items()}
    module.__class__ = type("ForwardingModule", (types.ModuleType,), {"__module__": __name__, **views})
