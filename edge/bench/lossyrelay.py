"""A lossy UDP relay for link tests and the link benchmark: forwards datagrams
from its own loopback port to a target with seeded drop, duplication,
reordering and blackouts. A thread with real sockets; nothing is simulated.
Shipped (not under tests/) so `tidegate bench` can measure the loss the link
survives on a box without root or tc netem."""

from __future__ import annotations

import random
import socket
import threading
import time


class LossyRelay:
    def __init__(self, target: tuple[str, int], *, drop: float = 0.0, dup: float = 0.0,
                 reorder: float = 0.0, seed: int = 1) -> None:
        self.target = target
        self.drop, self.dup, self.reorder = drop, dup, reorder
        self._rng = random.Random(seed)
        self._in = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._in.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        self._in.bind(("127.0.0.1", 0))
        self._in.settimeout(0.05)
        self._out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addr = "%s:%d" % self._in.getsockname()
        self.forwarded = 0
        self.dropped = 0
        self._blackout_until = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lossy-relay", daemon=True)
        self._thread.start()

    def blackout(self, seconds: float) -> None:
        """Drop everything for the next `seconds` (returns at once)."""
        self._blackout_until = time.monotonic() + seconds

    def _run(self) -> None:
        held: list[tuple[bytes, int]] = []
        while not self._stop.is_set():
            try:
                data = self._in.recv(65536)
            except TimeoutError:
                continue
            if time.monotonic() < self._blackout_until or self._rng.random() < self.drop:
                self.dropped += 1
                continue
            if self._rng.random() < self.reorder:
                held.append((data, self._rng.randint(1, 20)))
            else:
                self._send(data)
                if self._rng.random() < self.dup:
                    self._send(data)
            still: list[tuple[bytes, int]] = []
            for d, left in held:
                if left <= 1:
                    self._send(d)
                else:
                    still.append((d, left - 1))
            held = still

    def _send(self, data: bytes) -> None:
        self._out.sendto(data, self.target)
        self.forwarded += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._in.close()
        self._out.close()
