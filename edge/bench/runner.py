"""`tidegate bench`: find the stage benchmarks, run them, write the report.

Stages are the modules `bench_<stage>` of the package `benchmarks` (shipped in
the wheel; see edge/bench/api.py for the interface). A stage that fails, or
that does not follow the interface, is named in the report with its error and
the others still run: a report with a hole is more use on a box in the field
than no report.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from edge.bench.api import Profile, Result

SUITE = "benchmarks"
PREFIX = "bench_"
PI_MEMORY_MB = 256


@dataclass
class StageOutcome:
    stage: str
    results: list[Result] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0


def discover(package: str = SUITE) -> dict[str, str]:
    """stage name -> module name, for every `bench_*` module of the package."""
    try:
        pkg = importlib.import_module(package)
    except ImportError:
        return {}
    return {m.name[len(PREFIX):]: f"{package}.{m.name}"
            for m in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name)
            if m.name.startswith(PREFIX) and not m.ispkg}


def make_profile(name: str, workdir: Path, duration_s: float | None, memory_max_mb: int | None,
                 cpus: Sequence[int] | None = None, scale: float = 1.0) -> Profile:
    """The named profile; "pi" pins to the last core this process may use."""
    if name == "default":
        return Profile("default", duration_s or 90.0, scale, frozenset(cpus) if cpus else None,
                       memory_max_mb or 0, workdir)
    if name == "pi":
        allowed = sorted(os.sched_getaffinity(0))
        core = frozenset(cpus) if cpus else frozenset({allowed[-1]})
        return Profile("pi", duration_s or 90.0, scale, core,
                       PI_MEMORY_MB if memory_max_mb is None else memory_max_mb, workdir)
    raise ValueError(f"unknown profile {name!r} (default, pi)")


def run_stage(stage: str, module: str, profile: Profile) -> StageOutcome:
    out = StageOutcome(stage)
    t = time.monotonic()
    try:
        mod: ModuleType = importlib.import_module(module)
        fn = getattr(mod, "run", None)
        if not callable(fn):
            out.error = f"{module} has no run(profile) function (see benchmarks/README.md)"
        else:
            raw = fn(profile)
            if not isinstance(raw, list | tuple):
                out.error = f"{module}.run returned {type(raw).__name__}, not a list of results"
            else:
                out.results = [Result.coerce(r, stage) for r in raw]
    except Exception as e:  # noqa: BLE001 - one stage's failure must not sink the report
        last = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
        where = f" ({Path(last.filename).name}:{last.lineno})" if last else ""
        out.error = f"{type(e).__name__}: {e}{where}".replace("\n", " ")
    out.seconds = time.monotonic() - t
    return out


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:  # x86 names the CPU in "model name"; a Raspberry Pi names the board in "Model"
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        cpu = fields.get("Model") or fields.get("model name") or cpu
    except OSError:
        pass
    mem_kb = 0
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    from edge import __version__
    from edge.memguard import cgroup_memory

    return {"host": platform.node(), "machine": platform.machine(), "cpu": cpu,
            "cores": os.cpu_count(), "memory_mb": mem_kb // 1024, "kernel": platform.release(),
            "python": platform.python_version(), "tidegate": __version__,
            "cgroup": cgroup_memory().describe()}


def run_suite(profile: Profile, out_dir: Path, only: Sequence[str] | None = None,
              log: IO[str] = sys.stderr, package: str = SUITE) -> Path:
    """Run every discovered stage (or `only` these); returns the report's path."""
    from edge.bench.report import write_report

    stages = discover(package)
    if only:
        unknown = [s for s in only if s not in stages]
        if unknown:
            raise ValueError(f"--only: no stage {', '.join(unknown)} (have: {', '.join(stages) or 'none'})")
        stages = {s: m for s, m in stages.items() if s in only}
    out_dir.mkdir(parents=True, exist_ok=True)
    profile.workdir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    load_before = os.getloadavg()  # others' work on a shared box skews every figure: say how busy it was
    outcomes = []
    for stage, module in stages.items():
        print(f"tidegate bench: {stage} ...", file=log, flush=True)
        o = run_stage(stage, module, profile)
        status = o.error or f"{len(o.results)} figures"
        print(f"tidegate bench: {stage} done in {o.seconds:.0f}s: {status}", file=log, flush=True)
        outcomes.append(o)
    info = {"machine": machine(), "profile": _profile_dict(profile), "started": started,
            "load_average": {"start": list(load_before), "end": list(os.getloadavg())},
            "seconds": time.time() - started,
            "command": " ".join(["tidegate", *sys.argv[1:]]) if sys.argv else "tidegate bench"}
    (out_dir / "results.json").write_text(json.dumps(
        {**info, "stages": [{"stage": o.stage, "error": o.error, "seconds": o.seconds,
                             "results": [r.__dict__ | {"ratio": r.ratio} for r in o.results]}
                            for o in outcomes]}, indent=2, default=str))
    return write_report(out_dir, info, outcomes, profile.workdir)


def _profile_dict(p: Profile) -> dict[str, Any]:
    return {"name": p.name, "duration_s": p.duration_s, "scale": p.scale,
            "cpus": sorted(p.cpus) if p.cpus else None, "memory_max_mb": p.memory_max_mb}
