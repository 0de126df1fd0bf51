"""Benchmark: sealing and opening weights, file to file, beside Tink and SHA-256 alone.

    python -m tests.bench.crypto --size-mib 1024 --json

On the same random source file, in the same run, rounds interleave:
  sha256        read the source and hash it (the floor any digesting pipeline pays)
  seal          governance.crypto.seal_weights: encrypt + SHA-256 of the plaintext
  open          governance.crypto.open_weights with expected_digest: decrypt + verify
  tink_encrypt  Tink StreamingAead AES256_GCM_HKDF_1MB (no digest)
  tink_decrypt  the same, decrypting
  tink_*_sha256 Tink plus SHA-256 of the plaintext in the same loop: the same work as
                seal and open, since Tink itself computes no digest
Rates are plaintext bytes per second, GB/s = 10^9 B/s; each figure is the median of
--repeat rounds (best and samples are in the JSON). Peak added memory of seal and open is
taken in a separate, untimed pass (tracemalloc peak and the ru_maxrss rise).

Destinations are by default files that already hold page-cache pages of about the right
size, overwritten in place and truncated; `--fresh-dst` writes brand-new files instead.
On a VM whose guest hands freed memory back to the host (virtio-balloon free page
reporting), every fresh page a new file needs costs a host fault, which caps writes near
0.5 GB/s and drowns what is measured here; `--fresh-dst` shows that number.

Tink is a benchmark-only dependency (`pip install tink`); without it the Tink rows are
skipped and the output says so.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from privet.governance.crypto import FileKeyring, SealedWeights, open_weights, seal_weights

_MIB = 1 << 20
_IO_BLOCK = _MIB
_TARGET_RATIO = 1.5
_TARGET_PEAK_BYTES = 64 * _MIB


class _KeepOpen(io.RawIOBase):
    """Hands a file to Tink, whose streams close their destination, without losing it."""

    def __init__(self, file) -> None:
        self._file = file

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._file.readinto(buffer)

    def write(self, data) -> int:
        return self._file.write(data)

    def close(self) -> None:
        super().close()  # marks this wrapper closed; the file stays open


def _load_tink():
    """Tink's StreamingAead primitive, or None with the reason when Tink is missing."""
    try:
        import tink
        from tink import streaming_aead
    except ImportError as exc:
        return None, None, f"tink is not installed ({exc}); `pip install tink` to compare"
    streaming_aead.register()
    handle = tink.new_keyset_handle(streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB)
    from importlib.metadata import version

    return handle.primitive(streaming_aead.StreamingAead), version("tink"), None


def _write_source(path: Path, size: int) -> str:
    sha = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(_IO_BLOCK, left))
            sha.update(block)
            out.write(block)
            left -= len(block)
    return sha.hexdigest()


def _presize(path: Path, size: int) -> None:
    """Give `path` `size` bytes of page cache to be overwritten (untimed)."""
    zeros = bytes(_IO_BLOCK)
    with open(path, "wb") as out:
        left = size
        while left > 0:
            out.write(zeros[: min(_IO_BLOCK, left)])
            left -= _IO_BLOCK


def _destination(path: Path, fresh: bool):
    if fresh:
        path.unlink(missing_ok=True)
        return open(path, "wb")
    return open(path, "r+b")


def _sha256_file(path: Path) -> str:
    sha = hashlib.sha256()
    buffer = memoryview(bytearray(_IO_BLOCK))
    with open(path, "rb", buffering=0) as source:
        while count := source.readinto(buffer):
            sha.update(buffer[:count])
    return sha.hexdigest()


class _Bench:
    def __init__(self, work: Path, size: int, chunk_size: int, fresh: bool) -> None:
        self.work = work
        self.size = size
        self.chunk_size = chunk_size
        self.fresh = fresh
        self.source = work / "weights.bin"
        self.sealed_path = work / "weights.sealed"
        self.opened_path = work / "weights.opened"
        self.tink_sealed_path = work / "weights.tink"
        self.tink_opened_path = work / "weights.tink-opened"
        self.keyring = FileKeyring.ensure(work / "keys")
        self.digest = _write_source(self.source, size)
        if not fresh:
            headroom = size + size // 100 + 4 * _MIB
            for path in (self.sealed_path, self.opened_path, self.tink_sealed_path, self.tink_opened_path):
                _presize(path, headroom)
        self.sealed: SealedWeights | None = None
        self.tink: Any = None
        self.tink_version: str | None = None
        self.tink_missing: str | None = None

    # Each case runs file to file and leaves its output for the checks and the next case.
    def sha256(self) -> None:
        assert _sha256_file(self.source) == self.digest

    def seal(self) -> None:
        with open(self.source, "rb") as src, _destination(self.sealed_path, self.fresh) as dst:
            sealed = seal_weights(src, dst, version_id="bench:1", keyring=self.keyring, chunk_size=self.chunk_size)
            dst.truncate()
        assert sealed.digest == self.digest
        self.sealed = sealed

    def open(self) -> None:
        sealed = self.sealed
        assert sealed is not None, "seal runs before open"
        with open(self.sealed_path, "rb") as src, _destination(self.opened_path, self.fresh) as dst:
            for piece in open_weights(
                src,
                version_id="bench:1",
                kek_id=sealed.kek_id,
                wrapped_key=sealed.wrapped_key,
                keyring=self.keyring,
                expected_digest=sealed.digest,
            ):
                dst.write(piece)
            dst.truncate()

    def tink_encrypt(self) -> None:
        buffer = memoryview(bytearray(_IO_BLOCK))
        with open(self.source, "rb") as src, _destination(self.tink_sealed_path, self.fresh) as dst:
            with self.tink.new_encrypting_stream(_KeepOpen(dst), b"bench:1") as stream:
                while count := src.readinto(buffer):
                    stream.write(buffer[:count])
            dst.truncate()

    def tink_decrypt(self) -> None:
        with open(self.tink_sealed_path, "rb") as src, _destination(self.tink_opened_path, self.fresh) as dst:
            with self.tink.new_decrypting_stream(_KeepOpen(src), b"bench:1") as stream:
                while piece := stream.read(_IO_BLOCK):
                    dst.write(piece)
            dst.truncate()

    # Tink computes no digest; these add SHA-256 of the plaintext in the same loop, the
    # straightforward way to get the digest the registry records: the same work as ours.
    def tink_encrypt_sha256(self) -> None:
        sha = hashlib.sha256()
        buffer = memoryview(bytearray(_IO_BLOCK))
        with open(self.source, "rb") as src, _destination(self.tink_sealed_path, self.fresh) as dst:
            with self.tink.new_encrypting_stream(_KeepOpen(dst), b"bench:1") as stream:
                while count := src.readinto(buffer):
                    sha.update(buffer[:count])
                    stream.write(buffer[:count])
            dst.truncate()
        assert sha.hexdigest() == self.digest

    def tink_decrypt_sha256(self) -> None:
        sha = hashlib.sha256()
        with open(self.tink_sealed_path, "rb") as src, _destination(self.tink_opened_path, self.fresh) as dst:
            with self.tink.new_decrypting_stream(_KeepOpen(src), b"bench:1") as stream:
                while piece := stream.read(_IO_BLOCK):
                    sha.update(piece)
                    dst.write(piece)
            dst.truncate()
        assert sha.hexdigest() == self.digest

    def timed(self, case: Callable[[], None]) -> float:
        os.sync()  # every case starts with no dirty pages queued for writeback
        started = time.perf_counter()
        case()
        return time.perf_counter() - started


def _parallelism() -> float:
    """How many cores two hashing threads get right now (1.0 to 2.0).

    Seal and open need two cores to overlap hashing with encryption; on a shared VM the
    second vCPU is sometimes taken by a neighbour, which halves them but not the
    single-threaded cases, so each round records this beside its rates.
    """
    block = memoryview(bytearray(os.urandom(_IO_BLOCK)))

    def hash_blocks() -> None:
        sha = hashlib.sha256()
        for _ in range(64):
            sha.update(block)

    started = time.perf_counter()
    hash_blocks()
    alone = time.perf_counter() - started
    started = time.perf_counter()
    worker = threading.Thread(target=hash_blocks)
    worker.start()
    hash_blocks()
    worker.join()
    return 2 * alone / (time.perf_counter() - started)


def _peak_memory(bench: _Bench) -> dict:
    """Peak memory seal and open add, in an untimed pass before any timed round."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    try:
        bench.seal()
        _, seal_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        bench.open()
        _, open_peak = tracemalloc.get_traced_memory()
        open_peak -= base
    finally:
        tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "seal_tracemalloc_peak_bytes": seal_peak,
        "open_tracemalloc_peak_bytes": open_peak,
        "ru_maxrss_rise_bytes": rss_after - rss_before,
    }


def run(size_mib: int, *, repeat: int, chunk_kib: int, fresh_dst: bool, directory: str | None) -> dict[str, Any]:
    size = size_mib * _MIB
    work = Path(tempfile.mkdtemp(prefix="privet-bench-crypto-", dir=directory))
    try:
        bench = _Bench(work, size, chunk_kib * 1024, fresh_dst)
        bench.tink, bench.tink_version, bench.tink_missing = _load_tink()
        if bench.tink_missing:
            print(bench.tink_missing, file=sys.stderr)
        memory = _peak_memory(bench)
        if _sha256_file(bench.opened_path) != bench.digest:
            raise SystemExit("open_weights produced the wrong bytes")

        cases = {"sha256": bench.sha256, "seal": bench.seal, "open": bench.open}
        if bench.tink is not None:
            cases |= {
                "tink_encrypt": bench.tink_encrypt,
                "tink_decrypt": bench.tink_decrypt,
                "tink_encrypt_sha256": bench.tink_encrypt_sha256,
                "tink_decrypt_sha256": bench.tink_decrypt_sha256,
            }
        samples: dict[str, list[float]] = {name: [] for name in cases}
        parallelism: list[float] = []
        for _ in range(repeat):
            parallelism.append(_parallelism())
            for name, case in cases.items():  # interleaved, so drift hits every case alike
                samples[name].append(size / bench.timed(case) / 1e9)
        if _sha256_file(bench.opened_path) != bench.digest:
            raise SystemExit("open_weights produced the wrong bytes")
        if bench.tink is not None and _sha256_file(bench.tink_opened_path) != bench.digest:
            raise SystemExit("tink produced the wrong bytes")

        median = {name: statistics.median(values) for name, values in samples.items()}
        rates = {
            name: {"median": median[name], "best": max(values), "samples": values} for name, values in samples.items()
        }
        ratios = {
            "seal_vs_sha256": median["seal"] / median["sha256"],
            "open_vs_sha256": median["open"] / median["sha256"],
        }
        if bench.tink is not None:
            ratios["seal_vs_tink_encrypt"] = median["seal"] / median["tink_encrypt"]
            ratios["open_vs_tink_decrypt"] = median["open"] / median["tink_decrypt"]
            ratios["seal_vs_tink_encrypt_sha256"] = median["seal"] / median["tink_encrypt_sha256"]
            ratios["open_vs_tink_decrypt_sha256"] = median["open"] / median["tink_decrypt_sha256"]
        peak = max(
            memory["seal_tracemalloc_peak_bytes"], memory["open_tracemalloc_peak_bytes"], memory["ru_maxrss_rise_bytes"]
        )
        targets = {"peak_added_memory_at_most_64_MiB": peak <= _TARGET_PEAK_BYTES}
        if bench.tink is not None:
            targets["seal_at_least_1.5x_tink"] = ratios["seal_vs_tink_encrypt"] >= _TARGET_RATIO
            targets["open_at_least_1.5x_tink"] = ratios["open_vs_tink_decrypt"] >= _TARGET_RATIO
            targets["seal_at_least_1.5x_tink_sha256"] = ratios["seal_vs_tink_encrypt_sha256"] >= _TARGET_RATIO
            targets["open_at_least_1.5x_tink_sha256"] = ratios["open_vs_tink_decrypt_sha256"] >= _TARGET_RATIO
        return {
            "command": "python -m tests.bench.crypto " + " ".join(sys.argv[1:]),
            "size_bytes": size,
            "chunk_size": bench.chunk_size,
            "repeat": repeat,
            "destination": "fresh files" if fresh_dst else "pre-sized files overwritten in place",
            "unit": "GB/s of plaintext (1e9 bytes/s), median of rounds",
            "rates": rates,
            "ratios": ratios,
            "cores_available_per_round": parallelism,
            "memory": memory,
            "targets": targets,
            "tink": bench.tink_version,
            "tink_missing": bench.tink_missing,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "hashlib_openssl": __import__("ssl").OPENSSL_VERSION,
            },
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _print_table(result: dict[str, Any]) -> None:
    print(
        f"{result['size_bytes'] / _MIB:.0f} MiB, chunk {result['chunk_size'] // 1024} KiB, "
        f"{result['repeat']} rounds, destination: {result['destination']}"
    )
    for name, rate in result["rates"].items():
        print(f"  {name:<20} {rate['median']:6.2f} GB/s  (best {rate['best']:.2f})")
    print("  cores available per round: " + ", ".join(f"{c:.2f}" for c in result["cores_available_per_round"]))
    if result["tink_missing"]:
        print(f"  tink          skipped: {result['tink_missing']}")
    for name, ratio in result["ratios"].items():
        print(f"  {name:<28} {ratio:5.2f}x")
    memory = result["memory"]
    print(
        f"  peak added memory: seal {memory['seal_tracemalloc_peak_bytes'] / _MIB:.1f} MiB, "
        f"open {memory['open_tracemalloc_peak_bytes'] / _MIB:.1f} MiB (tracemalloc); "
        f"ru_maxrss rise {memory['ru_maxrss_rise_bytes'] / _MIB:.1f} MiB"
    )
    for name, met in result["targets"].items():
        print(f"  target {name}: {'met' if met else 'NOT met'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.crypto", description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="plaintext size in MiB (default 1024)")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds per case (default 5)")
    parser.add_argument("--chunk-kib", type=int, default=1024, help="seal chunk size in KiB (default 1024)")
    parser.add_argument("--fresh-dst", action="store_true", help="write to brand-new files (see module doc)")
    parser.add_argument("--dir", default=None, help="where to put the temporary files (default: system temp)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.size_mib < 1 or args.repeat < 1:
        parser.error("--size-mib and --repeat must be at least 1")
    result = run(
        args.size_mib, repeat=args.repeat, chunk_kib=args.chunk_kib, fresh_dst=args.fresh_dst, directory=args.dir
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_table(result)


if __name__ == "__main__":
    main()
