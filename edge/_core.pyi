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
class Spool:
    def __init__(
        self,
        path: str,
        site_id: int,
        session_id: int | None = None,
        segment_bytes: int = 16777216,
    ) -> None: ...
    @property
    def session_id(self) -> int: ...
    @property
    def site_id(self) -> int: ...
    def append(self, kind: int, t_first_ns: int, t_last_ns: int, payload: bytes) -> int: ...
    def append_frame(self, frame: bytes) -> bool: ...
    def commit(self) -> int: ...
    def read(self, from_lsn: int, max_frames: int = 1024) -> list[bytes]: ...
    def next_lsn(self) -> int: ...
    def durable_lsn(self) -> int: ...
    def get_cursor(self, name: str) -> int: ...
    def set_cursor(self, name: str, lsn: int) -> None: ...
    def stats(self) -> dict[str, int]: ...
    def close(self) -> None: ...

@final
class DiodeSender:
    def __init__(self, spool: Spool, target: str, rate_bps: int, mtu: int = 1500, *,
                 key_file: str | os.PathLike[str] | None = None, repair_pct: float = 5.0,
                 carousel_s: Sequence[float] | None = None, heartbeat_s: float = 1.0,
                 manifest_s: float = 60.0, interleave_s: float = 1.0) -> None: ...
    def stats(self) -> dict[str, int]: ...
    def idle(self) -> bool: ...
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
