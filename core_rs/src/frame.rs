//! Frame: the unit stored in the spool and carried over the diode.
//!
//! Layout (little-endian, 52-byte header, then payload); see docs/format.md.
//! The CRC32C covers header bytes [0..48) followed by the payload, so a frame
//! can be verified without knowing its kind.

use thiserror::Error;

pub const MAGIC: [u8; 4] = *b"TDGF";
pub const FORMAT_VERSION: u8 = 1;
pub const HEADER_LEN: usize = 52;
/// Largest payload a frame may carry; bounds every allocation driven by a header.
pub const MAX_PAYLOAD: usize = 64 << 20;
/// Largest whole frame (header + payload).
pub const MAX_FRAME: usize = HEADER_LEN + MAX_PAYLOAD;

const OFF_VERSION: usize = 4;
const OFF_KIND: usize = 5;
const OFF_FLAGS: usize = 6;
const OFF_PAYLOAD_LEN: usize = 44;
const OFF_CRC: usize = 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    Data = 1,
    Meta = 2,
    Gap = 3,
    Heartbeat = 4,
    Manifest = 5,
    Event = 6,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Data,
            2 => Kind::Meta,
            3 => Kind::Gap,
            4 => Kind::Heartbeat,
            5 => Kind::Manifest,
            6 => Kind::Event,
            _ => return None,
        })
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame: truncated: {got} bytes present, header needs {HEADER_LEN}")]
    TruncatedHeader { got: usize },
    #[error("frame: bad magic at offset 0 (got 0x{got})")]
    BadMagic { got: String },
    #[error("frame: unsupported version {0} at offset 4")]
    UnsupportedVersion(u8),
    #[error("frame: unknown kind {0} at offset 5")]
    UnknownKind(u8),
    #[error("frame: reserved flags 0x{0:04x} at offset 6 must be 0 in version 1")]
    BadFlags(u16),
    #[error("frame: payload_len {len} at offset 44 exceeds the maximum {MAX_PAYLOAD}")]
    PayloadTooLarge { len: usize },
    #[error("frame: truncated: header says {declared} payload bytes, {present} present")]
    TruncatedPayload { declared: usize, present: usize },
    #[error("frame: CRC32C mismatch (stored 0x{stored:08x}, computed 0x{computed:08x})")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("frame: {extra} trailing bytes after the frame end at offset {end}")]
    TrailingBytes { extra: usize, end: usize },
}

/// A parsed frame header (the fields a reader needs without copying the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub kind: Kind,
    pub site_id: u32,
    pub session_id: u64,
    pub seq: u64,
    pub t_first_ns: i64,
    pub t_last_ns: i64,
    pub payload_len: u32,
    pub crc: u32,
}

impl Header {
    /// Total frame length (header + payload).
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.payload_len as usize
    }
}

/// A verified frame borrowing its payload from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    pub header: Header,
    pub payload: &'a [u8],
}

/// The fields a writer chooses; `build` computes length and CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpec {
    pub kind: Kind,
    pub site_id: u32,
    pub session_id: u64,
    pub seq: u64,
    pub t_first_ns: i64,
    pub t_last_ns: i64,
}

/// Append one encoded frame to `out`.
pub fn build_into(spec: &FrameSpec, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(FrameError::PayloadTooLarge { len: payload.len() });
    }
    let start = out.len();
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    out.push(spec.kind as u8);
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&spec.site_id.to_le_bytes());
    out.extend_from_slice(&spec.session_id.to_le_bytes());
    out.extend_from_slice(&spec.seq.to_le_bytes());
    out.extend_from_slice(&spec.t_first_ns.to_le_bytes());
    out.extend_from_slice(&spec.t_last_ns.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[start..start + OFF_CRC]), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Encode one frame into a new buffer.
pub fn build(spec: &FrameSpec, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    build_into(spec, payload, &mut out)?;
    Ok(out)
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// Parse and sanity-check the 52-byte header at the start of `data` (no CRC check:
/// the CRC covers the payload too).
pub fn parse_header(data: &[u8]) -> Result<Header, FrameError> {
    let magic_len = data.len().min(4);
    if data[..magic_len] != MAGIC[..magic_len] {
        let got: String = data[..magic_len]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        return Err(FrameError::BadMagic { got });
    }
    if data.len() < HEADER_LEN {
        return Err(FrameError::TruncatedHeader { got: data.len() });
    }
    let version = data[OFF_VERSION];
    if version != FORMAT_VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    let kind = Kind::from_u8(data[OFF_KIND]).ok_or(FrameError::UnknownKind(data[OFF_KIND]))?;
    let flags = u16_at(data, OFF_FLAGS);
    if flags != 0 {
        return Err(FrameError::BadFlags(flags));
    }
    let payload_len = u32_at(data, OFF_PAYLOAD_LEN);
    if payload_len as usize > MAX_PAYLOAD {
        return Err(FrameError::PayloadTooLarge {
            len: payload_len as usize,
        });
    }
    Ok(Header {
        version,
        kind,
        site_id: u32_at(data, 8),
        session_id: u64_at(data, 12),
        seq: u64_at(data, 20),
        t_first_ns: u64_at(data, 28) as i64,
        t_last_ns: u64_at(data, 36) as i64,
        payload_len,
        crc: u32_at(data, OFF_CRC),
    })
}

/// Parse and verify the frame starting at `data[0]`; bytes after it are ignored.
/// Returns the frame and its total length (what a log scanner needs).
pub fn parse_prefix(data: &[u8]) -> Result<(FrameRef<'_>, usize), FrameError> {
    let header = parse_header(data)?;
    let len = header.frame_len();
    if data.len() < len {
        return Err(FrameError::TruncatedPayload {
            declared: header.payload_len as usize,
            present: data.len() - HEADER_LEN,
        });
    }
    let payload = &data[HEADER_LEN..len];
    let computed = crc32c::crc32c_append(crc32c::crc32c(&data[..OFF_CRC]), payload);
    if computed != header.crc {
        return Err(FrameError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok((FrameRef { header, payload }, len))
}

/// Parse and verify exactly one frame; trailing bytes are an error.
pub fn parse(data: &[u8]) -> Result<FrameRef<'_>, FrameError> {
    let (frame, len) = parse_prefix(data)?;
    if len != data.len() {
        return Err(FrameError::TrailingBytes {
            extra: data.len() - len,
            end: len,
        });
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FrameSpec {
        FrameSpec {
            kind: Kind::Data,
            site_id: 7,
            session_id: 0x0102_0304_0506_0708,
            seq: 42,
            t_first_ns: 1_700_000_000_000_000_000,
            t_last_ns: 1_700_000_001_000_000_000,
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The vector printed in docs/format.md; if this changes, the format changed.
    pub const VECTOR_HEX: &str = concat!(
        "54444746",
        "01",
        "01",
        "0000",
        "07000000",
        "0807060504030201",
        "2a00000000000000",
        "00002a36fe9c9717",
        "00cac471fe9c9717",
        "05000000",
        "e83ca5c5",
        "68656c6c6f",
    );

    #[test]
    fn fixed_vector() {
        let f = build(&spec(), b"hello").unwrap();
        assert_eq!(f.len(), HEADER_LEN + 5);
        assert_eq!(hex(&f), VECTOR_HEX);
        crate::testutil::assert_in_docs(VECTOR_HEX);
        let p = parse(&f).unwrap();
        assert_eq!(p.payload, b"hello");
        assert_eq!(p.header.seq, 42);
        assert_eq!(p.header.kind, Kind::Data);
    }

    #[test]
    fn empty_payload_vector() {
        let mut s = spec();
        s.kind = Kind::Heartbeat;
        s.t_first_ns = i64::MIN;
        s.t_last_ns = -1;
        let f = build(&s, b"").unwrap();
        let want = concat!(
            "54444746",
            "01",
            "04",
            "0000",
            "07000000",
            "0807060504030201",
            "2a00000000000000",
            "0000000000000080",
            "ffffffffffffffff",
            "00000000",
            "06336327",
        );
        assert_eq!(hex(&f), want);
        crate::testutil::assert_in_docs(want);
    }

    #[test]
    fn round_trip_all_kinds() {
        for k in 1..=6u8 {
            let mut s = spec();
            s.kind = Kind::from_u8(k).unwrap();
            s.seq = u64::MAX - k as u64;
            let payload: Vec<u8> = (0..300u32).map(|i| (i * k as u32) as u8).collect();
            let f = build(&s, &payload).unwrap();
            let p = parse(&f).unwrap();
            assert_eq!(p.header.kind as u8, k);
            assert_eq!(p.header.seq, s.seq);
            assert_eq!(p.header.site_id, 7);
            assert_eq!(p.header.session_id, s.session_id);
            assert_eq!(p.header.t_first_ns, s.t_first_ns);
            assert_eq!(p.header.t_last_ns, s.t_last_ns);
            assert_eq!(p.payload, &payload[..]);
        }
    }

    fn err(data: &[u8]) -> String {
        parse(data).unwrap_err().to_string()
    }

    #[test]
    fn every_error() {
        let good = build(&spec(), b"hello").unwrap();

        let mut b = good.clone();
        b[0] = b'X';
        assert_eq!(err(&b), "frame: bad magic at offset 0 (got 0x58444746)");
        assert_eq!(
            err(b"TD"),
            "frame: truncated: 2 bytes present, header needs 52"
        );
        assert_eq!(
            err(b""),
            "frame: truncated: 0 bytes present, header needs 52"
        );
        assert_eq!(
            err(&good[..40]),
            "frame: truncated: 40 bytes present, header needs 52"
        );

        let mut b = good.clone();
        b[4] = 7;
        assert_eq!(err(&b), "frame: unsupported version 7 at offset 4");
        let mut b = good.clone();
        b[5] = 9;
        assert_eq!(err(&b), "frame: unknown kind 9 at offset 5");
        let mut b = good.clone();
        b[5] = 0;
        assert_eq!(err(&b), "frame: unknown kind 0 at offset 5");
        let mut b = good.clone();
        b[6] = 1;
        assert_eq!(
            err(&b),
            "frame: reserved flags 0x0001 at offset 6 must be 0 in version 1"
        );

        let mut b = good.clone();
        b[44..48].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
        assert!(err(&b).starts_with("frame: payload_len 67108865 at offset 44 exceeds"));

        let mut b = good.clone();
        b[44..48].copy_from_slice(&1234u32.to_le_bytes());
        assert_eq!(
            err(&b),
            "frame: truncated: header says 1234 payload bytes, 5 present"
        );
        assert_eq!(
            err(&good[..54]),
            "frame: truncated: header says 5 payload bytes, 2 present"
        );

        let mut b = good.clone();
        b[HEADER_LEN] ^= 1;
        let e = err(&b);
        assert!(
            e.starts_with("frame: CRC32C mismatch (stored 0xc5a53ce8, computed 0x"),
            "{e}"
        );
        let mut b = good.clone();
        b[20] ^= 0x80; // seq is covered by the CRC too
        assert!(err(&b).starts_with("frame: CRC32C mismatch"));

        let mut b = good.clone();
        b.extend_from_slice(b"xyz");
        assert_eq!(
            err(&b),
            "frame: 3 trailing bytes after the frame end at offset 57"
        );
        // ...but the prefix parser accepts it and reports the length.
        assert_eq!(parse_prefix(&b).unwrap().1, 57);
    }

    #[test]
    fn payload_too_large_to_build() {
        let big = vec![0u8; MAX_PAYLOAD + 1];
        assert!(matches!(
            build(&spec(), &big),
            Err(FrameError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn every_single_byte_corruption_is_caught() {
        let good = build(&spec(), b"some payload").unwrap();
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut b = good.clone();
                b[i] ^= 1 << bit;
                assert!(parse(&b).is_err(), "flip byte {i} bit {bit} not detected");
            }
        }
    }
}
