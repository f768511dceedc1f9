"""The TUI against a REAL agent collecting from the plant simulator (both
in-process on the test's loop), driven by Textual's Pilot: every screen shows
what the agent reports, and the operator flows (browse and add a tag, filter,
re-send) go all the way to the agent and the tag file."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input, RichLog, Tree

from agent_fixture import running_agent
from edge.config import load_agent_config
from tui.app import TidegateApp
from tui.screens import (
    BrowseScreen,
    ConfirmScreen,
    EventsScreen,
    OverviewScreen,
    ResendScreen,
    SourcesScreen,
    SpoolScreen,
    TagsScreen,
)

SIZE = (100, 30)


async def wait_for(pilot: Pilot[Any], cond: Callable[[], bool], timeout: float = 20.0,
                   what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s:\n{screen_text(pilot.app)}")
        await pilot.pause(0.1)


def screen_text(app: Any) -> str:
    try:
        return "\n".join(strip.text for strip in app.screen._compositor.render_strips())
    except Exception:
        return "<no screen>"


def cell_text(table: DataTable[Any], row: str, col: str) -> str:
    v = table.get_cell(row, col)
    return v.plain if isinstance(v, Text) else str(v)


async def test_every_screen_shows_the_real_agent() -> None:
    async with running_agent() as ra:
        app = TidegateApp(ra.socket, refresh=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen) and
                           "1 of 1 connected" in screen_text(app), what="overview")
            text = screen_text(app)
            assert "10/10 tags" in text and "values/s" in text and "heartbeat" in text
            await wait_for(pilot, lambda: "no alarms" in screen_text(app), what="no alarms")

            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, TagsScreen)
                           and app.screen.table.row_count == 10, what="tags")
            tags = app.screen
            assert isinstance(tags, TagsScreen)
            # live values from the simulator, with units from the server
            await wait_for(pilot, lambda: "rpm" in screen_text(app) and "Good" in screen_text(app),
                           what="values with units")
            await pilot.press("slash", *"bearing")
            await wait_for(pilot, lambda: tags.table.row_count == 1, what="filter")
            assert "Plant.Area1.Pump01.BearingTemp" in screen_text(app)
            await pilot.press("escape")
            await wait_for(pilot, lambda: tags.table.row_count == 10, what="filter cleared")
            await pilot.press("s", "s")  # sort by quality: still every tag
            assert tags.sort == "quality" and tags.table.row_count == 10

            await pilot.press("3")
            await wait_for(pilot, lambda: isinstance(app.screen, SourcesScreen)
                           and "monitored_items_per_call" in screen_text(app), what="sources")
            text = screen_text(app)
            assert "● connected" in text and "None" in text and "10/10" in text
            assert ra.sim.endpoint in text

            await pilot.press("4")
            await wait_for(pilot, lambda: isinstance(app.screen, SpoolScreen)
                           and "heartbeats" in screen_text(app), what="spool")
            assert "frames sent" in screen_text(app) and "durable lsn" in screen_text(app)

            await pilot.press("5")
            await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen)
                           and "source_connected" in screen_text(app), what="events")

            await pilot.press("question_mark")
            await wait_for(pilot, lambda: "tidegate — keys" in screen_text(app), what="help")
            assert "read-only" in screen_text(app)
            await pilot.press("escape")

            # the command palette jumps to a tag by name
            await pilot.press("ctrl+p")
            await pilot.pause(0.3)
            await pilot.press(*"DischargePressure")
            await pilot.pause(0.8)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, TagsScreen)
                           and app.screen.table.row_count == 1, what="palette jump")
            assert "DischargePressure" in screen_text(app)
            await pilot.press("q")


async def test_browse_and_add_a_tag() -> None:
    async with running_agent() as ra:
        before = ra.config.read_text()
        # a viewer's TUI is attached at the same time (several TUIs at once)
        viewer = TidegateApp(ra.socket, refresh=0.2, start="tags")
        app = TidegateApp(ra.socket, refresh=0.2, read_only=False, start="browse")
        async with viewer.run_test(size=(80, 24)), app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, BrowseScreen)
            await wait_for(pilot, lambda: not app.read_only, what="operator rights")
            viewer_tags = viewer.screen
            assert isinstance(viewer_tags, TagsScreen)
            await wait_for(pilot, lambda: viewer_tags.table.row_count == 10, what="the viewer's tags")
            await wait_for(pilot, lambda: len(screen.entries) > 200, what="browse of Objects")
            assert "Plant" in screen_text(app)
            # narrow the browse to one pump
            await pilot.press("p", *"Plant/Area1/Pump02", "enter")
            await wait_for(pilot, lambda: screen.path == "Plant/Area1/Pump02" and not screen.busy
                           and 0 < len(screen.entries) < 20, what="browse of Pump02")
            tree: Tree[Any] = screen.query_one("#browse-tree", Tree)
            assert tree.has_focus
            speed = next(e for e in screen.entries if e["browse_path"].endswith("/Speed"))
            assert not speed["configured"] and speed["data_type"] and speed["unit"] == "rpm"
            # cursor onto the Speed leaf and mark it
            leaf = next(n for n in tree.root.children if n.data is speed or
                        (isinstance(n.data, dict) and n.data["node_id"] == speed["node_id"]))
            tree.move_cursor(leaf)
            await pilot.press("space")
            assert list(screen.marked) == [speed["node_id"]]
            assert "[x] Speed" in screen_text(app)
            # a: asks first; n leaves everything as it was
            await pilot.press("a")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
            assert "Plant.Area1.Pump02.Speed" in screen_text(app)
            await pilot.press("n")
            await wait_for(pilot, lambda: app.screen is screen, what="back to browse")
            assert ra.config.read_text() == before
            # y adds it: validated, written, reloaded
            await pilot.press("a")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
            await pilot.press("y")
            await wait_for(pilot, lambda: "added 1 tag" in screen_text(app), what="added")
            text = ra.config.read_text()
            assert text.startswith(before.rstrip("\n"))  # the OT engineer's file is kept as it was
            assert 'node_id = "ns=2;s=Plant.Area1.Pump02.Speed"' in text
            cfg = load_agent_config(ra.config)
            assert len(cfg.tags) == 11
            assert any(t.name == "Plant.Area1.Pump02.Speed" for t in ra.agent.cfg.tags)
            # the browse is refreshed: now marked as collected
            await wait_for(pilot, lambda: not screen.busy and any(
                e["node_id"] == speed["node_id"] and e["configured"] for e in screen.entries),
                what="collected mark")
            # the agent subscribed it: it shows up live in the Tags screen
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, TagsScreen), what="tags")
            tags = app.screen
            assert isinstance(tags, TagsScreen)
            await pilot.press("slash", *"pump02.speed", "enter")
            await wait_for(pilot, lambda: tags.table.row_count == 1
                           and "rpm" in cell_text(tags.table, tags._order[0], "value"), what="new tag live")
            kinds = [e["kind"] for e in ra.agent.events]
            assert "operator_add_tags" in kinds and "config_reloaded" in kinds
            # the other TUI sees the new tag too, and stayed a viewer
            await wait_for(pilot, lambda: viewer_tags.table.row_count == 11, what="the viewer's new tag")
            assert viewer.read_only


async def test_read_only_viewer_changes_nothing() -> None:
    async with running_agent() as ra:
        before = ra.config.read_text()
        app = TidegateApp(ra.socket, refresh=0.2, start="browse")  # read-only by default
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, BrowseScreen)
            await wait_for(pilot, lambda: len(screen.entries) > 200, what="browse")  # viewers may look
            tree: Tree[Any] = screen.query_one("#browse-tree", Tree)
            tree.root.children[0].expand()
            await pilot.pause(0.2)
            await pilot.press("down", "space", "a")  # mark every variable of Plant, try to add
            await pilot.pause(0.5)
            assert screen.marked and not isinstance(app.screen, ConfirmScreen)
            assert any("read-only" in n.message for n in app._notifications)
            assert "RO" in screen_text(app).splitlines()[0]
            await pilot.press("7")
            await wait_for(pilot, lambda: isinstance(app.screen, ResendScreen), what="resend screen")
            n = len(app._notifications)
            await pilot.press("ctrl+s")
            await pilot.pause(0.5)
            assert not isinstance(app.screen, ConfirmScreen)
            assert len(app._notifications) == n + 1
        assert ra.config.read_text() == before
        assert "operator_add_tags" not in [e["kind"] for e in ra.agent.events]


async def test_resend_asks_then_reaches_the_agent() -> None:
    async with running_agent() as ra:
        app = TidegateApp(ra.socket, refresh=0.2, read_only=False, start="resend")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, ResendScreen)
            await wait_for(pilot, lambda: not app.read_only, what="operator rights")
            log = screen.query_one("#resend-log", RichLog)
            assert screen.query_one("#resend-send", Button).has_focus
            await wait_for(pilot, lambda: "(15m00s)" in screen_text(app), what="preview")
            # the real agent queues frames 0..2 of its spool on the sender, once it has one
            await wait_for(pilot, lambda: ra.agent.spool.stats()["durable_lsn"] >= 1, what="a durable frame")
            await pilot.press("t")  # sequence numbers
            await pilot.press(*"0", "tab", *"2")
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
            await pilot.press("y")
            await wait_for(pilot, lambda: screen.last_reply is not None, what="resend reply")
            # (clamped to what is durable in the spool by then)
            reply = screen.last_reply
            assert reply is not None and reply["lsn_first"] == 0 and 1 <= reply["frames"] <= 3
            assert log.lines and not log.lines[0].text.startswith("✗ ")
            screen.last_reply = None

            # with a re-send hook on the agent (the spool's API), the exact range arrives
            calls: list[dict[str, int]] = []

            def resend(**rng: int) -> dict[str, Any]:
                calls.append(rng)
                return {"frames": 3}

            ra.agent.resend = resend  # type: ignore[method-assign]
            frm = screen.query_one("#resend-from", Input)
            to = screen.query_one("#resend-to", Input)
            frm.value, to.value = "120", "129"
            assert frm.value == "120"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
            assert "frames 120 … 129" in screen_text(app)
            await pilot.press("n")  # no: nothing sent
            await pilot.pause(0.3)
            assert calls == []
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
            await pilot.press("y")
            await wait_for(pilot, lambda: screen.last_reply is not None, what="resend reply")
            assert calls == [{"seq_first": 120, "seq_last": 129}]
            assert screen.last_reply == {"ok": True, "seq_first": 120, "seq_last": 129, "frames": 3}
            assert "operator_resend" in [e["kind"] for e in ra.agent.events]
            # a bad range never reaches the agent
            frm.value = "130"
            await pilot.press("ctrl+s")
            await pilot.pause(0.3)
            assert not isinstance(app.screen, ConfirmScreen) and len(calls) == 1
