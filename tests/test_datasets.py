"""edge.datasets: real zarr batches on disk, read back with xarray.open_zarr and zarr."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from edge.datasets import (
    DatasetWriter,
    describe_batch,
    format_batches_table,
    iter_samples,
    iter_tag_samples,
    list_batches,
    list_gaps,
    open_tag,
    quality_mask,
)
from edge.model import NO_TIME, NUMPY_DTYPES, ColumnBatch, SampleFlags, TagInfo, encode_value

REPO = Path(__file__).resolve().parents[1]
SITE = "plant-1"
S = 1_000_000_000
HOUR = 3600 * S
# 2025-10-09T08:53:20.123456789Z: sub-second down to the nanosecond.
T0 = 1_760_000_000_123_456_789
W0 = (T0 // HOUR) * HOUR  # its hourly window

GOOD = 0x0000_0000
UNCERTAIN = 0x4093_0000  # UncertainSubNormal-ish: severity bits 01
BAD = 0x8034_0000  # BadNodeIdUnknown: severity bits 10
BAD_NO_DATA = 0x809B_0000

Row = tuple[int, int, int, int, Any, int]  # tag index, source_ns, server_ns, status, value, flags


def catalog(types: list[str]) -> list[TagInfo]:
    return [TagInfo(index=i, name=f"Line 1/{t} tag", node_id=f"ns=2;s=Line1.{t}", source="opc.tcp://plc-1:4840",
                    data_type=t, unit="degC" if t == "Double" else "", description=f"a {t} tag",
                    range_low=-10.0 if t == "Double" else None, range_high=250.0 if t == "Double" else None)
            for i, t in enumerate(types)]


def frame(tags: list[TagInfo], rows: list[Row]) -> ColumnBatch:
    strings: list[str] = []
    bits = [0 if v is None else encode_value(tags[i].data_type, v, strings) for i, _, _, _, v, _ in rows]
    return ColumnBatch(
        tag=np.array([r[0] for r in rows], np.uint32),
        source_ns=np.array([r[1] for r in rows], np.int64),
        server_ns=np.array([r[2] for r in rows], np.int64),
        status=np.array([r[3] for r in rows], np.uint32),
        value_bits=np.array(bits, np.uint64),
        flags=np.array([r[5] for r in rows], np.uint8),
        strings=strings,
    )


def group_of(batch_path: str, name: str) -> str:
    attrs = json.loads((Path(batch_path) / "zarr.json").read_text())["attributes"]
    return str(next(t["group"] for t in attrs["tags"] if t["name"] == name))


def tree_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    for dirpath, _dirs, files in sorted(os.walk(path)):
        for f in sorted(files):
            p = Path(dirpath) / f
            h.update(str(p.relative_to(path)).encode())
            h.update(p.read_bytes())
            h.update(str(p.stat().st_mtime_ns).encode())
    return h.hexdigest()


# Every data type with its extremes; None = a NULL value (written with Bad status).
VALUES: dict[str, list[Any]] = {
    "Double": [0.0, -1.5, 1.7976931348623157e308, -math.inf, math.nan, 5e-324, None],
    "Float": [1.5, -3.25, 3.4028234663852886e38, math.nan, None],
    "Int32": [-(2**31), 2**31 - 1, 0, None],
    "Int64": [-(2**63), 2**63 - 1, 0, None],
    "UInt16": [0, 65535],
    "UInt32": [0, 2**32 - 1],
    "UInt64": [0, 2**64 - 1, 2**63],
    "Boolean": [True, False, None],
    "String": ["", "héllo wörld", "two\nlines, \"quoted\"", "日本語", None],
    "SByte": [-128, 127],
    "Byte": [0, 255],
    "Int16": [-32768, 32767],
}


def every_type_rows(tags: list[TagInfo]) -> list[Row]:
    rows: list[Row] = []
    for t in tags:
        for k, v in enumerate(VALUES[t.data_type]):
            src = T0 + k * 1_000_001 + t.index  # distinct, sub-second
            if v is None:
                rows.append((t.index, src, src + 17, BAD_NO_DATA, None, int(SampleFlags.NULL_VALUE)))
            else:
                status = (GOOD, UNCERTAIN, BAD)[k % 3]
                server = NO_TIME if k == 1 else src + 5_000
                rows.append((t.index, src, server, status, v, 0))
    return rows


def assert_values_equal(data_type: str, got: np.ndarray, want: list[Any]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got.tolist(), want):
        if w is None:
            if data_type in ("Float", "Double"):
                assert math.isnan(g)
            continue
        if isinstance(w, float) and math.isnan(w):
            assert math.isnan(g)
        elif data_type == "Float":
            assert g == float(np.float32(w))
        else:
            assert g == w and type(g) is type(w), (data_type, g, w)


def test_round_trip_every_type(tmp_path: Path) -> None:
    tags = catalog(list(VALUES))
    rows = every_type_rows(tags)
    # Arrival order is not time order, and a sample sent twice lands twice.
    rows = rows[::-1] + [rows[0]]
    w = DatasetWriter(tmp_path, SITE, 3600)
    w.set_catalog(tags, "cfg-7")
    w.add(frame(tags, rows[:20]), 0, session_id=42, seq=100)
    w.add(frame(tags, rows[20:]), 1, session_id=42, seq=101)
    assert w.published_lsn() == -1
    paths = w.flush()
    assert len(paths) == 1 and w.published_lsn() == 1
    path = paths[0]
    assert Path(path).parent.name == "2025-10-09" and Path(path).name == "080000-3600s-L0-1"

    for t in tags:
        want_rows = sorted((r for r in rows if r[0] == t.index), key=lambda r: r[1])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # IT opens it without a single warning
            ds = xr.open_zarr(path, group=group_of(path, t.name)).load()
        # Time: CF int64 nanoseconds, decoded to datetime64[ns] exactly.
        assert ds["time"].dtype == np.dtype("datetime64[ns]")
        assert ds["time"].values.astype(np.int64).tolist() == [r[1] for r in want_rows]
        assert ds["time"].encoding["units"] == "nanoseconds since 1970-01-01"
        assert ds["time"].encoding["calendar"] == "proleptic_gregorian"
        srv = ds["server_time"].values
        assert srv.dtype == np.dtype("datetime64[ns]")
        for got, r in zip(srv, want_rows):
            assert (np.isnat(got) if r[2] == NO_TIME else int(got.astype(np.int64)) == r[2])
        # Value in the natural dtype.
        values = ds["value"].values
        if t.data_type == "String":
            assert values.dtype.kind in "OTU"
        else:
            assert values.dtype == np.dtype(NUMPY_DTYPES[t.data_type])
        assert_values_equal(t.data_type, values, [r[4] for r in want_rows])
        assert ds["status"].dtype == np.uint32
        assert ds["status"].values.tolist() == [r[3] for r in want_rows]
        assert ds["flags"].values.tolist() == [r[5] for r in want_rows]
        # Attributes.
        assert ds.attrs["name"] == t.name and ds.attrs["node_id"] == t.node_id
        assert ds.attrs["source"] == t.source and ds.attrs["site"] == SITE
        assert ds.attrs["data_type"] == t.data_type and ds.attrs["description"] == t.description
        assert ds.attrs["config_version"] == "cfg-7"
        assert ds["value"].attrs["ancillary_variables"] == "status flags"
        assert ds["status"].attrs["flag_meanings"] == "good uncertain bad"
        assert ds["status"].attrs["flag_masks"] == [0xC0000000] * 3
        assert ds["status"].attrs["flag_values"] == [0, 0x40000000, 0x80000000]
        if t.data_type == "Double":
            assert ds["value"].attrs["units"] == "degC"
            assert ds.attrs["range"] == [-10.0, 250.0]
        else:
            assert "units" not in ds["value"].attrs and "range" not in ds.attrs

    # The raw reader sees exactly the same samples (the duplicate too).
    got = dict(iter_samples(tmp_path, SITE))
    assert sum(len(v[0]) for v in got.values()) == len(rows)
    dup = tags[rows[-1][0]].name
    assert int((got[dup][0] == rows[-1][1]).sum()) == 2
    for t in tags:
        want_rows = sorted((r for r in rows if r[0] == t.index), key=lambda r: r[1])
        src, values, status = got[t.name]
        assert src.tolist() == [r[1] for r in want_rows]
        assert status.tolist() == [r[3] for r in want_rows]
        assert_values_equal(t.data_type, values, [r[4] for r in want_rows])

    [b] = list_batches(tmp_path)
    assert (b.site, b.window_start_ns, b.window_end_ns) == (SITE, W0, W0 + HOUR)
    assert b.n_samples == len(rows) and set(b.tags) == {t.name for t in tags}
    assert (b.lsn_first, b.lsn_last) == (0, 1)
    assert b.attrs["frames"] == [{"session_id": "42", "seq_first": 100, "seq_last": 101}]
    # The whole batch opens as a tree too.
    tree = xr.open_datatree(path, engine="zarr")
    assert tree.attrs["site"] == SITE and "gaps" in tree.children


def test_windows_split_at_batch_boundaries(tmp_path: Path) -> None:
    tags = catalog(["Double"])
    edge = W0 + HOUR  # 09:00:00 exactly
    times = [edge - 1, edge, edge + 10 * 60 * S - 1, edge + 10 * 60 * S]
    w = DatasetWriter(tmp_path, SITE, 600, lateness_seconds=5)
    w.set_catalog(tags)
    w.add(frame(tags, [(0, t, t, GOOD, float(k), 0) for k, t in enumerate(times)]), 5)
    # Nothing is due before the window end plus the lateness margin.
    assert w.publish_due(edge + 4 * S) == []
    first = w.publish_due(edge + 5 * S)
    assert [Path(p).name for p in first] == ["085000-600s-L5-5"]
    rest = w.flush()
    assert [Path(p).name for p in rest] == ["090000-600s-L5-5", "091000-600s-L5-5"]
    bs = list_batches(tmp_path, SITE)
    assert [(b.window_start_ns, b.n_samples) for b in bs] == [
        (edge - 600 * S, 1), (edge, 2), (edge + 600 * S, 1)]
    ds = open_tag(tmp_path, SITE, tags[0].name)
    assert ds["time"].values.astype(np.int64).tolist() == times
    assert ds["value"].values.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_windows_wait_for_data_clock_when_replaying_a_backlog(tmp_path: Path) -> None:
    tags = catalog(["Double"])
    w = DatasetWriter(tmp_path, SITE, 3600, lateness_seconds=60)
    w.set_catalog(tags)
    now = W0 + 30 * HOUR  # the receiver catches up on day-old data
    w.publish_due(now)
    w.add(frame(tags, [(0, W0 + HOUR - S, 0, GOOD, 1.0, 0)]), 0)
    assert w.publish_due(now) == []  # the next frame may still hold this hour
    w.add(frame(tags, [(0, W0 + HOUR + 61 * S, 0, GOOD, 2.0, 0)]), 1)
    assert len(w.publish_due(now)) == 1  # the data's clock has passed the hour
    assert w.published_lsn() == 0
    # A quiet source: no newer data, but no new samples for a lateness margin either.
    assert w.publish_due(now + 30 * S) == []
    assert len(w.publish_due(now + 60 * S)) == 1
    assert w.published_lsn() == 1


def test_late_data_goes_to_a_new_batch(tmp_path: Path) -> None:
    tags = catalog(["Int32", "String"])
    w = DatasetWriter(tmp_path, SITE, 3600)
    w.set_catalog(tags)
    w.add(frame(tags, [(0, T0, T0, GOOD, 1, 0), (1, T0, T0, GOOD, "a", 0)]), 0)
    [old] = w.flush()
    before = tree_digest(old)
    # Late samples for the same hour, one earlier than anything published.
    w.add(frame(tags, [(0, T0 - S, T0, GOOD, 0, 0), (0, T0 + S, T0, BAD, 2, 0), (1, T0 + 2, T0, GOOD, "b", 0)]), 1)
    [new] = w.flush()
    assert new != old and Path(new).parent == Path(old).parent
    assert tree_digest(old) == before  # never rewritten
    bs = list_batches(tmp_path, SITE)
    assert [b.path for b in bs] == [old, new]
    assert [b.late for b in bs] == [False, True]
    ds = open_tag(tmp_path, SITE, tags[0].name)
    assert ds["time"].values.astype(np.int64).tolist() == [T0 - S, T0, T0 + S]
    assert ds["value"].values.tolist() == [0, 1, 2] and ds["value"].dtype == np.int32
    assert ds.attrs["batches"] == [old, new]
    one = open_tag(tmp_path, SITE, tags[1].name, batch=bs[1])
    assert one["value"].values.tolist() == ["b"]
    # Same window, same LSN range, gap only: still a unique name.
    w.add_gap("source_down", [0], T0, T0 + S, None, None)
    [third] = w.flush()
    assert third not in (old, new) and len(list_batches(tmp_path)) == 3


# A writer killed by SIGKILL just before it renames its second batch into place.
CRASH_CHILD = textwrap.dedent("""
    import os, signal, sys, json
    sys.path.insert(0, sys.argv[2])
    from tests.test_datasets import crash_frames, catalog, W0, HOUR, S
    from edge.datasets import DatasetWriter
    w = DatasetWriter(sys.argv[1], "plant-1", 3600, lateness_seconds=1)
    tags = catalog(["Double", "UInt64"])
    w.set_catalog(tags, "v1")
    for lsn, b in crash_frames(tags):
        w.add(b, lsn, session_id=9, seq=1000 + lsn)
    w.add_gap("spool_overflow", [1], W0 + HOUR + 30 * S, W0 + HOUR + 40 * S, 1003, 1004, lsn=10)
    published = w.publish_due(W0 + HOUR + 2 * S)
    print(json.dumps({"published": published, "cursor": w.published_lsn()}), flush=True)
    os.rename = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # power cut before the rename
    w.flush()
    print("not reached", flush=True)
""")


def crash_frames(tags: list[TagInfo]) -> list[tuple[int, ColumnBatch]]:
    """LSN 0-3 in the first hour, 4 straddles the hour boundary, 5-9 in the next."""
    out = []
    for lsn in range(10):
        base = W0 + HOUR - 4_500_000_000 + lsn * S
        rows: list[Row] = []
        for k in range(3):
            t = base + k * 400_000_000 + 7
            rows.append((0, t, t + 1, GOOD if k else BAD, lsn + k / 10, 0))
            rows.append((1, t, t + 1, UNCERTAIN, 2**64 - 1 - lsn, 0))
        out.append((lsn, frame(tags, rows)))
    return out


@pytest.mark.parametrize("inclusive", [True, False])
def test_crash_leaves_no_half_batch_and_resume_has_no_duplicates(tmp_path: Path, inclusive: bool) -> None:
    child = subprocess.run([sys.executable, "-c", CRASH_CHILD, str(tmp_path), str(REPO)],
                           capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.returncode == -9, child.stderr
    state = json.loads(child.stdout.splitlines()[0])
    assert "not reached" not in child.stdout
    [published] = state["published"]
    cursor = state["cursor"]
    assert cursor == 3  # LSN 4's second-hour samples were not published
    # The half-written batch is a hidden temp dir; readers never see it.
    day = Path(published).parent
    temps = [p for p in day.parent.rglob(".tmp-*") if p.is_dir()]
    assert len(temps) == 1
    assert [b.path for b in list_batches(tmp_path)] == [published]
    assert xr.open_zarr(published, group="tags/Line_1_Double_tag")["value"].size > 0

    # Restart: the temp dir goes, and a replay from the cursor gives every sample once.
    tags = catalog(["Double", "UInt64"])
    w = DatasetWriter(tmp_path, SITE, 3600, lateness_seconds=1)
    assert not [p for p in tmp_path.rglob(".tmp-*")]
    w.set_catalog(tags, "v1")
    start = cursor if inclusive else cursor + 1  # the receiver may re-read the cursor's frame
    for lsn, b in crash_frames(tags)[start:]:
        w.add(b, lsn, session_id=9, seq=1000 + lsn)
    w.add_gap("spool_overflow", [1], W0 + HOUR + 30 * S, W0 + HOUR + 40 * S, 1003, 1004, lsn=10)
    w.flush()
    assert w.published_lsn() == 10

    want: dict[str, list[tuple[int, Any, int]]] = {}
    for _lsn, b in crash_frames(tags):
        for i in range(len(b)):
            t = tags[int(b.tag[i])]
            v = b.value_bits[i].view(np.float64) if t.data_type == "Double" else int(b.value_bits[i])
            want.setdefault(t.name, []).append((int(b.source_ns[i]), float(v) if t.data_type == "Double" else v,
                                                int(b.status[i])))
    got = {name: sorted(zip(s.source_ns.tolist(), s.values.tolist(), s.status.tolist()))
           for name, s in iter_tag_samples(tmp_path, SITE)}
    assert got == {k: sorted(v) for k, v in want.items()}
    assert len(list_gaps(tmp_path, SITE)) == 1  # and the gap once
    bs = list_batches(tmp_path, SITE)
    assert [(b.window_start_ns, b.late) for b in bs] == [(W0, False), (W0 + HOUR, False)]


def test_gaps_are_listed_and_readable(tmp_path: Path) -> None:
    tags = catalog(["Double", "Int16"])
    w = DatasetWriter(tmp_path, SITE, 3600)
    w.set_catalog(tags)
    w.add(frame(tags, [(0, T0, T0, GOOD, 1.0, 0)]), 0)
    w.add_gap("source_down", [0, 1], T0 + S, T0 + 20 * S, 10, 12, lsn=1)
    w.add_gap("link_loss", [], T0 + HOUR, T0 + HOUR + 1, None, None, lsn=2)
    w.add_gap("unknown_tag", [7], NO_TIME, T0 + 3 * S, None, None)
    w.flush()
    gaps = list_gaps(tmp_path, SITE)
    assert [(g.reason, g.tags, g.t_first_ns, g.t_last_ns, g.seq_first, g.seq_last) for g in gaps] == [
        ("unknown_tag", ["tag#7"], NO_TIME, T0 + 3 * S, None, None),
        ("source_down", [tags[0].name, tags[1].name], T0 + S, T0 + 20 * S, 10, 12),
        ("link_loss", [], T0 + HOUR, T0 + HOUR + 1, None, None),
    ]
    # A gap-only window is a batch of its own, and the table opens with xarray.
    bs = list_batches(tmp_path, SITE)
    assert [(len(b.gaps), b.n_samples) for b in bs] == [(2, 1), (1, 0)]
    g = xr.open_zarr(bs[0].path, group="gaps")
    assert g.sizes["gap"] == 2
    assert g["reason"].values.tolist() == ["source_down", "unknown_tag"]  # in arrival order
    assert json.loads(str(g["tags"].values[0])) == [tags[0].name, tags[1].name]
    assert int(g["t_first"].values[0].astype(np.int64)) == T0 + S and np.isnat(g["t_first"].values[1])
    assert g["seq_first"].values.tolist() == [10, -1]
    assert w.published_lsn() == 2


def test_quality_mask(tmp_path: Path) -> None:
    tags = catalog(["Double", "Int64"])
    statuses = [GOOD, UNCERTAIN, BAD, 0xC000_0000, GOOD]
    rows: list[Row] = []
    for k, st in enumerate(statuses):
        null = k == 4
        rows.append((0, T0 + k, T0, st, None if null else float(k), int(SampleFlags.NULL_VALUE) if null else 0))
        rows.append((1, T0 + k, T0, st, None if null else k, int(SampleFlags.NULL_VALUE) if null else 0))
    w = DatasetWriter(tmp_path, SITE)
    w.set_catalog(tags)
    w.add(frame(tags, rows), 0)
    w.flush()
    for t in tags:
        ds = open_tag(tmp_path, SITE, t.name)
        strict = quality_mask(ds)["value"].values
        loose = quality_mask(ds, allow_uncertain=True)["value"].values
        assert [not math.isnan(x) for x in strict] == [True, False, False, False, False]
        assert [not math.isnan(x) for x in loose] == [True, True, False, False, False]
        assert strict[0] == 0 and loose[1] == 1
        assert ds["value"].dtype == NUMPY_DTYPES[t.data_type]  # the original is untouched


def test_data_before_catalog_and_unknown_tags(tmp_path: Path) -> None:
    tags = catalog(["Float", "String"])
    w = DatasetWriter(tmp_path, SITE)
    b = frame(tags, [(0, T0, T0, GOOD, 2.5, 0), (1, T0, T0, GOOD, "x", 0)])
    w.add(b, 0)  # no META yet: held, LSN stays pending
    w.publish_due(T0 + 10 * HOUR)
    assert w.published_lsn() == -1 and list_batches(tmp_path) == []
    w.set_catalog(tags[:1])  # tag 1 is not in this catalog
    w.add(frame(tags, [(0, T0 + 1, T0, GOOD, 3.5, 0)]), 1)
    w.flush()
    assert w.published_lsn() == 1
    got = dict(iter_samples(tmp_path, SITE))
    assert got[tags[0].name][1].tolist() == [2.5, 3.5]
    # Never dropped: the unnamed index keeps its raw word.
    assert list(got) == [tags[0].name, "tag#1"] and got["tag#1"][1].tolist() == [0]


def test_cli_text_and_hidden_temp_dirs(tmp_path: Path) -> None:
    tags = catalog(["Double"])
    w = DatasetWriter(tmp_path, SITE)
    w.set_catalog(tags, "v3")
    w.add(frame(tags, [(0, T0, T0, GOOD, 1.0, 0), (0, T0 + 1, T0, BAD, 2.0, 0)]), 4, session_id=1, seq=77)
    w.add_gap("source_down", [0], T0 + 2, T0 + 3, 78, 79, lsn=5)
    [path] = w.flush()
    (Path(path).parent / ".tmp-090000-3600s-L9-9-1-2").mkdir()  # another writer's, mid-write
    bs = list_batches(tmp_path)
    assert len(bs) == 1
    table = format_batches_table(bs)
    assert "2025-10-09T08:00:00Z" in table and "4-5" in table and path in table
    assert "1 batches, 2 samples, 1 gaps" in table
    assert "no (1 gaps)" in table and "08:53:20-08:53:20" in table  # completeness, data span
    text = describe_batch(path)
    for s in ("site     plant-1", "session 1 seq 77..77", "config   v3", tags[0].name, "source_down",
              "xarray.open_zarr"):
        assert s in text, s
    assert format_batches_table([]) == "no batches"
    with pytest.raises(FileNotFoundError):
        describe_batch(tmp_path / "nope")
    with pytest.raises(KeyError):
        open_tag(tmp_path, SITE, "no such tag")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_seconds"):
        DatasetWriter(tmp_path, SITE, 7 * 3600)
    with pytest.raises(ValueError, match="site"):
        DatasetWriter(tmp_path, "a/b")
    w = DatasetWriter(tmp_path, SITE)
    w.note_lsn(5)
    with pytest.raises(ValueError, match="spool order"):
        w.add(ColumnBatch.empty(), 4)
    assert w.published_lsn() == 5


def test_values_at_gives_every_tag_as_of_an_instant(tmp_path: Path) -> None:
    from edge.datasets import values_at

    tags = catalog(["Double", "String", "UInt64", "Boolean"])
    w = DatasetWriter(tmp_path, SITE, 3600)
    w.set_catalog(tags)
    # Hour 1: every tag; hour 2: only the Double (the others did not change).
    w.add(frame(tags, [(0, W0 + 10 * S, 0, GOOD, 1.0, 0), (1, W0 + 20 * S, 0, GOOD, "a", 0),
                       (2, W0 + 30 * S, 0, BAD, 2**64 - 1, 0), (3, W0 + 40 * S, 0, GOOD, True, 0),
                       (0, W0 + HOUR - S, 0, GOOD, 2.0, 0)]), 0)
    w.add(frame(tags, [(0, W0 + HOUR + 5 * S, 0, GOOD, 3.0, 0), (0, W0 + HOUR + 50 * S, 0, GOOD, 4.0, 0)]), 1)
    w.flush()
    w.add(frame(tags, [(0, W0 + HOUR + 7 * S, 0, UNCERTAIN, 3.5, 0)]), 2)  # late batch of hour 2
    w.flush()
    at = W0 + HOUR + 10 * S
    snap = values_at(tmp_path, SITE, at)
    assert snap["tag"].values.tolist() == sorted(t.name for t in tags)
    got = {n: (v, int(t.astype(np.int64)), s) for n, v, t, s in zip(
        snap["tag"].values, snap["value"].values, snap["time"].values, snap["status"].values)}
    assert got[tags[0].name] == (3.5, W0 + HOUR + 7 * S, UNCERTAIN)  # from the late batch
    assert got[tags[1].name] == ("a", W0 + 20 * S, GOOD)  # looked back into hour 1
    assert got[tags[2].name] == (2**64 - 1, W0 + 30 * S, BAD)  # exact, own type
    assert got[tags[3].name][0] is True
    assert float(snap["age_s"].sel(tag=tags[1].name)) == 3600 + 10 - 20
    one = values_at(tmp_path, SITE, W0 + 5 * S, tags=[tags[0].name])
    assert one["value"].values.tolist() == [None] and np.isnat(one["time"].values[0])
    with pytest.raises(KeyError, match="nope"):
        values_at(tmp_path, SITE, at, tags=["nope"])


def test_a_gap_marks_every_window_it_spans_incomplete(tmp_path: Path) -> None:
    tags = catalog(["Double"])
    w = DatasetWriter(tmp_path, SITE, 3600)
    w.set_catalog(tags)
    w.add(frame(tags, [(0, W0 + h * HOUR, 0, GOOD, 1.0, 0) for h in range(3)]), 0)
    w.add_gap("link_loss", [], W0 + HOUR // 2, W0 + HOUR + 5 * S, 3, 9, lsn=1)  # hours 0 and 1
    w.flush()
    lines = format_batches_table(list_batches(tmp_path, SITE)).splitlines()[1:4]
    assert ["no (1 gaps)" in ln for ln in lines] == [True, True, False]
    assert [len(g.tags) for g in list_gaps(tmp_path, SITE)] == [0]  # recorded once, in hour 0


def test_catalog_fields_added_later_become_attributes(tmp_path: Path) -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class TagInfoV2(TagInfo):  # e.g. what the lossy codec adds to the catalog
        error_bound: float | None = None

    t = TagInfoV2(index=0, name="Flow", node_id="ns=2;s=Flow", source="opc.tcp://plc:4840",
                  data_type="Double", unit="m3/h", error_bound=0.05)
    w = DatasetWriter(tmp_path, SITE)
    w.set_catalog([t])
    w.add(frame([t], [(0, T0, T0, GOOD, 1.0, 0)]), 0)
    w.flush()
    ds = open_tag(tmp_path, SITE, "Flow")
    assert ds.attrs["error_bound"] == 0.05 and ds.attrs["unit"] == "m3/h"


def test_a_site_has_one_writer_on_a_directory_too(tmp_path: Path) -> None:
    from edge.datasets import SiteClaimedError

    DatasetWriter(tmp_path, SITE, owner="rx-a:/var/lib/it-spool")
    with pytest.raises(SiteClaimedError, match="rx-a:/var/lib/it-spool"):
        DatasetWriter(tmp_path, SITE, owner="rx-b:/srv/spool")
    DatasetWriter(tmp_path, SITE, owner="rx-a:/var/lib/it-spool")  # the owner restarting
    DatasetWriter(tmp_path, "plant-2", owner="rx-b:/srv/spool")  # another site, same root
    assert sorted(p.name for p in tmp_path.iterdir()) == [SITE, "plant-2"]
    assert list_batches(tmp_path) == []  # the claims are not batches
