"""`tidegate datasets export`: a tag set and time range -> one Parquet or CSV file.

Long ("tidy") layout, one row per sample, sorted by site, tag, then source time:

    site, tag, unit, time, value, status, quality, server_time, flags

Times are UTC nanoseconds (Parquet timestamp[ns, UTC]; CSV ISO 8601 with a Z).
`value` has one type for the file: the tags' common type (Float + Double ->
float64, Int32 + Double -> float64, any String -> string...). An integer that
float64 cannot hold exactly (beyond 2^53) is refused rather than rounded: export
such a tag on its own and it keeps its int64/uint64 type. Null values (the
DataValue had none) are empty. The file appears whole or not at all (written
beside it, then renamed).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.datasets import layout as L
from edge.datasets.reader import BatchInfo, Root, concat_values, list_batches, open_batch_group, read_columns
from edge.model import NO_TIME, NUMPY_DTYPES, SampleFlags

FORMATS = ("parquet", "csv")
_EXACT_F64 = 2**53


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    rows: int
    tags: list[str]
    value_type: str


def parse_time(text: str, what: str) -> int:
    """ISO 8601 (a date, or a date and time; 'Z' or an offset, else UTC) -> Unix ns."""
    import pandas as pd

    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise ValueError(f"{what}: not an ISO 8601 time, got {text!r} (e.g. 2026-11-24T07:00:00Z)") from None
    if ts is pd.NaT:
        raise ValueError(f"{what}: not an ISO 8601 time, got {text!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value)


def format_for(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"--format: one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("parquet", "pq"):
        return "parquet"
    if suffix == "csv":
        return "csv"
    raise ValueError(f"--output {path}: name it .parquet or .csv, or give --format")


def export(root: Root, out: str | os.PathLike[str], *, site: str | None = None,
           tags: list[str] | None = None, start_ns: int | None = None, end_ns: int | None = None,
           fmt: str | None = None) -> ExportSummary:
    """Write the samples of `tags` (names or shell patterns; all if None) with
    start_ns <= time < end_ns to `out`. Raises ValueError for a bad selection."""
    path = Path(out)
    fmt = format_for(path, fmt)
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise ValueError(f"--end {L.iso_ns(end_ns)} is not after --start {L.iso_ns(start_ns)}")
    every = list_batches(root, site)
    catalog = _catalog(every)  # tags are named from every batch; a range may hold none of their samples
    selected = _select(catalog, tags, site)
    batches = [b for b in every
               if (start_ns is None or b.window_end_ns > start_ns) and (end_ns is None or b.window_start_ns < end_ns)]
    value_dtype = _common_dtype([catalog[k] for k in selected])
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    rows = 0
    try:
        writer = _ParquetSink(tmp, value_dtype) if fmt == "parquet" else _CsvSink(tmp)
        try:
            for key in selected:
                cols = _tag_rows(batches, key, start_ns, end_ns, catalog[key], value_dtype)
                if cols is not None:
                    writer.write(cols)
                    rows += len(cols["time"])
        finally:
            writer.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ExportSummary(path, rows, [f"{s}/{n}" for s, n in selected], str(value_dtype))


def _catalog(batches: list[BatchInfo]) -> dict[tuple[str, str], dict[str, Any]]:
    """(site, tag name) -> its newest catalog entry in the selected batches."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for b in batches:
        for t in b.attrs.get("tags", []):
            out[(b.site, t["name"])] = t
    return out


def _select(catalog: dict[tuple[str, str], dict[str, Any]], patterns: list[str] | None,
            site: str | None) -> list[tuple[str, str]]:
    keys = sorted(catalog)
    if not keys:
        where = f"site {site!r}" if site else "any site"
        raise ValueError(f"no published batches for {where}")
    if not patterns:
        return keys
    chosen: set[tuple[str, str]] = set()
    for p in patterns:
        hit = {k for k in keys if k[1] == p or fnmatch.fnmatchcase(k[1], p)}
        if not hit:
            names = sorted({k[1] for k in keys})
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise ValueError(f"--tags: no tag matches {p!r} (tags: {shown})")
        chosen |= hit
    return sorted(chosen)


def _dtype_of(entry: dict[str, Any]) -> np.dtype[Any]:
    t = entry["data_type"]
    if t == "String":
        return np.dtype(object)
    if t == L.UNKNOWN_TYPE:
        return np.dtype(np.uint64)
    return np.dtype(NUMPY_DTYPES[t])


def _common_dtype(entries: list[dict[str, Any]]) -> np.dtype[Any]:
    dtypes = [_dtype_of(e) for e in entries]
    if any(d == object for d in dtypes):
        return np.dtype(object)
    return np.result_type(*dtypes)


def _tag_rows(batches: list[BatchInfo], key: tuple[str, str], start_ns: int | None, end_ns: int | None,
              entry: dict[str, Any], value_dtype: np.dtype[Any]) -> dict[str, Any] | None:
    site, name = key
    parts: list[tuple[npt.NDArray[Any], ...]] = []
    for b in batches:
        if b.site != site:
            continue
        groups = b.group_of(name)
        if groups:
            g = open_batch_group(b)
            parts += [read_columns(g, grp) for grp in groups]
    if not parts:
        return None
    cols = list(zip(*parts))
    t = np.concatenate(cols[0]).astype(np.int64)
    keep = np.ones(t.shape, bool)
    if start_ns is not None or end_ns is not None:
        keep &= t != NO_TIME
        if start_ns is not None:
            keep &= t >= start_ns
        if end_ns is not None:
            keep &= t < end_ns
    values = concat_values(cols[1])[keep]
    t = t[keep]
    status = np.concatenate(cols[2]).astype(np.uint32)[keep]
    srv = np.concatenate(cols[3]).astype(np.int64)[keep]
    flags = np.concatenate(cols[4]).astype(np.uint8)[keep]
    if not t.size:
        return None
    order = np.argsort(np.where(t == NO_TIME, np.iinfo(np.int64).max, t), kind="stable")
    t, values, status, srv, flags = t[order], values[order], status[order], srv[order], flags[order]
    null = (flags & SampleFlags.NULL_VALUE) != 0
    if value_dtype == object:
        values = np.array([str(v) for v in values.tolist()], dtype=object)
    elif values.dtype != value_dtype:
        if values.dtype.kind in "iu" and value_dtype.kind == "f":
            big = (np.abs(values.astype(np.float64)) >= _EXACT_F64) & ~null
            if big.any():
                raise ValueError(f"tag {name!r}: integers beyond 2^53 cannot share a float64 column with "
                                 "the other tags; export it on its own (--tags) to keep it exact")
        values = values.astype(value_dtype)
    sev = status & np.uint32(L.SEVERITY_MASK)
    quality = np.where(sev == L.SEVERITY_GOOD, "good", np.where(sev == L.SEVERITY_UNCERTAIN, "uncertain", "bad"))
    n = t.size
    return {"site": np.full(n, site, dtype=object), "tag": np.full(n, name, dtype=object),
            "unit": np.full(n, entry.get("unit") or "", dtype=object), "time": t, "value": values,
            "null": null, "status": status, "quality": quality.astype(object), "server_time": srv, "flags": flags}


class _ParquetSink:
    def __init__(self, path: Path, value_dtype: np.dtype[Any]) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError("Parquet export needs pyarrow: pip install 'tidegate[export]' (or use .csv)") from None
        self.pa = pa
        ts = pa.timestamp("ns", tz="UTC")
        value_type = pa.string() if value_dtype == object else pa.from_numpy_dtype(value_dtype)
        self.schema = pa.schema([
            ("site", pa.string()), ("tag", pa.string()), ("unit", pa.string()), ("time", ts),
            ("value", value_type), ("status", pa.uint32()), ("quality", pa.string()),
            ("server_time", ts), ("flags", pa.uint8()),
        ], metadata={b"tidegate": b"long layout: one row per sample; see docs/datasets.md"})
        self.writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")

    def write(self, c: dict[str, Any]) -> None:
        pa = self.pa
        t, srv = c["time"], c["server_time"]
        arrays = [
            pa.array(c["site"], pa.string()), pa.array(c["tag"], pa.string()), pa.array(c["unit"], pa.string()),
            pa.array(t, self.schema.field("time").type, mask=t == NO_TIME),
            pa.array(c["value"], self.schema.field("value").type, mask=c["null"]),
            pa.array(c["status"], pa.uint32()), pa.array(c["quality"], pa.string()),
            pa.array(srv, self.schema.field("server_time").type, mask=srv == NO_TIME),
            pa.array(c["flags"], pa.uint8()),
        ]
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


class _CsvSink:
    HEADER = ["site", "tag", "unit", "time", "value", "status", "quality", "server_time", "flags"]

    def __init__(self, path: Path) -> None:
        self.f = open(path, "w", newline="", encoding="utf-8")
        import csv

        self.w = csv.writer(self.f)
        self.w.writerow(self.HEADER)

    def write(self, c: dict[str, Any]) -> None:
        values = c["value"]
        if values.dtype.kind == "b":
            text = np.where(values, "true", "false").astype(object)
        elif values.dtype.kind == "f":
            text = np.array([repr(float(v)) for v in values.tolist()], dtype=object)  # shortest exact form
        else:
            text = values.astype(str).astype(object)
        text[c["null"]] = ""
        for row in zip(c["site"], c["tag"], c["unit"], _iso(c["time"]), text, c["status"].tolist(),
                       c["quality"], _iso(c["server_time"]), c["flags"].tolist()):
            self.w.writerow(row)

    def close(self) -> None:
        self.f.close()


def _iso(ns: npt.NDArray[np.int64]) -> Iterator[str]:
    s = np.datetime_as_string(ns.astype("datetime64[ns]"), unit="ns")
    return ("" if x == "NaT" else x + "Z" for x in s.tolist())
