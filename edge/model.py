"""Shared data model: the column batch that flows from collect to the codec and
back out of it on the IT side, and the tag catalog entry that META frames carry.

Values travel as raw 64-bit words (`value_bits`) whose meaning comes from the
tag's data type in the catalog, so the codec never has to know OPC UA types and
integers keep their full range (no detour through float64).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import IntFlag
from typing import Any

import numpy as np
import numpy.typing as npt

# numpy's NaT: a sample whose DataValue carried no timestamp.
NO_TIME = np.iinfo(np.int64).min

FLOAT_TYPES = frozenset({"Float", "Double"})
SIGNED_TYPES = frozenset({"SByte", "Int16", "Int32", "Int64", "DateTime"})
UNSIGNED_TYPES = frozenset({"Byte", "UInt16", "UInt32", "UInt64"})
BOOL_TYPES = frozenset({"Boolean"})
STRING_TYPES = frozenset({"String"})
DATA_TYPES = FLOAT_TYPES | SIGNED_TYPES | UNSIGNED_TYPES | BOOL_TYPES | STRING_TYPES


class SampleFlags(IntFlag):
    """Per-sample flags (one byte each in the chunk)."""

    NONE = 0
    NULL_VALUE = 1  # the DataValue had no value (common with Bad status)
    REPLAYED = 2  # came from a Republish after a reconnect
    BACKFILLED = 4  # read back with HistoryRead for a span the subscription lost
    POLLED = 8  # came from a Read (polling), not a subscription


@dataclass(frozen=True)
class TagInfo:
    """One catalog entry; META frames carry a list of these (msgpack maps)."""

    index: int
    name: str
    node_id: str
    source: str
    data_type: str
    unit: str = ""
    description: str = ""
    range_low: float | None = None
    range_high: float | None = None
    # Lossy reduction OT set for the tag ("none", "swinging_door", "exception")
    # and its guaranteed bound: linear interpolation between the samples IT
    # gets is within max_error of every sample the agent saw.
    compression: str = "none"
    max_error: float | None = None
    exception_deviation: float | None = None

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> TagInfo:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


@dataclass
class ColumnBatch:
    """Samples of many tags over one flush window, as parallel numpy columns.

    `strings` holds the text of String samples; their `value_bits` is an index
    into it.
    """

    tag: npt.NDArray[np.uint32]
    source_ns: npt.NDArray[np.int64]
    server_ns: npt.NDArray[np.int64]
    status: npt.NDArray[np.uint32]
    value_bits: npt.NDArray[np.uint64]
    flags: npt.NDArray[np.uint8]
    strings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.tag.shape[0])

    @classmethod
    def empty(cls) -> ColumnBatch:
        return cls(
            tag=np.empty(0, np.uint32),
            source_ns=np.empty(0, np.int64),
            server_ns=np.empty(0, np.int64),
            status=np.empty(0, np.uint32),
            value_bits=np.empty(0, np.uint64),
            flags=np.empty(0, np.uint8),
        )

    def time_range(self) -> tuple[int, int]:
        """(first, last) source time in ns over samples that have one."""
        t = self.source_ns[self.source_ns != NO_TIME]
        if t.size == 0:
            return (0, 0)
        return (int(t.min()), int(t.max()))


# Type hints for the Rust codec (core_rs/src/codec/mod.rs, `kind`), by OPC UA type.
CODEC_KINDS: dict[str, int] = {
    "Double": 1, "Float": 2,
    "SByte": 3, "Int16": 3, "Int32": 3, "Int64": 3,
    "Byte": 4, "UInt16": 4, "UInt32": 4, "UInt64": 4,
    "Boolean": 5, "String": 6, "DateTime": 7,
}
# Kinds the lossy filter can reduce (numbers).
LOSSY_KINDS = frozenset({1, 2, 3, 4})


def codec_kinds(tags: list[TagInfo]) -> npt.NDArray[np.uint8]:
    """One codec type hint per catalog index (0 = unknown)."""
    out = np.zeros(max((t.index for t in tags), default=-1) + 1, np.uint8)
    for t in tags:
        out[t.index] = CODEC_KINDS.get(t.data_type, 0)
    return out


def encode_value(data_type: str, value: Any, strings: list[str]) -> int:
    """One Python value -> its 64-bit word (see module doc)."""
    if data_type in FLOAT_TYPES:
        return int(np.array(float(value), np.float64).view(np.uint64))
    if data_type in BOOL_TYPES:
        return 1 if value else 0
    if data_type in SIGNED_TYPES:
        return int(value) & 0xFFFF_FFFF_FFFF_FFFF
    if data_type in UNSIGNED_TYPES:
        return int(value)
    if data_type in STRING_TYPES:
        strings.append(str(value))
        return len(strings) - 1
    raise ValueError(f"unsupported data type {data_type!r}")


# The numpy dtype IT gets for each OPC UA type (narrowing back is exact).
NUMPY_DTYPES: dict[str, type[np.generic]] = {
    "Float": np.float32, "Double": np.float64, "Boolean": np.bool_,
    "SByte": np.int8, "Int16": np.int16, "Int32": np.int32, "Int64": np.int64,
    "DateTime": np.int64,
    "Byte": np.uint8, "UInt16": np.uint16, "UInt32": np.uint32, "UInt64": np.uint64,
}


def decode_values(data_type: str, bits: npt.NDArray[np.uint64], strings: list[str]) -> npt.NDArray[Any]:
    """64-bit words -> a numpy array of the tag's natural dtype."""
    bits = np.ascontiguousarray(bits, dtype=np.uint64)
    if data_type in FLOAT_TYPES:
        return bits.view(np.float64).astype(NUMPY_DTYPES[data_type])
    if data_type in BOOL_TYPES:
        return np.not_equal(bits, 0)
    if data_type in SIGNED_TYPES:
        return bits.view(np.int64).astype(NUMPY_DTYPES[data_type])
    if data_type in UNSIGNED_TYPES:
        return bits.astype(NUMPY_DTYPES[data_type])
    if data_type in STRING_TYPES:
        return np.array([strings[int(i)] for i in bits], dtype=object)
    raise ValueError(f"unsupported data type {data_type!r}")
