"""The line of screens under the status line: ``1 Overview  2 Tags …`` with
the current one highlighted, so the number keys are never a secret."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

MODE_TITLES: tuple[tuple[str, str], ...] = (
    ("overview", "Overview"),
    ("tags", "Tags"),
    ("sources", "Sources"),
    ("spool", "Spool"),
    ("events", "Events"),
    ("browse", "Browse"),
    ("resend", "Re-send"),
)


def mode_text(current: str) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    for i, (mode, title) in enumerate(MODE_TITLES, start=1):
        if mode == current:
            t.append(f" {i} {title} ", style="bold reverse")
        else:
            t.append(f" {i}", style="bold")
            t.append(f" {title} ", style="dim")
    return t


class ModeBar(Static):
    DEFAULT_CSS = """
    ModeBar {
        height: 1;
        width: 100%;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, current: str) -> None:
        super().__init__(mode_text(current), id="mode-bar", markup=False)
