"""The operator contract: where PRIVET_HOME lives and what privet.toml says."""

from __future__ import annotations

import difflib
import math
import os
import pathlib
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from privet.governance.fsutil import write_atomic
from privet.governance.privacy.limits import (
    DEFAULT_MAX_DATASET_DELTA,
    DEFAULT_MAX_DATASET_EPSILON,
    MAX_ACCOUNTED_EPSILON,
)

__all__ = ["DEFAULT_METRICS_PORTS", "DEFAULT_PORTS", "SCHEMA", "SERVICES", "ConfigError", "Home", "Key", "Settings", "check_toml", "home_from_env", "load_toml"]

SERVICES = ("ingestion", "training", "registry", "inference")
DEFAULT_PORTS = {"ingestion": 50051, "training": 50052, "registry": 50053, "inference": 50054}
# Prometheus metrics: plain HTTP, one port a service, loopback unless configured otherwise.
DEFAULT_METRICS_PORTS = {"ingestion": 9451, "training": 9452, "registry": 9453, "inference": 9454}
TRUST_DOMAIN = "privet.local"
CONTENT_KEY_SIZE = 32

DEFAULT_TOML = """\
# Privet settings. Edit and restart the services.
[database]
# sqlite:///<path> (default: privet.db in this home) or postgresql+psycopg://user@host/db
url = ""

[blobs]
# Local directory (default: blobs/ in this home).
dir = ""

[addresses]
ingestion = "127.0.0.1:50051"
training = "127.0.0.1:50052"
registry = "127.0.0.1:50053"
inference = "127.0.0.1:50054"

[metrics]
# Prometheus metrics over HTTP (GET /metrics), one address a service; "" turns one off.
ingestion = "127.0.0.1:9451"
training = "127.0.0.1:9452"
registry = "127.0.0.1:9453"
inference = "127.0.0.1:9454"

[limits]
max_message_bytes = 8388608
max_upload_bytes = 4294967296

[audit]
origin = "privet.local/audit"
checkpoint_every_events = 1000
checkpoint_every_seconds = 10

[privacy]
# The most privacy budget any body of data may have (an uploader may ask for less, never
# more), and the cap release gates hold a dataset's cumulative spent epsilon to.
max_dataset_epsilon = 10.0
max_dataset_delta = 1e-5
"""


@dataclass(frozen=True)
class Settings:
    database_url: str
    blob_dir: pathlib.Path
    addresses: dict[str, str]
    max_message_bytes: int = 8 * 1024 * 1024
    max_upload_bytes: int = 4 * 1024**3
    audit_origin: str = "privet.local/audit"
    checkpoint_every_events: int = 1000
    checkpoint_every_seconds: float = 10.0
    metrics_addresses: dict[str, str] = field(default_factory=dict)
    # Where each service listens, as configured (port 0: any free port); `addresses` is where
    # the others find it (a port-0 address resolved to the port its server bound).
    listen_addresses: dict[str, str] = field(default_factory=dict)
    max_dataset_epsilon: float = DEFAULT_MAX_DATASET_EPSILON
    max_dataset_delta: float = DEFAULT_MAX_DATASET_DELTA
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Home:
    """Paths inside one PRIVET_HOME. Creating them is `governance.bootstrap`'s job."""

    root: pathlib.Path

    @property
    def config_path(self) -> pathlib.Path:
        return self.root / "privet.toml"

    @property
    def pki(self) -> pathlib.Path:
        return self.root / "pki"

    @property
    def keys(self) -> pathlib.Path:
        return self.root / "keys"

    @property
    def policies(self) -> pathlib.Path:
        return self.root / "policies"

    @property
    def content_key_path(self) -> pathlib.Path:
        """The installation's content key: 32 random bytes keying every row hash
        (`governance/datasets/fingerprint.py`), so nobody outside can pick rows by their hash."""
        return self.keys / "content.key"

    def content_key(self) -> bytes:
        """The content key, created on first use (`privet init` makes it; a home made before
        it existed gets it at its first ingestion). Never overwritten: a concurrent creator's
        key wins and is the one read."""
        path = self.content_key_path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, os.urandom(CONTENT_KEY_SIZE), mode=0o600, overwrite=False)
        key = path.read_bytes()
        if len(key) != CONTENT_KEY_SIZE:
            raise ValueError(f"{path}: a content key is {CONTENT_KEY_SIZE} bytes, found {len(key)}")
        return key

    @property
    def run(self) -> pathlib.Path:
        return self.root / "run"

    def bound_address(self, service: str) -> pathlib.Path:
        """Where a running `privet serve` records the address `service` bound, for an address
        configured with port 0 (any free port): one file per service, so that processes
        serving different services never write the same file."""
        return self.run / "bound" / f"{service}.address"

    def record_bound_address(self, service: str, address: str) -> None:
        path = self.bound_address(service)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, address.encode(), mode=0o600)

    def _resolve_any_port(self, service: str, address: str) -> str:
        """`address`, or, where it asks for any port (`host:0`), the one its server bound
        (as recorded), or itself while no server has recorded one."""
        if not address.endswith(":0"):
            return address
        try:
            return self.bound_address(service).read_text().strip() or address
        except FileNotFoundError:
            return address

    def cert(self, name: str) -> pathlib.Path:
        return self.pki / f"{name}.pem"

    def key(self, name: str) -> pathlib.Path:
        return self.pki / f"{name}.key"

    @property
    def ca_cert(self) -> pathlib.Path:
        return self.pki / "ca.pem"

    def settings(self) -> Settings:
        """Read privet.toml; empty values fall back to the embedded defaults inside this home.

        Raises ConfigError listing every way the file departs from `SCHEMA` (an unknown section
        or key, a value of the wrong type or out of range), each with the file, line and key.
        """
        raw = load_toml(self.config_path) if self.config_path.exists() else {}
        db = raw.get("database", {}).get("url") or f"sqlite:///{self.root / 'privet.db'}"
        blob_dir = raw.get("blobs", {}).get("dir") or str(self.root / "blobs")
        addresses = {name: f"127.0.0.1:{port}" for name, port in DEFAULT_PORTS.items()}
        addresses.update(raw.get("addresses", {}))
        listen = dict(addresses)
        addresses = {name: self._resolve_any_port(name, address) for name, address in addresses.items()}
        metrics = {name: f"127.0.0.1:{port}" for name, port in DEFAULT_METRICS_PORTS.items()}
        metrics.update(raw.get("metrics", {}))
        limits = raw.get("limits", {})
        audit = raw.get("audit", {})
        privacy = raw.get("privacy", {})
        # An environment override lets one home be pointed at PostgreSQL without editing it.
        db = os.environ.get("PRIVET_DATABASE_URL", db)
        return Settings(
            database_url=db,
            blob_dir=pathlib.Path(blob_dir),
            addresses=addresses,
            max_message_bytes=int(limits.get("max_message_bytes", 8 * 1024 * 1024)),
            max_upload_bytes=int(limits.get("max_upload_bytes", 4 * 1024**3)),
            audit_origin=audit.get("origin", "privet.local/audit"),
            checkpoint_every_events=int(audit.get("checkpoint_every_events", 1000)),
            checkpoint_every_seconds=float(audit.get("checkpoint_every_seconds", 10)),
            metrics_addresses=metrics,
            listen_addresses=listen,
            max_dataset_epsilon=float(privacy.get("max_dataset_epsilon", DEFAULT_MAX_DATASET_EPSILON)),
            max_dataset_delta=float(privacy.get("max_dataset_delta", DEFAULT_MAX_DATASET_DELTA)),
            extra=raw,
        )


class ConfigError(ValueError):
    """A privet.toml that must not be used. `problems` holds every one found, each as
    "FILE:LINE: section.key: what is wrong"; the message lists them all on one line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        head = "" if len(self.problems) == 1 else f"{len(self.problems)} problems: "
        super().__init__(head + "; ".join(self.problems))


@dataclass(frozen=True)
class Key:
    """One privet.toml key: its type (an integer is accepted where a float is expected; a
    boolean never passes for a number) and, optionally, a range check returning what is wrong."""

    type: type
    check: Callable[[Any], str | None] | None = None
    doc: str = ""


def _address(value: str) -> str | None:
    host, _, port = value.rpartition(":")
    if value.startswith("unix:") or (host and port.isdigit() and int(port) <= 65535):
        return None
    return f'expected "host:port", got {value!r}'


def _optional_address(value: str) -> str | None:
    return None if value == "" else _address(value)


def _at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"must be at least {low:g}, got {v!r}"


def _positive(v: float) -> str | None:
    return None if v > 0 else f"must be more than 0, got {v!r}"


def _epsilon_cap(v: float) -> str | None:
    # A cap no accountant can honour would only fail later, job by job: refuse it here.
    return None if 0 < v <= MAX_ACCOUNTED_EPSILON else f"must be in (0, {MAX_ACCOUNTED_EPSILON:g}] (the [privacy] cap), got {v!r}"


def _delta_cap(v: float) -> str | None:
    return None if 0 < v < 1 else f"must be in (0, 1) (the [privacy] cap), got {v!r}"


# Every section and key privet.toml may hold, and nothing else. A key read anywhere in the code
# (including through `Settings.extra`, e.g. [inference]) must be declared here.
SCHEMA: dict[str, dict[str, Key]] = {
    "database": {"url": Key(str, doc='sqlite:///PATH or postgresql+psycopg://user@host/db; "" = privet.db in the home')},
    "blobs": {"dir": Key(str, doc='local directory; "" = blobs/ in the home')},
    "addresses": {name: Key(str, _address, f"where {name} listens and the others find it (host:port)") for name in SERVICES},
    "metrics": {name: Key(str, _optional_address, f'{name}\'s Prometheus address (host:port, port 0 = any); "" = off') for name in SERVICES},
    "limits": {
        "max_message_bytes": Key(int, _at_least(1), "gRPC message size limit, both ways"),
        "max_upload_bytes": Key(int, _at_least(1), "largest dataset upload"),
    },
    "audit": {
        "origin": Key(str, lambda v: None if v else "must not be empty", "the checkpoint origin line"),
        "checkpoint_every_events": Key(int, _at_least(1), "sign a tree head after this many events"),
        "checkpoint_every_seconds": Key(float, _positive, "... or after this long"),
    },
    "privacy": {
        "max_dataset_epsilon": Key(float, _epsilon_cap, "the most epsilon any body of data's budget may be"),
        "max_dataset_delta": Key(float, _delta_cap, "the most delta a budget may be"),
    },
    "uploads": {
        "total": Key(int, _at_least(1), "uploads at once on one server (default: a quarter of its workers)"),
        "per_principal": Key(int, _at_least(1), "uploads at once for one principal"),
        "idle_seconds": Key(float, _positive, "an upload that sends nothing for this long is cut off"),
        "min_bytes_per_second": Key(float, _at_least(0), "after idle_seconds, an upload averaging less is cut off (0 = no floor)"),
    },
    "streams": {
        "total": Key(int, _at_least(1), "downloads (server streams) at once on one server (default: a quarter of its workers)"),
        "per_principal": Key(int, _at_least(1), "downloads at once for one principal"),
        "idle_seconds": Key(float, _positive, "a download whose client takes no message for this long is cut off"),
    },
    "inference": {
        "requests_per_minute": Key(int, _at_least(0), "quota per principal and model"),
        "max_batch_rows": Key(int, _at_least(1), "most rows in one forward pass"),
        "max_queue_delay_ms": Key(float, _at_least(0), "how long a batch waits for more requests"),
        "revocation_poll_seconds": Key(float, _positive, "how often served versions are re-checked"),
        "revocation_grace_seconds": Key(float, _at_least(0), "how long a version serves while the registry cannot confirm it"),
        "unknown_categories": Key(str, lambda v: None if v in ("allow", "refuse") else f'must be "allow" or "refuse", got {v!r}',
                                  'a text input outside the model\'s categories: "allow" (counted, encoded as missing) or "refuse" (INVALID_ARGUMENT)'),
    },
}


def load_toml(path: pathlib.Path) -> dict[str, Any]:
    """Parse `path` and check it against `SCHEMA`. Raises ConfigError listing every problem."""
    text = path.read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    problems = check_toml(raw, text, str(path))
    if problems:
        raise ConfigError(problems)
    return raw


def check_toml(raw: dict[str, Any], text: str, source: str) -> list[str]:
    """Every way `raw` (parsed from `text`) departs from `SCHEMA`, in file order."""
    lines = _toml_lines(text)
    found: list[tuple[int, str]] = []

    def bad(section: str, key: str | None, message: str) -> None:
        line = lines.get((section, key)) or lines.get((section, None))
        where = f"{source}:{line}" if line else source
        # Dotted names, as docs/operators.md writes them (and "[section]" would be eaten as markup
        # by a Rich console).
        found.append((line or 0, f"{where}: {section}{f'.{key}' if key else ''}: {message}"))

    for section, table in raw.items():
        keys = SCHEMA.get(section)
        if keys is None:
            if not isinstance(table, dict):
                line = lines.get(("", section))
                where = f"{source}:{line}" if line else source
                found.append((line or 0, f"{where}: {section}: a key outside any section (sections: {', '.join(SCHEMA)})"))
            else:
                bad(section, None, f"unknown section{_did_you_mean(section, SCHEMA)} (known: {', '.join(SCHEMA)})")
            continue
        if not isinstance(table, dict):
            bad(section, None, "must be a section (a table of keys)")
            continue
        for key, value in table.items():
            spec = keys.get(key)
            if spec is None:
                bad(section, key, f"unknown key{_did_you_mean(key, keys)} (known: {', '.join(keys)})")
                continue
            problem = _type_problem(spec.type, value) or (spec.check(value) if spec.check else None)
            if problem:
                bad(section, key, problem)
    return [message for _, message in sorted(found, key=lambda f: f[0])]


def _type_problem(expected: type, value: Any) -> str | None:
    names = {str: "a string", int: "an integer", float: "a number"}
    if expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    return None if ok else f"must be {names[expected]}, got {_toml_repr(value)}"


def _toml_repr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


def _did_you_mean(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f", did you mean {close[0]!r}?" if close else ""


_HEADER = re.compile(r"^\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")


def _toml_lines(text: str) -> dict[tuple[str, str | None], int]:
    """The 1-based line of each (section, None) header and (section, key) key in `text`
    (tomllib keeps no positions). Dotted keys and headers count by their first two parts; a
    key at the top level is ("", key). Lines inside multi-line strings are skipped."""
    out: dict[tuple[str, str | None], int] = {}
    section: list[str] = []
    in_string: str | None = None
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if in_string:
            if stripped.count(in_string) % 2:
                in_string = None
            continue
        header = _HEADER.match(stripped)
        if header:
            section = _dotted(header.group(1))
            out.setdefault((section[0], section[1] if len(section) > 1 else None), n)
            continue
        key = _KEY.match(stripped)
        if key:
            path = section + _dotted(key.group(1))
            if len(path) == 1:
                out.setdefault(("", path[0]), n)
            else:
                out.setdefault((path[0], path[1]), n)
            rest = stripped[key.end():]
            for quotes in ('"""', "'''"):
                if rest.count(quotes) % 2:
                    in_string = quotes
    return out


def _dotted(name: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", name)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def home_from_env() -> Home:
    return Home(pathlib.Path(os.environ.get("PRIVET_HOME", ".privet")).resolve())
