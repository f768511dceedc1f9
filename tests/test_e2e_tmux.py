"""End to end in a real terminal: tmux runs `tidegate demo` (simulator, agent
and receiver processes, the TUI in the foreground); the test reads the screen
with capture-pane, checks tag rows with live values, quits with q and checks
that the demo then shut the chain down cleanly with nothing missing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

COLS, ROWS = 100, 30
ROW = re.compile(r"^\s*(Plant\.\S+)\s+(\S.*?)\s{2,}.*\bGood\b.*?\s(\d+)\s*$")


class Tmux:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def run(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True,
                             text=True, timeout=10)
        return out.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "demo")

    def wait(self, cond: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if cond(text):
                return text
            time.sleep(0.3)
        raise AssertionError(f"{what} not on screen within {timeout:.0f}s:\n{text}")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (tests/run.sh installs it with apt-get)")
    t = Tmux(f"tidegate-test-{os.getpid()}")  # a tmux server of its own
    try:
        yield t
    finally:
        subprocess.run(["tmux", "-L", t.socket, "kill-server"], capture_output=True, timeout=10)


def tag_rows(screen: str) -> dict[str, tuple[str, int]]:
    """name -> (value text, count) of the tag rows on screen."""
    rows: dict[str, tuple[str, int]] = {}
    for line in screen.splitlines():
        m = ROW.match(line)
        if m:
            rows[m.group(1)] = (m.group(2).strip(), int(m.group(3)))
    return rows


def test_demo_in_a_real_terminal(tmux: Tmux) -> None:
    state = Path(tempfile.mkdtemp(prefix="tg-e2e-", dir="/tmp"))
    try:
        demo = f"{sys.executable} -P -m edge.cli demo --state {state} --seed 5"
        cmd = f"{demo}; echo demo exited with status $?"
        env = {"TERM": "xterm-256color", "LANG": "C.UTF-8", "COLORTERM": ""}
        tmux.run("new-session", "-d", "-s", "demo", "-x", str(COLS), "-y", str(ROWS),
                 *[a for k, v in env.items() for a in ("-e", f"{k}={v}")], cmd)
        tmux.run("set-option", "-t", "demo", "remain-on-exit", "on")

        # the TUI comes up on the Overview with the agent connected
        tmux.wait(lambda s: "1 Overview" in s and "1 of 1 connected" in s, 120, "the overview")
        tmux.run("send-keys", "-t", "demo", "2")
        first = tmux.wait(lambda s: len(tag_rows(s)) >= 10, 30, "tag rows")
        rows = tag_rows(first)
        assert any("rpm" in v or "°C" in v or "bar" in v for v, _ in rows.values()), first
        # live: values keep arriving (counts grow) while the screen is up
        later = tmux.wait(lambda s: any(tag_rows(s).get(k, ("", 0))[1] > c for k, (_, c) in rows.items()),
                          30, "a count moving")
        assert "● connected" in later.splitlines()[0]

        tmux.run("send-keys", "-t", "demo", "q")
        done = tmux.wait(lambda s: "values missing" in s, 150, "the demo summary")
        assert re.search(r"values missing\s+:\s+0\b", done), done
        end = tmux.wait(lambda s: "demo exited with status" in s, 30, "the demo's exit")
        assert "demo exited with status 0" in end, end
        summary = json.loads((state / "summary.json").read_text())
        assert summary["missing"] == 0 and summary["source_values"] > 0
    finally:
        shutil.rmtree(state, ignore_errors=True)
