"""All tags at one instant: the as-of value of every tag of a site.

IT's second common read ("what did the plant look like at 12:30:05?"). A
per-tag layout makes it one small read per tag, so they are issued
concurrently (zarr's async API): a handful of round trips on S3, not hundreds.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import xarray as xr
import zarr
import zarr.api.asynchronous as za

from edge.datasets import layout as L
from edge.datasets.reader import BatchInfo, Root, list_batches
from edge.model import NO_TIME

DEFAULT_LOOKBACK_S = 86_400


def values_at(root: Root, site: str, t_ns: int, tags: list[str] | None = None,
              lookback_s: int = DEFAULT_LOOKBACK_S) -> xr.Dataset:
    """Each tag's last sample at or before `t_ns` (Unix ns), looking back at most
    `lookback_s`. A Dataset on dimension `tag`: `value` (object: each tag keeps
    its own type; None if no sample), `time` (the sample's source time, NaT if
    none), `status`, `age_s`, and `unit`/`data_type` as coordinates."""
    batches = [b for b in list_batches(root, site)
               if b.window_start_ns <= t_ns and b.window_end_ns > t_ns - lookback_s * L.NS_PER_S]
    # "All tags": every tag with a batch in the lookback (from the batches'
    # attributes, no data read); a tag reported by exception may be quiet for hours.
    wanted = set(tags) if tags is not None else {t["name"] for b in batches for t in b.attrs.get("tags", [])}
    found: dict[str, tuple[int, Any, int]] = {}
    meta: dict[str, dict[str, Any]] = {}
    windows: dict[int, list[BatchInfo]] = {}
    for b in batches:
        windows.setdefault(b.window_start_ns, []).append(b)
    # Newest window first, every batch of it (a late batch may hold a later sample),
    # then older windows only for the tags still without a sample.
    for start in sorted(windows, reverse=True):
        done = set(found)  # found in a newer window: older samples cannot be later
        for b in windows[start]:
            todo = [t for t in b.attrs.get("tags", []) if t["name"] in wanted and t["name"] not in done]
            for t in todo:
                meta.setdefault(t["name"], t)
            if not todo:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hits = zarr.core.sync.sync(_as_of(b, [t["group"] for t in todo], t_ns))
            for t, hit in zip(todo, hits):
                if hit is not None and (t["name"] not in found or hit[0] > found[t["name"]][0]):
                    found[t["name"]] = hit
        if wanted <= set(found):
            break
    names = sorted(n for n in wanted if n in meta)
    if tags is not None and (missing := set(tags) - set(meta)):
        raise KeyError(f"tags not in site {site!r} within {lookback_s} s before {L.iso_ns(t_ns)}: "
                       + ", ".join(sorted(missing)))
    times = np.array([found[n][0] if n in found else NO_TIME for n in names], np.int64)
    values = np.empty(len(names), dtype=object)
    values[:] = [found[n][1] if n in found else None for n in names]
    status = np.array([found[n][2] if n in found else 0 for n in names], np.uint32)
    age = np.where(times == NO_TIME, np.nan, (t_ns - times) / L.NS_PER_S)
    return xr.Dataset(
        {"value": ("tag", values), "time": ("tag", times.astype("datetime64[ns]")),
         "status": ("tag", status), "age_s": ("tag", age)},
        coords={"tag": names, "unit": ("tag", [meta[n].get("unit") or "" for n in names]),
                "data_type": ("tag", [meta[n]["data_type"] for n in names])},
        attrs={"site": site, "at": L.iso_ns(t_ns), "lookback_s": lookback_s})


async def _as_of(b: BatchInfo, groups: list[str], t_ns: int) -> list[tuple[int, Any, int] | None]:
    g = await za.open_group(b.store(), mode="r", use_consolidated=True)
    sem = asyncio.Semaphore(64)

    async def one(group: str) -> tuple[int, Any, int] | None:
        async with sem:
            times = await _read(g, f"{group}/time")
            ok = times != NO_TIME
            i = int(np.searchsorted(np.where(ok, times, np.iinfo(np.int64).max), t_ns, side="right")) - 1
            if i < 0:
                return None
            vals, status = await asyncio.gather(_read(g, f"{group}/value", i), _read(g, f"{group}/status", i))
            v = vals.item() if hasattr(vals, "item") else vals
            return int(times[i]), v, int(status)

    return list(await asyncio.gather(*(one(grp) for grp in groups)))


async def _read(g: Any, path: str, i: int | None = None) -> npt.NDArray[Any]:
    arr = await g.getitem(path)
    out: npt.NDArray[Any] = await arr.getitem(slice(None) if i is None else i)
    return out
