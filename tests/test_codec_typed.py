"""Codec v2 through the Python binding: type hints from the catalog, any value
round-trips, v1 payloads still decode."""

from __future__ import annotations

import numpy as np
import pytest

from edge import _core
from edge.frames import decode_data, encode_data
from edge.model import ColumnBatch, TagInfo, codec_kinds, encode_value

# docs/format.md, "Codec test vector" (v1, zstd): frozen, must keep decoding.
V1_ZSTD = bytes.fromhex(
    "010103014128b52ffd2041ad0100a4020201020201d00f00d00f02e0e0ff010a0001"
    "80808080080100010040000800f03f000101010001026f6b041000832f36be4109")

TYPES = ["Double", "Float", "Int32", "UInt64", "Boolean", "String", "DateTime", "Int64"]


def plant_batch(rng: np.random.Generator, secs: int) -> tuple[ColumnBatch, list[TagInfo]]:
    tags = [TagInfo(i, f"t{i}", f"ns=2;i={i}", "sim", TYPES[i % len(TYPES)]) for i in range(16)]
    strings: list[str] = []
    rows = []
    for s in range(secs):
        for t in tags:
            x = 20 + t.index + np.sin(s / 30 + t.index) * 5
            value = {"Double": round(x, 2), "Float": float(np.float32(round(x, 1))), "Int32": int(x * 10) - 300,
                     "UInt64": 2**63 + s, "Boolean": x > 20 + t.index, "String": f"mode {int(x) % 3}",
                     "DateTime": 1_700_000_000_000_000_000 + s, "Int64": -(2**63) + s}[t.data_type]
            rows.append((t.index, 1_700_000_000_000_000_000 + s * 10**9, encode_value(t.data_type, value, strings)))
    tag, src, bits = zip(*rows, strict=True)
    n = len(rows)
    src_a = np.array(src, np.int64)
    batch = ColumnBatch(np.array(tag, np.uint32), src_a, src_a + 10**6,
                        np.where(rng.random(n) < 0.01, 0x80000000, 0).astype(np.uint32),
                        np.array(bits, np.uint64), np.zeros(n, np.uint8), strings)
    return batch, tags


def sorted_by_tag(b: ColumnBatch) -> list[np.ndarray]:
    o = np.argsort(b.tag, kind="stable")
    return [b.tag[o], b.source_ns[o], b.server_ns[o], b.status[o], b.value_bits[o], b.flags[o]]


def test_typed_round_trip_and_size() -> None:
    batch, tags = plant_batch(np.random.default_rng(1), 120)
    kinds = codec_kinds(tags)
    typed = encode_data(batch, kinds)
    assert typed[0] == 4  # codec v4
    out = decode_data(typed)
    for a, b in zip(sorted_by_tag(batch), [out.tag, out.source_ns, out.server_ns, out.status, out.value_bits,
                                           out.flags], strict=True):
        np.testing.assert_array_equal(a, b)
    assert out.strings == batch.strings
    untyped = encode_data(batch)
    assert len(typed) < len(untyped)
    assert len(typed) / len(batch) < 2.0, f"{len(typed) / len(batch):.2f} bytes/sample"


def test_kinds_are_only_hints() -> None:
    batch, _ = plant_batch(np.random.default_rng(2), 20)
    for kinds in (np.zeros(3, np.uint8), np.full(40, 1, np.uint8), np.arange(40, dtype=np.uint8) % 9):
        out = decode_data(encode_data(batch, kinds))
        np.testing.assert_array_equal(sorted_by_tag(batch)[4], out.value_bits)
    with pytest.raises(TypeError):
        encode_data(batch, np.zeros(3, np.int64))


def test_v1_payload_still_decodes() -> None:
    out = decode_data(V1_ZSTD)
    assert out.tag.tolist() == [1, 1, 2]
    assert out.value_bits.view(np.float64).tolist() == [2.0, 3.0, 1.0]
    assert out.strings == ["ok"]


def test_corrupt_v2_is_a_clear_error() -> None:
    batch, tags = plant_batch(np.random.default_rng(3), 10)
    good = encode_data(batch, codec_kinds(tags))
    with pytest.raises(_core.CodecError, match="codec: "):
        decode_data(good[:-5])
    rng = np.random.default_rng(4)
    for _ in range(300):
        b = bytearray(good)
        b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
        try:
            decode_data(bytes(b))
        except _core.CodecError:
            pass
