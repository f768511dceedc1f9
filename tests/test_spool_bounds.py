"""A full OT spool drops its oldest frames: the ones already sent go quietly,
the unsent ones are named in a GAP frame (seqs, tags, times) that crosses the
real UDP link and lands in the zarr batches IT reads."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from edge import _core
from edge.config import receiver_config_from_dict
from edge.datasets import list_gaps
from edge.frames import decode_gap, encode_meta
from edge.receiver import Receiver

sys.path.insert(0, str(Path(__file__).parent))
from spoolhelp import TAGS, data_frame, free_udp_port, wait_for  # noqa: E402

SEG = 8 << 10


def test_link_outage_overflow_gap_reaches_zarr(tmp_path: Path) -> None:
    ot = _core.Spool(str(tmp_path / "ot"), 7, segment_bytes=SEG, max_bytes=4 * SEG,
                     release_cursor="sent", retain_released_s=3600.0)
    port = free_udp_port()
    cfg = receiver_config_from_dict({"site": {"name": "north"}, "receiver": {
        "bind": f"127.0.0.1:{port}", "spool": str(tmp_path / "it"),
        "datasets": str(tmp_path / "ds"), "batch_seconds": 600}})
    rx = Receiver(cfg)
    stop = threading.Event()
    t = threading.Thread(target=rx.run, args=(stop,))
    t.start()
    info: dict[int, tuple[set[int], int]] = {}

    def append(n: int, start: int) -> None:
        for i in range(start, start + n):
            payload, tags, ts = data_frame(i)
            info[ot.append(_core.FRAME_DATA, ts, ts, payload)] = (tags, ts)
        ot.commit()

    try:
        # Link up: the catalog and some data reach IT.
        tx = _core.DiodeSender(ot, f"127.0.0.1:{port}", 0)
        ot.append(_core.FRAME_META, 0, 0, encode_meta("north", "v1", TAGS))
        append(20, 0)
        wait_for("first frames sent", tx.idle)
        tx.stop()
        sent = ot.get_cursor("sent")
        assert sent == 21
        # Link down: the spool fills and drops its oldest segments.
        append(600, 20)
        st = ot.stats()
        assert st["bytes"] <= 4 * SEG and st["capacity_bytes"] == 4 * SEG, st
        assert st["retired_frames"] == 21 and st["dropped_frames"] > 200 and st["gap_frames"] >= 1, st
        assert st["unreleased_frames"] == st["frames"], st
        entries, _ = ot.read_entries(0, 100_000)
        held = {lsn for lsn, _ in entries}
        gaps = [decode_gap(_core.parse_frame(raw).payload) for _, raw in entries
                if _core.parse_frame(raw).kind == _core.FRAME_GAP]
        g = gaps[-1]
        assert (g.reason, g.seq_first) == ("spool_full", sent), g
        assert g.seq_last is not None
        lost = [info[lsn] for lsn in range(g.seq_first, g.seq_last + 1) if lsn in info]
        assert set(g.tags) == set().union(*(tags for tags, _ in lost))
        assert (g.t_first_ns, g.t_last_ns) == (min(ts for _, ts in lost), max(ts for _, ts in lost))
        assert all(lsn in held or sent <= lsn <= g.seq_last for lsn in range(sent, ot.next_lsn()))
        # Link back: what is held and the GAP cross; IT records the loss.
        tx = _core.DiodeSender(ot, f"127.0.0.1:{port}", 0)
        wait_for("backlog sent", tx.idle)
        wait_for("receiver caught up", lambda: rx.counters["gap_frames"] >= 1
                 and rx.counters["data_frames"] == 20 + sum(1 for lsn in held if lsn in info))
        tx.stop()
    finally:
        stop.set()
        t.join(timeout=60)
        ot.close()
    landed = [x for x in list_gaps(tmp_path / "ds", "north") if x.reason == "spool_full"]
    assert any((x.seq_first, x.seq_last) == (g.seq_first, g.seq_last) for x in landed), landed
    assert {n for x in landed for n in x.tags} == {f"T{i}" for i in g.tags}
