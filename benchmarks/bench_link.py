"""Diode link benchmark: goodput and CPU per side, FEC and authentication on
vs a baseline without FEC, paced at 1 Gbit/s and unpaced, on loopback; and
(as root, where network namespaces and tc netem work) with i.i.d. loss.

Sender and receiver run in separate processes so each side's CPU time is its
own. Goodput counts frame bytes landed in the IT spool (payload of the link)
per second, from the first data packet to the last frame; wire counts IP/UDP
bytes sent per second from the first data packet to the last (the heartbeat
that goes out at start, before the first window is encoded, starts neither).

    python benchmarks/bench_link.py [--mb 200] [--frame-kb 256] [--no-netem]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RECEIVER = r"""
import json, sys, time
from edge import _core
spool_dir, bind, key, n = sys.argv[1], sys.argv[2], sys.argv[3] or None, int(sys.argv[4])
it = _core.Spool(spool_dir, 0)
rx = _core.DiodeReceiver(bind, it, key_file=key)
print(rx.local_addr, flush=True)
t_first = None
deadline = time.monotonic() + 600
while time.monotonic() < deadline:
    st = rx.stats()
    # The clock starts at the first data packet (a heartbeat goes out first).
    if t_first is None and st["packets"] - st["heartbeats"] > 8:
        t_first, cpu_first = time.monotonic(), time.process_time()
    if st["frames_ok"] + st["lost"] >= n:
        break
    time.sleep(0.002)
t_end, cpu_end = time.monotonic(), time.process_time()
rx.stop()
st = rx.stats()
print(json.dumps({"wall": t_end - t_first, "cpu": cpu_end - cpu_first, "stats": st}), flush=True)
"""

SENDER = r"""
import json, sys, time
from edge import _core
spool_dir, target, key, rate, repair = sys.argv[1], sys.argv[2], sys.argv[3] or None, int(sys.argv[4]), float(sys.argv[5])
ot = _core.Spool(spool_dir, 1)
ot.set_cursor("sent", 0)
t0, c0 = time.monotonic(), time.process_time()
tx = _core.DiodeSender(ot, target, rate, 1500, key_file=key, repair_pct=repair, carousel_s=[])
t_data, wire0 = None, 0
while not tx.idle():
    st = tx.stats()
    if t_data is None and st["packets_sent"] - st["heartbeats"] > 8:  # first data, not the first heartbeat
        t_data, wire0 = time.monotonic(), st["bytes_sent"] + 28 * st["packets_sent"]
    time.sleep(0.002)
t1, c1 = time.monotonic(), time.process_time()
tx.stop()
st = tx.stats()
wire = (st["bytes_sent"] + 28 * st["packets_sent"] - wire0) / (t1 - (t_data or t0))
print(json.dumps({"wall": t1 - t0, "cpu": c1 - c0, "wire": wire, "stats": st}), flush=True)
"""


@dataclass
class Result:
    name: str
    goodput_mbit: float
    wire_mbit: float
    tx_cores: float
    rx_cores: float
    frames: int
    lost: int
    repaired_blocks: int
    queue_full_ms: int  # receiver's drain blocked on its decode queue


def prefill(path: Path, mb: int, frame_kb: int) -> tuple[int, int]:
    from edge import _core

    sp = _core.Spool(str(path), 1, segment_bytes=64 << 20)
    n = max(1, (mb << 20) // (frame_kb << 10))
    payload = os.urandom(frame_kb << 10)  # incompressible; the link does not care
    total = 0
    for i in range(n):
        sp.append(_core.FRAME_DATA, i, i, payload[i % 7:] + payload[:i % 7])
        total += len(payload) + _core.HEADER_LEN
    sp.commit()
    sp.close()
    return n, total


def run_one(name: str, work: Path, ot: Path, n: int, total: int, key: str, rate: int, repair: float,
            netns: str | None) -> Result:
    it = work / f"it-{name.replace(' ', '_').replace('/', '_')}"
    shutil.rmtree(it, ignore_errors=True)
    prefix = ["ip", "netns", "exec", netns] if netns else []
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rx = subprocess.Popen([*prefix, sys.executable, "-c", RECEIVER, str(it), "127.0.0.1:0", key, str(n)],
                          stdout=subprocess.PIPE, text=True, env=env)
    assert rx.stdout is not None
    addr = rx.stdout.readline().strip()
    tx = subprocess.run([*prefix, sys.executable, "-c", SENDER, str(ot), addr, key, str(rate), str(repair)],
                        capture_output=True, text=True, env=env, timeout=900)
    if tx.returncode != 0:
        rx.kill()
        raise RuntimeError(f"{name}: sender failed: {tx.stderr}")
    txr = json.loads(tx.stdout.strip().splitlines()[-1])
    out, _ = rx.communicate(timeout=900)
    rxr = json.loads(out.strip().splitlines()[-1])
    shutil.rmtree(it, ignore_errors=True)
    st = rxr["stats"]
    landed = total * st["frames_ok"] / n
    return Result(name, landed * 8 / rxr["wall"] / 1e6, txr["wire"] * 8 / 1e6,
                  txr["cpu"] / txr["wall"], rxr["cpu"] / rxr["wall"], st["frames_ok"], st["lost"],
                  st["blocks_repaired"], st.get("queue_full_ms", 0))


def netns_setup(loss_pct: float) -> str | None:
    """A fresh namespace whose loopback drops `loss_pct`% of packets (tc netem)."""
    ns = f"tgbench{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True,
                       capture_output=True)
        subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
                        "loss", f"{loss_pct}%", "limit", "100000"], check=True, capture_output=True)
        for k, v in (("net.core.rmem_max", "134217728"), ("net.core.wmem_max", "134217728")):
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"{k}={v}"], capture_output=True)
        return ns
    except (OSError, subprocess.CalledProcessError) as e:
        err = getattr(e, "stderr", b"") or b""
        print(f"netem scenarios skipped: {e} {err.decode(errors='replace').strip()}", file=sys.stderr)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=200, help="data per scenario (default 200 MiB)")
    ap.add_argument("--frame-kb", type=int, default=256, help="frame payload size (default 256 KiB)")
    ap.add_argument("--no-netem", action="store_true", help="skip the loss scenarios")
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from edge import _core

    work = Path(args.dir or tempfile.mkdtemp(prefix="tg-bench-link-"))
    work.mkdir(parents=True, exist_ok=True)
    key = work / "link.key"
    if not key.exists():
        _core.keygen(key)
    ot = work / "ot"
    shutil.rmtree(ot, ignore_errors=True)
    n, total = prefill(ot, args.mb, args.frame_kb)
    gbit = 1_000_000_000
    plan = [
        ("paced 1G, no FEC (baseline)", gbit, 0.0, None, 0.0),
        ("paced 1G, auth + 5% repair", gbit, 5.0, None, 0.0),
        ("unpaced, no FEC (baseline)", 0, 0.0, None, 0.0),
        ("unpaced, auth + 5% repair", 0, 5.0, None, 0.0),
    ]
    if not args.no_netem and os.geteuid() == 0:
        plan += [("paced 1G, 2% loss, 5% repair", gbit, 5.0, "netem", 2.0),
                 ("paced 1G, 5% loss, 10% repair", gbit, 10.0, "netem", 5.0)]
    results = []
    for name, rate, repair, where, loss in plan:
        ns = netns_setup(loss) if where == "netem" else None
        if where == "netem" and ns is None:
            continue
        try:
            results.append(run_one(name, work, ot, n, total, str(key), rate, repair, ns))
        finally:
            if ns:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        r = results[-1]
        print(f"{r.name:32s} goodput {r.goodput_mbit:7.1f} Mbit/s  wire {r.wire_mbit:7.1f} Mbit/s  "
              f"CPU tx {r.tx_cores:4.2f} rx {r.rx_cores:4.2f} cores  frames {r.frames}/{n} lost {r.lost} "
              f"repaired blocks {r.repaired_blocks} queue full {r.queue_full_ms} ms", flush=True)
    print(f"\n{n} frames of {args.frame_kb} KiB ({total / 1e6:.0f} MB) per scenario, MTU 1500, "
          f"{os.cpu_count()} CPUs; key {key}")
    base = {r.name.split(",")[0]: r for r in results if "baseline" in r.name}
    for r in results:
        b = base.get(r.name.split(",")[0])
        if b and b is not r:
            print(f"{r.name:32s} goodput {r.goodput_mbit / b.goodput_mbit:5.2f}x baseline, "
                  f"tx CPU {r.tx_cores / max(b.tx_cores, 1e-9):4.2f}x, rx CPU {r.rx_cores / max(b.rx_cores, 1e-9):4.2f}x")
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
