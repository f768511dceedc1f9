"""The baseline beside the agent: a bare asyncua client that subscribes to the
same tags with the same publishing interval, sampling interval and queue size,
and does nothing with a value but note how late it arrived.

    python -m edge.bench.subscriber ENDPOINT NODES_FILE OUT_JSON [--interval-ms N]

NODES_FILE has one node id per line. The process writes OUT_JSON.ready once
every item is subscribed, and on SIGTERM writes OUT_JSON: per value received,
its source timestamp (ns) and arrival time (ns), both from the wall clock the
simulator also stamps with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import time
from array import array
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.client.client import Client

from edge.opcua.address import queue_size_for
from edge.sim.server import datetime_ns

ITEMS_PER_CALL = 100  # within the simulator's MaxMonitoredItemsPerCall


class _Handler:
    def __init__(self) -> None:
        # Compact arrays: the baseline's own records should not inflate its RSS.
        self.source_ns = array("q")
        self.arrival_ns = array("q")

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        now = time.time_ns()
        src = data.monitored_item.Value.SourceTimestamp
        if src is not None:
            self.source_ns.append(datetime_ns(src))
            self.arrival_ns.append(now)


async def _main(endpoint: str, nodes: list[str], out: Path, interval_ms: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    handler = _Handler()
    async with Client(endpoint, timeout=30) as client:
        sub = await client.create_subscription(interval_ms, handler)
        queue = queue_size_for(float(interval_ms), float(interval_ms))
        for i in range(0, len(nodes), ITEMS_PER_CALL):
            batch = [client.get_node(n) for n in nodes[i:i + ITEMS_PER_CALL]]
            await sub.subscribe_data_change(batch, queuesize=queue, sampling_interval=ua.Double(interval_ms))
        out.with_suffix(".ready").write_text(str(time.time_ns()))
        await stop.wait()
    out.write_text(json.dumps({"source_ns": handler.source_ns.tolist(), "arrival_ns": handler.arrival_ns.tolist()}))


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m edge.bench.subscriber")
    p.add_argument("endpoint")
    p.add_argument("nodes", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--interval-ms", type=int, default=1000)
    a = p.parse_args()
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    asyncio.run(_main(a.endpoint, a.nodes.read_text().split(), a.out, a.interval_ms))


if __name__ == "__main__":
    main()
