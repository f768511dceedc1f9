"""`tidegate bench`: the benchmark runner (runner.py), the interface stage
benchmarks implement (api.py), the report (report.py), and the measurement of
the whole chain (chain.py). The stage benchmarks are the modules
`benchmarks/bench_*.py`."""

from edge.bench.api import Profile, Result

__all__ = ["Profile", "Result"]
