"""Tags: every tag with its live value, quality, age and count."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from collections.abc import Iterable

from textual.widget import Widget
from textual.binding import Binding
from textual.containers import Horizontal
from textual.events import Resize
from textual.widgets import DataTable, Input, Label, Static
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from tui.format import (
    format_age,
    format_count,
    format_time_ns,
    format_value,
    quality,
    quality_text,
    spark,
    tag_age_ns,
    truncate,
)
from tui.messages import AgentLink
from tui.screens.base import DataScreen
from tui.widgets.live_table import LiveTable

# column key, label, fixed width (None: takes the remaining width)
COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("name", "Tag", None),
    ("value", "Value", 16),
    ("quality", "Quality", 18),
    ("age", "Age", 6),
    ("count", "Count", 7),
)
TREND: tuple[str, str, int | None] = ("trend", "Trend", 12)
TREND_MIN_WIDTH = 100  # the trend column is shown from this terminal width up
DETAIL_SPARK = 16
MIN_NAME = 12
# sort orders, cycled with "s": (name, key function or None for the agent's order)
SORTS: tuple[str, ...] = ("agent order", "name", "quality", "age")
CELL_PADDING = 1  # DataTable default, each side
SCROLLBAR = 1

QUALITY_STYLE = {"Good": "green", "Uncertain": "yellow", "Bad": "bold red"}

# A cell as (text, style, justify): cheap to build and compare; turned into a
# Rich Text only when it goes into the table.
Cell = tuple[str, str, str]
Cells = tuple[Cell, ...]
EMPTY: Cell = ("", "", "left")


def row_key(tag: dict[str, Any]) -> str:
    index = tag.get("index")
    return f"i{index}" if index is not None else f"n{tag.get('name', '?')}"


def _raw(tag: dict[str, Any]) -> tuple[Any, ...]:
    """What the slow-to-format cells depend on (everything but the age)."""
    v = tag.get("value")
    return (tag.get("name"), type(v), v, tag.get("data_type"), tag.get("unit"),
            tag.get("status"), tag.get("count"))


def static_cells(tag: dict[str, Any], name_width: int) -> tuple[Cell, Cell, Cell, Cell]:
    """Name, value, quality and count cells of one tag."""
    status = int(tag.get("status") or 0)
    q = quality(status)
    v = tag.get("value")
    value = format_value(v, str(tag.get("data_type") or ""), str(tag.get("unit") or ""))
    right = isinstance(v, (int, float)) and not isinstance(v, bool)
    return (
        (truncate(str(tag.get("name", "?")), name_width, middle=True), "", "left"),
        (truncate(value, 16), "dim" if q == "Bad" else "", "right" if right else "left"),
        (quality_text(status), QUALITY_STYLE[q], "left"),
        (format_count(tag.get("count")), "", "right"),
    )


def tag_cells(tag: dict[str, Any], now_ns: int | None, name_width: int) -> Cells:
    name, value, qual, count = static_cells(tag, name_width)
    age: Cell = (format_age(tag_age_ns(tag, now_ns)), "", "right")
    return (name, value, qual, age, count)


def to_text(cell: Cell) -> Text:
    text, style, justify = cell
    return Text(text, style=style, justify="right" if justify == "right" else "left")


def sort_tags(tags: list[dict[str, Any]], order: str) -> list[dict[str, Any]]:
    if order == "name":
        return sorted(tags, key=lambda t: str(t.get("name", "")).casefold())
    if order == "quality":  # Bad first, then Uncertain; ties by name
        return sorted(tags, key=lambda t: (-((int(t.get("status") or 0) >> 30) & 3),
                                           str(t.get("name", "")).casefold()))
    if order == "age":  # oldest value first; tags with no value at the end
        return sorted(tags, key=lambda t: (not t.get("source_ns"), int(t.get("source_ns") or 0)))
    return tags


class TagsScreen(DataScreen):
    """The table of all tags, filterable by name, sortable."""

    MODE = "tags"
    GLOSSARY = (
        ("Value", "latest value with unit; — when the server sent none"),
        ("Trend", "the tag's recent values, one per refresh (from 100 columns up; "
                  "otherwise on the detail line)"),
        ("Quality", "OPC UA severity from the StatusCode's top two bits: "
                    "Good / Uncertain / Bad, then the code in hex"),
        ("Age", "agent clock minus the value's source timestamp"),
        ("Count", "values received since the agent started"),
    )
    BINDINGS = [
        Binding("slash", "start_filter", "Filter", id="tags.filter"),
        Binding("s", "cycle_sort", "Sort", id="tags.sort"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="tags.clear_filter"),
    ]

    DEFAULT_CSS = """
    TagsScreen #tags-table {
        height: 1fr;
        scrollbar-size-vertical: 1;
    }
    TagsScreen #tags-table.-stale {
        text-opacity: 60%;
    }
    TagsScreen #tag-detail {
        height: 1;
        padding: 0 1;
        background: $boost;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    TagsScreen #filter-bar {
        height: 1;
        display: none;
    }
    TagsScreen #filter-bar.-active {
        display: block;
    }
    TagsScreen #filter-bar Label {
        padding: 0 1;
    }
    TagsScreen #tag-filter {
        height: 1;
        width: 1fr;
        border: none;
        padding: 0;
    }
    """

    def __init__(self) -> None:
        super().__init__(id="tags")
        self.filter_text = ""
        self.sort = SORTS[0]
        self._columns: tuple[tuple[str, str, int | None], ...] = COLUMNS
        self._order: list[str] = []  # row keys in the table, in order
        self._tags: dict[str, dict[str, Any]] = {}  # latest tag per row key
        self._shown: dict[str, Cells] = {}  # what the table holds per row
        self._static: dict[str, tuple[tuple[Any, ...], tuple[Cell, Cell, Cell, Cell]]] = {}
        self._now_ns: int | None = None
        self._table: LiveTable | None = None
        self._name_width = MIN_NAME
        self._detail: Text | None = None

    def compose_body(self) -> Iterable[Widget]:
        yield LiveTable(id="tags-table")
        yield Static("", id="tag-detail", markup=False)
        with Horizontal(id="filter-bar"):
            yield Label("/", id="filter-slash")
            yield Input(placeholder="tag name contains…  (Enter keep, Esc clear)", id="tag-filter")
            yield Label("", id="filter-count")

    @property
    def table(self) -> LiveTable:
        if self._table is None:
            self._table = self.query_one("#tags-table", LiveTable)
        return self._table

    # ------------------------------------------------------------ rendering

    @staticmethod
    def _columns_for(width: int) -> tuple[tuple[str, str, int | None], ...]:
        return COLUMNS[:2] + (TREND,) + COLUMNS[2:] if width >= TREND_MIN_WIDTH else COLUMNS

    def _name_width_for(self, width: int) -> int:
        cols = self._columns_for(width)
        fixed = sum(w for _, _, w in cols if w is not None)
        pads = 2 * CELL_PADDING * len(cols)
        return max(MIN_NAME, width - fixed - pads - SCROLLBAR)

    def on_unmount(self) -> None:
        self._ready = False

    def on_mount(self) -> None:
        self.table.on_viewport = self._flush_viewport
        self._setup_columns(self._name_width_for(self.size.width or 80))

    def _setup_columns(self, name_width: int) -> None:
        table = self.table
        table.clear(columns=True)
        self._name_width = name_width
        self._columns = self._columns_for(self.size.width or 80)
        for key, label, width in self._columns:
            table.add_column(label, width=width if width is not None else name_width, key=key)
        self._order = []
        self._shown = {}
        self._static = {}

    def on_resize(self, event: Resize) -> None:
        width = self._name_width_for(event.size.width)
        if width != self._name_width or self._columns != self._columns_for(event.size.width):
            self._setup_columns(width)
            self.render_snapshot(self.tg_app.link)

    def render_snapshot(self, link: AgentLink) -> None:
        """Take a new snapshot: rebuild the rows if the set of tags shown
        changed, then bring the rows on screen up to date. Rows off screen
        are refreshed when they scroll into view."""
        table = self.table
        if not table.columns:
            self._setup_columns(self._name_width_for(self.size.width or 80))
        table.set_class(link.state != "connected", "-stale")
        snap = link.snapshot or {}
        tags: list[dict[str, Any]] = list(snap.get("tags") or [])
        self._now_ns = (snap.get("agent") or {}).get("now_ns")
        needle = self.filter_text.casefold()
        if needle:
            tags_shown = [t for t in tags if needle in str(t.get("name", "")).casefold()]
        else:
            tags_shown = tags
        tags_shown = sort_tags(tags_shown, self.sort)
        self._tags = {row_key(t): t for t in tags_shown}
        if len(self._tags) != len(self._order) or list(self._tags) != self._order:
            self._rebuild(list(self._tags))
        self._flush_viewport()
        self.query_one("#filter-count", Label).update(
            f"{len(tags_shown)} of {len(tags)}" if self.filter_text else ""
        )
        self._render_detail(link, len(tags))

    def _rebuild(self, keys: list[str]) -> None:
        """New row set: rows start blank and are filled by _flush_viewport."""
        table = self.table
        current = self._cursor_key()
        table.clear()
        blank = ("",) * len(self._columns)
        for k in keys:
            table.add_row(*blank, key=k)
        self._order = keys
        self._shown = {}
        if current is not None and current in self._tags:
            table.move_cursor(row=table.get_row_index(current), animate=False)

    def _flush_viewport(self) -> None:
        """Update the cells of the rows on screen that differ from what the
        table shows (update_cell by row key; nothing else is touched)."""
        table = self.table
        order, tags, shown, cache = self._order, self._tags, self._shown, self._static
        now_ns, width = self._now_ns, self._name_width
        columns = self._columns
        trend = len(columns) > len(COLUMNS)
        history = self.tg_app.history
        for i in table.visible_rows():
            key = order[i]
            tag = tags.get(key)
            if tag is None:
                continue
            raw = _raw(tag)
            hit = cache.get(key)
            if hit is None or hit[0] != raw:
                hit = (raw, static_cells(tag, width))
                cache[key] = hit
            name, value, qual, count = hit[1]
            age: Cell = (format_age(tag_age_ns(tag, now_ns)), "", "right")
            if trend:
                line: Cell = (spark(history.tag(tag), TREND[2] or 0), "cyan", "left")
                new: Cells = (name, value, line, qual, age, count)
            else:
                new = (name, value, qual, age, count)
            old = shown.get(key)
            if old == new:
                continue
            for j, (col, _, _) in enumerate(columns):
                if old is None or old[j] != new[j]:
                    table.update_cell(key, col, to_text(new[j]))
            shown[key] = new

    def _cursor_key(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except (CellDoesNotExist, RowDoesNotExist):
            return None
        return key

    def _render_detail(self, link: AgentLink, total: int) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        if link.state != "connected" and link.error:
            t.append(link.error, style="red")
        elif link.snapshot is None:
            t.append(f"waiting for the agent on {link.socket_path}…", style="dim")
        elif total == 0:
            t.append("the agent reports no tags", style="dim")
        elif not self._order:
            t.append(f"no tag name contains {self.filter_text!r}", style="yellow")
        else:
            key = self._cursor_key()
            tag = self._tags.get(key) if key is not None else None
            if tag is not None:
                t.append(str(tag.get("name", "?")), style="bold")
                values = self.tg_app.history.tag(tag)
                if len(values) > 1:
                    t.append(" " + spark(values, DETAIL_SPARK).strip(), style="cyan")
                status = int(tag.get("status") or 0)
                parts = [
                    str(tag.get("source") or ""),
                    str(tag.get("node_id") or ""),
                    str(tag.get("data_type") or ""),
                    quality_text(status, prefix=True) if status else "Good 0x00000000",
                    "src " + format_time_ns(tag.get("source_ns")),
                ]
                for p in parts:
                    if p:
                        t.append("  " + p, style="dim")
        if self._detail is not None and t == self._detail:
            return
        self._detail = t
        self.query_one("#tag-detail", Static).update(t)

    @on(DataTable.RowHighlighted, "#tags-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._render_detail(self.tg_app.link, len((self.tg_app.link.snapshot or {}).get("tags") or []))

    # ------------------------------------------------------------ filter and sort

    def action_cycle_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.notify(f"Tags sorted by {self.sort}", timeout=2)
        self.render_snapshot(self.tg_app.link)

    def set_filter(self, text: str) -> None:
        """Show only tags whose name contains `text` (from the command palette)."""
        box = self.query_one("#tag-filter", Input)
        self.query_one("#filter-bar").set_class(bool(text), "-active")
        box.value = text
        self._set_filter(text)

    def action_start_filter(self) -> None:
        self.query_one("#filter-bar").add_class("-active")
        self.query_one("#tag-filter", Input).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#tag-filter", Input)
        self.query_one("#filter-bar").remove_class("-active")
        self.table.focus()
        if box.value or self.filter_text:
            box.value = ""
            self._set_filter("")

    @on(Input.Changed, "#tag-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._set_filter(event.value)

    @on(Input.Submitted, "#tag-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value:
            self.query_one("#filter-bar").remove_class("-active")
        self.table.focus()

    def _set_filter(self, text: str) -> None:
        if text == self.filter_text:
            return
        self.filter_text = text
        self.render_snapshot(self.tg_app.link)
        if self.table.row_count:
            self.table.move_cursor(row=0, animate=False)
