"""The technician TUI against a real StatusServer, driven by Textual's Pilot at
80x24."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from edge.status import StatusServer
from tui import LOW_BANDWIDTH_ENV, apply_low_bandwidth
from tui.app import TidegateApp
from tui.format import (
    format_age,
    format_bytes,
    format_count,
    format_value,
    quality,
    quality_text,
    truncate,
)
from tui.screens.help import HelpScreen
from tui.screens.tags import TagsScreen
from tui.widgets.status_line import StatusLine

NOW = 1_700_000_010_000_000_000
SIZE = (80, 24)


class Plant:
    """A changing snapshot, as the agent would publish it."""

    def __init__(self, n_tags: int = 12) -> None:
        self.n_tags = n_tags
        self.tick = 0
        self.site = "plant-a"

    def snapshot(self) -> dict[str, Any]:
        t = self.tick
        tags: list[dict[str, Any]] = [
            {
                "index": i,
                "name": f"line1.temp{i}",
                "unit": "degC",
                "source": "plc1",
                "data_type": "Double",
                "value": 20.5 + i + t,
                "status": 0,
                "source_ns": NOW - 2_000_000_000,
                "count": 100 + t,
            }
            for i in range(self.n_tags)
        ]
        tags += [
            {"index": 100, "name": "pump.running", "unit": "", "source": "plc1",
             "data_type": "Boolean", "value": t % 2 == 0, "status": 0,
             "source_ns": NOW - 65_000_000_000, "count": 3},
            {"index": 101, "name": "pump.mode", "unit": "", "source": "plc1",
             "data_type": "String", "value": "AUTO", "status": 0x408F0000,
             "source_ns": NOW, "count": 1},
            {"index": 102, "name": "valve.position", "unit": "%", "source": "plc2",
             "data_type": "Int32", "value": None, "status": 0x80310000,
             "source_ns": 0, "count": 0},
        ]
        return {
            "agent": {"site": self.site, "version": "0.1.0", "started_ns": NOW - 10**12,
                      "now_ns": NOW + t * 1_000_000_000, "session_id": 7},
            "sources": [],
            "tags": tags,
            "spool": {"frames": 9, "bytes": 3 * 1024 * 1024, "next_lsn": 10,
                      "durable_lsn": 9, "capacity_bytes": 4 * 1024 * 1024},
            "link": {"frames_sent": 8, "bytes_sent": 2048, "backlog": 0},
            "rates": {"values_per_s": 42.0},
            "events": [],
        }


@pytest.fixture
def sock_path() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="tg-tui-", dir="/tmp")
    yield f"{d}/agent/status.sock"
    shutil.rmtree(d, ignore_errors=True)


async def wait_for(pilot: Pilot[Any], cond: Callable[[], bool], timeout: float = 5.0) -> None:
    loop_time = 0.0
    while not cond():
        if loop_time > timeout:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)
        loop_time += 0.05


def tags_screen(app: TidegateApp) -> TagsScreen:
    screen = app.screen
    assert isinstance(screen, TagsScreen)
    return screen


def table(app: TidegateApp) -> DataTable[Text]:
    return tags_screen(app).query_one("#tags-table", DataTable)


def cell(app: TidegateApp, row: str, col: str) -> str:
    value = table(app).get_cell(row, col)
    return value.plain if isinstance(value, Text) else str(value)


def status(app: TidegateApp) -> str:
    return tags_screen(app).query_one(StatusLine).plain


def screen_text(app: TidegateApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_tags_table_shows_and_updates_values(sock_path: str) -> None:
    plant = Plant()
    async with StatusServer(sock_path, plant.snapshot, cache_s=0):
        app = TidegateApp(sock_path, refresh=0.1, start="tags")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: table(app).row_count == 15)
            assert cell(app, "i0", "name") == "line1.temp0"
            assert cell(app, "i0", "value") == "20.5 degC"
            assert cell(app, "i0", "quality") == "Good"
            assert cell(app, "i0", "age") == "2.0s"
            assert cell(app, "i0", "count") == "100"
            assert cell(app, "i100", "value") == "true"
            assert cell(app, "i101", "value") == "AUTO"
            assert cell(app, "i101", "quality") == "Uncertain 408F0000"
            assert cell(app, "i100", "age") == "1m05s"
            assert cell(app, "i102", "value") == "—"
            assert cell(app, "i102", "quality") == "Bad 80310000"
            assert cell(app, "i102", "age") == "—"
            line = status(app)
            assert "plant-a" in line and "connected" in line
            assert "42.0 val/s" in line and "75%" in line and "2.00 KiB" in line

            # only changed cells are rewritten; the rows stay (no rebuild)
            tbl = table(app)
            updated: list[tuple[str, str]] = []
            added: list[object] = []
            orig_update, orig_add = tbl.update_cell, tbl.add_row

            def spy_update(row: Any, col: Any, value: Any, **kw: Any) -> None:
                updated.append((str(getattr(row, "value", row)), str(getattr(col, "value", col))))
                orig_update(row, col, value, **kw)

            def spy_add(*a: Any, **kw: Any) -> Any:
                added.append(a)
                return orig_add(*a, **kw)

            tbl.update_cell = spy_update  # type: ignore[method-assign,assignment]
            tbl.add_row = spy_add  # type: ignore[method-assign]
            tbl.move_cursor(row=3, animate=False)
            plant.tick = 1
            await wait_for(pilot, lambda: cell(app, "i0", "value") == "21.5 degC")
            await pilot.pause(0.25)  # a few more polls of an unchanged snapshot
            assert cell(app, "i11", "value") == "32.5 degC"
            assert cell(app, "i100", "value") == "false"
            assert cell(app, "i0", "count") == "101"
            assert cell(app, "i0", "age") == "3.0s"
            assert added == []
            assert ("i101", "value") not in updated and ("i101", "quality") not in updated
            assert all(c != "name" for _, c in updated)
            assert len(updated) == len(set(updated))  # each changed cell once
            assert tbl.cursor_row == 3


async def test_layout_fits_80x24(sock_path: str) -> None:
    plant = Plant(n_tags=40)
    async with StatusServer(sock_path, plant.snapshot):
        app = TidegateApp(sock_path, refresh=0.1, start="tags")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: table(app).row_count == 43)
            text = screen_text(app)
            lines = text.splitlines()
            assert len(lines) == 24
            assert "1 Overview" in lines[1] and "2 Tags" in lines[1]
            for header in ("Tag", "Value", "Quality", "Age", "Count"):
                assert header in lines[2]
            assert "plant-a" in lines[0] and "connected" in lines[0]
            assert "Filter" in lines[-1] and "Quit" in lines[-1] and "Help" in lines[-1]
            assert "line1.temp0" in text and "20.5 degC" in text
            # the detail line names the highlighted tag
            assert "line1.temp0" in lines[-2] and "Double" in lines[-2]
            # rows below the screen are filled in when they scroll into view
            await pilot.press("ctrl+end")
            await wait_for(pilot, lambda: "valve.position" in screen_text(app))
            assert cell(app, "i39", "value") == "59.5 degC"
            assert "Bad 80310000" in screen_text(app)
            assert "valve.position" in screen_text(app).splitlines()[-2]


async def test_filter_narrows_rows(sock_path: str) -> None:
    plant = Plant()
    async with StatusServer(sock_path, plant.snapshot):
        app = TidegateApp(sock_path, refresh=0.1, start="tags")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: table(app).row_count == 15)
            await pilot.press("slash")
            await pilot.press(*"temp1")
            await wait_for(pilot, lambda: table(app).row_count == 3)  # temp1, temp10, temp11
            assert tags_screen(app).filter_text == "temp1"
            await pilot.press("enter")  # keep the filter, back to the table
            await pilot.pause(0.3)  # polls go on; the filter holds
            assert table(app).row_count == 3
            assert "3 of 15" in screen_text(app)
            await pilot.press("slash", "end", *["backspace"] * 5)
            await wait_for(pilot, lambda: table(app).row_count == 15)
            await pilot.press(*"PUMP")  # case-insensitive
            await wait_for(pilot, lambda: table(app).row_count == 2)
            await pilot.press("escape")
            await wait_for(pilot, lambda: table(app).row_count == 15)
            assert tags_screen(app).filter_text == ""
            await pilot.press("slash", *"zz")
            await wait_for(pilot, lambda: table(app).row_count == 0)
            assert "no tag name contains" in screen_text(app)


async def test_help_screen(sock_path: str) -> None:
    plant = Plant()
    async with StatusServer(sock_path, plant.snapshot):
        app = TidegateApp(sock_path, refresh=0.1, start="tags")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: table(app).row_count == 15)
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
            keys = app.screen.query_one("#help-keys", Static)
            text = screen_text(app)
            assert keys is not None
            for word in ("Filter", "Quit", "Help", "Quality", "Uncertain"):
                assert word in text
            # polling continues under the modal without touching the screen below
            plant.tick = 2
            await pilot.pause(0.3)
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, TagsScreen))
            # the screen catches up on resume
            await wait_for(pilot, lambda: cell(app, "i0", "value") == "22.5 degC")
            await pilot.press("q")
        assert app.return_code == 0


async def test_reconnects_when_agent_restarts(sock_path: str) -> None:
    plant = Plant()
    server = StatusServer(sock_path, plant.snapshot, cache_s=0)
    await server.start()
    app = TidegateApp(sock_path, refresh=0.1, timeout=0.5, start="tags")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: table(app).row_count == 15)
        await server.close()
        await wait_for(pilot, lambda: "reconnecting" in status(app))
        assert app.link.state == "reconnecting"
        assert table(app).row_count == 15  # the last data stays, dimmed
        assert table(app).has_class("-stale")
        assert "no status socket" in screen_text(app)
        plant.tick = 5
        plant.site = "plant-b"
        server = StatusServer(sock_path, plant.snapshot, cache_s=0)
        await server.start()
        try:
            await wait_for(pilot, lambda: "● connected" in status(app))
            await wait_for(pilot, lambda: cell(app, "i0", "value") == "25.5 degC")
            assert "plant-b" in status(app)
            assert not table(app).has_class("-stale")
        finally:
            await server.close()


async def test_starts_before_the_agent(sock_path: str) -> None:
    app = TidegateApp(sock_path, refresh=0.1, timeout=0.5, start="tags")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.link.failures >= 1)
        assert "connecting" in status(app)
        assert "no status socket" in screen_text(app)
        assert table(app).row_count == 0
        async with StatusServer(sock_path, Plant(n_tags=2).snapshot):
            await wait_for(pilot, lambda: table(app).row_count == 5)
            assert "● connected" in status(app)


def test_formatting() -> None:
    assert quality(0) == "Good"
    assert quality(0x002F0000) == "Good"
    assert quality(0x408F0000) == "Uncertain"
    assert quality(0x80310000) == "Bad"
    assert quality(0xC0000000) == "Bad"
    assert quality_text(0) == "Good"
    assert quality_text(0x80310000, prefix=True) == "Bad 0x80310000"
    assert format_value(True, "Boolean") == "true"
    assert format_value(-5, "Int32", "rpm") == "-5 rpm"
    assert format_value(2**63 - 1, "UInt64") == str(2**63 - 1)
    assert format_value(1013.25, "Double", "hPa") == "1013.25 hPa"
    assert format_value(20.0, "Double") == "20.0"
    assert format_value(1.0 / 3.0, "Float") == "0.333333"
    assert format_value(1.5e-7, "Double", "m") == "1.5000e-07 m"
    assert format_value(float("nan"), "Double") == "NaN"
    assert format_value(None, "Double", "degC") == "—"
    assert format_value("a\nb", "String") == "a b"
    assert format_age(400_000_000) == "0.4s"
    assert format_age(185 * 10**9) == "3m05s"
    assert format_age(2 * 3600 * 10**9 + 180 * 10**9) == "2h03m"
    assert format_age(-1_200_000_000) == "-1.2s"
    assert format_count(12_345_678) == "12.3M"
    assert format_bytes(980) == "980 B"
    assert format_bytes(12.1 * 1024) == "12.1 KiB"
    assert truncate("line1.reactor.temp_inlet", 12, middle=True) == "line1…_inlet"
    assert truncate("abc", 3) == "abc"


def test_low_bandwidth_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import textual.constants as constants

    for k in LOW_BANDWIDTH_ENV:  # recorded, so the teardown restores the original
        monkeypatch.setenv(k, "placeholder")
        monkeypatch.delenv(k)
    for name in ("COLOR_SYSTEM", "TEXTUAL_ANIMATIONS", "SMOOTH_SCROLL"):
        monkeypatch.setattr(constants, name, getattr(constants, name))
    apply_low_bandwidth()
    import os

    assert os.environ["TEXTUAL_COLOR_SYSTEM"] == "standard"
    assert os.environ["TEXTUAL_ANIMATIONS"] == "none"
    assert constants.COLOR_SYSTEM == "standard"
    assert constants.TEXTUAL_ANIMATIONS == "none"


def test_cli_refuses_bad_tui_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli import main

    assert main(["tui", "--refresh", "0"]) == 2
    assert capsys.readouterr().err.strip() == "tidegate tui: --refresh: must be a positive number of seconds, got 0.0"
    with pytest.raises(SystemExit) as e:
        main(["tui", "--screen", "nowhere"])
    assert e.value.code == 2
    assert "--screen: invalid choice: 'nowhere'" in capsys.readouterr().err


def test_parse_when_and_spark() -> None:
    from tui.format import parse_when, spark

    now = 1_800_000_000_000_000_000
    assert parse_when("now", now) == now
    assert parse_when("-15m", now) == now - 900 * 10**9
    assert parse_when(" -2h ", now) == now - 7200 * 10**9
    assert parse_when("2027-01-15 08:00", now) == now
    assert parse_when("2027-01-15T08:00:01Z", now) == now + 10**9
    for bad in ("", "yesterday", "-xm", "2027-13-01 00:00"):
        with pytest.raises(ValueError):
            parse_when(bad, now)
    assert spark([], 4) == "    "
    assert spark([1.0, 1.0], 3) == " ▁▁"
    assert spark([0.0, 5.0, 10.0], 3) == "▁▅█"
    assert spark([float(i) for i in range(20)], 4) == "▁▃▆█"


def test_history_rings_rates_and_events() -> None:
    from tui.history import History

    h = History(tag_ring=5)
    t0 = 1_700_000_000_000_000_000
    for n in range(8):
        snap = {
            "agent": {"now_ns": t0 + n * 10**9},
            "tags": [{"source": "s", "name": f"t{i}", "value": float(n * 100 + i)} for i in range(100)]
            + [{"source": "s", "name": "flag", "value": n % 2 == 0},
               {"source": "s", "name": "text", "value": "AUTO"},
               {"source": "s", "name": "gappy", "value": None if n % 3 else float(n)}],
            "link": {"bytes_sent": 1000 * n},
            "counters": {"heartbeat_frames": n // 2},
            "events": [{"time_ns": t0 + k, "kind": "k", "text": str(k)} for k in range(n)],
        }
        h.take(snap)
        h.take(snap)  # the same (cached) snapshot again changes nothing
    assert h.updates == 8
    assert h.tag({"source": "s", "name": "t99"}) == [399.0, 499.0, 599.0, 699.0, 799.0]  # last 5, oldest first
    assert h.tag({"source": "s", "name": "flag"}) == [0.0, 1.0, 0.0, 1.0, 0.0]  # n = 3..7
    assert h.tag({"source": "s", "name": "text"}) == []
    assert h.tag({"source": "s", "name": "gappy"}) == [3.0, 6.0]
    assert h.tag({"source": "other", "name": "t1"}) == []
    assert h.link_rate == 1000.0
    assert h.heartbeat_age_ns() == 10**9  # count moved at n=6, now n=7
    assert [e["text"] for e in h.events] == [str(k) for k in range(7)]
