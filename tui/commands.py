"""The command palette (ctrl+p or ``:``): go to a screen, run an action, or
jump to a tag by name (the Tags screen, filtered to it)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.widgets.mode_bar import MODE_TITLES

if TYPE_CHECKING:
    from tui.app import TidegateApp

MAX_TAG_HITS = 20


class TidegateCommands(Provider):
    @property
    def tg_app(self) -> TidegateApp:
        return cast("TidegateApp", self.app)

    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app = self.tg_app
        out: list[tuple[str, Callable[[], object], str]] = []
        for i, (mode, title) in enumerate(MODE_TITLES, start=1):
            out.append((f"Go to {title}", partial(app.switch_mode, mode), f"key {i}"))
        out.append(("Refresh now", app.action_refresh_now, "key r"))
        out.append(("Help", app.action_help, "key ?"))
        out.append(("Quit", app.exit, "key q"))
        return out

    async def discover(self) -> Hits:
        for text, fn, help in self._commands():
            yield DiscoveryHit(text, fn, help=help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, fn, help in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), fn, help=help)
        tags = (self.tg_app.link.snapshot or {}).get("tags") or []
        hits = 0
        for t in tags:
            name = str(t.get("name", ""))
            score = matcher.match(name)
            if score > 0:
                yield Hit(score * 0.9, matcher.highlight(name), partial(self._show_tag, name),
                          help=f"tag of {t.get('source', '?')}")
                hits += 1
                if hits >= MAX_TAG_HITS:
                    break

    def _show_tag(self, name: str) -> None:
        from tui.screens.tags import TagsScreen

        app = self.tg_app

        def filtered(_: object = None) -> None:
            screen = app.screen
            if isinstance(screen, TagsScreen):
                screen.set_filter(name)

        app.switch_mode("tags")
        app.call_after_refresh(filtered)
