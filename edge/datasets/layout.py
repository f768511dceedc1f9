"""The on-disk layout of a batch: paths, names, attribute vocabulary.

Shared by the writer and the readers so both agree on one definition (see
docs/datasets.md for the why).

    <root>/<site>/<YYYY-MM-DD>/<HHMMSS>-<seconds>s-L<lsn_first>-<lsn_last>[-<n>]/
        zarr.json                 batch group: attributes + consolidated metadata
        tags/<safe tag name>/     one group per tag, dim "time":
            time                  int64, CF "nanoseconds since 1970-01-01" (source timestamp)
            value                 the tag's natural dtype
            status                uint32 OPC UA StatusCode (CF flags on the severity bits)
            server_time           int64, CF time (server timestamp; NaT when absent)
            flags                 uint8 (1 = null value, 2 = replayed)
        gaps/                     dim "gap": reason, tags, t_first, t_last, seq_first, seq_last
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

FORMAT = "tidegate-batch/1"
TIME_UNITS = "nanoseconds since 1970-01-01"
CALENDAR = "proleptic_gregorian"
NS_PER_S = 1_000_000_000
DAY_S = 86_400

# OPC UA StatusCode severity: the top two bits.
SEVERITY_MASK = 0xC000_0000
SEVERITY_GOOD = 0x0000_0000
SEVERITY_UNCERTAIN = 0x4000_0000
SEVERITY_BAD = 0x8000_0000

TMP_PREFIX = ".tmp-"
UNKNOWN_TYPE = "unknown"  # samples of a tag index the catalog does not name: raw 64-bit words

_BATCH_RE = re.compile(r"^(\d{2})(\d{2})(\d{2})-(\d+)s-L(?:(\d+)-(\d+)|none)(?:-(\d+))?$")
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SAFE_RE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class BatchName:
    """What a batch directory's name says about it (parsed without opening it)."""

    window_start_ns: int
    batch_seconds: int
    lsn_first: int | None
    lsn_last: int | None

    @property
    def window_end_ns(self) -> int:
        return self.window_start_ns + self.batch_seconds * NS_PER_S


def day_dir_name(window_start_ns: int) -> str:
    return _utc(window_start_ns).strftime("%Y-%m-%d")


def batch_dir_name(window_start_ns: int, batch_seconds: int,
                   lsn_first: int | None, lsn_last: int | None, n: int = 0) -> str:
    hms = _utc(window_start_ns).strftime("%H%M%S")
    lsn = "Lnone" if lsn_first is None or lsn_last is None else f"L{lsn_first}-{lsn_last}"
    return f"{hms}-{batch_seconds}s-{lsn}" + (f"-{n}" if n else "")


def parse_batch_dir(day: str, name: str) -> BatchName | None:
    """`day`/`name` -> what the name encodes; None if it is not a batch name."""
    m = _BATCH_RE.match(name)
    if not m or not _DAY_RE.match(day):
        return None
    try:
        d = dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    start_s = int(d.timestamp()) + int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3])
    first = int(m[5]) if m[5] is not None else None
    last = int(m[6]) if m[6] is not None else None
    return BatchName(start_s * NS_PER_S, int(m[4]), first, last)


def is_day_dir(name: str) -> bool:
    return bool(_DAY_RE.match(name))


def safe_name(name: str) -> str:
    """A tag name -> a zarr node name (letters, digits, `._-`; never `__x`, `.` or `..`)."""
    s = _SAFE_RE.sub("_", name).strip(".") or "tag"
    if s.startswith("__"):
        s = "t" + s
    return s


def iso_ns(ns: int) -> str:
    """Unix ns -> ISO 8601 UTC with nanoseconds, e.g. 2026-01-02T03:04:05.123456789Z."""
    s, frac = divmod(ns, NS_PER_S)
    base = _utc(s * NS_PER_S).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z" if frac else f"{base}Z"


def severity_name(status: int) -> str:
    sev = status & SEVERITY_MASK
    return {SEVERITY_GOOD: "good", SEVERITY_UNCERTAIN: "uncertain"}.get(sev, "bad")


def _utc(ns: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=ns // 1000)
