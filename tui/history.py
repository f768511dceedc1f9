"""What the TUI remembers between snapshots: a small ring of recent values per
tag (the sparklines), spool/link series over time, derived rates, the last
heartbeat, and every event seen (the agent's snapshot carries only the newest).

No Textual import: cheap to test. Time is the agent's clock (``now_ns`` of
each snapshot), so what is shown does not depend on the TUI's own clock.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

TAG_RING = 60  # values kept per tag (one per poll)
SERIES_RING = 300  # points kept per series (5 min at 1 s)
EVENT_RING = 2000
RATE_WINDOW_NS = 5_000_000_000  # link rate averaged over this much agent time


def numeric(value: Any) -> float | None:
    """A value a sparkline can draw (bools as 0/1), else None."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        v = float(value)
        return v if v == v and v not in (float("inf"), float("-inf")) else None
    return None


class History:
    def __init__(self, tag_ring: int = TAG_RING, series_ring: int = SERIES_RING) -> None:
        # One float64 row per tag, one column per snapshot (NaN: no numeric
        # value then): 10,000 tags x 60 cost 4.8 MB, not 600,000 float objects.
        self.tag_ring = tag_ring
        self._rows: dict[str, int] = {}
        self._ring = np.full((64, tag_ring), np.nan)
        self._col = -1
        self.series: dict[str, deque[float]] = {}
        self._series_ring = series_ring
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENT_RING)
        self._event_keys: set[tuple[int, str, str]] = set()
        self.now_ns: int | None = None
        self.link_rate: float | None = None  # bytes/s on the link, from successive snapshots
        self.heartbeat_ns: int | None = None  # agent time at which the heartbeat count last moved
        self.updates = 0  # snapshots taken in
        self._sent: deque[tuple[int, int]] = deque()  # (now_ns, bytes_sent) over RATE_WINDOW_NS
        self._hb_count: int | None = None

    def take(self, snap: dict[str, Any]) -> None:
        agent = snap.get("agent") or {}
        now = agent.get("now_ns")
        if not isinstance(now, int) or (self.now_ns is not None and now <= self.now_ns):
            return  # the same (cached) snapshot again, or no clock
        self.now_ns = now
        self.updates += 1
        self._col = col = (self._col + 1) % self.tag_ring
        ring = self._ring
        ring[:, col] = np.nan
        rows = self._rows
        for t in snap.get("tags") or []:
            v = numeric(t.get("value"))
            if v is None:
                continue
            key = f"{t.get('source', '')}\x00{t.get('name', '')}"
            row = rows.get(key)
            if row is None:
                row = rows[key] = len(rows)
                if row >= len(ring):  # grow by doubling
                    bigger = np.full((2 * len(ring), self.tag_ring), np.nan)
                    bigger[: len(ring)] = ring
                    self._ring = ring = bigger
            ring[row, col] = v
        link = snap.get("link") or {}
        spool = snap.get("spool") or {}
        sent = link.get("bytes_sent")
        if isinstance(sent, int):
            window = self._sent
            if window and sent < window[-1][1]:
                window.clear()  # the agent restarted: counters began again
            window.append((now, sent))
            while len(window) > 2 and now - window[1][0] >= RATE_WINDOW_NS:
                window.popleft()
            t0, s0 = window[0]
            if now > t0:
                self.link_rate = max(0.0, (sent - s0) * 1e9 / (now - t0))
        rate = link.get("bytes_per_s", self.link_rate)
        self._add("link_rate", rate)
        self._add("spool_bytes", spool.get("bytes"))
        self._add("backlog", link.get("backlog"))
        self._add("values_per_s", (snap.get("rates") or {}).get("values_per_s"))
        # The sender's link HEARTBEAT count (older agents: their spooled HEARTBEAT frames).
        hb = link.get("heartbeats", (snap.get("counters") or {}).get("heartbeat_frames"))
        if isinstance(hb, int) and hb != self._hb_count:
            self._hb_count = hb
            self.heartbeat_ns = now
        for e in snap.get("events") or []:
            k = (int(e.get("time_ns") or 0), str(e.get("kind", "")), str(e.get("text", "")))
            if k not in self._event_keys:
                if len(self.events) == self.events.maxlen:
                    old = self.events[0]
                    self._event_keys.discard((int(old.get("time_ns") or 0), str(old.get("kind", "")),
                                              str(old.get("text", ""))))
                self._event_keys.add(k)
                self.events.append(e)

    def _add(self, name: str, v: Any) -> None:
        x = numeric(v)
        if x is None:
            return
        ring = self.series.get(name)
        if ring is None:
            ring = self.series[name] = deque(maxlen=self._series_ring)
        ring.append(x)

    def tag(self, tag: dict[str, Any]) -> list[float]:
        """The tag's numeric values of the last polls, oldest first."""
        row = self._rows.get(f"{tag.get('source', '')}\x00{tag.get('name', '')}")
        if row is None:
            return []
        n = min(self.updates, self.tag_ring)
        cols = np.arange(self._col - n + 1, self._col + 1) % self.tag_ring
        vals = self._ring[row, cols]
        out: list[float] = vals[~np.isnan(vals)].tolist()
        return out

    def heartbeat_age_ns(self) -> int | None:
        if self.heartbeat_ns is None or self.now_ns is None:
            return None
        return self.now_ns - self.heartbeat_ns
