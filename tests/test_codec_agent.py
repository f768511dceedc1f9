"""The lossy bound end to end in the agent: tag file -> simulator on loopback ->
agent -> spool; META carries the bound, DATA keeps every published value of
the reduced tag within it, the other tags lose nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent_fixture import wait_until
from edge import _core
from edge.agent import Agent
from edge.config import AgentConfig, agent_config_from_dict
from edge.frames import ColumnBatch, decode_data, decode_meta
from edge.model import TagInfo
from edge.sim import PlantSimulator, free_port

REDUCED = "ns=2;s=Plant.Area1.Pump01.DischargePressure"  # Double, 500 ms
PLAIN = "ns=2;s=Plant.Area1.Pump01.Vibration"
FLOW = "ns=2;s=Plant.Area1.FT01.Flow"  # Double, changes every tick
MAX_ERROR = 0.2


def config(tmp_path: Path, endpoint: str, tags: list[dict[str, Any]], link_port: int) -> AgentConfig:
    return agent_config_from_dict({
        "site": {"id": 9, "name": "t"},
        "agent": {"status_socket": str(tmp_path / "s.sock"), "flush_interval_ms": 200},
        "spool": {"path": str(tmp_path / "spool")},
        "link": {"target": f"127.0.0.1:{link_port}"},
        "sources": [{"name": "sim", "endpoint": endpoint, "publishing_interval_ms": 100}],
        "tags": tags,
    })


def landed(path: Path) -> tuple[dict[str, TagInfo], list[ColumnBatch]]:
    """The spool's tags as the last META names them (by node id), and its DATA."""
    spool = _core.Spool(str(path), 9)
    frames = [_core.parse_frame(f) for f in spool.read(0, 100_000)]
    spool.close()
    meta = [decode_meta(f.payload) for f in frames if f.kind == _core.FRAME_META][-1]
    return ({t.node_id: t for t in meta.tags},
            [decode_data(f.payload) for f in frames if f.kind == _core.FRAME_DATA])


async def ticks(sim: PlantSimulator, n: int) -> None:
    """n plant ticks, 0.1 s apart, then time for the last ones to be flushed."""
    for _ in range(n):
        await sim.advance(1)
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)


def series(data: list[ColumnBatch], index: int, after_ns: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(source_ns, float value) of one tag in the DATA frames, from after_ns on."""
    t = np.concatenate([d.source_ns[d.tag == index] for d in data])
    v = np.concatenate([d.value_bits[d.tag == index] for d in data]).view(np.float64)
    return t[t >= after_ns], v[t >= after_ns]


@pytest.mark.asyncio
async def test_agent_applies_the_tag_files_bound(tmp_path: Path) -> None:
    sim = PlantSimulator(port=free_port(), seed=3)
    await sim.start()
    cfg = config(tmp_path, sim.endpoint, [
        {"source": "sim", "node_id": REDUCED, "max_error": MAX_ERROR, "max_hold_s": 2},
        {"source": "sim", "node_id": PLAIN}], free_port())
    try:
        agent = Agent(cfg)
        stop = asyncio.Event()
        run = asyncio.create_task(agent.run(stop))
        await wait_until(lambda: len(agent.collector.catalog()) == 2 and agent.counters["values"] >= 2,
                         15, "both tags in the catalog with their first value")
        await ticks(sim, 60)
        stop.set()
        stats = await asyncio.wait_for(run, 60)
    finally:
        await sim.stop()
    published = sim.published()

    by_node, data = landed(tmp_path / "spool")
    assert (by_node[REDUCED].compression, by_node[REDUCED].max_error) == ("swinging_door", MAX_ERROR)
    assert by_node[PLAIN].compression == "none"
    for node, tag in ((REDUCED, by_node[REDUCED]), (PLAIN, by_node[PLAIN])):
        t, v = series(data, tag.index)
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


@pytest.mark.asyncio
async def test_a_reload_changes_the_bound(tmp_path: Path) -> None:
    """OT edits the bounds and reloads: the tag whose bound was removed is
    lossless from then on, the newly bounded one is reduced within its bound,
    and META tells IT."""
    sim = PlantSimulator(port=free_port(), seed=3)
    await sim.start()
    bounded = {"max_error": MAX_ERROR, "max_hold_s": 2}
    link = free_port()
    agent = Agent(config(tmp_path, sim.endpoint, [{"source": "sim", "node_id": REDUCED, **bounded},
                                                  {"source": "sim", "node_id": FLOW}], link))
    stop = asyncio.Event()
    run = asyncio.create_task(agent.run(stop))
    try:
        await wait_until(lambda: len(agent.collector.catalog()) == 2 and agent.counters["values"] >= 2,
                         15, "both tags in the catalog with their first value")
        await ticks(sim, 20)
        await agent.control._apply(config(tmp_path, sim.endpoint, [
            {"source": "sim", "node_id": REDUCED}, {"source": "sim", "node_id": FLOW, **bounded}], link))
        await wait_until(lambda: agent.sessions[0].state["subscribed"] == 2, 15, "the new session")
        await asyncio.sleep(0.5)
        after = time.time_ns()
        await ticks(sim, 60)
        stop.set()
        await asyncio.wait_for(run, 60)
    finally:
        await sim.stop()
    published = sim.published()
    by_node, data = landed(tmp_path / "spool")
    assert by_node[REDUCED].compression == "none"
    assert (by_node[FLOW].compression, by_node[FLOW].max_error) == ("swinging_door", MAX_ERROR)
    t, _ = series(data, by_node[REDUCED].index, after)
    pub = {ts for ts, _, st in published[REDUCED] if st == 0 and after <= ts <= t.max()}
    assert len(pub) >= 10 and pub <= set(t)  # lossless again: nothing dropped
    t, v = series(data, by_node[FLOW].index, after)
    pub_flow = [(ts, val) for ts, val, st in published[FLOW] if st == 0 and t.min() <= ts <= t.max()]
    pt = np.array([p[0] for p in pub_flow])
    pv = np.array([p[1] for p in pub_flow], np.float64)
    assert len(pub_flow) >= 10 and len(t) < len(pub_flow)
    assert np.max(np.abs(np.interp(pt, t, v) - pv)) <= MAX_ERROR
