"""What the poller tells the UI: the latest snapshot or that the agent is gone,
and the connection state screens render from."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from textual.message import Message

Snapshot = dict[str, Any]
LinkState = Literal["connecting", "connected", "reconnecting"]


@dataclass
class AgentLink:
    """The TUI's view of its connection to the agent."""

    socket_path: str
    state: LinkState = "connecting"
    error: str = ""
    last_ok: float | None = None  # time.monotonic() of the last good snapshot
    failures: int = 0  # consecutive failed polls
    snapshot: Snapshot | None = field(default=None, repr=False)

    def stale_for(self) -> float | None:
        """Seconds since the last good snapshot, or None if never."""
        return None if self.last_ok is None else time.monotonic() - self.last_ok


class SnapshotReceived(Message):
    """A fresh snapshot from the agent."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class AgentLost(Message):
    """A poll failed (agent down, restarting, or answered with an error)."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error
