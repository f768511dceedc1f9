"""Re-send: choose a time range (or a range of frame sequence numbers) and have
the agent send it across the diode again, after a confirmation.

Times are UTC, absolute (``2026-11-24 07:30``) or relative to the agent's
clock (``-15m``, ``now``). The request is the status op ``resend`` of
:mod:`edge.control`; the agent's answer (or why it cannot) is shown below.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.widget import Widget
from textual.widgets import Button, Input, Label, RichLog, Static

from edge.status import AgentUnavailable, StatusError
from tui.format import format_age, format_time_ns, parse_when
from tui.messages import AgentLink
from tui.screens.base import DataScreen
from tui.screens.confirm import ConfirmScreen

DEFAULT_FROM = "-15m"
DEFAULT_TO = "now"


def parse_range(mode: str, first: str, last: str, now_ns: int) -> dict[str, int]:
    """The resend request keys for the form's text; ValueError says what is wrong."""
    if mode == "time":
        a = parse_when(first, now_ns)
        b = parse_when(last, now_ns)
        if a > b:
            raise ValueError("'from' is after 'to'")
        if a < 0:
            raise ValueError("'from' is before 1970")
        return {"t_first_ns": a, "t_last_ns": b}
    try:
        a, b = int(first.strip()), int(last.strip() or first.strip())
    except ValueError:
        raise ValueError("sequence numbers are whole numbers, e.g. 1200 and 1300") from None
    if a < 0 or b < 0:
        raise ValueError("sequence numbers are not negative")
    if a > b:
        raise ValueError("first sequence number is after the last")
    return {"seq_first": a, "seq_last": b}


def describe_range(rng: dict[str, int]) -> str:
    if "t_first_ns" in rng:
        a, b = rng["t_first_ns"], rng["t_last_ns"]
        return f"{format_time_ns(a)} → {format_time_ns(b)} ({format_age(b - a)})"
    return f"frames {rng['seq_first']} … {rng['seq_last']} ({rng['seq_last'] - rng['seq_first'] + 1} frames)"


class ResendScreen(DataScreen):
    MODE = "resend"
    AUTO_FOCUS = "#resend-send"  # number keys switch screens on arrival; tab reaches the fields
    GLOSSARY = (
        ("from / to", "UTC: 'now', '-15m', '-2h', '-1d', or '2026-11-24 07:30[:00]'"),
        ("sequence", "frame sequence numbers, first and last (t switches)"),
        ("re-send", "operators only; the frames go over the link again, IT dedupes them"),
    )
    BINDINGS = [
        Binding("t", "toggle_mode", "Time/sequence", id="resend.mode"),
        Binding("ctrl+s", "send", "Re-send", id="resend.send"),
        Binding("escape", "leave_fields", "Leave the fields", show=False, id="resend.leave"),
    ]

    DEFAULT_CSS = """
    ResendScreen #resend-form { height: auto; grid-size: 2; grid-columns: 12 1fr;
                                grid-rows: 3; padding: 0 1; }
    ResendScreen #resend-form Label { padding: 1 0; }
    ResendScreen #resend-preview { height: 1; padding: 0 1; }
    ResendScreen #resend-actions { height: 3; padding: 0 1; }
    ResendScreen #resend-log { height: 1fr; border-top: solid $primary-darken-2; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__(id="resend")
        self.mode = "time"
        self.last_reply: dict[str, Any] | None = None
        self.last_error = ""
        self._preview: str | None = None

    def compose_body(self) -> Iterable[Widget]:
        with Grid(id="resend-form"):
            yield Label("From", id="resend-from-label")
            yield Input(DEFAULT_FROM, id="resend-from")
            yield Label("To", id="resend-to-label")
            yield Input(DEFAULT_TO, id="resend-to")
        yield Static("", id="resend-preview", markup=False)
        with Horizontal(id="resend-actions"):
            yield Button("Re-send… (ctrl+s)", id="resend-send", variant="warning")
        yield RichLog(id="resend-log", max_lines=200, wrap=True, markup=False)

    def _now(self) -> int | None:
        now = ((self.tg_app.link.snapshot or {}).get("agent") or {}).get("now_ns")
        return int(now) if isinstance(now, int) else None

    def _range(self) -> dict[str, int]:
        now = self._now()
        if now is None and self.mode == "time":
            raise ValueError("the agent's clock is not known yet (not connected)")
        return parse_range(self.mode, self.query_one("#resend-from", Input).value,
                           self.query_one("#resend-to", Input).value, now or 0)

    def render_snapshot(self, link: AgentLink) -> None:
        self._render_preview()

    def _render_preview(self) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        try:
            t.append(describe_range(self._range()), style="bold")
        except ValueError as e:
            t.append(str(e), style="yellow")
        if t.plain != self._preview:
            self._preview = t.plain
            self.query_one("#resend-preview", Static).update(t)

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self._render_preview()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "resend-from":
            self.query_one("#resend-to", Input).focus()
        else:
            self.action_send()

    @on(Button.Pressed, "#resend-send")
    def _pressed(self, event: Button.Pressed) -> None:
        self.action_send()

    def action_leave_fields(self) -> None:
        self.query_one("#resend-send", Button).focus()

    def action_toggle_mode(self) -> None:
        self.mode = "sequence" if self.mode == "time" else "time"
        time_mode = self.mode == "time"
        self.query_one("#resend-from-label", Label).update("From" if time_mode else "First seq")
        self.query_one("#resend-to-label", Label).update("To" if time_mode else "Last seq")
        self.query_one("#resend-from", Input).value = DEFAULT_FROM if time_mode else ""
        self.query_one("#resend-to", Input).value = DEFAULT_TO if time_mode else ""
        self.query_one("#resend-from", Input).focus()
        self._render_preview()

    def action_send(self) -> None:
        try:
            rng = self._range()
        except ValueError as e:
            self.notify(f"Re-send: {e}", severity="error", timeout=5)
            return
        if not self.tg_app.require_operator("Re-send"):
            return
        body = (f"Send {describe_range(rng)} across the diode again?\n\n"
                "This uses link bandwidth alongside live data; IT drops what it already has.")
        def confirmed(yes: bool | None) -> None:
            if yes:
                self._send(rng)

        self.app.push_screen(ConfirmScreen("Re-send a range", body), confirmed)

    @work(exclusive=True, group="resend")
    async def _send(self, rng: dict[str, int]) -> None:
        log = self.query_one("#resend-log", RichLog)
        try:
            reply = await self.tg_app.control({"op": "resend", **rng})
        except (AgentUnavailable, StatusError) as e:
            self.last_error = str(e)
            self.last_reply = None
            log.write(Text.assemble(("✗ ", "bold red"), describe_range(rng), ": ", (str(e), "red")))
            self.notify(f"Re-send refused: {e}", severity="error", timeout=8)
            return
        self.last_error = ""
        self.last_reply = reply
        extra = ", ".join(f"{k} {v}" for k, v in reply.items() if k not in rng and k != "ok")
        log.write(Text.assemble(("✓ ", "bold green"), describe_range(rng), (f"  {extra}" if extra else "")))
        self.notify("Re-send requested", timeout=4)
