"""The agent bounds its own memory.

systemd's MemoryMax= needs the kernel's memory cgroup controller, which stock
Raspberry Pi kernels leave off (cgroup_disable=memory), so a unit's limit may
silently not exist. The agent therefore watches its own resident set size and,
above `[agent] memory_max_mb`, logs one clear line and stops the way SIGTERM
does (flush, drain, close the spool) with exit status EXIT_MEMORY, which
systemd's Restart=on-failure turns into a restart. If that orderly stop has
not finished within GRACE_S the process exits at once: the spool is
crash-safe, so the only loss is what was not yet durable, and the OPC UA
server republishes what was not acknowledged.

RLIMIT_AS is not used: glibc reserves address space per thread arena and the
Rust core's threads would fail to start well below any useful RSS cap.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

EXIT_MEMORY = 75  # EX_TEMPFAIL: a restart is the right answer
CHECK_EVERY_S = 1.0
GRACE_S = 60.0
_PAGE = os.sysconf("SC_PAGE_SIZE")
_UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a huge number


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size now, from /proc/PID/statm (cheap: no parsing of status)."""
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


@dataclass(frozen=True)
class CgroupMemory:
    """Whether a cgroup memory limit applies to this process, and which."""

    controller: bool  # the kernel's memory controller is enabled
    limit_bytes: int | None  # the tightest memory.max on our cgroup path, None if none
    version: int  # 1 or 2, 0 if no cgroup filesystem

    def describe(self) -> str:
        if not self.controller:
            return ("cgroup memory controller is off in this kernel: a unit's MemoryMax= "
                    "is not in force")
        if self.limit_bytes is None:
            return f"cgroup v{self.version} memory controller on, no memory limit set on this process"
        return f"cgroup v{self.version} memory limit {self.limit_bytes >> 20} MB is in force"


def cgroup_memory(root: Path = Path("/sys/fs/cgroup"), proc: Path = Path("/proc/self/cgroup")) -> CgroupMemory:
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        return CgroupMemory(False, None, 0)
    paths = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            paths[c] = path
    if "memory" in paths:  # cgroup v1: a hierarchy of its own
        base, rel, name, version = root / "memory", paths["memory"], "memory.limit_in_bytes", 1
        on = base.is_dir()
    else:
        base, rel, name, version = root, paths.get("", "/"), "memory.max", 2
        try:
            on = "memory" in (root / "cgroup.controllers").read_text().split()
        except OSError:
            return CgroupMemory(False, None, 0)
    if not on:
        return CgroupMemory(False, None, version)
    limit: int | None = None
    d = base / rel.lstrip("/")
    while True:  # a limit on any ancestor bounds us too
        try:
            text = (d / name).read_text().strip()
            if text != "max" and int(text) < _UNLIMITED:
                limit = int(text) if limit is None else min(limit, int(text))
        except (OSError, ValueError):
            pass
        if d == base or base not in d.parents:
            break
        d = d.parent
    return CgroupMemory(True, limit, version)


class MemoryGuard:
    """A daemon thread that compares RSS with a cap once a second.

    `on_breach` runs once, from this thread, when RSS first exceeds the cap; it
    must be thread-safe (e.g. loop.call_soon_threadsafe(stop.set)).
    """

    def __init__(self, cap_mb: int, on_breach: Callable[[], object], *, who: str = "tidegate agent",
                 check_every_s: float = CHECK_EVERY_S, grace_s: float = GRACE_S) -> None:
        self.cap_bytes = cap_mb << 20
        self.on_breach = on_breach
        self.who = who
        self.check_every_s = check_every_s
        self.grace_s = grace_s
        self.breached_rss: int | None = None
        self.peak_rss = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memguard", daemon=True)

    def describe(self) -> str:
        cg = cgroup_memory().describe()
        if not self.cap_bytes:
            return f"memory: no cap of its own ([agent] memory_max_mb = 0); {cg}"
        return (f"memory: cap {self.cap_bytes >> 20} MB resident, enforced by the agent itself "
                f"(stops with exit status {EXIT_MEMORY} above it); {cg}")

    def start(self) -> MemoryGuard:
        if self.cap_bytes:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()

    @property
    def exit_code(self) -> int:
        return EXIT_MEMORY if self.breached_rss is not None else 0

    def _run(self) -> None:
        while not self._done.wait(self.check_every_s):
            rss = rss_bytes()
            self.peak_rss = max(self.peak_rss, rss)
            if rss > self.cap_bytes:
                self.breached_rss = rss
                print(f"{self.who}: resident memory {rss >> 20} MB is over the cap of "
                      f"{self.cap_bytes >> 20} MB ([agent] memory_max_mb): stopping in order "
                      f"(exit status {EXIT_MEMORY})", file=sys.stderr, flush=True)
                self.on_breach()
                break
        else:
            return
        deadline = time.monotonic() + self.grace_s
        if not self._done.wait(max(0.0, deadline - time.monotonic())):
            print(f"{self.who}: orderly stop took over {self.grace_s:.0f}s after the memory cap: "
                  f"exiting now", file=sys.stderr, flush=True)
            os._exit(EXIT_MEMORY)
