"""A real agent on the plant simulator, in-process, for the TUI tests: the
simulator (asyncua server on loopback) and :class:`edge.agent.Agent` run as
tasks on the test's event loop, the agent's diode sender sends real UDP to a
loopback port nobody reads (one-way: it never needs an answer)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.agent import Agent
from edge.config import load_agent_config
from edge.demo import free_port, write_configs
from edge.sim import PlantSimulator
from edge.status import fetch_snapshot

READY_TIMEOUT = 60.0


@dataclass
class RunningAgent:
    agent: Agent
    sim: PlantSimulator
    config: Path
    socket: str
    state: Path


async def wait_until(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running_agent(tag_prefix: str = "Plant/Area1/Pump01/", seed: int = 1) -> AsyncIterator[RunningAgent]:
    """The simulator with every tag, an agent whose tag file holds only the
    tags under `tag_prefix` (so browsing finds more to add)."""
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    state = Path(tempfile.mkdtemp(prefix="tg-agent-", dir="/tmp"))  # short: AF_UNIX path limit
    sim = PlantSimulator(port=free_port(), seed=seed)
    await sim.start()
    stop = asyncio.Event()
    task: asyncio.Task[dict[str, Any]] | None = None
    try:
        chosen = [t for t in sim.tags() if t.browse_path.startswith(tag_prefix)]
        cfg_path, _ = write_configs(state, sim.endpoint, free_port(socket.SOCK_DGRAM), chosen)
        cfg = load_agent_config(cfg_path)
        agent = Agent(cfg)
        task = asyncio.create_task(agent.run(stop))
        sock = str(cfg.agent.status_socket)

        def subscribed() -> bool:
            s = agent.sessions[0].state if agent.sessions else {}
            return bool(s.get("connected")) and s.get("subscribed", 0) >= len(chosen)

        await wait_until(subscribed, READY_TIMEOUT, "the agent to subscribe")
        sim.begin()
        await asyncio.to_thread(fetch_snapshot, sock)
        yield RunningAgent(agent, sim, cfg_path, sock, state)
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 60)
        await sim.stop()
        shutil.rmtree(state, ignore_errors=True)
