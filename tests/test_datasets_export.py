"""`tidegate datasets export`: real batches on disk -> Parquet (read back with
pyarrow) and CSV, by tag set and time range; bad selections are one line, exit 2."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from edge.cli import main as cli_main
from edge.datasets import DatasetWriter
from edge.datasets.layout import iso_ns
from edge.model import SampleFlags

from test_datasets import BAD, GOOD, HOUR, S, SITE, T0, VALUES, catalog, every_type_rows, frame


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """Every type in one hour, plus a Double across two more hours."""
    tags = catalog(list(VALUES))
    w = DatasetWriter(tmp_path / "ds", SITE, 3600)
    w.set_catalog(tags, "v1")
    w.add(frame(tags, every_type_rows(tags)), 0)
    d = tags[0]  # Double
    w.add(frame(tags, [(d.index, T0 + h * HOUR, T0, GOOD if h else BAD, 10.0 + h, 0) for h in (1, 2)]), 1)
    w.flush()
    return tmp_path / "ds"


def run(*args: str) -> int:
    return cli_main(["datasets", "export", *map(str, args)])


def test_each_type_exports_exactly_to_parquet(root: Path, tmp_path: Path) -> None:
    tags = catalog(list(VALUES))
    rows = every_type_rows(tags)
    for t in tags:
        out = tmp_path / f"{t.data_type}.parquet"
        # On its own a tag keeps its type (UInt64 2^64-1, Int64 extremes exact).
        assert run(root, "--tags", t.name, "--end", iso_ns(T0 + HOUR // 2), "-o", out) == 0
        table = pq.read_table(out)
        want = sorted((r for r in rows if r[0] == t.index), key=lambda r: r[1])
        assert table.column("time").to_numpy().astype(np.int64).tolist() == [r[1] for r in want]
        assert str(table.schema.field("time").type) == "timestamp[ns, tz=UTC]"
        assert table.column("status").to_pylist() == [r[3] for r in want]
        assert set(table.column("tag").to_pylist()) == {t.name}
        got = table.column("value").to_pylist()
        for g, r in zip(got, want):
            v = r[4]
            if v is None or r[5] & SampleFlags.NULL_VALUE:
                assert g is None  # a null value is a null, not 0 or NaN
            elif isinstance(v, float) and math.isnan(v):
                assert math.isnan(g)
            elif t.data_type == "Float":
                assert g == float(np.float32(v))
            else:
                assert g == v, (t.data_type, g, v)
        srv = table.column("server_time").to_pylist()
        assert (srv[1] is None) == (len(want) > 1 and want[1][2] < 0)
        quality = table.column("quality").to_pylist()
        assert quality == [{GOOD: "good", BAD: "bad"}.get(r[3], "uncertain" if r[3] >> 30 == 1 else "bad")
                           for r in want]


def test_tag_set_time_range_and_common_type(root: Path, tmp_path: Path) -> None:
    tags = {t.data_type: t for t in catalog(list(VALUES))}
    out = tmp_path / "mixed.parquet"
    # Double + Int32 + Float share float64; the range is [start, end) on source time.
    assert run(root, "--tags", f"{tags['Double'].name},{tags['Int32'].name},*Float*", "-o", out,
               "--start", iso_ns(T0 + HOUR), "--end", "2025-10-09T11:00:00+01:00") == 0
    table = pq.read_table(out)
    assert str(table.schema.field("value").type) == "double"
    assert table.column("value").to_pylist() == [11.0]  # only the Double's sample at T0 + 1 h
    out = tmp_path / "all.csv"
    assert run(root, "-o", out) == 0
    with open(out, newline="", encoding="utf-8") as f:
        data = list(csv.DictReader(f))
    assert len(data) == len(every_type_rows(catalog(list(VALUES)))) + 2
    s = [r for r in data if r["tag"] == tags["String"].name]
    assert [r["value"] for r in s] == ["", "héllo wörld", "two\nlines, \"quoted\"", "日本語", ""]
    assert s[0]["time"].endswith("Z") and s[0]["time"][:26] == iso_ns(T0 + tags["String"].index)[:26]
    u = [r for r in data if r["tag"] == tags["UInt64"].name]
    assert [r["value"] for r in u] == ["0", str(2**64 - 1), str(2**63)]  # strings hold them exactly
    assert [r["unit"] for r in data if r["tag"] == tags["Double"].name][0] == "degC"


def test_bad_selections_are_one_line_and_leave_nothing(root: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    tags = {t.data_type: t for t in catalog(list(VALUES))}
    out = tmp_path / "x.parquet"
    cases = [
        (["--tags", f"{tags['UInt64'].name},{tags['Double'].name}"], "beyond 2^53"),
        (["--tags", "nope*"], "--tags: no tag matches 'nope*'"),
        (["--start", "yesterday"], "--start: not an ISO 8601 time"),
        (["--start", "2025-10-10", "--end", "2025-10-09"], "is not after"),
        (["--site", "nope"], "no published batches for site 'nope'"),
    ]
    for extra, msg in cases:
        assert run(root, "-o", out, *extra) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, err
        assert not list(tmp_path.glob("*x.parquet*"))  # no file, no temp file
    assert run(root) == 2 and "--output" in capsys.readouterr().err
    # An empty range is not an error: a file with no rows, for scripts that run every hour.
    assert run(root, "--start", "2030-01-01", "-o", out) == 0 and pq.read_table(out).num_rows == 0
    assert run(root, "-o", tmp_path / "x.txt") == 2 and ".parquet or .csv" in capsys.readouterr().err
    assert run(root, "-o", tmp_path / "no" / "x.csv") == 2
    assert cli_main(["datasets", "list", str(root), "--tags", "x"]) == 2
