"""edge._core codec v1 via numpy: exact round trips, extremes, clear errors."""

import numpy as np
import numpy.typing as npt
import pytest

from edge import _core

NAT = np.iinfo(np.int64).min

Cols = tuple[
    npt.NDArray[np.uint32],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.uint32],
    npt.NDArray[np.uint64],
    npt.NDArray[np.uint8],
]


def random_columns(rng: np.random.Generator, n: int) -> Cols:
    tag = rng.integers(0, 50, n, dtype=np.uint32)
    source = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(0, 10**9, n)).astype(np.int64)
    source[rng.random(n) < 0.05] = NAT
    server = source + rng.integers(0, 5_000_000, n)
    server[rng.random(n) < 0.05] = NAT
    status = np.where(rng.random(n) < 0.1, rng.integers(0, 2**32, n), 0).astype(np.uint32)
    values = rng.normal(20, 5, n).view(np.uint64).copy()
    values[rng.random(n) < 0.05] = np.iinfo(np.uint64).max
    flags = rng.integers(0, 4, n, dtype=np.uint8)
    return tag, source, server, status, values, flags


def by_tag(cols: Cols) -> list[np.ndarray]:
    order = np.argsort(cols[0], kind="stable")
    return [c[order] for c in cols]


def test_sorted_chunk_round_trips_exactly() -> None:
    tag = np.array([1, 1, 2, 9], dtype=np.uint32)
    source = np.array([10, 20, NAT, 2**63 - 1], dtype=np.int64)
    server = np.array([NAT, 21, 0, -1], dtype=np.int64)
    status = np.array([0, 0x80000000, 0, 2**32 - 1], dtype=np.uint32)
    values = np.array([1.5, np.nan, -0.0, np.inf]).view(np.uint64)
    flags = np.array([0, 1, 2, 255], dtype=np.uint8)
    payload = _core.encode_chunk(tag, source, server, status, values, flags, ["", "ünï", "x" * 1000])
    assert isinstance(payload, bytes) and payload[0] == 4  # codec v4
    out = _core.decode_chunk(payload)
    wants: list[np.ndarray] = [tag, source, server, status, values, flags]
    for i, want in enumerate(wants):
        got = out[i]
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert out[6] == ["", "ünï", "x" * 1000]


@pytest.mark.parametrize("seed", range(20))
def test_random_round_trip_groups_by_tag(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 5000))
    cols = random_columns(rng, n)
    out = _core.decode_chunk(_core.encode_chunk(*cols, []))
    for got, want in zip(out[:6], by_tag(cols)):
        np.testing.assert_array_equal(got, want)


def test_empty_and_strided_inputs() -> None:
    e32 = np.zeros(0, np.uint32)
    e64 = np.zeros(0, np.int64)
    out = _core.decode_chunk(
        _core.encode_chunk(e32, e64, e64, e32, np.zeros(0, np.uint64), np.zeros(0, np.uint8), [])
    )
    assert all(len(a) == 0 for a in out[:6]) and out[6] == []
    # Non-contiguous views are accepted.
    cols = random_columns(np.random.default_rng(1), 200)
    t, a, b, st, v, f = cols[0][::2], cols[1][::2], cols[2][::2], cols[3][::2], cols[4][::2], cols[5][::2]
    out = _core.decode_chunk(_core.encode_chunk(t, a, b, st, v, f, []))
    np.testing.assert_array_equal(out[4], by_tag((t, a, b, st, v, f))[4])


def test_compresses_regular_data() -> None:
    n_tags, steps = 20, 500
    tag = np.tile(np.arange(n_tags, dtype=np.uint32), steps)
    t = 1_700_000_000_000_000_000 + np.repeat(np.arange(steps, dtype=np.int64) * 10**9, n_tags)
    values = (20.0 + np.repeat(np.arange(steps) * 0.01, n_tags)).view(np.uint64)
    payload = _core.encode_chunk(
        tag, t, t + 1_000_000, np.zeros(tag.size, np.uint32), values, np.zeros(tag.size, np.uint8), []
    )
    assert len(payload) < tag.size * 8


def test_length_mismatch_names_column() -> None:
    t, a, b, st, v, f = random_columns(np.random.default_rng(2), 10)
    with pytest.raises(ValueError, match="status has 9 values, tag has 10"):
        _core.encode_chunk(t, a, b, st[:9], v, f, [])


def test_decode_errors_are_codec_errors() -> None:
    with pytest.raises(_core.CodecError, match="empty payload"):
        _core.decode_chunk(b"")
    with pytest.raises(_core.CodecError, match="unsupported codec version 7 at offset 0"):
        _core.decode_chunk(b"\x07abc")
    good = _core.encode_chunk(*random_columns(np.random.default_rng(3), 100), ["a"])
    with pytest.raises(_core.CodecError):
        _core.decode_chunk(good[:-3])


def test_garbage_never_crashes() -> None:
    rng = np.random.default_rng(4)
    good = _core.encode_chunk(*random_columns(rng, 300), ["s"])
    for _ in range(2000):
        b = bytearray(good)
        for i in rng.integers(0, len(b), int(rng.integers(1, 4))):
            b[i] = int(rng.integers(0, 256))
        try:
            _core.decode_chunk(bytes(b))
        except _core.CodecError:
            pass
    for _ in range(500):
        junk = bytes([1, int(rng.integers(0, 2))]) + rng.bytes(int(rng.integers(0, 100)))
        try:
            _core.decode_chunk(junk)
        except _core.CodecError:
            pass
