"""Operator requests on the agent side (edge/control.py) and the status
socket's handler plumbing: permissions from the kernel's peer credentials, the
tag file changed only when the result validates, atomically, never over a
concurrent edit; bad requests answered with one clear line."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_fixture import running_agent, wait_until
from edge.config import ConfigError, load_agent_config
from edge.frames import Gap
from edge.control import TagFileError, add_tags_text, operator_status, write_tag_file
from edge.status import Peer, StatusClient, StatusError, StatusServer, request_sync

BASE = """# north plant tag file: owned by OT (comments stay)
[site]
id = 1
name = "north"

[spool]
path = "spool"

[link]
target = "127.0.0.1:5005"

[[sources]]
name = "plc1"
endpoint = "opc.tcp://127.0.0.1:4840"

[[tags]]
source = "plc1"
node_id = "ns=2;s=Pump01.Speed"
name = "P01_Speed"   # keep this name
"""

NOBODY = Peer(pid=-1, uid=65534, gid=65534)


@pytest.fixture
def tag_file() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="tg-ctl-", dir="/tmp"))
    p = d / "agent.toml"
    p.write_text(BASE)
    yield p
    shutil.rmtree(d, ignore_errors=True)


def test_add_tags_appends_validated_text(tag_file: Path) -> None:
    new, cfg, added, skipped = add_tags_text(
        BASE, "plc1",
        [{"node_id": "ns=2;s=Pump01.Speed"},  # already there: skipped, not duplicated
         {"node_id": 'ns=2;s=Pump01."Odd" name\\', "name": "P01_Odd", "sampling_interval_ms": 500}],
        str(tag_file), tag_file.parent, who="tech1")
    assert added == ["P01_Odd"]
    assert skipped == [{"node_id": "ns=2;s=Pump01.Speed", "reason": "already in the tag file"}]
    assert new.startswith(BASE.rstrip("\n"))  # the engineer's text, comments included, untouched
    assert "added by tech1" in new
    assert [t.node_id for t in cfg.tags] == ["ns=2;s=Pump01.Speed", 'ns=2;s=Pump01."Odd" name\\']
    assert cfg.tags[1].sampling_interval_ms == 500


@pytest.mark.parametrize(("tags", "message"), [
    ([{"node_id": "Pump01.Speed"}], "tags[1].node_id: must be an OPC UA node id"),
    ([{"node_id": "ns=2;s=X", "name": "P01_Speed"}], "duplicate tag name 'P01_Speed'"),
    ([{"node_id": "ns=2;s=X", "sampling_interval_ms": -1}], "between 0 and"),
    ([{"node_id": "ns=2;s=X", "colour": "red"}], "unknown key 'colour'"),
    ([{"name": "no node"}], "string 'node_id'"),
])
def test_bad_tags_are_refused_with_one_line(tag_file: Path, tags: list[dict[str, Any]], message: str) -> None:
    with pytest.raises((ConfigError, TagFileError)) as e:
        add_tags_text(BASE, "plc1", tags, str(tag_file), tag_file.parent)
    assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(TagFileError, match="no source named 'plc9'"):
        add_tags_text(BASE, "plc9", [{"node_id": "ns=2;s=X"}], str(tag_file), tag_file.parent)


def test_write_is_atomic_and_never_over_a_concurrent_edit(tag_file: Path) -> None:
    os.chmod(tag_file, 0o640)
    raw = tag_file.read_bytes()
    new, *_ = add_tags_text(BASE, "plc1", [{"node_id": "ns=2;s=New"}], str(tag_file), tag_file.parent)
    tag_file.write_text(BASE + "\n# someone edited meanwhile\n")
    with pytest.raises(TagFileError, match="changed on disk"):
        write_tag_file(tag_file, new, raw)
    assert tag_file.read_text().endswith("# someone edited meanwhile\n")
    raw = tag_file.read_bytes()
    new, *_ = add_tags_text(raw.decode(), "plc1", [{"node_id": "ns=2;s=New"}], str(tag_file),
                            tag_file.parent)
    write_tag_file(tag_file, new, raw)
    assert load_agent_config(tag_file).tags[-1].node_id == "ns=2;s=New"
    assert (tag_file.stat().st_mode & 0o777) == 0o640  # mode kept
    assert sorted(p.name for p in tag_file.parent.iterdir()) == ["agent.toml"]  # no temp left


def test_operator_status_from_credentials() -> None:
    me = operator_status(Peer(pid=-1, uid=os.geteuid(), gid=os.getegid()))
    assert me == ((True, "root") if os.geteuid() == 0 else (True, "same user as the agent"))
    assert operator_status(Peer(pid=-1, uid=0, gid=0)) == (True, "root")
    ok, why = operator_status(NOBODY)
    assert ok is False and "tidegate-ops" in why
    assert operator_status(Peer())[0] is False


async def test_handlers_get_peer_credentials_and_errors_stay_per_request() -> None:
    d = tempfile.mkdtemp(prefix="tg-ctl-", dir="/tmp")
    path = f"{d}/agent.sock"
    seen: list[Peer] = []

    async def echo(req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        seen.append(peer)
        if req.get("boom"):
            raise ValueError("that range is empty")
        await asyncio.sleep(0.2)  # a slow op delays only its own client
        return {"echo": req.get("x")}

    try:
        async with StatusServer(path, lambda: {"agent": {}}, handlers={"echo": echo}) as server:
            with pytest.raises(ValueError):
                server.register("snapshot", echo)
            async with StatusClient(path) as c, StatusClient(path) as other:
                slow = asyncio.create_task(c.request({"op": "echo", "x": 1}))
                await asyncio.sleep(0.05)
                assert "agent" in await other.snapshot()  # not held up by the slow op
                assert await slow == {"echo": 1}
                with pytest.raises(StatusError, match="that range is empty"):
                    await c.request({"op": "echo", "boom": True})
                assert await c.request({"op": "echo", "x": 2}) == {"echo": 2}  # connection still fine
                assert (await c.ping())["ops"] == ["echo"]
            assert seen[0].uid == os.getuid() and seen[0].pid == os.getpid()
    finally:
        shutil.rmtree(d, ignore_errors=True)


async def test_agent_refuses_viewers_and_bad_reloads() -> None:
    async with running_agent() as ra:
        control = ra.agent.control
        before = ra.config.read_text()
        with pytest.raises(PermissionError, match="needs an operator"):
            await control.add_tags({"source": "sim", "tags": [{"node_id": "ns=2;s=X"}]}, NOBODY)
        with pytest.raises(PermissionError):
            await control.resend({"seq_first": 1, "seq_last": 2}, NOBODY)
        with pytest.raises(ValueError, match="must not be after"):
            await control.resend({"t_first_ns": 5, "t_last_ns": 1}, NOBODY)
        assert ra.config.read_text() == before
        # a broken tag file is refused as a whole; the agent keeps collecting with what it had
        me = Peer(pid=os.getpid(), uid=os.getuid(), gid=os.getgid())
        ra.config.write_text(before + "\n[[tags]]\nsource = \"sim\"\nnode_id = \"nonsense\"\n")
        reply = await asyncio.to_thread(request_sync, ra.socket, {"op": "whoami"})
        assert reply["operator"] is True
        with pytest.raises(StatusError, match=r"agent.toml:\d+: tags\[10\].node_id"):
            await asyncio.to_thread(request_sync, ra.socket, {"op": "reload"})
        assert len(ra.agent.cfg.tags) == 10
        assert ra.agent.sessions[0].state["connected"]
        assert "config_rejected" in [e["kind"] for e in ra.agent.events]
        # add_tags on a broken file: refused, file untouched
        broken = ra.config.read_text()
        with pytest.raises((ConfigError, TagFileError)):
            await control.add_tags({"source": "sim", "tags": [{"node_id": "ns=2;s=Y"}]}, me)
        assert ra.config.read_text() == broken


async def test_reload_leaves_no_silent_hole() -> None:
    """A reload that restarts a source's session: every value the server wrote
    meanwhile is either collected or inside a GAP naming its tag."""
    async with running_agent("Plant/Area1/") as ra:
        agent = ra.agent
        seen: set[tuple[int, int]] = set()
        gaps: list[Gap] = []
        add, on_gap = agent.collector.add, agent._on_gap

        def recording_add(index: int, value: Any, status: int, source_ns: int, server_ns: int,
                          flags: int = 0) -> None:
            seen.add((index, source_ns))
            add(index, value, status, source_ns, server_ns, flags)

        def recording_gap(gap: Gap) -> None:
            gaps.append(gap)
            on_gap(gap)
        agent.collector.add = recording_add  # type: ignore[method-assign]
        agent._on_gap = recording_gap  # type: ignore[method-assign]
        old = {t.node_id for t in agent.cfg.tags}
        await asyncio.sleep(1.5)
        me = Peer(pid=os.getpid(), uid=os.getuid(), gid=os.getgid())
        reply = await agent.control.add_tags(
            {"source": "sim", "tags": [{"node_id": "ns=2;s=Plant.Area2.FT01.Flow"}]}, me)
        assert reply["added"] and len(agent.cfg.tags) == len(old) + 1
        await wait_until(lambda: agent.sessions[0].state.get("subscribed", 0) > len(old), 30, "resubscribe")
        await asyncio.sleep(1.5)
        cutoff = time.time_ns()
        await asyncio.sleep(1.5)  # let what was written before the cutoff arrive
        published = ra.sim.published()
    assert [g.reason for g in gaps] == ["subscription_lost"]
    index = {n: agent.collector.index_of("sim", n) for n in old}
    assert set(gaps[0].tags) == set(index.values())
    checked = 0
    for node, samples in published.items():
        if node not in old:
            continue
        for ns, _, _ in samples:
            if ns >= cutoff:
                continue
            checked += 1
            if (index[node], ns) not in seen:
                assert gaps[0].t_first_ns <= ns <= gaps[0].t_last_ns, f"{node} at {ns}: lost, and no GAP says so"
    assert checked > 50
