"""The interface between `tidegate bench` and the stage benchmarks.

A stage benchmark is a module `benchmarks/bench_<stage>.py` (shipped in the
wheel as the package `benchmarks`) with one function::

    def run(profile: Profile) -> list[Result]: ...

Every Result carries its own baseline, measured in the same run on the same
machine (e.g. zstd level 3 beside the codec, a plain file append beside the
spool, a bare asyncua client beside the agent), so a figure is read as a ratio
and survives the noise of a shared or slower box. See benchmarks/README.md.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class Profile:
    """How hard and where to measure; the same object is handed to every stage.

    name: "default" (this machine as it is) or "pi" (the agent on one core
    with a memory cap, approximating a Raspberry Pi on a bigger box).
    duration_s: how long a stage that runs over time (the chain) runs.
    scale: 1.0 for a normal run; tests use less to finish in seconds.
    cpus: the cores the measured process is pinned to (None: no pinning).
    memory_max_mb: the agent's own memory cap (0: none).
    workdir: a scratch directory on the disk being measured.
    """

    name: str = "default"
    duration_s: float = 90.0
    scale: float = 1.0
    cpus: frozenset[int] | None = None
    memory_max_mb: int = 0
    workdir: Path = field(default_factory=lambda: Path("."))

    def pin(self, pid: int = 0) -> None:
        """Pin a process (0: this one) to the profile's cores, if it has any."""
        if self.cpus:
            os.sched_setaffinity(pid, self.cpus)

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """This process on the profile's cores for the block, then back where
        it was: stages run one after another in one process, and a later stage's
        children (servers, the receiver) must not inherit the pin."""
        before = os.sched_getaffinity(0)
        self.pin()
        try:
            yield
        finally:
            os.sched_setaffinity(0, before)


@dataclass(frozen=True)
class Result:
    """One figure beside its baseline.

    name: what was measured ("agent CPU", "values/s to spool").
    value, unit: the figure. baseline: the same quantity for the baseline,
    measured in this run (None if the figure has no natural baseline).
    baseline_name: what the baseline is ("bare asyncua subscriber").
    better: which direction is good, so the report can say faster/slower.
    stage: filled in by the runner from the module name.
    """

    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    better: Better = "higher"
    note: str = ""
    stage: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline or math.isnan(self.baseline) or math.isnan(self.value):
            return None
        return self.value / self.baseline

    @classmethod
    def coerce(cls, item: Any, stage: str) -> Result:
        """A Result from a Result or a mapping with the same keys (stages may
        return plain dicts and need not import this module)."""
        if isinstance(item, Result):
            d: Mapping[str, Any] = item.__dict__
        elif isinstance(item, Mapping):
            d = item
        else:
            raise TypeError(f"a result must be a Result or a mapping, got {type(item).__name__}")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown result keys: {', '.join(sorted(unknown))}")
        for key in ("name", "value", "unit"):
            if key not in d:
                raise TypeError(f"result is missing {key!r}")
        better = d.get("better", "higher")
        if better not in ("higher", "lower"):
            raise TypeError(f"better must be 'higher' or 'lower', got {better!r}")
        base = d.get("baseline")
        return cls(name=str(d["name"]), value=float(d["value"]), unit=str(d["unit"]),
                   baseline=None if base is None else float(base),
                   baseline_name=str(d.get("baseline_name", "")), better=better,
                   note=str(d.get("note", "")), stage=str(d.get("stage") or stage))
