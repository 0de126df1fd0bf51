"""The live policy set: swapped whole on reload; a set that fails to load never replaces it."""

from __future__ import annotations

import logging
import pathlib
import threading

from governance.policy.engine import PolicyEngine, PolicyError

__all__ = ["PolicyHolder"]

log = logging.getLogger("privet.policy")


class PolicyHolder:
    def __init__(self, folder: pathlib.Path) -> None:
        self.folder = folder
        self._engine = PolicyEngine.load(folder)  # fails loudly at start
        self._stamp = self._fingerprint()
        self._lock = threading.Lock()

    @property
    def engine(self) -> PolicyEngine:
        return self._engine

    def _fingerprint(self) -> tuple:
        return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in self.folder.iterdir() if p.is_file()))

    def reload_if_changed(self) -> bool:
        """Reload when a file under the folder changed. Returns True if a new set is now live."""
        with self._lock:
            stamp = self._fingerprint()
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            try:
                self._engine = PolicyEngine.load(self.folder)
            except (PolicyError, ValueError) as exc:
                log.error("policy reload refused, the previous set keeps serving: %s", exc)
                return False
            log.info("policies reloaded from %s", self.folder)
            return True
