"""`privet demo`: tell Privet's story step by step on a fresh home."""

from __future__ import annotations

import signal
import time

from rich.panel import Panel

from governance.bootstrap import init_home
from services.cli.app import Ctx, console
from services.common.health import wait_healthy

__all__ = ["run_demo"]


def _step(n: int, text: str) -> None:
    console.print(f"\n[bold cyan]{n}.[/bold cyan] {text}")


def run_demo(c: Ctx, *, keep: bool) -> None:
    from services.cli.platform_cmds import start_background_server

    started = time.monotonic()
    console.print(Panel.fit("Privet demo: governed, privacy-preserving models end to end", style="bold"))
    _step(1, f"Initialise the home at {c.home.root} (CA, certificates, keys, policies)")
    report = init_home(c.home)
    console.print(f"   created {len(report.created)} file(s), kept {len(report.kept)}")
    _step(2, "Start the services (privet serve all) over mutual TLS")
    proc = start_background_server(str(c.home.root), c.home.run / "serve.log")
    try:
        results = wait_healthy(c.home, c.principal)
        for r in results:
            mark = "[green]✓[/green]" if r.ok else "[red]✗[/red]"
            console.print(f"   {mark} {r.service:<10} {r.address:<18} {r.status}")
        if not all(r.ok for r in results):
            raise RuntimeError(f"services did not become healthy; see {c.home.run / 'serve.log'}")
        console.print(f"\n[green]done[/green] in {time.monotonic() - started:.1f}s")
    finally:
        if keep:
            console.print(f"services keep running (pid {proc.pid}); stop them with: kill {proc.pid}")
        else:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
