"""The live policy set: swapped whole on reload; a set that fails to load never replaces it.

A refused set is logged with every problem, counted, and kept as `refused` (for the
`privet_policy_load_failing` metric and `privet status`) until a later change loads; the
last good set keeps serving meanwhile, and the next change is tried as usual.
"""

from __future__ import annotations

import logging
import pathlib
import stat
import threading

from privet.governance.policy.engine import PolicyEngine, PolicyError

__all__ = ["PolicyHolder"]

log = logging.getLogger("privet.policy")


class PolicyHolder:
    def __init__(self, folder: pathlib.Path) -> None:
        """Load `folder`. Raises PolicyError (every problem listed): a bad set stops the start."""
        self.folder = folder
        self._lock = threading.Lock()
        # Stamped before loading, so that an edit made while this load runs is seen next time.
        self._stamp = self._fingerprint()
        self._engine = PolicyEngine.load(folder)
        self._refused: PolicyError | None = None
        self.failures = 0  # loads refused since start

    @property
    def engine(self) -> PolicyEngine:
        return self._engine

    @property
    def refused(self) -> PolicyError | None:
        """Why the policy files as they are now did not load (None when the live set is theirs)."""
        return self._refused

    @property
    def failing(self) -> bool:
        return self._refused is not None

    def _fingerprint(self) -> tuple[tuple[str | int, ...], ...]:
        try:
            paths = list(self.folder.iterdir())
        except OSError as exc:  # a missing or unreadable folder is a change too: the load says why
            return (("", type(exc).__name__),)
        stamps = []
        for path in paths:
            try:
                st = path.stat()
            except OSError:  # removed while we looked
                continue
            if stat.S_ISREG(st.st_mode):
                stamps.append((path.name, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size))
        return tuple(sorted(stamps))

    def reload_if_changed(self) -> bool:
        """Reload when a file under the folder changed. Returns True if a new set is now live.

        Never raises for a bad set: it is refused, logged and remembered in `refused`, and the
        previous set keeps serving.
        """
        with self._lock:
            stamp = self._fingerprint()
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            try:
                engine = PolicyEngine.load(self.folder)
            except PolicyError as exc:
                error = exc
            except Exception as exc:  # anything unforeseen refuses the set too, never the watcher
                log.exception("policy reload failed unexpectedly")
                error = PolicyError(f"{self.folder}: {type(exc).__name__}: {exc}")
            else:
                self._engine, self._refused = engine, None
                log.info("policies reloaded from %s (%d policies)", self.folder, len(engine.policy_ids))
                return True
            self._refused = error
            self.failures += 1
            log.error("policy reload refused, the previous set keeps serving; %d problem(s):\n  %s",
                      len(error.problems), "\n  ".join(error.problems))
            return False
