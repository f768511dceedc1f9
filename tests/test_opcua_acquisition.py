"""Acquisition against the simulator on loopback: every data type, deadbands
and their fallback, a server restart with no duplicate and every gap named
(history filled where the server keeps it), a node that disappears and
comes back, polling."""

from __future__ import annotations

import asyncio
import math
import struct
from collections import Counter
from typing import Any

import pytest

from edge.collect import Collector
from edge.config import SourceConfig, TagConfig, TagGroupConfig
from edge.frames import Gap
from edge.model import ColumnBatch, SampleFlags, TagInfo, decode_values
from edge.opcua import SourceSession
from edge.sim import PlantSimulator, free_port
from edge.sim.behaviour import ServerBehaviour
from test_opcua import stop, wait_for

Key = tuple[str, int, Any, int]


def norm(v: Any) -> Any:
    """Comparable values: NaN equals NaN, floats by their bits."""
    if isinstance(v, float):
        return ("f", struct.pack("<d", v)) if not math.isnan(v) else ("f", "nan")
    return v


def got_samples(batch: ColumnBatch, catalog: list[TagInfo], mask: int = 0) -> Counter[Key]:
    out: Counter[Key] = Counter()
    for i in range(len(batch)):
        if mask and not batch.flags[i] & mask:
            continue
        tag = catalog[int(batch.tag[i])]
        if batch.flags[i] & SampleFlags.NULL_VALUE:
            value: Any = None
        else:
            v = decode_values(tag.data_type, batch.value_bits[i:i + 1], batch.strings)[0]
            value = v if isinstance(v, str) else v.item()
        out[(tag.node_id, int(batch.source_ns[i]), norm(value), int(batch.status[i]))] += 1
    return out


def want_samples(sim: PlantSimulator, nodes: set[str] | None = None) -> Counter[Key]:
    return Counter((nid, ns, norm(v), st) for nid, lst in sim.published().items()
                   if nodes is None or nid in nodes for ns, v, st in lst)


async def test_every_data_type_arrives_exactly() -> None:
    sim = PlantSimulator(port=free_port(), seed=1, types=True)
    await sim.start()
    col = Collector()
    src = SourceConfig("sim", sim.endpoint, publishing_interval_ms=250)
    group = TagGroupConfig("sim", "Plant/Lab/Types", sampling_interval_ms=0)
    session = SourceSession(src, [], col, tag_groups=[group])
    task = asyncio.create_task(session.run())
    try:
        await wait_for(lambda: session.state["subscribed"] == 13)
        await wait_for(lambda: col.pending() == 13)
        sim.begin()
        await asyncio.sleep(3.2)  # six ticks: every edge value of every type
        await sim.wait_held()
        await asyncio.sleep(0.8)
        batch = col.flush()
    finally:
        await stop(task)
        await sim.stop()
    types = {t.node_id for t in sim.tags() if t.name.startswith("Plant.Lab.Types")}
    cat = col.catalog()
    assert {t.data_type for t in cat} == {"Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32",
                                          "Int64", "UInt64", "Float", "Double", "String", "DateTime"}
    want, got = want_samples(sim, types), got_samples(batch, cat)
    assert sum(want.values()) >= 13 * 6
    assert not (want - got), f"missing {list((want - got).items())[:5]}"
    assert not (got - want), f"unexpected {list((got - want).items())[:5]}"


async def test_deadbands_and_refused_filter_fallback() -> None:
    behaviour = ServerBehaviour(refuse_filters={"ns=2;s=Plant.Area1.Pump03.Speed"})
    sim = PlantSimulator(port=free_port(), seed=3, behaviour=behaviour)
    await sim.start()
    events: list[tuple[str, dict[str, Any]]] = []
    col = Collector()
    src = SourceConfig("sim", sim.endpoint, publishing_interval_ms=200)
    tags = [
        TagConfig("sim", "ns=2;s=Plant.Area1.FT01.Flow", deadband_absolute=0.025),
        TagConfig("sim", "ns=2;s=Plant.Area1.FT02.Flow", deadband_percent=0.01),  # of 0..250: 0.025
        TagConfig("sim", "ns=2;s=Plant.Area1.Pump03.Speed", deadband_absolute=5.0),  # server refuses filters
        TagConfig("sim", "ns=2;s=Plant.Area1.Pump01.Mode", deadband_absolute=1.0),  # not numeric: no filter
        TagConfig("sim", "ns=2;s=Plant.Area1.Pump01.RunSeconds", deadband_percent=1.0),  # no EURange
        TagConfig("sim", "ns=2;s=Plant.Area1.FT01.Density"),  # no deadband: everything
    ]
    session = SourceSession(src, tags, col, lambda k, d: events.append((k, d)))
    task = asyncio.create_task(session.run())
    try:
        await wait_for(lambda: session.state["subscribed"] == len(tags))
        sim.begin()
        await asyncio.sleep(6.0)
        await sim.wait_held()
        await asyncio.sleep(0.6)
        batch = col.flush()
    finally:
        await stop(task)
        await sim.stop()
    cat = col.catalog()
    got = got_samples(batch, cat)
    by_node: dict[str, list[tuple[int, Any, int]]] = {}
    for (nid, ns, v, st), _ in sorted(got.items(), key=lambda kv: kv[0][1]):
        by_node.setdefault(nid, []).append((ns, v, st))
    pub = sim.published()

    def values(nid: str) -> list[float]:
        return [struct.unpack("<d", v[1])[0] for _, v, st in by_node[nid] if st == 0]

    for nid, band in (("ns=2;s=Plant.Area1.FT01.Flow", 0.025), ("ns=2;s=Plant.Area1.FT02.Flow", 0.025)):
        vals = values(nid)
        assert 2 <= len(vals) < len(pub[nid]), (nid, len(vals), len(pub[nid]))
        assert all(abs(b - a) > band for a, b in zip(vals, vals[1:])), nid
    # a refused filter falls back to no filter: every published value arrives
    for nid in ("ns=2;s=Plant.Area1.Pump03.Speed", "ns=2;s=Plant.Area1.FT01.Density",
                "ns=2;s=Plant.Area1.Pump01.RunSeconds"):
        assert len(by_node[nid]) == len(pub[nid]), nid
    kinds = Counter(k for k, _ in events)
    assert kinds["filter_refused"] == 1 and session.state["filters_refused"] == 1
    ignored = {d["node_id"]: d["reason"] for k, d in events if k == "deadband_ignored"}
    assert "not numeric" in ignored["ns=2;s=Plant.Area1.Pump01.Mode"]
    assert "EURange" in ignored["ns=2;s=Plant.Area1.Pump01.RunSeconds"]
    assert "node_failed" not in kinds


@pytest.mark.parametrize("historize", [False, True], ids=["gaps", "history"])
async def test_server_restart_no_duplicates_every_gap_named(historize: bool) -> None:
    port = free_port()
    nodes = [t.node_id for t in PlantSimulator(port=port).tags() if ".Area1." in t.node_id]
    sim = PlantSimulator(port=port, seed=1, historize=nodes if historize else ())
    await sim.start()
    events: list[str] = []
    gaps: list[Gap] = []
    col = Collector()
    src = SourceConfig("sim", sim.endpoint, publishing_interval_ms=1000)
    tags = [TagConfig("sim", n, queue_size=50) for n in nodes]
    session = SourceSession(src, tags, col, lambda k, d: events.append(k), on_gap=gaps.append,
                            reconnect_max_delay=1.0)
    task = asyncio.create_task(session.run())
    try:
        await wait_for(lambda: session.state["subscribed"] == len(nodes))
        sim.begin()
        await asyncio.sleep(2.6)
        await sim.wait_held()
        await sim.advance(2)  # written, not yet published: in flight when the server goes down
        await sim.restart(down_s=1.5)
        sim.begin()
        await wait_for(lambda: session.state["recreated"] == 1, timeout=30)
        await asyncio.sleep(3.0)
        await sim.wait_held()
        await wait_for(lambda: not historize or "backfilled" in events, timeout=10)
        await asyncio.sleep(1.5)
        batch = col.flush()
    finally:
        await stop(task)
        await sim.stop()
    cat = col.catalog()
    got, want = got_samples(batch, cat), want_samples(sim, set(nodes))
    assert max(got.values()) == 1, "a sample arrived twice"
    assert not (got - want), f"unexpected {list((got - want).items())[:5]}"
    missing = want - got
    index = {t.node_id: t.index for t in cat}
    if historize:

        assert not missing, f"history did not fill {list(missing)[:5]}"
        assert session.state["backfilled"] > 0
        assert got_samples(batch, cat, SampleFlags.BACKFILLED)
        assert not gaps
    else:
        assert missing, "the restart lost nothing: the test did not test"
        assert [g.reason for g in gaps] == ["subscription_lost"]
        for nid, ns, _, _ in missing:
            assert any(index[nid] in g.tags and g.t_first_ns <= ns <= g.t_last_ns for g in gaps), \
                f"{nid} at {ns} lost without a gap"
    assert "subscription_recreated" in events and session.state["reconnects"] == 1


async def test_node_disappears_and_comes_back() -> None:
    sim = PlantSimulator(port=free_port(), seed=1)
    await sim.start()
    events: list[tuple[str, dict[str, Any]]] = []
    gaps: list[Gap] = []
    col = Collector()
    src = SourceConfig("sim", sim.endpoint, publishing_interval_ms=200, retry_interval_ms=500)
    gone = "ns=2;s=Plant.Area2.FT01.Flow"
    tags = [TagConfig("sim", t.node_id) for t in sim.tags() if ".Area2.FT01." in t.node_id]
    session = SourceSession(src, tags, col, lambda k, d: events.append((k, d)), on_gap=gaps.append)
    task = asyncio.create_task(session.run())
    try:
        await wait_for(lambda: session.state["subscribed"] == len(tags))
        sim.begin()
        await asyncio.sleep(1.2)
        await sim.remove_node(gone)
        await wait_for(lambda: any(d.get("node_id") == gone for k, d in events if k == "node_failed"))
        await asyncio.sleep(1.5)  # retries fail while it is gone; the others go on
        assert session.state["failing"] == [{"node_id": gone, "reason": "node disappeared (BadNodeIdUnknown)"}]
        await sim.restore_node(gone)
        await wait_for(lambda: any(d.get("node_id") == gone for k, d in events if k == "node_recovered"))
        await asyncio.sleep(1.5)
        await sim.wait_held()
        await asyncio.sleep(0.6)
        batch = col.flush()
    finally:
        await stop(task)
        await sim.stop()
    cat = col.catalog()
    got, want = got_samples(batch, cat), want_samples(sim, {t.node_id for t in tags})
    assert not (want - got), f"missing {list((want - got).items())[:5]}"
    assert not (got - want) and max(got.values()) == 1
    assert any(st == 0x80340000 for nid, _, _, st in got if nid == gone)  # the Bad value came through
    idx = col.index_of("sim", gone)
    assert [(g.reason, g.tags) for g in gaps] == [("node_unavailable", [idx])]
    assert session.state["failing"] == []


async def test_poll_mode_reads_changes_only() -> None:
    behaviour = ServerBehaviour()
    sim = PlantSimulator(port=free_port(), seed=1, behaviour=behaviour)
    await sim.start()
    col = Collector()
    src = SourceConfig("sim", sim.endpoint, publishing_interval_ms=1000)
    nodes = ["ns=2;s=Plant.Area1.Tank01.Level", "ns=2;s=Plant.Area1.Pump01.Mode"]
    tags = [TagConfig("sim", n, mode="poll", sampling_interval_ms=100) for n in nodes]
    session = SourceSession(src, tags, col)
    task = asyncio.create_task(session.run())
    try:
        await wait_for(lambda: session.state["polled"] == 2 and col.pending() == 2)
        reads = behaviour.requests["Read"]
        await asyncio.sleep(1.0)  # nothing moves: reads go on, nothing new is collected
        assert behaviour.requests["Read"] >= reads + 5 and col.pending() == 2
        sim.begin()
        await asyncio.sleep(3.0)
        await sim.wait_held()
        await asyncio.sleep(0.5)
        batch = col.flush()
    finally:
        await stop(task)
        await sim.stop()
    got, want = got_samples(batch, col.catalog()), want_samples(sim, set(nodes))
    assert not (want - got) and not (got - want)
    assert (batch.flags & SampleFlags.POLLED).all()
    assert behaviour.requests["CreateMonitoredItems"] == 0
