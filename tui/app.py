"""The tidegate technician TUI (Textual).

Data flow: one async worker polls the agent's status socket
(:class:`edge.status.StatusClient`) every ``refresh`` seconds, never
overlapping (the next poll is armed after the previous one ends), and posts
:class:`~tui.messages.SnapshotReceived` or :class:`~tui.messages.AgentLost`.
The app keeps the connection state in :attr:`TidegateApp.link` and asks the
*active* data screen to render it; screens update only the cells that changed.
All socket I/O is non-blocking on the event loop, so the UI never waits on
the agent; when the agent goes away the header shows "reconnecting…" and the
last data stays on screen, dimmed, until it comes back.

Screens: one per task, as App modes (today: ``tags``; Overview, Sources,
Spool, Events, Browse and Re-send slot in as further modes).
"""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from edge.status import AgentUnavailable, StatusClient, StatusError
from tui.messages import AgentLink, AgentLost, SnapshotReceived
from tui.screens.base import DataScreen
from tui.screens.help import HelpScreen
from tui.screens.tags import TagsScreen

MIN_REFRESH = 0.05


class TidegateApp(App[None]):
    """``TidegateApp(socket_path, refresh=1.0, read_only=True)``."""

    TITLE = "tidegate"
    ENABLE_COMMAND_PALETTE = False
    MODES: ClassVar[dict[str, type[Screen[None]]]] = {"tags": TagsScreen}  # type: ignore[assignment]
    DEFAULT_MODE: ClassVar[str] = "tags"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark,f1", "help", "Help", key_display="?", id="app.help"),
        Binding("r", "refresh_now", "Refresh", show=False, id="app.refresh"),
    ]

    def __init__(
        self,
        socket_path: str,
        refresh: float = 1.0,
        read_only: bool = True,
        *,
        timeout: float = 3.0,
    ) -> None:
        super().__init__()
        self.socket_path = socket_path
        self.refresh_interval = max(MIN_REFRESH, float(refresh))
        self.read_only = read_only
        self.timeout = timeout
        self.link = AgentLink(socket_path=socket_path)
        self.polls = 0
        self._wake = asyncio.Event()

    def on_mount(self) -> None:
        self.run_worker(self._poll_loop(), name="status-poll", group="poll", exclusive=True)

    # ------------------------------------------------------------ polling

    async def _poll_loop(self) -> None:
        client = StatusClient(self.socket_path, timeout=self.timeout)
        try:
            while True:
                self._wake.clear()
                try:
                    snap = await client.snapshot()
                except AgentUnavailable as e:
                    self.post_message(AgentLost(str(e)))
                except StatusError as e:
                    self.post_message(AgentLost(f"agent error: {e}"))
                else:
                    self.post_message(SnapshotReceived(snap))
                self.polls += 1
                try:
                    await asyncio.wait_for(self._wake.wait(), self.refresh_interval)
                except TimeoutError:
                    pass
        finally:
            await client.close()

    def on_snapshot_received(self, message: SnapshotReceived) -> None:
        link = self.link
        link.snapshot = message.snapshot
        link.state = "connected"
        link.error = ""
        link.failures = 0
        link.last_ok = time.monotonic()
        site = (message.snapshot.get("agent") or {}).get("site")
        if site:
            self.sub_title = str(site)
        self._render_active()

    def on_agent_lost(self, message: AgentLost) -> None:
        link = self.link
        link.failures += 1
        link.error = message.error
        link.state = "connecting" if link.last_ok is None else "reconnecting"
        self._render_active()

    def _render_active(self) -> None:
        screen = self.screen
        if isinstance(screen, DataScreen) and screen.is_mounted:
            screen.render_link(self.link)

    # ------------------------------------------------------------ actions

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen, self.read_only))

    def action_refresh_now(self) -> None:
        self._wake.set()
