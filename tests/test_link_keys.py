"""Link keys: `tidegate keygen` writes a fresh 0600 key and never overwrites;
configs refuse key files others can read; with the same key frames land, with
another key or with garbage nothing does and every packet is counted."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge import _core
from edge.config import ConfigError, agent_config_from_dict, receiver_config_from_dict


def tidegate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-P", "-m", "edge.cli", *args], capture_output=True,
                          text=True, timeout=60)


def test_keygen_writes_a_private_key_once(tmp_path: Path) -> None:
    key = tmp_path / "link.key"
    r = tidegate("keygen", str(key))
    assert r.returncode == 0, r.stderr
    assert key.stat().st_mode & 0o777 == 0o600
    text = key.read_text()
    assert len(text) == 65 and text.endswith("\n") and int(text, 16) > 0
    again = tidegate("keygen", str(key))
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and str(key) in again.stderr and "exists" in again.stderr
    assert key.read_text() == text, "never overwritten"
    other = tmp_path / "other.key"
    assert tidegate("keygen", str(other)).returncode == 0
    assert other.read_text() != text
    missing_dir = tidegate("keygen", str(tmp_path / "no" / "such.key"))
    assert missing_dir.returncode == 2 and "no/such.key" in missing_dir.stderr


def test_configs_refuse_open_or_missing_key_files(tmp_path: Path) -> None:
    key = tmp_path / "link.key"
    _core.keygen(key)
    base = {"site": {"id": 1, "name": "s"}, "spool": {"path": str(tmp_path / "sp")},
            "link": {"target": "127.0.0.1:5005", "key_file": str(key), "carousel_s": [10, 20]}}
    cfg = agent_config_from_dict(base, "agent.toml")
    assert cfg.link.key_file == key and cfg.link.carousel_s == (10.0, 20.0)
    rx = {"site": {"name": "s"}, "receiver": {"bind": "127.0.0.1:5005", "spool": "a", "datasets": "b",
                                              "key_file": str(key)}}
    assert receiver_config_from_dict(rx, "rx.toml").receiver.key_file == key
    key.chmod(0o644)
    with pytest.raises(ConfigError, match=r"agent.toml: link.key_file: .* permissions 0644, too open"):
        agent_config_from_dict(base, "agent.toml")
    with pytest.raises(ConfigError, match=r"receiver.key_file: .*too open"):
        receiver_config_from_dict(rx, "rx.toml")
    # The core refuses it too, whoever calls it.
    with pytest.raises(ValueError, match="permissions 0644 are too open"):
        _core.DiodeReceiver("127.0.0.1:0", _core.Spool(str(tmp_path / "it"), 0), key_file=key)
    base["link"]["key_file"] = str(tmp_path / "nope.key")  # type: ignore[index]
    with pytest.raises(ConfigError, match="link.key_file: cannot read .*tidegate keygen"):
        agent_config_from_dict(base, "agent.toml")
    base["link"] = {"target": "127.0.0.1:5005", "carousel_s": [20, 10]}
    with pytest.raises(ConfigError, match="link.carousel_s: must be increasing"):
        agent_config_from_dict(base, "agent.toml")


def test_wrong_key_and_garbage_are_counted_and_dropped(tmp_path: Path) -> None:
    ka, kb = tmp_path / "a.key", tmp_path / "b.key"
    _core.keygen(ka)
    _core.keygen(kb)
    it = _core.Spool(str(tmp_path / "it"), 0)
    rx = _core.DiodeReceiver("127.0.0.1:0", it, key_file=ka)
    ot = _core.Spool(str(tmp_path / "ot"), 1)
    for i in range(20):
        ot.append(_core.FRAME_EVENT, i, i, os.urandom(4000))
    ot.commit()
    tx = _core.DiodeSender(ot, rx.local_addr, 0, key_file=kb, carousel_s=[])
    while not tx.idle():
        time.sleep(0.01)
    tx.stop()
    host, port = rx.local_addr.rsplit(":", 1)
    rng = random.Random(9)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(300):
            junk = rng.randbytes(rng.randrange(0, 1500))
            if i % 2:  # a plausible prefix: magic, version 2, a known type
                junk = b"TG\x02" + bytes([1 + i % 3]) + junk
            s.sendto(junk, (host, int(port)))
    # `packets` is counted as datagrams are read, `packets_bad` when the
    # receiver thread has judged them: wait for both (a busy CI box lags).
    expected = tx.stats()["packets_sent"] + 300
    deadline = time.monotonic() + 10
    st = rx.stats()
    while (st["packets"] < expected or st["packets_bad"] < st["packets"]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.02)
        st = rx.stats()
    assert st["frames_ok"] == 0 and it.durable_lsn() == 0
    assert st["packets_bad_tag"] >= tx.stats()["packets_sent"], st
    assert st["packets_bad"] == st["packets"], st
    # The right key: the same frames land, verbatim.
    ot.set_cursor("sent", 0)
    tx = _core.DiodeSender(ot, rx.local_addr, 0, key_file=ka, carousel_s=[])
    deadline = time.monotonic() + 10
    while rx.stats()["frames_ok"] < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    tx.stop()
    rx.stop()
    assert it.read(0, 100) == ot.read(0, 100)
