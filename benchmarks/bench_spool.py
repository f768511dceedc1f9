"""Spool benchmark: append throughput with the fsync policies against a plain
file baseline, bytes written to disk per frame byte, and recovery time of a
full spool. Every figure is measured side by side with its baseline in the
same run. Usage (see benchmarks/README.md):

    python benchmarks/bench_spool.py [--dir DIR] [--recovery-gb 2] [--append-mb 256]

DIR must be on the disk under test (default: the system temp dir); the run
deletes what it writes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from edge import _core
from edge.bench.api import Profile, Result

MB = 1 << 20


def write_bytes() -> int:
    """Bytes this process caused to be written to storage (/proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


def payload(size: int, i: int) -> bytes:
    # Incompressible-looking bytes: the spool stores them as they are.
    return (i.to_bytes(8, "little") * (size // 8 + 1))[:size]


class PlainFile:
    """The baseline: one buffered append-only file, fsync on commit."""

    def __init__(self, path: Path) -> None:
        self.f = open(path, "ab", buffering=MB)  # noqa: SIM115

    def append(self, data: bytes) -> None:
        self.f.write(data)

    def commit(self) -> None:
        self.f.flush()
        os.fdatasync(self.f.fileno())

    def close(self) -> None:
        self.f.close()


def timed(fn: Callable[[], object]) -> tuple[float, int]:
    """(seconds, bytes written to storage) of fn()."""
    w0, t0 = write_bytes(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, write_bytes() - w0


# -- append throughput ------------------------------------------------------------

def bench_append(root: Path, total_mb: int, frame_bytes: int, commit_every_kb: int) -> list[tuple[str, float, int]]:
    n = total_mb * MB // frame_bytes
    every = max(1, commit_every_kb * 1024 // frame_bytes)
    data = [payload(frame_bytes, i) for i in range(256)]
    rows: list[tuple[str, float, int]] = []

    def spool_run(commit_per_flush: bool, group: bool) -> Callable[[], None]:
        def run() -> None:
            d = root / f"spool-{commit_per_flush}-{group}"
            sp = _core.Spool(str(d), 1, commit_interval_s=1.0 if group else 0.0,
                             commit_bytes=4 * MB if group else 0)
            last = 0
            for i in range(n):
                last = sp.append(_core.FRAME_DATA, i, i, data[i & 255])
                if commit_per_flush and i % every == every - 1:
                    sp.commit()
            if group:
                sp.wait_durable(last)
            else:
                sp.commit()
            sp.close()
            shutil.rmtree(d)
        return run

    def plain_run() -> None:
        p = root / "plain.log"
        f = PlainFile(p)
        for i in range(n):
            f.append(data[i & 255])
            if i % every == every - 1:
                f.commit()
        f.commit()
        f.close()
        p.unlink()

    hdr = n * _core.HEADER_LEN
    for name, fn, extra in [
        (f"plain file, fsync every {commit_every_kb} KiB (baseline)", plain_run, 0),
        (f"spool, commit() every {commit_every_kb} KiB", spool_run(True, False), hdr),
        ("spool, group commit (1 s / 4 MiB)", spool_run(False, True), hdr),
    ]:
        secs, _ = timed(fn)
        rows.append((name, secs, n * frame_bytes + extra))
    return rows


# -- bytes written per frame byte -----------------------------------------------------

def bench_amplification(root: Path, tick_bytes: int, ticks: int, flushes_per_commit: int) -> tuple[float, float]:
    """Write amplification (storage bytes / frame bytes) of an agent-like
    pattern: per flush one DATA frame of `tick_bytes` plus a 200-byte
    heartbeat; a commit every `flushes_per_commit` flushes (1 = commit per
    flush; 10 = what the 1 s group committer does at a 100 ms flush interval).
    Returns (spool, plain file baseline)."""
    hb = payload(200, 7)
    frame = payload(tick_bytes, 3)

    def spool_run() -> None:
        d = root / "amp-spool"
        sp = _core.Spool(str(d), 1)
        for i in range(ticks):
            sp.append(_core.FRAME_HEARTBEAT, i, i, hb)
            sp.append(_core.FRAME_DATA, i, i, frame)
            if i % flushes_per_commit == flushes_per_commit - 1:
                sp.commit()
        sp.close()

    def plain_run() -> None:
        f = PlainFile(root / "amp-plain.log")
        for i in range(ticks):
            f.append(hb)
            f.append(frame)
            if i % flushes_per_commit == flushes_per_commit - 1:
                f.commit()
        f.commit()
        f.close()

    _, w_spool = timed(spool_run)
    _, w_plain = timed(plain_run)
    shutil.rmtree(root / "amp-spool")
    (root / "amp-plain.log").unlink()
    frame_bytes = ticks * (2 * _core.HEADER_LEN + len(hb) + len(frame))
    return w_spool / frame_bytes, w_plain / (ticks * (len(hb) + len(frame)))


# -- recovery ------------------------------------------------------------------------

def evict(paths: list[Path]) -> None:
    """Drop these files' clean pages from the page cache (a cold start)."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def bench_recovery(root: Path, gb: float, frame_bytes: int) -> list[tuple[str, float]]:
    d = root / "full"
    total = int(gb * (1 << 30))
    sp = _core.Spool(str(d), 1, max_bytes=total, commit_interval_s=1.0, commit_bytes=16 * MB)
    data = [payload(frame_bytes, i) for i in range(256)]
    i = 0
    while sp.stats()["bytes"] + frame_bytes + 64 <= total:
        sp.append(_core.FRAME_DATA, i, i, data[i & 255])
        i += 1
    sp.close()
    segs = sorted(d.glob("seg-*.tgs"))
    size = sum(p.stat().st_size for p in segs)

    def reopen() -> None:
        s = _core.Spool(str(d), 1, max_bytes=total)
        assert s.stats()["frames"] == i and s.stats()["dropped_frames"] == 0
        s.close()

    def read_all() -> None:
        buf = bytearray(MB)
        for p in segs:
            with open(p, "rb", buffering=0) as f:
                while f.readinto(buf):
                    pass

    rows: list[tuple[str, float]] = []
    evict(segs)
    rows.append(("plain sequential read of the segments, cold (baseline)", timed(read_all)[0]))
    evict(segs)
    rows.append(("spool open (scan + CRC + index), cold", timed(reopen)[0]))
    rows.append(("plain sequential read, warm (baseline)", timed(read_all)[0]))
    rows.append(("spool open, warm", timed(reopen)[0]))
    # A torn tail as a crash leaves it: half a frame at the end.
    with open(segs[-1], "ab") as f:
        f.write(_core.build_frame(1, 1, 1, i, 0, 0, data[0])[: frame_bytes // 2])
    evict(segs)
    rows.append(("spool open with a torn tail, cold", timed(reopen)[0]))
    shutil.rmtree(d)
    print(f"\nrecovery: {size / (1 << 30):.2f} GiB in {len(segs)} segments, {i} frames of {frame_bytes} B")
    return [(name, secs) for name, secs in rows] + [("__size__", float(size))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=None, help="directory on the disk under test")
    ap.add_argument("--append-mb", type=int, default=256)
    ap.add_argument("--frame-kb", type=int, default=16, help="frame payload size for throughput and recovery")
    ap.add_argument("--recovery-gb", type=float, default=2.0)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-spool-", dir=args.dir))
    try:
        fb = args.frame_kb * 1024
        print(f"append throughput: {args.append_mb} MiB of {args.frame_kb} KiB frames in {root}")
        rows = bench_append(root, args.append_mb, fb, 1024)
        base = rows[0][2] / rows[0][1]
        for name, secs, nbytes in rows:
            rate = nbytes / secs
            print(f"  {name:52s} {rate / MB:8.1f} MiB/s {nbytes / fb / secs:9.0f} frames/s  x{rate / base:.2f}")

        print("\nbytes written to storage per frame byte (/proc/self/io write_bytes; spool counts headers as frame bytes)")
        for tick_kb, per_commit, label in [(2, 1, "2 KiB/flush, commit every flush"),
                                           (2, 10, "2 KiB/flush, group commit (10 flushes/commit)"),
                                           (20, 1, "20 KiB/flush, commit every flush"),
                                           (20, 10, "20 KiB/flush, group commit (10 flushes/commit)"),
                                           (200, 1, "200 KiB/flush, commit every flush")]:
            ticks = max(200, min(3000, (32 * MB) // (tick_kb * 1024)))
            s, p = bench_amplification(root, tick_kb * 1024, ticks, per_commit)
            print(f"  {label:52s} spool {s:5.2f}   plain file {p:5.2f}")

        rows2 = bench_recovery(root, args.recovery_gb, fb)
        size = rows2.pop()[1]
        for name, secs in rows2:
            print(f"  {name:52s} {secs:7.2f} s  {size / secs / MB:8.0f} MiB/s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()


# -- the `tidegate bench` stage ---------------------------------------------------------

APPEND_MB = 64  # per variant at scale 1 (the standalone default is 256)
RECOVERY_GB = 0.25  # at scale 1 (the standalone default is 2): minutes on an SD card otherwise


def run(profile: Profile) -> list[Result]:
    """Append throughput, bytes written per frame byte and recovery time, each
    beside a plain file doing the same, on the disk of profile.workdir, in this
    process (pinned under the pi profile); sizes follow profile.scale."""
    import contextlib
    import io

    root = profile.workdir / "spool"
    root.mkdir(parents=True, exist_ok=True)
    fb = 16 * 1024
    append_mb = max(2, round(APPEND_MB * profile.scale))
    out: list[Result] = []
    with profile.pinned():
        # The group-commit row is left out here: it ends waiting for the last
        # 1 s commit, which only a run of hundreds of MiB amortises.
        (base_name, base_s, base_n), (name, secs, nbytes), _ = bench_append(root, append_mb, fb, 1024)
        out.append(Result("append throughput, commit every 1 MiB", nbytes / secs / MB, "MiB/s",
                          base_n / base_s / MB, base_name.removesuffix(" (baseline)"), "higher",
                          f"{append_mb} MiB of 16 KiB frames, headers included"))
        for tick_kb, per_commit, label in [(2, 10, "2 KiB/flush, group commit"),
                                           (20, 1, "20 KiB/flush, commit every flush")]:
            ticks = max(20, round(min(3000, 32 * MB // (tick_kb * 1024)) * profile.scale))
            s, p = bench_amplification(root, tick_kb * 1024, ticks, per_commit)
            out.append(Result(f"bytes written per frame byte, {label}", s, "B/B", p,
                              "plain file, same appends and fsyncs", "lower",
                              "/proc/self/io write_bytes over frame bytes (headers counted as frame bytes)"))
        gb = max(0.04, RECOVERY_GB * profile.scale)  # at least 2 segments of 16 MiB
        with contextlib.redirect_stdout(io.StringIO()):  # bench_recovery prints its size line
            rec = dict(bench_recovery(root, gb, fb))
        size = rec.pop("__size__")
        note = f"a full spool of {size / MB:.0f} MiB"
        out.append(Result("recovery: open a full spool, cold", size / rec["spool open (scan + CRC + index), cold"] / MB,
                          "MiB/s", size / rec["plain sequential read of the segments, cold (baseline)"] / MB,
                          "plain sequential read of the segments, cold", "higher", note + "; page cache dropped"))
        out.append(Result("recovery: open with a torn tail, cold",
                          size / rec["spool open with a torn tail, cold"] / MB, "MiB/s",
                          size / rec["plain sequential read of the segments, cold (baseline)"] / MB,
                          "plain sequential read of the segments, cold", "higher", note))
    shutil.rmtree(root, ignore_errors=True)
    return out
