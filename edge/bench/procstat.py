"""CPU, memory and disk writes of a running process, read from /proc.

/proc/PID/stat utime+stime cover every thread (the Rust core's too);
/proc/PID/io write_bytes counts what the process caused to be written to
storage (page cache write-back included), which is what wears an SD card.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcSample:
    t: float  # time.monotonic()
    cpu_s: float  # user + system seconds since the process started
    rss: int  # bytes
    write_bytes: int  # bytes sent to the block layer since start


def read(pid: int) -> ProcSample:
    with open(f"/proc/{pid}/stat", "rb") as f:
        # Fields after the command name (which may hold spaces) start after ')'.
        rest = f.read().rsplit(b")", 1)[1].split()
    utime, stime = int(rest[11]), int(rest[12])
    with open(f"/proc/{pid}/statm", "rb") as f:
        rss = int(f.read().split()[1]) * _PAGE
    write_bytes = 0
    with open(f"/proc/{pid}/io", "rb") as f:
        for line in f:
            if line.startswith(b"write_bytes:"):
                write_bytes = int(line.split()[1])
    return ProcSample(time.monotonic(), (utime + stime) / _TICK, rss, write_bytes)


@dataclass
class Series:
    """Samples of one process over a run, with the figures the report needs."""

    label: str
    pid: int
    samples: list[ProcSample] = field(default_factory=list)

    def window(self, t0: float, t1: float) -> list[ProcSample]:
        return [s for s in self.samples if t0 <= s.t <= t1]

    def cpu_percent(self, t0: float, t1: float) -> float:
        w = self.window(t0, t1)
        if len(w) < 2 or w[-1].t <= w[0].t:
            return float("nan")
        return 100.0 * (w[-1].cpu_s - w[0].cpu_s) / (w[-1].t - w[0].t)

    def rss_max(self, t0: float, t1: float) -> float:
        w = self.window(t0, t1)
        return float(max(s.rss for s in w)) if w else float("nan")

    def write_bytes_per_hour(self, t0: float, t1: float) -> float:
        w = self.window(t0, t1)
        if len(w) < 2 or w[-1].t <= w[0].t:
            return float("nan")
        return (w[-1].write_bytes - w[0].write_bytes) * 3600.0 / (w[-1].t - w[0].t)


class Sampler:
    """Samples several processes every `every_s` seconds on a thread of its own."""

    def __init__(self, every_s: float = 0.5) -> None:
        self.every_s = every_s
        self.series: list[Series] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="procstat", daemon=True)

    def watch(self, label: str, pid: int) -> Series:
        s = Series(label, pid)
        self._take(s)
        self.series.append(s)
        return s

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in self.series:  # one last sample, so a window can end now
            self._take(s)

    def _take(self, s: Series) -> None:
        try:
            s.samples.append(read(s.pid))
        except (FileNotFoundError, ProcessLookupError):
            pass  # the process has exited

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            for s in list(self.series):
                self._take(s)
