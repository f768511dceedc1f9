"""Secure channels against the simulator on loopback: both policies and
modes with username (password from a file) and X.509 user identities; an
untrusted server certificate and a client certificate the server does not
trust are clear errors, not timeouts."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from edge.collect import Collector
from edge.config import SourceConfig, TagConfig
from edge.opcua import SourceSession
from edge.sim import PlantSimulator, free_port
from edge.sim.security import SimSecurity, make_certificate
from test_opcua import stop, wait_for

NODE = "ns=2;s=Plant.Area1.Pump01.Speed"


def pki(tmp_path: Path) -> dict[str, Path]:
    """Server and client certificates, each side trusting the other."""
    server_cert, server_key = make_certificate(tmp_path / "server", "sim", "urn:tidegate:sim", server=True)
    client_cert, client_key = make_certificate(tmp_path / "client", "agent", "urn:tidegate:agent", server=False)
    user_cert, user_key = make_certificate(tmp_path / "user", "operator", "urn:tidegate:user", server=False)
    trusted_servers = tmp_path / "client" / "trusted"
    trusted_clients = tmp_path / "server" / "trusted"
    trusted_servers.mkdir()
    trusted_clients.mkdir()
    shutil.copy(server_cert, trusted_servers)
    shutil.copy(client_cert, trusted_clients)
    (tmp_path / "password").write_text("s3cret\n")
    return {"server_cert": server_cert, "server_key": server_key, "client_cert": client_cert,
            "client_key": client_key, "trusted_servers": trusted_servers, "trusted_clients": trusted_clients,
            "user_cert": user_cert, "user_key": user_key, "password": tmp_path / "password"}


def source(sim: PlantSimulator, p: dict[str, Path], policy: str, mode: str, **kw: Any) -> SourceConfig:
    return SourceConfig("sec", sim.endpoint, publishing_interval_ms=200, security_policy=policy,
                        security_mode=mode, certificate=p["client_cert"], private_key=p["client_key"],
                        trust_store=p["trusted_servers"], **kw)


async def collect_once(src: SourceConfig) -> tuple[SourceSession, Collector, list[tuple[str, dict[str, Any]]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    col = Collector()
    session = SourceSession(src, [TagConfig("sec", NODE)], col, lambda k, d: events.append((k, d)),
                            request_timeout=5.0, reconnect_max_delay=1.0)
    task = asyncio.create_task(session.run())
    try:
        await wait_for(lambda: col.pending() >= 1 or session.state["last_error"] is not None, timeout=30)
    finally:
        await stop(task)
    return session, col, events


async def test_policies_modes_and_user_identities(tmp_path: Path) -> None:
    p = pki(tmp_path)
    security = SimSecurity(p["server_cert"], p["server_key"], p["trusted_clients"], users={"tidegate": "s3cret"},
                           user_certificates={"operator": p["user_cert"]})
    sim = PlantSimulator(port=free_port(), seed=1, security=security)
    await sim.start()
    try:
        cases = [
            ("Basic256Sha256", "SignAndEncrypt", {"username": "tidegate", "password_file": p["password"]}),
            ("Basic256Sha256", "Sign", {"username": "tidegate", "password_file": p["password"]}),
            ("Aes256_Sha256_RsaPss", "SignAndEncrypt", {"user_certificate": p["user_cert"],
                                                        "user_private_key": p["user_key"]}),
            ("Aes256_Sha256_RsaPss", "Sign", {"username": "tidegate", "password_file": p["password"]}),
        ]
        for policy, mode, identity in cases:
            session, col, _ = await collect_once(source(sim, p, policy, mode, **identity))
            assert col.pending() == 1, (policy, mode, session.state["last_error"])
            assert session.state["security"] == f"{policy}/{mode}"
        # a wrong password is named as such
        (tmp_path / "wrong").write_text("nope")
        session, col, events = await collect_once(source(sim, p, "Basic256Sha256", "SignAndEncrypt",
                                                         username="tidegate", password_file=tmp_path / "wrong"))
        assert col.pending() == 0
        assert "rejected the user identity" in session.state["last_error"]
    finally:
        await sim.stop()


async def test_untrusted_server_certificate_is_a_clear_error(tmp_path: Path) -> None:
    p = pki(tmp_path)
    for f in p["trusted_servers"].iterdir():
        f.unlink()  # we trust nobody
    sim = PlantSimulator(port=free_port(), seed=1,
                         security=SimSecurity(p["server_cert"], p["server_key"], p["trusted_clients"]))
    await sim.start()
    try:
        t0 = time.monotonic()
        session, col, events = await collect_once(source(sim, p, "Basic256Sha256", "SignAndEncrypt"))
        took = time.monotonic() - t0
    finally:
        await sim.stop()
    err = session.state["last_error"]
    assert col.pending() == 0 and took < 10, (took, err)
    assert "server certificate of" in err and "is not trusted" in err and "SHA-1" in err, err
    assert str(p["trusted_servers"]) in err
    rejected = list((p["trusted_servers"].parent / "rejected").iterdir())
    assert len(rejected) == 1 and rejected[0].read_bytes() == p["server_cert"].read_bytes()
    assert [k for k, _ in events] == ["source_connect_failed"]


async def test_server_rejecting_our_certificate_is_a_clear_error(tmp_path: Path) -> None:
    p = pki(tmp_path)
    for f in p["trusted_clients"].iterdir():
        f.unlink()  # the server trusts only a stranger
    stranger, _ = make_certificate(tmp_path / "stranger", "stranger", "urn:stranger", server=False)
    shutil.copy(stranger, p["trusted_clients"])
    sim = PlantSimulator(port=free_port(), seed=1,
                         security=SimSecurity(p["server_cert"], p["server_key"], p["trusted_clients"]))
    await sim.start()
    try:
        t0 = time.monotonic()
        session, col, events = await collect_once(source(sim, p, "Aes256_Sha256_RsaPss", "SignAndEncrypt"))
        took = time.monotonic() - t0
    finally:
        await sim.stop()
    err = session.state["last_error"]
    assert col.pending() == 0 and took < 10, (took, err)
    assert "rejected our certificate" in err and str(p["client_cert"]) in err, err


@pytest.mark.parametrize("missing", ["certificate"])
def test_secure_source_needs_files(missing: str) -> None:
    # the config refuses a secured source without certificate, key and trust store
    from edge.config import ConfigError, agent_config_from_dict
    with pytest.raises(ConfigError, match=f"sources\\[0\\].{missing}: required with security_policy"):
        agent_config_from_dict({"site": {"id": 1, "name": "x"}, "spool": {"path": "/s"}, "link": {"target": "h:1"},
                                "sources": [{"name": "a", "endpoint": "opc.tcp://h:4840",
                                             "security_policy": "Basic256Sha256"}]})
