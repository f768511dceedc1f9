//! Codec v3 (typed, bit-packed columns): round trips for any bits under any
//! hint, the coding choices, ratio against v2, decoder safety, fixed vector.
use super::tests::random_chunk;
use super::tests_v2::{mutate_and_decode, plant_chunk, random_kinds};
use super::*;
use crate::testutil::Rng;

fn round_trip(c: &Chunk, kinds: &[u8]) -> Vec<u8> {
    let enc = encode_typed(&c.columns(), kinds).unwrap();
    assert_eq!(enc[0], v3::VERSION);
    let dec = decode(&enc).unwrap_or_else(|e| panic!("decode failed: {e}"));
    assert_eq!(dec, canonical(&c.columns()).unwrap());
    let raw = v3::encode_with(&c.columns(), kinds, false).unwrap();
    assert_eq!(decode(&raw).unwrap(), dec);
    enc
}

fn push(c: &mut Chunk, tag: u32, t: i64, status: u32, bits: u64) {
    c.tag.push(tag);
    c.source_ns.push(t);
    c.server_ns.push(t + 1_000);
    c.status.push(status);
    c.value_bits.push(bits);
    c.flags.push(0);
}

#[test]
fn empty_and_tiny_chunks_v3() {
    assert_eq!(round_trip(&Chunk::default(), &[]).len(), 6);
    for k in 0..9u8 {
        let mut c = Chunk::default();
        push(&mut c, 0, 5, 0, 2.5f64.to_bits());
        round_trip(&c, &[k]);
    }
}

#[test]
fn any_bits_round_trip_under_any_hint_v3() {
    let mut r = Rng::new(0x3333);
    for case in 0..150 {
        let n = if case % 10 == 0 {
            5000
        } else {
            r.below(300) as usize
        };
        let c = random_chunk(&mut r, n);
        round_trip(&c, &random_kinds(&mut r, 25));
        round_trip(&c, &[]);
    }
}

#[test]
fn decimal_runs_keep_exceptions_and_fall_back_to_floats() {
    let mut c = Chunk::default();
    // Tag 0 (F64): decimal with exceptions at the start, middle and end,
    // the first value itself an exception (the run's k column starts later).
    let odd = [
        f64::NAN.to_bits() | 7,
        (-0.0f64).to_bits(),
        f64::INFINITY.to_bits(),
    ];
    for i in 0..40 {
        let bits = match i {
            0 => odd[0],
            17 => odd[1],
            39 => odd[2],
            _ => (20.0 + i as f64 * 0.25).to_bits(),
        };
        push(&mut c, 0, i, 0, bits);
    }
    // Tag 1 (F64): mostly noise, so the float column.
    for i in 0..20 {
        push(&mut c, 1, i, 0, (i as f64 * 0.37).sin().to_bits());
    }
    // Tag 2 (F32): widened f32 readings, decimal in f32 precision.
    for i in 0..20 {
        push(&mut c, 2, i, 0, f64::from(0.1f32 * i as f32).to_bits());
    }
    // Tag 3 (F64): decimal at mixed exponents, one k past 2^53.
    for (i, v) in [1.5f64, 2.25, 1e15, 123456.789, 0.001, 9e15]
        .iter()
        .enumerate()
    {
        push(&mut c, 3, i as i64, 0, v.to_bits());
    }
    round_trip(&c, &[kind::F64, kind::F64, kind::F32, kind::F64]);
}

#[test]
fn statuses_flags_strings_and_a_compressed_rest_block() {
    let mut r = Rng::new(5);
    let mut c = random_chunk(&mut r, 400);
    for (i, s) in c.status.iter_mut().enumerate() {
        *s = [0, 0x8000_0000, 0x4000_0000][i / 7 % 3];
    }
    for (i, f) in c.flags.iter_mut().enumerate() {
        *f = (i % 11 == 0) as u8;
    }
    c.strings = (0..200).map(|i| format!("state {}", i % 4)).collect();
    let enc = round_trip(&c, &[kind::STRING; 25]);
    let raw = v3::encode_with(&c.columns(), &[kind::STRING; 25], false).unwrap();
    assert!(
        enc.len() < raw.len(),
        "zstd'd rest {} vs raw {}",
        enc.len(),
        raw.len()
    );
}

#[test]
fn plant_data_v3_is_as_small_as_v2() {
    for (tags, secs) in [(60, 1), (60, 100), (200, 30)] {
        let (c, kinds) = plant_chunk(&mut Rng::new(7), tags, secs);
        let v3 = round_trip(&c, &kinds).len();
        let v2 = v2::encode(&c.columns(), &kinds).unwrap().len();
        let v1 = v1::encode(&c.columns()).unwrap().len();
        assert!(
            v3 * 100 <= v2 * 105,
            "{tags}x{secs}: v3 {v3} bytes, v2 {v2}"
        );
        assert!(v3 * 2 < v1, "{tags}x{secs}: v3 {v3} bytes, v1 {v1}");
        assert!(v3 < encode(&c.columns()).unwrap().len(), "hints must pay");
    }
}

/// Tags sampled every 0.5, 1 or 2 s and reported on change (so a tag's time
/// deltas are a few periods), clock jitter of up to +-1.5 ms at OPC UA's 100
/// ns resolution, and random-walk decimal values: the shape of `recorded`.
pub(super) fn periodic_chunk(r: &mut Rng, tags: u32, secs: i64) -> (Chunk, Vec<u8>) {
    let mut c = Chunk::default();
    let t0 = 1_780_000_000_000_000_000i64;
    for tag in 0..tags {
        let period = [500_000_000i64, 1_000_000_000, 2_000_000_000][tag as usize % 3];
        // Value steps from 0.01 to 1000 units (instruments of every range).
        let step = [1u64, 10, 100, 1000, 10_000, 100_000][tag as usize % 6];
        let (mut k, mut slot) = (1000i64, 0i64);
        while slot * period < secs * 1_000_000_000 {
            let jitter = (r.below(30_001) as i64 - 15_000) * 100;
            k += (r.below(2 * step + 1) as i64 - step as i64) * 7;
            push(
                &mut c,
                tag,
                t0 + slot * period + jitter,
                0,
                (k as f64 / 100.0).to_bits(),
            );
            slot += 1 + r.below(3) as i64; // on change: one to three periods
        }
    }
    (c, vec![kind::F64; tags as usize])
}

#[test]
fn periodic_times_and_tag_deltas_get_a_frame_per_run() {
    let mut r = Rng::new(0x5e9);
    // 60 s: runs of 10-60 samples, per-run frames (and q * period + jitter).
    // 8 s: runs of 2-8, one base for the whole time column.
    // Bounds: 0.4 bytes/sample under what one frame per column gave (60 s:
    // 3.25 for times, 1.77 for values; 8 s: 3.17 for times).
    for (secs, most, most_values) in [(60, 2.8, 1.4), (8, 2.8, 2.1)] {
        let (c, kinds) = periodic_chunk(&mut r, 150, secs);
        let n = c.len() as f64;
        let all = round_trip(&c, &kinds).len() as f64 / n;
        // Timestamps alone (values zeroed, server time = source time).
        let mut t = c.clone();
        t.value_bits.iter_mut().for_each(|v| *v = 0);
        t.server_ns = t.source_ns.clone();
        let times = round_trip(&t, &kinds).len() as f64 / n;
        assert!(times < most, "{secs} s: {times:.2} bytes/sample for times");
        // The value deltas: one frame stores all at the widest tag's width.
        assert!(
            all - times < most_values,
            "{secs} s: {:.2} bytes/sample for values",
            all - times
        );
        mutate_and_decode(&mut r, &encode_typed(&c.columns(), &kinds).unwrap(), 150);
    }
}

/// Long runs of adversarial times and values (segmented columns start at
/// 512 values): steps near the exact-range limit of `q × B + r`, negative
/// and wrapping deltas, random words under every hint.
#[test]
fn long_runs_of_any_values_round_trip() {
    let mut r = Rng::new(0x10b6);
    for case in 0..24u64 {
        let (tags, n) = (1 + r.below(6) as u32, 600 + r.below(3000) as usize);
        let kinds = random_kinds(&mut r, tags as usize);
        let mut c = Chunk::default();
        let step: i64 = match case % 4 {
            0 => (1 << 51) + r.below(1 << 20) as i64,
            1 => (1 << 52) - 1,
            2 => 1 + r.below(3) as i64,
            _ => r.u64() as i64,
        };
        let mut t = vec![r.u64() as i64; tags as usize];
        for i in 0..n {
            let tag = r.below(u64::from(tags)) as u32;
            let jitter = r.below(1 << (case % 40)) as i64;
            t[tag as usize] = t[tag as usize].wrapping_add(step).wrapping_add(jitter);
            let bits = match i % 3 {
                0 => r.u64(),
                1 => (r.below(1 << (case % 60)) as f64 / 100.0).to_bits(),
                _ => r.below(1000),
            };
            push(&mut c, tag, t[tag as usize], r.below(3) as u32, bits);
        }
        round_trip(&c, &kinds);
    }
}

#[test]
fn mutated_v3_payloads_never_panic() {
    let mut r = Rng::new(0xf033);
    for case in 0..40 {
        let (c, k) = if case % 2 == 0 {
            plant_chunk(&mut r, 1 + case as u32, 1 + case as i64)
        } else {
            let n = r.below(400) as usize;
            (random_chunk(&mut r, n), random_kinds(&mut r, 25))
        };
        mutate_and_decode(&mut r, &encode_typed(&c.columns(), &k).unwrap(), 150);
        mutate_and_decode(
            &mut r,
            &v3::encode_with(&c.columns(), &k, false).unwrap(),
            150,
        );
    }
}

#[test]
fn bad_v3_headers_are_refused_with_the_field_named() {
    let err = |b: &[u8]| decode(b).unwrap_err().to_string();
    let mut p = vec![3];
    varint::put_u64(&mut p, (v2::MAX_SAMPLES + 1) as u64);
    assert!(err(&p).contains("n_samples"), "{}", err(&p));
    // 1 sample but 0 runs; 0 samples but 1 run.
    assert!(err(&[3, 1, 0, 0]).contains("tag_runs"));
    assert!(err(&[3, 0, 0, 1]).contains("tag_runs"));
    // One run: tag delta 0, count - 1 = 1 (2 samples, header says 1).
    assert!(err(&[3, 1, 0, 1, 2, 0, 2, 2, 2, 0]).contains("tag_run_count"));
    // Mode 9.
    assert!(err(&[3, 1, 0, 1, 2, 0, 2, 0, 2, 18]).contains("value_mode"));
    // Run columns as written: a negative tag delta, tags past u32::MAX,
    // and runs that do not cover the samples.
    let runs = |n: u64, deltas: &[i64], counts: &[i64]| {
        let mut p = vec![3];
        varint::put_u64(&mut p, n);
        varint::put_u64(&mut p, 0);
        varint::put_u64(&mut p, deltas.len() as u64);
        for col in [deltas, counts, &vec![0; deltas.len()]] {
            column::put3_small(&mut p, col);
        }
        err(&p)
    };
    assert!(runs(2, &[0, -1], &[0, 0]).contains("tag out of range at run 1"));
    let e = runs(2, &[u32::MAX.into(), 1], &[0, 0]);
    assert!(e.contains("tag out of range at run 1"), "{e}");
    let e = runs(3, &[0, 1], &[0, 0]);
    assert!(e.contains("runs cover 2 samples, header says 3"), "{e}");
    assert!(runs(3, &[0, 1], &[0, -1]).contains("tag_run_count"));
    // Unknown column method 70 for the tag deltas.
    assert!(err(&[3, 1, 0, 1, 70]).contains("unknown column method 70"));
    // A decimal run with exponent 13.
    assert!(err(&[3, 1, 0, 1, 2, 0, 2, 0, 2, 2, 2, 26, 2, 0]).contains("decimal_exponent"));
    // A decimal run whose only value is an exception.
    assert!(err(&[3, 1, 0, 1, 2, 0, 2, 0, 2, 2, 2, 0, 2, 2]).contains("exception_count"));
    // A frame divisor of 0.
    assert!(err(&[3, 2, 0, 1, 2, 0, 3, 0, 0]).contains("divisor"));
    // Unknown rest compression.
    let e = err(&[3, 1, 0, 1, 2, 0, 2, 0, 2, 0, 7, 0]);
    assert!(e.contains("unknown compression 7"), "{e}");
    // A valid payload with a byte too many.
    let (c, k) = plant_chunk(&mut Rng::new(1), 3, 2);
    let mut ok = encode_typed(&c.columns(), &k).unwrap();
    ok.push(0);
    assert!(err(&ok).contains("trailing"), "{}", err(&ok));
}

/// The v3 vector printed in docs/format.md: the v1 test chunk with tag 1 a
/// Double and tag 2 untyped.
const VECTOR_V3: &str = concat!(
    "03030102",                     // version 3, 3 samples, 1 string, 2 runs
    "0202",                         // tag deltas: pack w=0, min 1 (tags 1, 2)
    "03000101",                     // counts - 1: pack w=1, min 0, g 1, bits 1,0
    "0402010c",                     // modes: pack w=2, min 1, g 1, bits 0,3 (DEC64, WORD)
    "0200",                         // exponents (1 decimal run): pack w=0, 0
    "0200",                         // exception counts: pack w=0, 0
    "0013",                         // rest block stored raw, 19 bytes:
    "0001808080800801",             //   status runs: 0 x1, 0x80000000 x1,
    "0001",                         //   0 x1
    "000101010001",                 //   flag runs: 0 x1, 1 x1, 0 x1
    "026f6b",                       //   strings: "ok"
    "02d00f",                       // time first: pack w=0, 1000 (both runs)
    "02d00f",                       // time rest: pack w=0, +1000
    "000c02e0e0ffffffffffffff010a", // latency: varints 1, MIN-2000 (wrapped), 5
    "0204",                         // int first: pack w=0, k 2 (2.0 at e = 0)
    "0202",                         // int rest: pack w=0, +1 (3.0)
    "0280808080808080f07f",         // words: pack w=0, 1.0's bits (floats: none)
);

/// v3's vector still decodes; the encoder writes the same bytes as v4 (the
/// test chunk is too small for bins), version byte aside.
#[test]
fn fixed_vector_v3_and_v4() {
    let c = super::tests::vector_chunk();
    let want = canonical(&c.columns()).unwrap();
    assert_eq!(decode(&super::tests::unhex(VECTOR_V3)).unwrap(), want);
    let enc = v3::encode_with(&c.columns(), &[0, kind::F64, 0], false).unwrap();
    assert_eq!(decode(&enc).unwrap(), want);
    assert_eq!(super::tests::hex(&enc), format!("04{}", &VECTOR_V3[2..]));
}

/// Periodic chunks long enough for segmented columns (`segframe`): 8, 34
/// and 60 s of 40, 90 and 140 tags (`v` is the version in the file name).
fn periodic_corpus(v: u8) -> Vec<(String, Chunk, Vec<u8>)> {
    let mut r = Rng::new(2027);
    (0..3u32)
        .map(|i| {
            let (c, k) = periodic_chunk(&mut r, 40 + 50 * i, 8 + 26 * i64::from(i));
            (format!("v{v}-periodic-{i}.bin"), c, k)
        })
        .collect()
}

/// Short windows of many tags, whose long columns are binned (v4): 1, 2 and
/// 3 s of 600, 1100 and 1600 tags.
fn wide_corpus() -> Vec<(String, Chunk, Vec<u8>)> {
    let mut r = Rng::new(2028);
    (0..3u32)
        .map(|i| {
            let (c, k) = periodic_chunk(&mut r, 600 + 500 * i, 1 + i64::from(i));
            (format!("v4-wide-{i}.bin"), c, k)
        })
        .collect()
}

/// Writes the periodic corpus files: `cargo test -p tidegate-core
/// write_corpus_periodic -- --ignored` (the older files stay as written).
#[test]
#[ignore]
fn write_corpus_periodic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/codec_corpus");
    for (name, c, k) in periodic_corpus(4).into_iter().chain(wide_corpus()) {
        std::fs::write(dir.join(name), encode_typed(&c.columns(), &k).unwrap()).unwrap();
    }
}

/// The corpus files were written by earlier encoders (`write_corpus`, same
/// seeds): every stored v1 to v4 payload still decodes to its chunk.
#[test]
fn stored_payloads_of_every_version_decode_to_their_chunks() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/codec_corpus");
    let check = |name: String, c: &Chunk| {
        let b = std::fs::read(dir.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = decode(&b).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, canonical(&c.columns()).unwrap(), "{name}");
    };
    let mut r = Rng::new(2026);
    for i in 0..6 {
        let (c, _) = plant_chunk(&mut r, 2 + i * 5, 3 + i as i64 * 20);
        for name in [
            "v2-plant-{}.bin",
            "v2-plant-{}-rawhead.bin",
            "v3-plant-{}.bin",
            "v3-plant-{}-rawrest.bin",
            "v4-plant-{}.bin",
            "v4-plant-{}-rawrest.bin",
        ] {
            check(name.replace("{}", &i.to_string()), &c);
        }
    }
    for i in 0..4 {
        let c = random_chunk(&mut r, 10 + 100 * i);
        random_kinds(&mut r, 25);
        for name in [
            "v1-random-{}.bin",
            "v1-random-{}-raw.bin",
            "v2-random-{}.bin",
            "v3-random-{}.bin",
            "v4-random-{}.bin",
        ] {
            check(name.replace("{}", &i.to_string()), &c);
        }
    }
    let stored = [periodic_corpus(3), periodic_corpus(4), wide_corpus()];
    for (name, c, _) in stored.into_iter().flatten() {
        check(name, &c);
    }
}

/// The encoder keeps per-tag hints between chunks (where the decimal search
/// starts): a chunk's bytes must not depend on what was encoded before.
#[test]
fn encoding_does_not_depend_on_earlier_chunks() {
    let mut r = Rng::new(8);
    let (a, ka) = plant_chunk(&mut r, 30, 1);
    let (b, kb) = plant_chunk(&mut r, 30, 20);
    // Tag by tag, other exponents: the same tags at ten times the resolution.
    let mut b10 = b.clone();
    for v in &mut b10.value_bits {
        *v = (f64::from_bits(*v) * 10.0 + 0.01).to_bits();
    }
    let first = encode_typed(&a.columns(), &ka).unwrap();
    encode_typed(&b.columns(), &kb).unwrap();
    encode_typed(&b10.columns(), &kb).unwrap();
    assert_eq!(encode_typed(&a.columns(), &ka).unwrap(), first);
    // And on a fresh thread (no hints at all).
    let again = std::thread::spawn(move || encode_typed(&a.columns(), &ka).unwrap());
    assert_eq!(again.join().unwrap(), first);
}
