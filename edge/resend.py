"""Operator re-send: ``tidegate resend`` asks the running agent, over its status
socket, to send a sequence or time range of spooled frames again.

The agent owns the spool (and its lock), so the request goes to it:
``{"op": "resend", "seq_first": int, "seq_last": int}`` or
``{"op": "resend", "t_first_ns": int, "t_last_ns": int}`` (inclusive bounds).
The agent looks the range up in its spool and queues it on the diode sender,
which sends it between live batches without moving its cursor. The reply
names what was queued: ``{"ok": True, "lsn_first", "lsn_last", "frames"}``.
The receiver drops frames it already holds, so re-sending is always safe.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from edge import _core

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _ns(dt: datetime) -> int:
    return (dt - _EPOCH) // timedelta(microseconds=1) * 1000


def _int(request: dict[str, Any], key: str) -> int:
    v = request.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"resend: {key} must be an integer, got {v!r}")
    return v


def _fmt_ns(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9).astimezone().isoformat(timespec="seconds")


def handle_resend(spool: _core.Spool, sender: _core.DiodeSender, request: dict[str, Any]) -> dict[str, Any]:
    """Queue the requested range on the sender; ValueError says what is wrong."""
    by_seq = "seq_first" in request or "seq_last" in request
    by_time = "t_first_ns" in request or "t_last_ns" in request
    if by_seq == by_time:
        raise ValueError("resend: give either seq_first/seq_last or t_first_ns/t_last_ns")
    st = spool.stats()
    held = (f"the spool holds seq {st['first_lsn']}..{st['durable_lsn'] - 1}" if st["durable_lsn"] > st["first_lsn"]
            else "the spool holds no frame")
    if by_seq:
        a, b = _int(request, "seq_first"), _int(request, "seq_last")
        if a < 0 or b < a:
            raise ValueError(f"resend: seq range {a}..{b} is empty")
        lsns: tuple[int, int] | None = (a, b + 1)  # OT side: seq = LSN
        what = f"seq {a}..{b}"
    else:
        t0, t1 = _int(request, "t_first_ns"), _int(request, "t_last_ns")
        if t1 < t0:
            raise ValueError("resend: the time range ends before it starts")
        lsns = spool.lsn_range_for_time(t0, t1)
        what = f"{_fmt_ns(t0)} .. {_fmt_ns(t1)}"
    queued = sender.resend(*lsns) if lsns is not None else None
    if queued is None:
        raise ValueError(f"resend: nothing of {what} is in the spool any more ({held})")
    first, end = queued
    return {"ok": True, "lsn_first": first, "lsn_last": end - 1, "frames": end - first}


def parse_time(text: str, now: datetime | None = None) -> int:
    """A time for --since/--until, in ns since the epoch: ISO 8601 (naive =
    this machine's local time, like journalctl), "now", or "-30m" / "-2h" /
    "-1d" / "-90s" before now."""
    now = now or datetime.now().astimezone()
    t = text.strip()
    if t == "now":
        return _ns(now)
    m = _RELATIVE.match(t)
    if m:
        return _ns(now - timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)]))
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a time (use ISO 8601 like 2026-11-24T07:30, 'now', or -30m/-2h/-1d)") from None
    if dt.tzinfo is None:
        dt = dt.astimezone()  # local time
    return _ns(dt)


def parse_seq_range(text: str) -> tuple[int, int]:
    """"100-200" (inclusive) or "150"."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
    if not m:
        raise ValueError(f"{text!r} is not a sequence range (use FIRST-LAST or N)")
    a = int(m.group(1))
    b = int(m.group(2)) if m.group(2) is not None else a
    if b < a:
        raise ValueError(f"sequence range {text!r} ends before it starts")
    return a, b
