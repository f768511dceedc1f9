"""What the systemd units rely on, with the real processes: the agent and the
receiver speak sd_notify (READY=1, WATCHDOG=1 from their loops, STOPPING=1) on
the socket systemd would give them, and the agent enforces its own memory cap
with a clear line and exit status 75. Plus the cgroup probe on fake trees."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge import systemd
from edge.demo import free_port
from edge.memguard import EXIT_MEMORY, cgroup_memory

START_TIMEOUT_S = 60.0


class NotifySocket:
    """The receiving end of $NOTIFY_SOCKET, as systemd holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []

    def wait_for(self, state: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while not any(state in m.splitlines() for m in self.messages):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {state} within {timeout:.0f}s; got {self.messages}")
            if proc is not None and proc.poll() is not None and not self._drain(0.1):
                raise AssertionError(f"process exited {proc.returncode} before {state}; got {self.messages}")
            self._drain(min(left, 0.5))

    def _drain(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            self.messages.append(self.sock.recv(4096).decode())
            return True
        except TimeoutError:
            return False

    def drain_all(self) -> None:
        while self._drain(0.3):
            pass

    def count(self, state: str) -> int:
        return sum(state in m.splitlines() for m in self.messages)


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    # Unix socket paths are short (108 bytes): keep it near the root of tmp.
    n = NotifySocket(Path(f"/tmp/tg-notify-{os.getpid()}-{time.monotonic_ns()}.sock"))
    yield n
    n.sock.close()
    n.path.unlink(missing_ok=True)


def _spawn(args: list[str], notify: NotifySocket, log: Path, watchdog_s: float = 2.0) -> subprocess.Popen[bytes]:
    env = dict(os.environ, NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC=str(int(watchdog_s * 1e6)),
               PYTHONUNBUFFERED="1")
    env.pop("WATCHDOG_PID", None)
    with open(log, "wb") as f:
        return subprocess.Popen([sys.executable, "-P", "-m", "edge.cli", *args], stdout=f, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)


def _agent_config(tmp_path: Path, memory_max_mb: int = 0) -> Path:
    # The OPC UA server is absent (nothing listens on the port): the agent must
    # still come up, report ready and keep its loop alive while it retries.
    cfg = tmp_path / "agent.toml"
    cfg.write_text("\n".join([
        "[site]", "id = 1", 'name = "t"',
        "[agent]", f'status_socket = "{tmp_path / "a.sock"}"', "flush_interval_ms = 200",
        f"memory_max_mb = {memory_max_mb}",
        "[spool]", f'path = "{tmp_path / "spool"}"',
        "[link]", f'target = "127.0.0.1:{free_port(socket.SOCK_DGRAM)}"',
        "[[sources]]", 'name = "plc"', f'endpoint = "opc.tcp://127.0.0.1:{free_port()}"',
        "[[tags]]", 'source = "plc"', 'node_id = "ns=2;s=X"', "",
    ]))
    return cfg


def _stop(p: subprocess.Popen[bytes], timeout: float = 60.0) -> int:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_agent_notifies_ready_watchdog_stopping(tmp_path: Path, notify: NotifySocket) -> None:
    log = tmp_path / "agent.log"
    p = _spawn(["run", "--config", str(_agent_config(tmp_path))], notify, log)
    try:
        notify.wait_for("READY=1", START_TIMEOUT_S, p)
        first = len(notify.messages)
        notify.wait_for("WATCHDOG=1", 10, p)
        time.sleep(1.5)
        notify.drain_all()
        pings = notify.count("WATCHDOG=1")
        # 2 s watchdog: pinged at least every second, at most every half second.
        assert 2 <= pings <= 8, notify.messages
        assert all("READY=1" not in m for m in notify.messages[first:])
    finally:
        code = _stop(p)
    notify.wait_for("STOPPING=1", 5)
    assert code == 0, log.read_text()
    text = log.read_text()
    assert "memory: no cap of its own" in text and "cgroup" in text


def test_receiver_notifies_ready_watchdog_stopping(tmp_path: Path, notify: NotifySocket) -> None:
    cfg = tmp_path / "receiver.toml"
    cfg.write_text("\n".join([
        "[site]", 'name = "t"', "[receiver]", f'bind = "127.0.0.1:{free_port(socket.SOCK_DGRAM)}"',
        f'spool = "{tmp_path / "it-spool"}"', f'datasets = "{tmp_path / "ds"}"', "",
    ]))
    log = tmp_path / "receiver.log"
    p = _spawn(["receive", "--config", str(cfg)], notify, log)
    try:
        notify.wait_for("READY=1", START_TIMEOUT_S, p)
        notify.wait_for("WATCHDOG=1", 10, p)
    finally:
        code = _stop(p)
    notify.wait_for("STOPPING=1", 5)
    assert code == 0, log.read_text()


def test_agent_over_its_memory_cap_stops_in_order_with_75(tmp_path: Path, notify: NotifySocket) -> None:
    # 1 MB: any Python process is over it at the first check.
    log = tmp_path / "agent.log"
    p = _spawn(["run", "--config", str(_agent_config(tmp_path, memory_max_mb=1)),
                "--stats-out", str(tmp_path / "stats.json")], notify, log)
    try:
        code = p.wait(START_TIMEOUT_S + 30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    text = log.read_text()
    assert code == EXIT_MEMORY, text
    assert "memory: cap 1 MB resident, enforced by the agent itself" in text
    assert "is over the cap of 1 MB ([agent] memory_max_mb): stopping in order (exit status 75)" in text
    notify.drain_all()
    assert notify.count("STOPPING=1") == 1
    assert (tmp_path / "stats.json").exists(), f"an orderly stop writes the final counters; agent log:\n{text}"


def test_notify_is_a_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert systemd.ready() is False and systemd.watchdog() is False and systemd.stopping() is False


def test_notify_abstract_socket_and_watchdog_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"tidegate-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.ready("up")
        assert s.recv(100) == b"READY=1\nSTATUS=up"
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert systemd.watchdog_interval() is None  # meant for another process
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 30.0


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_cgroup_probe_v2_controller_off_on_and_ancestor_limit(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("0::/system.slice/tidegate-agent.service\n")
    fs = tmp_path / "fs"
    _tree(fs, {"cgroup.controllers": "cpuset cpu io pids\n"})  # a Raspberry Pi kernel
    off = cgroup_memory(fs, proc)
    assert not off.controller and "not in force" in off.describe()
    _tree(fs, {"cgroup.controllers": "cpuset cpu io memory pids\n",
               "system.slice/memory.max": "524288000\n",
               "system.slice/tidegate-agent.service/memory.max": "max\n"})
    on = cgroup_memory(fs, proc)
    assert on.controller and on.limit_bytes == 500 << 20 and "500 MB is in force" in on.describe()


def test_cgroup_probe_v1(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("5:cpu,cpuacct:/\n4:memory:/a/b\n0::/\n")
    fs = tmp_path / "fs"
    _tree(fs, {"memory/a/b/memory.limit_in_bytes": str(9223372036854771712),
               "memory/a/memory.limit_in_bytes": str(300 << 20)})
    got = cgroup_memory(fs, proc)
    assert got.version == 1 and got.limit_bytes == 300 << 20
