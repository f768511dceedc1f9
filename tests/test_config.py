"""Agent and receiver config files: the good one loads, bad ones say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import (
    DEFAULT_STATUS_SOCKET,
    AgentConfig,
    ConfigError,
    agent_config_from_dict,
    load_agent_config,
    load_receiver_config,
    receiver_config_from_dict,
)

GOOD = """\
# a plant
[site]
id = 7
name = "north-plant"

[agent]
status_socket = "run/agent.sock"
flush_interval_ms = 500

[spool]
path = "/var/lib/tidegate/spool"

[link]
target = "10.0.0.2:5005"
rate_mbit = 20

[[sources]]
name = "plc1"
endpoint = "opc.tcp://10.1.1.10:4840"
publishing_interval_ms = 500

[[sources]]
name = "sim"
endpoint = "opc.tcp://127.0.0.1:4840/tidegate/sim"

[[tags]]
source = "plc1"
node_id = "ns=2;s=Plant.Area1.Pump01.Speed"
name = "P01_Speed"
unit = "rpm"
sampling_interval_ms = 250

[[tags]]
source = "plc1"
node_id = "ns=3;i=1001"

[[tag_groups]]
source = "sim"
browse_path = "Plant/Area2"
"""


def write(tmp_path: Path, text: str, name: str = "agent.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_agent_config(tmp_path: Path) -> None:
    cfg = load_agent_config(write(tmp_path, GOOD))
    assert isinstance(cfg, AgentConfig)
    assert (cfg.site.id, cfg.site.name) == (7, "north-plant")
    assert cfg.agent.flush_interval_ms == 500
    assert cfg.agent.status_socket == tmp_path / "run/agent.sock"  # relative to the file
    assert cfg.spool.path == Path("/var/lib/tidegate/spool") and cfg.spool.segment_mb == 16
    assert (cfg.link.target, cfg.link.rate_mbit, cfg.link.mtu) == ("10.0.0.2:5005", 20.0, 1500)
    assert [s.name for s in cfg.sources] == ["plc1", "sim"]
    assert cfg.sources[1].publishing_interval_ms == 1000 and cfg.sources[1].security_policy == "None"
    assert cfg.sources[0].keepalive_count == 10
    t0, t1 = cfg.tags
    assert (t0.name, t0.unit, t0.sampling_interval_ms, t0.queue_size) == ("P01_Speed", "rpm", 250, None)
    assert (t1.name, t1.unit, t1.description) == (None, None, None)
    assert cfg.tag_groups[0].browse_path == "Plant/Area2"


def test_minimal_config_defaults(tmp_path: Path) -> None:
    cfg = agent_config_from_dict({"site": {"id": 1, "name": "x"}, "spool": {"path": "/s"},
                                  "link": {"target": "h:1"}})
    assert cfg.agent.status_socket == DEFAULT_STATUS_SOCKET and cfg.agent.flush_interval_ms == 1000
    assert cfg.sources == [] and cfg.tags == [] and cfg.origin == "<memory>"


def err(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as e:
        load_agent_config(write(tmp_path, text))
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_unknown_key_names_file_line_and_suggests(tmp_path: Path) -> None:
    text = GOOD.replace("publishing_interval_ms = 500", "publishing_intervall_ms = 500")
    msg = err(tmp_path, text)
    n = line_of(text, "publishing_intervall_ms")
    assert msg == (f"{tmp_path / 'agent.toml'}:{n}: sources[0].publishing_intervall_ms: unknown key "
                   "(did you mean 'publishing_interval_ms'?)")


def test_unknown_section(tmp_path: Path) -> None:
    msg = err(tmp_path, GOOD + "\n[lnk]\nx = 1\n")
    assert ": lnk: unknown key (did you mean 'link'?)" in msg


def test_wrong_type(tmp_path: Path) -> None:
    text = GOOD.replace("id = 7", 'id = "seven"')
    msg = err(tmp_path, text)
    assert msg.endswith(f"agent.toml:{line_of(text, 'seven')}: site.id: must be an integer, got a string")


def test_out_of_range(tmp_path: Path) -> None:
    text = GOOD.replace("id = 7", "id = 4294967296")
    assert "site.id: must be between 0 and 4294967295, got 4294967296" in err(tmp_path, text)
    text = GOOD.replace("rate_mbit = 20", "rate_mbit = 0")
    assert "link.rate_mbit: must be greater than 0" in err(tmp_path, text)


def test_bad_endpoint(tmp_path: Path) -> None:
    text = GOOD.replace("opc.tcp://10.1.1.10:4840", "http://10.1.1.10:4840")
    msg = err(tmp_path, text)
    n = line_of(text, "http://")
    assert msg.endswith(f"agent.toml:{n}: sources[0].endpoint: must start with opc.tcp://, "
                        "got 'http://10.1.1.10:4840'")


def test_duplicate_tag_name(tmp_path: Path) -> None:
    text = GOOD + '\n[[tags]]\nsource = "sim"\nnode_id = "ns=2;s=X"\nname = "P01_Speed"\n'
    msg = err(tmp_path, text)
    n = len(text.splitlines())
    assert msg.endswith(f"agent.toml:{n}: tags[2].name: duplicate tag name 'P01_Speed' (also tags[0])")


def test_unknown_source_and_bad_node_id(tmp_path: Path) -> None:
    text = GOOD.replace('source = "plc1"\nnode_id = "ns=3;i=1001"', 'source = "plc2"\nnode_id = "ns=3;i=1001"')
    assert "tags[1].source: no source named 'plc2' (did you mean 'plc1'?)" in err(tmp_path, text)
    text = GOOD.replace('"ns=3;i=1001"', '"Pump01.Speed"')
    assert "tags[1].node_id: must be an OPC UA node id" in err(tmp_path, text)


def test_security_policy_and_missing_key(tmp_path: Path) -> None:
    text = GOOD.replace('publishing_interval_ms = 500', 'security_policy = "Basic128Rsa15"')
    assert "sources[0].security_policy: must be one of 'None', 'Basic256Sha256'" in err(tmp_path, text)
    text = GOOD.replace('target = "10.0.0.2:5005"\n', "")
    msg = err(tmp_path, text)
    assert f"agent.toml:{line_of(text, '[link]')}: link.target: required key is missing" in msg
    text = GOOD.replace('target = "10.0.0.2:5005"', 'target = "10.0.0.2"')
    assert "link.target: must be host:port, got '10.0.0.2'" in err(tmp_path, text)


def test_toml_syntax_error_has_line(tmp_path: Path) -> None:
    text = GOOD.replace('name = "north-plant"', 'name = north-plant')
    msg = err(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'agent.toml'}:{line_of(text, 'north-plant')}: TOML syntax error: ")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml: no such file"):
        load_agent_config(tmp_path / "nope.toml")


def test_from_dict_errors_name_origin() -> None:
    with pytest.raises(ConfigError) as e:
        agent_config_from_dict({"site": {"id": 1, "name": "x"}, "spool": {"path": "/s"},
                                "link": {"target": "h:1"}, "sources": [{"name": "a", "endpoint": "x"}]},
                               origin="demo")
    assert str(e.value) == "demo: sources[0].endpoint: must start with opc.tcp://, got 'x'"


def test_receiver_config(tmp_path: Path) -> None:
    text = ('[site]\nname = "north-plant"\n\n[receiver]\nbind = "0.0.0.0:5005"\nspool = "it-spool"\n'
            'datasets = "/data/tidegate"\n')
    cfg = load_receiver_config(write(tmp_path, text, "receiver.toml"))
    assert cfg.site.name == "north-plant"
    assert cfg.receiver.bind == "0.0.0.0:5005" and cfg.receiver.spool == tmp_path / "it-spool"
    assert cfg.receiver.datasets == Path("/data/tidegate") and cfg.receiver.batch_seconds == 3600
    assert cfg.receiver.status_socket is None
    with pytest.raises(ConfigError) as e:
        load_receiver_config(write(tmp_path, text + "batch_secs = 60\n", "receiver.toml"))
    assert str(e.value) == (f"{tmp_path / 'receiver.toml'}:8: receiver.batch_secs: unknown key "
                            "(did you mean 'batch_seconds'?)")
    with pytest.raises(ConfigError, match="receiver.batch_seconds: must be between"):
        receiver_config_from_dict({"site": {"name": "x"}, "receiver": {
            "bind": "h:1", "spool": "/a", "datasets": "/b", "batch_seconds": 0}})


def test_security_identity_and_files(tmp_path: Path) -> None:
    (tmp_path / "pki" / "trusted").mkdir(parents=True)
    for f in ("cert.der", "key.pem", "pw"):
        (tmp_path / "pki" / f).write_text("x")
    secure = ('publishing_interval_ms = 500\nsecurity_policy = "Aes256_Sha256_RsaPss"\n'
              'security_mode = "Sign"\ncertificate = "pki/cert.der"\nprivate_key = "pki/key.pem"\n'
              'trust_store = "pki/trusted"\nusername = "tidegate"\npassword_file = "pki/pw"')
    cfg = load_agent_config(write(tmp_path, GOOD.replace('publishing_interval_ms = 500', secure)))
    s = cfg.sources[0]
    assert (s.security_policy, s.security_mode, s.username) == ("Aes256_Sha256_RsaPss", "Sign", "tidegate")
    assert s.certificate == tmp_path / "pki/cert.der" and s.trust_store == tmp_path / "pki/trusted"
    assert s.password_file == tmp_path / "pki/pw"
    # the default mode with a policy is SignAndEncrypt
    cfg = load_agent_config(write(tmp_path, GOOD.replace('publishing_interval_ms = 500',
                                                         secure.replace('security_mode = "Sign"\n', ""))))
    assert cfg.sources[0].security_mode == "SignAndEncrypt"
    cases = [
        (secure.replace('"pki/pw"', '"pki/nope"'), "sources[0].password_file: no such file"),
        (secure.replace('trust_store = "pki/trusted"\n', ""), "sources[0].trust_store: required with"),
        (secure.replace('username = "tidegate"\n', ""), "username and password_file go together"),
        (secure.replace('"Sign"', '"Encrypt"'), "sources[0].security_mode: must be one of"),
        ('security_mode = "Sign"', "security_mode 'Sign' does not go with security_policy 'None'"),
        (secure.replace('"pki/trusted"', '"pki/cert.der"'), "sources[0].trust_store: no such directory"),
    ]
    for text, want in cases:
        msg = err(tmp_path, GOOD.replace('publishing_interval_ms = 500', text))
        assert want in msg, msg
        assert msg.startswith(str(tmp_path / "agent.toml") + ":"), msg  # file:line


def test_tag_deadband_mode_and_range(tmp_path: Path) -> None:
    extra = ('sampling_interval_ms = 250\ndeadband_absolute = 0.5\nmode = "poll"\n'
             'range_low = 0\nrange_high = 1800')
    cfg = load_agent_config(write(tmp_path, GOOD.replace("sampling_interval_ms = 250", extra)))
    t = cfg.tags[0]
    assert (t.deadband_absolute, t.deadband_percent, t.mode, t.range_low, t.range_high) == \
        (0.5, None, "poll", 0.0, 1800.0)
    assert cfg.tags[1].mode == "subscribe" and cfg.tags[1].deadband_absolute is None
    group = 'browse_path = "Plant/Area2"\ndeadband_percent = 2.5'
    assert load_agent_config(write(tmp_path, GOOD.replace('browse_path = "Plant/Area2"', group))
                             ).tag_groups[0].deadband_percent == 2.5
    cases = [
        ("deadband_absolute = 0.5\ndeadband_percent = 1", "tags[0].deadband_percent: give deadband_absolute"),
        ("deadband_percent = 101", "tags[0].deadband_percent: must be between 0 and 100, got 101"),
        ("deadband_absolute = -1", "tags[0].deadband_absolute: must be between 0"),
        ('deadband_absolute = "big"', "tags[0].deadband_absolute: must be a number, got a string"),
        ('mode = "push"', "tags[0].mode: must be one of 'subscribe', 'poll', got 'push'"),
        ("range_low = 5", "tags[0].range_high: range_low and range_high go together"),
        ("range_low = 5\nrange_high = 5", "tags[0].range_high: must be greater than range_low (5)"),
    ]
    for text, want in cases:
        full = GOOD.replace("sampling_interval_ms = 250", "sampling_interval_ms = 250\n" + text)
        msg = err(tmp_path, full)
        assert want in msg, msg
        first = text.splitlines()[-1].split("=")[0].strip()
        assert f"agent.toml:{line_of(full, first)}:" in msg or "go together" in msg, msg


def test_check_command_bad_tag_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli import main

    text = GOOD.replace("sampling_interval_ms = 250", "sampling_interval_ms = 250\ndeadband_percent = 250")
    path = write(tmp_path, text)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"tidegate check: {path}:{line_of(text, 'deadband_percent')}: tags[0].deadband_percent: "
                   "must be between 0 and 100, got 250")
    assert main(["check", str(write(tmp_path, GOOD))]) == 0
