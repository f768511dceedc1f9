"""The OT-side agent: OPC UA sessions -> column batches -> DATA frames in the
Rust spool -> the diode sender; plus META and EVENT frames and the
local status socket the TUI reads.

One asyncio loop runs the sessions, the flush loop and the status socket; the
Rust core does the heavy work (encode, fsync, UDP) with the GIL released.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from edge import __version__, _core, systemd
from edge.collect import Collector
from edge.config import AgentConfig, SourceConfig, TagConfig
from edge.control import Control
from edge.frames import Gap, Reducer, encode_data, encode_gap, encode_meta, pack
from edge.memguard import MemoryGuard
from edge.model import CODEC_KINDS, LOSSY_KINDS, ColumnBatch, codec_kinds
from edge.opcua.session import Handover, SourceSession
from edge.resend import handle_resend
from edge.spools import open_agent_spool
from edge.status import StatusServer

# Bytes a sample takes uncompressed: source time, server time, value, status.
RAW_SAMPLE_BYTES = 8 + 8 + 8 + 4
META_EVERY_S = 60.0
DRAIN_TIMEOUT_S = 30.0


def config_version(cfg: AgentConfig) -> str:
    """A short digest of the config, carried in META so IT can tell versions apart."""
    return hashlib.sha256(repr(cfg).encode()).hexdigest()[:12]


class Agent:
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.collector = Collector()
        self.events: deque[dict[str, Any]] = deque(maxlen=200)
        self.started_ns = time.time_ns()
        self.config_version = config_version(cfg)
        self.spool = open_agent_spool(cfg.spool, cfg.site.id)
        self.sender = _core.DiodeSender(self.spool, cfg.link.target,
                                        int(cfg.link.rate_mbit * 1_000_000), cfg.link.mtu,
                                        key_file=cfg.link.key_file, repair_pct=cfg.link.repair_pct,
                                        carousel_s=list(cfg.link.carousel_s))
        self.sessions = [self._make_session(src) for src in cfg.sources]
        self._session_tasks: dict[str, asyncio.Task[None]] = {}
        self.control = Control(self)
        # OT's lossy bounds by (source, node_id), applied once the tag is in the catalog.
        self._bounds = {(t.source, t.node_id): t for t in cfg.tags if t.compression != "none"}
        self._bounded: set[int] = set()
        self.reducer = Reducer()
        self._kinds = codec_kinds([])
        self.counters = {"values": 0, "values_reduced": 0, "data_frames": 0, "data_payload_bytes": 0,
                         "meta_frames": 0, "event_frames": 0, "gap_frames": 0}
        # ack after durable: sessions wait in durable() until a commit covers their samples
        self._durable_values = 0  # collector.values_total covered by the last commit
        self._committed = asyncio.Event()  # set (and replaced) after each flush
        self._flush_wanted = asyncio.Event()
        self._commit_now = False  # a session waits: commit at the next flush, group commit or not
        self._meta_tags = -1
        self._meta_at = 0.0
        self._rate = (time.monotonic(), 0, 0.0)  # (when, values then, values/s)

    def _make_session(self, src: SourceConfig, resume: Handover | None = None) -> SourceSession:
        cfg = self.cfg
        return SourceSession(src, [t for t in cfg.tags if t.source == src.name], self.collector,
                             self._on_event, tag_groups=[g for g in cfg.tag_groups if g.source == src.name],
                             durable=self.durable, on_gap=self._on_gap, resume=resume)

    def start_session(self, src: SourceConfig, session: SourceSession | None = None,
                      resume: Handover | None = None) -> None:
        """Collect from `src`: with the session built at start, or a new one
        (reload) that takes over the span `resume` its predecessor left open."""
        session = session or self._make_session(src, resume)
        self.sessions = [s for s in self.sessions if s.source.name != src.name] + [session]
        self._session_tasks[src.name] = asyncio.create_task(session.run(), name=f"source:{src.name}")

    async def stop_session(self, name: str) -> Handover | None:
        """Stop collecting from source `name`; returns the span its values
        may be missing from, for a successor session to fill or name."""
        task = self._session_tasks.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        gone = [s for s in self.sessions if s.source.name == name]
        self.sessions = [s for s in self.sessions if s.source.name != name]
        return gone[0].handover() if gone else None

    # -- events -------------------------------------------------------------
    def _on_event(self, kind: str, detail: dict[str, Any]) -> None:
        now = time.time_ns()
        text = " ".join(f"{k}={v}" for k, v in detail.items())
        self.events.append({"time_ns": now, "kind": kind, "text": text})
        self.spool.append(_core.FRAME_EVENT, now, now, pack({"time_ns": now, "kind": kind, **detail}))
        self.counters["event_frames"] += 1

    def _on_gap(self, gap: Gap) -> None:
        """A span a source could not deliver: a GAP frame, named for IT."""
        self.spool.append(_core.FRAME_GAP, gap.t_first_ns, gap.t_last_ns, encode_gap(gap))
        self.counters["gap_frames"] += 1
        self.events.append({"time_ns": time.time_ns(), "kind": "gap",
                            "text": f"reason={gap.reason} tags={len(gap.tags)} "
                                    f"span_ms={(gap.t_last_ns - gap.t_first_ns) / 1e6:.0f}"})

    async def durable(self) -> None:
        """Return once every sample collected so far is in a committed spool
        frame (asks the flush loop for a flush now; concurrent callers share
        one commit). SourceSession awaits this before a notification is
        acknowledged to the server."""
        target = self.collector.values_total
        while self._durable_values < target:
            committed = self._committed
            self._commit_now = True
            self._flush_wanted.set()
            await committed.wait()

    # -- frames -------------------------------------------------------------
    def set_bounds(self, tags: list[TagConfig]) -> None:
        """Take the lossy bounds of a reloaded tag file: a changed or new bound
        is applied at the next flush, a removed one makes the tag lossless now
        (the filter releases what it held back)."""
        def key(t: TagConfig) -> tuple[Any, ...]:
            return (t.compression, t.max_error, t.exception_deviation, t.max_hold_s)
        new = {(t.source, t.node_id): t for t in tags if t.compression != "none"}
        for node in self._bounds.keys() | new.keys():
            was, now = self._bounds.get(node), new.get(node)
            if was is not None and now is not None and key(was) == key(now):
                continue
            index = self.collector.index_of(*node)
            if index is None:
                continue
            self._bounded.discard(index)
            if now is None:
                self.reducer.clear(index)
                self.collector.set_compression(index, "none", None, None)
        self._bounds = new

    def _apply_bounds(self) -> None:
        """Give newly catalogued tags the lossy bound their [[tags]] entry sets."""
        if len(self._bounded) == len(self._bounds):
            return
        for info in self.collector.catalog():
            tc = self._bounds.get((info.source, info.node_id))
            if tc is None or info.index in self._bounded:
                continue
            self._bounded.add(info.index)
            kind = CODEC_KINDS.get(info.data_type, 0)
            if kind not in LOSSY_KINDS:
                self._on_event("compression_ignored", {"tag": info.name, "data_type": info.data_type})
                continue
            self.collector.set_compression(info.index, tc.compression, tc.max_error, tc.exception_deviation)
            self.reducer.configure(self.collector.tag(info.index), kind, tc.max_hold_s)

    def _append_meta_if_due(self) -> None:
        tags = self.collector.catalog()
        due = time.monotonic() - self._meta_at >= META_EVERY_S
        if len(tags) == self._meta_tags and not due:
            return
        self._kinds = codec_kinds(tags)
        now = time.time_ns()
        self.spool.append(_core.FRAME_META, now, now,
                          encode_meta(self.cfg.site.name, self.config_version, tags))
        self._meta_tags, self._meta_at = len(tags), time.monotonic()
        self.counters["meta_frames"] += 1

    async def flush(self, final: bool = False) -> None:
        """Move what the sessions collected into the spool and make it durable;
        `final` also releases the samples the lossy filter still holds."""
        self._apply_bounds()
        self._append_meta_if_due()  # before DATA that names new tag indexes
        upto = self.collector.values_total
        seen = self.collector.flush()
        self.counters["values"] += len(seen)
        batch = self.reducer.apply(seen, time.time_ns())
        self.counters["values_reduced"] += len(seen) - len(batch)
        self._append_data(batch)
        if final and self.reducer.active:
            held = self.reducer.flush_all()
            self.counters["values_reduced"] -= len(held)
            self._append_data(held)
        # With group commit on, the spool's own thread syncs (fewer, larger
        # writes on the SD card); a session waiting to acknowledge (ack after
        # durable), a spool without group commit, or the last flush commits now.
        commit = self._commit_now or final or self.cfg.spool.commit_interval_ms == 0
        self._commit_now = False
        if commit:
            if self.spool.next_lsn() != self.spool.durable_lsn():
                await asyncio.to_thread(self.spool.commit)
            self._durable_values = max(self._durable_values, upto)
        committed, self._committed = self._committed, asyncio.Event()
        committed.set()

    def _append_data(self, batch: ColumnBatch) -> None:
        if not len(batch):
            return
        payload = encode_data(batch, self._kinds)
        t0, t1 = batch.time_range()
        self.spool.append(_core.FRAME_DATA, t0, t1, payload)
        self.counters["data_frames"] += 1
        self.counters["data_payload_bytes"] += len(payload)

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        # Sender health goes out as link HEARTBEAT packets from the Rust sender
        # (every second, even while the spool backlog drains), not as spool frames.
        interval = self.cfg.agent.flush_interval_ms / 1000
        next_flush = time.monotonic() + interval
        while not stop.is_set():
            # until the flush interval is up, a session waits for durability, or stop
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._flush_wanted.wait())]
            await asyncio.wait(waits, timeout=max(0.0, next_flush - time.monotonic()),
                               return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            self._flush_wanted.clear()
            if time.monotonic() >= next_flush:
                next_flush = time.monotonic() + interval
            systemd.watchdog()
            await self.flush()

    def resend(self, **rng: int) -> dict[str, Any]:
        """Operator re-send (status op "resend", checked and logged by edge.control):
        queue a seq or time range of the spool on the sender (edge/resend.py)."""
        return handle_resend(self.spool, self.sender, rng)

    # -- status ---------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        now_ns = time.time_ns()
        mono = time.monotonic()
        total = self.counters["values"] + self.collector.pending()
        when, then, rate = self._rate
        if mono - when >= 1.0:
            rate = (total - then) / (mono - when)
            self._rate = (mono, total, rate)
        return {
            "agent": {"site": self.cfg.site.name, "version": __version__, "started_ns": self.started_ns,
                      "now_ns": now_ns, "session_id": self.spool.session_id},
            "sources": [dict(s.state, security_policy=s.source.security_policy) for s in self.sessions],
            "config": {"version": self.config_version, "path": self.cfg.origin},
            "tags": self.collector.latest(),
            "spool": self.spool.stats(),
            "link": self.sender.stats(),
            "rates": {"values_per_s": rate},
            "counters": dict(self.counters),
            "events": list(self.events)[-50:],
        }

    def reload_on_signal(self) -> None:
        """SIGHUP: re-read the tag file (errors become a config_rejected event)."""
        async def reload() -> None:
            with contextlib.suppress(Exception):
                await self.control.reload_file("SIGHUP")
        self._reload_task = asyncio.ensure_future(reload())

    def final_stats(self) -> dict[str, Any]:
        c: dict[str, float] = dict(self.counters)
        c["raw_bytes"] = c["values"] * RAW_SAMPLE_BYTES
        c["compression_ratio"] = c["raw_bytes"] / c["data_payload_bytes"] if c["data_payload_bytes"] else 0.0
        return {"counters": c, "spool": self.spool.stats(), "link": self.sender.stats(),
                "sources": [s.state for s in self.sessions]}

    # -- lifecycle ------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> dict[str, Any]:
        status = StatusServer(str(self.cfg.agent.status_socket), self.snapshot)
        self.control.register(status)
        await status.start()
        for src, session in zip(self.cfg.sources, list(self.sessions)):
            self.start_session(src, session)
        flusher = asyncio.create_task(self._flush_loop(stop), name="flush")
        systemd.ready(f"{len(self.sessions)} sources, status {self.cfg.agent.status_socket}")
        try:
            await stop.wait()
        finally:
            systemd.stopping("draining the spool onto the link")
            for name in list(self._session_tasks):
                await self.stop_session(name)
            await flusher
            await self.flush(final=True)
            await self._drain()
            await asyncio.to_thread(self.sender.stop)
            stats = self.final_stats()
            self.spool.close()
            await status.close()
        return stats

    async def _drain(self) -> None:
        """Give the sender time to put everything durable on the link."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while not self.sender.idle() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


def run_agent(cfg: AgentConfig, stats_out: Path | None = None) -> int:
    async def main() -> tuple[dict[str, Any], int]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        agent = Agent(cfg)
        loop.add_signal_handler(signal.SIGHUP, agent.reload_on_signal)
        print(f"tidegate agent: site {cfg.site.name!r}, {len(cfg.sources)} sources, spool "
              f"{cfg.spool.path}, link {cfg.link.target}, status {cfg.agent.status_socket}",
              file=sys.stderr, flush=True)
        guard = MemoryGuard(cfg.agent.memory_max_mb, lambda: loop.call_soon_threadsafe(stop.set))
        print(f"tidegate agent: {guard.describe()}", file=sys.stderr, flush=True)
        guard.start()
        try:
            return await agent.run(stop), guard.exit_code
        finally:
            guard.stop()

    stats, status = asyncio.run(main())
    if stats_out is not None:
        tmp = stats_out.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats, indent=2, default=str))
        os.replace(tmp, stats_out)
    return status
