"""The IT-side receiver: the Rust diode receiver lands verified frames in the
IT-side spool; this loop reads them back in spool order and turns them into
zarr batches. The spool cursor "zarr" moves only after a batch is published,
so a receiver that stops at any point resumes without holes or duplicates.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from edge import _core
from edge.config import ReceiverConfig
from edge.datasets import DatasetWriter
from edge.frames import PayloadError, decode_data, decode_gap, decode_meta, unpack

CURSOR = "zarr"
READ_BATCH = 512
POLL_S = 0.1
# On stop: wait until the link has been quiet this long, so frames in flight land.
QUIET_S = 1.0


class Receiver:
    def __init__(self, cfg: ReceiverConfig) -> None:
        self.cfg = cfg
        self.spool = _core.Spool(str(cfg.receiver.spool), 0)
        self.writer = DatasetWriter(cfg.receiver.datasets, cfg.site.name, cfg.receiver.batch_seconds)
        # The gap ledger lives with the IT spool it describes.
        self.link = _core.DiodeReceiver(cfg.receiver.bind, self.spool, key_file=cfg.receiver.key_file,
                                        ledger=cfg.receiver.spool / "link.ledger")
        self.counters = {"frames": 0, "data_frames": 0, "values": 0, "meta_frames": 0,
                         "gap_frames": 0, "heartbeat_frames": 0, "event_frames": 0,
                         "bad_payloads": 0, "seq_missing": 0}
        self.last_heartbeat: dict[str, Any] = {}
        self._expected_seq: dict[int, int] = {}  # per sender session: the next seq
        self._pos = self.spool.get_cursor(CURSOR)
        self._replay_catalog()

    def _replay_catalog(self) -> None:
        """Learn the newest tag catalog from META frames before the cursor."""
        pos = 0
        while pos < self._pos:
            frames = self.spool.read(pos, READ_BATCH)
            if not frames:
                break
            for raw in frames[: self._pos - pos]:
                f = _core.parse_frame(raw)
                if f.kind == _core.FRAME_META:
                    self._apply_meta(f)
            pos += len(frames)

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
        """Process what the spool holds beyond our position; returns frames handled."""
        frames = self.spool.read(self._pos, READ_BATCH)
        for raw in frames:
            self.handle(raw, self._pos)
            self._pos += 1
        return len(frames)

    def publish(self, final: bool = False) -> None:
        if final:
            self.writer.flush()
        else:
            self.writer.publish_due(time.time_ns())
        # The cursor is where a restart resumes reading: one past the last frame
        # whose samples are all in published batches.
        done = self.writer.published_lsn()
        if done >= 0:
            self.spool.set_cursor(CURSOR, done + 1)

    def run(self, stop: threading.Event) -> dict[str, Any]:
        while not stop.is_set():
            if self.pump() == 0:
                self.publish()
                stop.wait(POLL_S)
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
