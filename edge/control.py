"""Operator requests on the agent's status socket: who may do what, browsing a
source's address space, adding tags to the tag file, reloading it, re-sending.

The TUI sends these; the agent serves them on its event loop (see
:mod:`edge.status` for the transport). Ops and replies (every reply may be
``{"error": str}`` instead, with a message meant for the operator):

``{"op": "whoami"}``
    -> ``{"uid", "user", "operator": bool, "reason": str}``. Anyone who can
    connect may look (the socket's group already decides that).
``{"op": "browse", "source": str, "path": str | None}``
    -> ``{"source", "path", "entries": [{"node_id", "browse_path",
    "data_type", "unit", "description", "supported", "problem",
    "configured"}], "truncated": bool}``. Every variable below ``path``
    (browse names joined by ``/`` below Objects; None or "" for Objects), on
    a short read-only session of its own (the collecting session is never
    disturbed). One browse per source at a time, and a result is reused for
    :data:`BROWSE_CACHE_S` seconds, so many TUIs cost the controller one
    browse. Allowed to viewers: it reads nothing the tag file does not allow.
``{"op": "add_tags", "source": str, "tags": [{"node_id": str, "name": str?,
"unit": str?, "sampling_interval_ms": int?}]}``
    -> ``{"ok": True, "added": [name], "skipped": [{"node_id", "reason"}],
    "file": str, "config_version": str}``. Operators only. The tag file is
    changed as text (the OT engineer's comments and layout stay), the result
    validated with :mod:`edge.config` before anything is written, then written
    atomically (temporary file, fsync, rename) and the agent reloads it. A
    file that changed on disk meanwhile is left alone (error: try again).
``{"op": "reload"}``
    -> ``{"ok": True, "config_version", "restarted": [source], "stopped":
    [source], "restart_needed": [section]}``. Operators only. Re-reads the tag
    file; sources whose tags changed get a new session; changes to [site],
    [agent], [spool] or [link] need an agent restart and are reported.
``{"op": "resend", "seq_first": int, "seq_last": int}`` or
``{"op": "resend", "t_first_ns": int, "t_last_ns": int}``
    -> what the agent's ``resend`` hook returns (plus ``"ok": True``).
    Operators only. Where the build has no re-send (the spool's re-send API),
    the reply is an error that says so.

Who is an operator: the kernel's peer credentials of the connection
(SO_PEERCRED), never something the client claims. root, the agent's own user,
and members of the group :data:`OPERATOR_GROUP` (``tidegate-ops``; override
with the agent's environment variable ``TIDEGATE_OPERATOR_GROUP``). Every
operator action is recorded as an EVENT (it crosses the diode to IT too).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import grp
import os
import pwd
import time
import tomllib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.config import AgentConfig, ConfigError, agent_config_from_dict, load_agent_config
from edge.status import Peer, StatusServer

if TYPE_CHECKING:
    from edge.agent import Agent

__all__ = [
    "BROWSE_CACHE_S",
    "MAX_BROWSE_ENTRIES",
    "NotAvailable",
    "OPERATOR_GROUP",
    "Control",
    "TagFileError",
    "add_tags_text",
    "operator_status",
    "write_tag_file",
]

OPERATOR_GROUP = "tidegate-ops"
BROWSE_CACHE_S = 30.0
BROWSE_TIMEOUT_S = 20.0
MAX_BROWSE_ENTRIES = 20_000
MAX_ADD = 5_000
_RESEND_KEYS = (("seq_first", "seq_last"), ("t_first_ns", "t_last_ns"))
_TAG_KEYS = {"node_id", "name", "unit", "description", "sampling_interval_ms", "queue_size"}


class NotAvailable(LookupError):
    """An op this build cannot do (reported to the operator, not logged as a crash)."""


class TagFileError(ValueError):
    """The tag file cannot be changed as asked (message names file and reason)."""


# ------------------------------------------------------------------ permissions


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _peer_groups(peer: Peer) -> set[int]:
    """The peer's primary and supplementary groups (from /proc, which has the
    groups its login session really holds)."""
    groups = {peer.gid} if peer.gid >= 0 else set()
    if peer.pid > 0:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{peer.pid}/status").read_text().splitlines():
                if line.startswith("Groups:"):
                    groups.update(int(g) for g in line.split()[1:])
                    break
    return groups


def operator_status(peer: Peer) -> tuple[bool, str]:
    """(may this peer change things, why) from its kernel credentials."""
    if peer.uid < 0:
        return False, "the connection carries no credentials"
    if peer.uid == 0:
        return True, "root"
    if peer.uid == os.geteuid():
        return True, "same user as the agent"
    group = os.environ.get("TIDEGATE_OPERATOR_GROUP", OPERATOR_GROUP)
    try:
        g = grp.getgrnam(group)
    except KeyError:
        return False, f"no group {group!r} on this box"
    user = _user_name(peer.uid)
    if g.gr_gid in _peer_groups(peer) or user in g.gr_mem:
        return True, f"member of {group!r}"
    return False, f"{user} is not in group {group!r}"


# ------------------------------------------------------------------- tag file


def _toml_str(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def add_tags_text(text: str, source: str, tags: list[dict[str, Any]], origin: str,
                  base: Path | None, who: str = "") -> tuple[str, AgentConfig, list[str], list[dict[str, str]]]:
    """The tag file's text with ``[[tags]]`` blocks appended for ``tags`` of
    ``source``, validated. Returns (new text, its config, names added,
    skipped). Nodes already configured for the source are skipped, not
    duplicated. Raises ConfigError/TagFileError and changes nothing."""
    try:
        current = agent_config_from_dict(tomllib.loads(text), origin=origin, base=base)
    except tomllib.TOMLDecodeError as e:
        raise TagFileError(f"{origin}: not valid TOML as it is on disk ({e}); fix it first") from None
    if source not in {s.name for s in current.sources}:
        raise TagFileError(f"{origin}: no source named {source!r}")
    have = {t.node_id for t in current.tags if t.source == source}
    blocks: list[str] = []
    added: list[str] = []
    skipped: list[dict[str, str]] = []
    for t in tags:
        if not isinstance(t, dict) or not isinstance(t.get("node_id"), str):
            raise TagFileError("each tag must be a map with a string 'node_id'")
        unknown = set(t) - _TAG_KEYS
        if unknown:
            raise TagFileError(f"tag {t['node_id']!r}: unknown key {sorted(unknown)[0]!r}")
        nid = t["node_id"]
        if nid in have:
            skipped.append({"node_id": nid, "reason": "already in the tag file"})
            continue
        have.add(nid)
        lines = ["[[tags]]", f"source = {_toml_str(source)}", f"node_id = {_toml_str(nid)}"]
        for key in ("name", "unit", "description"):
            if t.get(key) is not None:
                lines.append(f"{key} = {_toml_str(str(t[key]))}")
        for key in ("sampling_interval_ms", "queue_size"):
            v = t.get(key)
            if v is not None:
                if isinstance(v, bool) or not isinstance(v, int):
                    raise TagFileError(f"tag {nid!r}: {key} must be an integer")
                lines.append(f"{key} = {v}")
        blocks.append("\n".join(lines))
        added.append(str(t.get("name") or nid))
    if not blocks:
        return text, current, added, skipped
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    head = f"# {len(blocks)} tag(s) of source {source!r} added{f' by {who}' if who else ''} " \
           f"with tidegate, {stamp}"
    new_text = text.rstrip("\n") + "\n\n" + head + "\n" + "\n\n".join(blocks) + "\n"
    cfg = agent_config_from_dict(tomllib.loads(new_text), origin=origin, base=base)
    return new_text, cfg, added, skipped


def write_tag_file(path: Path, text: str, expect: bytes) -> None:
    """Replace ``path`` with ``text`` atomically, only if it still holds
    ``expect``; mode (and, where allowed, owner) are kept."""
    try:
        if path.read_bytes() != expect:
            raise TagFileError(f"{path}: changed on disk while tags were being added; nothing "
                               "written, try again")
        st = path.stat()
    except FileNotFoundError:
        raise TagFileError(f"{path}: the tag file is gone") from None
    tmp = path.with_name(f".{path.name}.tidegate-tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, st.st_mode & 0o7777)
    except PermissionError:
        raise TagFileError(f"{path}: the agent may not write in {path.parent} (permission denied)") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


# -------------------------------------------------------------------- control

Op = Callable[[dict[str, Any], Peer], Awaitable[dict[str, Any]]]


class Control:
    """The agent's operator ops; :meth:`register` puts them on a StatusServer."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._browse_cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._browse_locks: dict[str, asyncio.Lock] = {}
        self._file_lock = asyncio.Lock()

    def register(self, server: StatusServer) -> None:
        ops: dict[str, Op] = {"whoami": self.whoami, "browse": self.browse, "add_tags": self.add_tags,
                              "reload": self.reload, "resend": self.resend}
        for name, fn in ops.items():
            server.register(name, fn)

    # -- helpers
    def _require_operator(self, peer: Peer, what: str) -> str:
        ok, reason = operator_status(peer)
        if not ok:
            raise PermissionError(f"{what} needs an operator ({reason}); viewers are read-only")
        return _user_name(peer.uid)

    def _event(self, kind: str, **detail: Any) -> None:
        self.agent._on_event(kind, detail)

    def _config_path(self) -> Path:
        origin = self.agent.cfg.origin
        if origin.startswith("<"):
            raise TagFileError("the agent was started without a tag file; nothing to change")
        return Path(origin)

    # -- ops
    async def whoami(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        ok, reason = operator_status(peer)
        return {"uid": peer.uid, "user": _user_name(peer.uid) if peer.uid >= 0 else "",
                "operator": ok, "reason": reason}

    async def browse(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        from edge.opcua import browse

        source = req.get("source")
        path = req.get("path") or ""
        if not isinstance(source, str) or not isinstance(path, str):
            raise ValueError("browse: 'source' and 'path' must be strings")
        src = next((s for s in self.agent.cfg.sources if s.name == source), None)
        if src is None:
            raise LookupError(f"browse: no source named {source!r}")
        key = (source, path.strip("/"))
        lock = self._browse_locks.setdefault(source, asyncio.Lock())
        async with lock:  # one browse session per source at a time
            hit = self._browse_cache.get(key)
            if hit is None or time.monotonic() - hit[0] > BROWSE_CACHE_S:
                try:
                    entries = await asyncio.wait_for(browse(src.endpoint, path or None), BROWSE_TIMEOUT_S)
                except (TimeoutError, asyncio.TimeoutError):
                    raise TimeoutError(f"browse {src.endpoint}: no answer within {BROWSE_TIMEOUT_S:.0f}s") \
                        from None
                except (OSError, ConnectionError) as e:
                    raise ConnectionError(f"browse {src.endpoint}: {e or type(e).__name__}") from None
                rows = [dataclasses.asdict(e) for e in entries[:MAX_BROWSE_ENTRIES]]
                hit = (time.monotonic(), {"source": source, "path": key[1], "entries": rows,
                                          "truncated": len(entries) > MAX_BROWSE_ENTRIES})
                self._browse_cache[key] = hit
        reply = dict(hit[1])
        configured = {t.node_id for t in self.agent.cfg.tags if t.source == source}
        for t in self.agent.collector.catalog():
            if t.source == source:
                configured.add(t.node_id)
        reply["entries"] = [dict(e, configured=e["node_id"] in configured) for e in reply["entries"]]
        return reply

    async def add_tags(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        who = self._require_operator(peer, "adding tags")
        source, tags = req.get("source"), req.get("tags")
        if not isinstance(source, str) or not isinstance(tags, list) or not tags:
            raise ValueError("add_tags: needs 'source' and a non-empty list 'tags'")
        if len(tags) > MAX_ADD:
            raise ValueError(f"add_tags: at most {MAX_ADD} tags at once")
        path = self._config_path()
        async with self._file_lock:
            try:
                raw = path.read_bytes()
            except OSError as e:
                raise TagFileError(f"{path}: cannot read the tag file ({e.strerror})") from None
            text = raw.decode("utf-8", errors="strict")
            new_text, _, added, skipped = add_tags_text(text, source, tags, str(path), path.resolve().parent, who)
            if added:
                write_tag_file(path, new_text, raw)
                self._event("operator_add_tags", user=who, source=source, count=len(added),
                            names=", ".join(added[:10]), file=str(path))
                reloaded = await self._apply(load_agent_config(path))
            else:
                reloaded = {"config_version": self.agent.config_version}
        return {"ok": True, "added": added, "skipped": skipped, "file": str(path),
                "config_version": reloaded["config_version"]}

    async def reload(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        who = self._require_operator(peer, "reloading the tag file")
        return await self.reload_file(who)

    async def reload_file(self, who: str = "signal") -> dict[str, Any]:
        """Re-read the tag file and apply it (also on SIGHUP)."""
        path = self._config_path()
        async with self._file_lock:
            try:
                cfg = load_agent_config(path)
            except ConfigError as e:
                self._event("config_rejected", user=who, reason=str(e))
                raise
            result = await self._apply(cfg)
        return {"ok": True, **result}

    async def _apply(self, new: AgentConfig) -> dict[str, Any]:
        from edge.agent import config_version

        agent = self.agent
        old = agent.cfg
        restart_needed = [s for s in ("site", "agent", "spool", "link") if getattr(old, s) != getattr(new, s)]

        def wants(cfg: AgentConfig, name: str) -> tuple[Any, ...]:
            return (next((s for s in cfg.sources if s.name == name), None),
                    [t for t in cfg.tags if t.source == name],
                    [g for g in cfg.tag_groups if g.source == name])

        merged = dataclasses.replace(old, sources=new.sources, tags=new.tags, tag_groups=new.tag_groups)
        old_names = {s.name for s in old.sources}
        new_names = {s.name for s in new.sources}
        changed = sorted(n for n in new_names if n not in old_names or wants(old, n) != wants(new, n))
        stopped = sorted(old_names - new_names)
        agent.cfg = merged
        agent.set_bounds(merged.tags)
        open_spans = {name: await agent.stop_session(name) for name in stopped + changed}
        for name in changed:
            agent.start_session(next(s for s in new.sources if s.name == name), resume=open_spans[name])
        version = config_version(merged)
        if version != agent.config_version:
            agent.config_version = version
            agent._meta_at = float("-inf")  # a fresh META carries the new version
        self._event("config_reloaded", version=version, restarted=",".join(changed) or "-",
                    stopped=",".join(stopped) or "-",
                    restart_needed=",".join(restart_needed) or "-")
        return {"config_version": version, "restarted": changed, "stopped": stopped,
                "restart_needed": restart_needed}

    async def resend(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        rng: dict[str, int] = {}
        for first, last in _RESEND_KEYS:
            if first in req or last in req:
                a, b = req.get(first), req.get(last)
                if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (a, b)):
                    raise ValueError(f"resend: {first} and {last} must both be non-negative integers")
                assert isinstance(a, int) and isinstance(b, int)
                if a > b:
                    raise ValueError(f"resend: {first} must not be after {last}")
                rng = {first: a, last: b}
                break
        else:
            raise ValueError("resend: give seq_first and seq_last, or t_first_ns and t_last_ns")
        who = self._require_operator(peer, "re-sending")
        hook: Callable[..., Any] | None = getattr(self.agent, "resend", None)
        if hook is None:
            raise NotAvailable("re-send is not available in this build: the spool has no "
                               "re-send API yet")
        result = hook(**rng)
        if asyncio.iscoroutine(result):
            result = await result
        self._event("operator_resend", user=who, **rng)
        reply: dict[str, Any] = {"ok": True, **rng}
        if isinstance(result, dict):
            reply.update(result)
        return reply


