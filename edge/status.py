"""The agent's local status socket: how the technician TUI (and any local tool)
sees the agent, without touching the spool or the OPC UA servers itself.

Transport
---------
A Unix domain socket (default ``/run/tidegate/status.sock``; never a network
socket: nothing on the OT side listens on the network). The socket file is
created with mode 0660 so members of the operators' group can connect; its
directory is created (0750) if missing. A stale socket file (nobody listening)
is replaced at start; a live one makes ``start()`` fail with
:class:`StatusSocketInUse`; a non-socket file at the path is never deleted. The
file is removed at ``close()``.

Framing, both directions: a 4-byte big-endian unsigned length, then that many
bytes of one msgpack map. Messages above :data:`MAX_MESSAGE` (16 MiB) are
refused; the server accepts requests up to :data:`MAX_REQUEST` (64 KiB), so a
client can never make the agent buffer much. On an oversize length prefix or
undecodable bytes the server answers ``{"error": ...}`` and closes that
connection; a body not completed within 10 s also closes it.
One request, one reply, in order; a client may send many requests on one
connection.

Requests
--------
``{"op": "ping"}``      -> ``{"ok": True, "version": str, "protocol": int,
                            "ops": [registered op names]}``
``{"op": "snapshot"}``  -> the snapshot map below
``{"op": <name>, ...}`` -> a registered handler's reply (the agent registers
                           the operator ops of :mod:`edge.control`: whoami,
                           browse, add_tags, resend; see there)
anything else           -> ``{"error": "unknown op 'x'"}`` (or another
                           ``{"error": str}`` for a request that is not a map
                           or not msgpack; undecodable input also closes the
                           connection). A reply carrying an ``"error"`` key is
                           always an error; the snapshot has no such key.

Snapshot schema (the agent fills it; every key optional to readers, who must
tolerate missing keys and ignore unknown ones)
-----------------------------------------------------------------------------
::

    {
      "agent":  {"site": str, "version": str, "started_ns": int,
                 "now_ns": int,            # agent wall clock, ns since epoch
                 "session_id": int},
      "sources": [{"name": str, "endpoint": str, "connected": bool,
                   "tags": int, "subscribed": int, "reconnects": int,
                   "failing": [{"node_id": str, "reason": str}],
                   "security_policy": str,        # optional
                   "publishing_interval_ms": float, "notifications": int,
                   "replayed": int, "overflows": int,   # optional
                   "limits": {str: int}, "last_error": str | None}],  # optional
      "tags":   [{"index": int, "name": str, "unit": str, "source": str,
                  "data_type": str,        # edge.model.DATA_TYPES
                  "value": bool | int | float | str | None,
                  "status": int,           # OPC UA StatusCode (uint32)
                  "source_ns": int,        # source timestamp, 0 if none
                  "count": int,            # values seen since agent start
                  "node_id": str}],        # optional: shown in the TUI detail line
      "spool":  {"frames": int, "bytes": int, "next_lsn": int,
                 "durable_lsn": int,
                 "capacity_bytes": int,    # optional: enables a fill % (0 = unbounded)
                 ...},                     # fill_permille, oldest_ns, newest_ns, rates,
                                           # dropped_*/retired_*/gap_frames: docs/spool.md
      "link":   {"frames_sent": int, "bytes_sent": int, "backlog": int,
                 "bytes_per_s": float},    # optional
      "rates":  {"values_per_s": float},
      "counters": {str: int},              # optional: the agent's own counters
      "config": {"version": str, "path": str},   # optional: the tag file in force
      "events": [{"time_ns": int, "kind": str, "text": str}]   # newest last
    }

Handlers and peers
------------------
``StatusServer(path, snapshot, handlers={"op": coroutine_fn})`` (or
:meth:`StatusServer.register`) adds ops. A handler is awaited with the request
map and the connecting process's credentials (:class:`Peer`, from
``SO_PEERCRED``: the kernel's word, not the client's), and returns the reply
map. An exception in a handler becomes ``{"error": "<text>"}`` for that request
only. Requests on one connection are served in order, so a slow handler (a
browse) delays only its own client; other clients and the snapshot go on.

Behaviour
---------
:class:`StatusServer` runs on the agent's asyncio loop. The snapshot callable is
called on that loop (keep it cheap: it copies counters, it does no I/O); its
packed result is cached for ``cache_s`` seconds so many TUIs cost one snapshot.
Each client is served by its own task; a reply that a client does not read
within ``write_timeout`` closes that client, so a slow or stuck client never
holds the agent. At most ``max_clients`` connections are served at once.

:class:`StatusClient` is the TUI side (async, one persistent connection,
reconnecting on the next call after any failure). :func:`fetch_snapshot` and
:func:`request_sync` are blocking helpers for the CLI and tests (plain
sockets, no event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from edge import __version__

__all__ = [
    "DEFAULT_SOCKET",
    "MAX_MESSAGE",
    "PROTOCOL",
    "Handler",
    "Peer",
    "AgentUnavailable",
    "StatusClient",
    "StatusError",
    "StatusServer",
    "StatusSocketInUse",
    "fetch_snapshot",
    "request_sync",
]

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/run/tidegate/agent.sock"  # = edge.config.DEFAULT_STATUS_SOCKET
MAX_MESSAGE = 16 * 1024 * 1024  # any message, either direction
MAX_REQUEST = 64 * 1024  # what the server accepts from a client (requests are tiny)
BODY_TIMEOUT = 10.0  # seconds a client may take to send a body it announced
PROTOCOL = 1
_HEADER = struct.Struct(">I")
_IDEMPOTENT = frozenset({"ping", "snapshot", "whoami", "browse"})

Snapshot = dict[str, Any]
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class Peer:
    """The process at the other end of a status connection (SO_PEERCRED);
    -1 where the kernel gave nothing."""

    pid: int = -1
    uid: int = -1
    gid: int = -1


Handler = Callable[[dict[str, Any], Peer], Awaitable[dict[str, Any]]]


def peer_of(sock: socket.socket | None) -> Peer:
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return Peer()
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except OSError:
        return Peer()
    pid, uid, gid = _PEERCRED.unpack(raw)
    return Peer(pid, uid, gid)


class AgentUnavailable(ConnectionError):
    """The agent's status socket is not there, refused, or went away."""


class StatusError(RuntimeError):
    """The agent answered with ``{"error": ...}``."""


class StatusSocketInUse(RuntimeError):
    """Another live process already serves the status socket path."""


def _pack(msg: dict[str, Any]) -> bytes:
    body: bytes = msgpack.packb(msg, use_bin_type=True)
    if len(body) > MAX_MESSAGE:
        raise ValueError(f"status message of {len(body)} bytes exceeds {MAX_MESSAGE}")
    return _HEADER.pack(len(body)) + body


def _unpack(body: bytes) -> Any:
    return msgpack.unpackb(body, raw=False, strict_map_key=False)


# --------------------------------------------------------------------- server


class StatusServer:
    """Serves ``snapshot()`` over a Unix socket at ``path`` on the running loop."""

    def __init__(
        self,
        path: str,
        snapshot: Callable[[], dict[str, Any]],
        *,
        mode: int = 0o660,
        max_clients: int = 64,
        write_timeout: float = 5.0,
        cache_s: float = 0.2,
        handlers: Mapping[str, Handler] | None = None,
    ) -> None:
        self.path = path
        self._handlers: dict[str, Handler] = dict(handlers or {})
        self._snapshot = snapshot
        self._mode = mode
        self._max_clients = max_clients
        self._write_timeout = write_timeout
        self._cache_s = cache_s
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._inode: tuple[int, int] | None = None
        self._cached: bytes | None = None
        self._cached_at = 0.0
        self.requests = 0  # served requests, for the agent's own counters
        self.errors = 0  # bad requests and dropped clients

    def register(self, op: str, handler: Handler) -> None:
        """Serve ``{"op": op, ...}`` with ``handler`` (ping and snapshot are built in)."""
        if op in ("ping", "snapshot"):
            raise ValueError(f"op {op!r} is built in")
        self._handlers[op] = handler

    @property
    def serving(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is not None:
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, mode=0o750, exist_ok=True)
        self._remove_stale()
        server = await asyncio.start_unix_server(
            self._handle, path=self.path, limit=64 * 1024
        )
        try:
            os.chmod(self.path, self._mode)
            st = os.stat(self.path)
        except OSError:
            server.close()
            raise
        self._inode = (st.st_dev, st.st_ino)
        self._server = server
        log.info("status socket listening on %s", self.path)

    def _remove_stale(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise StatusSocketInUse(
                f"{self.path} exists and is not a socket; not replacing it"
            )
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(0.5)
        try:
            probe.connect(self.path)
        except OSError:
            os.unlink(self.path)  # nobody listening: stale
            log.info("replaced stale status socket %s", self.path)
            return
        finally:
            probe.close()
        raise StatusSocketInUse(f"{self.path} is served by another live process")

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for w in list(self._writers):
            w.close()
        tasks = list(self._clients)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1.0)
        self._unlink_own()
        log.info("status socket %s closed", self.path)

    def _unlink_own(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if self._inode == (st.st_dev, st.st_ino):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    async def __aenter__(self) -> StatusServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- per-client

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if len(self._clients) >= self._max_clients or task is None:
            self.errors += 1
            writer.close()
            return
        self._clients.add(task)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # never let one client take anything else down
            self.errors += 1
            log.exception("status client failed")
        finally:
            self._clients.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = peer_of(writer.get_extra_info("socket"))
        while True:
            try:
                header = await reader.readexactly(_HEADER.size)
            except asyncio.IncompleteReadError:
                return  # client closed
            (size,) = _HEADER.unpack(header)
            if size > MAX_REQUEST:
                self.errors += 1
                await self._send(
                    writer,
                    _pack({"error": f"request of {size} bytes exceeds {MAX_REQUEST}"}),
                )
                return
            try:
                body = await asyncio.wait_for(reader.readexactly(size), BODY_TIMEOUT)
            except (TimeoutError, asyncio.TimeoutError):
                self.errors += 1
                return
            try:
                request = _unpack(body)
            except Exception as e:
                self.errors += 1
                await self._send(writer, _pack({"error": f"bad msgpack: {e}"}))
                return
            if not await self._send(writer, await self._reply(request, peer)):
                return

    async def _reply(self, request: Any, peer: Peer = Peer()) -> bytes:
        self.requests += 1
        if not isinstance(request, dict):
            self.errors += 1
            return _pack({"error": "request must be a map with an 'op' key"})
        op = request.get("op")
        if op == "snapshot":
            return self._snapshot_bytes()
        if op == "ping":
            return _pack({"ok": True, "version": __version__, "protocol": PROTOCOL,
                          "ops": sorted(self._handlers)})
        handler = self._handlers.get(op) if isinstance(op, str) else None
        if handler is not None:
            return await self._call(handler, request, peer)
        self.errors += 1
        return _pack({"error": f"unknown op {op!r}"})

    async def _call(self, handler: Handler, request: dict[str, Any], peer: Peer) -> bytes:
        try:
            reply = await handler(request, peer)
            if not isinstance(reply, dict):
                raise TypeError(f"handler returned {type(reply).__name__}, not a map")
            return _pack(reply)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the handler's message is meant for the operator
            self.errors += 1
            if not isinstance(e, (ValueError, LookupError, PermissionError, OSError)):
                log.exception("status op %r failed", request.get("op"))
            return _pack({"error": str(e) or type(e).__name__})

    def _snapshot_bytes(self) -> bytes:
        now = time.monotonic()
        if self._cached is not None and now - self._cached_at < self._cache_s:
            return self._cached
        try:
            data = _pack(self._snapshot())
        except Exception as e:
            self.errors += 1
            log.exception("status snapshot failed")
            return _pack({"error": f"snapshot failed: {type(e).__name__}: {e}"})
        self._cached, self._cached_at = data, now
        return data

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> bool:
        writer.write(data)
        try:
            await asyncio.wait_for(writer.drain(), self._write_timeout)
        except (TimeoutError, asyncio.TimeoutError):
            self.errors += 1
            log.warning("status client too slow; dropped")
            writer.transport.abort()
            return False
        return True


# --------------------------------------------------------------------- client


class StatusClient:
    """Async client with one persistent connection.

    Any failure (no socket, refused, agent restarted, timeout) closes the
    connection and raises :class:`AgentUnavailable`; the next call reconnects.
    A connection that turns out dead on first use after being idle (the agent
    restarted in between) is retried once on a fresh connection.
    """

    def __init__(self, path: str, timeout: float = 3.0) -> None:
        self.path = path
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def snapshot(self) -> Snapshot:
        reply = await self.request({"op": "snapshot"})
        return reply

    async def ping(self) -> dict[str, Any]:
        return await self.request({"op": "ping"})

    async def request(self, message: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """One request; ``timeout`` overrides the client's for slow ops (browse).

        Only idempotent requests are retried on a stale connection; an
        operator request that may have reached the agent is never sent twice.
        """
        async with self._lock:
            reused = self._writer is not None
            try:
                reply = await self._roundtrip(message, timeout)
            except AgentUnavailable:
                if not reused or message.get("op") not in _IDEMPOTENT:
                    raise
                reply = await self._roundtrip(message, timeout)  # stale connection: retry once
        if "error" in reply:
            raise StatusError(str(reply["error"]))
        return reply

    async def _roundtrip(self, message: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                if self._writer is None or self._writer.is_closing():
                    await self._close_conn()
                    self._reader, self._writer = await asyncio.open_unix_connection(
                        self.path, limit=64 * 1024
                    )
                assert self._reader is not None and self._writer is not None
                self._writer.write(_pack(message))
                await self._writer.drain()
                (size,) = _HEADER.unpack(await self._reader.readexactly(_HEADER.size))
                if size > MAX_MESSAGE:
                    raise AgentUnavailable(f"reply of {size} bytes exceeds limit")
                body = await self._reader.readexactly(size)
            reply = _unpack(body)
        except AgentUnavailable:
            await self._close_conn()
            raise
        except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError) as e:
            await self._close_conn()
            raise AgentUnavailable(_describe(self.path, e)) from e
        except Exception as e:  # undecodable reply
            await self._close_conn()
            raise AgentUnavailable(f"bad reply from {self.path}: {e}") from e
        if not isinstance(reply, dict):
            await self._close_conn()
            raise AgentUnavailable(f"bad reply from {self.path}: not a map")
        return reply

    async def _close_conn(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 0.5)

    async def close(self) -> None:
        async with self._lock:
            await self._close_conn()

    async def __aenter__(self) -> StatusClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _describe(path: str, e: BaseException) -> str:
    if isinstance(e, FileNotFoundError):
        return f"agent not running: no status socket at {path}"
    if isinstance(e, ConnectionRefusedError):
        return f"agent not running: {path} refuses connections"
    if isinstance(e, PermissionError):
        return f"no permission on {path} (join the operators' group)"
    if isinstance(e, (TimeoutError, asyncio.TimeoutError)):
        return f"agent did not answer on {path} in time"
    if isinstance(e, (asyncio.IncompleteReadError, EOFError, ConnectionResetError)):
        return f"agent closed the status connection on {path}"
    return f"status socket {path}: {e}"


# ------------------------------------------------------------ sync helpers


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return bytes(buf)


def request_sync(path: str, message: dict[str, Any], timeout: float = 3.0) -> dict[str, Any]:
    """One blocking request on a fresh connection (CLI, tests, other threads)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(_pack(message))
            (size,) = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
            if size > MAX_MESSAGE:
                raise AgentUnavailable(f"reply of {size} bytes exceeds limit")
            reply = _unpack(_recv_exactly(sock, size))
    except AgentUnavailable:
        raise
    except (OSError, EOFError) as e:
        raise AgentUnavailable(_describe(path, e)) from e
    except Exception as e:
        raise AgentUnavailable(f"bad reply from {path}: {e}") from e
    if not isinstance(reply, dict):
        raise AgentUnavailable(f"bad reply from {path}: not a map")
    if "error" in reply:
        raise StatusError(str(reply["error"]))
    return reply


def fetch_snapshot(path: str, timeout: float = 3.0) -> Snapshot:
    """Blocking: the agent's current snapshot, or AgentUnavailable."""
    return request_sync(path, {"op": "snapshot"}, timeout)
