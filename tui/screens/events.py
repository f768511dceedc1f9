"""Events: connects, disconnects, failing nodes, config changes, operator
actions, newest first. The TUI keeps every event it has seen since it started
(the agent's snapshot carries only the newest), filterable with /."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widget import Widget
from textual.events import Resize
from textual.widgets import DataTable, Input, Label, Static
from textual.widgets.data_table import ColumnKey

from tui.format import format_time_ns, truncate
from tui.messages import AgentLink
from tui.screens.base import DataScreen

BAD_KINDS = ("disconnected", "failed", "error", "rejected", "gap", "overflow")
GOOD_KINDS = ("connected", "reloaded", "added", "resend")


def kind_style(kind: str) -> str:
    if any(k in kind for k in BAD_KINDS):
        return "bold red"
    if kind.startswith("operator_"):
        return "magenta"
    if any(k in kind for k in GOOD_KINDS):
        return "green"
    return ""


class EventsScreen(DataScreen):
    MODE = "events"
    GLOSSARY = (
        ("Time", "agent clock, UTC"),
        ("Kind", "source_connected, node_failed, config_reloaded, operator_… (operator "
                 "actions also cross the diode as EVENT frames)"),
    )
    BINDINGS = [
        Binding("slash", "start_filter", "Filter", id="events.filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="events.clear_filter"),
    ]

    DEFAULT_CSS = """
    EventsScreen #events-table { height: 1fr; overflow-x: hidden; }
    EventsScreen #event-detail { height: 2; padding: 0 1; background: $boost; }
    EventsScreen #events-filter-bar { height: 1; display: none; }
    EventsScreen #events-filter-bar.-active { display: block; }
    EventsScreen #events-filter-bar Label { padding: 0 1; }
    EventsScreen #events-filter { height: 1; width: 1fr; border: none; padding: 0; }
    """

    def __init__(self) -> None:
        super().__init__(id="events")
        self.filter_text = ""
        self._shown: tuple[int, str, int] | None = None
        self._events: list[dict[str, Any]] = []

    def compose_body(self) -> Iterable[Widget]:
        yield DataTable(id="events-table", cursor_type="row")
        yield Static("", id="event-detail", markup=False)
        with Horizontal(id="events-filter-bar"):
            yield Label("/")
            yield Input(placeholder="kind or text contains…  (Enter keep, Esc clear)", id="events-filter")
            yield Label("", id="events-count")

    @property
    def table(self) -> DataTable[Text]:
        return self.query_one("#events-table", DataTable)

    def _matching(self) -> list[dict[str, Any]]:
        needle = self.filter_text.casefold()
        events = list(self.tg_app.history.events)
        if needle:
            events = [e for e in events if needle in f"{e.get('kind', '')} {e.get('text', '')}".casefold()]
        events.sort(key=lambda e: int(e.get("time_ns") or 0), reverse=True)
        return events

    def render_snapshot(self, link: AgentLink) -> None:
        self.table.set_class(link.state != "connected", "-stale")
        h = self.tg_app.history
        width = max(10, (self.size.width or 80) - 23 - 20 - 6)  # the rows fill the screen
        key = (len(h.events), self.filter_text, width)
        if key == self._shown:
            return
        self._shown = key
        events = self._events = self._matching()
        table = self.table
        if not table.columns or table.columns[ColumnKey("text")].width != width:
            # fixed widths that fill the screen exactly: the layout never
            # depends on which rows happened to be there before
            table.clear(columns=True)
            table.add_column("Time (UTC)", key="time", width=23)
            table.add_column("Kind", key="kind", width=20)
            table.add_column("Detail", key="text", width=width)
        table.clear()
        for i, e in enumerate(events):
            kind = str(e.get("kind", ""))
            table.add_row(Text(format_time_ns(e.get("time_ns")), style="dim"),
                          Text(truncate(kind, 20), style=kind_style(kind)),
                          Text(truncate(str(e.get("text", "")).replace("\n", " "), width)), key=f"e{i}")
        self._render_detail()
        self.query_one("#events-count", Label).update(
            f"{len(events)} of {len(h.events)}" if self.filter_text else "")

    def _render_detail(self) -> None:
        t = Text()
        row = self.table.cursor_row
        if self._events and 0 <= row < len(self._events):
            e = self._events[row]
            t.append(str(e.get("kind", "")), style="bold")
            t.append("  " + str(e.get("text", "")))
        elif not self.tg_app.history.events:
            t.append("no events yet", style="dim")
        self.query_one("#event-detail", Static).update(t)

    @on(DataTable.RowHighlighted, "#events-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._render_detail()

    def on_resize(self, event: Resize) -> None:
        self.render_link(self.tg_app.link)

    def action_start_filter(self) -> None:
        self.query_one("#events-filter-bar").add_class("-active")
        self.query_one("#events-filter", Input).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#events-filter", Input)
        self.query_one("#events-filter-bar").remove_class("-active")
        self.table.focus()
        box.value = ""
        self._set_filter("")

    @on(Input.Changed, "#events-filter")
    def _changed(self, event: Input.Changed) -> None:
        self._set_filter(event.value)

    @on(Input.Submitted, "#events-filter")
    def _submitted(self, event: Input.Submitted) -> None:
        if not event.value:
            self.query_one("#events-filter-bar").remove_class("-active")
        self.table.focus()

    def _set_filter(self, text: str) -> None:
        if text != self.filter_text:
            self.filter_text = text
            self.render_snapshot(self.tg_app.link)
