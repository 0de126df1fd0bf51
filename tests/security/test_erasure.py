"""Erasure erases, and the home is owner-only (issue 19, items 8 and 12), on a real SQLite home.

Before: `revoke --erase` left the sealed blob on disk and the destroyed wrapped data key in
SQLite's WAL and free pages, so the weights decrypted exactly; a deleted dataset's
pseudonymisation key likewise. Now the blob goes, freed content is zeroed (secure_delete)
and the WAL is emptied by a truncating checkpoint; every file under PRIVET_HOME is scanned.
"""

from __future__ import annotations

import os
import pathlib
import stat

import numpy as np
from safetensors.numpy import save
from sqlalchemy import select

from privet.governance.datasets.catalog import DatasetSpec, create_dataset, delete_dataset
from privet.governance.datasets.formats import CsvDialect
from privet.governance.datasets.pipeline import AnonymisationSpec
from privet.governance.datasets.synthetic import customer_table
from privet.governance.registry import ModelRegistry, VersionSpec
from privet.governance.store.dataset_tables import PseudonymKey
from privet.governance.store.registry_tables import ModelVersion
from tests.integration.test_ingestion import _csv_bytes


def _p(rt, who: str):
    return rt.policies.engine.directory.principals[who]


def _files(root: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _found_anywhere(root: pathlib.Path, needle: bytes) -> list[str]:
    return [str(p.relative_to(root)) for p in _files(root) if needle in p.read_bytes()]


def test_revoke_with_erase_leaves_neither_blob_nor_key_anywhere_in_the_home(sqlite_runtime) -> None:
    rt = sqlite_runtime
    registry = ModelRegistry(rt)
    weights = save({"w": np.random.default_rng(3).standard_normal(4096).astype(np.float32)})
    v = registry.create_version(_p(rt, "user/alice"), VersionSpec("m"), [weights])
    with rt.read() as session:
        row = session.scalars(select(ModelVersion).where(ModelVersion.id == v.id)).one()
    wrapped, blob = bytes(row.wrapped_key), rt.blobs.path_of(row.blob_digest)
    assert blob.exists() and _found_anywhere(rt.home.root, wrapped)  # the key is on disk while it lives
    registry.revoke(_p(rt, "user/bob"), "m", v.version, erase=True, reason="leaked training data")
    assert not blob.exists()
    assert _found_anywhere(rt.home.root, wrapped) == []
    assert _found_anywhere(rt.home.root, weights[-64:]) == []  # nor the plaintext, ever


def test_deleting_a_dataset_leaves_no_copy_of_its_pseudonymisation_key(sqlite_runtime) -> None:
    rt = sqlite_runtime
    spec = DatasetSpec("people", "csv", "default", AnonymisationSpec(), CsvDialect(), 8.0, 1e-5)
    dataset = create_dataset(rt, "user/alice", spec, [_csv_bytes(customer_table(300, seed=4))])
    with rt.read() as session:
        keys = [bytes(k.wrapped_key) for k in session.scalars(select(PseudonymKey).where(PseudonymKey.scope == f"dataset:{dataset.id}")) if k.wrapped_key]
    assert keys and all(_found_anywhere(rt.home.root, k) for k in keys)
    delete_dataset(rt, "user/alice", "people", "erasure request")
    assert all(_found_anywhere(rt.home.root, k) == [] for k in keys)


def test_the_home_and_its_secrets_are_owner_only(sqlite_runtime) -> None:
    rt = sqlite_runtime
    ModelRegistry(rt).create_version(_p(rt, "user/alice"), VersionSpec("m"), [save({"w": np.ones(8, dtype=np.float32)})])
    home = rt.home.root
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    secrets = [p for p in _files(home) if p.name.startswith("privet.db") or p.parent.name == "keys" or "blobs" in p.parts or p.suffix == ".key"]
    assert secrets and any(p.name.startswith("privet.db") for p in secrets)
    loose = {str(p.relative_to(home)): oct(stat.S_IMODE(p.stat().st_mode)) for p in secrets if stat.S_IMODE(p.stat().st_mode) & 0o077}
    assert loose == {}
    assert stat.S_IMODE(os.stat(rt.settings.blob_dir).st_mode) == 0o700
