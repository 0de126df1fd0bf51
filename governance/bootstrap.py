"""`privet init`: create a PRIVET_HOME idempotently. Never overwrites a key or an edited policy."""

from __future__ import annotations

import pathlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable

from privet.governance.attestation.keys import ensure_attestation_key
from privet.governance.audit.checkpoint import NoteSigner, generate_signer
from privet.governance.config import DEFAULT_TOML, SERVICES, Home
from privet.governance.crypto.keyring import FileKeyring
from privet.governance.fsutil import write_atomic
from privet.governance.identity.ca import LocalCA
from privet.governance.identity.principals import add_principal, load_directory
from privet.governance.identity.spiffe import SpiffeId

__all__ = ["DEFAULT_POLICIES", "LEGACY_AUDIT_ORIGIN", "InitReport", "add_user", "init_home", "new_audit_origin"]

# The defaults that ship with Privet: package data of `privet.policies` (the repository's
# policies/ folder), found through importlib.resources so a wheel install finds them too.
DEFAULT_POLICIES: Traversable = files("privet.policies")
_NOT_POLICY = ("__init__.py", "__pycache__")
# The one origin (and audit key name) every home had before each got its own: a privet.toml
# without an [audit] origin still means it, so such a home and its key keep working.
LEGACY_AUDIT_ORIGIN = "privet.local/audit"
_ORIGIN_LINE = re.compile(r'^origin = "[^"\n]*"$', re.MULTILINE)


def new_audit_origin() -> str:
    """A fresh log origin, ``privet.local/audit/<16 hex>``: two installations never share a
    log name, so a checkpoint of one can never pass for the other's."""
    return f"{LEGACY_AUDIT_ORIGIN}/{secrets.token_hex(8)}"


def _default_toml(origin: str) -> str:
    text, count = _ORIGIN_LINE.subn(f'origin = "{origin}"', DEFAULT_TOML)
    if count != 1:
        raise RuntimeError('DEFAULT_TOML must hold exactly one [audit] `origin = "..."` line')
    return text


@dataclass
class InitReport:
    home: pathlib.Path
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def _shipped_policies(folder: Traversable, relative: pathlib.PurePosixPath) -> Iterator[tuple[pathlib.PurePosixPath, Traversable]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name in _NOT_POLICY:
            continue
        if entry.is_dir():
            yield from _shipped_policies(entry, relative / entry.name)
        else:
            yield relative / entry.name, entry


def _copy_policies(home: Home, report: InitReport) -> None:
    for relative, src in _shipped_policies(DEFAULT_POLICIES, pathlib.PurePosixPath()):
        dst = home.policies / relative
        if dst.exists():
            report.kept.append(str(dst.relative_to(home.root)))
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
        report.created.append(str(dst.relative_to(home.root)))


def init_home(home: Home) -> InitReport:
    report = InitReport(home.root)
    for folder in (home.root, home.pki, home.keys, home.policies, home.run):
        folder.mkdir(parents=True, exist_ok=True)
    home.pki.chmod(0o700)
    home.keys.chmod(0o700)
    signer_path, verifier_path = home.keys / "audit.key", home.keys / "audit.pub"
    if not home.config_path.exists():
        # A key without a privet.toml (restored from a backup) keeps its log: the origin is its name.
        origin = NoteSigner.from_text(signer_path.read_text()).name if signer_path.exists() else new_audit_origin()
        if write_atomic(home.config_path, _default_toml(origin).encode(), overwrite=False):
            report.created.append("privet.toml")
    _copy_policies(home, report)
    ca_existed = home.ca_cert.exists()
    ca = LocalCA.ensure(home.pki)
    if not ca_existed:
        report.created.append("pki/ca.pem")
    for service in SERVICES:
        if ca.ensure_identity(home.pki, service, SpiffeId("service", service), server=True):
            report.created.append(f"pki/{service}.pem")
    for principal in load_directory(home.policies / "principals.yaml").users():
        if ca.ensure_identity(home.pki, principal.name, principal.id):
            report.created.append(f"pki/{principal.name}.pem")
    if not signer_path.exists():
        # The key is named after the log's origin (C2SP signed note), whatever privet.toml says it is.
        signer, verifier = generate_signer(home.settings().audit_origin)
        write_atomic(signer_path, (signer + "\n").encode(), mode=0o600, overwrite=False)
        write_atomic(verifier_path, (verifier + "\n").encode(), overwrite=False)
        report.created.append("keys/audit.key")
    if not home.content_key_path.exists():
        home.content_key()
        report.created.append("keys/content.key")
    if not (home.keys / "attestation.key").exists():
        ensure_attestation_key(home.keys)
        report.created.append("keys/attestation.key")
    if not any(home.keys.glob("kek-*.key")):
        FileKeyring.ensure(home.keys)
        report.created.append("keys/kek-1.key")
    return report


def add_user(home: Home, name: str, role: str, team: str = "") -> bool:
    """Add a principal (in `team`, if given) to this home's principals.yaml and issue its certificate."""
    added = add_principal(home.policies / "principals.yaml", name, role, team)
    ca = LocalCA.ensure(home.pki)
    issued = ca.ensure_identity(home.pki, name, SpiffeId("user", name))
    return added or issued
