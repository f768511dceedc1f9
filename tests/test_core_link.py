"""edge._core Spool + DiodeSender + DiodeReceiver end to end over loopback UDP."""

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge import _core


def wait_for(what: str, cond: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_spool_append_commit_read_reopen(tmp_path: Path) -> None:
    sp = _core.Spool(str(tmp_path / "ot"), site_id=5, segment_bytes=4096)
    assert sp.site_id == 5 and sp.session_id != 0
    lsns = [sp.append(_core.FRAME_DATA, i, i + 1, bytes([i]) * (i * 10)) for i in range(100)]
    assert lsns == list(range(100))
    assert sp.next_lsn() == 100 and sp.durable_lsn() == 0
    assert sp.read(0) == []
    assert sp.commit() == 100
    frames = sp.read(0, max_frames=1000)
    assert len(frames) == 100
    f = _core.parse_frame(frames[42])
    assert (f.seq, f.site_id, f.session_id, f.payload) == (42, 5, sp.session_id, bytes([42]) * 420)
    st = sp.stats()
    assert set(st) >= {"frames", "bytes", "segments", "next_lsn", "durable_lsn", "duplicates", "truncated_bytes"}
    assert st["frames"] == 100 and st["segments"] > 1
    assert sp.get_cursor("sent") == 0
    sp.set_cursor("sent", 17)
    with pytest.raises(ValueError, match="bad cursor name"):
        sp.set_cursor("../x", 1)
    sp.close()
    with pytest.raises(_core.SpoolError, match="closed"):
        sp.append(_core.FRAME_DATA, 0, 0, b"")

    sp2 = _core.Spool(str(tmp_path / "ot"), 5, session_id=1234)
    assert sp2.session_id == 1234
    assert sp2.read(0, 1000) == frames
    assert sp2.get_cursor("sent") == 17
    sp2.close()


def test_spool_torn_tail(tmp_path: Path) -> None:
    sp = _core.Spool(str(tmp_path), 1)
    for i in range(10):
        sp.append(_core.FRAME_EVENT, 0, 0, b"event %d" % i)
    sp.commit()
    committed = sp.read(0)
    sp.close()
    del sp
    seg = sorted(tmp_path.glob("seg-*.tgs"))[-1]
    with open(seg, "ab") as fh:
        fh.write(b"TDGF\x01\x01 torn")
    sp = _core.Spool(str(tmp_path), 1)
    assert sp.stats()["truncated_bytes"] == 11
    assert sp.read(0) == committed
    assert sp.append(_core.FRAME_EVENT, 0, 0, b"next") == 10


def test_spool_append_frame_dedupes(tmp_path: Path) -> None:
    sp = _core.Spool(str(tmp_path), 0)
    f1 = _core.build_frame(_core.FRAME_META, 3, 77, 0, 0, 0, b"meta")
    assert sp.append_frame(f1) is True
    assert sp.append_frame(f1) is False
    assert sp.stats()["duplicates"] == 1
    with pytest.raises(_core.FrameError, match="CRC32C mismatch"):
        sp.append_frame(f1[:-1] + b"X")
    sp.commit()
    assert sp.read(0) == [f1]


def test_diode_end_to_end(tmp_path: Path) -> None:
    ot = _core.Spool(str(tmp_path / "ot"), 9, segment_bytes=1 << 20)
    it = _core.Spool(str(tmp_path / "it"), 0)
    rx = _core.DiodeReceiver("127.0.0.1:0", it)
    host, port = rx.local_addr.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    payloads = [os.urandom(n) for n in [0, 1, 1000, 1444, 1445, 5000, 150_000] * 20]
    for i, p in enumerate(payloads):
        ot.append(_core.FRAME_DATA, i, i, p)
    ot.commit()
    tx = _core.DiodeSender(ot, rx.local_addr, rate_bps=500_000_000, mtu=1500)

    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(200):
        junk.sendto(os.urandom(i * 7 % 1400), ("127.0.0.1", int(port)))
    junk.close()

    wait_for("sender idle", tx.idle)
    wait_for("IT spool durable", lambda: it.durable_lsn() >= len(payloads))
    ts = tx.stats()
    assert {"frames_sent", "packets_sent", "bytes_sent", "cursor", "backlog"} <= set(ts)
    assert ts["frames_sent"] == len(payloads) and ts["backlog"] == 0 and ts["cursor"] == len(payloads)
    tx.stop()
    assert ot.get_cursor("sent") == len(payloads)
    rx.stop()
    rs = rx.stats()
    keys = {"packets", "bytes", "packets_bad", "frames_ok", "frames_bad", "duplicates", "incomplete_dropped"}
    assert keys <= set(rs)
    assert rs["frames_ok"] == len(payloads) and rs["frames_bad"] == 0
    assert rs["packets_bad"] > 0
    assert it.read(0, 10_000) == ot.read(0, 10_000)
    for i, raw in enumerate(it.read(0, 10_000)):
        f = _core.parse_frame(raw)
        assert f.seq == i and f.site_id == 9 and f.payload == payloads[i]


def test_bad_arguments(tmp_path: Path) -> None:
    sp = _core.Spool(str(tmp_path), 1)
    with pytest.raises(ValueError, match="mtu"):
        _core.DiodeSender(sp, "127.0.0.1:9", 1_000_000, mtu=100)
    with pytest.raises(ValueError, match="resolve"):
        _core.DiodeSender(sp, "no-port-here", 1_000_000)
    with pytest.raises(_core.FrameError, match="unknown kind"):
        sp.append(0, 0, 0, b"")
    with pytest.raises(ValueError):
        _core.Spool(str(tmp_path), 1, session_id=0)


def test_one_spool_per_directory(tmp_path: Path) -> None:
    sp = _core.Spool(str(tmp_path), 1)
    with pytest.raises(_core.SpoolError, match="in use by another Spool"):
        _core.Spool(str(tmp_path), 1)
    sp.close()
    _core.Spool(str(tmp_path), 1).close()


def test_sender_resumes_from_cursor(tmp_path: Path) -> None:
    ot = _core.Spool(str(tmp_path / "ot"), 1)
    it = _core.Spool(str(tmp_path / "it"), 0)
    rx = _core.DiodeReceiver("127.0.0.1:0", it)
    for i in range(30):
        ot.append(_core.FRAME_HEARTBEAT, i, i, b"hb%d" % i)
    ot.commit()
    tx = _core.DiodeSender(ot, rx.local_addr, 10_000_000)
    wait_for("idle", tx.idle)
    tx.stop()
    for i in range(30, 40):
        ot.append(_core.FRAME_HEARTBEAT, i, i, b"hb%d" % i)
    ot.commit()
    tx = _core.DiodeSender(ot, rx.local_addr, 10_000_000)
    wait_for("idle", tx.idle)
    assert tx.stats()["frames_sent"] == 10  # only the new ones
    tx.stop()
    wait_for("it durable", lambda: it.durable_lsn() == 40)
    rx.stop()
    assert rx.stats()["duplicates"] == 0
