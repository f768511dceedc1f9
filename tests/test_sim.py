"""The plant simulator: model determinism, address space, write semantics."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from asyncua import ua

from edge.opcua.uahelp import Client, ObjectIds, UaStatusCodeError, data_value, node_id

from edge.model import DATA_TYPES
from edge.sim import NAMESPACE_URI, PlantModel, PlantSimulator, datetime_ns, free_port
from edge.sim.plant import BAD_SENSOR_FAILURE, UNCERTAIN_LAST_USABLE

REQUIRED_TYPES = {"Double", "Float", "Int32", "Int64", "UInt16", "Boolean", "String"}


def test_model_tags() -> None:
    m = PlantModel(1)
    tags = m.tags
    assert len(tags) >= 200
    assert REQUIRED_TYPES <= {t.data_type for t in tags}
    assert all(t.data_type in DATA_TYPES for t in tags)
    assert len({t.name for t in tags}) == len(tags)
    assert len({t.node_id for t in tags}) == len(tags)
    t = next(t for t in tags if t.name == "Plant.Area1.Pump01.Speed")
    assert t.node_id == "ns=2;s=Plant.Area1.Pump01.Speed"
    assert t.browse_path == "Plant/Area1/Pump01/Speed"
    assert (t.unit, t.range_low, t.range_high) == ("rpm", 0, 1800)
    assert {t.period_ms for t in tags} == {500, 1000}


def test_model_is_deterministic() -> None:
    a, b, c = PlantModel(7), PlantModel(7), PlantModel(8)
    assert a.initial() == b.initial()
    assert a.initial() != c.initial()
    seq_a = [a.step() for _ in range(300)]
    seq_b = [b.step() for _ in range(300)]
    assert seq_a == seq_b
    per_tick = sum(len(s) for s in seq_a) / 300
    # 100-400 values/s at two ticks per second
    assert 50 <= per_tick <= 200, per_tick


def test_model_changes_only_and_rates() -> None:
    m = PlantModel(3)
    last = {i: (v, s) for i, v, s in m.initial()}
    changes: Counter[int] = Counter()
    for tick in range(1, 121):
        for i, v, s in m.step():
            assert (v, s) != last[i] or type(v) is not type(last[i][0]), "an unchanged value was reported"
            last[i] = (v, s)
            changes[i] += 1
    for i, t in enumerate(m.tags):
        # at most one change per period (episodes may add a status change)
        assert changes[i] <= 120 * 500 // t.period_ms + 4, (t.name, changes[i])
    # many analog samples repeat at instrument resolution: not every tick reports
    speed = [i for i, t in enumerate(m.tags) if t.name.endswith("BearingTemp")]
    assert sum(changes[i] for i in speed) < 0.8 * 60 * len(speed)


def test_model_status_episodes() -> None:
    m = PlantModel(1)
    m.initial()
    seen: list[tuple[str, Any, int]] = []
    for _ in range(20):
        seen += [(m.tags[i].name, v, s) for i, v, s in m.step() if s != 0]
    uncertain = [x for x in seen if x[2] == UNCERTAIN_LAST_USABLE]
    bad = [x for x in seen if x[2] == BAD_SENSOR_FAILURE]
    assert uncertain and all(v is not None for _, v, _ in uncertain)  # value kept
    assert bad and all(v is None for _, v, _ in bad)  # Bad carries no value


async def test_server_address_space() -> None:
    sim = PlantSimulator(port=free_port(), seed=1)
    await sim.start()
    try:
        async with Client(sim.endpoint) as c:
            assert await c.get_namespace_index(NAMESPACE_URI) == 2
            by_type: dict[str, str] = {}
            for t in sim.tags():
                by_type.setdefault(t.data_type, t.node_id)
            assert REQUIRED_TYPES <= set(by_type)
            for dtype, nid in by_type.items():
                node = c.get_node(nid)
                vt = await node.read_data_type_as_variant_type()
                assert vt.name == dtype
            speed = c.get_node("ns=2;s=Plant.Area1.Pump01.Speed")
            rng = await (await speed.get_child("0:EURange")).read_value()
            eu = await (await speed.get_child("0:EngineeringUnits")).read_value()
            assert (rng.Low, rng.High) == (0.0, 1800.0)
            assert eu.NamespaceUri == "http://www.opcfoundation.org/UA/units/un/cefact"
            assert eu.UnitId == int.from_bytes(b"RPM", "big") and eu.DisplayName.Text == "rpm"
            assert (await speed.read_type_definition()) == node_id(ObjectIds.AnalogItemType)
            # every tag is there, under Objects/Plant/<Area>/<Unit>
            plant = await c.nodes.objects.get_child("2:Plant")
            n = 0
            for area in await plant.get_children():
                for unit in await area.get_children():
                    n += len(await unit.get_children(refs=ObjectIds.HasComponent))
            assert n == len(sim.tags()) >= 200
            # the sim is read-only to clients
            try:
                await speed.write_value(ua.DataValue(ua.Variant(1.0, ua.VariantType.Double)))
            except UaStatusCodeError as e:
                assert "Bad" in type(e).__name__ or "Bad" in str(e)
            else:
                raise AssertionError("write to the simulator succeeded")
            # operation limits the client must respect
            lim = c.get_node(node_id(ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall))
            assert await lim.read_value() == 100
    finally:
        await sim.stop()


async def test_published_is_every_write() -> None:
    sim = PlantSimulator(port=free_port(), seed=2)
    await sim.start()
    try:
        pub = sim.published()
        assert sum(len(v) for v in pub.values()) == len(sim.tags())  # the initial values
        n = await sim.advance(6)
        pub = sim.published()
        assert sum(len(v) for v in pub.values()) == len(sim.tags()) + n
        async with Client(sim.endpoint) as c:
            for t in sim.tags()[:40]:
                dv = await c.get_node(t.node_id).read_data_value()
                ns, value, status = pub[t.node_id][-1]
                assert dv.StatusCode is not None and dv.StatusCode.value == status
                assert dv.Value is not None and dv.Value.Value == value
                assert dv.SourceTimestamp is not None and datetime_ns(dv.SourceTimestamp) == ns
    finally:
        await sim.stop()


class _Counter:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.values.append(val)


async def test_identical_writes_do_not_notify() -> None:
    """asyncua's server (no filter = trigger StatusValue) drops a write that
    repeats value and status, even with new timestamps; a status change alone
    does notify; a Bad write is stored with a null value."""
    sim = PlantSimulator(port=free_port(), seed=1)
    await sim.start()
    try:
        server = sim._server
        assert server is not None
        nid = node_id("Plant.Area1.FT01.Flow", 2)
        async with Client(sim.endpoint) as c:
            handler = _Counter()
            sub = await c.create_subscription(50, handler)
            await sub.subscribe_data_change(c.get_node(nid), queuesize=10)
            await asyncio.sleep(0.3)
            assert len(handler.values) == 1  # the initial value
            for k in range(3):
                now = datetime.now(timezone.utc)
                await server.write_attribute_value(nid, data_value(
                    ua.Variant(42.0, ua.VariantType.Double), 0, now, now))
            await server.write_attribute_value(nid, data_value(
                ua.Variant(42.0, ua.VariantType.Double), UNCERTAIN_LAST_USABLE))
            await server.write_attribute_value(nid, data_value(
                ua.Variant(43.0, ua.VariantType.Double), BAD_SENSOR_FAILURE))
            await asyncio.sleep(0.3)
            assert handler.values[1:] == [42.0, 42.0, None]
            await sub.delete()
    finally:
        await sim.stop()


async def test_begin_hold_runs_dynamics() -> None:
    sim = PlantSimulator(port=free_port(), seed=1)
    await sim.start()
    try:
        before = sim.writes
        await asyncio.sleep(0.7)
        assert sim.writes == before  # nothing moves before begin()
        sim.begin()
        await asyncio.sleep(1.2)
        await sim.wait_held()
        moved = sim.writes
        assert moved - before > 50
        await asyncio.sleep(0.7)
        assert sim.writes == moved  # held
    finally:
        await sim.stop()
