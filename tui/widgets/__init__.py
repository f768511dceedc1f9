"""Reusable widgets of the tidegate TUI."""

from tui.widgets.live_table import LiveTable
from tui.widgets.mode_bar import ModeBar
from tui.widgets.status_line import StatusLine

__all__ = ["LiveTable", "ModeBar", "StatusLine"]
