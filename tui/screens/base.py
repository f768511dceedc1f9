"""Base for screens that render the agent's snapshot."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import ComposeResult
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

from tui.messages import AgentLink
from tui.widgets.mode_bar import ModeBar
from tui.widgets.status_line import StatusLine

if TYPE_CHECKING:
    from tui.app import TidegateApp


class DataScreen(Screen[None]):
    """A screen fed by the app's poller.

    Layout: status line, mode bar, the screen's body (:meth:`compose_body`),
    footer with the keys of this screen. The app calls :meth:`render_link` on
    the *active* screen after each poll; a screen under a modal or in another
    mode is skipped and catches up in :meth:`on_screen_resume`. Subclasses
    implement :meth:`render_snapshot`.
    """

    MODE: ClassVar[str] = ""
    GLOSSARY: ClassVar[tuple[tuple[str, str], ...]] = ()  # (term, explanation) for the help screen
    _ready: bool = False

    @property
    def tg_app(self) -> TidegateApp:
        return cast("TidegateApp", self.app)

    def compose(self) -> ComposeResult:
        yield StatusLine()
        yield ModeBar(self.MODE)
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> Iterable[Widget]:  # pragma: no cover
        raise NotImplementedError

    def render_link(self, link: AgentLink) -> None:
        if not self._ready:
            return  # not composed yet; on_mount renders the current state
        try:
            for line in self.query(StatusLine):
                line.show(link, self.tg_app.read_only)
            self.render_snapshot(link)
        except NoMatches:
            pass  # the screen is being torn down (app exiting)

    def render_snapshot(self, link: AgentLink) -> None:  # pragma: no cover
        raise NotImplementedError

    def on_mount(self) -> None:
        # Textual runs this after the subclass's own on_mount (handlers are
        # dispatched along the MRO), so the widgets exist by now.
        self._ready = True
        self.render_link(self.tg_app.link)

    def on_screen_resume(self) -> None:
        self.render_link(self.tg_app.link)
