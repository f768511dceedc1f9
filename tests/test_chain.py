"""The whole chain, end to end with real parts: the simulator (asyncua server on
loopback) -> agent process -> Rust spool -> UDP on loopback -> receiver process
-> IT spool -> zarr, read back with xarray. Every value the simulator published
must land with its source timestamp and status code, for every data type."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import xarray as xr

from edge.datasets import iter_samples, list_batches, open_tag
from edge.demo import DemoOptions, run_demo


def test_every_published_value_lands_in_zarr(tmp_path: Path) -> None:
    out = io.StringIO()
    rc = run_demo(DemoOptions(headless=True, duration=12, state_dir=tmp_path, seed=7, out=out))
    text = out.getvalue()
    assert rc == 0, text
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["missing"] == 0 and summary["unexpected"] == 0, text
    # The run must have moved real data: 200+ tags' initial values plus dynamics.
    assert summary["source_values"] > 1000, text
    assert summary["zarr_values"] == summary["source_values"]
    assert summary["link_bytes"] > summary["data_payload_bytes"] > 0
    assert summary["compression_ratio"] > 1.0

    datasets = tmp_path / "datasets"
    batches = list_batches(datasets)
    assert batches, "no zarr batch published"

    # Every data type arrives in its natural dtype, with units and provenance.
    seen_kinds: set[str] = set()
    for name, (times, values, status) in iter_samples(datasets, "demo-plant"):
        assert times.dtype == np.int64 and status.dtype == np.uint32
        seen_kinds.add(values.dtype.kind)
    assert {"f", "i", "b"} <= seen_kinds and ({"O", "U", "T"} & seen_kinds), seen_kinds


def test_chain_dataset_opens_with_xarray(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_demo(DemoOptions(headless=True, duration=4, state_dir=tmp_path, seed=3, out=out)) == 0, out.getvalue()
    names = [name for name, _ in iter_samples(tmp_path / "datasets", "demo-plant")]
    ds = open_tag(tmp_path / "datasets", "demo-plant", names[0])
    assert isinstance(ds, xr.Dataset)
    assert np.issubdtype(ds["time"].dtype, np.datetime64)
    for key in ("unit", "node_id", "site", "data_type"):
        assert key in ds["value"].attrs or key in ds.attrs, key
