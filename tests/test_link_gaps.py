"""The link's gap ledger reaches IT: frames lost on the link beyond what FEC
and the carousel can repair are named by the receiver and land as gap
records in the zarr datasets, with exact sequence numbers; frames the
carousel recovers leave no gap. Real UDP on loopback through a lossy relay."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edge import _core
from edge.bench.lossyrelay import LossyRelay
from edge.config import receiver_config_from_dict
from edge.datasets import list_gaps
from edge.frames import pack
from edge.receiver import Receiver


def wait_for(what: str, cond: Callable[[], bool], timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def event(ot: _core.Spool, i: int) -> None:
    t = 1_700_000_000_000_000_000 + i * 1_000_000_000
    ot.append(_core.FRAME_EVENT, t, t, pack({"time_ns": t, "kind": "test", "i": i}))
    ot.commit()


class Chain:
    """OT spool + sender -> lossy relay -> the real Python receiver (in a thread)."""

    def __init__(self, tmp: Path, carousel_s: list[float]) -> None:
        port = free_port()
        cfg = receiver_config_from_dict({
            "site": {"name": "gap-site"},
            "receiver": {"bind": f"127.0.0.1:{port}", "spool": str(tmp / "it"),
                         "datasets": str(tmp / "datasets"), "batch_seconds": 60}})
        self.rx = Receiver(cfg)
        self.relay = LossyRelay(("127.0.0.1", port), seed=5)
        self.ot = _core.Spool(str(tmp / "ot"), 3)
        self.tx = _core.DiodeSender(self.ot, self.relay.addr, 20_000_000, carousel_s=carousel_s,
                                    heartbeat_s=0.2)
        self.stop = threading.Event()
        self.result: dict[str, object] = {}
        self.thread = threading.Thread(target=lambda: self.result.update(self.rx.run(self.stop)))
        self.thread.start()

    def close(self) -> dict[str, object]:
        self.tx.stop()
        self.ot.close()
        self.stop.set()
        self.thread.join(30)
        self.relay.close()
        return self.result


def test_lost_frames_become_exact_gap_records(tmp_path: Path) -> None:
    c = Chain(tmp_path, carousel_s=[])  # no second chance: loss is final
    for i in range(5):
        event(c.ot, i)
    wait_for("first frames", lambda: c.rx.link.stats()["frames_ok"] == 5)
    c.relay.blackout(1.5)
    for i in range(5, 9):  # seqs 5..8 vanish in the blackout
        event(c.ot, i)
    wait_for("sent", c.tx.idle)
    time.sleep(1.6)
    event(c.ot, 9)
    t0 = time.monotonic()
    wait_for("gap named", lambda: c.rx.link.stats()["gap_frames"] == 1, timeout=5)
    assert time.monotonic() - t0 < 3.0
    stats = c.close()
    link = stats["link"]
    assert isinstance(link, dict)
    assert link["lost"] == 4 and link["frames_ok"] == 6, link
    gaps = list_gaps(tmp_path / "datasets", "gap-site")
    assert [(g.reason, g.seq_first, g.seq_last) for g in gaps] == [("link_loss", 5, 8)]
    # Dated by the neighbours that did arrive: after seq 4, before seq 9.
    assert gaps[0].t_first_ns == 1_700_000_004_000_000_000
    assert gaps[0].t_last_ns == 1_700_000_009_000_000_000


def test_the_carousel_fills_a_blackout_without_a_gap(tmp_path: Path) -> None:
    c = Chain(tmp_path, carousel_s=[2.5])
    for i in range(3):
        event(c.ot, i)
    wait_for("first frames", lambda: c.rx.link.stats()["frames_ok"] == 3)
    c.relay.blackout(1.0)
    for i in range(3, 6):
        event(c.ot, i)
    wait_for("named missing", lambda: c.rx.link.missing() == [(3, 5)], timeout=3)
    wait_for("carousel", lambda: c.rx.link.stats()["frames_ok"] == 6, timeout=10)
    wait_for("nothing pending", lambda: c.tx.stats()["carousel_pending"] == 0, timeout=10)
    time.sleep(1.5)  # a heartbeat saying "final" plus the grace
    assert c.rx.link.missing() == []
    stats = c.close()
    link = stats["link"]
    assert isinstance(link, dict)
    assert link["lost"] == 0 and link["gap_frames"] == 0, link
    assert list_gaps(tmp_path / "datasets", "gap-site") == []
