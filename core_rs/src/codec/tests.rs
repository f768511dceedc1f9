//! Codec v1: the layout stays readable (and its encoder testable) forever.
use super::v1::encode;
use super::*;
use crate::testutil::Rng;

fn round_trip(c: &Chunk) -> Vec<u8> {
    let enc = encode(&c.columns()).unwrap();
    let dec = decode(&enc).unwrap_or_else(|e| panic!("decode failed: {e}"));
    assert_eq!(dec, canonical(&c.columns()).unwrap());
    enc
}

fn extreme_i64(r: &mut Rng) -> i64 {
    match r.below(8) {
        0 => i64::MIN, // NaT
        1 => i64::MAX,
        2 => 0,
        3 => -1,
        4 => r.u64() as i64,
        _ => 1_700_000_000_000_000_000 + r.below(1_000_000_000_000) as i64,
    }
}

pub(super) fn random_chunk(r: &mut Rng, n: usize) -> Chunk {
    let n_tags = 1 + r.below(20) as u32;
    let mut c = Chunk::with_capacity(n);
    let mut t = 1_700_000_000_000_000_000i64;
    for _ in 0..n {
        let tag = match r.below(10) {
            0 => u32::MAX - r.below(3) as u32,
            _ => r.below(n_tags as u64) as u32,
        };
        c.tag.push(tag);
        t = t.wrapping_add(r.below(2_000_000_000) as i64);
        let src = if r.chance(5) { extreme_i64(r) } else { t };
        c.source_ns.push(src);
        c.server_ns.push(if r.chance(5) {
            extreme_i64(r)
        } else {
            src.wrapping_add(r.below(5_000_000) as i64)
        });
        c.status.push(if r.chance(4) { r.u64() as u32 } else { 0 });
        c.value_bits.push(match r.below(4) {
            0 => r.u64(),
            1 => (r.below(1000) as f64 * 0.25).to_bits(),
            2 => f64::NAN.to_bits(),
            _ => u64::MAX,
        });
        c.flags.push(if r.chance(3) { r.u64() as u8 } else { 0 });
    }
    for _ in 0..r.below(4) {
        let len = r.below(20) as usize;
        c.strings.push(
            (0..len)
                .map(|i| ['a', 'ß', '€', '😀', '\0'][(i + len) % 5])
                .collect(),
        );
    }
    c
}

#[test]
fn empty_chunk() {
    let c = Chunk::default();
    let enc = round_trip(&c);
    assert_eq!(enc[0], 1);
}

#[test]
fn sorted_input_is_kept_exactly() {
    let c = Chunk {
        tag: vec![1, 1, 2, 7],
        source_ns: vec![10, 20, 5, i64::MIN],
        server_ns: vec![11, i64::MIN, i64::MAX, 0],
        status: vec![0, 0, 0x8000_0000, 0],
        value_bits: vec![1.5f64.to_bits(), 2.5f64.to_bits(), u64::MAX, 0],
        flags: vec![0, 1, 1, 255],
        strings: vec!["".into(), "héllo".into()],
    };
    round_trip(&c);
    let dec = decode(&encode(&c.columns()).unwrap()).unwrap();
    assert_eq!(dec, c);
}

#[test]
fn order_within_tag_kept_across_tags_grouped() {
    let c = Chunk {
        tag: vec![5, 3, 5, 3, 1],
        source_ns: vec![1, 2, 3, 4, 5],
        server_ns: vec![1, 2, 3, 4, 5],
        status: vec![0; 5],
        value_bits: vec![10, 20, 30, 40, 50],
        flags: vec![0; 5],
        strings: vec![],
    };
    let dec = decode(&encode(&c.columns()).unwrap()).unwrap();
    assert_eq!(dec.tag, vec![1, 3, 3, 5, 5]);
    assert_eq!(dec.value_bits, vec![50, 20, 40, 10, 30]);
    assert_eq!(dec.source_ns, vec![5, 2, 4, 1, 3]);
}

#[test]
fn randomized_round_trips() {
    let mut r = Rng::new(0x7de9_a7e5);
    for case in 0..400 {
        let n = match case % 4 {
            0 => r.below(4) as usize,
            1 => r.below(100) as usize,
            _ => r.below(3000) as usize,
        };
        round_trip(&random_chunk(&mut r, n));
    }
}

#[test]
fn all_extremes_round_trip() {
    let vals = [i64::MIN, i64::MAX, 0, -1, 1, i64::MIN + 1];
    let mut c = Chunk::default();
    for &a in &vals {
        for &b in &vals {
            c.tag.push(0);
            c.source_ns.push(a);
            c.server_ns.push(b);
            c.status.push(u32::MAX);
            c.value_bits.push(a as u64);
            c.flags.push(u8::MAX);
        }
    }
    let dec = decode(&encode(&c.columns()).unwrap()).unwrap();
    assert_eq!(dec, c);
}

#[test]
fn regular_data_compresses() {
    // 10 tags sampled each second for 100 s, slowly varying floats.
    let mut c = Chunk::default();
    for s in 0..100i64 {
        for tag in 0..10u32 {
            c.tag.push(tag);
            let t = 1_700_000_000_000_000_000 + s * 1_000_000_000;
            c.source_ns.push(t);
            c.server_ns.push(t + 1_000_000);
            c.status.push(0);
            c.value_bits
                .push((20.0 + tag as f64 + (s as f64) * 0.01).to_bits());
            c.flags.push(0);
        }
    }
    let enc = round_trip(&c);
    assert!(
        enc.len() < c.len() * 8,
        "{} bytes for {} samples",
        enc.len(),
        c.len()
    );
}

#[test]
fn length_mismatch_names_the_column() {
    let mut c = random_chunk(&mut Rng::new(1), 10);
    c.flags.pop();
    let e = encode(&c.columns()).unwrap_err().to_string();
    assert_eq!(e, "codec: column flags has 9 values, tag has 10");
}

#[test]
fn header_errors() {
    assert_eq!(decode(b"").unwrap_err(), CodecError::Empty);
    assert_eq!(
        decode(&[9]).unwrap_err().to_string(),
        "codec: unsupported codec version 9 at offset 0"
    );
    assert_eq!(
        decode(&[1, 7, 0, 0, 0]).unwrap_err().to_string(),
        "codec: unknown compression 7 at offset 1"
    );
    assert_eq!(
        decode(&[1]).unwrap_err().to_string(),
        "codec: truncated while reading compression at offset 1"
    );
    // raw_len beyond the cap is refused before any allocation.
    let mut p = vec![1, 1, 0, 0];
    varint::put_u64(&mut p, (MAX_RAW_LEN + 1) as u64);
    assert!(decode(&p).unwrap_err().to_string().contains("raw_len"));
    // Huge n_samples against a tiny block.
    let mut p = vec![1, 0];
    varint::put_u64(&mut p, 1_000_000);
    p.extend_from_slice(&[0, 1, 0]);
    assert!(
        decode(&p).unwrap_err().to_string().contains("n_samples"),
        "{:?}",
        decode(&p)
    );
}

#[test]
fn zstd_bomb_is_bounded() {
    // A block of zeros that claims to be small: decoding must stop at raw_len + 1.
    let zeros = vec![0u8; 10 << 20];
    let z = zstd::bulk::compress(&zeros, 3).unwrap();
    let mut p = vec![1, 1, 0, 0];
    varint::put_u64(&mut p, 100);
    p.extend_from_slice(&z);
    let e = decode(&p).unwrap_err();
    assert_eq!(
        e,
        CodecError::RawLenMismatch {
            declared: 100,
            got: 101
        }
    );
}

#[test]
fn garbage_never_panics() {
    let mut r = Rng::new(99);
    for _ in 0..3000 {
        let n = r.below(200) as usize;
        let mut b = r.bytes(n);
        if !b.is_empty() && r.chance(2) {
            b[0] = 1;
        }
        if b.len() > 1 && r.chance(2) {
            b[1] = r.below(2) as u8;
        }
        let _ = decode(&b);
    }
}

#[test]
fn truncated_and_mutated_never_panic() {
    let mut r = Rng::new(4242);
    for _ in 0..60 {
        let n = r.below(300) as usize;
        let c = random_chunk(&mut r, n);
        let enc = encode(&c.columns()).unwrap();
        for cut in 0..enc.len().min(64) {
            assert!(decode(&enc[..cut]).is_err());
        }
        for _ in 0..40 {
            let mut m = enc.clone();
            let i = r.below(m.len() as u64) as usize;
            m[i] ^= 1 << r.below(8);
            let _ = decode(&m);
        }
    }
    // Mutations of an uncompressed block reach every column parser.
    let c = random_chunk(&mut Rng::new(5), 40);
    let mut enc = encode(&c.columns()).unwrap();
    if enc[1] == v1::COMPRESSION_ZSTD {
        let d = decode(&enc).unwrap();
        let mut raw_prefix = vec![1u8, 0];
        varint::put_u64(&mut raw_prefix, d.len() as u64);
        varint::put_u64(&mut raw_prefix, d.strings.len() as u64);
        let mut rr = varint::Reader::new(&enc[2..]);
        for f in ["n", "s"] {
            rr.varint(f).unwrap();
        }
        let raw_len = rr.varint("r").unwrap() as usize;
        let body_at = 2 + rr.pos();
        let raw = zstd::bulk::decompress(&enc[body_at..], raw_len).unwrap();
        varint::put_u64(&mut raw_prefix, raw.len() as u64);
        raw_prefix.extend_from_slice(&raw);
        enc = raw_prefix;
        assert_eq!(decode(&enc).unwrap(), d);
    }
    for _ in 0..5000 {
        let mut m = enc.clone();
        for _ in 0..1 + r.below(3) {
            let i = 2 + r.below(m.len() as u64 - 2) as usize;
            m[i] = r.u64() as u8;
        }
        let _ = decode(&m);
    }
}

pub(super) fn vector_chunk() -> Chunk {
    Chunk {
        tag: vec![2, 1, 1],
        source_ns: vec![1_000, 1_000, 2_000],
        server_ns: vec![1_005, 1_001, i64::MIN],
        status: vec![0, 0, 0x8000_0000],
        value_bits: vec![1.0f64.to_bits(), 2.0f64.to_bits(), 3.0f64.to_bits()],
        flags: vec![0, 0, 1],
        strings: vec!["ok".into()],
    }
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The raw (uncompressed) v1 vector printed in docs/format.md.
const VECTOR_RAW: &str = concat!(
    "01",
    "00",
    "03",
    "01",
    "41",
    "02",
    "0102",
    "0201",
    "d00f",
    "00",
    "d00f",
    "02",
    "e0e0ffffffffffffff01",
    "0a",
    "0001",
    "808080800801",
    "0001",
    "0000000000000040",
    "0000000000000800",
    "000000000000f03f",
    "0001",
    "0101",
    "0001",
    "02",
    "6f6b",
);

/// The same chunk as written by `encode` (zstd level 3) when the vector was
/// made; encoders may produce other zstd bytes, decoders must read these.
const VECTOR_ZSTD: &str = "010103014128b52ffd2041ad0100a4020201020201d00f00d00f02e0e0ff010a000180808080080100010040000800f03f000101010001026f6b041000832f36be4109";

pub(super) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn fixed_vectors() {
    let c = vector_chunk();
    assert_eq!(
        hex(&v1::encode_with(&c.columns(), false).unwrap()),
        VECTOR_RAW
    );
    let want = canonical(&c.columns()).unwrap();
    assert_eq!(want.tag, vec![1, 1, 2]);
    assert_eq!(decode(&unhex(VECTOR_RAW)).unwrap(), want);
    assert_eq!(decode(&unhex(VECTOR_ZSTD)).unwrap(), want);
    crate::testutil::assert_in_docs(VECTOR_RAW);
    crate::testutil::assert_in_docs(VECTOR_ZSTD);
}
