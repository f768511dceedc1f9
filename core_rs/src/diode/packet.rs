//! Packet v2: one UDP datagram, authenticated by a truncated keyed BLAKE3 tag.
//!
//! Common prefix: 0 magic "TG", 2 version u8 = 2, 3 type u8, 4 link_session u64.
//! The last 8 bytes of every packet are the tag over all bytes before it.
//!
//! SYMBOL (type 1): 12 first_seq u64, 20 object_len u32, 24 symbol_size u16,
//! 26 block u16, 28 esi u16, 30 repair u16, 32 frame_count u16,
//! 34 reserved u16 = 0, 36 symbol bytes, tag. The object is `frame_count`
//! consecutive frames (seqs first_seq..) followed by their 16-byte tag.
//! HEARTBEAT (type 2) and MANIFEST (type 3): see `Control`.
//! Packets are never persisted, so v1 decoding was dropped (docs/format.md).

use thiserror::Error;

use super::auth::{tags_equal, LinkKeys, FRAME_TAG_LEN, PACKET_TAG_LEN};
use super::fec::{Layout, MAX_REPAIR};
use crate::frame;

pub const MAGIC: [u8; 2] = *b"TG";
pub const VERSION: u8 = 2;
pub const TYPE_SYMBOL: u8 = 1;
pub const TYPE_HEARTBEAT: u8 = 2;
pub const TYPE_MANIFEST: u8 = 3;
pub const SYMBOL_HEADER_LEN: usize = 36;
/// Header plus tag: the per-packet overhead inside the UDP payload.
pub const SYMBOL_OVERHEAD: usize = SYMBOL_HEADER_LEN + PACKET_TAG_LEN;
/// IPv4 + UDP header bytes per datagram (what the MTU and the pacing count).
pub const IP_UDP_OVERHEAD: usize = 28;
pub const MIN_MTU: usize = 1280;
pub const MAX_MTU: usize = 65535;
/// An object holds at least one frame header; plus the tag.
pub const MIN_OBJECT_LEN: usize = frame::HEADER_LEN + FRAME_TAG_LEN;
/// A large frame travels alone; small ones are grouped up to about 1.4 MiB.
pub const MAX_OBJECT_LEN: usize = frame::MAX_FRAME + FRAME_TAG_LEN;
pub const HEARTBEAT_LEN: usize = 96;
pub const MANIFEST_HEADER_LEN: usize = 42;
pub const MAX_MANIFEST_RANGES: usize = 64;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PacketError {
    #[error("packet: {0} bytes, too short")]
    TooShort(usize),
    #[error("packet: bad magic at offset 0 (got 0x{0:04x})")]
    BadMagic(u16),
    #[error("packet: unsupported version {0} at offset 2")]
    UnsupportedVersion(u8),
    #[error("packet: unknown type {0} at offset 3")]
    UnknownType(u8),
    #[error("packet: tag mismatch (forged, corrupted or another key)")]
    BadTag,
    #[error("packet: {0}")]
    BadShape(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymbolHeader {
    pub link_session: u64,
    pub first_seq: u64,
    pub object_len: u32,
    pub symbol_size: u16,
    pub block: u16,
    pub esi: u16,
    pub repair: u16,
    pub frame_count: u16,
}

/// Sender health, every second; MANIFEST adds the recently sent seq ranges.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Control {
    pub link_session: u64,
    /// Per session, increasing: a replayed control packet is ignored.
    pub counter: u64,
    pub time_ns: i64,
    pub site_id: u32,
    /// Every frame below this seq has been sent at least once.
    pub sent_below: u64,
    /// No frame below this seq will be sent again (no carousel pass pending).
    pub final_below: u64,
    pub durable: u64,
    pub frames_sent: u64,
    pub packets_sent: u64,
    pub send_errors: u64,
    pub rate_bps: u64,
    /// MANIFEST only: [first, end) ranges sent in the last 15 minutes.
    pub ranges: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Symbol(SymbolHeader, &'a [u8]),
    Heartbeat(Control),
    Manifest(Control),
}

/// Symbol bytes per packet at this MTU (even, 8-aligned).
pub fn symbol_size(mtu: usize) -> usize {
    (mtu - IP_UDP_OVERHEAD - SYMBOL_OVERHEAD) / 8 * 8
}

pub fn check_mtu(mtu: usize) -> Result<(), String> {
    if (MIN_MTU..=MAX_MTU).contains(&mtu) {
        Ok(())
    } else {
        Err(format!("mtu {mtu} outside [{MIN_MTU}, {MAX_MTU}]"))
    }
}

fn prefix(out: &mut Vec<u8>, ty: u8, link_session: u64) {
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(ty);
    out.extend_from_slice(&link_session.to_le_bytes());
}

fn seal(out: &mut Vec<u8>, keys: &LinkKeys) {
    let tag = keys.packet_tag(&[out]);
    out.extend_from_slice(&tag);
}

pub fn write_symbol(h: &SymbolHeader, data: &[u8], keys: &LinkKeys, out: &mut Vec<u8>) {
    out.clear();
    prefix(out, TYPE_SYMBOL, h.link_session);
    out.extend_from_slice(&h.first_seq.to_le_bytes());
    out.extend_from_slice(&h.object_len.to_le_bytes());
    out.extend_from_slice(&h.symbol_size.to_le_bytes());
    out.extend_from_slice(&h.block.to_le_bytes());
    out.extend_from_slice(&h.esi.to_le_bytes());
    out.extend_from_slice(&h.repair.to_le_bytes());
    out.extend_from_slice(&h.frame_count.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(data);
    seal(out, keys);
}

pub fn write_control(c: &Control, manifest: bool, keys: &LinkKeys, out: &mut Vec<u8>) {
    out.clear();
    prefix(
        out,
        if manifest {
            TYPE_MANIFEST
        } else {
            TYPE_HEARTBEAT
        },
        c.link_session,
    );
    out.extend_from_slice(&c.counter.to_le_bytes());
    out.extend_from_slice(&c.time_ns.to_le_bytes());
    out.extend_from_slice(&c.site_id.to_le_bytes());
    out.extend_from_slice(&c.sent_below.to_le_bytes());
    out.extend_from_slice(&c.final_below.to_le_bytes());
    if manifest {
        let n = c.ranges.len().min(MAX_MANIFEST_RANGES);
        out.extend_from_slice(&(n as u16).to_le_bytes());
        for (a, b) in &c.ranges[c.ranges.len() - n..] {
            out.extend_from_slice(&a.to_le_bytes());
            out.extend_from_slice(&b.to_le_bytes());
        }
    } else {
        for v in [
            c.durable,
            c.frames_sent,
            c.packets_sent,
            c.send_errors,
            c.rate_bps,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    seal(out, keys);
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}
fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

/// Check the prefix and the tag, then the type's shape. Never panics.
pub fn parse<'a>(buf: &'a [u8], keys: &LinkKeys) -> Result<Packet<'a>, PacketError> {
    if buf.len() < 12 + PACKET_TAG_LEN {
        return Err(PacketError::TooShort(buf.len()));
    }
    if buf[0..2] != MAGIC {
        return Err(PacketError::BadMagic(u16::from_be_bytes([buf[0], buf[1]])));
    }
    if buf[2] != VERSION {
        return Err(PacketError::UnsupportedVersion(buf[2]));
    }
    let ty = buf[3];
    if !(TYPE_SYMBOL..=TYPE_MANIFEST).contains(&ty) {
        return Err(PacketError::UnknownType(ty));
    }
    let (body, tag) = buf.split_at(buf.len() - PACKET_TAG_LEN);
    if !tags_equal(&keys.packet_tag(&[body]), tag) {
        return Err(PacketError::BadTag);
    }
    let bad = |m: String| Err(PacketError::BadShape(m));
    let link_session = u64_at(body, 4);
    match ty {
        TYPE_SYMBOL => {
            if body.len() < SYMBOL_HEADER_LEN + 2 {
                return Err(PacketError::TooShort(buf.len()));
            }
            let h = SymbolHeader {
                link_session,
                first_seq: u64_at(body, 12),
                object_len: u32::from_le_bytes(body[20..24].try_into().expect("4 bytes")),
                symbol_size: u16_at(body, 24),
                block: u16_at(body, 26),
                esi: u16_at(body, 28),
                repair: u16_at(body, 30),
                frame_count: u16_at(body, 32),
            };
            if u16_at(body, 34) != 0 {
                return bad("reserved field at offset 34 must be 0".into());
            }
            let data = &body[SYMBOL_HEADER_LEN..];
            let len = h.object_len as usize;
            let n = h.frame_count as usize;
            if n == 0 || !(n * frame::HEADER_LEN + FRAME_TAG_LEN..=MAX_OBJECT_LEN).contains(&len) {
                return bad(format!(
                    "object_len {len} at offset 20 for {n} frames out of range"
                ));
            }
            let s = h.symbol_size as usize;
            if s == 0 || s % 2 != 0 || data.len() != s {
                return bad(format!(
                    "symbol_size {s} at offset 24 vs {} data bytes",
                    data.len()
                ));
            }
            if h.repair as usize > MAX_REPAIR {
                return bad(format!(
                    "repair {} at offset 30 above {MAX_REPAIR}",
                    h.repair
                ));
            }
            let l = Layout::new(len, s);
            if h.block as usize >= l.blocks {
                return bad(format!("block {} at offset 26 of {}", h.block, l.blocks));
            }
            let (_, k) = l.block(h.block as usize);
            if h.esi as usize >= k + h.repair as usize {
                return bad(format!(
                    "esi {} at offset 28 not below K {k} + repair {}",
                    h.esi, h.repair
                ));
            }
            Ok(Packet::Symbol(h, data))
        }
        _ => {
            let mut c = Control {
                link_session,
                ..Control::default()
            };
            let manifest = ty == TYPE_MANIFEST;
            let need = if manifest {
                MANIFEST_HEADER_LEN
            } else {
                HEARTBEAT_LEN - PACKET_TAG_LEN
            };
            if body.len() < need {
                return Err(PacketError::TooShort(buf.len()));
            }
            c.counter = u64_at(body, 12);
            c.time_ns = u64_at(body, 20) as i64;
            c.site_id = u32::from_le_bytes(body[28..32].try_into().expect("4 bytes"));
            c.sent_below = u64_at(body, 32);
            c.final_below = u64_at(body, 40);
            if manifest {
                let n = u16_at(body, 48) as usize;
                if n > MAX_MANIFEST_RANGES || body.len() != 50 + 16 * n {
                    return bad(format!("manifest of {n} ranges in {} bytes", body.len()));
                }
                for i in 0..n {
                    let (a, b) = (u64_at(body, 50 + 16 * i), u64_at(body, 58 + 16 * i));
                    if a >= b {
                        return bad(format!("manifest range {i} is empty or reversed"));
                    }
                    c.ranges.push((a, b));
                }
                Ok(Packet::Manifest(c))
            } else {
                if body.len() != need {
                    return bad(format!("heartbeat of {} bytes", buf.len()));
                }
                c.durable = u64_at(body, 48);
                c.frames_sent = u64_at(body, 56);
                c.packets_sent = u64_at(body, 64);
                c.send_errors = u64_at(body, 72);
                c.rate_bps = u64_at(body, 80);
                Ok(Packet::Heartbeat(c))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn symbol_vector() {
        let keys = LinkKeys::from_master(&[0x42; 32]);
        let h = SymbolHeader {
            link_session: 0x1122_3344_5566_7788,
            first_seq: 5,
            object_len: 73,
            symbol_size: 8,
            block: 0,
            esi: 3,
            repair: 1,
            frame_count: 1,
        };
        let mut out = Vec::new();
        write_symbol(&h, b"abcdefgh", &keys, &mut out);
        crate::testutil::assert_in_docs(&hex(&out));
        assert_eq!(parse(&out, &keys), Ok(Packet::Symbol(h, b"abcdefgh")));
        assert_eq!(symbol_size(1500), 1424);
    }

    #[test]
    fn control_roundtrip() {
        let keys = LinkKeys::unauthenticated();
        let mut c = Control {
            link_session: 9,
            counter: 3,
            time_ns: -5,
            site_id: 7,
            sent_below: 100,
            final_below: 90,
            durable: 120,
            frames_sent: 1,
            packets_sent: 2,
            send_errors: 3,
            rate_bps: 4,
            ranges: vec![],
        };
        let mut out = Vec::new();
        write_control(&c, false, &keys, &mut out);
        assert_eq!(out.len(), HEARTBEAT_LEN);
        assert_eq!(parse(&out, &keys), Ok(Packet::Heartbeat(c.clone())));
        c.ranges = vec![(0, 10), (20, 100)];
        write_control(&c, true, &keys, &mut out);
        let Ok(Packet::Manifest(m)) = parse(&out, &keys) else {
            panic!()
        };
        assert_eq!((m.ranges, m.final_below), (c.ranges, 90));
    }

    #[test]
    fn forged_corrupt_and_garbage_are_refused() {
        let keys = LinkKeys::from_master(&[1; 32]);
        let other = LinkKeys::from_master(&[2; 32]);
        let h = SymbolHeader {
            link_session: 1,
            first_seq: 2,
            object_len: 2000,
            symbol_size: 1424,
            block: 0,
            esi: 1,
            repair: 1,
            frame_count: 1,
        };
        let mut p = Vec::new();
        write_symbol(&h, &[7u8; 1424], &keys, &mut p);
        assert!(parse(&p, &keys).is_ok());
        assert_eq!(parse(&p, &other), Err(PacketError::BadTag));
        let mut rng = Rng::new(1);
        for _ in 0..2000 {
            let mut q = p.clone();
            let i = rng.below(q.len() as u64) as usize;
            q[i] ^= 1 << rng.below(8);
            assert!(parse(&q, &keys).is_err(), "bit flip at {i} accepted");
        }
        for _ in 0..20000 {
            let n = rng.below(1600) as usize;
            let mut b = rng.bytes(n);
            if n >= 4 && rng.chance(2) {
                b[..4].copy_from_slice(&[b'T', b'G', 2, 1 + rng.below(3) as u8]);
            }
            assert!(parse(&b, &keys).is_err());
        }
        // Well-tagged but ill-shaped packets (a sender bug or a key leak) are refused too.
        for (object_len, s, block, esi, repair, frame_count) in [
            (10u32, 8u16, 0u16, 0u16, 0u16, 1u16),
            (2000, 7, 0, 0, 0, 1),
            (2000, 8, 9, 0, 0, 1),
            (80, 8, 0, 11, 1, 1),
            (80, 8, 0, 0, 1, 2),
            (80, 8, 0, 0, 1, 0),
        ] {
            let h = SymbolHeader {
                link_session: 1,
                first_seq: 1,
                object_len,
                symbol_size: s,
                block,
                esi,
                repair,
                frame_count,
            };
            write_symbol(&h, &vec![0u8; s as usize], &keys, &mut p);
            assert!(
                matches!(parse(&p, &keys), Err(PacketError::BadShape(_))),
                "{h:?}"
            );
        }
    }
}
