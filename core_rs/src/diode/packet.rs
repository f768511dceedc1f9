//! Packet v1: one UDP datagram carrying one fragment of a frame.
//!
//! 0 magic "TG", 2 version u8 = 1, 3 type u8 (1 = FRAGMENT), 4 link_session u64,
//! 12 frame_seq u64, 20 frame_len u32, 24 frag_index u16, 26 frag_count u16,
//! 28.. fragment bytes. A frame is split evenly: fragment size
//! F = ceil(frame_len / frag_count), fragment i covers [i*F, min((i+1)*F, frame_len)),
//! so the receiver can check every fragment's offset and length from the
//! header alone. Issue 6 adds FEC and authentication as new packet types.

use std::ops::Range;

use thiserror::Error;

use crate::frame;

pub const MAGIC: [u8; 2] = *b"TG";
pub const VERSION: u8 = 1;
pub const TYPE_FRAGMENT: u8 = 1;
pub const HEADER_LEN: usize = 28;
/// IPv4 + UDP header bytes per datagram (what the MTU and the pacing count).
pub const IP_UDP_OVERHEAD: usize = 28;
/// Smallest MTU whose fragments can still carry a maximum-size frame in
/// 65535 fragments (and the IPv6 minimum).
pub const MIN_MTU: usize = 1280;
pub const MAX_MTU: usize = 65535;
pub const MAX_FRAME_LEN: usize = frame::MAX_FRAME;
pub const MIN_FRAME_LEN: usize = frame::HEADER_LEN;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PacketError {
    #[error("packet: {0} bytes, header needs {HEADER_LEN}")]
    TooShort(usize),
    #[error("packet: bad magic at offset 0 (got 0x{0:04x})")]
    BadMagic(u16),
    #[error("packet: unsupported version {0} at offset 2")]
    UnsupportedVersion(u8),
    #[error("packet: unknown type {0} at offset 3")]
    UnknownType(u8),
    #[error("packet: frame_len {0} at offset 20 outside [{MIN_FRAME_LEN}, {MAX_FRAME_LEN}]")]
    BadFrameLen(u32),
    #[error("packet: frag_count {count} at offset 26 inconsistent with frame_len {frame_len}")]
    BadFragCount { count: u16, frame_len: u32 },
    #[error("packet: frag_index {index} at offset 24 not below frag_count {count}")]
    BadIndex { index: u16, count: u16 },
    #[error("packet: fragment {index} carries {got} bytes, expected {expected}")]
    BadLength {
        index: u16,
        got: usize,
        expected: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader {
    pub link_session: u64,
    pub frame_seq: u64,
    pub frame_len: u32,
    pub frag_index: u16,
    pub frag_count: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    pub header: FragmentHeader,
    pub data: &'a [u8],
}

/// Fragment payload bytes available per datagram at this MTU.
pub fn max_fragment_data(mtu: usize) -> usize {
    mtu - IP_UDP_OVERHEAD - HEADER_LEN
}

pub fn check_mtu(mtu: usize) -> Result<(), String> {
    if (MIN_MTU..=MAX_MTU).contains(&mtu) {
        Ok(())
    } else {
        Err(format!("mtu {mtu} outside [{MIN_MTU}, {MAX_MTU}]"))
    }
}

/// Number of fragments for a frame (each at most `max_data` bytes).
pub fn frag_count_for(frame_len: usize, max_data: usize) -> usize {
    frame_len.div_ceil(max_data).max(1)
}

/// Byte range of fragment `index` within the frame (even split).
pub fn fragment_range(frame_len: usize, count: usize, index: usize) -> Range<usize> {
    let size = frame_len.div_ceil(count);
    let start = (index * size).min(frame_len);
    start..(start + size).min(frame_len)
}

/// Check a (frame_len, frag_count) pair: every fragment must be non-empty.
pub fn check_shape(frame_len: u32, count: u16) -> Result<(), PacketError> {
    let len = frame_len as usize;
    if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&len) {
        return Err(PacketError::BadFrameLen(frame_len));
    }
    let c = count as usize;
    if c == 0 || c > len || (c - 1) * len.div_ceil(c) >= len {
        return Err(PacketError::BadFragCount { count, frame_len });
    }
    Ok(())
}

pub fn write_header(h: &FragmentHeader, out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(TYPE_FRAGMENT);
    out.extend_from_slice(&h.link_session.to_le_bytes());
    out.extend_from_slice(&h.frame_seq.to_le_bytes());
    out.extend_from_slice(&h.frame_len.to_le_bytes());
    out.extend_from_slice(&h.frag_index.to_le_bytes());
    out.extend_from_slice(&h.frag_count.to_le_bytes());
}

pub fn parse(buf: &[u8]) -> Result<Fragment<'_>, PacketError> {
    if buf.len() < HEADER_LEN {
        return Err(PacketError::TooShort(buf.len()));
    }
    if buf[0..2] != MAGIC {
        return Err(PacketError::BadMagic(u16::from_be_bytes([buf[0], buf[1]])));
    }
    if buf[2] != VERSION {
        return Err(PacketError::UnsupportedVersion(buf[2]));
    }
    if buf[3] != TYPE_FRAGMENT {
        return Err(PacketError::UnknownType(buf[3]));
    }
    let u64_at = |o: usize| u64::from_le_bytes(buf[o..o + 8].try_into().expect("8 bytes"));
    let h = FragmentHeader {
        link_session: u64_at(4),
        frame_seq: u64_at(12),
        frame_len: u32::from_le_bytes(buf[20..24].try_into().expect("4 bytes")),
        frag_index: u16::from_le_bytes([buf[24], buf[25]]),
        frag_count: u16::from_le_bytes([buf[26], buf[27]]),
    };
    check_shape(h.frame_len, h.frag_count)?;
    if h.frag_index >= h.frag_count {
        return Err(PacketError::BadIndex {
            index: h.frag_index,
            count: h.frag_count,
        });
    }
    let data = &buf[HEADER_LEN..];
    let expected = fragment_range(
        h.frame_len as usize,
        h.frag_count as usize,
        h.frag_index as usize,
    )
    .len();
    if data.len() != expected {
        return Err(PacketError::BadLength {
            index: h.frag_index,
            got: data.len(),
            expected,
        });
    }
    Ok(Fragment { header: h, data })
}

/// Split a frame into packets, calling `emit` with each datagram (reusing one buffer).
pub fn packetize<E>(
    link_session: u64,
    frame_seq: u64,
    frame: &[u8],
    mtu: usize,
    buf: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let count = frag_count_for(frame.len(), max_fragment_data(mtu));
    debug_assert!(count <= u16::MAX as usize && frame.len() <= MAX_FRAME_LEN);
    for i in 0..count {
        buf.clear();
        write_header(
            &FragmentHeader {
                link_session,
                frame_seq,
                frame_len: frame.len() as u32,
                frag_index: i as u16,
                frag_count: count as u16,
            },
            buf,
        );
        buf.extend_from_slice(&frame[fragment_range(frame.len(), count, i)]);
        emit(buf)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    #[test]
    fn header_vector() {
        let mut out = Vec::new();
        write_header(
            &FragmentHeader {
                link_session: 0x1122_3344_5566_7788,
                frame_seq: 5,
                frame_len: 57,
                frag_index: 0,
                frag_count: 1,
            },
            &mut out,
        );
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "54470101887766554433221105000000000000003900000000000100"
        );
        crate::testutil::assert_in_docs(&hex);
    }

    #[test]
    fn split_and_parse_every_size() {
        let mtu = 1500;
        let mut rng = Rng::new(3);
        for len in (52..5000).chain([1444 * 3, 1444 * 3 + 1, 200_000]) {
            let frame = rng.bytes(len);
            let mut got = vec![0u8; len];
            let mut seen = 0;
            let mut buf = Vec::new();
            packetize::<()>(9, 1, &frame, mtu, &mut buf, |p| {
                assert!(p.len() <= mtu - IP_UDP_OVERHEAD);
                let f = parse(p).unwrap();
                let r = fragment_range(
                    len,
                    f.header.frag_count as usize,
                    f.header.frag_index as usize,
                );
                got[r].copy_from_slice(f.data);
                seen += 1;
                Ok(())
            })
            .unwrap();
            assert_eq!(seen, frag_count_for(len, max_fragment_data(mtu)));
            assert_eq!(got, frame);
        }
    }

    #[test]
    fn max_frame_fits_at_min_mtu() {
        let c = frag_count_for(MAX_FRAME_LEN, max_fragment_data(MIN_MTU));
        assert!(c <= u16::MAX as usize);
        check_shape(MAX_FRAME_LEN as u32, c as u16).unwrap();
    }

    #[test]
    fn shape_checks() {
        assert!(check_shape(51, 1).is_err());
        assert!(check_shape(MAX_FRAME_LEN as u32 + 1, 60000).is_err());
        assert!(check_shape(100, 0).is_err());
        assert!(check_shape(100, 101).is_err());
        // 9 bytes in 4 fragments: F = 3 leaves the 4th empty.
        assert!(check_shape(60, 4).is_ok());
        assert!(check_shape(60, 59).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng::new(11);
        for _ in 0..20000 {
            let n = rng.below(120) as usize;
            let mut b = rng.bytes(n);
            if n >= 4 && rng.chance(2) {
                b[..4].copy_from_slice(&[b'T', b'G', 1, 1]);
            }
            let _ = parse(&b);
        }
        assert_eq!(
            parse(b"XX").unwrap_err().to_string(),
            "packet: 2 bytes, header needs 28"
        );
        let mut b = vec![0u8; 40];
        b[0] = b'X';
        assert!(parse(&b)
            .unwrap_err()
            .to_string()
            .starts_with("packet: bad magic"));
    }
}
