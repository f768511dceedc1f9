"""The lossy bound end to end in the agent: tag file -> simulator on loopback ->
agent -> spool; META carries the bound, DATA keeps every published value of
the reduced tag within it, the other tags lose nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from edge import _core
from edge.agent import Agent
from edge.config import agent_config_from_dict
from edge.frames import decode_data, decode_meta
from edge.sim import PlantSimulator, free_port

REDUCED = "ns=2;s=Plant.Area1.Pump01.DischargePressure"  # Double, 500 ms
PLAIN = "ns=2;s=Plant.Area1.Pump01.Vibration"
MAX_ERROR = 0.2


@pytest.mark.asyncio
async def test_agent_applies_the_tag_files_bound(tmp_path: Path) -> None:
    sim = PlantSimulator(port=free_port(), seed=3)
    await sim.start()
    cfg = agent_config_from_dict({
        "site": {"id": 9, "name": "t"},
        "agent": {"status_socket": str(tmp_path / "s.sock"), "flush_interval_ms": 200},
        "spool": {"path": str(tmp_path / "spool")},
        "link": {"target": f"127.0.0.1:{free_port()}"},
        "sources": [{"name": "sim", "endpoint": sim.endpoint, "publishing_interval_ms": 100}],
        "tags": [{"source": "sim", "node_id": REDUCED, "max_error": MAX_ERROR, "max_hold_s": 2},
                 {"source": "sim", "node_id": PLAIN}],
    })
    try:
        agent = Agent(cfg)
        stop = asyncio.Event()
        run = asyncio.create_task(agent.run(stop))
        for _ in range(300):  # subscribed: both tags in the catalog with their first value
            if len(agent.collector.catalog()) == 2 and agent.counters["values"] >= 2:
                break
            await asyncio.sleep(0.05)
        for _ in range(60):  # 60 plant ticks, 0.1 s apart
            await sim.advance(1)
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        stop.set()
        stats = await asyncio.wait_for(run, 60)
    finally:
        await sim.stop()
    published = sim.published()

    spool = _core.Spool(str(tmp_path / "spool"), 9)
    frames = [_core.parse_frame(f) for f in spool.read(0, 100_000)]
    spool.close()
    meta = [decode_meta(f.payload) for f in frames if f.kind == _core.FRAME_META][-1]
    by_node = {t.node_id: t for t in meta.tags}
    assert (by_node[REDUCED].compression, by_node[REDUCED].max_error) == ("swinging_door", MAX_ERROR)
    assert by_node[PLAIN].compression == "none"
    data = [decode_data(f.payload) for f in frames if f.kind == _core.FRAME_DATA]
    for node, tag in ((REDUCED, by_node[REDUCED]), (PLAIN, by_node[PLAIN])):
        t = np.concatenate([d.source_ns[d.tag == tag.index] for d in data])
        v = np.concatenate([d.value_bits[d.tag == tag.index] for d in data]).view(np.float64)
        pub = [(ts, val) for ts, val, st in published[node] if st == 0 and t.min() <= ts <= t.max()]
        assert len(pub) >= 10
        pt = np.array([p[0] for p in pub])
        pv = np.array([p[1] for p in pub], np.float64)
        assert np.all(np.diff(t) > 0)
        if node == PLAIN:
            assert set(pt) <= set(t)  # nothing dropped
        else:
            assert np.max(np.abs(np.interp(pt, t, v) - pv)) <= MAX_ERROR
            assert len(t) < len(pub)
    assert stats["counters"]["values_reduced"] > 0
