"""One way, proven on real sockets: the OT side (a separate process running
the diode sender) holds no socket that can receive from the network, and the
receiver never sends a packet on the link (a packet sniffer on loopback sees
the sender's packets arrive and nothing leave the receiver's port)."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge import _core

SENDER = """
import sys, time
from edge import _core
ot = _core.Spool(sys.argv[1], 1)
tx = _core.DiodeSender(ot, sys.argv[2], 50_000_000, heartbeat_s=0.1)
for i in range(40):
    ot.append(_core.FRAME_EVENT, i, i, b"x" * 3000)
    ot.commit()
    time.sleep(0.02)
print("sending", flush=True)
sys.stdin.readline()
tx.stop()
"""


def sockets_of(pid: int) -> list[tuple[str, int, str]]:
    """(protocol, state, remote address) of every network socket the process holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6"):
        lines = Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
        for line in lines:
            f = line.split()
            if f[9] in inodes:
                found.append((proto, int(f[3], 16), f[2]))
    return found


def test_ot_side_has_no_listening_socket(tmp_path: Path) -> None:
    rx_spool = _core.Spool(str(tmp_path / "it"), 0)
    rx = _core.DiodeReceiver("127.0.0.1:0", rx_spool)
    p = subprocess.Popen([sys.executable, "-c", SENDER, str(tmp_path / "ot"), rx.local_addr],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "sending"
        socks = sockets_of(p.pid)
        udp = [s for s in socks if s[0].startswith("udp")]
        assert udp, socks
        # Connected UDP (state 1 = ESTABLISHED, a remote address set): the kernel
        # delivers it nothing from anyone else, and it is shut for reading.
        for proto, state, remote in udp:
            assert state == 1 and not remote.startswith("00000000:0000"), (proto, state, remote)
        assert not [s for s in socks if s[0].startswith("tcp") and s[1] == 0x0A], "TCP LISTEN on the OT side"
        assert not [s for s in socks if s[0].startswith("raw")]
        # The check can fail: the receiver's own socket is a bound, unconnected one.
        mine = [s for s in sockets_of(os.getpid()) if s[0] == "udp" and s[1] == 7]
        assert mine, "the receiver's listening UDP socket should be visible"
    finally:
        assert p.stdin is not None
        p.stdin.write("\n")
        p.stdin.close()
        p.wait(20)
        rx.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="a packet sniffer (AF_PACKET) needs root; CI runs as root")
def test_receiver_never_sends(tmp_path: Path) -> None:
    it = _core.Spool(str(tmp_path / "it"), 0)
    rx = _core.DiodeReceiver("127.0.0.1:0", it)
    port = int(rx.local_addr.rsplit(":", 1)[1])
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
    sniff.bind(("lo", 0))
    sniff.settimeout(0.1)
    counts = {"to_rx": 0, "from_rx": 0}
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                frame = sniff.recv(65535)
            except TimeoutError:
                continue
            ip = frame[14:]
            if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:  # IPv4 UDP only
                continue
            ihl = (ip[0] & 0x0F) * 4
            sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
            if dport == port:
                counts["to_rx"] += 1
            if sport == port:
                counts["from_rx"] += 1

    t = threading.Thread(target=run)
    t.start()
    try:
        ot = _core.Spool(str(tmp_path / "ot"), 1)
        tx = _core.DiodeSender(ot, rx.local_addr, 50_000_000, heartbeat_s=0.1)
        for i in range(100):
            ot.append(_core.FRAME_EVENT, i, i, os.urandom(5000))
        ot.commit()
        end = time.monotonic() + 20
        while rx.stats()["frames_ok"] < 100 and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.5)  # heartbeats keep flowing; the receiver still says nothing
        tx.stop()
        ot.close()
    finally:
        stop.set()
        t.join(5)
        sniff.close()
        rx.stop()
    assert rx.stats()["frames_ok"] == 100
    assert counts["to_rx"] >= rx.stats()["packets"] > 0, counts  # the sniffer sees the link
    assert counts["from_rx"] == 0, counts
