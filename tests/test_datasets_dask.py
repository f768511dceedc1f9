"""docs/examples/lazy_dask.py on real batches of two sites: opened lazily (dask
arrays, nothing read), then computed across every batch and site."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import dask.array as da
import numpy as np

from edge.datasets import DatasetWriter

from test_datasets import BAD, GOOD, HOUR, REPO, S, W0, catalog, frame

EXAMPLE = REPO / "docs" / "examples" / "lazy_dask.py"


def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lazy_dask", EXAMPLE)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_sites(root: Path) -> dict[tuple[str, str, int], float]:
    """Two sites, three hourly batches each; returns the expected Good means."""
    tags = catalog(["Double", "Int32", "String"])
    want: dict[tuple[str, str, int], float] = {}
    for k, site in enumerate(["north", "south"]):
        w = DatasetWriter(root, site, 3600)
        w.set_catalog(tags)
        for h in range(3):
            rows = []
            for i in range(60):
                t = W0 + h * HOUR + i * 60 * S
                status = BAD if i % 10 == 0 else GOOD
                rows += [(0, t, t, status, 100.0 * k + h + i / 100, 0), (1, t, t, status, 1000 * k + i, 0),
                         (2, t, t, GOOD, f"s{i}", 0)]
            w.add(frame(tags, rows), h)
            good = [i for i in range(60) if i % 10]
            want[(site, tags[0].name, h)] = float(np.mean([100.0 * k + h + i / 100 for i in good]))
            want[(site, tags[1].name, h)] = float(np.mean([1000 * k + i for i in good]))
        w.flush()
    return want


def test_lazy_open_and_compute_across_batches_and_sites(tmp_path: Path) -> None:
    want = write_sites(tmp_path)
    ex = example()
    lazy = ex.open_lazy(tmp_path)
    assert sorted({s for s, _ in lazy}) == ["north", "south"] and len(lazy) == 4  # String tags skipped
    ds = lazy[("north", catalog(["Double"])[0].name)]
    assert isinstance(ds["value"].data, da.Array) and ds.sizes["time"] == 180  # lazy, three batches
    result = ex.hourly_good_mean(tmp_path)
    assert result.dims == ("site", "tag", "time") and result.sizes["time"] == 3
    for (site, tag, h), v in want.items():
        got = float(result.sel(site=site, tag=tag).isel(time=h))
        assert abs(got - v) < 1e-9, (site, tag, h, got, v)
    assert np.datetime64(result["time"].values[0], "ns").astype(np.int64) == W0


def test_example_runs_as_documented(tmp_path: Path) -> None:
    write_sites(tmp_path)
    out = subprocess.run([sys.executable, str(EXAMPLE), str(tmp_path), "*Double*"], capture_output=True,
                         text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "north" in out.stdout and "south" in out.stdout and "Int32" not in out.stdout
