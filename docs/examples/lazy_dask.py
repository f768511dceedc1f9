"""Reading at scale: every batch of every site, opened lazily, computed with dask.

    python docs/examples/lazy_dask.py ROOT [TAG-PATTERN]

ROOT is a datasets directory or an s3://bucket/prefix URL (credentials and
endpoint from the AWS_* environment). Opening reads only metadata: one
consolidated zarr.json per batch (on S3, plus one small manifest). Every
variable is a dask array with one chunk per batch; nothing else is read until
`dask.compute`, which then reads the chunks in parallel and streams through them.

What it computes: the hourly mean of every numeric tag matching TAG-PATTERN
(default: all), from Good samples only, side by side for all sites, as one
DataArray with dimensions (site, tag, time).
"""

from __future__ import annotations

import fnmatch
import sys
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from edge.datasets import list_batches

NUMERIC = {"Float", "Double", "SByte", "Int16", "Int32", "Int64", "Byte", "UInt16", "UInt32", "UInt64"}


def open_lazy(root: Any, pattern: str = "*") -> dict[tuple[str, str], xr.Dataset]:
    """(site, tag) -> that tag over every batch of the site, dask-backed, by time."""
    parts: dict[tuple[str, str], list[xr.Dataset]] = {}
    for b in list_batches(root):  # published batches only, in time order
        for t in b.attrs["tags"]:
            if t["data_type"] in NUMERIC and fnmatch.fnmatchcase(t["name"], pattern):
                # chunks={}: dask arrays on zarr's own chunks (one per batch); no data read yet.
                ds = xr.open_zarr(b.store(), group=t["group"], chunks={}, consolidated=True)
                parts.setdefault((b.site, t["name"]), []).append(ds)
    # Late batches can overlap a window: sortby keeps the series in time order (lazily).
    return {k: xr.concat(v, dim="time", combine_attrs="override").sortby("time") for k, v in parts.items()}


def hourly_good_mean(root: Any, pattern: str = "*") -> xr.DataArray:
    """Hourly mean of the Good samples of each (site, tag): a (site, tag, time) DataArray."""
    lazy = {}
    for key, ds in open_lazy(root, pattern).items():
        good = ds["value"].astype("float64").where((ds["status"] & 0xC0000000) == 0)  # OPC UA severity Good
        lazy[key] = good.resample(time="1h").mean()
    (done,) = dask.compute(lazy)  # one graph: every batch of every site read in parallel
    if not done:
        return xr.DataArray(np.empty((0, 0, 0)), dims=("site", "tag", "time"), name="hourly_good_mean")
    index = pd.MultiIndex.from_tuples(list(done), names=["site", "tag"])
    stacked = xr.concat(list(done.values()), dim="series", join="outer").assign_coords(
        xr.Coordinates.from_pandas_multiindex(index, "series"))
    return stacked.unstack("series").transpose("site", "tag", "time").rename("hourly_good_mean")


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    result = hourly_good_mean(argv[0], argv[1] if len(argv) > 1 else "*")
    print(result.to_dataframe().dropna().to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
