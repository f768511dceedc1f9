"""The whole chain under measurement: what `tidegate demo` runs, watched.

The simulator runs on a thread here, the receiver, the agent and the baseline
(a bare asyncua subscriber, edge/bench/subscriber.py) run as processes, as on
the target. Measured while the plant runs:

- end-to-end latency: a value's source timestamp at the server to the moment
  its row is visible in a published zarr batch (the bench polls the datasets
  directory), beside the bare subscriber's server-to-client latency;
- values/s the agent made durable in its spool, beside the values/s the
  server wrote;
- CPU and peak RSS of the agent, beside the bare subscriber's;
- bytes the agent wrote to storage per hour (/proc/PID/io), beside the same
  values uncompressed (28 bytes each).

Under the "pi" profile the agent and the baseline are pinned to one core and
the agent runs with its own memory cap ([agent] memory_max_mb).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench.api import Profile, Result
from edge.bench.procstat import Sampler, Series
from edge.datasets import layout as L
from edge.demo import (PUBLISHING_INTERVAL_MS, SimThread, _snapshot, _spawn, _stop, free_port, wait_ready,
                       write_configs)

SITE = "demo-plant"
RAW_SAMPLE_BYTES = 28  # edge/agent.py RAW_SAMPLE_BYTES
BATCH_SECONDS = 10  # each batch costs a file set per tag: fewer, larger batches
LATENESS_S = 2.0
POLL_S = 0.1
WARMUP_S = 5.0
LANDING_GRACE_S = 30.0
BASELINE_TIMEOUT_S = 60.0
# The receiver publishes what it holds on stop; on a slow or busy disk that takes long.
RECEIVER_STOP_S = 600.0


@dataclass
class ChainRun:
    """Raw observations of one run; results() turns them into figures."""

    begin_ns: int  # wall clock when the plant started moving
    t0: float  # monotonic: measurement window for rates
    t1: float
    values0: int  # agent values made durable at t0, t1
    values1: int
    sim0: int  # values the server wrote at t0, t1
    sim1: int
    zarr_latency_s: np.ndarray  # per row that landed during the run
    sub_latency_s: np.ndarray
    agent: Series
    baseline: Series
    agent_exit: int | None
    agent_stats: dict[str, Any]  # the agent's --stats-out (empty if it wrote none)
    agent_cpus: list[int]  # the cores the agent process was allowed, read back from the kernel
    agent_memory: str  # what the agent said of its memory cap at start (its log)


def _pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q)) if len(a) else float("nan")


class _ZarrWatch:
    """Finds batches as they are published and times their rows' arrival."""

    def __init__(self, root: Path) -> None:
        self.site_dir = root / SITE
        self.seen: set[Path] = set()
        self.latencies: list[np.ndarray] = []

    def poll(self, since_ns: int) -> None:
        """Time the rows of batches published since the last poll (sources from since_ns on)."""
        if not self.site_dir.is_dir():
            return
        now_ns = time.time_ns()
        for day in os.listdir(self.site_dir):
            if not L.is_day_dir(day):
                continue
            for name in os.listdir(self.site_dir / day):
                path = self.site_dir / day / name
                if path in self.seen or L.parse_batch_dir(day, name) is None:
                    continue
                if not (path / "zarr.json").is_file():
                    continue
                self.seen.add(path)
                src = _source_times(path)
                src = src[src >= since_ns]
                if len(src):
                    self.latencies.append((now_ns - src) / 1e9)

    def result(self) -> np.ndarray:
        return np.concatenate(self.latencies) if self.latencies else np.zeros(0)


def _source_times(batch: Path) -> np.ndarray:
    """Every row's source timestamp in one published batch."""
    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g: Any = zarr.open_group(str(batch), mode="r", use_consolidated=True)
        parts = [np.asarray(g[t["group"]]["time"][:]).astype(np.int64) for t in g.attrs.get("tags", [])]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _spawn_baseline(state: Path, endpoint: str, nodes: list[str]) -> tuple[subprocess.Popen[bytes], Path]:
    (state / "nodes.txt").write_text("\n".join(nodes))
    out = state / "subscriber.json"
    log = open(state / "subscriber.log", "ab")
    p = subprocess.Popen([sys.executable, "-P", "-m", "edge.bench.subscriber", endpoint,
                          str(state / "nodes.txt"), str(out), "--interval-ms", str(PUBLISHING_INTERVAL_MS)],
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return p, out


def _wait_file(path: Path, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + BASELINE_TIMEOUT_S
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} (see {path.parent})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {BASELINE_TIMEOUT_S:.0f}s")
        time.sleep(0.1)


def measure(profile: Profile, log: Any = sys.stderr) -> ChainRun:
    state = profile.workdir / "chain"
    state.mkdir(parents=True, exist_ok=True)
    duration = max(10.0, profile.duration_s)
    sim = SimThread(free_port(), seed=1)
    procs: list[subprocess.Popen[bytes]] = []
    sampler = Sampler(0.5)
    try:
        tags = sim.call(sim.sim.tags)
        agent_cfg, receiver_cfg = write_configs(
            state, sim.sim.endpoint, free_port(socket.SOCK_DGRAM), tags,
            memory_max_mb=profile.memory_max_mb, batch_seconds=BATCH_SECONDS, lateness_seconds=LATENESS_S)
        logs = [state / "receiver.log", state / "agent.log"]
        procs.append(_spawn(["receive", "--config", str(receiver_cfg)], logs[0]))
        procs.append(_spawn(["run", "--config", str(agent_cfg), "--stats-out", str(state / "agent-stats.json")],
                            logs[1]))
        base, base_out = _spawn_baseline(state, sim.sim.endpoint, [t.node_id for t in tags])
        procs.append(base)
        for p in procs[1:]:
            profile.pin(p.pid)
        agent_cpus = sorted(os.sched_getaffinity(procs[1].pid))
        print(f"  chain: {len(tags)} tags; waiting for the agent and the baseline to subscribe", file=log,
              flush=True)
        sock = state / "agent.sock"
        wait_ready(sock, len(tags), procs[:2], logs)
        _wait_file(base_out.with_suffix(".ready"), base, "baseline subscriber")
        agent_s = sampler.watch("agent", procs[1].pid)
        base_s = sampler.watch("bare asyncua subscriber", base.pid)
        sampler.start()
        watch = _ZarrWatch(state / "datasets")
        begin_ns = time.time_ns()
        sim.call(sim.sim.begin)
        start = time.monotonic()
        print(f"  chain: plant running for {duration:.0f}s", file=log, flush=True)
        t0 = v0 = s0 = None
        while (now := time.monotonic()) - start < duration:
            if t0 is None and now - start >= min(WARMUP_S, duration / 4):
                snap = _snapshot(sock)
                if snap is not None:
                    t0, v0, s0 = time.monotonic(), int(snap["counters"]["values"]), sim.sim.writes
            if procs[1].poll() is not None:
                break
            watch.poll(begin_ns)
            time.sleep(POLL_S)
        snap = _snapshot(sock)
        t1, s1 = time.monotonic(), sim.sim.writes
        v1 = int(snap["counters"]["values"]) if snap else 0
        # A short run may end before the first batch is published: keep the
        # plant running until one has landed, so latency is always measured.
        deadline = time.monotonic() + BATCH_SECONDS + LATENESS_S + LANDING_GRACE_S
        while not watch.latencies and time.monotonic() < deadline and procs[1].poll() is None:
            watch.poll(begin_ns)
            time.sleep(POLL_S)
        sim.call(sim.sim.hold)
        sim.run(sim.sim.wait_held())
        sampler.stop()
        base.terminate()
        base.wait(30)
        _stop(procs[1], "agent")
        procs[0].terminate()
        procs[0].wait(RECEIVER_STOP_S)
        sub = json.loads(base_out.read_text())
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        sim.close()
    src = np.asarray(sub["source_ns"], np.int64)
    arr = np.asarray(sub["arrival_ns"], np.int64)
    keep = src >= begin_ns
    stats_file = state / "agent-stats.json"
    agent_stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    if t0 is None or v0 is None or s0 is None:
        t0, v0, s0 = t1, v1, s1
    return ChainRun(begin_ns=begin_ns, t0=t0, t1=t1, values0=v0, values1=v1, sim0=s0, sim1=s1,
                    zarr_latency_s=watch.result(), sub_latency_s=(arr[keep] - src[keep]) / 1e9,
                    agent=agent_s, baseline=base_s, agent_exit=procs[1].returncode, agent_stats=agent_stats,
                    agent_cpus=agent_cpus, agent_memory=_memory_line(logs[1]))


def _memory_line(agent_log: Path) -> str:
    """The agent's own account of its memory cap ("memory: cap 256 MB ...")."""
    for line in agent_log.read_text(errors="replace").splitlines():
        if line.startswith("tidegate agent: memory:"):
            return line.removeprefix("tidegate agent: ").split(";")[0]
    return "the agent did not say (see its log)"


def results(r: ChainRun, profile: Profile) -> list[Result]:
    span = r.t1 - r.t0
    vps = (r.values1 - r.values0) / span if span > 0 else float("nan")
    sps = (r.sim1 - r.sim0) / span if span > 0 else float("nan")
    pin = (f"agent ran on core(s) {', '.join(map(str, r.agent_cpus))} of {os.cpu_count()}"
           if profile.cpus else "agent not pinned")
    n = len(r.zarr_latency_s)
    lat_note = (f"{n} rows; batch_seconds={BATCH_SECONDS}, lateness_seconds={LATENESS_S:g}, "
                f"publishing and flush interval 1 s")
    if not n:
        lat_note = "no row landed in zarr during the run: see the receiver log in --keep-work"
    out = [
        Result("end-to-end latency p50", _pct(r.zarr_latency_s, 50), "s", _pct(r.sub_latency_s, 50),
               "server to a bare asyncua subscriber", "lower", lat_note),
        Result("end-to-end latency p95", _pct(r.zarr_latency_s, 95), "s", _pct(r.sub_latency_s, 95),
               "server to a bare asyncua subscriber", "lower", lat_note),
        Result("values/s to spool", vps, "values/s", sps, "values/s the server wrote", "higher",
               f"{r.values1 - r.values0} values over {span:.0f}s"),
        Result("agent CPU", r.agent.cpu_percent(r.t0, r.t1), "% of one core",
               r.baseline.cpu_percent(r.t0, r.t1), "bare asyncua subscriber", "lower", pin),
        Result("agent RSS peak", r.agent.rss_max(r.t0, r.t1) / 2**20, "MB",
               r.baseline.rss_max(r.t0, r.t1) / 2**20, "bare asyncua subscriber", "lower", f"agent's {r.agent_memory}"),
        Result("agent bytes written", r.agent.write_bytes_per_hour(r.t0, r.t1) / 2**20, "MB/h",
               vps * RAW_SAMPLE_BYTES * 3600 / 2**20, "the same values uncompressed (28 B each)", "lower",
               "from /proc/PID/io write_bytes: spool segments, fsyncs, metadata"),
    ]
    c = r.agent_stats.get("counters", {})
    if c.get("values"):
        out.append(Result("DATA payload per value", c["data_payload_bytes"] / c["values"], "B",
                          float(RAW_SAMPLE_BYTES), "a raw sample: two times, value, status", "lower",
                          f"the agent's codec on the simulator's data, {c['values']} values"))
    if r.agent_exit not in (0, None):
        out.append(Result("agent exit status", float(r.agent_exit), "", None, "", "lower",
                          "non-zero: see the agent log (75 = memory cap)"))
    return out


def series(r: ChainRun, cpu_window_s: float = 5.0) -> dict[str, list[tuple[float, float, float]]]:
    """(seconds since the window opened, CPU %, RSS MB) per process, for the
    report's plot. CPU is averaged over `cpu_window_s`: the kernel counts it in
    10 ms ticks, so a half-second sample of a mostly idle process is all noise."""
    out: dict[str, list[tuple[float, float, float]]] = {}
    for s in (r.agent, r.baseline):
        pts = []
        j = 0
        for b in s.samples:
            while j + 1 < len(s.samples) and b.t - s.samples[j + 1].t >= cpu_window_s:
                j += 1
            a = s.samples[j]
            if b.t - a.t >= cpu_window_s / 2:
                pts.append((b.t - r.t0, 100.0 * (b.cpu_s - a.cpu_s) / (b.t - a.t), b.rss / 2**20))
        out[s.label] = pts
    return out


def run(profile: Profile) -> list[Result]:
    r = measure(profile)
    (profile.workdir / "chain-series.json").write_text(json.dumps(series(r)))
    return results(r, profile)
