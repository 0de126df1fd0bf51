"""Whether a process of this host is still running (for sweeping what a dead one left).

A process is told by its pid and its start time (`process_identity`): a pid alone is not
enough, since a restarted container brings its server back as pid 1, the pid of the process
that died, whose leftovers would then look alive for ever.
"""

from __future__ import annotations

import os
import pathlib
import re

__all__ = ["IDENTITY_PATTERN", "identity_alive", "process_alive", "process_identity"]

IDENTITY_PATTERN = re.compile(r"^([0-9]+)(?:\.([0-9]+))?$")  # <pid> or <pid>.<start ticks>


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def process_identity(pid: int | None = None) -> str:
    """`<pid>.<start>` for a process of this host (this one by default), `start` being when it
    started in clock ticks since boot (/proc/<pid>/stat, field 22): a later process that
    reuses the pid has another. Just `<pid>` where /proc cannot tell."""
    pid = os.getpid() if pid is None else pid
    start = _start_ticks(pid)
    return f"{pid}" if start is None else f"{pid}.{start}"


def identity_alive(identity: str) -> bool:
    """Whether the process incarnation `identity` (from `process_identity`) still runs.
    Conservative: what cannot be told apart from a live process counts as alive."""
    match = IDENTITY_PATTERN.fullmatch(identity)
    if match is None:
        return True
    pid, start = int(match.group(1)), match.group(2)
    if not process_alive(pid):
        return False
    if start is None:  # recorded without a start time: the pid is all there is to go on
        return True
    now = _start_ticks(pid)
    return now is None or str(now) == start


def _start_ticks(pid: int) -> int | None:
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (the command) is parenthesised and may hold spaces or ')': count from the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[22 - 3])
    except (IndexError, ValueError):
        return None
