"""Lossy per tag, set by OT in the tag file: config keys, the bound in META,
and the reducer in front of the codec keeping every value within it."""

from __future__ import annotations

import numpy as np
import pytest

from edge.collect import Collector
from edge.config import ConfigError, agent_config_from_dict
from edge.frames import Reducer, decode_data, decode_meta, encode_data, encode_meta
from edge.model import ColumnBatch, TagInfo, codec_kinds


def cfg_with(**tag: object) -> dict[str, object]:
    return {"site": {"id": 1, "name": "s"}, "spool": {"path": "/tmp/x"}, "link": {"target": "127.0.0.1:9"},
            "sources": [{"name": "sim", "endpoint": "opc.tcp://127.0.0.1:4840"}],
            "tags": [{"source": "sim", "node_id": "ns=2;s=A", **tag}]}


def test_config_keys() -> None:
    t = agent_config_from_dict(cfg_with(max_error=0.5)).tags[0]
    assert (t.compression, t.max_error, t.exception_deviation, t.max_hold_s) == ("swinging_door", 0.5, None, 60.0)
    t = agent_config_from_dict(cfg_with(compression="exception", max_error=2)).tags[0]
    assert (t.compression, t.exception_deviation) == ("exception", 1.0)
    t = agent_config_from_dict(cfg_with(max_error=1, exception_deviation=0.25, max_hold_s=5)).tags[0]
    assert (t.exception_deviation, t.max_hold_s) == (0.25, 5.0)
    assert agent_config_from_dict(cfg_with()).tags[0].compression == "none"


@pytest.mark.parametrize(("tag", "message"), [
    ({"compression": "swinging_door"}, r"tags\[0\]\.max_error: is required"),
    ({"compression": "zip", "max_error": 1}, r"tags\[0\]\.compression: must be one of"),
    ({"max_error": -1}, r"tags\[0\]\.max_error: must be greater than 0"),
    ({"max_error": 1, "exception_deviation": 0.6}, r"tags\[0\]\.exception_deviation: must be at most"),
    ({"compression": "none", "max_error": 1}, r"tags\[0\]\.max_error: is set but"),
    ({"max_error": "1"}, r"tags\[0\]\.max_error: must be a number"),
])
def test_config_errors_name_the_key(tag: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        agent_config_from_dict(cfg_with(**tag))


def test_meta_carries_the_bound_and_old_meta_still_reads() -> None:
    c = Collector()
    i = c.register(name="T", node_id="ns=2;s=A", source="sim", data_type="Double")
    c.set_compression(i, "swinging_door", 0.5, 0.1)
    c.register(name="T", node_id="ns=2;s=A", source="sim", data_type="Double", unit="degC")  # re-resolve
    meta = decode_meta(encode_meta("s", "v", c.catalog()))
    t = meta.tags[0]
    assert (t.unit, t.compression, t.max_error, t.exception_deviation) == ("degC", "swinging_door", 0.5, 0.1)
    old = {k: v for k, v in t.to_wire().items() if k not in ("compression", "max_error", "exception_deviation")}
    assert TagInfo.from_wire(old).compression == "none"


def test_reducer_keeps_every_value_within_the_bound() -> None:
    rng = np.random.default_rng(5)
    tags = [TagInfo(0, "flow", "a", "sim", "Double", compression="swinging_door", max_error=0.2,
                    exception_deviation=0.05),
            TagInfo(1, "level", "b", "sim", "Float", compression="exception", max_error=0.5,
                    exception_deviation=0.25),
            TagInfo(2, "state", "c", "sim", "String")]
    red = Reducer()
    red.configure(tags[0], 1, 30.0)
    red.configure(tags[1], 2, 30.0)
    seen: list[ColumnBatch] = []
    kept: list[ColumnBatch] = []
    x = np.array([50.0, 3.0])
    for w in range(300):  # 300 one-second windows, 1 Hz per tag
        t = 1_700_000_000_000_000_000 + w * 10**9
        x += rng.normal(0, [0.05, 0.02])
        if w % 97 == 0:
            x[0] += 5  # a step
        status = 0x80000000 if w % 50 == 7 else (0x40000000 if 100 <= w < 110 else 0)
        vals = [round(float(x[0]), 3), float(np.float32(round(float(x[1]), 2)))]
        b = ColumnBatch(np.array([0, 1, 2], np.uint32), np.full(3, t, np.int64), np.full(3, t + 5, np.int64),
                        np.full(3, status, np.uint32),
                        np.array([*np.array(vals).view(np.uint64), 0], np.uint64), np.zeros(3, np.uint8), ["run"])
        seen.append(b)
        kept.append(decode_data(encode_data(red.apply(b, t), codec_kinds(tags))))
    kept.append(red.flush_all())
    all_kept = {f: np.concatenate([getattr(k, f) for k in kept]) for f in ("tag", "source_ns", "status", "value_bits")}
    for tag, bound in ((0, 0.2), (1, 0.5)):
        m = all_kept["tag"] == tag
        kt, kv = all_kept["source_ns"][m], all_kept["value_bits"][m].view(np.float64)
        ks = all_kept["status"][m]
        assert np.all(np.diff(kt) > 0)
        st = np.array([b.status[tag] for b in seen])
        ot = np.array([b.source_ns[tag] for b in seen])
        ov = np.array([b.value_bits[tag] for b in seen]).view(np.float64)
        # Bad samples and status changes are all there, with their values.
        must = (st & 0x80000000 != 0) | np.r_[True, st[1:] != st[:-1]]
        for t_, v_ in zip(ot[must], ov[must], strict=True):
            assert v_ in kv[kt == t_]
        # Within each run of one status, interpolation meets the bound.
        for s in np.unique(st):
            sm, km = st == s, ks == s
            rec = np.interp(ot[sm], kt[km], kv[km])
            assert np.max(np.abs(rec - ov[sm])) <= bound
        assert m.sum() < 0.6 * len(seen), f"tag {tag}: kept {m.sum()} of {len(seen)}"
    assert (all_kept["tag"] == 2).sum() == len(seen)  # strings pass untouched
    assert red.stats()["pending"] == 0
