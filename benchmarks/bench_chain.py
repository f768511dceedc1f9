"""The whole chain on this machine: latency from a value change at the
server to its row in zarr, values/s to spool, CPU, RSS and bytes written per
hour of the agent. The measurement lives in edge/bench/chain.py."""

from edge.bench.chain import run

__all__ = ["run"]
