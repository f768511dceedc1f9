"""A DataTable that tells its owner when the visible window of rows moves, so
rows off screen can be left stale and filled in only when they scroll into
view (what makes thousands of live tags cheap)."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.widgets import DataTable


class LiveTable(DataTable[Text | str]):
    """``on_viewport`` is called after every vertical scroll or resize."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.on_viewport: Callable[[], None] | None = None

    def visible_rows(self, margin: int = 2) -> range:
        """Indices of the rows on screen (fixed row height 1), plus a margin."""
        height = max(0, self.size.height - (self.header_height if self.show_header else 0))
        first = max(0, int(self.scroll_y) - margin)
        last = min(self.row_count, int(self.scroll_y) + height + margin + 1)
        return range(first, max(first, last))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if int(old_value) != int(new_value) and self.on_viewport is not None:
            self.on_viewport()

    def on_resize(self) -> None:
        if self.on_viewport is not None:
            self.on_viewport()
