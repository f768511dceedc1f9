"""The DATA codec on this machine, for `tidegate bench`: bytes per sample and
encode/decode values per second of edge._core's chunk codec over 1 s flush
windows (what the agent sends), beside zstd level 3 on the same raw columns of
the same windows, in the same run.

Data: benchmarks/codec_data.py's two data sets (the plant simulator, and the
recorded-style historian export), 30 min each at scale 1. zstd gets every
column the codec stores (tag u32, source and server time i64, status u32,
value u64, flags u8), so both sides hold the same information losslessly.
Speeds are the best of 3 interleaved passes on one thread (this process,
pinned under the pi profile). The full comparison with Gorilla and pco at 1/10/60 s windows is
the Rust example benchmarks/bench_codec.rs (needs cargo; see README.md).
"""

from __future__ import annotations

import contextlib
import io
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.bench.api import Profile, Result

HOURS = 0.5  # of each data set at scale 1
WINDOW_NS = 1_000_000_000
PASSES = 3
ZSTD_LEVEL = 3
COLS = (np.uint32, np.int64, np.int64, np.uint32, np.uint64)  # tag, source, server, status, value
# One flush window as encode_chunk takes it: tag, source, server, status, value bits, flags.
Window = tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.uint32],
               npt.NDArray[np.uint64], npt.NDArray[np.uint8]]


def read_cols(path: Path) -> tuple[list[npt.NDArray[Any]], npt.NDArray[np.uint8]]:
    """The columns and codec kinds of a file written by codec_data.write()."""
    raw = path.read_bytes()
    (n,) = struct.unpack_from("<Q", raw, 0)
    off, cols = 8, []
    for dt in COLS:
        a = np.frombuffer(raw, dt, n, off)
        cols.append(a)
        off += a.nbytes
    (k,) = struct.unpack_from("<Q", raw, off)
    return cols, np.frombuffer(raw, np.uint8, k, off + 8).copy()


def windows(cols: list[npt.NDArray[Any]]) -> list[Window]:
    """1 s flush windows by source time (the file is in arrival order), each
    as contiguous tag, source, server, status, value, flags arrays."""
    sec = cols[1] // WINDOW_NS
    cuts = np.flatnonzero(np.diff(sec)) + 1
    out: list[Window] = []
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(sec)]):
        t, src, srv, st, v = (np.ascontiguousarray(c[a:b]) for c in cols)
        out.append((t, src, srv, st, v, np.zeros(b - a, np.uint8)))
    return out


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(name: str, cols: list[npt.NDArray[Any]], kinds: npt.NDArray[np.uint8]) -> list[Result]:
    from numcodecs import Zstd

    from edge import _core

    wins = windows(cols)
    n = len(cols[0])
    zstd = Zstd(level=ZSTD_LEVEL)
    ours = [_core.encode_chunk(*w, [], kinds) for w in wins]
    for w, p in zip(wins, ours):  # lossless, or the speed means nothing
        back = _core.decode_chunk(p)
        by_tag = np.argsort(w[0], kind="stable")  # the order decode returns (docs/format.md)
        cols_in: list[npt.NDArray[Any]] = list(w)
        if not all(np.array_equal(a[by_tag], np.asarray(b)) for a, b in zip(cols_in, back)):
            raise AssertionError(f"{name}: the codec did not round-trip a window")
    raws = [b"".join(c.tobytes() for c in w) for w in wins]
    theirs = [zstd.encode(r) for r in raws]
    assert all(bytes(zstd.decode(c)) == r for c, r in zip(theirs, raws))

    # Passes interleaved, best kept: on a shared box, a burst of someone else's
    # work then hits both sides of a ratio alike instead of one of them.
    enc = dec = zenc = zdec = float("inf")
    for _ in range(PASSES):
        enc = min(enc, timed(lambda: [_core.encode_chunk(*w, [], kinds) for w in wins]))
        zenc = min(zenc, timed(lambda: [zstd.encode(b"".join(c.tobytes() for c in w)) for w in wins]))
        dec = min(dec, timed(lambda: [_core.decode_chunk(p) for p in ours]))
        zdec = min(zdec, timed(lambda: [np.frombuffer(zstd.decode(c), np.uint8) for c in theirs]))
    base = f"zstd level {ZSTD_LEVEL} on the raw columns"
    note = f"{n} samples of {len(kinds)} tags in {len(wins)} windows of 1 s"
    return [
        Result(f"bytes per sample, {name}", sum(map(len, ours)) / n, "B", sum(map(len, theirs)) / n, base,
               "lower", f"{note}; raw columns take {sum(map(len, raws)) / n:.0f} B"),
        Result(f"encode, {name}", n / enc, "values/s", n / zenc, base, "higher",
               "one thread, best of 3 interleaved passes"),
        Result(f"decode, {name}", n / dec, "values/s", n / zdec, base + " (to bytes)", "higher",
               "one thread, best of 3 interleaved passes; ours rebuilds the numpy columns"),
    ]


def run(profile: Profile) -> list[Result]:
    from benchmarks import codec_data

    hours = max(0.01, HOURS * profile.scale)
    work = profile.workdir / "codec"
    work.mkdir(parents=True, exist_ok=True)
    out: list[Result] = []
    for name, make in (("simulator", codec_data.sim), ("recorded-style", codec_data.recorded)):
        path = work / f"{name}.cols"
        with contextlib.redirect_stdout(io.StringIO()):  # codec_data prints a line per file
            make(hours, path)
        cols, kinds = read_cols(path)
        with profile.pinned():
            out += measure(name, cols, kinds)
        path.unlink()
    return out
