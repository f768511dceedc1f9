"""Collector: OPC UA data changes -> column batches (numpy), and the tag catalog.

The sessions call :meth:`Collector.add` (or :meth:`Collector.add_datavalue`)
for every notification; samples go straight into preallocated numpy columns
that grow by doubling, so no per-sample Python object outlives the call (the
text of String samples is the exception: it goes to the batch's ``strings``).
:meth:`Collector.flush` hands the columns over as a :class:`ColumnBatch` and
starts afresh. The last value of each tag is kept for the TUI (one reference
per tag, overwritten in place).

Single-threaded by design: one asyncio loop calls add, flush and latest.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.model import (
    BOOL_TYPES,
    DATA_TYPES,
    FLOAT_TYPES,
    NO_TIME,
    SIGNED_TYPES,
    STRING_TYPES,
    UNSIGNED_TYPES,
    ColumnBatch,
    SampleFlags,
    TagInfo,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)
_D = struct.Struct("<d")
_Q = struct.Struct("<Q")
_MASK64 = 0xFFFF_FFFF_FFFF_FFFF
_NULL = int(SampleFlags.NULL_VALUE)
_BACKFILLED = int(SampleFlags.BACKFILLED)
BAD_WAITING_FOR_INITIAL_DATA = 0x80320000

# encoder kinds, one per tag
_K_FLOAT, _K_SIGNED, _K_UNSIGNED, _K_BOOL, _K_STRING, _K_TIME = range(6)


def _kind(data_type: str) -> int:
    if data_type == "DateTime":
        return _K_TIME
    if data_type in FLOAT_TYPES:
        return _K_FLOAT
    if data_type in SIGNED_TYPES:
        return _K_SIGNED
    if data_type in UNSIGNED_TYPES:
        return _K_UNSIGNED
    if data_type in BOOL_TYPES:
        return _K_BOOL
    if data_type in STRING_TYPES:
        return _K_STRING
    raise ValueError(f"unsupported data type {data_type!r}")


def to_ns(dt: datetime | None) -> int:
    """OPC UA DateTime (asyncua gives aware UTC datetimes) -> Unix ns; None -> NO_TIME."""
    if dt is None:
        return int(NO_TIME)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return ((dt - _EPOCH) // _US) * 1000


class Collector:
    """Tag catalog plus the column buffers of the current flush window."""

    def __init__(self, capacity: int = 4096) -> None:
        self._cap = max(16, int(capacity))
        self._alloc(self._cap)
        self._n = 0
        self._strings: list[str] = []
        self._catalog: list[TagInfo] = []
        self._by_node: dict[tuple[str, str], int] = {}
        self._by_name: dict[str, int] = {}
        self._kinds: list[int] = []
        # live view, one slot per tag
        self._last_value: list[Any] = []
        self._last_status: list[int] = []
        self._last_source_ns: list[int] = []
        self._count: list[int] = []
        self.values_total = 0
        self.rejected_total = 0  # values whose type did not match the tag (kept as null)

    # -- catalog ----------------------------------------------------------------
    def register(self, *, name: str, node_id: str, source: str, data_type: str, unit: str = "",
                 description: str = "", range_low: float | None = None,
                 range_high: float | None = None) -> int:
        """Add a tag to the catalog (or find it again) and return its index.

        The same (source, node_id) always gets the same index, so a session can
        re-register after a reconnect. A name used by another node is an error
        (ValueError); so is an unsupported data type.
        """
        if data_type not in DATA_TYPES:
            raise ValueError(f"unsupported data type {data_type!r}")
        key = (source, node_id)
        info_index = self._by_node.get(key)
        if info_index is not None:
            old = self._catalog[info_index]
            if old.name != name and name in self._by_name:
                raise ValueError(f"tag name {name!r} is already used by {self._catalog[self._by_name[name]].node_id}")
            new = TagInfo(info_index, name, node_id, source, data_type, unit, description, range_low, range_high,
                          old.compression, old.max_error, old.exception_deviation)  # OT's bound stays
            if new != old:  # metadata changed on the server (or first resolution filled it in)
                del self._by_name[old.name]
                self._by_name[name] = info_index
                self._catalog[info_index] = new
                self._kinds[info_index] = _kind(data_type)
            return info_index
        if name in self._by_name:
            raise ValueError(f"tag name {name!r} is already used by {self._catalog[self._by_name[name]].node_id}")
        index = len(self._catalog)
        kind = _kind(data_type)
        self._catalog.append(TagInfo(index, name, node_id, source, data_type, unit, description,
                                     range_low, range_high))
        self._by_node[key] = index
        self._by_name[name] = index
        self._kinds.append(kind)
        self._last_value.append(None)
        self._last_status.append(BAD_WAITING_FOR_INITIAL_DATA)
        self._last_source_ns.append(0)
        self._count.append(0)
        return index

    def set_compression(self, index: int, compression: str, max_error: float | None,
                        exception_deviation: float | None) -> None:
        """Record the lossy bound OT set for a tag, so META carries it to IT."""
        self._catalog[index] = replace(self._catalog[index], compression=compression, max_error=max_error,
                                       exception_deviation=exception_deviation)

    def catalog(self) -> list[TagInfo]:
        return list(self._catalog)

    def index_of(self, source: str, node_id: str) -> int | None:
        return self._by_node.get((source, node_id))

    def index_of_name(self, name: str) -> int | None:
        return self._by_name.get(name)

    def tag(self, index: int) -> TagInfo:
        return self._catalog[index]

    # -- samples ----------------------------------------------------------------
    def add(self, index: int, value: Any, status: int, source_ns: int, server_ns: int,
            flags: int = 0) -> None:
        """Append one sample. `value` None means the DataValue carried no value."""
        n = self._n
        if n == self._cap:
            self._grow()
        kind = self._kinds[index]
        bits = 0
        if value is None:
            flags |= _NULL
        else:
            try:
                if kind == _K_FLOAT:
                    bits = _Q.unpack(_D.pack(value))[0]
                elif kind == _K_SIGNED:
                    if not isinstance(value, int):
                        raise TypeError(value)
                    bits = value & _MASK64
                elif kind == _K_UNSIGNED:
                    if not isinstance(value, int):
                        raise TypeError(value)
                    bits = int(value)
                    if not 0 <= bits <= _MASK64:
                        raise ValueError(bits)
                elif kind == _K_BOOL:
                    if not isinstance(value, bool | int):
                        raise TypeError(value)
                    bits = 1 if value else 0
                elif kind == _K_STRING:
                    if not isinstance(value, str):
                        raise TypeError(value)
                    bits = len(self._strings)
                    self._strings.append(value)
                else:  # _K_TIME
                    bits = to_ns(value) & _MASK64
            except (TypeError, ValueError, OverflowError, struct.error, AttributeError):
                # The server sent something the catalog type cannot hold (an
                # array, a changed data type): keep the sample, null, counted.
                bits = 0
                flags |= _NULL
                self.rejected_total += 1
                value = None
        self._tag[n] = index
        self._source_ns[n] = source_ns
        self._server_ns[n] = server_ns
        self._status[n] = status
        self._bits[n] = bits
        self._flags[n] = flags
        self._n = n + 1
        self._count[index] += 1
        self.values_total += 1
        if flags & _BACKFILLED:
            return  # an older sample read back from history: the live view keeps the newest
        self._last_value[index] = value
        self._last_status[index] = status
        self._last_source_ns[index] = source_ns

    def add_datavalue(self, index: int, dv: Any, flags: int = 0) -> None:
        """One asyncua ua.DataValue as it came, untouched: value, all 32 status
        bits, SourceTimestamp, ServerTimestamp."""
        var = dv.Value
        sc = dv.StatusCode
        self.add(index, None if var is None else var.Value,
                 0 if sc is None else sc.value,
                 to_ns(dv.SourceTimestamp), to_ns(dv.ServerTimestamp), flags)

    def last_source_ns(self, index: int) -> int:
        """Source time of the tag's last sample (NO_TIME if it had none, 0 if none yet)."""
        return self._last_source_ns[index]

    def same_as_last(self, index: int, value: Any, status: int, source_ns: int) -> bool:
        """True if this sample repeats the tag's last one exactly (value, status
        and source time): what a server resends as the initial value of a
        re-created monitored item, or a poll that found nothing new."""
        if self._count[index] == 0 or self._last_status[index] != status \
                or self._last_source_ns[index] != source_ns:
            return False
        last = self._last_value[index]
        if self._kinds[index] == _K_TIME and value is not None:
            value = to_ns(value)
            last = to_ns(last) if isinstance(last, datetime) else last
        if type(last) is not type(value):
            return False
        if isinstance(value, float) and value != value:
            return bool(last != last)
        return bool(last == value)

    def pending(self) -> int:
        """Samples collected since the last flush."""
        return self._n

    def flush(self) -> ColumnBatch:
        """The samples since the last flush, in arrival order; resets the buffers."""
        n = self._n
        if n == 0:
            return ColumnBatch.empty()
        batch = ColumnBatch(
            tag=self._tag[:n].copy(),
            source_ns=self._source_ns[:n].copy(),
            server_ns=self._server_ns[:n].copy(),
            status=self._status[:n].copy(),
            value_bits=self._bits[:n].copy(),
            flags=self._flags[:n].copy(),
            strings=self._strings,
        )
        self._strings = []
        self._n = 0
        return batch

    # -- live view ----------------------------------------------------------------
    def latest(self) -> list[dict[str, Any]]:
        """One entry per catalog tag (the status socket's "tags" list): index,
        name, unit, source, data_type, value, status, source_ns (0 if none),
        count. A tag with no value yet has status BadWaitingForInitialData."""
        out: list[dict[str, Any]] = []
        for t in self._catalog:
            i = t.index
            ns = self._last_source_ns[i]
            out.append({
                "index": i, "name": t.name, "unit": t.unit, "source": t.source,
                "data_type": t.data_type, "value": self._last_value[i],
                "status": self._last_status[i], "source_ns": 0 if ns == NO_TIME else ns,
                "count": self._count[i],
            })
        return out

    def counts(self) -> npt.NDArray[np.int64]:
        """values_total per tag, indexed like the catalog."""
        return np.array(self._count, dtype=np.int64)

    # -- buffers ----------------------------------------------------------------
    def _alloc(self, cap: int) -> None:
        self._tag: npt.NDArray[np.uint32] = np.empty(cap, np.uint32)
        self._source_ns: npt.NDArray[np.int64] = np.empty(cap, np.int64)
        self._server_ns: npt.NDArray[np.int64] = np.empty(cap, np.int64)
        self._status: npt.NDArray[np.uint32] = np.empty(cap, np.uint32)
        self._bits: npt.NDArray[np.uint64] = np.empty(cap, np.uint64)
        self._flags: npt.NDArray[np.uint8] = np.empty(cap, np.uint8)

    def _grow(self) -> None:
        old: list[npt.NDArray[Any]] = [self._tag, self._source_ns, self._server_ns, self._status,
                                        self._bits, self._flags]
        n = self._n
        self._cap *= 2
        self._alloc(self._cap)
        new: list[npt.NDArray[Any]] = [self._tag, self._source_ns, self._server_ns, self._status,
                                        self._bits, self._flags]
        for dst, src in zip(new, old):
            dst[:n] = src[:n]
