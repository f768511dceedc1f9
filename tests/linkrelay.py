"""The lossy UDP relay the link tests use; it lives in edge/bench/lossyrelay.py
so that `tidegate bench` can use it too."""

from edge.bench.lossyrelay import LossyRelay

__all__ = ["LossyRelay"]
