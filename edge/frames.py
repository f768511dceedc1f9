"""Frame payloads on the Python side: DATA chunks through the Rust codec, and the
msgpack control payloads (META, HEARTBEAT, GAP, EVENT) whose keys are listed in
docs/format.md. Both the agent and the receiver use these, so the two ends of
the diode cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt

from edge import _core
from edge.model import ColumnBatch, TagInfo


class PayloadError(ValueError):
    """A control payload that is not what its frame kind promises."""


def encode_data(batch: ColumnBatch, kinds: npt.NDArray[np.uint8] | None = None) -> bytes:
    """`kinds`: per-catalog-index type hints (model.codec_kinds) that let the
    codec pick the coding for each tag's values; without them it still round-trips."""
    return _core.encode_chunk(
        np.ascontiguousarray(batch.tag, np.uint32),
        np.ascontiguousarray(batch.source_ns, np.int64),
        np.ascontiguousarray(batch.server_ns, np.int64),
        np.ascontiguousarray(batch.status, np.uint32),
        np.ascontiguousarray(batch.value_bits, np.uint64),
        np.ascontiguousarray(batch.flags, np.uint8),
        batch.strings,
        kinds,
    )


class Reducer:
    """The per-tag lossy bound OT set (exception deviation + swinging door),
    applied to each flush window before encoding; holds state across windows."""

    def __init__(self) -> None:
        self._f = _core.LossyFilter()
        self.active = False

    def configure(self, tag: TagInfo, kind: int, max_hold_s: float) -> None:
        assert tag.max_error is not None
        self._f.configure(tag.index, kind, tag.max_error, tag.exception_deviation or 0.0,
                          tag.compression == "swinging_door", max_hold_s)
        self.active = True

    def clear(self, index: int) -> None:
        """The tag is lossless again: samples held back go out with the next window."""
        self._f.clear(index)

    def apply(self, batch: ColumnBatch, now_ns: int) -> ColumnBatch:
        if not self.active:
            return batch
        return ColumnBatch(*self._f.apply(
            np.ascontiguousarray(batch.tag, np.uint32), np.ascontiguousarray(batch.source_ns, np.int64),
            np.ascontiguousarray(batch.server_ns, np.int64), np.ascontiguousarray(batch.status, np.uint32),
            np.ascontiguousarray(batch.value_bits, np.uint64), np.ascontiguousarray(batch.flags, np.uint8),
            batch.strings, now_ns))

    def flush_all(self) -> ColumnBatch:
        return ColumnBatch(*self._f.flush_all())

    def stats(self) -> dict[str, int]:
        return self._f.stats()


def decode_data(payload: bytes) -> ColumnBatch:
    tag, source_ns, server_ns, status, value_bits, flags, strings = _core.decode_chunk(payload)
    return ColumnBatch(tag, source_ns, server_ns, status, value_bits, flags, strings)


def pack(obj: dict[str, Any]) -> bytes:
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


def unpack(payload: bytes, kind: str) -> dict[str, Any]:
    try:
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except (msgpack.UnpackException, ValueError) as e:
        raise PayloadError(f"{kind} payload: not msgpack ({e})") from None
    if not isinstance(obj, dict):
        raise PayloadError(f"{kind} payload: expected a map, got {type(obj).__name__}")
    return obj


@dataclass(frozen=True)
class Meta:
    site: str
    config_version: str
    tags: list[TagInfo]


def encode_meta(site: str, config_version: str, tags: list[TagInfo]) -> bytes:
    return pack({"site": site, "config_version": config_version,
                 "tags": [t.to_wire() for t in tags]})


def decode_meta(payload: bytes) -> Meta:
    d = unpack(payload, "META")
    try:
        tags = [TagInfo.from_wire(t) for t in d["tags"]]
        return Meta(site=str(d["site"]), config_version=str(d.get("config_version", "")), tags=tags)
    except (KeyError, TypeError) as e:
        raise PayloadError(f"META payload: missing or malformed field {e}") from None


@dataclass(frozen=True)
class Gap:
    reason: str
    tags: list[int]
    t_first_ns: int
    t_last_ns: int
    seq_first: int | None
    seq_last: int | None


def encode_gap(gap: Gap) -> bytes:
    return pack({"reason": gap.reason, "tags": gap.tags, "t_first_ns": gap.t_first_ns,
                 "t_last_ns": gap.t_last_ns, "seq_first": gap.seq_first, "seq_last": gap.seq_last})


def decode_gap(payload: bytes) -> Gap:
    d = unpack(payload, "GAP")
    try:
        return Gap(str(d["reason"]), [int(t) for t in d["tags"]], int(d["t_first_ns"]),
                   int(d["t_last_ns"]), d.get("seq_first"), d.get("seq_last"))
    except (KeyError, TypeError, ValueError) as e:
        raise PayloadError(f"GAP payload: missing or malformed field {e}") from None
