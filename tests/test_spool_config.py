"""The spool's config keys: defaults, one-line errors, and what the agent and
receiver open with them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.config import ConfigError, agent_config_from_dict, receiver_config_from_dict
from edge.spools import open_agent_spool, open_receiver_spool


def agent(spool: dict[str, Any]) -> Any:
    return agent_config_from_dict({"site": {"id": 1, "name": "x"}, "spool": spool,
                                   "link": {"target": "127.0.0.1:9"}}, "agent.toml")


def test_defaults_and_the_spool_they_open(tmp_path: Path) -> None:
    cfg = agent({"path": str(tmp_path / "s")})
    sc = cfg.spool
    assert (sc.max_mb, sc.max_age_seconds, sc.retain_sent_seconds, sc.commit_interval_ms, sc.commit_kb) == \
        (2048, 35 * 86400, 86400, 1000, 4096)
    sp = open_agent_spool(sc, 1)
    st = sp.stats()
    assert st["capacity_bytes"] == 2048 << 20 and st["fill_permille"] == 0
    sp.close()
    rx = receiver_config_from_dict({"site": {"name": "x"}, "receiver": {
        "bind": "127.0.0.1:9", "spool": str(tmp_path / "it"), "datasets": str(tmp_path / "d"),
        "spool_max_mb": 64, "spool_retain_seconds": 60}}, "rx.toml")
    it = open_receiver_spool(rx.receiver)
    assert it.stats()["capacity_bytes"] == 64 << 20
    it.close()
    # IT's default: what is in zarr is kept a week, nothing else is ever dropped
    rx = receiver_config_from_dict({"site": {"name": "x"}, "receiver": {
        "bind": "127.0.0.1:9", "spool": str(tmp_path / "it2"), "datasets": str(tmp_path / "d")}}, "rx.toml")
    assert (rx.receiver.spool_retain_seconds, rx.receiver.spool_max_mb) == (7 * 86400, 0)


@pytest.mark.parametrize(("spool", "message"), [
    ({"segment_mb": 16, "max_mb": 20},
     "agent.toml: spool.max_mb: must be 0 (unbounded) or at least 2 x segment_mb (32), got 20"),
    ({"commit_interval_ms": 60001}, "agent.toml: spool.commit_interval_ms: must be between 0 and 60000"),
    ({"retain_sent_seconds": -1}, "agent.toml: spool.retain_sent_seconds: must be between 0"),
    ({"max_age_secs": 5}, "agent.toml: spool.max_age_secs: unknown key (did you mean 'max_age_seconds'?)"),
])
def test_bad_keys_are_one_line_errors(spool: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        agent({"path": "/s", **spool})
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_bound_larger_than_the_disk_is_warned(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from edge import _core

    sp = _core.Spool(str(tmp_path / "a"), 1, max_bytes=1 << 60)
    sp.close()
    err = capfd.readouterr().err
    assert "warning: max_bytes 1152921504606846976 exceeds" in err and "the disk fills first" in err
    sp = _core.Spool(str(tmp_path / "b"), 1, segment_bytes=1 << 20, max_bytes=2 << 20)
    sp.close()
    assert "warning" not in capfd.readouterr().err
