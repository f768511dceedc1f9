"""The command line: every subcommand answers --help, and bad input ends in one
line naming what is wrong, with status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


COMMANDS = ["demo", "run", "receive", "tui", "browse", "check", "datasets", "sim", "resend", "keygen", "bench"]


def tidegate(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-P", "-m", "edge.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


@pytest.mark.parametrize("name", COMMANDS)
def test_help(name: str) -> None:
    r = tidegate(name, "--help")
    assert r.returncode == 0, r.stderr
    assert "usage: tidegate" in r.stdout


def test_check_bad_config_is_one_line_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "agent.toml"
    bad.write_text('[site]\nid = 1\nname = "x"\n[link\n')
    r = tidegate("check", str(bad))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "agent.toml" in lines[0] and ":4" in lines[0]


def test_missing_config_file(tmp_path: Path) -> None:
    r = tidegate("run", "--config", str(tmp_path / "nope.toml"))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert "nope.toml" in r.stderr


def test_bad_argument_exits_2() -> None:
    r = tidegate("demo", "--duration", "-5", "--headless")
    assert r.returncode == 2
    assert "--duration" in r.stderr


def test_browse_rejects_non_opcua_endpoint() -> None:
    r = tidegate("browse", "http://example")
    assert r.returncode == 2
    assert "opc.tcp://" in r.stderr
