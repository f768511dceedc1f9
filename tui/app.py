"""The tidegate technician TUI (Textual).

Data flow: one async worker polls the agent's status socket
(:class:`edge.status.StatusClient`) every ``refresh`` seconds, never
overlapping (the next poll is armed after the previous one ends), and posts
:class:`~tui.messages.SnapshotReceived` or :class:`~tui.messages.AgentLost`.
The app keeps the connection state in :attr:`TidegateApp.link` and the memory
of past snapshots in :attr:`TidegateApp.history` (sparklines, rates, events),
and asks the *active* data screen to render; screens update only what changed.
Operator requests (browse, add tags, re-send) go over a second connection
(:meth:`TidegateApp.control`) from workers, so polling never waits on them.
All socket I/O is non-blocking on the event loop; when the agent goes away the
header shows "reconnecting…" and the last data stays on screen, dimmed.

Screens are App modes, one per task, switched with 1-7 or the command palette
(ctrl+p or ``:``): overview, tags, sources, spool, events, browse, resend.

Read-only by default: the TUI asks for operator rights only when started with
``operator=True`` (``tidegate tui --operator``), and the agent grants them by
the kernel's credentials of the connection (:mod:`edge.control`). Viewers can
look at everything, including a server's address space, and change nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding
from textual.app import ScreenStackError
from textual.screen import Screen

from edge.status import AgentUnavailable, StatusClient, StatusError
from tui.commands import TidegateCommands
from tui.history import History
from tui.messages import AgentLink, AgentLost, SnapshotReceived
from tui.screens import (
    BrowseScreen,
    DataScreen,
    EventsScreen,
    HelpScreen,
    OverviewScreen,
    ResendScreen,
    SourcesScreen,
    SpoolScreen,
    TagsScreen,
)
from tui.widgets.mode_bar import MODE_TITLES

MIN_REFRESH = 0.05
CONTROL_TIMEOUT = 30.0


class TidegateApp(App[None]):
    """``TidegateApp(socket_path, refresh=1.0, read_only=True, start="overview")``.

    ``read_only=False`` asks the agent for operator rights (granted or not by
    the agent); :attr:`read_only` is what is in force.
    """

    TITLE = "tidegate"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = {TidegateCommands}
    COMMAND_PALETTE_BINDING = "ctrl+p"
    MODES: ClassVar[dict[str, type[Screen[None]]]] = {  # type: ignore[assignment]
        "overview": OverviewScreen,
        "tags": TagsScreen,
        "sources": SourcesScreen,
        "spool": SpoolScreen,
        "events": EventsScreen,
        "browse": BrowseScreen,
        "resend": ResendScreen,
    }
    DEFAULT_MODE: ClassVar[str] = "overview"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark,f1", "help", "Help", key_display="?", id="app.help"),
        Binding("colon", "command_palette", "Commands", show=False, id="app.palette"),
        Binding("ctrl+p", "command_palette", "Commands", show=False, id="app.palette_ctrl_p"),
        Binding("r", "refresh_now", "Refresh now", show=False, id="app.refresh"),
        *[
            Binding(str(i), f"switch_mode('{mode}')", title, show=False, id=f"app.mode.{mode}")
            for i, (mode, title) in enumerate(MODE_TITLES, start=1)
        ],
    ]

    def __init__(
        self,
        socket_path: str,
        refresh: float = 1.0,
        read_only: bool = True,
        *,
        timeout: float = 3.0,
        start: str = "overview",
    ) -> None:
        if start not in self.MODES:
            raise ValueError(f"no screen {start!r} (screens: {', '.join(self.MODES)})")
        self.DEFAULT_MODE = start  # type: ignore[misc]  # read by App.__init__: the first screen
        super().__init__()
        self.socket_path = socket_path
        self.refresh_interval = max(MIN_REFRESH, float(refresh))
        self.want_operator = not read_only
        self.read_only = True  # until the agent grants operator rights
        self.rights = "viewer (read-only)"
        self.timeout = timeout
        self.link = AgentLink(socket_path=socket_path)
        self.history = History()
        self.polls = 0
        self._wake = asyncio.Event()
        self._ctl: StatusClient | None = None
        self._asked_rights = False

    def on_mount(self) -> None:
        self.run_worker(self._poll_loop(), name="status-poll", group="poll", exclusive=True)

    async def on_unmount(self) -> None:
        if self._ctl is not None:
            await self._ctl.close()

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
        was = link.state
        link.snapshot = message.snapshot
        link.state = "connected"
        link.error = ""
        link.failures = 0
        link.last_ok = time.monotonic()
        self.history.take(message.snapshot)
        site = (message.snapshot.get("agent") or {}).get("site")
        if site:
            self.sub_title = str(site)
        if self.want_operator and (was != "connected" or not self._asked_rights):
            self._asked_rights = True
            self.run_worker(self._ask_rights(), name="whoami", group="whoami", exclusive=True)
        self._render_active()

    async def _ask_rights(self) -> None:
        try:
            me = await self.control({"op": "whoami"}, timeout=self.timeout)
        except (AgentUnavailable, StatusError) as e:
            self._asked_rights = False  # ask again after the next good poll
            self.rights = f"viewer (read-only): {e}"
            return
        granted = bool(me.get("operator"))
        if granted:
            self.read_only = False
            self.rights = f"operator ({me.get('user', '?')}: {me.get('reason', '')})"
        else:
            self.read_only = True
            self.rights = f"viewer (read-only): {me.get('reason', 'not an operator')}"
            self.notify(f"Read-only: {me.get('reason', 'not an operator')}", severity="warning", timeout=6)
        self._render_active()

    def on_agent_lost(self, message: AgentLost) -> None:
        link = self.link
        link.failures += 1
        link.error = message.error
        link.state = "connecting" if link.last_ok is None else "reconnecting"
        self._render_active()

    def _render_active(self) -> None:
        try:
            screen = self.screen
        except ScreenStackError:
            return  # starting or exiting
        if isinstance(screen, DataScreen) and screen.is_mounted:
            screen.render_link(self.link)

    # ------------------------------------------------------------ operator requests

    async def control(self, message: dict[str, Any], timeout: float = CONTROL_TIMEOUT) -> dict[str, Any]:
        """One request on the control connection (raises AgentUnavailable /
        StatusError with a message for the operator). A ping first makes sure a
        connection left stale by an agent restart is replaced before a request
        that must not be sent twice."""
        if self._ctl is None:
            self._ctl = StatusClient(self.socket_path, timeout=self.timeout)
        if message.get("op") not in ("whoami", "browse"):
            await self._ctl.ping()
        return await self._ctl.request(message, timeout=timeout)

    def require_operator(self, what: str) -> bool:
        """True if the operator may do `what`; otherwise says why, once."""
        if not self.read_only:
            return True
        how = "" if self.want_operator else " (start with `tidegate tui --operator`)"
        self.notify(f"{what}: read-only mode{how}. {self.rights}", severity="warning", timeout=6)
        return False

    # ------------------------------------------------------------ actions

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen, self.read_only))

    def action_refresh_now(self) -> None:
        self._wake.set()
