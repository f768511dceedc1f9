"""Readers of published batches: listing, per-tag xarray Datasets, raw samples,
gaps, quality masking, and the text the `tidegate datasets` command prints."""

from __future__ import annotations

import json
import os
import re
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

def list_sites(root: str | os.PathLike[str]) -> list[str]:
    r = Path(root)
    if not r.is_dir():
        return []
    return sorted(d.name for d in r.iterdir() if d.is_dir() and not d.name.startswith("."))


def list_batches(root: str | os.PathLike[str], site: str | None = None) -> list[BatchInfo]:
    """Every published batch under root (one site or all), by site, window, then LSN.

    Hidden temporary directories (a batch being written, or left by a crash) are
    never listed.
    """
    out: list[BatchInfo] = []
    for s in ([site] if site is not None else list_sites(root)):
        sdir = Path(root) / s
        if not sdir.is_dir():
            continue
        for day in sorted(os.listdir(sdir)):
            if not L.is_day_dir(day) or not (sdir / day).is_dir():
                continue
            for name in os.listdir(sdir / day):
                if L.parse_batch_dir(day, name) is None:
                    continue
                path = sdir / day / name
                if (path / "zarr.json").is_file():
                    out.append(_batch_info(path, s))
    out.sort(key=lambda b: (b.site, b.window_start_ns, -1 if b.lsn_last is None else b.lsn_last, b.name))
    return out


def _batch_info(path: Path, site: str) -> BatchInfo:
    a = _root_attrs(path)
    gaps = [GapInfo(site=site, batch=str(path), reason=g["reason"], tags=list(g["tags"]),
                    t_first_ns=int(g["t_first_ns"]), t_last_ns=int(g["t_last_ns"]),
                    seq_first=g["seq_first"], seq_last=g["seq_last"]) for g in a.get("gaps", [])]
    names = list(dict.fromkeys(t["name"] for t in a.get("tags", [])))
    return BatchInfo(path=str(path), site=a.get("site", site), name=path.name,
                     window_start_ns=int(a["window_start_ns"]), window_end_ns=int(a["window_end_ns"]),
                     tags=names, n_samples=int(a.get("n_samples", 0)),
                     lsn_first=a.get("lsn_first"), lsn_last=a.get("lsn_last"), gaps=gaps,
                     late=bool(a.get("late", False)), config_version=str(a.get("config_version", "")),
                     attrs=a)


_ATTRS_START = re.compile(r'\s*\{\s*"attributes"\s*:\s*')


def _root_attrs(path: Path) -> dict[str, Any]:
    """The batch group's attributes, without parsing the consolidated metadata.

    The root zarr.json also holds the metadata of every array (about 6 kB per
    tag); zarr writes "attributes" first, so only that object is read and parsed.
    """
    attrs: dict[str, Any] | None = None
    size = 1 << 16
    with open(path / "zarr.json", "rb") as f:
        while attrs is None:
            f.seek(0)
            head = f.read(size)
            whole = len(head) < size
            text = head.decode("utf-8", errors="ignore")
            m = _ATTRS_START.match(text)
            if m is None or whole:
                attrs = json.loads(text if whole else head + f.read()).get("attributes", {})
                break
            try:
                attrs = json.JSONDecoder().raw_decode(text, m.end())[0]
            except json.JSONDecodeError:
                size *= 4  # the attributes run past what was read
    if attrs.get("tidegate_format") != L.FORMAT:
        raise ValueError(f"{path}: not a tidegate batch (tidegate_format {attrs.get('tidegate_format')!r})")
    return attrs


def list_gaps(root: str | os.PathLike[str], site: str | None = None) -> list[GapInfo]:
    """Every gap record under root, by site and first missing time."""
    gaps = [g for b in list_batches(root, site) for g in b.gaps]
    gaps.sort(key=lambda g: (g.site, g.t_first_ns, g.t_last_ns))
    return gaps


# -- xarray ----------------------------------------------------------------------

def open_tag(root: str | os.PathLike[str], site: str, tag_name: str,
             batch: str | os.PathLike[str] | BatchInfo | None = None) -> xr.Dataset:
    """One tag as an xarray Dataset (dim `time`: value, status, server_time, flags).

    With `batch` (a path, a BatchInfo, or a batch directory name) only that batch;
    otherwise every batch of the site, concatenated and sorted by source time.
    Raises KeyError if the tag is in none of them.
    """
    if batch is None:
        batches = list_batches(root, site)
    elif isinstance(batch, BatchInfo):
        batches = [batch]
    else:
        p = Path(batch)
        if not p.is_absolute() and not p.exists():
            found = [b for b in list_batches(root, site) if b.name == str(batch)]
            if not found:
                raise KeyError(f"no batch {str(batch)!r} under {Path(root) / site}")
            batches = found
        else:
            batches = [_batch_info(p, site)]
    parts: list[xr.Dataset] = []
    sources: list[str] = []
    for b in batches:
        for g in b.group_of(tag_name):
            parts.append(_open_group(b.path, g))
            sources.append(b.path)
    if not parts:
        raise KeyError(f"tag {tag_name!r} is in no batch of site {site!r} under {root}")
    if len(parts) == 1:
        ds = parts[0]
    else:
        ds = xr.concat(parts, dim="time", data_vars="all", coords="different", compat="equals",
                       join="outer", combine_attrs="override")
        ds = ds.sortby("time")
        ds.attrs = dict(parts[-1].attrs)  # the newest catalog entry
    ds.attrs["batches"] = sources
    return ds


def _open_group(path: str, group: str) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        ds: xr.Dataset = xr.open_zarr(path, group=group, chunks=None, consolidated=True).load()
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

def iter_tag_samples(root: str | os.PathLike[str], site: str | None = None) -> Iterator[tuple[str, TagSamples]]:
    """(tag name, TagSamples) per site and tag, across every batch, by source time.

    Samples without a source timestamp come last; equal times keep batch and
    arrival order. Read with zarr directly: exact int64 times, no CF decoding.
    """
    for s in ([site] if site is not None else list_sites(root)):
        parts: dict[str, list[tuple[npt.NDArray[Any], ...]]] = {}
        for b in list_batches(root, s):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g = zarr.open_group(b.path, mode="r", use_consolidated=True)
                for t in b.attrs.get("tags", []):
                    sub = g[t["group"]]
                    assert isinstance(sub, zarr.Group)
                    parts.setdefault(t["name"], []).append(tuple(
                        np.asarray(_array(sub, n)[:]) for n in ("time", "value", "status", "server_time", "flags")))
        for name in sorted(parts):
            cols = list(zip(*parts[name]))
            src = np.concatenate(cols[0]).astype(np.int64)
            values = _concat_values(cols[1])
            status = np.concatenate(cols[2]).astype(np.uint32)
            srv = np.concatenate(cols[3]).astype(np.int64)
            flags = np.concatenate(cols[4]).astype(np.uint8)
            order = np.argsort(np.where(src == NO_TIME, np.iinfo(np.int64).max, src), kind="stable")
            yield name, TagSamples(src[order], values[order], status[order], srv[order], flags[order], s)


def iter_samples(root: str | os.PathLike[str], site: str | None = None) -> Iterator[
        tuple[str, tuple[npt.NDArray[np.int64], npt.NDArray[Any], npt.NDArray[np.uint32]]]]:
    """(tag name, (source_ns, values, status)) per tag; see iter_tag_samples.

    `dict(iter_samples(root, site))` maps name -> arrays for one site.
    """
    for name, t in iter_tag_samples(root, site):
        yield name, (t.source_ns, t.values, t.status)


def _array(g: zarr.Group, name: str) -> zarr.Array[Any]:
    a = g[name]
    assert isinstance(a, zarr.Array)
    return a


def _concat_values(arrs: Iterable[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    fixed = [np.asarray(a, dtype=object) if a.dtype.kind in "OTU" else a for a in arrs]
    return np.concatenate(fixed) if fixed else np.empty(0)


# -- CLI text -------------------------------------------------------------------------

def format_batches_table(batches: list[BatchInfo]) -> str:
    """The `tidegate datasets list` table: one line per batch, then totals."""
    if not batches:
        return "no batches"
    head = ("SITE", "WINDOW START (UTC)", "LEN", "TAGS", "SAMPLES", "GAPS", "LSN", "PATH")
    rows = [head]
    for b in batches:
        lsn = "-" if b.lsn_first is None else f"{b.lsn_first}-{b.lsn_last}"
        length = f"{(b.window_end_ns - b.window_start_ns) // L.NS_PER_S}s" + (" late" if b.late else "")
        rows.append((b.site, L.iso_ns(b.window_start_ns), length, str(len(b.tags)), str(b.n_samples),
                     str(len(b.gaps)), lsn, b.path))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    total = sum(b.n_samples for b in batches)
    lines.append(f"{len(batches)} batches, {total} samples, {sum(len(b.gaps) for b in batches)} gaps")
    return "\n".join(lines)


def describe_batch(path: str | os.PathLike[str]) -> str:
    """The `tidegate datasets show BATCH` text: attributes, per-tag summary, gaps, how to open."""
    p = Path(path)
    if not (p / "zarr.json").is_file():
        raise FileNotFoundError(f"BATCH: no zarr batch at {p}")
    try:
        a = _root_attrs(p)
    except ValueError as e:  # not ours (or not JSON): the CLI prints it as one line
        raise FileNotFoundError(f"BATCH: {e}") from e
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
        g = zarr.open_group(str(p), mode="r", use_consolidated=True)
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
