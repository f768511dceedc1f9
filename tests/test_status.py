"""The status socket, with a real StatusServer on a temporary Unix socket."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from edge import __version__
from edge.status import (
    MAX_REQUEST,
    AgentUnavailable,
    StatusClient,
    StatusError,
    StatusServer,
    StatusSocketInUse,
    fetch_snapshot,
    request_sync,
)


def make_snapshot(n_tags: int = 3, tick: int = 0) -> dict[str, Any]:
    return {
        "agent": {
            "site": "plant-a",
            "version": __version__,
            "started_ns": 1_700_000_000_000_000_000,
            "now_ns": 1_700_000_010_000_000_000 + tick,
            "session_id": 42,
        },
        "sources": [
            {
                "name": "plc1",
                "endpoint": "opc.tcp://127.0.0.1:4840",
                "connected": True,
                "tags": n_tags,
                "subscribed": n_tags,
                "reconnects": 0,
                "failing": [],
            }
        ],
        "tags": [
            {
                "index": i,
                "name": f"line1.temp{i}",
                "unit": "degC",
                "source": "plc1",
                "data_type": "Double",
                "value": 20.0 + i + tick,
                "status": 0,
                "source_ns": 1_700_000_009_000_000_000,
                "count": 10 + tick,
            }
            for i in range(n_tags)
        ],
        "spool": {"frames": 5, "bytes": 12345, "next_lsn": 6, "durable_lsn": 5},
        "link": {"frames_sent": 4, "bytes_sent": 9999, "backlog": 1},
        "rates": {"values_per_s": 12.5},
        "events": [{"time_ns": 1, "kind": "connect", "text": "plc1 connected"}],
    }


@pytest.fixture
def sock_path(tmp_path: Path) -> Iterator[str]:
    # AF_UNIX paths are limited to ~107 bytes; pytest tmp paths can be long.
    short = Path("/tmp") / f"tg-{os.getpid()}-{tmp_path.name[-20:]}"
    short.mkdir(exist_ok=True)
    yield str(short / "run" / "status.sock")
    for p in sorted(short.rglob("*"), reverse=True):
        p.unlink() if not p.is_dir() else p.rmdir()
    short.rmdir()


def raw_request(path: str, payload: bytes, timeout: float = 2.0) -> dict[str, Any] | None:
    """Send raw bytes; return the decoded reply, or None if the server closed."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    if len(data) < 4:
        return None
    (n,) = struct.unpack(">I", data[:4])
    reply = msgpack.unpackb(data[4 : 4 + n], raw=False)
    assert isinstance(reply, dict)
    return reply


async def test_roundtrip_and_ping(sock_path: str) -> None:
    snap = make_snapshot()
    async with StatusServer(sock_path, lambda: snap) as server:
        client = StatusClient(sock_path)
        got = await client.snapshot()
        assert got == snap
        pong = await client.ping()
        assert pong == {"ok": True, "version": __version__, "protocol": 1, "ops": []}
        # several requests on one connection
        for _ in range(3):
            assert (await client.snapshot())["agent"]["site"] == "plant-a"
        with pytest.raises(StatusError, match="unknown op 'frobnicate'"):
            await client.request({"op": "frobnicate"})
        # still usable after an error reply
        assert (await client.ping())["ok"] is True
        await client.close()
        # the sync helper from a thread (the loop must stay free to serve it)
        got_sync = await asyncio.to_thread(fetch_snapshot, sock_path, 2.0)
        assert got_sync == snap
        assert server.requests >= 7


async def test_snapshot_changes_are_seen(sock_path: str) -> None:
    state = {"tick": 0}
    async with StatusServer(sock_path, lambda: make_snapshot(tick=state["tick"]), cache_s=0):
        async with StatusClient(sock_path) as client:
            a = await client.snapshot()
            state["tick"] = 5
            b = await client.snapshot()
    assert a["tags"][0]["value"] == 20.0
    assert b["tags"][0]["value"] == 25.0


async def test_many_concurrent_clients(sock_path: str) -> None:
    snap = make_snapshot(n_tags=500)
    async with StatusServer(sock_path, lambda: snap):
        clients = [StatusClient(sock_path) for _ in range(20)]

        async def hammer(c: StatusClient) -> int:
            n = 0
            for _ in range(5):
                got = await c.snapshot()
                n += len(got["tags"])
            await c.close()
            return n

        results = await asyncio.gather(*(hammer(c) for c in clients))
        assert results == [2500] * 20


async def test_garbage_and_oversize_do_not_kill_server(sock_path: str) -> None:
    snap = make_snapshot()
    async with StatusServer(sock_path, lambda: snap) as server:
        # HTTP-ish garbage: the first 4 bytes read as a huge length
        r = await asyncio.to_thread(raw_request, sock_path, b"GET / HTTP/1.1\r\n\r\n")
        assert r is not None and "exceeds" in r["error"]
        # oversize length prefix
        r = await asyncio.to_thread(raw_request, sock_path, struct.pack(">I", 0xFFFFFFFF))
        assert r is not None and "exceeds" in r["error"]
        r = await asyncio.to_thread(
            raw_request, sock_path, struct.pack(">I", MAX_REQUEST + 1) + b"x" * 10
        )
        assert r is not None and "exceeds" in r["error"]
        # a well-framed body that is not msgpack
        r = await asyncio.to_thread(raw_request, sock_path, struct.pack(">I", 3) + b"\xc1\xc1\xc1")
        assert r is not None and "bad msgpack" in r["error"]
        # msgpack, but not a map
        body = msgpack.packb([1, 2, 3])
        r = await asyncio.to_thread(raw_request, sock_path, struct.pack(">I", len(body)) + body)
        assert r is not None and "map" in r["error"]
        # truncated frame, then the client goes away
        r = await asyncio.to_thread(raw_request, sock_path, struct.pack(">I", 100) + b"abc")
        assert r is None
        # a client that connects and says nothing stays connected harmlessly
        idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        idle.connect(sock_path)
        try:
            async with StatusClient(sock_path) as good:
                assert await good.snapshot() == snap
            assert await asyncio.to_thread(fetch_snapshot, sock_path) == snap
        finally:
            idle.close()
        assert server.errors >= 5
        assert server.serving


async def test_broken_snapshot_callable_gives_error_reply(sock_path: str) -> None:
    def bad() -> dict[str, Any]:
        raise RuntimeError("boom")

    async with StatusServer(sock_path, bad):
        async with StatusClient(sock_path) as c:
            with pytest.raises(StatusError, match="boom"):
                await c.snapshot()
            assert (await c.ping())["ok"]


async def test_socket_file_mode_stale_replace_and_cleanup(sock_path: str) -> None:
    # a stale socket file left behind by a crashed agent
    os.makedirs(os.path.dirname(sock_path), exist_ok=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock_path)
    stale.close()
    assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)

    server = StatusServer(sock_path, make_snapshot)
    await server.start()
    st = os.lstat(sock_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    # a second agent on the same path must not steal a live socket
    with pytest.raises(StatusSocketInUse):
        await StatusServer(sock_path, make_snapshot).start()
    assert (await asyncio.to_thread(fetch_snapshot, sock_path))["agent"]["site"] == "plant-a"
    await server.close()
    assert not os.path.exists(sock_path)
    await server.close()  # idempotent


async def test_regular_file_is_never_replaced(sock_path: str) -> None:
    os.makedirs(os.path.dirname(sock_path), exist_ok=True)
    Path(sock_path).write_text("not a socket")
    with pytest.raises(StatusSocketInUse, match="not a socket"):
        await StatusServer(sock_path, make_snapshot).start()
    assert Path(sock_path).read_text() == "not a socket"


async def test_agent_unavailable(sock_path: str) -> None:
    client = StatusClient(sock_path, timeout=1.0)
    with pytest.raises(AgentUnavailable, match="no status socket"):
        await client.snapshot()
    with pytest.raises(AgentUnavailable):
        fetch_snapshot(sock_path, 1.0)
    assert issubclass(AgentUnavailable, ConnectionError)


async def test_client_reconnects_after_agent_restart(sock_path: str) -> None:
    client = StatusClient(sock_path, timeout=1.0)
    server = StatusServer(sock_path, lambda: make_snapshot(tick=1))
    await server.start()
    assert (await client.snapshot())["tags"][0]["count"] == 11
    await server.close()
    with pytest.raises(AgentUnavailable):
        await client.snapshot()
    server = StatusServer(sock_path, lambda: make_snapshot(tick=2))
    await server.start()
    assert (await client.snapshot())["tags"][0]["count"] == 12
    # restart while the client holds an idle connection: retried transparently
    await server.close()
    server = StatusServer(sock_path, lambda: make_snapshot(tick=3))
    await server.start()
    assert (await client.snapshot())["tags"][0]["count"] == 13
    await client.close()
    await server.close()


async def test_slow_client_does_not_block_others(sock_path: str) -> None:
    big = make_snapshot(n_tags=20000)  # a reply far larger than socket buffers
    async with StatusServer(sock_path, lambda: big, write_timeout=0.5) as server:
        # a client that asks for snapshots and never reads the replies
        stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stuck.connect(sock_path)
        req = msgpack.packb({"op": "snapshot"})
        stuck.sendall((struct.pack(">I", len(req)) + req) * 3)
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            async with StatusClient(sock_path) as good:
                got = await good.snapshot()
            assert len(got["tags"]) == 20000
            assert loop.time() - t0 < 2.0
            # the stuck client is dropped after write_timeout
            for _ in range(40):
                if server.errors:
                    break
                await asyncio.sleep(0.05)
            assert server.errors >= 1
        finally:
            stuck.close()


def test_request_sync_unknown_op_raises(sock_path: str) -> None:
    async def main() -> None:
        async with StatusServer(sock_path, make_snapshot):
            with pytest.raises(StatusError, match="unknown op"):
                await asyncio.to_thread(request_sync, sock_path, {"op": "x"})

    asyncio.run(main())
