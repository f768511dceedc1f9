"""Acquisition throughput: values per second from an OPC UA subscription into
the spool (committed), CPU share and peak RSS of the client process, for
tidegate's SourceSession pipeline and, side by side in the same run against
the same servers, a plain asyncua subscription-handler pipeline.

    python benchmarks/bench_acquisition.py                 # 1,000 / 10,000 / 20,000 tags
    python benchmarks/bench_acquisition.py --tags 1000 --seconds 10

Load: asyncua's server is slow, so the tags are spread over `--shards`
server processes (plain Double variables, each written once per
`--period` seconds with fresh source timestamps). Both clients run at the
same time, each in its own process, subscribed to every tag of every shard,
and each writes what it receives to its own spool (encode + append +
commit), so they see the same data at the same moment. Reported per client:
values/s received and made durable, CPU seconds per wall second (1.0 = one
core), values per CPU-second (the per-core figure the ratio is taken on),
and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench.api import Profile, Result

NS_URI = "urn:tidegate:bench"


# -- load server ---------------------------------------------------------------------


def serve(port: int, first: int, count: int, period: float, ready: Any, stop: Any) -> None:
    logging.disable(logging.WARNING)

    async def main() -> None:
        from asyncua import Server, ua

        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(NS_URI)
        folder = await server.nodes.objects.add_folder(idx, "Bench")
        nodes = []
        for i in range(first, first + count):
            nodes.append(await folder.add_variable(ua.NodeId(f"T{i:05d}", idx), f"T{i:05d}", 0.0))
        limit = server.get_node(ua.NodeId(
            ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall))
        await limit.write_value(ua.Variant(1000, ua.VariantType.UInt32))
        ids = [n.nodeid for n in nodes]
        async with server:
            ready.set()
            k = 0
            step = period / max(1, len(ids) // 500)  # spread the writes over the period
            t_next = time.monotonic()
            while not stop.is_set():
                for j in range(0, len(ids), 500):
                    now = datetime.now(timezone.utc)
                    for nid in ids[j:j + 500]:
                        k += 1
                        await server.write_attribute_value(nid, ua.DataValue(
                            ua.Variant(float(k % 100_000) * 0.5, ua.VariantType.Double),
                            SourceTimestamp=now, ServerTimestamp=now))
                    t_next += step
                    await asyncio.sleep(max(0.0, t_next - time.monotonic()))
                    if stop.is_set():
                        break

    asyncio.run(main())


# -- the two clients ------------------------------------------------------------------


class SpoolSink:
    """Collected samples -> DATA frames -> committed spool (what the agent does)."""

    def __init__(self, path: str) -> None:
        from edge import _core
        self.core = _core
        self.spool = _core.Spool(path, 1)
        self.durable_values = 0

    def write(self, batch: Any) -> None:
        from edge.frames import encode_data
        if len(batch):
            t0, t1 = batch.time_range()
            self.spool.append(self.core.FRAME_DATA, t0, t1, encode_data(batch))
            self.spool.commit()


def client(kind: str, endpoints: list[str], seconds: float, warmup: float, spool_dir: str,
           ready: Any, out: Any, tags: int) -> None:
    logging.disable(logging.WARNING)
    result = asyncio.run((tidegate_client if kind == "tidegate" else asyncua_client)(
        endpoints, seconds, warmup, spool_dir, ready, tags))
    out.put((kind, result))


def _usage() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _measure(count: Any, seconds: float, warmup: float, expected: int) -> dict[str, Any]:
    deadline = time.monotonic() + 600
    while count() < expected and time.monotonic() < deadline:  # subscribed: every initial value in
        await asyncio.sleep(0.2)
    await asyncio.sleep(warmup)
    c0, t0, v0 = _usage(), time.monotonic(), count()
    await asyncio.sleep(seconds)
    c1, t1, v1 = _usage(), time.monotonic(), count()
    wall, cpu, n = t1 - t0, c1 - c0, v1 - v0
    return {"values_per_s": n / wall, "cpu_share": cpu / wall, "values_per_cpu_s": n / cpu if cpu else 0.0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


async def tidegate_client(endpoints: list[str], seconds: float, warmup: float, spool_dir: str,
                          ready: Any, tags: int) -> dict[str, Any]:
    from edge.collect import Collector
    from edge.config import SourceConfig, TagGroupConfig
    from edge.opcua import SourceSession

    col = Collector(capacity=1 << 16)
    sink = SpoolSink(spool_dir)
    durable = [0]
    wanted = asyncio.Event()
    committed = [asyncio.Event()]

    async def make_durable() -> None:  # the agent's ack-after-durable, group commit
        target = col.values_total
        while durable[0] < target:
            ev = committed[0]
            wanted.set()
            await ev.wait()

    async def flusher() -> None:
        while True:
            with_timeout = asyncio.ensure_future(wanted.wait())
            await asyncio.wait([with_timeout], timeout=1.0)
            with_timeout.cancel()
            wanted.clear()
            upto = col.values_total
            await asyncio.to_thread(sink.write, col.flush())
            durable[0] = upto
            ev, committed[0] = committed[0], asyncio.Event()
            ev.set()

    sessions = [SourceSession(SourceConfig(f"s{i}", ep, publishing_interval_ms=1000), [], col,
                              tag_groups=[TagGroupConfig(f"s{i}", "Bench")], durable=make_durable)
                for i, ep in enumerate(endpoints)]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    fl = asyncio.create_task(flusher())
    ready.set()
    res = await _measure(lambda: durable[0], seconds, warmup, tags)
    for t in [*tasks, fl]:
        t.cancel()
    await asyncio.gather(*tasks, fl, return_exceptions=True)
    return res


async def asyncua_client(endpoints: list[str], seconds: float, warmup: float, spool_dir: str,
                         ready: Any, tags: int) -> dict[str, Any]:
    """What a user writes with asyncua: a handler that appends each value,
    and a loop that writes what was appended to the spool every second."""
    from asyncua import Client, ua

    from edge.collect import to_ns
    from edge.model import ColumnBatch

    sink = SpoolSink(spool_dir)
    rows: list[tuple[int, float, int, int, int]] = []
    index: dict[Any, int] = {}
    written = [0]

    class Handler:
        def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
            dv = data.monitored_item.Value
            rows.append((index[node.nodeid], val, dv.StatusCode.value, to_ns(dv.SourceTimestamp),
                         to_ns(dv.ServerTimestamp)))

    clients = []
    for ep in endpoints:
        c = Client(ep, timeout=30, watchdog_intervall=30.0)  # a loaded server answers slowly
        await c.connect()
        clients.append(c)
        folder = await c.nodes.objects.get_child(f"{await c.get_namespace_index(NS_URI)}:Bench")
        nodes = await folder.get_children()
        for n in nodes:
            index[n.nodeid] = len(index)
        sub = await c.create_subscription(1000, Handler())
        for i in range(0, len(nodes), 1000):
            await sub.subscribe_data_change(nodes[i:i + 1000], queuesize=2)

    async def flusher() -> None:
        while True:
            await asyncio.sleep(1.0)
            take = rows[:]
            del rows[:len(take)]
            if not take:
                continue
            a = np.array([(r[0], r[3], r[4], r[2]) for r in take], dtype=np.int64)
            vals = np.array([r[1] for r in take], dtype=np.float64)
            batch = ColumnBatch(a[:, 0].astype(np.uint32), a[:, 1], a[:, 2], a[:, 3].astype(np.uint32),
                                vals.view(np.uint64), np.zeros(len(take), np.uint8))
            await asyncio.to_thread(sink.write, batch)
            written[0] += len(take)

    fl = asyncio.create_task(flusher())
    ready.set()
    res = await _measure(lambda: written[0], seconds, warmup, tags)
    fl.cancel()
    for c in clients:
        try:
            await asyncio.wait_for(c.disconnect(), 5)
        except Exception:
            pass
    return res


# -- one run ----------------------------------------------------------------------------


def run_tags(tags: int, shards: int, period: float, seconds: float, warmup: float,
             client_cpus: frozenset[int] | None = None) -> dict[str, Any]:
    """One run at `tags` tags; `client_cpus` pins the two clients (not the servers)."""
    from edge.sim import free_port

    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    servers, endpoints = [], []
    per = -(-tags // shards)
    for s in range(shards):
        port = free_port()
        ready = ctx.Event()
        p = ctx.Process(target=serve, args=(port, s * per, min(per, tags - s * per), period, ready, stop),
                        daemon=True)
        p.start()
        if not ready.wait(600):
            raise RuntimeError("load server did not start")
        servers.append(p)
        endpoints.append(f"opc.tcp://127.0.0.1:{port}/bench")
    out = ctx.Queue()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        procs, readies = [], []  # keep the events alive until the children have them
        for kind in ("tidegate", "asyncua"):
            readies.append(ctx.Event())
            p = ctx.Process(target=client, args=(kind, endpoints, seconds, warmup, str(Path(tmp) / kind),
                                                  readies[-1], out, tags))
            p.start()
            if client_cpus and p.pid:
                os.sched_setaffinity(p.pid, client_cpus)
            procs.append(p)
        for _ in procs:
            kind, res = out.get(timeout=900)
            results[kind] = res
        for p in procs:
            p.join(30)
    stop.set()
    for p in servers:
        p.join(10)
        if p.is_alive():
            p.terminate()
    t, b = results["tidegate"], results["asyncua"]
    results["ratio_values_per_cpu_s"] = t["values_per_cpu_s"] / b["values_per_cpu_s"] if b["values_per_cpu_s"] else 0
    results["offered_values_per_s"] = tags / period
    return results


def run(profile: Profile) -> list[Result]:
    """The `tidegate bench` stage: 1,000 tags (times profile.scale) on one
    server process, both clients pinned to the profile's cores."""
    tags = max(50, round(1000 * profile.scale))
    seconds = max(4.0, 10.0 * profile.scale)
    warmup = max(2.0, 3.0 * min(1.0, profile.scale))
    r = run_tags(tags, 1, 1.0, seconds, warmup, profile.cpus)
    t, b = r["tidegate"], r["asyncua"]
    base = "plain asyncua handler pipeline, same servers"
    note = f"{tags} tags changing every second, {seconds:.0f} s measured"
    return [
        Result("values per CPU-second, subscription to spool", t["values_per_cpu_s"], "values/CPU-s",
               b["values_per_cpu_s"], base, "higher", note),
        Result("values/s to spool, subscription", t["values_per_s"], "values/s", b["values_per_s"], base,
               "higher", f"{r['offered_values_per_s']:.0f} values/s offered"),
        Result("client CPU", 100 * t["cpu_share"], "% of one core", 100 * b["cpu_share"], base, "lower", note),
        Result("client RSS peak", t["peak_rss_mb"], "MB", b["peak_rss_mb"], base, "lower", note),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tags", type=int, nargs="*", default=[1000, 10_000, 20_000])
    ap.add_argument("--shards", type=int, default=0, help="server processes (default: one per 5,000 tags)")
    ap.add_argument("--period", type=float, default=1.0, help="seconds between changes of a tag")
    ap.add_argument("--seconds", type=float, default=15.0, help="measured span")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args(argv)
    report = {}
    print(f"{'tags':>6} {'offered/s':>10} | {'client':<9} {'values/s':>9} {'cpu':>5} {'values/cpu-s':>12} "
          f"{'peak RSS':>9}")
    for n in args.tags:
        shards = args.shards or max(1, -(-n // 5000))
        r = run_tags(n, shards, args.period, args.seconds, args.warmup)
        report[n] = r
        for kind in ("tidegate", "asyncua"):
            x = r[kind]
            print(f"{n:>6} {r['offered_values_per_s']:>10.0f} | {kind:<9} {x['values_per_s']:>9.0f} "
                  f"{x['cpu_share']:>5.2f} {x['values_per_cpu_s']:>12.0f} {x['peak_rss_mb']:>7.0f} MB")
        print(f"{'':>6} {'':>10} | ratio (values per CPU-second, tidegate / asyncua): "
              f"{r['ratio_values_per_cpu_s']:.2f}x", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
