"""The diode sender alone: how much of its configured rate the pacer puts on
the wire when no receiver competes for the CPU. The target is a loopback UDP
socket that never reads (the kernel drops what its buffer cannot hold; the
sender cannot tell). Wire = IP/UDP bytes per second from the first data
packet to the last, as bench_link.py counts it; the payload ceiling follows
from it (docs/link.md: 905.3 Mbit/s of these frames per 1000 on the wire,
with 5% repair).

    python benchmarks/link_pacer.py [--mb 300] [--rate-mbit 1000] [--runs 3]

Not a `tidegate bench` stage (no bench_ prefix): bench_link.py is the link's.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def send_all(ot: Any, target: str, key: str | None, rate_bps: int, repair: float) -> dict[str, Any]:
    """Send spool `ot` from seq 0 until the sender is idle: wall and CPU
    seconds, wire bytes/s from the first data packet (not the heartbeat that
    goes out first) to the last, seconds to that first packet, and the
    sender's stats. bench_link.py runs this in the sender's process too."""
    from edge import _core

    ot.set_cursor("sent", 0)
    t0, c0 = time.monotonic(), time.process_time()
    tx = _core.DiodeSender(ot, target, rate_bps, 1500, key_file=key, repair_pct=repair, carousel_s=[])
    t_data, wire0 = None, 0
    while not tx.idle():
        st = tx.stats()
        if t_data is None and st["packets_sent"] - st["heartbeats"] > 8:
            t_data, wire0 = time.monotonic(), st["bytes_sent"] + 28 * st["packets_sent"]
        time.sleep(0.002)
    t1, c1 = time.monotonic(), time.process_time()
    tx.stop()
    st = tx.stats()
    t_data = t_data or t0
    wire = (st["bytes_sent"] + 28 * st["packets_sent"] - wire0) / (t1 - t_data)
    return {"wall": t1 - t0, "cpu": c1 - c0, "wire": wire, "first_s": t_data - t0, "stats": st}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=300, help="data per run (default 300 MiB)")
    ap.add_argument("--rate-mbit", type=int, default=1000, help="pacer rate (default 1000)")
    ap.add_argument("--runs", type=int, default=3, help="runs per scenario (default 3)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_link import prefill
    from edge import _core

    work = Path(tempfile.mkdtemp(prefix="tg-bench-pacer-"))
    try:
        key = work / "link.key"
        _core.keygen(key)
        n, _ = prefill(work / "ot", args.mb, 256)
        ot = _core.Spool(str(work / "ot"), 1)
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{sink.getsockname()[1]}"
        for repair in (0.0, 5.0):
            for _ in range(args.runs):
                r = send_all(ot, target, str(key), args.rate_mbit * 1_000_000, repair)
                wire, first, cpu = r["wire"] * 8 / 1e6, r["first_s"], r["cpu"] / r["wall"]
                print(f"repair {repair:3.0f}%  wire {wire:7.1f} Mbit/s ({wire / args.rate_mbit:6.1%} of the rate)  "
                      f"first data after {first:5.3f} s  CPU {cpu:4.2f} cores", flush=True)
        print(f"\n{n} frames of 256 KiB per run, MTU 1500, paced at {args.rate_mbit} Mbit/s, no receiver")
        ot.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
