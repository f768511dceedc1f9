"""DatasetWriter: column batches -> immutable zarr batches, one per site x time window.

Samples are grouped by source time into windows of `batch_seconds` (aligned to
the Unix epoch, never crossing a UTC day). A window is written once it is
complete, as a whole zarr group in a hidden temporary sibling directory that is
fsynced and then renamed into place: a reader sees a whole batch or nothing.
Samples that arrive for a window already published go into a new batch of the
same window; a published batch is never rewritten.

Resume: every batch records the spool LSN range it covers. `published_lsn()` is
the highest LSN whose samples are all in published batches; the receiver keeps
it as its cursor. A restarted writer re-reads the batch names on disk and drops
replayed samples of a window whose published batches already cover their LSN, so
a replay from the cursor gives neither holes nor duplicates.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
import warnings
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import zarr
from zarr.core.group import AsyncGroup
from zarr.core.sync import sync
from zarr.core.buffer import Buffer
from zarr.storage import MemoryStore

from edge import __version__
from edge.datasets import layout as L
from edge.datasets.encoding import Encoding
from edge.datasets.storage import Storage, default_owner, open_storage
from edge.model import (
    FLOAT_TYPES,
    NO_TIME,
    STRING_TYPES,
    ColumnBatch,
    SampleFlags,
    TagInfo,
    decode_values,
)

DEFAULT_LATENESS_S = 60.0

_I64 = npt.NDArray[np.int64]


@dataclass
class _Gap:
    reason: str
    tags: list[str]
    tag_indexes: list[int]
    t_first_ns: int
    t_last_ns: int
    seq_first: int | None
    seq_last: int | None


@dataclass
class _Window:
    """The samples of one window not yet published."""

    start_ns: int
    keys: list[npt.NDArray[np.int32]] = field(default_factory=list)
    source_ns: list[_I64] = field(default_factory=list)
    server_ns: list[_I64] = field(default_factory=list)
    status: list[npt.NDArray[np.uint32]] = field(default_factory=list)
    bits: list[npt.NDArray[np.uint64]] = field(default_factory=list)
    flags: list[npt.NDArray[np.uint8]] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)
    gaps: list[_Gap] = field(default_factory=list)
    lsns: set[int] = field(default_factory=set)
    frames: dict[str, list[int]] = field(default_factory=dict)  # session -> [seq_first, seq_last]
    touched_ns: int | None = None
    n: int = 0


@dataclass
class _Deferred:
    batch: ColumnBatch
    lsn: int
    session_id: int | str | None
    seq: int | None


class DatasetWriter:
    """Turns the receiver's frames into published zarr batches under `root/site/`.

    One writer per site and root at a time (it owns the temporary directories).
    """

    def __init__(self, root: str | os.PathLike[str] | Storage, site: str, batch_seconds: int = 3600,
                 *, lateness_seconds: float = DEFAULT_LATENESS_S, fsync: bool = True,
                 storage_options: Mapping[str, Any] | None = None, owner: str | None = None,
                 encoding: Encoding | None = None) -> None:
        """`root`: a directory, or an s3://bucket/prefix URL (`storage_options`: endpoint,
        region, allow_http...; credentials from the usual AWS environment variables).
        `owner` names this writer in the site's claim (default: the host name): a
        writer with another owner is refused the site."""
        if not site or L.safe_name(site) != site:
            raise ValueError(f"site {site!r}: use letters, digits, '.', '_' and '-' only")
        if batch_seconds <= 0 or L.DAY_S % batch_seconds:
            raise ValueError(f"batch_seconds {batch_seconds}: must divide a day (86400 s) evenly")
        self.encoding = encoding or Encoding()
        self.storage = open_storage(root, storage_options)
        self.root = self.storage.url
        self.site = site
        self.batch_seconds = int(batch_seconds)
        self.lateness_ns = int(lateness_seconds * L.NS_PER_S)
        self.fsync = fsync
        self._bns = self.batch_seconds * L.NS_PER_S
        self.storage.claim(site, owner or default_owner())

        self._catalog: dict[int, TagInfo] | None = None
        self._config_version = ""
        self._keys: list[TagInfo] = []  # every tag identity seen; key = position
        self._key_of: dict[TagInfo, int] = {}
        self._key_is_str = np.zeros(0, bool)
        self._index_key = np.full(0, -1, np.int32)  # catalog index -> key
        self._deferred: list[_Deferred] = []  # DATA before any catalog

        self._windows: dict[int, _Window] = {}
        # Per window start: (lsn_last, start_ns, end_ns) of batches on disk that cover it.
        self._covered: dict[int, list[tuple[int, int, int]]] = {}
        self._published_count: dict[int, int] = {}  # window start -> batches on disk
        self._lsn_pending: dict[int, int] = {}  # lsn -> windows still holding its samples
        self._lsn_order: deque[int] = deque()  # seen lsns, increasing
        self._published_lsn = -1
        self._max_lsn: int | None = None
        self._watermark_ns: int | None = None
        self._clock_ns: int | None = None

        self._cleanup_and_scan()

    # -- input -------------------------------------------------------------

    def set_catalog(self, tags: list[TagInfo], config_version: str = "") -> None:
        """The tag catalog of a META frame: index -> TagInfo for the DATA that follows."""
        self._catalog = {t.index: t for t in tags}
        self._config_version = config_version
        size = max(self._catalog, default=-1) + 1
        self._index_key = np.full(size, -1, np.int32)
        for i, t in self._catalog.items():
            self._index_key[i] = self._key(t)
        deferred, self._deferred = self._deferred, []
        for d in deferred:
            self._lsn_done(d.lsn)
            self._add(d.batch, d.lsn, d.session_id, d.seq)

    def add(self, batch: ColumnBatch, lsn: int, *, session_id: int | str | None = None,
            seq: int | None = None) -> None:
        """The samples of one DATA frame at spool position `lsn` (non-decreasing).

        `session_id`/`seq` (the frame header's) are recorded as the batch's frame ranges.
        """
        self._see_lsn(lsn)
        if len(batch) == 0:
            return
        if self._catalog is None:
            # No META yet: keep the frame (its LSN stays pending) until one comes.
            self._lsn_pending[lsn] = self._lsn_pending.get(lsn, 0) + 1
            self._deferred.append(_Deferred(batch, lsn, session_id, seq))
            return
        self._add(batch, lsn, session_id, seq)

    def note_lsn(self, lsn: int) -> None:
        """A frame with nothing for the datasets (heartbeat, event...): lets published_lsn pass it."""
        self._see_lsn(lsn)

    def add_gap(self, reason: str, tags: list[int], t_first_ns: int, t_last_ns: int,
                seq_first: int | None, seq_last: int | None, *, lsn: int | None = None) -> None:
        """A GAP record: it lands in the batch of the window holding `t_first_ns`.

        Pass the frame's `lsn` so a writer crash before publication cannot lose it
        (the cursor then stays before it) and a replay does not record it twice.
        """
        if lsn is not None:
            self._see_lsn(lsn)
        names = [self._tag_name(i) for i in tags]
        t = t_first_ns if t_first_ns != NO_TIME else t_last_ns
        if t == NO_TIME:
            t = self._watermark_ns if self._watermark_ns is not None else time.time_ns()
        start = (t // self._bns) * self._bns
        if lsn is not None and self._covered_through(start, t) >= lsn:
            return  # replay of a gap already published
        w = self._window(start)
        w.gaps.append(_Gap(reason, names, [int(i) for i in tags], int(t_first_ns), int(t_last_ns),
                           None if seq_first is None else int(seq_first),
                           None if seq_last is None else int(seq_last)))
        if lsn is not None:
            self._hold(w, lsn)

    # -- publication ----------------------------------------------------------

    def publish_due(self, now_ns: int) -> list[str]:
        """Publish the windows that are complete; returns the new batch paths.

        A window is complete when `now_ns` is past its end plus the lateness margin
        and either the data's own clock (the newest source time seen) is past that
        too, or the window has had no new samples for a lateness margin (a quiet
        source). Replaying a backlog thus does not cut windows short.
        """
        self._clock_ns = now_ns
        out: list[str] = []
        wm = self._watermark_ns
        for start in sorted(self._windows):
            w = self._windows[start]
            if w.touched_ns is None:
                w.touched_ns = now_ns
            due_at = start + self._bns + self.lateness_ns
            if now_ns < due_at:
                continue
            if (wm is not None and min(wm, now_ns) >= due_at) or now_ns - w.touched_ns >= self.lateness_ns:
                out.append(self._publish(start))
        return out

    def flush(self) -> list[str]:
        """Publish everything pending (shutdown). Frames still waiting for a catalog
        are written with their raw 64-bit words under `tag#<index>` names."""
        if self._deferred:
            deferred, self._deferred = self._deferred, []
            for d in deferred:
                self._lsn_done(d.lsn)
                self._add(d.batch, d.lsn, d.session_id, d.seq)
        return [self._publish(s) for s in sorted(self._windows)]

    def published_lsn(self) -> int:
        """The highest LSN whose samples are all in published batches (-1: none yet)."""
        while self._lsn_order and self._lsn_pending.get(self._lsn_order[0], 0) == 0:
            lsn = self._lsn_order.popleft()
            self._lsn_pending.pop(lsn, None)
            self._published_lsn = lsn
        return self._published_lsn

    def pending_samples(self) -> int:
        return sum(w.n for w in self._windows.values()) + sum(len(d.batch) for d in self._deferred)

    # -- internals: intake ----------------------------------------------------

    def _see_lsn(self, lsn: int) -> None:
        lsn = int(lsn)
        if self._max_lsn is not None and lsn < self._max_lsn:
            raise ValueError(f"lsn {lsn} after {self._max_lsn}: frames must come in spool order")
        if self._max_lsn != lsn:
            self._lsn_order.append(lsn)
            self._lsn_pending.setdefault(lsn, 0)
        self._max_lsn = lsn

    def _placed_through(self) -> int | None:
        """Every sample of a frame with LSN <= this is in a window (or dropped as published)."""
        if self._deferred:
            first = min(d.lsn for d in self._deferred) - 1
            return first if first >= 0 else None
        return self._max_lsn

    def _hold(self, w: _Window, lsn: int) -> None:
        if lsn not in w.lsns:
            w.lsns.add(lsn)
            self._lsn_pending[lsn] = self._lsn_pending.get(lsn, 0) + 1

    def _lsn_done(self, lsn: int) -> None:
        self._lsn_pending[lsn] -= 1

    def _key(self, t: TagInfo) -> int:
        k = self._key_of.get(t)
        if k is None:
            k = len(self._keys)
            self._keys.append(t)
            self._key_of[t] = k
            self._key_is_str = np.append(self._key_is_str, t.data_type in STRING_TYPES)
        return k

    def _tag_name(self, index: int) -> str:
        t = self._catalog.get(int(index)) if self._catalog else None
        return t.name if t else f"tag#{int(index)}"

    def _keys_for(self, tag: npt.NDArray[np.uint32]) -> npt.NDArray[np.int32]:
        tag = np.asarray(tag, np.int64)
        top = int(tag.max()) + 1 if tag.size else 0
        if top > self._index_key.size:
            grown = np.full(top, -1, np.int32)
            grown[: self._index_key.size] = self._index_key
            self._index_key = grown
        keys = self._index_key[tag]
        if (keys < 0).any():
            for i in np.unique(tag[keys < 0]).tolist():
                # A tag index the catalog does not name: keep its raw words.
                info = TagInfo(index=int(i), name=f"tag#{i}", node_id="", source="",
                               data_type=L.UNKNOWN_TYPE,
                               description="tag index missing from the catalog; value is the raw 64-bit word")
                self._index_key[i] = self._key(info)
            keys = self._index_key[tag]
        return keys

    def _add(self, batch: ColumnBatch, lsn: int, session_id: int | str | None, seq: int | None) -> None:
        keys = self._keys_for(batch.tag)
        src = np.asarray(batch.source_ns, np.int64)
        srv = np.asarray(batch.server_ns, np.int64)
        # Window time: the source timestamp, else the server's, else the frame's.
        t = np.where(src != NO_TIME, src, srv)
        missing = t == NO_TIME
        if missing.all():
            fallback = self._watermark_ns if self._watermark_ns is not None else time.time_ns()
            t = np.full_like(t, fallback)
        else:
            newest = int(t[~missing].max())
            if self._watermark_ns is None or newest > self._watermark_ns:
                self._watermark_ns = newest
            if missing.any():
                t = t.copy()
                t[missing] = newest
        win = (t // self._bns) * self._bns
        status = np.asarray(batch.status, np.uint32)
        bits = np.asarray(batch.value_bits, np.uint64)
        flags = np.asarray(batch.flags, np.uint8)
        starts = np.unique(win).tolist()
        for start in starts:
            sel = np.flatnonzero(win == start) if len(starts) > 1 else np.arange(len(batch))
            through = self._covered_through(start, None)
            if through >= lsn:
                # Replayed after a restart: drop what published batches already hold.
                keep = self._not_covered(start, t[sel], lsn)
                sel = sel[keep]
                if sel.size == 0:
                    continue
            w = self._window(start)
            k = keys[sel]
            b = bits[sel].copy()
            is_str = self._key_is_str[k]
            if is_str.any():
                self._take_strings(w, np.flatnonzero(is_str), b, flags[sel], batch.strings, lsn)
            w.keys.append(k)
            w.source_ns.append(src[sel])
            w.server_ns.append(srv[sel])
            w.status.append(status[sel])
            w.bits.append(b)
            w.flags.append(flags[sel])
            w.n += int(sel.size)
            w.touched_ns = self._clock_ns
            self._hold(w, lsn)
            if seq is not None:
                sid = "" if session_id is None else str(session_id)
                r = w.frames.setdefault(sid, [int(seq), int(seq)])
                r[0], r[1] = min(r[0], int(seq)), max(r[1], int(seq))

    def _take_strings(self, w: _Window, rows: npt.NDArray[np.intp], b: npt.NDArray[np.uint64],
                      flags: npt.NDArray[np.uint8], strings: list[str], lsn: int) -> None:
        """Re-point String samples' words from the frame's string table to the window's."""
        for row in rows.tolist():
            if flags[row] & SampleFlags.NULL_VALUE:
                text = ""
            else:
                i = int(b[row])
                if i >= len(strings):
                    raise ValueError(f"lsn {lsn}: string index {i} beyond the frame's {len(strings)} strings")
                text = strings[i]
            b[row] = len(w.strings)
            w.strings.append(text)

    def _window(self, start: int) -> _Window:
        w = self._windows.get(start)
        if w is None:
            w = self._windows[start] = _Window(start)
            w.touched_ns = self._clock_ns
        return w

    def _covered_through(self, start: int, t: int | None) -> int:
        """The highest LSN published batches cover for window `start` (at time t if given)."""
        best = -1
        for lsn_last, s, e in self._covered.get(start, ()):
            if t is None or s <= t < e:
                best = max(best, lsn_last)
        return best

    def _not_covered(self, start: int, t: _I64, lsn: int) -> npt.NDArray[np.bool_]:
        keep = np.ones(t.shape, bool)
        for lsn_last, s, e in self._covered.get(start, ()):
            if lsn_last >= lsn:
                keep &= ~((t >= s) & (t < e))
        return keep

    def _cover(self, lsn_last: int, s: int, e: int) -> None:
        first = (s // self._bns) * self._bns
        for start in range(first, e, self._bns):
            self._covered.setdefault(start, []).append((lsn_last, s, e))

    # -- internals: disk --------------------------------------------------------

    def _cleanup_and_scan(self) -> None:
        """Remove what a crash left unpublished; learn what is published."""
        for day, name in self.storage.scan_and_clean(self.site):
            info = L.parse_batch_dir(day, name)
            assert info is not None
            self._published_count[info.window_start_ns] = self._published_count.get(info.window_start_ns, 0) + 1
            if info.lsn_last is not None:
                self._cover(info.lsn_last, info.window_start_ns, info.window_end_ns)

    def _publish(self, start: int) -> str:
        w = self._windows.pop(start)
        lsn_last = self._placed_through()
        lsn_first = min(w.lsns) if w.lsns else lsn_last
        late = self._published_count.get(start, 0) > 0
        try:
            files, attrs = self._build_group(w, lsn_first, lsn_last, late)
            final = self.storage.publish(
                self.site, L.day_dir_name(start),
                lambda n: L.batch_dir_name(start, self.batch_seconds, lsn_first, lsn_last, n),
                files, attrs, self.fsync)
        except BaseException:
            # Disk full, permissions, store down...: nothing is published, the window stays pending.
            self._windows[start] = w
            raise
        self._published_count[start] = self._published_count.get(start, 0) + 1
        if lsn_last is not None:
            self._cover(lsn_last, start, start + self._bns)
        for lsn in w.lsns:
            self._lsn_done(lsn)
        return final

    def _build_group(self, w: _Window, lsn_first: int | None, lsn_last: int | None,
                     late: bool) -> tuple[dict[str, Buffer], dict[str, Any]]:
        """The whole batch group as zarr keys in memory, and its root attributes."""
        n = w.n
        if n:
            keys = np.concatenate(w.keys)
            src = np.concatenate(w.source_ns)
            srv = np.concatenate(w.server_ns)
            status = np.concatenate(w.status)
            bits = np.concatenate(w.bits)
            flags = np.concatenate(w.flags)
            # Per tag, by source time (samples without one last, like NaT in numpy),
            # arrival order kept among equal times.
            sort_t = np.where(src == NO_TIME, np.iinfo(np.int64).max, src)
            order = np.lexsort((sort_t, keys))
            keys, src, srv = keys[order], src[order], srv[order]
            status, bits, flags = status[order], bits[order], flags[order]
            bounds = np.flatnonzero(np.diff(keys)) + 1
            starts = np.concatenate(([0], bounds)).tolist()
            ends = np.concatenate((bounds, [n])).tolist()
        else:
            starts, ends = [], []
            keys = np.empty(0, np.int32)

        comp = self.encoding
        tag_table: list[dict[str, Any]] = []
        nodes: list[tuple[str, dict[str, Any], list[tuple[str, npt.NDArray[Any], dict[str, Any]]]]] = []
        used: set[str] = set()
        t_min: int | None = None
        t_max: int | None = None
        for a, b in zip(starts, ends):
            info = self._keys[int(keys[a])]
            gname = _unique(L.safe_name(info.name), used)
            ts = src[a:b]
            real = ts[ts != NO_TIME]
            if real.size:
                t_min = int(real.min()) if t_min is None else min(t_min, int(real.min()))
                t_max = int(real.max()) if t_max is None else max(t_max, int(real.max()))
            nodes.append((f"tags/{gname}", self._tag_attrs(info), [
                ("time", ts, _time_attrs("source timestamp (OPC UA SourceTimestamp)", True)),
                ("value", self._decode(info, bits[a:b], flags[a:b], w.strings), self._value_attrs(info)),
                ("status", status[a:b], _STATUS_ATTRS),
                ("server_time", srv[a:b], _time_attrs("server timestamp (OPC UA ServerTimestamp)", False)),
                ("flags", flags[a:b], _FLAGS_ATTRS),
            ]))
            tag_table.append({"name": info.name, "group": f"tags/{gname}", "data_type": info.data_type,
                              "unit": info.unit, "node_id": info.node_id, "source": info.source,
                              "n_samples": b - a})
        nodes.append(("gaps", _GAPS_ATTRS, _gap_columns(w.gaps)))
        end = w.start_ns + self._bns
        attrs: dict[str, Any] = {
            "tidegate_format": L.FORMAT,
            "Conventions": "CF-1.12",
            "title": f"tidegate batch: site {self.site}, {L.iso_ns(w.start_ns)} to {L.iso_ns(end)}",
            "site": self.site,
            "window_start": L.iso_ns(w.start_ns),
            "window_end": L.iso_ns(end),
            "window_start_ns": w.start_ns,
            "window_end_ns": end,
            "batch_seconds": self.batch_seconds,
            "time_first_ns": t_min,
            "time_last_ns": t_max,
            "lsn_first": lsn_first,
            "lsn_last": lsn_last,
            "n_frames": len(w.lsns),
            "frames": [{"session_id": s, "seq_first": r[0], "seq_last": r[1]} for s, r in sorted(w.frames.items())],
            "n_samples": n,
            "n_tags": len(tag_table),
            "n_gaps": len(w.gaps),
            "late": late,
            "config_version": self._config_version,
            "tags": tag_table,
            "gaps": [_gap_dict(g) for g in w.gaps],
            "created": L.iso_ns(time.time_ns()),
            "writer": f"tidegate {__version__}, zarr {zarr.__version__}",
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr: string dtype / consolidated metadata not in the v3 spec yet
            files: dict[str, Buffer] = {}
            sync(_build_tree(MemoryStore(files), attrs, nodes, comp))
        return files, attrs

    @staticmethod
    def _decode(info: TagInfo, bits: npt.NDArray[np.uint64], flags: npt.NDArray[np.uint8],
                strings: list[str]) -> npt.NDArray[Any]:
        if info.data_type == L.UNKNOWN_TYPE:
            return bits.copy()
        values = decode_values(info.data_type, bits, strings)
        if info.data_type in FLOAT_TYPES:
            null = (flags & SampleFlags.NULL_VALUE) != 0
            if null.any():
                values[null] = np.nan
        return values

    def _tag_attrs(self, info: TagInfo) -> dict[str, Any]:
        a: dict[str, Any] = {
            "name": info.name, "tag_index": info.index, "node_id": info.node_id, "source": info.source,
            "site": self.site, "data_type": info.data_type, "unit": info.unit,
            "description": info.description, "config_version": self._config_version,
            "Conventions": "CF-1.12",
        }
        if info.range_low is not None:
            a["range_low"] = info.range_low
        if info.range_high is not None:
            a["range_high"] = info.range_high
        if info.range_low is not None and info.range_high is not None:
            a["range"] = [info.range_low, info.range_high]
        # Catalog fields added later (e.g. the lossy codec's error bound) land as
        # attributes of the same name, never silently dropped.
        for f in dataclasses.fields(info):
            v = getattr(info, f.name)
            if f.name not in a and f.name not in ("index",) and v is not None and v != "":
                a[f.name] = v
        return a

    def _value_attrs(self, info: TagInfo) -> dict[str, Any]:
        a: dict[str, Any] = {"long_name": info.name, "ancillary_variables": "status flags",
                             "data_type": info.data_type}
        if info.unit:
            a["units"] = info.unit
        if info.description:
            a["description"] = info.description
        if info.range_low is not None and info.range_high is not None:
            a["range"] = [info.range_low, info.range_high]
        return a


_STATUS_ATTRS: dict[str, Any] = {
    "long_name": "OPC UA StatusCode",
    "flag_masks": [L.SEVERITY_MASK, L.SEVERITY_MASK, L.SEVERITY_MASK],
    "flag_values": [L.SEVERITY_GOOD, L.SEVERITY_UNCERTAIN, L.SEVERITY_BAD],
    "flag_meanings": "good uncertain bad",
    "comment": "full 32-bit StatusCode; severity in the top two bits (00 good, 01 uncertain, 10 bad)",
}
_FLAGS_ATTRS: dict[str, Any] = {
    "long_name": "sample flags",
    "flag_masks": [int(SampleFlags.NULL_VALUE), int(SampleFlags.REPLAYED)],
    "flag_meanings": "null_value replayed",
    "comment": "null_value: the DataValue had no value (value is NaN for floats, 0/False/'' otherwise); "
               "replayed: came from an OPC UA Republish after a reconnect",
}


def _time_attrs(long_name: str, is_coord: bool) -> dict[str, Any]:
    a: dict[str, Any] = {"long_name": long_name, "units": L.TIME_UNITS, "calendar": L.CALENDAR}
    if is_coord:
        a["standard_name"] = "time"
        a["axis"] = "T"
    return a


_GAPS_ATTRS: dict[str, Any] = {
    "description": "data that will never come: reason, tags (JSON list of names; [] = all), "
                   "source time range, sender frame seq range (-1 = unknown)"}


def _gap_columns(gaps: list[_Gap]) -> list[tuple[str, npt.NDArray[Any], dict[str, Any]]]:
    return [
        ("reason", np.array([x.reason for x in gaps], dtype=object), {"long_name": "why the data is missing"}),
        ("tags", np.array([json.dumps(x.tags) for x in gaps], dtype=object),
         {"long_name": "tag names (JSON list); [] means every tag of the source"}),
        ("t_first", np.array([x.t_first_ns for x in gaps], np.int64), _time_attrs("first missing source time", False)),
        ("t_last", np.array([x.t_last_ns for x in gaps], np.int64), _time_attrs("last missing source time", False)),
        ("seq_first", np.array([-1 if x.seq_first is None else x.seq_first for x in gaps], np.int64),
         {"long_name": "first sender frame seq of the gap (-1 = unknown)"}),
        ("seq_last", np.array([-1 if x.seq_last is None else x.seq_last for x in gaps], np.int64),
         {"long_name": "last sender frame seq of the gap (-1 = unknown)"}),
    ]


async def _build_tree(store: MemoryStore, attrs: dict[str, Any],
                      nodes: list[tuple[str, dict[str, Any], list[tuple[str, npt.NDArray[Any], dict[str, Any]]]]],
                      comp: Encoding) -> None:
    """Build the batch group (subgroups and arrays concurrently), then consolidate it.

    In memory: zarr's per-key overhead on a LocalStore is a thread hop per key,
    several times slower; the keys are written out as files afterwards.
    """
    root = await zarr.api.asynchronous.open_group(store, mode="w-", zarr_format=3, attributes=attrs)
    await root.create_group("tags")
    limit = asyncio.Semaphore(64)

    async def node(gpath: str, gattrs: dict[str, Any],
                   arrays: list[tuple[str, npt.NDArray[Any], dict[str, Any]]]) -> None:
        async with limit:
            g = await root.create_group(gpath, attributes=gattrs)
            dim = "time" if gpath.startswith("tags/") else "gap"
            await asyncio.gather(*(_arr(g, name, data, comp, a, dim) for name, data, a in arrays))

    await asyncio.gather(*(node(*n) for n in nodes))
    await zarr.api.asynchronous.consolidate_metadata(store)


async def _arr(g: AsyncGroup, name: str, data: npt.NDArray[Any], comp: Encoding,
               attrs: dict[str, Any], dim: str) -> None:
    n = int(data.shape[0])
    fill: Any
    if data.dtype == object:
        dtype: Any = str
        fill = ""
    elif data.dtype.kind == "f":
        dtype, fill = data.dtype, float("nan")
    else:
        dtype, fill = data.dtype, 0
    a = await g.create_array(name, shape=(n,), dtype=dtype, chunks=comp.chunks(n), compressors=comp.compressors(data.dtype),
                             fill_value=fill, dimension_names=[dim], attributes=attrs)
    if n:
        await a.setitem(slice(None), data)


def _unique(name: str, used: set[str]) -> str:
    # Case-insensitive, so a copy to a case-insensitive file system stays intact.
    cand, i = name, 1
    while cand.lower() in used:
        i += 1
        cand = f"{name}-{i}"
    used.add(cand.lower())
    return cand


def _gap_dict(g: _Gap) -> dict[str, Any]:
    return {"reason": g.reason, "tags": g.tags, "tag_indexes": g.tag_indexes,
            "t_first_ns": g.t_first_ns, "t_last_ns": g.t_last_ns,
            "seq_first": g.seq_first, "seq_last": g.seq_last}
