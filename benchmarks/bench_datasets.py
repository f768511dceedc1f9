"""IT-side datasets: codecs and chunking, measured for IT's two reads.

    python benchmarks/bench_datasets.py [--tags 100] [--hours 24] [--repeat 5] [--out FILE.json]

One synthetic site-day (realistic mix: noisy analogs at 1 Hz, counters and
states on change, jittered source timestamps) goes through every variant in the
same run, side by side with the baseline (zstd 3, one chunk per batch: the
issue-2 choice). For each variant:

- write: seconds to build and publish the day's hourly batches (fsync off, so
  the disk's sync latency does not hide the encoder);
- disk: bytes of all files, and the file count;
- link: the DATA payload bytes the same samples take on the diode (the Rust
  codec over 1 s frames), so disk/link says what landing costs;
- read tag/day: one analog tag over the whole day with xarray (24 batches),
  median of --repeat runs;
- read all/instant: every tag's value at one instant (as-of): with
  `edge.datasets.values_at` (concurrent small reads through zarr's async API)
  and, for comparison, plain xarray (`open_datatree` on that hour's batch,
  then `sel(method="ffill")` per tag); median of --repeat runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from edge.bench.api import Profile
from edge.bench.api import Result as BenchResult
from edge.datasets import DatasetWriter, list_batches, values_at
from edge.datasets.encoding import Encoding
from edge.frames import encode_data
from edge.model import ColumnBatch, TagInfo

S = 1_000_000_000
DAY0 = 1_763_942_400 * S  # 2025-11-24T00:00:00Z

VARIANTS: list[tuple[str, Encoding]] = [
    ("baseline zstd3 (the default)", Encoding(compressor="zstd", level=3)),
    ("blosc-zstd5 shuffle", Encoding(compressor="blosc-zstd", level=5, shuffle="shuffle")),
    ("blosc-zstd5 bitshuffle", Encoding(compressor="blosc-zstd", level=5, shuffle="bitshuffle")),
    ("blosc-lz4-5 shuffle", Encoding(compressor="blosc-lz4", level=5, shuffle="shuffle")),
    ("blosc-zstd5 shuffle, chunks 600", Encoding(compressor="blosc-zstd", level=5, shuffle="shuffle",
                                                 chunk_samples=600)),
]


def make_tags(n: int) -> list[TagInfo]:
    kinds = ["Double"] * 6 + ["Float"] + ["Int32"] * 2 + ["Boolean"]
    return [TagInfo(index=i, name=f"Area{i // 20}/Unit{i % 20}/{kinds[i % len(kinds)]}{i}",
                    node_id=f"ns=2;i={1000 + i}", source="opc.tcp://plc:4840", data_type=kinds[i % len(kinds)],
                    unit="degC" if kinds[i % len(kinds)] in ("Double", "Float") else "")
            for i in range(n)]


def make_hour(tags: list[TagInfo], hour: int, rng: np.random.Generator,
              state: dict[int, float]) -> ColumnBatch:
    """One hour of samples for every tag, in arrival (time) order."""
    cols: dict[str, list[np.ndarray[Any, Any]]] = {k: [] for k in ("tag", "src", "srv", "status", "bits")}
    base = DAY0 + hour * 3600 * S
    for t in tags:
        if t.data_type in ("Double", "Float"):
            n = 3600
            secs = np.arange(n, dtype=np.int64)
            walk = state.get(t.index, 50.0) + np.cumsum(rng.normal(0, 0.05, n))
            state[t.index] = float(walk[-1])
            v = np.round(walk + rng.normal(0, 0.01, n), 3)
            bits = (v.astype(np.float32).astype(np.float64) if t.data_type == "Float" else v).view(np.uint64)
        else:  # counters and states: reported on change, about once a minute
            n = 60
            secs = np.sort(rng.choice(3600, n, replace=False)).astype(np.int64)
            if t.data_type == "Boolean":
                bits = (np.arange(n) % 2).astype(np.uint64)
            else:
                start = state.get(t.index, 0.0)
                vals = int(start) + np.cumsum(rng.integers(1, 50, n))
                state[t.index] = float(vals[-1])
                bits = vals.astype(np.int64).view(np.uint64)
        # OPC UA 100 ns ticks, a few ms of jitter on each sample's source time.
        src = base + secs * S + rng.integers(0, 20_000, n) * 100
        cols["tag"].append(np.full(n, t.index, np.uint32))
        cols["src"].append(src)
        cols["srv"].append(src + 2_000_000)
        cols["status"].append(np.zeros(n, np.uint32))
        cols["bits"].append(bits.astype(np.uint64))
    order = np.argsort(np.concatenate(cols["src"]), kind="stable")
    cat = {k: np.concatenate(v)[order] for k, v in cols.items()}
    return ColumnBatch(tag=cat["tag"], source_ns=cat["src"], server_ns=cat["srv"], status=cat["status"],
                       value_bits=cat["bits"], flags=np.zeros(len(order), np.uint8), strings=[])


def link_bytes(batch: ColumnBatch) -> int:
    """DATA payload bytes for this hour sent as 1 s frames (the agent's flush window)."""
    sec = (batch.source_ns - batch.source_ns.min()) // S
    bounds = np.flatnonzero(np.diff(sec)) + 1
    total = 0
    for a, b in zip(np.concatenate(([0], bounds)), np.concatenate((bounds, [len(sec)]))):
        total += len(encode_data(batch.slice(int(a), int(b)) if hasattr(batch, "slice") else _slice(batch, a, b)))
    return total


def _slice(b: ColumnBatch, a: int, e: int) -> ColumnBatch:
    return ColumnBatch(tag=b.tag[a:e], source_ns=b.source_ns[a:e], server_ns=b.server_ns[a:e], status=b.status[a:e],
                       value_bits=b.value_bits[a:e], flags=b.flags[a:e], strings=b.strings)


def disk_usage(root: Path) -> tuple[int, int]:
    size = files = 0
    for d, _, fs in os.walk(root):
        for f in fs:
            size += os.path.getsize(os.path.join(d, f))
            files += 1
    return size, files


def run_variant(enc: Encoding, tags: list[TagInfo], hours: list[ColumnBatch], root: Path,
                repeat: int) -> dict[str, Any]:
    w = DatasetWriter(root, "site", 3600, fsync=False, encoding=enc)
    w.set_catalog(tags)
    t0 = time.perf_counter()
    for lsn, b in enumerate(hours):
        w.add(b, lsn)
    w.flush()
    write_s = time.perf_counter() - t0
    size, files = disk_usage(root / "site")
    batches = list_batches(root, "site")
    tag = tags[0].name
    noon = np.datetime64(DAY0 + (len(hours) // 2) * 3600 * S + 1800 * S + 123, "ns")
    mid = batches[len(batches) // 2]

    def read_tag_day() -> int:
        parts = [xr.open_zarr(b.path, group=b.group_of(tag)[0], chunks=None).load() for b in batches]
        return int(xr.concat(parts, dim="time").sizes["time"])

    def read_all_instant() -> int:
        return int(values_at(root, "site", int(noon.astype(np.int64)))["value"].size)

    def read_all_instant_xr() -> int:
        tree = xr.open_datatree(mid.path, engine="zarr", chunks=None)
        vals = [tree[t["group"]].to_dataset()["value"].sel(time=noon, method="ffill").values
                for t in mid.attrs["tags"]]
        return len(vals)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert read_tag_day() == sum(b.attrs["tags"][0]["n_samples"] for b in batches)
        assert read_all_instant() == len(tags) == read_all_instant_xr()
        tag_day = _median(read_tag_day, repeat)
        all_instant = _median(read_all_instant, repeat)
        all_instant_xr = _median(read_all_instant_xr, repeat)
    return {"write_s": write_s, "disk_bytes": size, "files": files, "read_tag_day_s": tag_day,
            "read_all_instant_s": all_instant, "read_all_instant_xarray_s": all_instant_xr}


def _median(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", type=int, default=100)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    args = ap.parse_args(argv)
    tags = make_tags(args.tags)
    rng = np.random.default_rng(args.seed)
    state: dict[int, float] = {}
    hours = [make_hour(tags, h, rng, state) for h in range(args.hours)]
    n = sum(len(h) for h in hours)
    link = sum(link_bytes(h) for h in hours)
    print(f"{args.tags} tags, {args.hours} h, {n} samples; DATA payload on the link: {link} B "
          f"({link / n:.2f} B/sample)")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-datasets-") as tmp:
        for i, (name, enc) in enumerate(VARIANTS):
            results[name] = run_variant(enc, tags, hours, Path(tmp) / str(i), args.repeat)
    base = results[VARIANTS[0][0]]
    head = f"{'variant':34} {'write s':>8} {'disk MB':>8} {'disk/link':>9} {'files':>6} " \
           f"{'tag/day ms':>11} {'all/instant ms':>15} {'(xarray) ms':>12}"
    print(head)
    for name, r in results.items():
        print(f"{name:34} {r['write_s']:8.2f} {r['disk_bytes'] / 1e6:8.2f} {r['disk_bytes'] / link:9.2f} "
              f"{r['files']:6d} {r['read_tag_day_s'] * 1e3:11.1f} {r['read_all_instant_s'] * 1e3:15.1f} "
              f"{r['read_all_instant_xarray_s'] * 1e3:12.1f}")
    print("ratios to the baseline (lower is better):")
    for name, r in results.items():
        print(f"  {name:34} disk x{r['disk_bytes'] / base['disk_bytes']:.2f}  "
              f"tag/day x{r['read_tag_day_s'] / base['read_tag_day_s']:.2f}  "
              f"all/instant x{r['read_all_instant_s'] / base['read_all_instant_s']:.2f}  "
              f"write x{r['write_s'] / base['write_s']:.2f}")
    if args.out:
        args.out.write_text(json.dumps({"samples": n, "link_bytes": link, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())


# -- the `tidegate bench` stage ---------------------------------------------------------

def run(profile: Profile) -> list[BenchResult]:
    """The receiver's default encoding (zstd 3, one chunk per batch) on
    20 tags x 2 h (tags follow profile.scale): bytes on disk beside the bytes
    the same samples take on the link, and an as-of read of every tag with
    edge.datasets.values_at beside plain xarray."""
    tags = make_tags(max(5, round(20 * profile.scale)))
    rng = np.random.default_rng(1)
    state: dict[int, float] = {}
    hours = [make_hour(tags, h, rng, state) for h in range(2)]
    n = sum(len(h) for h in hours)
    link = sum(link_bytes(h) for h in hours)
    root = profile.workdir / "datasets"
    r = run_variant(VARIANTS[0][1], tags, hours, root, 3)
    flat_s = _write_flat(hours, profile.workdir / "datasets-flat")
    note = f"{len(tags)} tags, 2 hourly batches, {n} samples"
    return [
        BenchResult("landed on disk per sample", r["disk_bytes"] / n, "B", link / n,
                    "the same samples on the link (DATA payload)", "lower", f"{note}, {r['files']} files"),
        BenchResult("landing write speed", n / r["write_s"], "samples/s", n / flat_s,
                    "zstd 3 of the raw columns, one file per batch", "higher", note + "; fsync off"),
        BenchResult("read every tag at one instant", r["read_all_instant_s"] * 1e3, "ms",
                    r["read_all_instant_xarray_s"] * 1e3, "plain xarray open_datatree + sel(ffill)", "lower",
                    note + "; median of 3"),
    ]


def _write_flat(hours: list[ColumnBatch], root: Path) -> float:
    """Seconds to write each batch as its raw columns, zstd 3, in one file:
    what landing costs without zarr's layout (a group and arrays per tag)."""
    from numcodecs import Zstd

    root.mkdir(parents=True, exist_ok=True)
    zstd = Zstd(level=3)
    t0 = time.perf_counter()
    for i, b in enumerate(hours):
        raw = b"".join(np.ascontiguousarray(c).tobytes()
                       for c in (b.tag, b.source_ns, b.server_ns, b.status, b.value_bits, b.flags))
        (root / f"batch-{i}.zst").write_bytes(zstd.encode(raw))
    return time.perf_counter() - t0
