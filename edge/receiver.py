"""The IT-side receiver: the Rust diode receiver lands verified frames in the
IT-side spool; this loop reads them back in spool order and turns them into
zarr batches. The spool cursor "zarr" moves only after a batch is published,
so a receiver that stops at any point resumes without holes or duplicates.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from edge import _core, systemd
from edge.config import ReceiverConfig
from edge.datasets import DatasetWriter
from edge.frames import PayloadError, decode_data, decode_gap, decode_meta, unpack
from edge.spools import open_receiver_spool

CURSOR = "zarr"
READ_BATCH = 512
POLL_S = 0.1
# On stop: wait until the link has been quiet this long, so frames in flight land.
QUIET_S = 1.0
# After a failed publication (store down, disk full): first pause, and the longest.
PUBLISH_RETRY_S = 2.0
PUBLISH_RETRY_MAX_S = 60.0


class Receiver:
    def __init__(self, cfg: ReceiverConfig) -> None:
        self.cfg = cfg
        self.spool = open_receiver_spool(cfg.receiver)
        # The writer's identity in the site's claim: this host and this IT spool (the
        # batches' LSN ranges refer to it), so a second receiver of the site is refused.
        self.writer = DatasetWriter(cfg.receiver.datasets, cfg.site.name, cfg.receiver.batch_seconds,
                                    lateness_seconds=cfg.receiver.lateness_seconds,
                                    storage_options=cfg.receiver.s3.storage_options(),
                                    owner=f"{socket.gethostname()}:{Path(cfg.receiver.spool).resolve()}")
        # The gap ledger lives with the IT spool it describes.
        self.link = _core.DiodeReceiver(cfg.receiver.bind, self.spool, key_file=cfg.receiver.key_file,
                                        ledger=cfg.receiver.spool / "link.ledger")
        self.counters = {"frames": 0, "data_frames": 0, "values": 0, "meta_frames": 0,
                         "gap_frames": 0, "heartbeat_frames": 0, "event_frames": 0,
                         "bad_payloads": 0, "seq_missing": 0, "publish_errors": 0}
        self._publish_retry_at = 0.0
        self._publish_backoff = 0.0
        self.last_heartbeat: dict[str, Any] = {}
        self._expected_seq: dict[int, int] = {}  # per sender session: the next seq
        self._pos = self.spool.get_cursor(CURSOR)
        self._replay_catalog()

    def _replay_catalog(self) -> None:
        """Learn the newest tag catalog from META frames before the cursor."""
        pos = 0
        while pos < self._pos:
            entries, nxt = self.spool.read_entries(pos, READ_BATCH)
            for lsn, raw in entries:
                if lsn >= self._pos:
                    break
                f = _core.parse_frame(raw)
                if f.kind == _core.FRAME_META:
                    self._apply_meta(f)
            if nxt == pos:
                break
            pos = nxt

    def _apply_meta(self, f: _core.Frame) -> None:
        meta = decode_meta(f.payload)
        self.writer.set_catalog(meta.tags, meta.config_version)

    def _track_seq(self, f: _core.Frame) -> None:
        # Frames of one spool carry consecutive seqs; a hole is a frame not (yet)
        # stored. The link's gap ledger names exact gaps and writes GAP frames
        # for seqs lost for good (handled below like any GAP frame).
        expected = self._expected_seq.get(f.session_id)
        if expected is not None and f.seq > expected:
            self.counters["seq_missing"] += f.seq - expected
        self._expected_seq[f.session_id] = max(expected or 0, f.seq + 1)

    def handle(self, raw: bytes, lsn: int) -> None:
        f = _core.parse_frame(raw)
        self.counters["frames"] += 1
        self._track_seq(f)
        try:
            if f.kind == _core.FRAME_DATA:
                batch = decode_data(f.payload)
                self.writer.add(batch, lsn, session_id=f.session_id, seq=f.seq)
                self.counters["data_frames"] += 1
                self.counters["values"] += len(batch)
            elif f.kind == _core.FRAME_META:
                self._apply_meta(f)
                self.counters["meta_frames"] += 1
                self.writer.note_lsn(lsn)
            elif f.kind == _core.FRAME_GAP:
                g = decode_gap(f.payload)
                self.writer.add_gap(g.reason, g.tags, g.t_first_ns, g.t_last_ns, g.seq_first, g.seq_last,
                                    lsn=lsn)
                self.counters["gap_frames"] += 1
            elif f.kind == _core.FRAME_HEARTBEAT:
                self.last_heartbeat = unpack(f.payload, "HEARTBEAT")
                self.counters["heartbeat_frames"] += 1
                self.writer.note_lsn(lsn)
            elif f.kind == _core.FRAME_EVENT:
                self.counters["event_frames"] += 1
                self.writer.note_lsn(lsn)
        except (PayloadError, _core.CodecError) as e:
            # A frame that passed its CRC but whose payload does not decode is
            # a sender bug, not line noise: say so and keep going.
            self.counters["bad_payloads"] += 1
            self.writer.note_lsn(lsn)
            print(f"tidegate receive: frame seq {f.seq} (lsn {lsn}): {e}", file=sys.stderr)

    def pump(self) -> int:
        """Process what the spool holds beyond our position; returns how far it got (0: nothing new)."""
        # LSNs the spool no longer holds (dropped, corrupt) are skipped; the
        # GAP frames the spool wrote for them come later in LSN order.
        entries, nxt = self.spool.read_entries(self._pos, READ_BATCH)
        for lsn, raw in entries:
            self.handle(raw, lsn)
        moved = max(0, nxt - self._pos)
        self._pos += moved
        return moved

    def publish(self, final: bool = False) -> None:
        if final:
            self.writer.flush()
        elif time.monotonic() >= self._publish_retry_at:
            try:
                self.writer.publish_due(time.time_ns())
                self._publish_backoff = 0.0
            except OSError as e:
                # Store unreachable, disk full...: the windows stay pending and the
                # cursor stays put, so nothing is lost; retry with a growing pause.
                self.counters["publish_errors"] += 1
                self._publish_backoff = min(max(2 * self._publish_backoff, PUBLISH_RETRY_S), PUBLISH_RETRY_MAX_S)
                self._publish_retry_at = time.monotonic() + self._publish_backoff
                print(f"tidegate receive: publishing failed, retrying in {self._publish_backoff:.0f}s: {e}",
                      file=sys.stderr, flush=True)
        # The cursor is where a restart resumes reading: one past the last frame
        # whose samples are all in published batches.
        done = self.writer.published_lsn()
        if done >= 0:
            self.spool.set_cursor(CURSOR, done + 1)

    def run(self, stop: threading.Event) -> dict[str, Any]:
        systemd.ready(f"listening on {self.link.local_addr}")
        while not stop.is_set():
            systemd.watchdog()
            if self.pump() == 0:
                self.publish()
                stop.wait(POLL_S)
        systemd.stopping("landing the frames in flight")
        # Let frames still on the wire land, then drain and publish everything.
        last = self.link.stats()["packets"]
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < QUIET_S:
            time.sleep(0.1)
            now = self.link.stats()["packets"]
            if now != last:
                last, quiet_since = now, time.monotonic()
        self.link.stop()
        while self.pump():
            pass
        self.publish(final=True)
        stats = {"counters": dict(self.counters), "link": self.link.stats(), "spool": self.spool.stats()}
        self.spool.close()
        return stats


def run_receiver(cfg: ReceiverConfig, stats_out: Path | None = None) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    rx = Receiver(cfg)
    print(f"tidegate receive: site {cfg.site.name!r}, listening on {rx.link.local_addr}, "
          f"datasets in {cfg.receiver.datasets}", file=sys.stderr, flush=True)
    stats = rx.run(stop)
    if stats_out is not None:
        tmp = stats_out.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats, indent=2, default=str))
        os.replace(tmp, stats_out)
    return 0
