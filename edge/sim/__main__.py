"""``python -m edge.sim --port N --seed S``: serve the simulated plant until
SIGINT or SIGTERM; the dynamics start at once."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from edge.sim.server import PlantSimulator


async def _serve(port: int, seed: int, host: str) -> None:
    sim = PlantSimulator(port=port, seed=seed, host=host)
    await sim.start()
    sim.begin()
    print(f"tidegate sim: {sim.endpoint} ({len(sim.tags())} tags, seed {seed}); Ctrl-C to stop",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sim.stop()
    print(f"tidegate sim: stopped after {sim.writes} writes", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge.sim", description=__doc__)
    p.add_argument("--port", type=int, default=4840, help="TCP port (default 4840)")
    p.add_argument("--seed", type=int, default=1, help="seed of the plant dynamics (default 1)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    args = p.parse_args(argv)
    if not 0 < args.port < 65536:
        p.error(f"--port: must be 1..65535, got {args.port}")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    asyncio.run(_serve(args.port, args.seed, args.host))
    return 0


if __name__ == "__main__":
    sys.exit(main())
