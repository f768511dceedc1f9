"""The help screen: keys of the screen underneath and of the app, and how to
read the columns. Generated from the bindings, so it never drifts."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from tui.widgets.mode_bar import MODE_TITLES


def _key_display(key: str) -> str:
    names = {"question_mark": "?", "slash": "/", "escape": "esc", "enter": "enter", "colon": ":",
             "space": "space"}
    return ", ".join(names.get(k.strip(), k.strip()) for k in key.split(","))


def _bindings(source: type[Screen[object]] | object) -> list[Binding]:
    raw: list[BindingType] = list(getattr(source, "BINDINGS", []))
    out: list[Binding] = []
    for b in raw:
        if isinstance(b, Binding):
            out.append(b)
        elif isinstance(b, tuple) and len(b) >= 2:
            out.append(Binding(b[0], b[1], b[2] if len(b) > 2 else ""))
    return out


class HelpScreen(ModalScreen[None]):
    """Lists every key that works on the screen below it."""

    BINDINGS = [
        Binding("escape,q,question_mark,f1", "close", "Close help", id="help.close"),
    ]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, under: Screen[object] | None = None, read_only: bool = True) -> None:
        super().__init__(id="help")
        self._under = under
        self._read_only = read_only

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold", no_wrap=True)
        keys.add_column()
        seen: set[str] = set()
        sources: list[object] = []
        if self._under is not None:
            sources.append(self._under)
        sources.append(self.app)
        for src in sources:
            for b in _bindings(src):
                if b.key in seen or not b.description or b.action.startswith("switch_mode"):
                    continue
                seen.add(b.key)
                keys.add_row(_key_display(b.key), b.tooltip or b.description)
        keys.add_row("1 … 7", "  ".join(f"{i} {t}" for i, (_, t) in enumerate(MODE_TITLES, start=1)))
        keys.add_row("ctrl+p", "also opens the command palette: screens, actions, jump to a tag")
        keys.add_row("↑ ↓ pgup pgdn", "move; tab moves between fields")
        keys.add_row("ctrl+home/end", "first / last row")
        cols = Table.grid(padding=(0, 2))
        cols.add_column(style="bold", no_wrap=True)
        cols.add_column()
        for name, text in getattr(self._under, "GLOSSARY", ()):
            cols.add_row(name, text)
        rights = getattr(self.app, "rights", "")
        mode = f"read-only ({rights}): this TUI changes nothing" if self._read_only \
            else f"read-write ({rights}): changes ask for confirmation"
        with VerticalScroll():
            yield Static(Text("tidegate — keys", style="bold"))
            yield Static(keys, id="help-keys")
            if cols.row_count:
                yield Static(Text("\nOn this screen", style="bold"))
                yield Static(cols)
            yield Static(Text(f"\n{mode}. esc or ? closes this help.", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)
