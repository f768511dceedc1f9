"""A real recorded industrial data set for benchmarks/bench_codec.rs.

  python benchmarks/scada_data.py OUT_DIR [--wheel openoa-3.2-py3-none-any.whl]

ENGIE's "La Haute Borne" wind farm SCADA export (4 turbines, 2014-2015, 10 min
averages of pitch, active power, wind speed, vane, outdoor temperature, nacelle
and wind direction: 28 tags, 2.9 M samples), published under the Etalab Open
License 2.0 and shipped inside NREL's `openoa` wheel on PyPI. Without --wheel
the wheel is fetched once with `pip download` into OUT_DIR/cache.

The export holds float32 readings printed with 8 significant digits; they are
replayed as OPC UA Float tags (the float32 value widened to a double, as asyncua
delivers it). A blank cell (the row exists, the reading does not) becomes a Bad
sample with a null value, as a historian read of an outage returns. The export
has one timestamp per row, so server time = source time.

Writes OUT_DIR/scada.cols in codec_data.py's column format. The data are 10 min
apart, so compare at historian-backfill windows:
  BENCH_WINDOWS=3600,21600,86400 cargo run --release --example bench_codec -- OUT_DIR/scada.cols
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.codec_data import write
from edge.model import TagInfo, codec_kinds

WHEEL = "openoa==3.2"
ZIP_IN_WHEEL = "examples/data/la_haute_borne.zip"
CSV_IN_ZIP = "la-haute-borne-data-2014-2015.csv"
BAD = 0x80000000


def fetch_wheel(cache: Path) -> Path:
    found = sorted(cache.glob("openoa-3.2-*.whl"))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache), WHEEL],
                       check=True)
        found = sorted(cache.glob("openoa-3.2-*.whl"))
    return found[0]


def read_export(wheel: Path) -> pd.DataFrame:
    with zipfile.ZipFile(wheel) as w, zipfile.ZipFile(io.BytesIO(w.read(ZIP_IN_WHEEL))) as z:
        return pd.read_csv(io.BytesIO(z.read(CSV_IN_ZIP)))


def convert(df: pd.DataFrame, out: Path) -> None:
    # ns since the epoch, whatever resolution pandas parses to
    t = pd.to_datetime(df["Date_time"], utc=True).dt.tz_localize(None).to_numpy("datetime64[ns]").view(np.int64)
    turbines = sorted(df["Wind_turbine_name"].unique())
    channels = [c for c in df.columns if c.endswith("_avg")]
    cols: list[list[np.ndarray]] = [[], [], [], []]
    infos: list[TagInfo] = []
    for ti, turbine in enumerate(turbines):
        rows = (df["Wind_turbine_name"] == turbine).to_numpy()
        for ci, ch in enumerate(channels):
            tag = ti * len(channels) + ci
            x = df[ch].to_numpy()[rows]
            missing = np.isnan(x)
            v = np.where(missing, 0.0, x).astype(np.float32).astype(np.float64)
            bits = np.where(missing, 0, v.view(np.uint64))
            cols[0].append(np.full(len(x), tag, np.uint32))
            cols[1].append(t[rows])
            cols[2].append(np.where(missing, BAD, 0).astype(np.uint32))
            cols[3].append(bits.astype(np.uint64))
            infos.append(TagInfo(tag, f"{turbine}.{ch}", "", "", "Float"))
    tag_a, src, status, bits = (np.concatenate(c) for c in cols)
    write(out, tag_a, src, src, status, bits, codec_kinds(infos))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--wheel", type=Path, help="a downloaded openoa-3.2 wheel (default: pip download it)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    convert(read_export(a.wheel or fetch_wheel(a.out / "cache")), a.out / "scada.cols")


if __name__ == "__main__":
    main()
