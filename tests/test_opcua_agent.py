"""The agent against a server that records every service request: read only,
proven; every acknowledgement sent only after the samples it acknowledges
were committed to the spool; a server restart leaves GAP frames in the spool
that name what was lost."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edge import _core
from edge.agent import Agent
from edge.config import agent_config_from_dict
from edge.frames import decode_data, decode_gap
from edge.opcua.uahelp import Client
from edge.sim import PlantSimulator, free_port
from edge.sim.behaviour import WRITE_REQUESTS, ServerBehaviour
from test_opcua import wait_for

READ_ONLY_SERVICES = {"CreateSession", "ActivateSession", "CloseSession", "GetEndpoints", "Read", "Browse",
                      "BrowseNext", "TranslateBrowsePathsToNodeIds", "CreateSubscription",
                      "DeleteSubscriptions", "TransferSubscriptions", "CreateMonitoredItems",
                      "DeleteMonitoredItems", "Publish", "Republish", "HistoryRead", "CloseSecureChannel"}


def config(tmp_path: Path, endpoint: str) -> Any:
    return agent_config_from_dict({
        "site": {"id": 3, "name": "ro-plant"},
        "agent": {"status_socket": str(tmp_path / "agent.sock"), "flush_interval_ms": 60_000},
        "spool": {"path": str(tmp_path / "spool")},
        "link": {"target": f"127.0.0.1:{free_port()}"},
        "sources": [{"name": "sim", "endpoint": endpoint, "publishing_interval_ms": 300,
                     "retry_interval_ms": 500}],
        "tags": [
            {"source": "sim", "node_id": "ns=2;s=Plant.Area1.Tank01.Level", "name": "polled", "mode": "poll",
             "sampling_interval_ms": 200},
            {"source": "sim", "node_id": "ns=2;s=Plant.Area1.FT01.Flow", "name": "flow",
             "deadband_absolute": 0.01},
            {"source": "sim", "node_id": "ns=2;s=Plant.Nope", "name": "missing"},
        ],
        "tag_groups": [{"source": "sim", "browse_path": "Plant/Area2"}],
    }, origin="test")


def spool_frames(path: Path) -> list[Any]:
    spool = _core.Spool(str(path), 3)
    try:
        out, lsn = [], 0
        while True:
            chunk = spool.read(lsn)
            if not chunk:
                return out
            out.extend(_core.parse_frame(b) for b in chunk)
            lsn = out[-1].seq + 1
    finally:
        spool.close()


async def test_agent_is_read_only_and_acks_after_durable(tmp_path: Path) -> None:
    behaviour = ServerBehaviour(forbid_writes=True)
    port = free_port()
    sim = PlantSimulator(port=port, seed=5, behaviour=behaviour,
                         historize=["ns=2;s=Plant.Area2.FT01.Flow"])
    await sim.start()
    agent = Agent(config(tmp_path, sim.endpoint))
    # Every ack the client sends, with how many values were durable then; and
    # per notification message, how many values had been collected with it.
    # ("ack" | "got", subscription id, sequence number, durable | collected values), in order
    log: list[tuple[str, int, int, int]] = []
    session = agent.sessions[0]
    make_client = session._new_client

    def new_client() -> Client:
        client = make_client()
        ua_session = client.uaclient.session
        publish = ua_session.publish

        async def recording_publish(ack_list: list[Any]) -> Any:
            for a in ack_list:
                log.append(("ack", int(a.SubscriptionId), int(a.SequenceNumber), agent._durable_values))
            return await publish(ack_list)
        ua_session.publish = recording_publish  # type: ignore[method-assign]
        return client
    session._new_client = new_client  # type: ignore[method-assign]
    collect = session._collect

    def recording_collect(sub: Any, result: Any) -> None:
        collect(sub, result)
        msg = result.NotificationMessage
        log.append(("got", int(result.SubscriptionId), int(msg.SequenceNumber), agent.collector.values_total))
    session._collect = recording_collect  # type: ignore[method-assign]

    stop = asyncio.Event()
    run = asyncio.create_task(agent.run(stop))
    try:
        await wait_for(lambda: session.state["subscribed"] >= 40 and session.state["polled"] == 1, timeout=20)
        sim.begin()
        await asyncio.sleep(3.0)
        await sim.wait_held()
        await sim.advance(1)
        await sim.restart(down_s=1.0)
        sim.begin()
        await wait_for(lambda: session.state["recreated"] == 1, timeout=30)
        await asyncio.sleep(3.0)
    finally:
        stop.set()
        stats = await run
        await sim.stop()
    # read only, proven by the server
    assert behaviour.violations == []
    assert not set(behaviour.requests) & set(WRITE_REQUESTS.values())
    assert set(behaviour.requests) <= READ_ONLY_SERVICES, set(behaviour.requests) - READ_ONLY_SERVICES
    assert {"Read", "Browse", "CreateMonitoredItems", "Publish", "HistoryRead"} <= set(behaviour.requests)
    # ack after durable: every acknowledged message's values were committed before its ack left
    acks = 0
    for k, (kind, sid, seq, durable) in enumerate(log):
        if kind != "ack":
            continue
        acks += 1
        got = next(n for kd, s, q, n in reversed(log[:k]) if kd == "got" and (s, q) == (sid, seq))
        assert durable >= got, f"message {seq} acked before its values were durable"
    assert acks > 10
    # the spool holds the data, an EVENT for the missing node, and the gap of the restart
    frames = spool_frames(tmp_path / "spool")
    kinds = {f.kind for f in frames}
    assert {_core.FRAME_DATA, _core.FRAME_META, _core.FRAME_EVENT, _core.FRAME_GAP} <= kinds
    values = sum(len(decode_data(f.payload)) for f in frames if f.kind == _core.FRAME_DATA)
    assert values == stats["counters"]["values"] == agent.collector.values_total
    gaps = [decode_gap(f.payload) for f in frames if f.kind == _core.FRAME_GAP]
    assert [g.reason for g in gaps] == ["subscription_lost"]
    flow_idx = agent.collector.index_of("sim", "ns=2;s=Plant.Area2.FT01.Flow")
    assert flow_idx is not None and flow_idx not in gaps[0].tags  # historized: filled, not lost
    assert len(gaps[0].tags) >= 40
