"""`tidegate bench`: the runner finds stages through the documented interface,
keeps going past a broken one, and writes a report with every figure beside its
baseline; /proc measurements are real. The real chain under the bench runs in
tests/test_deploy.py (from the installed wheel)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.bench.api import Profile, Result
from edge.bench.procstat import read
from edge.bench.runner import discover, make_profile, run_suite
from edge.cli import main


def test_result_coerce_accepts_mappings_and_names_what_is_wrong() -> None:
    r = Result.coerce({"name": "encode", "value": 200.0, "unit": "MB/s", "baseline": 100.0,
                       "baseline_name": "zstd -3"}, "codec")
    assert r.stage == "codec" and r.ratio == 2.0 and r.better == "higher"
    assert Result("x", 1.0, "s").ratio is None
    assert Result("x", 1.0, "s", 0.0).ratio is None
    with pytest.raises(TypeError, match="missing 'unit'"):
        Result.coerce({"name": "a", "value": 1}, "s")
    with pytest.raises(TypeError, match="unknown result keys: colour"):
        Result.coerce({"name": "a", "value": 1, "unit": "s", "colour": "red"}, "s")
    with pytest.raises(TypeError, match="better must be"):
        Result.coerce({"name": "a", "value": 1, "unit": "s", "better": "more"}, "s")


def test_the_shipped_suite_has_every_stage() -> None:
    stages = discover()
    assert stages["chain"] == "benchmarks.bench_chain"
    assert {"acquisition", "codec", "datasets", "link", "spool"} <= set(stages)


@pytest.fixture
def fake_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    pkg = tmp_path / "fakesuite"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "bench_good.py").write_text(textwrap.dedent("""
        from edge.bench.api import Result
        def run(profile):
            return [Result("encode", 300.0, "MB/s", 100.0, "zstd level 3"),
                    {"name": "size", "value": 2.0, "unit": "MB", "baseline": 4.0, "baseline_name": "raw",
                     "better": "lower"},
                    {"name": "p95", "value": 3.0, "unit": "ms", "baseline": 1.0, "better": "lower",
                     "baseline_name": "a | pipe"}]
    """))
    (pkg / "bench_broken.py").write_text("def run(profile):\n    raise RuntimeError('disk on fire')\n")
    (pkg / "bench_norun.py").write_text("X = 1\n")
    (pkg / "helper.py").write_text("raise SystemExit('not a stage, never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "fakesuite"


def test_runner_reports_every_stage_even_broken_ones(fake_suite: str, tmp_path: Path) -> None:
    assert sorted(discover(fake_suite)) == ["broken", "good", "norun"]
    out = tmp_path / "out"
    profile = Profile(workdir=tmp_path / "work")
    report = run_suite(profile, out, package=fake_suite).read_text()
    rows = {line.split("|")[2].strip(): line for line in report.splitlines() if line.startswith("| ")}
    assert "300 MB/s" in rows["encode"] and "100 MB/s" in rows["encode"] and "3.00x (better)" in rows["encode"]
    assert "0.50x (better)" in rows["size"]  # lower is better: half the size is good news
    assert "3.00x (worse)" in rows["p95"] and "a \\| pipe" in rows["p95"]  # table stays a table
    failed = [line for line in report.splitlines() if "**failed**" in line]
    assert any("broken" in f and "RuntimeError: disk on fire (bench_broken.py:2)" in f for f in failed)
    assert any("norun" in f and "no run(profile) function" in f for f in failed)
    png = out / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert "![" in report
    data = json.loads((out / "results.json").read_text())
    assert {s["stage"] for s in data["stages"]} == {"good", "broken", "norun"}
    assert data["machine"]["cores"] == os.cpu_count()


def test_pi_profile_pins_one_core_and_caps_memory(tmp_path: Path) -> None:
    p = make_profile("pi", tmp_path, None, None)
    assert p.cpus is not None and len(p.cpus) == 1 and p.cpus <= os.sched_getaffinity(0)
    assert p.memory_max_mb == 256
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        p.pin(child.pid)
        assert os.sched_getaffinity(child.pid) == p.cpus
    finally:
        child.kill()
        child.wait()
    assert make_profile("default", tmp_path, 20, None).cpus is None


def test_procstat_sees_cpu_memory_and_bytes_written(tmp_path: Path) -> None:
    target = tmp_path / "blob"
    code = textwrap.dedent(f"""
        import os, sys, time
        buf = bytearray(64 << 20)  # touched below: resident
        for i in range(0, len(buf), 4096): buf[i] = 1
        t = time.process_time()
        while time.process_time() - t < 0.3: pass
        with open({str(target)!r}, "wb") as f:
            f.write(os.urandom(4 << 20)); f.flush(); os.fsync(f.fileno())
        print("done", flush=True)
        sys.stdin.read()
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "done"
        s = read(p.pid)
        assert s.rss > 64 << 20
        assert s.cpu_s >= 0.25
        assert s.write_bytes >= 4 << 20
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize("args,needle", [
    (["--duration", "5"], "--duration: at least 10 seconds"),
    (["--only", "nope"], "--only: no stage nope"),
    (["--cpus", "a,b"], "--cpus: a comma-separated list"),
    (["--cpus", "4096"], "--cpus: this process may only use cores"),
    (["--memory-max-mb", "-1"], "--memory-max-mb: must be 0"),
    (["--scale", "0"], "--scale: a factor above 0"),
    (["--scale", "nan"], "--scale: a factor above 0"),
])
def test_bench_bad_arguments_one_line_exit_2(args: list[str], needle: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_bench_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--list"]) == 0
    assert "chain\tbenchmarks.bench_chain" in capsys.readouterr().out


# Every figure issue 9 asks `tidegate bench` for: (stage, figure name starts with).
REQUIRED_FIGURES = [
    ("chain", "values/s to spool"),
    ("acquisition", "values per CPU-second"),
    ("chain", "agent CPU"),
    ("chain", "agent RSS peak"),
    ("codec", "bytes per sample, simulator"),
    ("codec", "encode, simulator"),
    ("codec", "decode, simulator"),
    ("spool", "append throughput"),
    ("spool", "bytes written per frame byte"),
    ("chain", "agent bytes written"),
    ("link", "goodput paced 1G, auth + 5% repair"),
    ("link", "goodput unpaced, auth + 5% repair"),
    ("link", "frames lost, 2% packet loss, 5% repair"),
    ("link", "packet loss survived"),
    ("chain", "end-to-end latency p50"),
]


def test_bench_pi_profile_end_to_end_reports_every_figure_beside_its_baseline(tmp_path: Path) -> None:
    """The real suite at a tiny scale, through the CLI, under --profile pi:
    a row per figure with a measured baseline, the link lost no frame through
    2% loss, the agent really ran pinned and capped, and the plot is a PNG."""
    out = tmp_path / "report"
    r = subprocess.run([sys.executable, "-m", "edge.cli", "bench", "--profile", "pi", "--scale", "0.05",
                        "--duration", "10", "--out", str(out)], capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    report = (out / "report.md").read_text()
    assert "**failed**" not in report, report
    rows: dict[tuple[str, str], list[str]] = {}
    for line in report.splitlines():
        cells = [c.strip() for c in line.split(" | ")]
        if line.startswith("| ") and len(cells) == 7 and cells[0] != "| stage":
            rows[(cells[0].removeprefix("| "), cells[1])] = cells
    for stage, figure in REQUIRED_FIGURES:
        found = [c for (s, name), c in rows.items() if s == stage and name.startswith(figure)]
        assert found, f"no row for {stage}: {figure} in\n{report}"
        for _, name, value, baseline, baseline_is, _ratio, _note in found:
            assert value not in ("", "n/a"), f"{name}: no value"
            assert baseline not in ("", "n/a") and baseline_is, f"{name}: no baseline beside it"
    lost = next(c for (s, n), c in rows.items() if n.startswith("frames lost, 2% packet loss"))
    assert lost[2] == "0 frames", lost
    cpu = rows[("chain", "agent CPU")]
    core = sorted(os.sched_getaffinity(0))[-1]
    assert f"agent ran on core(s) {core} of" in cpu[6], cpu  # read back from the kernel
    assert "memory: cap 256 MB" in rows[("chain", "agent RSS peak")][6]  # the agent's own word
    assert "profile: **pi**" in report and "load average (1, 5, 15 min) at start" in report
    png = out / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(png) as im:
        im.verify()  # a whole, valid PNG, not just its signature
        assert im.size[0] >= 1000
    data = json.loads((out / "results.json").read_text())
    assert data["profile"]["scale"] == 0.05 and data["profile"]["memory_max_mb"] == 256
