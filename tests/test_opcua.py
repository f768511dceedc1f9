"""SourceSession + Collector against the real simulator; browse; read-only."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from asyncua import ua

from edge.opcua.uahelp import Client

from edge.collect import Collector
from edge.config import SourceConfig, TagConfig, TagGroupConfig
from edge.model import NO_TIME, ColumnBatch, SampleFlags, TagInfo, decode_values
from edge.opcua import ReadOnlyViolation, SourceSession, browse, guard_read_only, queue_size_for
from edge.sim import PlantSimulator, free_port

Sample = tuple[str, int, Any, int]

# One event loop for the module, so the static simulator below is shared.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def static_sim() -> AsyncIterator[PlantSimulator]:
    """A simulator that never begins: for tests that only read the address space."""
    s = PlantSimulator(port=free_port(), seed=1)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def sim() -> AsyncIterator[PlantSimulator]:
    s = PlantSimulator(port=free_port(), seed=1)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def wait_for(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def samples(batch: ColumnBatch, catalog: list[TagInfo]) -> Counter[Sample]:
    out: Counter[Sample] = Counter()
    for i in range(len(batch)):
        tag = catalog[int(batch.tag[i])]
        if batch.flags[i] & SampleFlags.NULL_VALUE:
            value: Any = None
        else:
            value = decode_values(tag.data_type, batch.value_bits[i:i + 1], batch.strings)[0]
            value = value if isinstance(value, str) else value.item()
        out[(tag.node_id, int(batch.source_ns[i]), value, int(batch.status[i]))] += 1
    return out


def published(sim: PlantSimulator) -> Counter[Sample]:
    return Counter((nid, ns, v, st) for nid, lst in sim.published().items() for ns, v, st in lst)


async def test_every_published_value_collected_exactly_once(sim: PlantSimulator) -> None:
    """The property the product relies on: every value the server published
    reaches the collector once, with value, full status and source time."""
    events: list[tuple[str, dict[str, Any]]] = []
    col = Collector(capacity=64)  # forces the buffers to grow
    src = SourceConfig("sim", sim.endpoint, publishing_interval_ms=500)
    tags = [TagConfig("sim", t.node_id, name=t.name, sampling_interval_ms=t.period_ms // 2)
            for t in sim.tags()]
    session = SourceSession(src, tags, col, lambda k, d: events.append((k, d)))
    task = asyncio.create_task(session.run())
    try:
        await wait_for(lambda: session.state["connected"] and session.state["subscribed"] == len(tags))
        assert session.subscribe_calls == 3  # 272 items, MaxMonitoredItemsPerCall = 100
        assert session.state["limits"]["monitored_items_per_call"] == 100
        sim.begin()
        await asyncio.sleep(4.5)  # includes an Uncertain and a Bad episode
        await sim.wait_held()
        await asyncio.sleep(1.2)  # two publishing intervals
        batch = col.flush()
    finally:
        await stop(task)
    want = published(sim)
    got = samples(batch, col.catalog())
    assert sum(want.values()) > len(tags) + 300
    assert not (want - got), f"missing {list((want - got).items())[:5]}"
    assert not (got - want), f"unexpected {list((got - want).items())[:5]}"
    assert max(got.values()) == 1
    # both timestamps, statuses and nulls made it through untouched
    assert (batch.server_ns != NO_TIME).all()
    assert {0x40900000, 0x808C0000} <= set(batch.status.tolist())
    assert (batch.flags[batch.status == 0x808C0000] & SampleFlags.NULL_VALUE).all()
    kinds = [k for k, _ in events]
    assert kinds[0] == "source_connected" and "node_failed" not in kinds
    assert session.state["notifications"] == len(batch)
    # catalog carries what the server said about each tag
    cat = {t.node_id: t for t in col.catalog()}
    speed = cat["ns=2;s=Plant.Area1.Pump01.Speed"]
    assert (speed.name, speed.data_type, speed.unit, speed.range_low, speed.range_high) == \
        ("Plant.Area1.Pump01.Speed", "Double", "rpm", 0.0, 1800.0)
    assert cat["ns=2;s=Plant.Area1.Pump01.Mode"].data_type == "String"
    latest = {e["name"]: e for e in col.latest()}
    assert latest["Plant.Area1.Pump01.Mode"]["value"] in ("AUTO", "MANUAL", "MAINT")
    assert latest["Plant.Area1.Pump01.Speed"]["count"] == len(sim.published()[speed.node_id])


async def test_tag_groups_defaults_and_failures(static_sim: PlantSimulator) -> None:
    sim = static_sim
    events: list[tuple[str, dict[str, Any]]] = []
    col = Collector()
    src = SourceConfig("plc", sim.endpoint, publishing_interval_ms=200)
    tags = [
        TagConfig("plc", "ns=2;s=Plant.Area1.Tank01.Level"),  # default name = browse name
        TagConfig("plc", "ns=2;s=Plant.Nope", name="nope"),  # does not exist
        TagConfig("plc", "ns=2;s=Plant.Area1", name="folder"),  # not a variable
        TagConfig("plc", "nsu=urn:tidegate:sim;s=Plant.Area1.Tank01.Pressure", unit="mbar"),
    ]
    groups = [TagGroupConfig("plc", "Plant/Area3/FT02"), TagGroupConfig("plc", "Plant/Area9")]
    session = SourceSession(src, tags, col, lambda k, d: events.append((k, d)), tag_groups=groups)
    task = asyncio.create_task(session.run())
    try:
        await wait_for(lambda: session.state["subscribed"] == 2 + 5)
        await wait_for(lambda: col.pending() >= 7)
    finally:
        await stop(task)
    names = {t.name: t for t in col.catalog()}
    assert names["Level"].unit == "%"
    assert names["Pressure"].unit == "mbar"  # the tag file wins over the server
    assert "Plant.Area3.FT02.Flow" in names and names["Plant.Area3.FT02.Total"].data_type == "Int64"
    failed = {d["node_id"]: d["reason"] for k, d in events if k == "node_failed"}
    assert set(failed) == {"ns=2;s=Plant.Nope", "ns=2;s=Plant.Area1", "Plant/Area9"}
    assert "not readable" in failed["ns=2;s=Plant.Nope"]
    assert "not a Variable" in failed["ns=2;s=Plant.Area1"]
    assert len(session.state["failing"]) == 3


async def test_reconnect_after_server_restart() -> None:
    port = free_port()
    sim = PlantSimulator(port=port, seed=1)
    await sim.start()
    events: list[str] = []
    col = Collector()
    src = SourceConfig("sim", sim.endpoint, publishing_interval_ms=200)
    tags = [TagConfig("sim", t.node_id) for t in sim.tags()[:20]]
    session = SourceSession(src, tags, col, lambda k, d: events.append(k), reconnect_max_delay=1.0)
    task = asyncio.create_task(session.run())
    try:
        await wait_for(lambda: session.state["subscribed"] == 20)
        await wait_for(lambda: col.pending() == 20)
        await sim.stop()
        await wait_for(lambda: not session.state["connected"])
        sim = PlantSimulator(port=port, seed=1)
        await sim.start()
        await wait_for(lambda: session.state["connected"], timeout=20)
        await wait_for(lambda: col.pending() >= 40)  # initial values again after resubscribe
        assert session.state["reconnects"] == 1
        conn = [k for k in events if k.startswith("source_")]
        assert conn[:3] == ["source_connected", "source_disconnected", "source_connected"]
    finally:
        await stop(task)
        await sim.stop()


async def test_unreachable_source_keeps_trying() -> None:
    col = Collector()
    src = SourceConfig("gone", f"opc.tcp://127.0.0.1:{free_port()}/x")
    events: list[str] = []
    session = SourceSession(src, [TagConfig("gone", "ns=2;s=A")], col, lambda k, d: events.append(k),
                            request_timeout=1.0, reconnect_max_delay=1.0)
    task = asyncio.create_task(session.run())
    try:
        await wait_for(lambda: session.state["last_error"] is not None, timeout=10)
        await asyncio.sleep(2.5)  # a few retries
        assert not session.state["connected"] and not task.done()
        assert events == ["source_connect_failed"]  # once per reason, not per retry
    finally:
        await stop(task)


async def test_browse_tree(static_sim: PlantSimulator) -> None:
    sim = static_sim
    entries = await browse(sim.endpoint, "Plant/Area1/Pump01")
    assert [e.browse_path.rsplit("/", 1)[1] for e in entries] == sorted(
        ["Running", "Speed", "Current", "DischargePressure", "BearingTemp", "Vibration",
         "RunSeconds", "Starts", "Mode", "FaultCode"])
    speed = next(e for e in entries if e.browse_path == "Plant/Area1/Pump01/Speed")
    assert (speed.node_id, speed.data_type, speed.unit) == ("ns=2;s=Plant.Area1.Pump01.Speed", "Double", "rpm")
    everything = await browse(sim.endpoint, "Objects/Plant")
    assert len(everything) == len(sim.tags())
    assert {e.node_id for e in everything} == {t.node_id for t in sim.tags()}
    with pytest.raises(LookupError, match="Area9"):
        await browse(sim.endpoint, "Plant/Area9")


async def test_read_only_guard(static_sim: PlantSimulator) -> None:
    sim = static_sim
    client = Client(sim.endpoint)
    guard_read_only(client)
    await client.connect()
    try:
        node = client.get_node("ns=2;s=Plant.Area1.Pump01.Speed")
        assert isinstance(await node.read_value(), float)  # reading works
        with pytest.raises(ReadOnlyViolation):
            await node.write_value(ua.DataValue(ua.Variant(1.0, ua.VariantType.Double)))
        with pytest.raises(ReadOnlyViolation):
            await client.nodes.objects.add_folder(2, "x")
    finally:
        await client.disconnect()


@pytest.mark.asyncio(loop_scope="function")
async def test_queue_size_rule() -> None:
    assert queue_size_for(1000, 1000) == 2
    assert queue_size_for(1000, 250) == 5
    assert queue_size_for(500, 300) == 3
    assert queue_size_for(1000, 0) == 10


async def test_browse_writes_tag_entries(static_sim: PlantSimulator, tmp_path: Any) -> None:
    from edge.config import load_agent_config
    from edge.opcua.browse import tag_entries_toml

    entries = await browse(static_sim.endpoint, "Plant/Area1/Pump01")
    head = ('[site]\nid = 1\nname = "p"\n[spool]\npath = "s"\n[link]\ntarget = "h:1"\n'
            f'[[sources]]\nname = "plc"\nendpoint = "{static_sim.endpoint}"\n\n')
    path = tmp_path / "agent.toml"
    path.write_text(head + tag_entries_toml(entries, "plc"))
    cfg = load_agent_config(path)
    assert len(cfg.tags) == 10
    speed = next(t for t in cfg.tags if t.node_id == "ns=2;s=Plant.Area1.Pump01.Speed")
    assert (speed.name, speed.unit, speed.source) == ("Plant.Area1.Pump01.Speed", "rpm", "plc")
