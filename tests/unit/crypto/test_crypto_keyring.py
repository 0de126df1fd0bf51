"""FileKeyring: files on disk, idempotence, rotation, and AES-KW pinned by RFC 3394."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from privet.governance.crypto import FileKeyring, KeyEncryptionKeys, WeightsTampered
from privet.governance.errors import FailedPrecondition, InvalidArgument

# RFC 3394 §4.6: wrap 256 bits of key data with a 256-bit KEK.
RFC3394_KEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
RFC3394_KEY_DATA = bytes.fromhex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
RFC3394_WRAPPED = bytes.fromhex("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21")


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_ensure_creates_first_key_private(tmp_path):
    keys = tmp_path / "home" / "keys"
    keyring = FileKeyring.ensure(keys)
    assert keyring.active_id == "kek-1"
    assert sorted(os.listdir(keys)) == ["kek-1.key"]
    assert _mode(keys / "kek-1.key") == 0o600
    assert _mode(keys) == 0o700
    assert len((keys / "kek-1.key").read_bytes()) == 32


def test_ensure_is_idempotent_and_never_overwrites(tmp_path):
    FileKeyring.ensure(tmp_path)
    before = (tmp_path / "kek-1.key").read_bytes()
    keyring = FileKeyring.ensure(tmp_path)
    assert keyring.active_id == "kek-1"
    assert sorted(os.listdir(tmp_path)) == ["kek-1.key"]
    assert (tmp_path / "kek-1.key").read_bytes() == before


def test_keyring_satisfies_the_protocol(tmp_path):
    assert isinstance(FileKeyring.ensure(tmp_path), KeyEncryptionKeys)


def test_opening_without_keys_is_a_precondition_failure(tmp_path):
    with pytest.raises(FailedPrecondition):
        FileKeyring(tmp_path / "missing")
    with pytest.raises(FailedPrecondition):
        FileKeyring(tmp_path)


def test_rfc3394_known_answer_through_the_keyring(tmp_path):
    (tmp_path / "kek-1.key").write_bytes(RFC3394_KEK)
    keyring = FileKeyring(tmp_path)
    assert keyring.wrap(RFC3394_KEY_DATA) == ("kek-1", RFC3394_WRAPPED)
    assert keyring.unwrap("kek-1", RFC3394_WRAPPED) == RFC3394_KEY_DATA


def test_rotate_adds_a_key_and_old_wraps_still_open(tmp_path):
    keyring = FileKeyring.ensure(tmp_path)
    data_key = os.urandom(32)
    old_id, old_wrapped = keyring.wrap(data_key)
    first = (tmp_path / "kek-1.key").read_bytes()
    assert keyring.rotate() == "kek-2"
    assert keyring.active_id == "kek-2"
    assert _mode(tmp_path / "kek-2.key") == 0o600
    assert (tmp_path / "kek-1.key").read_bytes() == first
    assert keyring.unwrap(old_id, old_wrapped) == data_key
    new_id, new_wrapped = keyring.wrap(data_key)
    assert new_id == "kek-2" and new_wrapped != old_wrapped
    # Another instance (another process) sees the rotation.
    assert FileKeyring(tmp_path).active_id == "kek-2"


def test_concurrent_rotations_get_distinct_keys(tmp_path):
    keyring = FileKeyring.ensure(tmp_path)
    ids: list[str] = []
    threads = [threading.Thread(target=lambda: ids.append(FileKeyring(tmp_path).rotate())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(ids, key=lambda i: int(i.split("-")[1])) == [f"kek-{n}" for n in range(2, 10)]
    assert keyring.active_id == "kek-9"
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


@pytest.mark.parametrize("kek_id", ["kek-2", "kek-0", "kek-01", "kek-1.key", "../kek-1", "", "kek-"])
def test_unknown_kek_id_is_tampering(tmp_path, kek_id):
    keyring = FileKeyring.ensure(tmp_path)
    _, wrapped = keyring.wrap(os.urandom(32))
    with pytest.raises(WeightsTampered):
        keyring.unwrap(kek_id, wrapped)


def test_altered_or_foreign_wrapped_key_is_tampering(tmp_path):
    keyring = FileKeyring.ensure(tmp_path)
    kek_id, wrapped = keyring.wrap(os.urandom(32))
    altered = bytearray(wrapped)
    altered[5] ^= 0x01
    for bad in (bytes(altered), wrapped[:-8], b"", os.urandom(40)):
        with pytest.raises(WeightsTampered):
            keyring.unwrap(kek_id, bad)
    other = FileKeyring.ensure(tmp_path / "other")
    with pytest.raises(WeightsTampered):
        other.unwrap(kek_id, wrapped)


@pytest.mark.parametrize("length", [0, 8, 15, 33])
def test_wrap_rejects_bad_key_lengths(tmp_path, length):
    with pytest.raises(InvalidArgument):
        FileKeyring.ensure(tmp_path).wrap(bytes(length))
