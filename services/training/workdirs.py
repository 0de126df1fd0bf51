"""The training scheduler's temporary directories: the job's tensors, in the clear.

A job's working directory holds its training and held-out tensors (decrypted, masked
data) and the worker's result. The scheduler removes it when the job ends; a scheduler
killed outright (SIGKILL, OOM) cannot, so each directory is named by the process that
made it (`privet-job-<pid>.<start>-<job>-<random>`) and the next scheduler on this host
removes those whose maker is gone.
"""

from __future__ import annotations

import logging
import pathlib
import shutil
import tempfile

from privet.governance.processes import identity_alive

__all__ = ["JOB_DIR_PREFIX", "sweep_job_dirs"]

JOB_DIR_PREFIX = "privet-job-"
log = logging.getLogger("privet.training")


def sweep_job_dirs(root: str | None = None) -> int:
    """Remove the job directories under `root` (the system temporary directory by default)
    whose making process no longer runs. Returns how many were removed."""
    removed = 0
    for path in pathlib.Path(root or tempfile.gettempdir()).glob(f"{JOB_DIR_PREFIX}*"):
        maker = path.name[len(JOB_DIR_PREFIX) :].split("-", 1)[0]
        if not path.is_dir() or identity_alive(maker):
            continue  # still in use, or a name whose maker cannot be told: left alone
        shutil.rmtree(path, ignore_errors=True)
        removed += not path.exists()
    if removed:
        log.warning("removed %d training directories left by stopped schedulers", removed)
    return removed
