"""A SIGKILLed service leaves no masking worker or fork server behind (issue 19, item 13).

Before, the workers blocked for ever on their task queue (they hold its pipe's write end
themselves) and the fork server stayed with them (they hold its liveness pipe)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

_OWNER = textwrap.dedent("""
    import json, os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from privet.governance.datasets import workers
    from privet.governance.processes import process_identity

    def where():
        return os.getpid(), os.getppid()

    if __name__ == "__main__":
        pool = ProcessPoolExecutor(max_workers=2, mp_context=workers._context(), initializer=workers._install, initargs=(None, process_identity()))
        pids = {p for f in [pool.submit(where) for _ in range(8)] for p in f.result()}
        print(json.dumps(sorted(pids)), flush=True)
        time.sleep(600)
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_and_the_fork_server_exit_when_their_owner_is_killed(tmp_path) -> None:
    script = tmp_path / "owner.py"
    script.write_text(_OWNER)
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=os.getcwd(),
                             env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        helpers = [p for p in json.loads(owner.stdout.readline()) if p != owner.pid]  # workers and the fork server
        assert helpers and all(_alive(p) for p in helpers)
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in helpers), [p for p in helpers if _alive(p)]
