"""deploy/: the install script into a throwaway tree, the units it installs
(systemd-analyze verify and security), and `tidegate bench` run from the
installed wheel (which must ship the `benchmarks` package)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
UNITS = ["tidegate-agent.service", "tidegate-receiver.service"]
HOST_FILES = [Path("/etc/passwd"), Path("/etc/group")]

needs_sysusers = pytest.mark.skipif(shutil.which("systemd-sysusers") is None,
                                    reason="systemd-sysusers not installed (apt-get install systemd)")


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else ""


def _wheel(out: Path) -> Path:
    """This checkout as a wheel (maturin reuses the release build of `maturin develop`)."""
    maturin = shutil.which("maturin") or str(Path(sys.executable).parent / "maturin")
    subprocess.run([maturin, "build", "--release", "--quiet", "--out", str(out)], cwd=REPO, check=True,
                   capture_output=True, timeout=900)
    return next(out.glob("tidegate-*.whl"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if shutil.which("systemd-sysusers") is None:
        pytest.skip("systemd-sysusers not installed")
    base = tmp_path_factory.mktemp("deploy")
    wheel = _wheel(base / "dist")
    root = base / "root"
    before = {p: _digest(p) for p in HOST_FILES}
    r = subprocess.run(["bash", str(DEPLOY / "install.sh"), "--root", str(root), "--wheel", str(wheel),
                        "--sd-card"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert {p: _digest(p) for p in HOST_FILES} == before, "install --root touched the host's users"
    yield root


def _entry(path: Path, name: str) -> list[str]:
    for line in path.read_text().splitlines():
        f = line.split(":")
        if f[0] == name:
            return f
    raise AssertionError(f"{name} not in {path}")


@needs_sysusers
def test_install_lays_out_users_venv_config_state_and_units(tree: Path) -> None:
    user = _entry(tree / "etc/passwd", "tidegate")
    assert user[5] == "/var/lib/tidegate" and user[6] == "/usr/sbin/nologin"
    assert int(user[2]) < 1000, "a system user"
    ops = _entry(tree / "etc/group", "tidegate-ops")
    assert "tidegate" in ops[3].split(",")

    conf = tree / "etc/tidegate"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o750
    for name, flag in (("agent.toml", []), ("receiver.toml", ["--receiver"])):
        f = conf / name
        assert stat.S_IMODE(f.stat().st_mode) == 0o640
        if os.geteuid() == 0:
            assert f.stat().st_gid == int(ops[2])
        # The shipped examples pass the installed tidegate's own check.
        r = subprocess.run([str(tree / "opt/tidegate/venv/bin/tidegate"), "check", *flag, str(f)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and ": ok" in r.stdout, r.stderr
    assert (tree / "var/lib/tidegate").is_dir()
    assert os.readlink(tree / "usr/local/bin/tidegate") == "/opt/tidegate/venv/bin/tidegate"
    for u in UNITS:
        assert (tree / "etc/systemd/system" / u).read_text() == (DEPLOY / "systemd" / u).read_text()
    journald = (tree / "etc/systemd/journald.conf.d/tidegate-volatile.conf").read_text()
    assert "Storage=volatile" in journald


@needs_sysusers
def test_install_again_keeps_edited_config(tree: Path, tmp_path: Path) -> None:
    agent = tree / "etc/tidegate/agent.toml"
    edited = agent.read_text().replace('name = "change-me"', 'name = "north-plant"')
    agent.write_text(edited)
    wheel = next((tree.parent / "dist").glob("*.whl"))
    r = subprocess.run(["bash", str(DEPLOY / "install.sh"), "--root", str(tree), "--wheel", str(wheel)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "keeping" in r.stderr
    assert agent.read_text() == edited
    assert len([ln for ln in (tree / "etc/passwd").read_text().splitlines() if ln.startswith("tidegate:")]) == 1


def test_install_refuses_bad_arguments_in_one_line(tmp_path: Path) -> None:
    for args, needle in ((["--root", str(tmp_path / "t")], "--wheel FILE is required"),
                         (["--root", str(tmp_path / "t"), "--wheel", str(tmp_path / "nope.whl")], "no file"),
                         (["--frobnicate"], "unknown argument --frobnicate")):
        r = subprocess.run(["bash", str(DEPLOY / "install.sh"), *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2
        assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "t").exists(), "nothing half-written"


needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


@needs_analyze
@needs_sysusers
def test_units_verify_clean_against_the_installed_tree(tree: Path, tmp_path: Path) -> None:
    # verify checks that ExecStart= exists: point the units at the tree's venv.
    for u in UNITS:
        text = (DEPLOY / "systemd" / u).read_text().replace("/opt/tidegate", str(tree / "opt/tidegate"))
        (tmp_path / u).write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", *[str(tmp_path / u) for u in UNITS]],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


@needs_analyze
@pytest.mark.parametrize("unit", UNITS)
def test_units_are_hardened_and_notify(unit: str) -> None:
    text = (DEPLOY / "systemd" / unit).read_text()
    for line in ("Type=notify", "NotifyAccess=main", "User=tidegate", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "CapabilityBoundingSet=", "SystemCallFilter=@system-service"):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
    assert re.search(r"^WatchdogSec=\d+$", text, re.M)
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(DEPLOY / "systemd" / unit)],
                       capture_output=True, text=True, timeout=120)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 2.0, f"exposure {m.group(1)} (systemd calls <= 2.0 'OK')"


@needs_sysusers
def test_bench_runs_from_the_installed_wheel(tree: Path, tmp_path: Path) -> None:
    """The wheel ships the suite: `tidegate bench` from the installed venv runs
    the real chain and reports every figure beside its baseline."""
    out = tmp_path / "report"
    r = subprocess.run([str(tree / "opt/tidegate/venv/bin/tidegate"), "bench", "--only", "chain",
                        "--duration", "10", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads((out / "results.json").read_text())
    (chain,) = [s for s in data["stages"] if s["stage"] == "chain"]
    assert chain["error"] == ""
    figs = {x["name"]: x for x in chain["results"]}
    vps = figs["values/s to spool"]
    assert vps["value"] > 10 and 0.8 < vps["ratio"] < 1.25, vps  # the agent keeps up with the server
    assert figs["agent RSS peak"]["value"] > 10 and figs["agent RSS peak"]["baseline"] > 10
    assert figs["agent bytes written"]["value"] > 0
    lat = figs["end-to-end latency p50"]
    assert 0 < lat["baseline"] < lat["value"] < 60, lat  # zarr comes after the OPC UA client
    report = (out / "report.md").read_text()
    assert "| chain | values/s to spool |" in report
    assert "no plot: matplotlib is not installed" in report  # the venv has no `bench` extra
    assert not list(out.glob("work-*")), "scratch directory removed"
