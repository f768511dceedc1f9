"""Readers of published batches: listing, per-tag xarray Datasets, raw samples,
gaps, quality masking, and the text the `tidegate datasets` command prints."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import xarray as xr
import zarr

from edge.datasets import layout as L
from edge.datasets.storage import LocalStorage, Storage, open_storage
from edge.model import NO_TIME


@dataclass(frozen=True)
class GapInfo:
    """One gap record: data that will never come."""

    site: str
    batch: str  # path of the batch that holds the record
    reason: str
    tags: list[str]  # [] = every tag of the source
    t_first_ns: int
    t_last_ns: int
    seq_first: int | None
    seq_last: int | None


@dataclass(frozen=True)
class BatchInfo:
    """What `list_batches` reports about one published batch (from its root attributes)."""

    path: str
    site: str
    name: str
    window_start_ns: int
    window_end_ns: int
    tags: list[str]
    n_samples: int
    lsn_first: int | None
    lsn_last: int | None
    gaps: list[GapInfo] = field(default_factory=list)
    late: bool = False
    config_version: str = ""
    attrs: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    key: str = ""  # "site/day/name" under the datasets root
    storage: Storage | None = field(default=None, repr=False, compare=False)

    def store(self) -> Any:
        """What xarray.open_zarr / zarr.open_group take to open this batch (read-only)."""
        return self.storage.zarr_store(self.key) if self.storage is not None else self.path

    def group_of(self, tag_name: str) -> list[str]:
        """The subgroup path(s) of a tag in this batch (two if its catalog entry changed mid-window)."""
        return [t["group"] for t in self.attrs.get("tags", []) if t["name"] == tag_name]


class TagSamples(NamedTuple):
    """Every sample of one tag, as stored: exact integers, no CF decoding."""

    source_ns: npt.NDArray[np.int64]  # NO_TIME (int64 min) = no source timestamp
    values: npt.NDArray[Any]  # the tag's natural dtype; object (str) for String
    status: npt.NDArray[np.uint32]
    server_ns: npt.NDArray[np.int64]
    flags: npt.NDArray[np.uint8]
    site: str


# -- listing -------------------------------------------------------------------

Root = str | os.PathLike[str] | Storage


def list_sites(root: Root) -> list[str]:
    return open_storage(root).list_dirs("")


def list_batches(root: Root, site: str | None = None) -> list[BatchInfo]:
    """Every published batch under root (one site or all), by site, window, then LSN.

    `root` is a directory, an s3://bucket/prefix URL, or a Storage. Batches being
    written, or left unpublished by a crash, are never listed.
    """
    st = open_storage(root)
    out: list[BatchInfo] = []
    for s in ([site] if site is not None else st.list_dirs("")):
        keys = [f"{s}/{day}/{name}" for day in st.list_dirs(s) if L.is_day_dir(day)
                for name in st.list_published(s, day)]
        out += [_batch_info(st, k, s, a) for k, a in zip(keys, st.batch_attrs_many(keys))]
    out.sort(key=lambda b: (b.site, b.window_start_ns, -1 if b.lsn_last is None else b.lsn_last, b.name))
    return out


def find_batch(root: Root, batch: str | os.PathLike[str]) -> BatchInfo:
    """A batch by its path or URL (as `list_batches` prints it), its key
    `site/day/name`, or its bare name (searched in every site)."""
    st = open_storage(root)
    text = str(batch)
    if isinstance(st, LocalStorage) and Path(text).is_dir():
        p = Path(text).resolve()
        try:
            text = str(p.relative_to(Path(st.url).resolve()))
        except ValueError:  # a batch outside root: open it where it is
            if len(p.parts) < 4:
                raise FileNotFoundError(f"BATCH: no published batch at {batch}") from None
            st = LocalStorage(p.parents[2])
            text = "/".join(p.parts[-3:])
    elif text.startswith(st.url.rstrip("/") + "/"):
        text = text[len(st.url.rstrip("/")) + 1:]
    parts = text.strip("/").split("/")
    if len(parts) == 3 and L.parse_batch_dir(parts[1], parts[2]) is not None:
        if parts[2] in st.list_published(parts[0], parts[1]):
            return _batch_info(st, "/".join(parts), parts[0])
    elif len(parts) == 1 and parts[0]:
        found = [b for b in list_batches(st) if b.name == parts[0]]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise FileNotFoundError(f"BATCH: {text!r} names {len(found)} batches; give site/day/name")
    raise FileNotFoundError(f"BATCH: no published batch {str(batch)!r} under {st.url}")


def _batch_info(st: Storage, key: str, site: str, attrs: dict[str, Any] | None = None) -> BatchInfo:
    a = st.batch_attrs(key) if attrs is None else attrs
    path = st.batch_url(key)
    gaps = [GapInfo(site=site, batch=path, reason=g["reason"], tags=list(g["tags"]),
                    t_first_ns=int(g["t_first_ns"]), t_last_ns=int(g["t_last_ns"]),
                    seq_first=g["seq_first"], seq_last=g["seq_last"]) for g in a.get("gaps", [])]
    names = list(dict.fromkeys(t["name"] for t in a.get("tags", [])))
    return BatchInfo(path=path, site=a.get("site", site), name=key.rsplit("/", 1)[-1],
                     window_start_ns=int(a["window_start_ns"]), window_end_ns=int(a["window_end_ns"]),
                     tags=names, n_samples=int(a.get("n_samples", 0)),
                     lsn_first=a.get("lsn_first"), lsn_last=a.get("lsn_last"), gaps=gaps,
                     late=bool(a.get("late", False)), config_version=str(a.get("config_version", "")),
                     attrs=a, key=key, storage=st)


def list_gaps(root: Root, site: str | None = None) -> list[GapInfo]:
    """Every gap record under root, by site and first missing time."""
    gaps = [g for b in list_batches(root, site) for g in b.gaps]
    gaps.sort(key=lambda g: (g.site, g.t_first_ns, g.t_last_ns))
    return gaps


# -- xarray ----------------------------------------------------------------------

def open_tag(root: Root, site: str, tag_name: str,
             batch: str | os.PathLike[str] | BatchInfo | None = None) -> xr.Dataset:
    """One tag as an xarray Dataset (dim `time`: value, status, server_time, flags).

    With `batch` (a BatchInfo, or anything `find_batch` takes) only that batch;
    otherwise every batch of the site, concatenated and sorted by source time.
    Raises KeyError if the tag is in none of them.
    """
    if batch is None:
        batches = list_batches(root, site)
    elif isinstance(batch, BatchInfo):
        batches = [batch]
    else:
        try:
            batches = [find_batch(root, batch)]
        except FileNotFoundError as e:
            raise KeyError(str(e)) from None
    parts: list[xr.Dataset] = []
    sources: list[str] = []
    for b in batches:
        for g in b.group_of(tag_name):
            parts.append(_open_group(b, g))
            sources.append(b.path)
    if not parts:
        raise KeyError(f"tag {tag_name!r} is in no batch of site {site!r} under {open_storage(root).url}")
    if len(parts) == 1:
        ds = parts[0]
    else:
        ds = xr.concat(parts, dim="time", data_vars="all", coords="different", compat="equals",
                       join="outer", combine_attrs="override")
        ds = ds.sortby("time")
        ds.attrs = dict(parts[-1].attrs)  # the newest catalog entry
    ds.attrs["batches"] = sources
    return ds


def _open_group(b: BatchInfo, group: str) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        ds: xr.Dataset = xr.open_zarr(b.store(), group=group, chunks=None, consolidated=True).load()
    return ds


def quality_mask(ds: xr.Dataset, allow_uncertain: bool = False) -> xr.Dataset:
    """`ds` with `value` replaced by NaN where the sample is not usable.

    Not usable: Bad status (severity bits 10, and the reserved 11), Uncertain
    unless `allow_uncertain`, and null values (flags bit 1). Integer and boolean
    values become float (or object for strings) so they can hold NaN.
    """
    ok = usable(ds, allow_uncertain)
    out = ds.copy()
    out["value"] = ds["value"].where(ok)
    out["value"].attrs = dict(ds["value"].attrs)
    return out


def usable(ds: xr.Dataset, allow_uncertain: bool = False) -> xr.DataArray:
    """True where a sample's status (and null flag) make its value usable."""
    sev = ds["status"].astype(np.uint32) & np.uint32(L.SEVERITY_MASK)
    ok = sev == L.SEVERITY_GOOD
    if allow_uncertain:
        ok = ok | (sev == L.SEVERITY_UNCERTAIN)
    if "flags" in ds:
        ok = ok & ((ds["flags"] & 1) == 0)
    return ok


# -- raw samples ------------------------------------------------------------------

def iter_tag_samples(root: Root, site: str | None = None) -> Iterator[tuple[str, TagSamples]]:
    """(tag name, TagSamples) per site and tag, across every batch, by source time.

    Samples without a source timestamp come last; equal times keep batch and
    arrival order. Read with zarr directly: exact int64 times, no CF decoding.
    """
    st = open_storage(root)
    for s in ([site] if site is not None else list_sites(st)):
        parts: dict[str, list[tuple[npt.NDArray[Any], ...]]] = {}
        for b in list_batches(st, s):
            g = open_batch_group(b)
            for t in b.attrs.get("tags", []):
                parts.setdefault(t["name"], []).append(read_columns(g, t["group"]))
        for name in sorted(parts):
            cols = list(zip(*parts[name]))
            src = np.concatenate(cols[0]).astype(np.int64)
            values = concat_values(cols[1])
            status = np.concatenate(cols[2]).astype(np.uint32)
            srv = np.concatenate(cols[3]).astype(np.int64)
            flags = np.concatenate(cols[4]).astype(np.uint8)
            order = np.argsort(np.where(src == NO_TIME, np.iinfo(np.int64).max, src), kind="stable")
            yield name, TagSamples(src[order], values[order], status[order], srv[order], flags[order], s)


def iter_samples(root: Root, site: str | None = None) -> Iterator[
        tuple[str, tuple[npt.NDArray[np.int64], npt.NDArray[Any], npt.NDArray[np.uint32]]]]:
    """(tag name, (source_ns, values, status)) per tag; see iter_tag_samples.

    `dict(iter_samples(root, site))` maps name -> arrays for one site.
    """
    for name, t in iter_tag_samples(root, site):
        yield name, (t.source_ns, t.values, t.status)


COLUMNS = ("time", "value", "status", "server_time", "flags")


def open_batch_group(b: BatchInfo) -> zarr.Group:
    """The batch's zarr group, read-only, from its consolidated metadata (one read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: consolidated metadata is not in the v3 spec yet
        return zarr.open_group(b.store(), mode="r", use_consolidated=True)


def read_columns(g: zarr.Group, group: str) -> tuple[npt.NDArray[Any], ...]:
    """One tag group's COLUMNS as stored: int64 times, natural-dtype values, ..."""
    sub = g[group]
    assert isinstance(sub, zarr.Group)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tuple(np.asarray(_array(sub, n)[:]) for n in COLUMNS)


def _array(g: zarr.Group, name: str) -> zarr.Array[Any]:
    a = g[name]
    assert isinstance(a, zarr.Array)
    return a


def concat_values(arrs: Iterable[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    fixed = [np.asarray(a, dtype=object) if a.dtype.kind in "OTU" else a for a in arrs]
    return np.concatenate(fixed) if fixed else np.empty(0)


# -- CLI text -------------------------------------------------------------------------

def format_batches_table(batches: list[BatchInfo]) -> str:
    """The `tidegate datasets list` table: one line per batch, then totals.

    SPAN is the source-time range of the batch's samples (UTC, within the
    window). COMPLETE is "yes" when no gap record of the site (from any batch:
    a gap is recorded once, in the window where it starts) overlaps the window,
    else the number of gaps that do.
    """
    if not batches:
        return "no batches"
    head = ("SITE", "WINDOW START (UTC)", "LEN", "SPAN", "TAGS", "SAMPLES", "GAPS", "COMPLETE", "LSN", "PATH")
    gaps_by_site: dict[str, list[GapInfo]] = {}
    for b in batches:
        gaps_by_site.setdefault(b.site, []).extend(b.gaps)
    rows = [head]
    for b in batches:
        lsn = "-" if b.lsn_first is None else f"{b.lsn_first}-{b.lsn_last}"
        length = f"{(b.window_end_ns - b.window_start_ns) // L.NS_PER_S}s" + (" late" if b.late else "")
        first, last = b.attrs.get("time_first_ns"), b.attrs.get("time_last_ns")
        span = "-" if first is None or last is None else f"{L.iso_ns(first)[11:19]}-{L.iso_ns(last)[11:19]}"
        hits = sum(1 for g in gaps_by_site[b.site] if _overlaps(g, b.window_start_ns, b.window_end_ns))
        rows.append((b.site, L.iso_ns(b.window_start_ns), length, span, str(len(b.tags)), str(b.n_samples),
                     str(len(b.gaps)), "yes" if not hits else f"no ({hits} gaps)", lsn, b.path))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    total = sum(b.n_samples for b in batches)
    lines.append(f"{len(batches)} batches, {total} samples, {sum(len(b.gaps) for b in batches)} gaps")
    return "\n".join(lines)


def _overlaps(g: GapInfo, start: int, end: int) -> bool:
    """A gap with an unknown end (or start) is taken to reach the known one."""
    lo = g.t_first_ns if g.t_first_ns != NO_TIME else g.t_last_ns
    hi = g.t_last_ns if g.t_last_ns != NO_TIME else g.t_first_ns
    if lo == NO_TIME:  # neither end known: recorded in its arrival window
        return False
    return lo < end and hi >= start


def describe_batch(batch: str | os.PathLike[str] | BatchInfo, root: Root | None = None) -> str:
    """The `tidegate datasets show BATCH` text: attributes, per-tag summary, gaps, how to open.

    `batch`: a BatchInfo, or a path/URL/key/name (see `find_batch`) under `root`;
    without `root`, a local batch directory.
    """
    if isinstance(batch, BatchInfo):
        b = batch
    else:
        try:
            b = find_batch(root if root is not None else Path(batch).parent.parent.parent, batch)
        except ValueError as e:  # not ours (or not JSON): the CLI prints it as one line
            raise FileNotFoundError(f"BATCH: {e}") from e
    a = b.attrs
    p = b.path
    lines = [
        f"batch    {p}",
        f"site     {a['site']}",
        f"window   {a['window_start']} .. {a['window_end']} ({a['batch_seconds']} s)"
        + ("  [late: another batch of this window was published first]" if a.get("late") else ""),
        f"samples  {a['n_samples']} in {a['n_tags']} tags"
        + (f", source times {L.iso_ns(a['time_first_ns'])} .. {L.iso_ns(a['time_last_ns'])}"
           if a.get("time_first_ns") is not None else ""),
        f"lsn      {a.get('lsn_first')} .. {a.get('lsn_last')}",
        "frames   " + (", ".join(f"session {f['session_id']} seq {f['seq_first']}..{f['seq_last']}"
                                 for f in a.get("frames", [])) or "-"),
        f"config   {a.get('config_version') or '-'}",
        f"created  {a.get('created', '-')} by {a.get('writer', '-')}",
        "",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = zarr.open_group(b.store(), mode="r", use_consolidated=True)
        rows = [("TAG", "TYPE", "UNIT", "SAMPLES", "GOOD", "UNCERT", "BAD", "NULL", "FIRST", "LAST", "GROUP")]
        for t in a.get("tags", []):
            sub = g[t["group"]]
            assert isinstance(sub, zarr.Group)
            status = np.asarray(_array(sub, "status")[:], np.uint32)
            flags = np.asarray(_array(sub, "flags")[:], np.uint8)
            times = np.asarray(_array(sub, "time")[:], np.int64)
            sev = status & np.uint32(L.SEVERITY_MASK)
            real = times[times != NO_TIME]
            rows.append((t["name"], t["data_type"], t.get("unit") or "-", str(t["n_samples"]),
                         str(int((sev == L.SEVERITY_GOOD).sum())), str(int((sev == L.SEVERITY_UNCERTAIN).sum())),
                         str(int((sev >= L.SEVERITY_BAD).sum())), str(int(((flags & 1) != 0).sum())),
                         L.iso_ns(int(real.min())) if real.size else "-",
                         L.iso_ns(int(real.max())) if real.size else "-", t["group"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    gaps = a.get("gaps", [])
    lines.append("")
    lines.append(f"gaps     {len(gaps)}")
    for gp in gaps:
        seq = "-" if gp["seq_first"] is None else f"{gp['seq_first']}..{gp['seq_last']}"
        lines.append(f"  {gp['reason']}: {_fmt_t(gp['t_first_ns'])} .. {_fmt_t(gp['t_last_ns'])}, "
                     f"seq {seq}, tags {', '.join(gp['tags']) or 'all'}")
    first = a.get("tags", [{}])[0].get("group", "tags/<name>") if a.get("tags") else "tags/<name>"
    lines += ["", "open with:", f'  xarray.open_zarr("{p}", group="{first}")']
    return "\n".join(lines)


def _fmt_t(ns: int) -> str:
    return "?" if ns == NO_TIME else L.iso_ns(int(ns))
