"""Collector: catalog, column buffers, flush, live values."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from asyncua import ua

from edge.opcua.uahelp import data_value
from edge.collect import BAD_WAITING_FOR_INITIAL_DATA, Collector, to_ns
from edge.model import NO_TIME, SampleFlags, decode_values


def make() -> tuple[Collector, dict[str, int]]:
    c = Collector(capacity=4)
    idx = {}
    for name, dt in [("d", "Double"), ("f", "Float"), ("i32", "Int32"), ("i64", "Int64"),
                     ("u16", "UInt16"), ("b", "Boolean"), ("s", "String"), ("t", "DateTime")]:
        idx[name] = c.register(name=name, node_id=f"ns=2;s={name}", source="src", data_type=dt,
                               unit="u" if dt == "Double" else "", range_low=0.0 if dt == "Double" else None,
                               range_high=10.0 if dt == "Double" else None)
    return c, idx


def test_register_catalog() -> None:
    c, idx = make()
    assert list(idx.values()) == list(range(8))
    cat = c.catalog()
    assert cat[0].name == "d" and cat[0].unit == "u" and cat[0].range_high == 10.0
    # same node again: same index; metadata may be refreshed
    assert c.register(name="d", node_id="ns=2;s=d", source="src", data_type="Double", unit="bar") == 0
    assert c.catalog()[0].unit == "bar"
    # same node id on another source is another tag
    assert c.register(name="d2", node_id="ns=2;s=d", source="other", data_type="Double") == 8
    with pytest.raises(ValueError, match="already used"):
        c.register(name="d", node_id="ns=2;s=zz", source="src", data_type="Double")
    with pytest.raises(ValueError, match="unsupported"):
        c.register(name="x", node_id="ns=2;s=x", source="src", data_type="ByteString")
    assert c.index_of("src", "ns=2;s=f") == 1 and c.index_of_name("f") == 1


def test_add_flush_roundtrip_and_growth() -> None:
    c, idx = make()
    when = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    rows = [
        (idx["d"], 3.25, 0), (idx["f"], 1.5, 0), (idx["i32"], -7, 0), (idx["i64"], -(2**62), 0),
        (idx["u16"], 65535, 0), (idx["b"], True, 0), (idx["s"], "AUTO", 0), (idx["t"], when, 0),
        (idx["d"], None, 0x808C0000), (idx["s"], "MANUAL", 0x40900000),
    ]
    for k, (i, v, st) in enumerate(rows):
        c.add(i, v, st, 1_000 + k, 2_000 + k)
    assert c.pending() == len(rows) and c.values_total == len(rows)
    b = c.flush()
    assert c.pending() == 0 and len(c.flush()) == 0
    assert len(b) == len(rows)
    assert b.tag.tolist() == [r[0] for r in rows]
    assert b.status.tolist() == [r[2] for r in rows]
    assert b.source_ns.tolist() == [1_000 + k for k in range(len(rows))]
    assert b.server_ns.tolist() == [2_000 + k for k in range(len(rows))]
    assert b.flags.tolist() == [0] * 8 + [int(SampleFlags.NULL_VALUE), 0]
    cat = c.catalog()
    for k, (i, v, _) in enumerate(rows):
        if v is None:
            continue
        got = decode_values(cat[i].data_type, b.value_bits[k:k + 1], b.strings)[0]
        if isinstance(v, datetime):
            assert int(got) == to_ns(v)
        else:
            assert got == v, (cat[i].name, got, v)
    assert b.strings == ["AUTO", "MANUAL"]
    assert b.tag.dtype == np.uint32 and b.value_bits.dtype == np.uint64


def test_wrong_types_become_counted_nulls() -> None:
    c, idx = make()
    c.add(idx["d"], "not a number", 0, 1, 1)
    c.add(idx["i32"], 2.5, 0, 1, 1)
    c.add(idx["s"], 12, 0, 1, 1)
    c.add(idx["u16"], [1, 2], 0, 1, 1)
    b = c.flush()
    assert (b.flags & SampleFlags.NULL_VALUE).all()
    assert c.rejected_total == 4
    assert b.strings == []


def test_add_datavalue_untouched() -> None:
    c, idx = make()
    src = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    dv = data_value(ua.Variant(2.5, ua.VariantType.Double), 0x40940000 | 0x0480, src, None)
    c.add_datavalue(idx["d"], dv, int(SampleFlags.REPLAYED))
    c.add_datavalue(idx["d"], data_value(ua.Variant(None, ua.VariantType.Null), 0x808C0000))
    b = c.flush()
    assert b.status.tolist() == [0x40940480, 0x808C0000]
    assert b.source_ns.tolist() == [to_ns(src), NO_TIME]
    assert b.server_ns.tolist() == [NO_TIME, NO_TIME]
    assert b.flags.tolist() == [int(SampleFlags.REPLAYED), int(SampleFlags.NULL_VALUE)]
    assert to_ns(src) == 1767323045678901000


def test_latest_and_counts() -> None:
    c, idx = make()
    c.add(idx["d"], 1.0, 0, 10, 10)
    c.add(idx["d"], 2.0, 0x40900000, 20, 20)
    c.add(idx["s"], "x", 0, NO_TIME, 30)
    c.flush()  # flushing does not forget the live values
    latest = {e["name"]: e for e in c.latest()}
    assert latest["d"] == {"index": 0, "name": "d", "unit": "u", "source": "src", "data_type": "Double",
                           "value": 2.0, "status": 0x40900000, "source_ns": 20, "count": 2}
    assert latest["s"]["source_ns"] == 0  # no source timestamp
    assert latest["b"]["value"] is None and latest["b"]["status"] == BAD_WAITING_FOR_INITIAL_DATA
    assert c.counts().tolist() == [2, 0, 0, 0, 0, 0, 1, 0]


def test_same_as_last_and_backfill_keeps_live_view() -> None:
    c, idx = make()
    d, s, t = idx["d"], idx["s"], idx["t"]
    assert not c.same_as_last(d, 1.0, 0, 100)  # nothing yet
    c.add(d, 1.0, 0, 100, 101)
    assert c.same_as_last(d, 1.0, 0, 100)
    assert not c.same_as_last(d, 1.0, 0, 200)  # new source time: a new sample
    assert not c.same_as_last(d, 1.0, 0x40000000, 100)  # new status
    assert not c.same_as_last(d, 2.0, 0, 100)
    c.add(d, float("nan"), 0, 300, 301)
    assert c.same_as_last(d, float("nan"), 0, 300)  # NaN repeats NaN
    c.add(s, "AUTO", 0, 100, 100)
    assert c.same_as_last(s, "AUTO", 0, 100) and not c.same_as_last(s, "MAN", 0, 100)
    when = datetime(2026, 1, 2, tzinfo=timezone.utc)
    c.add(t, when, 0, 100, 100)
    assert c.same_as_last(t, when, 0, 100)
    # an older sample read back from history is kept but does not move the live view
    c.add(d, 0.5, 0, 50, 51, int(SampleFlags.BACKFILLED))
    live = {e["name"]: e for e in c.latest()}["d"]
    assert (live["source_ns"], live["count"]) == (300, 3) and c.last_source_ns(d) == 300
    batch = c.flush()
    assert len(batch) == 5 and batch.flags[-1] & SampleFlags.BACKFILLED
