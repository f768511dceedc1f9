"""`tidegate demo`: the whole chain on one machine.

The plant simulator (an asyncua server on loopback) runs in this process, the
agent and the receiver run as their own processes exactly as they would on the
two sides of a diode, talking over real UDP on loopback. At the end the
simulator's record of every value it published is compared with what landed in
zarr, so the summary's "missing" is a measurement, not a claim.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np

from edge.sim import PlantSimulator

T = TypeVar("T")
PUBLISHING_INTERVAL_MS = 1000
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 90.0
COLLECT_TIMEOUT_S = 30.0


@dataclass
class DemoOptions:
    headless: bool = False
    duration: float | None = None
    state_dir: Path | None = None
    seed: int = 1
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    # Land the datasets in an S3-compatible store instead of <state>/datasets
    # (credentials from the AWS_* environment, which the receiver inherits).
    datasets_url: str | None = None
    s3_endpoint: str | None = None


@dataclass
class DemoSummary:
    source_values: int
    zarr_values: int
    missing: int
    unexpected: int
    link_bytes: int
    data_payload_bytes: int
    compression_ratio: float
    datasets: Path | str
    missing_examples: list[str]

    def lines(self) -> list[str]:
        return [
            f"values seen at the source : {self.source_values}",
            f"values written to zarr    : {self.zarr_values}",
            f"values missing            : {self.missing}",
            f"values unexpected         : {self.unexpected}",
            f"bytes on the link         : {self.link_bytes}",
            f"DATA payload bytes        : {self.data_payload_bytes}",
            f"compression ratio         : {self.compression_ratio:.2f}x "
            f"(vs {28} raw bytes per sample)",
            f"datasets                  : {self.datasets}",
        ]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SimThread:
    """The simulator on its own event loop in a background thread."""

    def __init__(self, port: int, seed: int) -> None:
        # asyncua's server warns that the demo endpoint has no security policy;
        # that is the point of a loopback demo, not news for the user.
        logging.getLogger("asyncua").setLevel(logging.ERROR)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sim", daemon=True)
        self.thread.start()
        self.sim = PlantSimulator(port=port, seed=seed)
        self.run(self.sim.start())

    def run(self, coro: Any, timeout: float = 60.0) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def call(self, fn: Any, *args: Any) -> Any:
        async def wrapper() -> Any:
            return fn(*args)
        return self.run(wrapper())

    def close(self) -> None:
        try:
            self.run(self.sim.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def write_configs(state: Path, endpoint: str, udp_port: int, tags: list[Any],
                  datasets_url: str | None = None, s3_endpoint: str | None = None, *,
                  memory_max_mb: int = 0, batch_seconds: int = 3600,
                  lateness_seconds: float | None = None) -> tuple[Path, Path]:
    from edge import _core

    key = state / "link.key"  # the demo's link is authenticated like a real one
    if not key.exists():
        _core.keygen(key)
    agent = state / "agent.toml"
    lines = [
        "# Written by `tidegate demo`: the simulator's every tag, one source.",
        "[site]", "id = 1", 'name = "demo-plant"', "",
        "[agent]", f"status_socket = {_toml_str(str(state / 'agent.sock'))}",
        "flush_interval_ms = 1000", f"memory_max_mb = {memory_max_mb}", "",
        "[spool]", f"path = {_toml_str(str(state / 'ot-spool'))}", "",
        "[link]", f'target = "127.0.0.1:{udp_port}"', "rate_mbit = 50", "mtu = 1500",
        f"key_file = {_toml_str(str(key))}", "",
        "[[sources]]", 'name = "sim"', f"endpoint = {_toml_str(endpoint)}",
        f"publishing_interval_ms = {PUBLISHING_INTERVAL_MS}", "",
    ]
    for t in tags:
        lines += ["[[tags]]", 'source = "sim"', f"node_id = {_toml_str(t.node_id)}",
                  f"name = {_toml_str(t.name)}", ""]
    agent.write_text("\n".join(lines))
    receiver = state / "receiver.toml"
    receiver.write_text("\n".join([
        "[site]", 'name = "demo-plant"', "",
        "[receiver]", f'bind = "127.0.0.1:{udp_port}"',
        f"spool = {_toml_str(str(state / 'it-spool'))}",
        f"datasets = {_toml_str(datasets_url or str(state / 'datasets'))}",
        f"batch_seconds = {batch_seconds}", f"key_file = {_toml_str(str(key))}",
        *([] if lateness_seconds is None else [f"lateness_seconds = {lateness_seconds}"]), "",
        *(["[receiver.s3]", f"endpoint = {_toml_str(s3_endpoint)}", ""] if s3_endpoint else []),
    ]))
    return agent, receiver


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "ab") as f:
        # -P: import the installed package, not a source tree in the cwd.
        return subprocess.Popen([sys.executable, "-P", "-m", "edge.cli", *args], stdout=f,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _snapshot(sock: Path) -> dict[str, Any] | None:
    from edge.status import fetch_snapshot

    try:
        return fetch_snapshot(str(sock), timeout=2.0)
    except (OSError, ConnectionError, TimeoutError):
        return None


def wait_ready(sock: Path, n_tags: int, procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    """Until the agent reports every tag subscribed (or a process died)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        for p, log in zip(procs, logs):
            if p.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(f"{log.stem} exited with {p.returncode}: " + " | ".join(tail))
        snap = _snapshot(sock)
        if snap and snap["sources"] and all(s.get("connected") for s in snap["sources"]):
            if sum(int(s.get("subscribed", 0)) for s in snap["sources"]) >= n_tags:
                return
        time.sleep(0.2)
    raise RuntimeError(f"agent did not subscribe {n_tags} tags within {READY_TIMEOUT_S:.0f}s")


def _wait_collected(sock: Path, published: int) -> None:
    """Until the agent has collected as many values as the held plant wrote (a
    loaded box may deliver the last publish late), or COLLECT_TIMEOUT_S; the
    comparison afterwards names anything still missing."""
    deadline = time.monotonic() + COLLECT_TIMEOUT_S
    time.sleep(2.5 * PUBLISHING_INTERVAL_MS / 1000)
    while time.monotonic() < deadline:
        snap = _snapshot(sock)
        if snap and sum(t["count"] for t in snap["tags"]) >= published:
            return
        time.sleep(0.1)


def _stop(p: subprocess.Popen[bytes], name: str) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        p.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise RuntimeError(f"{name} did not stop within {STOP_TIMEOUT_S:.0f}s") from None


def _norm(data_type: str, value: Any) -> Any:
    """One value as the sim wrote it and as zarr returns it, made comparable."""
    if value is None:
        return None
    if data_type == "Float":
        return float(np.float32(value))
    if data_type == "Double":
        return float(value)
    if data_type == "Boolean":
        return bool(value)
    if data_type == "String":
        return str(value)
    return int(value)


def _published_samples(published: dict[str, list[tuple[int, Any, int]]],
                       types: dict[str, str]) -> Iterator[tuple[str, int, Any, int]]:
    for node, samples in published.items():
        for source_ns, value, status in samples:
            yield node, int(source_ns), _norm(types[node], value), int(status)


def compare(published: dict[str, list[tuple[int, Any, int]]], sim_tags: list[Any],
            datasets: Any, site: str) -> tuple[int, int, int, int, list[str]]:
    """Multiset comparison of (node, source time, value, status) at both ends."""
    from edge.datasets import iter_tag_samples
    from edge.model import SampleFlags

    types = {t.node_id: t.data_type for t in sim_tags}
    by_name = {t.name: t.node_id for t in sim_tags}
    source = Counter(_published_samples(published, types))
    landed: Counter[tuple[str, int, Any, int]] = Counter()
    for name, ts in iter_tag_samples(datasets, site):
        node = by_name.get(name, name)
        kind = types.get(node, "Double")
        null = (ts.flags & SampleFlags.NULL_VALUE) != 0
        for t, v, s, n in zip(ts.source_ns.tolist(), ts.values.tolist(), ts.status.tolist(), null.tolist()):
            landed[(node, int(t), None if n else _norm(kind, v), int(s))] += 1
    missing = source - landed
    unexpected = landed - source
    examples = [f"{n} t={t} v={v!r} status=0x{s:08X}" for (n, t, v, s) in list(missing)[:5]]
    return sum(source.values()), sum(landed.values()), sum(missing.values()), sum(unexpected.values()), examples


def run_demo(opts: DemoOptions) -> int:
    out = opts.out
    state = opts.state_dir or Path(tempfile.mkdtemp(prefix="tidegate-demo-"))
    state.mkdir(parents=True, exist_ok=True)
    duration = opts.duration if opts.duration is not None else (30.0 if opts.headless else None)
    opc_port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)

    print(f"tidegate demo: state in {state}", file=out, flush=True)
    sim = SimThread(opc_port, opts.seed)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        tags = sim.call(sim.sim.tags)
        agent_cfg, receiver_cfg = write_configs(state, sim.sim.endpoint, udp_port, tags,
                                                opts.datasets_url, opts.s3_endpoint)
        logs = [state / "receiver.log", state / "agent.log"]
        procs.append(_spawn(["receive", "--config", str(receiver_cfg),
                             "--stats-out", str(state / "receiver-stats.json")], logs[0]))
        procs.append(_spawn(["run", "--config", str(agent_cfg),
                             "--stats-out", str(state / "agent-stats.json")], logs[1]))
        sock = state / "agent.sock"
        print(f"simulator {sim.sim.endpoint} with {len(tags)} tags; waiting for the agent to subscribe",
              file=out, flush=True)
        wait_ready(sock, len(tags), procs, logs)
        sim.call(sim.sim.begin)
        if opts.headless:
            _run_headless(sock, duration or 30.0, out)
        else:
            from tui import run_tui

            if duration is not None:
                threading.Timer(duration, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
            try:
                run_tui(str(sock), operator=True)  # the demo's agent runs as this user
            except KeyboardInterrupt:
                pass
        # Freeze the plant so the last values reach the agent, then stop the
        # chain from the source end: agent drains to the link, receiver lands.
        sim.call(sim.sim.hold)
        sim.run(sim.sim.wait_held())
        published = sim.call(sim.sim.published)
        _wait_collected(sock, sum(len(v) for v in published.values()))
        _stop(procs[1], "agent")
        _stop(procs[0], "receiver")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        sim.close()

    stats = json.loads((state / "agent-stats.json").read_text())
    datasets: Any = state / "datasets"
    if opts.datasets_url:
        from edge.datasets.storage import open_storage

        datasets = open_storage(opts.datasets_url, {"endpoint": opts.s3_endpoint} if opts.s3_endpoint else None)
    n_src, n_zarr, missing, unexpected, examples = compare(published, tags, datasets, "demo-plant")
    c = stats["counters"]
    summary = DemoSummary(n_src, n_zarr, missing, unexpected, int(stats["link"]["bytes_sent"]),
                          int(c["data_payload_bytes"]), float(c["compression_ratio"]),
                          opts.datasets_url or state / "datasets", examples)
    print("\n".join(["", "tidegate demo summary", *summary.lines()]), file=out, flush=True)
    for e in examples:
        print(f"  missing: {e}", file=out)
    (state / "summary.json").write_text(json.dumps(summary.__dict__, default=str, indent=2))
    return 0 if missing == 0 and unexpected == 0 else 1


def _run_headless(sock: Path, duration: float, out: IO[str]) -> None:
    start = time.monotonic()
    next_report = start + 5.0
    while (left := duration - (time.monotonic() - start)) > 0:
        time.sleep(min(left, max(0.0, next_report - time.monotonic()), 1.0))
        if time.monotonic() >= next_report:
            next_report += 5.0
            snap = _snapshot(sock)
            if snap:
                print(f"t={time.monotonic() - start:4.0f}s values/s={snap['rates']['values_per_s']:7.1f} "
                      f"spool frames={snap['spool'].get('next_lsn', 0)} "
                      f"link bytes={snap['link'].get('bytes_sent', 0)}", file=out, flush=True)
