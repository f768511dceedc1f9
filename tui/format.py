"""Plain-text formatting of snapshot values for the TUI (no Textual import, so
it is cheap to test and reuse from the CLI)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal

Quality = Literal["Good", "Uncertain", "Bad"]

_QUALITY: dict[int, Quality] = {0: "Good", 1: "Uncertain", 2: "Bad", 3: "Bad"}


def quality(status: int) -> Quality:
    """OPC UA severity from the top two bits of a StatusCode (11 is reserved:
    treated as Bad)."""
    return _QUALITY[(int(status) >> 30) & 0b11]


def quality_text(status: int, *, prefix: bool = False) -> str:
    """``Good`` for plain Good (0); otherwise the severity and the hex code,
    e.g. ``Uncertain 408F0000`` (``0x`` added with ``prefix=True``)."""
    status = int(status) & 0xFFFFFFFF
    q = quality(status)
    if status == 0:
        return q
    return f"{q} {'0x' if prefix else ''}{status:08X}"


def truncate(text: str, width: int, *, middle: bool = False) -> str:
    """Fit ``text`` into ``width`` cells with an ellipsis (in the middle keeps
    both ends of dotted tag names readable)."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width == 1:
        return "…"
    if middle:
        head = (width - 1) // 2
        tail = width - 1 - head
        return text[:head] + "…" + (text[-tail:] if tail else "")
    return text[: width - 1] + "…"


def format_number(v: float) -> str:
    """Six significant digits without exponent noise for plant-sized values."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    a = abs(v)
    if a != 0 and (a >= 1e7 or a < 1e-4):
        return f"{v:.4e}"
    text = f"{v:.6g}"
    if "e" in text:  # .6g chose exponent (e.g. 1234567.0): use fixed instead
        text = f"{v:.0f}"
    if text.lstrip("-").isdigit() and a < 1e6:
        text += ".0"  # a float stays recognisably a float
    return text


def format_value(value: Any, data_type: str = "", unit: str = "") -> str:
    """A tag value as shown in the table: bools as true/false, integers in full,
    floats to six significant digits, strings as is; ``—`` for no value."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if data_type and data_type not in ("Float", "Double") and value.is_integer():
            text = str(int(value))
        else:
            text = format_number(value)
    elif isinstance(value, bytes):
        text = value.hex()
    else:
        text = str(value).replace("\n", " ").replace("\r", " ")
    if unit and not isinstance(value, (bool, str)):
        text = f"{text} {unit}"
    return text


def format_age(age_ns: int | None) -> str:
    """Compact age: ``0.4s``, ``12s``, ``3m05s``, ``2h03m``, ``4d02h``; ``—``
    when unknown. A source clock ahead of the agent shows as ``-1.2s``."""
    if age_ns is None:
        return "—"
    s = age_ns / 1e9
    if s < 0:
        return "-" + format_age(-age_ns) if s <= -0.05 else "0.0s"
    if s < 10:
        return f"{s:.1f}s"
    if s < 60:
        return f"{int(s)}s"
    m = int(s // 60)
    if m < 60:
        return f"{m}m{int(s % 60):02d}s"
    h = m // 60
    if h < 24:
        return f"{h}h{m % 60:02d}m"
    d = h // 24
    if d < 1000:
        return f"{d}d{h % 24:02d}h"
    return f"{d}d"


def tag_age_ns(tag: dict[str, Any], now_ns: int | None) -> int | None:
    src = tag.get("source_ns")
    if not src or now_ns is None:
        return None
    return int(now_ns) - int(src)


def format_count(n: int | None) -> str:
    if n is None:
        return "—"
    n = int(n)
    if n < 10_000_000:
        return str(n)
    for div, suf in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        if n >= div:
            return f"{n / div:.1f}{suf}"
    return str(n)  # pragma: no cover


def format_bytes(n: float | None) -> str:
    """IEC binary units, 3 significant digits: ``980 B``, ``12.1 KiB``."""
    if n is None:
        return "—"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(n)} B"
            digits = 2 if abs(n) < 10 else 1 if abs(n) < 100 else 0
            return f"{n:.{digits}f} {unit}"
        n /= 1024
    return f"{n:.0f} TiB"  # pragma: no cover


def format_rate(v: float | None) -> str:
    if v is None:
        return "—"
    v = float(v)
    if v >= 1e6:
        return f"{v / 1e6:.1f}M"
    if v >= 1e4:
        return f"{v / 1e3:.1f}k"
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.1f}"


def format_time_ns(t_ns: int | None) -> str:
    """UTC ISO time to the millisecond."""
    if not t_ns:
        return "—"
    dt = datetime.fromtimestamp(int(t_ns) / 1e9, tz=UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


SPARK = "▁▂▃▄▅▆▇█"


def spark(values: list[float], width: int) -> str:
    """The last ``width`` values as block glyphs scaled between their min and
    max (a flat series draws as a flat low line); padded left with spaces."""
    if width <= 0:
        return ""
    vals = values[-width:]
    if not vals:
        return " " * width
    lo, hi = min(vals), max(vals)
    span = hi - lo
    top = len(SPARK) - 1
    out = [SPARK[0] if span <= 0 else SPARK[min(top, int((v - lo) / span * top + 0.5))] for v in vals]
    return " " * (width - len(out)) + "".join(out)


def parse_when(text: str, now_ns: int) -> int:
    """An operator's time: ``now``, relative ``-15m`` / ``-2h`` / ``-90s`` /
    ``-1d``, or UTC ``YYYY-MM-DD HH:MM[:SS]`` (``T`` and a trailing ``Z``
    accepted) -> ns since epoch. ValueError with a readable message otherwise."""
    s = text.strip()
    if not s:
        raise ValueError("empty time")
    if s.lower() == "now":
        return now_ns
    if s[0] in "+-" and len(s) > 2 and s[-1].lower() in "smhd":
        try:
            n = float(s[1:-1])
        except ValueError:
            raise ValueError(f"not a relative time: {text!r} (try -15m, -2h)") from None
        secs = n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[s[-1].lower()]
        return now_ns + int((secs if s[0] == "+" else -secs) * 1e9)
    iso = s.rstrip("Zz").replace("T", " ")
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            dt = datetime.strptime(iso, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
        return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000
    raise ValueError(f"not a time: {text!r} (use now, -15m, or YYYY-MM-DD HH:MM:SS in UTC)")
