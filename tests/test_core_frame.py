"""edge._core frames: round trips, the fixed vector from docs/format.md, clear errors."""

import pytest

from edge import _core

VECTOR = bytes.fromhex(
    "54444746" "01" "01" "0000" "07000000" "0807060504030201" "2a00000000000000"
    "00002a36fe9c9717" "00cac471fe9c9717" "05000000" "e83ca5c5" "68656c6c6f"
)


def test_constants() -> None:
    assert _core.FORMAT_VERSION == 1
    assert _core.HEADER_LEN == 52
    kinds = [
        _core.FRAME_DATA,
        _core.FRAME_META,
        _core.FRAME_GAP,
        _core.FRAME_HEARTBEAT,
        _core.FRAME_MANIFEST,
        _core.FRAME_EVENT,
    ]
    assert kinds == [1, 2, 3, 4, 5, 6]
    assert issubclass(_core.FrameError, ValueError)
    assert issubclass(_core.CodecError, ValueError)
    assert issubclass(_core.SpoolError, OSError)


def test_fixed_vector() -> None:
    built = _core.build_frame(
        _core.FRAME_DATA, 7, 0x0102030405060708, 42,
        1_700_000_000_000_000_000, 1_700_000_001_000_000_000, b"hello",
    )
    assert built == VECTOR
    f = _core.parse_frame(VECTOR)
    assert (f.kind, f.version, f.site_id, f.session_id, f.seq) == (1, 1, 7, 0x0102030405060708, 42)
    assert (f.t_first_ns, f.t_last_ns) == (1_700_000_000_000_000_000, 1_700_000_001_000_000_000)
    assert f.payload == b"hello"
    assert "seq=42" in repr(f)


@pytest.mark.parametrize("kind", range(1, 7))
def test_round_trip_extremes(kind: int) -> None:
    payload = bytes(range(256)) * 40
    b = _core.build_frame(kind, 2**32 - 1, 2**64 - 1, 2**64 - 1, -(2**63), 2**63 - 1, payload)
    assert len(b) == _core.HEADER_LEN + len(payload)
    f = _core.parse_frame(b)
    assert f.kind == kind
    assert f.site_id == 2**32 - 1 and f.session_id == 2**64 - 1 and f.seq == 2**64 - 1
    assert f.t_first_ns == -(2**63) and f.t_last_ns == 2**63 - 1
    assert f.payload == payload


def test_frame_is_read_only() -> None:
    f = _core.parse_frame(VECTOR)
    with pytest.raises(AttributeError):
        setattr(f, "seq", 1)


def _err(data: bytes) -> str:
    with pytest.raises(_core.FrameError) as e:
        _core.parse_frame(data)
    return str(e.value)


def test_errors_name_field_and_offset() -> None:
    assert _err(b"XDGF" + VECTOR[4:]) == "frame: bad magic at offset 0 (got 0x58444746)"
    assert _err(VECTOR[:40]) == "frame: truncated: 40 bytes present, header needs 52"
    assert _err(VECTOR[:-1]) == "frame: truncated: header says 5 payload bytes, 4 present"
    assert _err(VECTOR[:4] + b"\x07" + VECTOR[5:]) == "frame: unsupported version 7 at offset 4"
    assert _err(VECTOR[:5] + b"\x09" + VECTOR[6:]) == "frame: unknown kind 9 at offset 5"
    corrupt = VECTOR[:-1] + b"O"
    assert _err(corrupt).startswith("frame: CRC32C mismatch (stored 0xc5a53ce8, computed 0x")
    assert _err(VECTOR + b"\0") == "frame: 1 trailing bytes after the frame end at offset 57"
    # FrameError is a ValueError, so generic handlers catch it too.
    with pytest.raises(ValueError):
        _core.parse_frame(b"")


def test_build_rejects_unknown_kind() -> None:
    with pytest.raises(_core.FrameError, match="unknown kind 9"):
        _core.build_frame(9, 0, 1, 0, 0, 0, b"")
