"""Type stubs for the Rust core (core_rs, built by maturin as edge._core).

Kept true to core_rs/src/py.rs: `python -m mypy.stubtest edge._core` checks it.
"""

import os
from collections.abc import Sequence
from typing import final

import numpy as np
import numpy.typing as npt

FORMAT_VERSION: int
HEADER_LEN: int
FRAME_DATA: int
FRAME_META: int
FRAME_GAP: int
FRAME_HEARTBEAT: int
FRAME_MANIFEST: int
FRAME_EVENT: int

class FrameError(ValueError):
    """A byte string that is not a valid frame (message names offset and field)."""

class CodecError(ValueError):
    """A DATA payload that cannot be decoded."""

class SpoolError(OSError):
    """The spool directory or a segment in it cannot be used."""

@final
class Frame:
    kind: int
    version: int
    site_id: int
    session_id: int
    seq: int
    t_first_ns: int
    t_last_ns: int
    payload: bytes

def build_frame(
    kind: int,
    site_id: int,
    session_id: int,
    seq: int,
    t_first_ns: int,
    t_last_ns: int,
    payload: bytes,
) -> bytes: ...
def parse_frame(data: bytes) -> Frame: ...
def encode_chunk(
    tag: npt.NDArray[np.uint32],
    source_ns: npt.NDArray[np.int64],
    server_ns: npt.NDArray[np.int64],
    status: npt.NDArray[np.uint32],
    value_bits: npt.NDArray[np.uint64],
    flags: npt.NDArray[np.uint8],
    strings: list[str],
    kinds: npt.NDArray[np.uint8] | None = None,
) -> bytes: ...
def decode_chunk(
    payload: bytes,
) -> tuple[
    npt.NDArray[np.uint32],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.uint32],
    npt.NDArray[np.uint64],
    npt.NDArray[np.uint8],
    list[str],
]: ...

@final
class LossyFilter:
    def __init__(self) -> None: ...
    def configure(
        self,
        tag: int,
        kind: int,
        max_error: float,
        exception_deviation: float = 0.0,
        swinging_door: bool = True,
        max_hold_s: float = 60.0,
    ) -> None: ...
    def clear(self, tag: int) -> None: ...
    def apply(
        self,
        tag: npt.NDArray[np.uint32],
        source_ns: npt.NDArray[np.int64],
        server_ns: npt.NDArray[np.int64],
        status: npt.NDArray[np.uint32],
        value_bits: npt.NDArray[np.uint64],
        flags: npt.NDArray[np.uint8],
        strings: list[str],
        now_ns: int,
    ) -> tuple[
        npt.NDArray[np.uint32],
        npt.NDArray[np.int64],
        npt.NDArray[np.int64],
        npt.NDArray[np.uint32],
        npt.NDArray[np.uint64],
        npt.NDArray[np.uint8],
        list[str],
    ]: ...
    def flush_all(
        self,
    ) -> tuple[
        npt.NDArray[np.uint32],
        npt.NDArray[np.int64],
        npt.NDArray[np.int64],
        npt.NDArray[np.uint32],
        npt.NDArray[np.uint64],
        npt.NDArray[np.uint8],
        list[str],
    ]: ...
    def pending(self) -> int: ...
    def stats(self) -> dict[str, int]: ...

@final
class Spool:
    """The crash-safe frame log (docs/spool.md, docs/format.md "Spool").

    Bounds: ``max_bytes`` (0 = unbounded; else at least 2 x segment_bytes),
    ``max_age_s`` (segments last written longer ago go, sent or not; 0 = no
    age bound) and ``retain_released_s`` (frames behind ``release_cursor`` —
    "sent" on the OT side, "zarr" on the IT side — are kept this long after
    the cursor passed them, for re-sends; 0 = until the space is needed). The
    oldest whole segments go first; unsent frames among them are named in a
    GAP frame appended to the spool (reason "spool_full" / "spool_age").

    Group commit: with ``commit_interval_s`` > 0 a background thread
    fdatasyncs every interval, or early once ``commit_bytes`` (> 0) wait.
    ``commit()`` still syncs at once.
    """

    def __init__(
        self,
        path: str,
        site_id: int,
        session_id: int | None = None,
        segment_bytes: int = 16777216,
        *,
        max_bytes: int = 0,
        max_age_s: float = 0.0,
        retain_released_s: float = 0.0,
        release_cursor: str | None = None,
        commit_interval_s: float = 0.0,
        commit_bytes: int = 0,
    ) -> None: ...
    @property
    def session_id(self) -> int: ...
    @property
    def site_id(self) -> int: ...
    def append(self, kind: int, t_first_ns: int, t_last_ns: int, payload: bytes) -> int:
        """Append a frame (seq = its LSN); returns the LSN. Durable after commit."""
    def append_frame(self, frame: bytes) -> bool: ...
    def commit(self) -> int:
        """Write and fdatasync now; returns durable_lsn (records below it survive a crash)."""
    def wait_durable(self, lsn: int, timeout: float | None = None) -> bool:
        """Block until record ``lsn`` is durable: True; False after ``timeout`` s.

        Releases the GIL. With a group committer running it waits for the next
        sync (at most ``commit_interval_s``); without one it commits itself.
        Raises SpoolError if the spool fails or closes first, ValueError if
        ``lsn`` was never appended. From asyncio (ack after durable)::

            lsn = spool.append(FRAME_DATA, t0, t1, payload)
            await asyncio.to_thread(spool.wait_durable, lsn, 10.0)
        """
    def read(self, from_lsn: int, max_frames: int = 1024) -> list[bytes]:
        """Durable frames from ``from_lsn`` (skipping LSNs no longer held)."""
    def read_entries(
        self, from_lsn: int, max_frames: int = 1024
    ) -> tuple[list[tuple[int, bytes]], int]:
        """Durable (lsn, frame) pairs from ``from_lsn`` and the LSN to read next."""
    def lsn_range_for_time(self, t_first_ns: int, t_last_ns: int) -> tuple[int, int] | None:
        """[first, end) LSNs of held durable frames whose times overlap the range."""
    def first_lsn(self) -> int: ...
    def next_lsn(self) -> int: ...
    def durable_lsn(self) -> int: ...
    def get_cursor(self, name: str) -> int: ...
    def set_cursor(self, name: str, lsn: int) -> None: ...
    def stats(self) -> dict[str, int]:
        """Counters from memory only (cheap): see docs/spool.md for the keys."""
    def close(self) -> None: ...

@final
class DiodeSender:
    def __init__(self, spool: Spool, target: str, rate_bps: int, mtu: int = 1500, *,
                 key_file: str | os.PathLike[str] | None = None, repair_pct: float = 5.0,
                 carousel_s: Sequence[float] | None = None, heartbeat_s: float = 1.0,
                 manifest_s: float = 60.0, interleave_s: float = 1.0) -> None: ...
    def stats(self) -> dict[str, int]: ...
    def idle(self) -> bool: ...
    def resend(self, lsn_first: int, lsn_end: int) -> tuple[int, int] | None:
        """Queue held durable frames with LSN in [lsn_first, lsn_end) to be sent
        again (clamped to what the spool holds; None if nothing is). Returns
        the range queued; live frames keep flowing."""
    def stop(self) -> None: ...

@final
class DiodeReceiver:
    def __init__(self, bind: str, spool: Spool, mtu: int = 1500, *,
                 key_file: str | os.PathLike[str] | None = None,
                 ledger: str | os.PathLike[str] | None = None) -> None: ...
    def missing(self) -> list[tuple[int, int]]: ...
    @property
    def local_addr(self) -> str: ...
    def stats(self) -> dict[str, int]: ...
    def stop(self) -> None: ...

def keygen(path: str | os.PathLike[str]) -> None: ...
