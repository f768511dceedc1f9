"""`tidegate resend`: the CLI asks the agent over its status socket, the agent
queues the range on its diode sender, and frames IT never got arrive."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from edge import _core
from edge.cli import main
from edge.resend import handle_resend, parse_seq_range, parse_time
from edge.status import Peer, StatusServer

sys.path.insert(0, str(Path(__file__).parent))
from spoolhelp import S, T0, data_frame, free_udp_port, wait_for  # noqa: E402


class Agentish:
    """The agent's parts resend touches: spool, sender, status socket with the op."""

    def __init__(self, tmp: Path, port: int) -> None:
        self.spool = _core.Spool(str(tmp / "ot"), 7, segment_bytes=4096, release_cursor="sent",
                                 retain_released_s=3600.0)
        for i in range(50):
            payload, _, t = data_frame(i)
            self.spool.append(_core.FRAME_DATA, t, t, payload)
        self.spool.commit()
        self.sender = _core.DiodeSender(self.spool, f"127.0.0.1:{port}", 0)
        self.socket = str(tmp / "agent.sock")
        self.loop = asyncio.new_event_loop()
        async def resend(request: dict[str, Any], peer: Peer) -> dict[str, Any]:
            return handle_resend(self.spool, self.sender, request)

        self.server = StatusServer(self.socket, dict, handlers={"resend": resend})
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.server.start())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.sender.stop()
        self.spool.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Agentish, _core.Spool, _core.DiodeReceiver]]:
    port = free_udp_port()
    agent = Agentish(tmp_path, port)
    # Nobody listened while the first 50 frames went out: they are lost.
    wait_for("first send", agent.sender.idle)
    it = _core.Spool(str(tmp_path / "it"), 0)
    rx = _core.DiodeReceiver(f"127.0.0.1:{port}", it)
    try:
        yield agent, it, rx
    finally:
        rx.stop()
        it.close()
        agent.close()


def it_seqs(it: _core.Spool) -> list[int]:
    entries, _ = it.read_entries(0, 10_000)
    return sorted(_core.parse_frame(raw).seq for _, raw in entries)


def test_resend_seq_range(rig: tuple[Agentish, _core.Spool, _core.DiodeReceiver], capsys: pytest.CaptureFixture[str]) -> None:
    agent, it, rx = rig
    assert it_seqs(it) == []
    assert main(["resend", "--socket", agent.socket, "--seq", "10-19"]) == 0
    assert "queued 10 frames (seq 10..19)" in capsys.readouterr().out
    wait_for("resent frames landed", lambda: it.durable_lsn() >= 10)
    assert it_seqs(it) == list(range(10, 20))
    entries, _ = it.read_entries(0, 100)
    assert _core.parse_frame(entries[0][1]).payload == data_frame(10)[0]
    st = agent.sender.stats()
    assert st["resent_frames"] == 10 and st["resend_queued"] == 0
    assert st["cursor"] == 50, "a re-send does not move the live cursor"
    # Again: the receiver keeps one copy.
    assert main(["resend", "--socket", agent.socket, "--seq", "15"]) == 0
    packets = rx.stats()["packets"]
    wait_for("duplicate seen", lambda: rx.stats()["packets"] > packets)
    assert it_seqs(it) == list(range(10, 20))


def test_resend_time_range(rig: tuple[Agentish, _core.Spool, _core.DiodeReceiver], capsys: pytest.CaptureFixture[str]) -> None:
    agent, it, _ = rig
    iso = lambda ns: datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat()  # noqa: E731
    assert main(["resend", "--socket", agent.socket, "--since", iso(T0 + 30 * S),
                 "--until", iso(T0 + 34 * S)]) == 0
    assert "queued 5 frames (seq 30..34)" in capsys.readouterr().out
    wait_for("resent frames landed", lambda: it.durable_lsn() >= 5)
    assert it_seqs(it) == list(range(30, 35))


def test_resend_errors_are_one_line(rig: tuple[Agentish, _core.Spool, _core.DiodeReceiver],
                                    capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    agent, _, _ = rig
    cases = [
        (["--seq", "500-600"], "nothing of seq 500..600 is in the spool any more (the spool holds seq 0..49)"),
        (["--since", "2001-01-01T00:00", "--until", "2001-01-02T00:00"], "nothing of 2001-01-01"),
        (["--seq", "9-3"], "ends before it starts"),
        (["--since", "yesterday"], "'yesterday' is not a time"),
        ([], "give --seq FIRST-LAST or --since TIME"),
        (["--seq", "1", "--since=-1h"], "cannot be combined"),
    ]
    for args, message in cases:
        assert main(["resend", "--socket", agent.socket, *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("tidegate resend: ") and message in err and err.count("\n") == 1, err
    assert main(["resend", "--socket", str(tmp_path / "none.sock"), "--seq", "1"]) == 2
    assert "agent not running" in capsys.readouterr().err


def test_parse_helpers() -> None:
    now = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)
    ns = 1_795_507_200_000_000_000
    assert parse_time("now", now) == ns
    assert parse_time("-2h", now) == ns - 2 * 3600 * S
    assert parse_time("-1.5m", now) == ns - 90 * S
    assert parse_time("2026-11-24T08:00:00.000001+00:00") == ns + 1000
    assert parse_seq_range("100-200") == (100, 200) and parse_seq_range(" 7 ") == (7, 7)
    with pytest.raises(ValueError):
        parse_seq_range("1-2-3")


def test_running_agent_serves_resend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real agent process (its OPC UA source unreachable: it still spools
    META and EVENT frames; sender heartbeats are link packets, not spool
    frames) answers `tidegate resend --config`."""
    import os
    import signal
    import subprocess

    from edge.status import fetch_snapshot

    port = free_udp_port()
    sock = tmp_path / "agent.sock"
    cfg = tmp_path / "agent.toml"
    cfg.write_text("\n".join([
        "[site]", "id = 3", 'name = "x"', "",
        "[agent]", f'status_socket = "{sock}"', "flush_interval_ms = 100", "",
        "[spool]", f'path = "{tmp_path / "spool"}"', "commit_interval_ms = 200", "",
        "[link]", f'target = "127.0.0.1:{port}"', "",
        "[[sources]]", 'name = "plc"', f'endpoint = "opc.tcp://127.0.0.1:{free_udp_port()}"', "",
        "[[tags]]", 'source = "plc"', 'node_id = "ns=2;s=X"', 'name = "X"', "",
    ]))
    root = Path(__file__).resolve().parent.parent
    p = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(cfg)], cwd=root,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=dict(os.environ, PYTHONPATH=str(root)))
    try:
        wait_for("agent spooled and sent a frame", lambda: sock.exists()
                 and fetch_snapshot(str(sock))["link"]["cursor"] >= 1, timeout=60)
        n = min(3, fetch_snapshot(str(sock))["link"]["cursor"])
        assert main(["resend", "--config", str(cfg), "--seq", f"0-{n - 1}"]) == 0
        assert f"queued {n} frames (seq 0..{n - 1})" in capsys.readouterr().out
        wait_for("re-sent", lambda: fetch_snapshot(str(sock))["link"]["resent_frames"] >= n)
        snap = fetch_snapshot(str(sock))
        assert any(e["kind"] == "operator_resend" for e in snap["events"])
        assert snap["spool"]["capacity_bytes"] == 2048 << 20
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err.decode()[-2000:]
