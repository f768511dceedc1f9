"""Crash safety: a writer process is killed with SIGKILL at random moments,
again and again on the same spool; after each kill the spool must open and
hold every frame the writer was told was durable, byte for byte (or, with a
byte bound, name it in a GAP frame), and every frame it holds must be intact.

SIGKILL keeps the page cache, so this checks the process-crash path (torn
buffers, half-written segments, the lock, recovery on open); torn and corrupt
bytes as a power cut leaves them are covered in core_rs/src/spool/tests_recover.rs.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge import _core
from edge.frames import decode_gap

sys.path.insert(0, str(Path(__file__).parent))
from spool_writer import BOUND, SEGMENT, payload  # noqa: E402

WRITER = Path(__file__).with_name("spool_writer.py")
ROOT = Path(__file__).resolve().parent.parent


def run_and_kill(spool: Path, mode: str, seed: int, after_s: float) -> int:
    """Start the writer, SIGKILL it after `after_s`; the highest durable LSN it reported."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, str(WRITER), str(spool), mode, str(seed)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    reported = [0]

    def read() -> None:
        assert p.stdout is not None
        for line in p.stdout:
            reported[0] = max(reported[0], int(line))

    t = threading.Thread(target=read, daemon=True)
    t.start()
    time.sleep(after_s)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    t.join(timeout=30)
    assert p.returncode == -signal.SIGKILL, p.stderr.read() if p.stderr else ""
    return reported[0]


def check(spool: Path, mode: str, durable: int) -> int:
    """Open the spool as a fresh process would and check it; returns frames held."""
    sp = _core.Spool(str(spool), 5, segment_bytes=SEGMENT, max_bytes=BOUND if mode == "bounded" else 0)
    try:
        assert sp.next_lsn() >= durable, (sp.stats(), durable)
        held: set[int] = set()
        named: set[int] = set()
        pos = 0
        while True:
            entries, nxt = sp.read_entries(pos, 4096)
            for lsn, raw in entries:
                f = _core.parse_frame(raw)  # CRC-checked
                assert f.seq == lsn
                if f.kind == _core.FRAME_GAP:
                    g = decode_gap(f.payload)
                    assert g.reason == "spool_full" and g.seq_first is not None and g.seq_last is not None
                    named.update(range(g.seq_first, g.seq_last + 1))
                else:
                    assert f.payload == payload(lsn), f"LSN {lsn} corrupted"
                held.add(lsn)
            if nxt == pos:
                break
            pos = nxt
        missing = [lsn for lsn in range(durable) if lsn not in held and lsn not in named]
        assert not missing, f"durable frames lost: {missing[:10]} (of {len(missing)})"
        if mode != "bounded":
            assert sp.stats()["first_lsn"] == 0
        return len(held)
    finally:
        sp.close()


@pytest.mark.parametrize("mode", ["commit", "group", "bounded"])
def test_kill_9_loses_nothing_reported_durable(tmp_path: Path, mode: str) -> None:
    rng = random.Random(f"crash-{mode}")
    spool = tmp_path / "spool"
    durable = 0
    rounds = 0
    deadline = time.monotonic() + 25
    while rounds < 8 and time.monotonic() < deadline:
        reported = run_and_kill(spool, mode, rng.randrange(1 << 30), rng.uniform(0.15, 0.6))
        durable = max(durable, reported)
        held = check(spool, mode, durable)
        print(f"round {rounds}: durable {durable}, held {held}")
        rounds += 1
    assert rounds >= 3
    assert durable > 0, "the writer never reported a durable frame"
    if mode == "bounded":
        sp = _core.Spool(str(spool), 5, segment_bytes=SEGMENT, max_bytes=BOUND)
        st = sp.stats()
        sp.close()
        assert st["bytes"] <= BOUND and st["first_lsn"] > 0, st


def test_corrupt_record_mid_segment_is_skipped_with_a_gap(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    sp = _core.Spool(str(path), 5, segment_bytes=SEGMENT)
    for lsn in range(200):
        sp.append(_core.FRAME_DATA, lsn, lsn, payload(lsn))
    sp.commit()
    sp.close()
    first = sorted(path.glob("seg-*.tgs"))[0]
    data = bytearray(first.read_bytes())
    # Damage record 3's payload (the frames before it are 52 + len(payload) bytes each).
    off = sum(_core.HEADER_LEN + len(payload(lsn)) for lsn in range(3)) + _core.HEADER_LEN + 5
    data[off] ^= 0x55
    first.write_bytes(bytes(data))
    sp = _core.Spool(str(path), 5, segment_bytes=SEGMENT)  # opens: no error
    st = sp.stats()
    assert st["corrupt_records"] == 1 and st["gap_frames"] == 1 and st["truncated_bytes"] == 0, st
    entries, _ = sp.read_entries(0, 1000)
    lsns = [lsn for lsn, _ in entries]
    assert 3 not in lsns and lsns[:4] == [0, 1, 2, 4] and lsns[-1] == 200
    gap = decode_gap(_core.parse_frame(entries[-1][1]).payload)
    assert (gap.reason, gap.seq_first, gap.seq_last, gap.tags) == ("spool_corrupt", 3, 3, [])
    assert (gap.t_first_ns, gap.t_last_ns) == (2, 4)
    for lsn, raw in entries[:-1]:
        assert _core.parse_frame(raw).payload == payload(lsn)
    sp.close()
