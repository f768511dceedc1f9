"""Group commit from Python: ack-after-durable waits on it without holding the
GIL, and many appends share few fdatasyncs."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from edge import _core


def test_wait_durable_from_asyncio(tmp_path: Path) -> None:
    sp = _core.Spool(str(tmp_path / "s"), 1, commit_interval_s=0.2)

    async def main() -> tuple[bool, int]:
        ticks = 0
        lsn = -1
        for i in range(500):
            lsn = sp.append(_core.FRAME_DATA, i, i, b"x" * 100)
        waiter = asyncio.create_task(asyncio.to_thread(sp.wait_durable, lsn, 30.0))
        while not waiter.done():  # the loop keeps running while the thread waits
            ticks += 1
            await asyncio.sleep(0.01)
        return await waiter, ticks

    ok, ticks = asyncio.run(main())
    assert ok and ticks > 0
    st = sp.stats()
    assert st["durable_lsn"] == 500 and 1 <= st["commits"] < 50, st
    sp.close()


def test_wait_durable_releases_the_gil_and_times_out(tmp_path: Path) -> None:
    sp = _core.Spool(str(tmp_path / "s"), 1, commit_interval_s=3600.0)
    lsn = sp.append(_core.FRAME_DATA, 0, 0, b"x")
    counter = [0]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    t0 = time.monotonic()
    assert sp.wait_durable(lsn, 0.3) is False
    stop.set()
    t.join()
    assert time.monotonic() - t0 >= 0.3 and counter[0] > 1000
    assert sp.commit() == 1 and sp.wait_durable(lsn, 0.0) is True
    with pytest.raises(ValueError, match="LSN 9 has not been appended"):
        sp.wait_durable(9)
    with pytest.raises(ValueError, match="timeout: must be a finite number of seconds"):
        sp.wait_durable(lsn, -1.0)
    sp.close()
    with pytest.raises(_core.SpoolError, match="closed"):
        sp.wait_durable(lsn + 1)


def test_bad_options_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 2 x segment_bytes"):
        _core.Spool(str(tmp_path / "a"), 1, segment_bytes=4096, max_bytes=5000)
    with pytest.raises(ValueError, match="max_age_s: must be a finite number"):
        _core.Spool(str(tmp_path / "b"), 1, max_age_s=float("nan"))
    with pytest.raises(ValueError, match="bad cursor name"):
        _core.Spool(str(tmp_path / "c"), 1, release_cursor="../x")
