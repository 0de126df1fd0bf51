"""privet init | serve | status | demo."""

from __future__ import annotations

import logging
import signal
import threading

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from privet.governance.bootstrap import add_user, init_home
from privet.governance.config import SERVICES, Home
from privet.governance.errors import InvalidArgument
from privet.governance.platform_status import platform_facts
from privet.governance.policy.engine import PolicyEngine, PolicyError
from privet.governance.runtime import Runtime
from privet.services.cli.context import console, ctx_of, emit
from privet.services.common.health import check_health
from privet.services.common.logging_setup import LOG_FORMATS, configure_logging

__all__: list[str] = []


def init(
    ctx: typer.Context,
    principal: str | None = typer.Option(None, help="Also add this user principal."),
    role: str | None = typer.Option(None, help="Role of --principal."),
    team: str = typer.Option("", help="Team of --principal: it works on its team's datasets, jobs and models."),
) -> None:
    """Create PRIVET_HOME (CA, certificates, keys, policies). Idempotent; never overwrites a key."""
    c = ctx_of(ctx)
    report = init_home(c.home)
    added = None
    if principal:
        if not role:
            raise typer.BadParameter("--principal needs --role")
        added = add_user(c.home, principal, role, team)
    emit(
        c,
        {"home": str(c.home.root), "created": report.created, "kept": len(report.kept), "principal_added": added},
        f"[green]✓[/green] home {c.home.root}: created {len(report.created)} file(s), kept {len(report.kept)}"
        + (f"; principal {principal} ({role}) {'added' if added else 'already present'}" if principal else ""),
    )


def serve(
    ctx: typer.Context,
    name: str = typer.Argument("all", help="all | ingestion | training | registry | inference"),
    log_format: str = typer.Option("text", "--log-format", help="text | json (one JSON object per line: time, level, logger, message, fields)"),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG | INFO | WARNING | ERROR"),
) -> None:
    """Run Privet servers in the foreground until SIGTERM/SIGINT (graceful shutdown)."""
    c = ctx_of(ctx)
    names = SERVICES if name == "all" else (name,)
    if any(n not in SERVICES for n in names):
        raise typer.BadParameter(f"unknown service {name!r}")
    if not c.home.ca_cert.exists():
        raise typer.BadParameter(f"{c.home.root} is not initialised: run `privet init` first")
    if log_format not in LOG_FORMATS:
        raise InvalidArgument("--log-format", f"must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    try:
        configure_logging("json" if log_format == "json" else "text", log_level.upper())
    except ValueError as exc:
        raise InvalidArgument("--log-level", str(exc)) from None
    # Imported here: the servers load Privet's KServe protos, which must not share a process
    # with tritonclient's (`privet infer`, `privet demo`).
    from privet.services.launcher import start_services

    runtime = Runtime.open(c.home)
    servers = start_services(runtime, names)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    (c.home.run / "serve.pid").write_text(str(__import__("os").getpid()))
    def announce(message: str) -> None:  # with --log-format json, every line the server writes is a JSON record
        if log_format == "json":
            logging.getLogger("privet.serve").info(message)
        else:
            console.print(message, highlight=False, markup=False)

    announce(f"serving {', '.join(f'{s.name}:{s.port}' for s in servers)} from {c.home.root}")
    stop.wait()
    announce("shutting down gracefully")
    for server in servers:
        server.stop(10)
    runtime.close()


def status(ctx: typer.Context) -> None:
    """Health of each service, checked over mTLS as the acting principal; whether the home's
    policy files load (a set that does not is refused: the services keep the last one); the
    version, the database, the audit log's size and the training queue."""
    c = ctx_of(ctx)
    results = check_health(c.home, c.principal)
    policies = _policy_status(c.home)
    facts = platform_facts(c.home) if c.home.config_path.exists() else []
    table = Table("service", "address", "health")
    for r in results:
        table.add_row(r.service, r.address, f"[green]{r.status}[/green]" if r.ok else f"[red]{r.status}[/red]")
    if policies is not None:
        table.add_row("policies", str(c.home.policies),
                      f"[green]{policies['status']}[/green]" if policies["ok"] else f"[red]{policies['status']}[/red]")
    for fact in facts:
        table.add_row(fact.name, "", fact.value if fact.ok else f"[red]{fact.value}[/red]")
    human: object = table
    if policies is not None and not policies["ok"]:
        problems = Table.grid()
        problems.add_row("[red]policy files refused[/red]; services already running keep serving the last set "
                         "that loaded, and a restart would fail until these are fixed:")
        for problem in policies["problems"]:
            problems.add_row(Text(f"  {problem}"))  # plain text: a problem may hold [brackets]
        human = Group(table, problems)
    rows = [r.__dict__ for r in results] + ([policies] if policies is not None else [])
    emit(c, rows + [{"service": f.name, "address": "", "ok": f.ok, "status": f.value} for f in facts], human)
    if not all(r.ok for r in results) or (policies is not None and not policies["ok"]):
        raise typer.Exit(1)


def _policy_status(home: Home) -> dict | None:
    """Load the home's policies as a service would; None for a home without them (a client's)."""
    if not home.policies.is_dir():
        return None
    try:
        engine = PolicyEngine.load(home.policies)
    except PolicyError as exc:
        return {"service": "policies", "address": str(home.policies), "ok": False,
                "status": f"REFUSED: {len(exc.problems)} problem(s)", "problems": list(exc.problems)}
    return {"service": "policies", "address": str(home.policies), "ok": True,
            "status": f"LOADS ({len(engine.policy_ids)} policies, {len(engine.directory.principals)} principals)", "problems": []}


def demo(ctx: typer.Context, keep: bool = typer.Option(False, "--keep", help="Leave the services running.")) -> None:
    """The whole path on embedded defaults (SQLite, local blobs, local CA)."""
    from privet.services.cli.demo import run_demo

    run_demo(ctx_of(ctx), keep=keep)
