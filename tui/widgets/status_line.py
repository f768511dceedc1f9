"""The one-line header every data screen shows: site, agent connection state,
values/s, spool fill, link bytes."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from tui.format import format_age, format_bytes, format_rate
from tui.messages import AgentLink

SEP = " │ "


def status_text(link: AgentLink, read_only: bool = True) -> Text:
    snap: dict[str, Any] = link.snapshot or {}
    agent = snap.get("agent") or {}
    spool = snap.get("spool") or {}
    net = snap.get("link") or {}
    rates = snap.get("rates") or {}

    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(str(agent.get("site") or "tidegate"), style="bold")
    t.append(SEP, style="dim")
    if link.state == "connected":
        t.append("● connected", style="bold green")
    elif link.state == "connecting":
        t.append("○ connecting…", style="bold yellow")
    else:
        t.append("○ reconnecting…", style="bold red")
        stale = link.stale_for()
        if stale is not None:
            t.append(f" data {format_age(int(stale * 1e9))} old", style="red")
    t.append(SEP, style="dim")
    if read_only:
        t.append("RO", style="dim")
    else:
        t.append("RW", style="bold magenta")
    if not snap:
        return t
    dim = "dim" if link.state != "connected" else ""
    t.append(SEP, style="dim")
    t.append(f"{format_rate(rates.get('values_per_s'))} val/s", style=dim)
    t.append(SEP, style="dim")
    t.append("spool ", style="dim")
    cap = spool.get("capacity_bytes")
    used = spool.get("bytes")
    if cap and used is not None:
        pct = 100.0 * float(used) / float(cap)
        style = "bold red" if pct >= 90 else "yellow" if pct >= 70 else dim
        t.append(f"{pct:.0f}% ", style=style)
    t.append(format_bytes(used), style=dim)
    t.append(SEP, style="dim")
    t.append("link ", style="dim")
    t.append(f"{format_bytes(net.get('bytes_sent'))}↑", style=dim)
    backlog = net.get("backlog")
    if backlog:
        t.append(f" +{backlog} queued", style="yellow")
    return t


class StatusLine(Static):
    """Renders an AgentLink; only repaints when the text actually changes."""

    DEFAULT_CSS = """
    StatusLine {
        dock: top;
        height: 1;
        width: 100%;
        background: $panel;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, *, id: str | None = "status-line") -> None:
        super().__init__("", id=id, markup=False)
        self._last: str | None = None
        self._last_styled: Text | None = None

    def show(self, link: AgentLink, read_only: bool = True) -> None:
        text = status_text(link, read_only)
        if self._last_styled is not None and text == self._last_styled:
            return
        self._last = text.plain
        self._last_styled = text
        self.update(text)

    @property
    def plain(self) -> str:
        """The current text (for tests and logs)."""
        return self._last or ""
