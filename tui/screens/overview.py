"""Overview: is everything fine? Sources, values per second, spool fill,
link rate and last heartbeat, and the alarms that need a look."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Static

from tui.format import (
    format_age,
    format_bytes,
    format_count,
    format_rate,
    format_time_ns,
    quality,
    spark,
    truncate,
)
from tui.history import History
from tui.messages import AgentLink
from tui.screens.base import DataScreen
from tui.screens.events import kind_style

SPARK_W = 20
RECENT_EVENTS = 30  # as many as fit are shown


def alarms(snap: dict[str, Any], history: History) -> list[tuple[str, str]]:
    """(severity, text) of what needs attention, worst first; severity is
    "bad" or "warn"."""
    out: list[tuple[str, str]] = []
    for s in snap.get("sources") or []:
        name = s.get("name", "?")
        if not s.get("connected"):
            why = s.get("last_error") or "not connected"
            out.append(("bad", f"source {name} disconnected: {why}"))
        failing = s.get("failing") or []
        if failing:
            out.append(("warn", f"source {name}: {len(failing)} node(s) failing "
                                f"({failing[0].get('reason', '?')})"))
        if s.get("overflows"):
            out.append(("warn", f"source {name}: {s['overflows']} queue overflow(s) at the server"))
    spool = snap.get("spool") or {}
    cap, used = spool.get("capacity_bytes"), spool.get("bytes")
    if cap and used is not None:
        pct = 100.0 * used / cap
        if pct >= 70:
            out.append(("bad" if pct >= 90 else "warn", f"spool {pct:.0f}% full"))
    link = snap.get("link") or {}
    if link.get("send_errors"):
        out.append(("bad", f"link: {link['send_errors']} send error(s)"))
    backlog = history.series.get("backlog")
    if backlog and len(backlog) >= 5 and backlog[-1] > 0 and list(backlog)[-5:] == sorted(list(backlog)[-5:]) \
            and backlog[-1] > backlog[-5]:
        out.append(("warn", f"link backlog growing: {int(backlog[-1])} frames queued"))
    hb = history.heartbeat_age_ns()
    if hb is not None and hb > 5_000_000_000:
        out.append(("bad", f"no heartbeat for {format_age(hb)}"))
    tags = snap.get("tags") or []
    bad = sum(1 for t in tags if quality(int(t.get("status") or 0)) == "Bad")
    if bad:
        out.append(("warn", f"{bad} tag(s) with Bad quality"))
    out.sort(key=lambda a: a[0] != "bad")
    return out


class Panel(Static):
    """A bordered block that repaints only when its content changes."""

    DEFAULT_CSS = """
    Panel {
        border: round $primary-darken-2;
        border-title-color: $text-accent;
        padding: 0 1;
        height: auto;
    }
    """

    def __init__(self, title: str, *, id: str) -> None:
        super().__init__("", id=id, markup=False)
        self.border_title = title
        self._shown: object = None

    def show(self, content: Text | Table, key: object) -> None:
        if key == self._shown:
            return
        self._shown = key
        self.update(content)


def _kv(rows: list[tuple[str, Text | str]]) -> Table:
    t = Table.grid(padding=(0, 1))
    t.add_column(style="dim", no_wrap=True)
    t.add_column(no_wrap=True, overflow="ellipsis")
    for k, v in rows:
        t.add_row(k, v)
    return t


class OverviewScreen(DataScreen):
    MODE = "overview"
    GLOSSARY = (
        ("Sources", "connected / configured OPC UA servers and their tags"),
        ("Flow", "values per second collected; the line is the last minutes"),
        ("Spool", "frames and bytes held on disk for the link; fill when the spool is bounded"),
        ("Link", "bytes per second sent into the diode, frames waiting, last heartbeat"),
        ("Alarms", "what needs a look, worst first"),
        ("Recent events", "the newest events; all of them on the Events screen"),
    )

    DEFAULT_CSS = """
    OverviewScreen #ov-top { height: auto; }
    OverviewScreen #ov-top > Vertical { width: 1fr; height: auto; }
    OverviewScreen #ov-alarms { height: auto; min-height: 3; }
    OverviewScreen #ov-events { height: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def compose_body(self) -> Iterable[Widget]:
        with Horizontal(id="ov-top"):
            with Vertical():
                yield Panel("Sources", id="ov-sources")
                yield Panel("Flow", id="ov-flow")
            with Vertical():
                yield Panel("Spool", id="ov-spool")
                yield Panel("Link", id="ov-link")
        yield Panel("Alarms", id="ov-alarms")
        yield Panel("Recent events (5 Events)", id="ov-events")

    def render_snapshot(self, link: AgentLink) -> None:
        snap = link.snapshot or {}
        h = self.tg_app.history
        stale = link.state != "connected"
        self.set_class(stale, "-stale")
        if not snap:
            waiting = Text(link.error or f"waiting for the agent on {link.socket_path}…",
                           style="red" if link.error else "dim")
            self.query_one("#ov-alarms", Panel).show(waiting, ("wait", waiting.plain))
            return

        sources = snap.get("sources") or []
        n_up = sum(1 for s in sources if s.get("connected"))
        src = Table.grid(padding=(0, 1))
        src.add_column(no_wrap=True)
        src.add_column(no_wrap=True, overflow="ellipsis")
        src.add_column(justify="right", no_wrap=True)
        for s in sources[:4]:
            up = bool(s.get("connected"))
            src.add_row(Text("●" if up else "○", style="green" if up else "bold red"),
                        str(s.get("name", "?")),
                        f"{s.get('subscribed', 0)}/{s.get('tags', 0)} tags")
        if len(sources) > 4:
            src.add_row("", Text(f"+{len(sources) - 4} more (3 Sources)", style="dim"), "")
        if not sources:
            src.add_row("", Text("no sources configured", style="dim"), "")
        head = Text(f"{n_up} of {len(sources)} connected",
                    style="green" if n_up == len(sources) and sources else "bold red")
        srcs_key = tuple((s.get("name"), s.get("connected"), s.get("subscribed"), s.get("tags"))
                         for s in sources)
        box = Table.grid()
        box.add_row(head)
        box.add_row(src)
        self.query_one("#ov-sources", Panel).show(box, srcs_key)

        rates = snap.get("rates") or {}
        vps = rates.get("values_per_s")
        tags = snap.get("tags") or []
        flow_line = spark(list(h.series.get("values_per_s", ())), SPARK_W)
        flow = _kv([("values/s", Text(format_rate(vps), style="bold")),
                    ("tags", format_count(len(tags))),
                    ("trend", Text(flow_line, style="cyan"))])
        self.query_one("#ov-flow", Panel).show(flow, (vps, len(tags), flow_line))

        spool = snap.get("spool") or {}
        cap, used = spool.get("capacity_bytes"), spool.get("bytes")
        fill = Text(format_bytes(used))
        if cap and used is not None:
            pct = 100.0 * used / cap
            fill = Text(f"{pct:.0f}% of {format_bytes(cap)}",
                        style="bold red" if pct >= 90 else "yellow" if pct >= 70 else "")
        unsynced = int(spool.get("next_lsn", 0)) - int(spool.get("durable_lsn", 0))
        spool_line = spark(list(h.series.get("spool_bytes", ())), SPARK_W)
        sp = _kv([("fill", fill), ("frames", format_count(spool.get("frames"))),
                  ("unsynced", str(max(0, unsynced))),
                  ("trend", Text(spool_line, style="cyan"))])
        self.query_one("#ov-spool", Panel).show(sp, (used, cap, spool.get("frames"), unsynced, spool_line))

        net = snap.get("link") or {}
        rate = net.get("bytes_per_s", h.link_rate)
        hb = h.heartbeat_age_ns()
        backlog = net.get("backlog")
        lk = _kv([("rate", Text(f"{format_bytes(rate)}/s" if rate is not None else "—", style="bold")),
                  ("sent", format_bytes(net.get("bytes_sent"))),
                  ("backlog", Text(f"{backlog} frames" if backlog is not None else "—",
                                   style="yellow" if backlog else "")),
                  ("heartbeat", format_age(hb) + " ago" if hb is not None else "—")])
        self.query_one("#ov-link", Panel).show(lk, (rate, net.get("bytes_sent"), backlog, hb))

        found = alarms(snap, h)
        al = Text(no_wrap=False)
        if not found:
            al.append("✓ no alarms", style="green")
        for i, (sev, text) in enumerate(found):
            if i:
                al.append("\n")
            al.append("✗ " if sev == "bad" else "! ", style="bold red" if sev == "bad" else "yellow")
            al.append(text, style="red" if sev == "bad" else "")
        if stale and link.error:
            al.append("\n" + link.error, style="red")
        self.query_one("#ov-alarms", Panel).show(al, al.plain)

        recent = list(h.events)[-RECENT_EVENTS:][::-1]
        ev = Text(no_wrap=True, overflow="ellipsis")
        for i, e in enumerate(recent):
            kind = str(e.get("kind", ""))
            if i:
                ev.append("\n")
            ev.append(format_time_ns(e.get("time_ns"))[11:19] + " ", style="dim")
            ev.append(f"{truncate(kind, 20):<21}", style=kind_style(kind))
            ev.append(str(e.get("text", "")).replace("\n", " "), style="dim")
        if not recent:
            ev.append("no events yet", style="dim")
        self.query_one("#ov-events", Panel).show(ev, (len(h.events), recent[:1] and recent[0].get("time_ns")))
