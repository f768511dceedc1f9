"""Shared bits of the spool tests: real DATA frames, a free UDP port, waiting."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import numpy as np

from edge.frames import encode_data
from edge.model import ColumnBatch, TagInfo

T0 = 1_790_000_000_000_000_000  # 2026-09-21T14:13:20Z
S = 1_000_000_000
TAGS = [TagInfo(index=i, name=f"T{i}", node_id=f"ns=2;s=T{i}", source="plc", data_type="Double")
        for i in range(12)]


def data_frame(i: int) -> tuple[bytes, set[int], int]:
    """DATA payload number i: two samples of tags {i % 5, 5 + i % 7} at T0 + i s."""
    tags = np.array([i % 5, 5 + i % 7], np.uint32)
    t = T0 + i * S
    ns = np.array([t, t], np.int64)
    batch = ColumnBatch(tags, ns, ns, np.zeros(2, np.uint32),
                        np.array([i, i * 3], np.float64).view(np.uint64), np.zeros(2, np.uint8))
    return encode_data(batch), {int(x) for x in tags}, t


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, cond: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)
