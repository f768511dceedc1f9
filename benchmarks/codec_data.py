"""Data sets for benchmarks/bench_codec.rs, written as plain column files.

  python benchmarks/codec_data.py OUT_DIR [--hours H] [--rate-20k]

Writes two files (format below), three with --rate-20k:
- sim.cols: the plant simulator (edge/sim/plant.py) ticked for H hours, every
  change as the agent would collect it (source time at 1 us resolution as
  asyncua delivers it, server time 0-3 ms later, Bad samples with null values).
- recorded.cols: a recorded-style plant historian export, generated because no
  real recorded industrial data set ships in a PyPI or Debian package we could
  find (docs/codec.md says what was searched). 400 tags in the shapes plant
  historians hold: analog instruments with fixed resolution (0.001 .. 1 units)
  and sensor noise on slow process dynamics, reported by exception (OPC UA
  subscription with deadband: a sample only when the reading changes), at
  100-1000 ms sampling with OPC UA's 100 ns DateTime resolution and clock jitter;
  totalizers (monotone counters), discrete states (bool, enumerations as
  Int32), a few float32 tags; and 0.5 % of samples Bad/Uncertain runs.
- recorded20k.cols (--rate-20k): the same generator with 11,000 tags for 2
  minutes, about 20,000 values/s: the plant the codec's speed goal is stated
  for, so its 1 s windows are the chunks that plant's agent would send.

File format (little-endian): u64 n, then n x u32 tag, n x i64 source_ns,
n x i64 server_ns, n x u32 status, n x u64 value_bits, then u64 k and k x u8
codec kinds (edge.model.codec_kinds).
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

import numpy as np

from edge.collect import Collector
from edge.model import TagInfo, codec_kinds
from edge.sim.plant import TICK_MS, PlantModel

T0 = 1_780_000_000_000_000_000


def write(path: Path, tag: np.ndarray, src: np.ndarray, srv: np.ndarray, status: np.ndarray,
          bits: np.ndarray, kinds: np.ndarray) -> None:
    o = np.argsort(src, kind="stable")  # arrival order across tags
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(tag)))
        for a, dt in ((tag, np.uint32), (src, np.int64), (srv, np.int64), (status, np.uint32), (bits, np.uint64)):
            f.write(np.ascontiguousarray(a[o], dt).tobytes())
        f.write(struct.pack("<Q", len(kinds)))
        f.write(kinds.astype(np.uint8).tobytes())
    print(f"{path}: {len(tag)} samples, {len(kinds)} tags")


def sim(hours: float, out: Path) -> None:
    model = PlantModel(seed=1)
    col = Collector(capacity=1 << 16)
    for i, t in enumerate(model.tags):
        col.register(name=t.name, node_id=t.name, source="sim", data_type=t.data_type)
    rng = np.random.default_rng(1)
    ticks = int(hours * 3600 * 1000 / TICK_MS)
    for tick in range(ticks):
        changes = model.initial() if tick == 0 else model.step()
        base = T0 + tick * TICK_MS * 1_000_000
        for i, v, s in changes:
            src = base + int(rng.integers(0, 2000)) * 1000  # us resolution
            col.add(i, v, s, src, src + int(rng.integers(0, 3000)) * 1000)
    b = col.flush()
    write(out, b.tag, b.source_ns, b.server_ns, b.status, b.value_bits, codec_kinds(col.catalog()))


def recorded(hours: float, out: Path, n_tags: int = 400) -> None:
    rng = np.random.default_rng(2)
    secs = hours * 3600
    cols: list[list[np.ndarray]] = [[], [], [], [], []]
    infos: list[TagInfo] = []
    for tag in range(n_tags):
        shape = rng.choice(["analog"] * 14 + ["f32"] * 2 + ["total", "bool", "enum"])
        period = float(rng.choice([0.1, 0.25, 0.5, 1.0, 1.0, 1.0]))
        n = int(secs / period)
        t = T0 + (np.arange(n) * period * 1e9).astype(np.int64)
        t += rng.integers(0, 20_000, n) * 100  # 0-2 ms jitter, 100 ns ticks
        level = rng.uniform(1, 1000)
        # slow dynamics (sum of drifts and an occasional setpoint step) + noise
        drift = np.cumsum(rng.normal(0, level * 2e-4, n))
        steps = np.cumsum(np.where(rng.random(n) < 2e-4, rng.normal(0, level * 0.05, n), 0))
        x = level + drift + steps + rng.normal(0, level * 1e-3, n)
        dtype = "Double"
        if shape in ("analog", "f32"):
            res = float(10.0 ** -int(rng.integers(0, 4))) * (1 if level < 100 else 10)
            v = np.round(x / res) * res
            v = np.round(v, 6)
            if shape == "f32":
                dtype = "Float"
                v = v.astype(np.float32).astype(np.float64)
            bits = v.view(np.uint64)
        elif shape == "total":
            dtype = "UInt32"
            v = np.cumsum(rng.poisson(3, n)).astype(np.uint64)
            bits = v
        elif shape == "bool":
            dtype = "Boolean"
            bits = ((np.sin(np.arange(n) * period / rng.uniform(30, 600)) > 0)).astype(np.uint64)
        else:
            dtype = "Int32"
            bits = ((np.floor(np.arange(n) * period / rng.uniform(60, 900))) % 5).astype(np.uint64)
        keep = np.r_[True, bits[1:] != bits[:-1]]  # report by exception
        status = np.zeros(n, np.uint32)
        bad = rng.random(n) < 0.0005
        for j in np.flatnonzero(bad):
            status[j:j + int(rng.integers(5, 60))] = rng.choice([0x80000000, 0x40000000, 0x808A0000])
        keep |= np.r_[True, status[1:] != status[:-1]]
        bits = np.where(status & 0x80000000, 0, bits)
        k = np.flatnonzero(keep)
        cols[0].append(np.full(len(k), tag, np.uint32))
        cols[1].append(t[k])
        cols[2].append(t[k] + rng.integers(0, 5000, len(k)) * 100)
        cols[3].append(status[k])
        cols[4].append(bits[k].astype(np.uint64))
        infos.append(TagInfo(tag, f"t{tag}", "", "", dtype))
    tag_a, src, srv, st, bits = (np.concatenate(c) for c in cols)
    write(out, tag_a, src, srv, st, bits, codec_kinds(infos))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--hours", type=float, default=0.5)
    ap.add_argument("--rate-20k", action="store_true",
                    help="also write recorded20k.cols (about 20,000 values/s for 2 minutes)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    sim(a.hours, a.out / "sim.cols")
    recorded(a.hours, a.out / "recorded.cols")
    if a.rate_20k:
        recorded(2 / 60, a.out / "recorded20k.cols", n_tags=11_000)


if __name__ == "__main__":
    main()
