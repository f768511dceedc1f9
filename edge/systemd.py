"""systemd's notify protocol (sd_notify(3)) with the standard library.

Type=notify units learn "running" from READY=1, "stopping" from STOPPING=1,
and with WatchdogSec= restart a service that stops sending WATCHDOG=1. Outside
systemd ($NOTIFY_SOCKET unset) every call does nothing, so the agent and the
receiver call these unconditionally.
"""

from __future__ import annotations

import os
import socket
import time

_last_ping = 0.0


def notify(state: str) -> bool:
    """Send one datagram of KEY=VALUE lines; False when not under systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr[0] == "@":  # abstract namespace
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.connect(addr)
        s.sendall(state.encode())
    return True


def watchdog_interval() -> float | None:
    """Seconds systemd allows between pings, if it watches this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6


def ready(status: str = "") -> bool:
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def stopping(status: str = "") -> bool:
    return notify("STOPPING=1" + (f"\nSTATUS={status}" if status else ""))


def watchdog() -> bool:
    """Ping the watchdog from a main loop; sends at most four times per interval
    (systemd asks for at least two), however often the loop turns."""
    global _last_ping
    interval = watchdog_interval()
    now = time.monotonic()
    if interval is None or now - _last_ping < interval / 4:
        return False
    _last_ping = now
    return notify("WATCHDOG=1")
