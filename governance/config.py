"""The operator contract: where PRIVET_HOME lives and what privet.toml says."""

from __future__ import annotations

import os
import pathlib
import tomllib
from dataclasses import dataclass, field

from governance.fsutil import write_atomic
from governance.privacy.limits import DEFAULT_MAX_DATASET_DELTA, DEFAULT_MAX_DATASET_EPSILON, MAX_ACCOUNTED_EPSILON

__all__ = ["SERVICES", "DEFAULT_PORTS", "DEFAULT_METRICS_PORTS", "Home", "Settings", "home_from_env"]

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
    max_dataset_epsilon: float = DEFAULT_MAX_DATASET_EPSILON
    max_dataset_delta: float = DEFAULT_MAX_DATASET_DELTA
    extra: dict = field(default_factory=dict)


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

    def cert(self, name: str) -> pathlib.Path:
        return self.pki / f"{name}.pem"

    def key(self, name: str) -> pathlib.Path:
        return self.pki / f"{name}.key"

    @property
    def ca_cert(self) -> pathlib.Path:
        return self.pki / "ca.pem"

    def settings(self) -> Settings:
        """Read privet.toml; empty values fall back to the embedded defaults inside this home."""
        raw = tomllib.loads(self.config_path.read_text()) if self.config_path.exists() else {}
        db = raw.get("database", {}).get("url") or f"sqlite:///{self.root / 'privet.db'}"
        blob_dir = raw.get("blobs", {}).get("dir") or str(self.root / "blobs")
        addresses = {name: f"127.0.0.1:{port}" for name, port in DEFAULT_PORTS.items()}
        addresses.update(raw.get("addresses", {}))
        metrics = {name: f"127.0.0.1:{port}" for name, port in DEFAULT_METRICS_PORTS.items()}
        metrics.update(raw.get("metrics", {}))
        limits = raw.get("limits", {})
        audit = raw.get("audit", {})
        privacy = raw.get("privacy", {})
        max_eps = float(privacy.get("max_dataset_epsilon", DEFAULT_MAX_DATASET_EPSILON))
        max_delta = float(privacy.get("max_dataset_delta", DEFAULT_MAX_DATASET_DELTA))
        # A cap no accountant can honour would only fail later, job by job: refuse it here.
        if not 0 < max_eps <= MAX_ACCOUNTED_EPSILON:
            raise ValueError(f"{self.config_path}: [privacy] max_dataset_epsilon must be in (0, {MAX_ACCOUNTED_EPSILON:g}], got {max_eps!r}")
        if not 0 < max_delta < 1:
            raise ValueError(f"{self.config_path}: [privacy] max_dataset_delta must be in (0, 1), got {max_delta!r}")
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
            max_dataset_epsilon=max_eps,
            max_dataset_delta=max_delta,
            extra=raw,
        )


def home_from_env() -> Home:
    return Home(pathlib.Path(os.environ.get("PRIVET_HOME", ".privet")).resolve())
