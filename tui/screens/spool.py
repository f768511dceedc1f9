"""Spool and link: fill over time, link rate and backlog over time, and every
counter the spool and the sender report (drops, re-sends, FEC repairs… as the
build provides them: unknown counters are listed too, so nothing is hidden)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Label, Sparkline, Static

from tui.format import format_bytes, format_count
from tui.messages import AgentLink
from tui.screens.base import DataScreen

BYTES_KEYS = ("bytes", "capacity_bytes", "bytes_sent", "truncated_bytes", "data_payload_bytes")
# counters an operator looks for first; shown first when the agent reports them
NOTABLE = ("dropped_frames", "dropped_bytes", "gap_frames", "resent_frames", "fec_repairs",
           "send_errors", "duplicates", "truncated_bytes")


def counters_table(title: str, stats: dict[str, Any]) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold", box=None, padding=(0, 1),
              show_header=False, expand=False)
    t.add_column(style="dim", no_wrap=True)
    t.add_column(justify="right", no_wrap=True)
    keys = [k for k in NOTABLE if k in stats] + sorted(k for k in stats if k not in NOTABLE)
    for k in keys:
        v = stats[k]
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            text = format_bytes(v) if k in BYTES_KEYS or k.endswith("_bytes") else format_count(int(v))
            style = "yellow" if k in NOTABLE[:6] and v else ""
        else:
            text, style = str(v), ""
        t.add_row(k.replace("_", " "), Text(text, style=style))
    return t


class SpoolScreen(DataScreen):
    MODE = "spool"
    GLOSSARY = (
        ("spool bytes", "what the spool holds on disk, over the last minutes"),
        ("link rate", "bytes per second put on the diode link"),
        ("backlog", "durable frames the sender has not sent yet"),
        ("counters", "everything the spool, the sender and the agent count"),
    )

    DEFAULT_CSS = """
    SpoolScreen #spool-graphs { height: auto; }
    SpoolScreen .graph-label { height: 1; padding: 0 1; width: 100%; }
    SpoolScreen Sparkline { height: 2; margin: 0 1; }
    SpoolScreen #spool-counters { height: 1fr; }
    SpoolScreen #spool-counters > Static { width: 1fr; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__(id="spool")
        self._shown: dict[str, object] = {}

    def compose_body(self) -> Iterable[Widget]:
        with Vertical(id="spool-graphs"):
            yield Label("", id="lbl-spool", classes="graph-label")
            yield Sparkline([], id="spark-spool")
            yield Label("", id="lbl-rate", classes="graph-label")
            yield Sparkline([], id="spark-rate")
            yield Label("", id="lbl-backlog", classes="graph-label")
            yield Sparkline([], id="spark-backlog")
        with Horizontal(id="spool-counters"):
            yield Static("", id="counters-spool", markup=False)
            yield Static("", id="counters-link", markup=False)

    def _set(self, wid: str, value: object, apply: Any) -> None:
        if self._shown.get(wid) != value:
            self._shown[wid] = value
            apply()

    def render_snapshot(self, link: AgentLink) -> None:
        snap = link.snapshot or {}
        h = self.tg_app.history
        self.set_class(link.state != "connected", "-stale")
        spool: dict[str, Any] = snap.get("spool") or {}
        net: dict[str, Any] = snap.get("link") or {}
        cap = spool.get("capacity_bytes")
        used = spool.get("bytes")
        fill = f"  {100.0 * used / cap:.0f}% of {format_bytes(cap)}" if cap and used is not None else ""
        rate = net.get("bytes_per_s", h.link_rate)
        labels = {
            "lbl-spool": f"spool {format_bytes(used)}{fill}, {format_count(spool.get('frames'))} frames",
            "lbl-rate": f"link {format_bytes(rate)}/s" if rate is not None else "link —",
            "lbl-backlog": f"backlog {net.get('backlog', '—')} frames",
        }
        for wid, text in labels.items():
            self._set(wid, text, lambda w=wid, t=text: self.query_one(f"#{w}", Label).update(t))
        for wid, series in (("spark-spool", "spool_bytes"), ("spark-rate", "link_rate"),
                            ("spark-backlog", "backlog")):
            data = list(h.series.get(series, ()))
            self._set(wid, (len(data), data[-1] if data else None, h.updates),
                      lambda w=wid, d=data: setattr(self.query_one(f"#{w}", Sparkline), "data", d))
        agent_counters = dict(snap.get("counters") or {})
        left = counters_table("Spool", spool)
        right = counters_table("Link", {**net, **{k: v for k, v in agent_counters.items()
                                                   if k.endswith("_frames")}})
        self._set("counters-spool", repr(spool),
                  lambda: self.query_one("#counters-spool", Static).update(left))
        self._set("counters-link", repr((net, agent_counters)),
                  lambda: self.query_one("#counters-link", Static).update(right))
        if not snap:
            msg = link.error or f"waiting for the agent on {link.socket_path}…"
            self._set("lbl-spool", msg, lambda: self.query_one("#lbl-spool", Label).update(
                Text(msg, style="red" if link.error else "dim")))
