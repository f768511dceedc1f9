"""Sources: every OPC UA server, its connection, security, reconnects, the
server's operation limits, and the nodes that fail and why."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import DataTable, Static

from tui.format import format_count, truncate
from tui.messages import AgentLink
from tui.screens.base import DataScreen

COLUMNS = (("name", "Source", 14), ("state", "State", 12), ("security", "Security", 10),
           ("tags", "Subscribed", 10), ("reconnects", "Reconn.", 7), ("failing", "Failing", 7))


def source_row(s: dict[str, Any]) -> tuple[Text, ...]:
    up = bool(s.get("connected"))
    failing = len(s.get("failing") or [])
    return (
        Text(truncate(str(s.get("name", "?")), 14)),
        Text("● connected" if up else "○ down", style="green" if up else "bold red"),
        Text(str(s.get("security_policy") or s.get("security") or "—")),
        Text(f"{s.get('subscribed', 0)}/{s.get('tags', 0)}", justify="right"),
        Text(str(s.get("reconnects", 0)), justify="right"),
        Text(str(failing), style="yellow" if failing else "", justify="right"),
    )


def source_detail(s: dict[str, Any]) -> Table:
    t = Table.grid(padding=(0, 1))
    t.add_column(style="dim", no_wrap=True)
    t.add_column(overflow="fold")
    t.add_row("endpoint", str(s.get("endpoint", "—")))
    if s.get("publishing_interval_ms") is not None:
        t.add_row("publishing", f"{float(s['publishing_interval_ms']):g} ms (revised by the server)")
    t.add_row("notifications", f"{format_count(s.get('notifications'))}  replayed "
                               f"{format_count(s.get('replayed'))}  overflows {format_count(s.get('overflows'))}")
    if s.get("last_error"):
        t.add_row("last error", Text(str(s["last_error"]), style="red"))
    limits = s.get("limits") or {}
    if limits:
        t.add_row("limits", ", ".join(f"{k} {v}" for k, v in sorted(limits.items())))
    failing = s.get("failing") or []
    t.add_row("failing", Text(f"{len(failing)} node(s)", style="yellow" if failing else "green"))
    for f in failing:
        t.add_row("", Text.assemble((str(f.get("node_id", "?")), "bold"), "  ", str(f.get("reason", ""))))
    return t


class SourcesScreen(DataScreen):
    MODE = "sources"
    GLOSSARY = (
        ("State", "the OPC UA session: connected, or down (the agent retries with backoff)"),
        ("Subscribed", "monitored items the server accepted / tags wanted from it"),
        ("Reconn.", "times the session came back after a loss"),
        ("Failing", "nodes that cannot be collected; the detail below says why"),
        ("limits", "the server's operation limits the agent batches its requests by"),
    )

    DEFAULT_CSS = """
    SourcesScreen #sources-table { height: auto; max-height: 50%; }
    SourcesScreen #source-detail-box { height: 1fr; border-top: solid $primary-darken-2; }
    SourcesScreen #source-detail { padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__(id="sources")
        self._rows: dict[str, tuple[Text, ...]] = {}
        self._detail_key: object = None

    def compose_body(self) -> Iterable[Widget]:
        table: DataTable[Text] = DataTable(id="sources-table", cursor_type="row")
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        yield table
        with VerticalScroll(id="source-detail-box"):
            yield Static("", id="source-detail", markup=False)

    @property
    def table(self) -> DataTable[Text]:
        return self.query_one("#sources-table", DataTable)

    def _sources(self) -> list[dict[str, Any]]:
        return list((self.tg_app.link.snapshot or {}).get("sources") or [])

    def render_snapshot(self, link: AgentLink) -> None:
        table = self.table
        table.set_class(link.state != "connected", "-stale")
        sources = self._sources()
        keys = [str(s.get("name", i)) for i, s in enumerate(sources)]
        if keys != list(self._rows):
            table.clear()
            self._rows = {}
            for k in keys:
                table.add_row(*[Text("")] * len(COLUMNS), key=k)
        for k, s in zip(keys, sources):
            row = source_row(s)
            old = self._rows.get(k)
            if old != row:
                for j, (col, _, _) in enumerate(COLUMNS):
                    if old is None or old[j] != row[j]:
                        table.update_cell(k, col, row[j])
                self._rows[k] = row
        self._render_detail()

    def _render_detail(self) -> None:
        sources = self._sources()
        detail = self.query_one("#source-detail", Static)
        if not sources:
            link = self.tg_app.link
            msg = link.error or ("the agent reports no sources" if link.snapshot else "waiting for the agent…")
            if self._detail_key != msg:
                self._detail_key = msg
                detail.update(Text(msg, style="red" if link.error else "dim"))
            return
        row = min(max(self.table.cursor_row, 0), len(sources) - 1)
        s = sources[row]
        key = repr(s)
        if key != self._detail_key:
            self._detail_key = key
            detail.update(source_detail(s))

    @on(DataTable.RowHighlighted, "#sources-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._render_detail()
