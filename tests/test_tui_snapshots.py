"""Snapshot tests of the main TUI screens at 80x24 and 120x40: the app is
rendered against a real StatusServer serving a fixed, scripted agent (a fixed
clock: every time on screen comes from the snapshots' ``now_ns``), exported
as SVG and compared with the files committed under tests/snapshots/.

After an intended change to the look, regenerate and review the SVGs::

    TIDEGATE_UPDATE_SNAPSHOTS=1 python -m pytest -q tests/test_tui_snapshots.py
    git diff --stat tests/snapshots/   # open the changed SVGs in a browser

On a mismatch the new rendering is written next to the expected one as
``<name>.actual.svg`` (not committed) and the failure shows the text of both
screens. SVGs depend on Textual's version: the test extra pins it.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from edge.status import Peer, StatusServer
from tui.app import TidegateApp

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("TIDEGATE_UPDATE_SNAPSHOTS") == "1"
T0 = 1_800_000_000_000_000_000  # 2027-01-15 08:00:00 UTC
TICKS = 8  # snapshots the scripted agent moves through, then it holds still
SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


class ScriptedAgent:
    """A deterministic agent: tick n of every value is a function of n only."""

    def __init__(self) -> None:
        self.tick = 0

    def snapshot(self) -> dict[str, Any]:
        n = self.tick
        self.tick = min(TICKS, n + 1)
        now = T0 + n * 1_000_000_000
        tags: list[dict[str, Any]] = []
        for i, (name, unit, dtype, base, amp) in enumerate([
            ("Plant.Area1.Pump01.Speed", "rpm", "Float", 1480.0, 12.0),
            ("Plant.Area1.Pump01.Current", "A", "Float", 41.5, 1.5),
            ("Plant.Area1.Pump01.DischargePressure", "bar", "Float", 6.2, 0.3),
            ("Plant.Area1.Pump01.BearingTemp", "°C", "Float", 58.0, 0.8),
            ("Plant.Area1.Tank01.Level", "%", "Double", 63.0, 4.0),
            ("Plant.Area1.FT01.Flow", "m³/h", "Float", 112.0, 6.0),
        ]):
            wave = [0, 2, 4, 5, 4, 2, 0, -2, -4, -5, -4, -2, 0][(n + i) % 13] / 5
            tags.append({"index": i, "name": name, "unit": unit, "source": "plc1", "data_type": dtype,
                         "value": round(base + amp * wave, 2), "status": 0,
                         "source_ns": now - (i + 1) * 300_000_000, "count": 100 + n * (i + 1),
                         "node_id": f"ns=2;s={name}"})
        tags += [
            {"index": 6, "name": "Plant.Area1.Pump01.Running", "unit": "", "source": "plc1",
             "data_type": "Boolean", "value": True, "status": 0, "source_ns": now - 95_000_000_000,
             "count": 1},
            {"index": 7, "name": "Plant.Area1.Pump01.Mode", "unit": "", "source": "plc1",
             "data_type": "String", "value": "AUTO", "status": 0x40900000, "source_ns": now - 4_000_000_000,
             "count": 2},
            {"index": 8, "name": "Plant.Area2.Valve07.Position", "unit": "%", "source": "plc2",
             "data_type": "Int32", "value": None, "status": 0x80320000, "source_ns": 0, "count": 0},
        ]
        return {
            "agent": {"site": "north-plant", "version": "0.1.0", "started_ns": T0 - 3_600_000_000_000,
                      "now_ns": now, "session_id": 7},
            "sources": [
                {"name": "plc1", "endpoint": "opc.tcp://10.1.1.10:4840", "connected": True, "tags": 8,
                 "subscribed": 8, "reconnects": 1, "failing": [], "publishing_interval_ms": 1000.0,
                 "notifications": 4000 + 8 * n, "replayed": 12, "overflows": 0, "security_policy": "None",
                 "limits": {"monitored_items_per_call": 1000, "nodes_per_read": 500}, "last_error": None},
                {"name": "plc2", "endpoint": "opc.tcp://10.1.2.20:4840", "connected": False, "tags": 1,
                 "subscribed": 0, "reconnects": 0, "security_policy": "None",
                 "failing": [{"node_id": "ns=3;s=Valve07.Torque", "reason": "BadNodeIdUnknown"}],
                 "last_error": "TimeoutError: connect timed out"},
            ],
            "tags": tags,
            "spool": {"frames": 500 + 3 * n, "bytes": 3_000_000 + 40_000 * n, "segments": 1,
                      "next_lsn": 500 + 3 * n, "durable_lsn": 500 + 3 * n, "duplicates": 0,
                      "truncated_bytes": 0, "capacity_bytes": 64 << 20},
            "link": {"frames_sent": 498 + 3 * n, "packets_sent": 700 + 4 * n,
                     "bytes_sent": 2_900_000 + 41_000 * n, "send_errors": 0, "cursor": 498 + 3 * n,
                     "backlog": 2},
            "rates": {"values_per_s": 6.0 + (n % 3)},
            "counters": {"values": 900 + 8 * n, "data_frames": 400 + n, "heartbeat_frames": 60 + n,
                         "meta_frames": 2, "event_frames": 4},
            "config": {"version": "5559882fab8f", "path": "/etc/tidegate/agent.toml"},
            "events": [
                {"time_ns": T0 - 3_500_000_000_000, "kind": "source_connected",
                 "text": "source=plc1 endpoint=opc.tcp://10.1.1.10:4840"},
                {"time_ns": T0 - 3_400_000_000_000, "kind": "source_connect_failed",
                 "text": "source=plc2 endpoint=opc.tcp://10.1.2.20:4840 reason=TimeoutError: connect timed out"},
                {"time_ns": T0 - 1_200_000_000_000, "kind": "node_failed",
                 "text": "source=plc2 node_id=ns=3;s=Valve07.Torque reason=BadNodeIdUnknown"},
                {"time_ns": T0 - 600_000_000_000, "kind": "operator_add_tags",
                 "text": "user=tech1 source=plc1 count=2 names=Plant.Area1.FT01.Flow, Plant.Area1.Tank01.Level"},
                {"time_ns": T0 - 599_000_000_000, "kind": "config_reloaded",
                 "text": "version=5559882fab8f restarted=plc1 stopped=- restart_needed=-"},
            ],
        }


async def browse(request: dict[str, Any], peer: Peer) -> dict[str, Any]:
    entries = [
        {"node_id": f"ns=2;s=Plant.Area1.{unit}.{var}", "browse_path": f"Plant/Area1/{unit}/{var}",
         "data_type": dtype, "unit": u, "description": "", "supported": True, "problem": "",
         "configured": unit == "Pump01"}
        for unit in ("Pump01", "Pump02")
        for var, dtype, u in (("Speed", "Float", "rpm"), ("Current", "Float", "A"), ("Mode", "String", ""))
    ]
    entries.append({"node_id": "ns=2;s=Plant.Area1.Pump02.Curve", "browse_path": "Plant/Area1/Pump02/Curve",
                    "data_type": "", "unit": "", "description": "", "supported": False,
                    "problem": "arrays are not supported", "configured": False})
    return {"source": request["source"], "path": request.get("path") or "", "entries": entries,
            "truncated": False}


async def whoami(request: dict[str, Any], peer: Peer) -> dict[str, Any]:
    return {"uid": 1000, "user": "tech1", "operator": True, "reason": "member of 'tidegate-ops'"}


@pytest.fixture
def sock_path() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="tg-snap-", dir="/tmp")
    yield f"{d}/agent.sock"
    shutil.rmtree(d, ignore_errors=True)


async def settle(pilot: Pilot[Any], app: TidegateApp) -> None:
    """Until the scripted agent has played every tick into the TUI and the
    screen has repainted."""
    for _ in range(400):
        if app.history.updates >= TICKS + 1:
            break
        await pilot.pause(0.05)
    else:
        raise AssertionError(f"only {app.history.updates} snapshots arrived")
    await pilot.pause(0.3)
    await pilot.wait_for_scheduled_animations()


def _screen_text(svg: str) -> str:
    """The visible text of an exported SVG (for readable failure messages)."""
    rows = re.findall(r'<text class="[^"]*" x="[^"]*" y="([^"]*)"[^>]*>([^<]*)</text>', svg)
    lines: dict[str, list[str]] = {}
    for y, text in rows:
        lines.setdefault(y, []).append(text.replace("&#160;", " "))
    return "\n".join("".join(v) for _, v in sorted(lines.items(), key=lambda kv: float(kv[0])))


def matches(name: str, svg: str) -> bool:
    expected = SNAPSHOTS / f"{name}.svg"
    return not UPDATE and expected.exists() and expected.read_text() == svg


def compare(name: str, svg: str) -> None:
    # Textual names CSS classes after a hash of the terminal's content and
    # title: stable for a given rendering, so the SVG is compared as it is.
    expected = SNAPSHOTS / f"{name}.svg"
    actual = SNAPSHOTS / f"{name}.actual.svg"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        expected.write_text(svg)
        actual.unlink(missing_ok=True)
        return
    if not expected.exists():
        raise AssertionError(f"no snapshot {expected}; create it with TIDEGATE_UPDATE_SNAPSHOTS=1")
    want = expected.read_text()
    if svg == want:
        actual.unlink(missing_ok=True)
        return
    actual.write_text(svg)
    diff = "\n".join(difflib.unified_diff(_screen_text(want).splitlines(), _screen_text(svg).splitlines(),
                                         "expected", "actual", lineterm=""))
    raise AssertionError(f"{name}: rendering differs from {expected} (new one in {actual}); "
                         f"text diff:\n{diff or '(same text: colours or layout differ)'}")


SCREENS = ["overview", "tags", "sources", "spool", "events", "browse", "resend"]


@pytest.mark.parametrize("screen", SCREENS)
async def test_screen_snapshot(sock_path: str, screen: str) -> None:
    """One app per screen, rendered at 80x24, then resized to 120x40."""
    agent = ScriptedAgent()
    handlers = {"browse": browse, "whoami": whoami}
    async with StatusServer(sock_path, agent.snapshot, cache_s=0, handlers=handlers):
        app = TidegateApp(sock_path, refresh=0.05, read_only=False, start=screen)
        async with app.run_test(size=SIZES["80x24"]) as pilot:
            await settle(pilot, app)
            if screen == "browse":
                for _ in range(100):
                    if getattr(app.screen, "entries", None):
                        break
                    await pilot.pause(0.05)
                # open Plant/Area1/Pump02 and mark its first variable
                await pilot.press("down", "enter", "down", "enter", "down", "down", "enter", "down",
                                  "space")
                await pilot.pause(0.2)
            for size, (w, h) in SIZES.items():
                await pilot.resize_terminal(w, h)
                for _ in range(100):
                    if tuple(app.screen.size) == (w, h):
                        break
                    await pilot.pause(0.05)
                await pilot.pause(0.3)
                await pilot.wait_for_scheduled_animations()
                svg = app.export_screenshot(title="tidegate")
                if not matches(f"{screen}_{size}", svg):
                    # a loaded box may still be laying out: the settled screen is what counts
                    await pilot.pause(1.0)
                    svg = app.export_screenshot(title="tidegate")
                compare(f"{screen}_{size}", svg)
