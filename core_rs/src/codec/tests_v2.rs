//! Codec v2 (typed) and the lossy filter: round trips for any bits under any
//! hint, compression on plant-like data, decoder safety, error bounds.
use super::tests::random_chunk;
use super::*;
use crate::testutil::Rng;

fn round_trip(c: &Chunk, kinds: &[u8]) -> Vec<u8> {
    let enc = v2::encode(&c.columns(), kinds).unwrap();
    assert_eq!(enc[0], 2);
    let dec = decode(&enc).unwrap_or_else(|e| panic!("decode failed: {e}"));
    assert_eq!(dec, canonical(&c.columns()).unwrap());
    enc
}

pub(super) fn random_kinds(r: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| r.below(9) as u8).collect() // 8 = not a kind: unknown
}

/// A plant-like window: `tags` tags at 1 Hz for `secs` seconds, instruments
/// with fixed resolution (0.01, 0.1, 1), a counter, a bool, jittered clocks.
pub(super) fn plant_chunk(r: &mut Rng, tags: u32, secs: i64) -> (Chunk, Vec<u8>) {
    let mut c = Chunk::default();
    let kinds: Vec<u8> = (0..tags)
        .map(|t| match t % 6 {
            0..=2 => kind::F64,
            3 => kind::F32,
            4 => kind::INT,
            _ => kind::BOOL,
        })
        .collect();
    let mut level: Vec<f64> = (0..tags).map(|t| 20.0 + t as f64).collect();
    for s in 0..secs {
        for tag in 0..tags {
            // Source clocks with 1 ms resolution and a little jitter; server 1-2 ms later.
            let t = 1_700_000_000_000_000_000 + s * 1_000_000_000 + r.below(3) as i64 * 1_000_000;
            level[tag as usize] += (r.below(200) as f64 - 99.5) * 0.002;
            let l = level[tag as usize];
            let bits = match tag % 6 {
                0 => ((l * 100.0).round() / 100.0).to_bits(),
                1 => ((l * 10.0).round() / 10.0).to_bits(),
                2 => (l * 1000.0).round().to_bits(),
                3 => f64::from(((l * 10.0).round() / 10.0) as f32).to_bits(),
                4 => (s * 3 + i64::from(tag)) as u64,
                _ => u64::from(l > 20.0 + tag as f64),
            };
            c.tag.push(tag);
            c.source_ns.push(t);
            c.server_ns.push(t + 1_000_000 * (1 + r.below(2) as i64));
            c.status.push(0);
            c.value_bits.push(bits);
            c.flags.push(0);
        }
    }
    (c, kinds)
}

#[test]
fn empty_and_tiny_chunks() {
    round_trip(&Chunk::default(), &[]);
    let mut r = Rng::new(11);
    for n in 0..40 {
        let c = random_chunk(&mut r, n);
        let k = random_kinds(&mut r, 30);
        round_trip(&c, &k);
    }
}

#[test]
fn any_bits_round_trip_under_any_hint() {
    let mut r = Rng::new(0x5eed_0002);
    for case in 0..300 {
        let n = match case % 3 {
            0 => r.below(50) as usize,
            _ => r.below(3000) as usize,
        };
        let c = random_chunk(&mut r, n);
        let k = random_kinds(&mut r, 25);
        round_trip(&c, &k);
        round_trip(&c, &[]);
    }
}

#[test]
fn decimal_tags_keep_exceptions_exactly() {
    let specials = [
        f64::NAN,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        std::f64::consts::PI,
        1e300,
        5e-324,
    ];
    let mut c = Chunk::default();
    for i in 0..500u64 {
        c.tag.push((i % 2) as u32);
        c.source_ns.push(i as i64 * 1000);
        c.server_ns.push(i as i64 * 1000);
        c.status.push(0);
        let v = if i % 37 == 0 {
            specials[(i / 37) as usize % specials.len()]
        } else {
            (i as f64) * 0.05
        };
        c.value_bits.push(if i % 2 == 1 {
            f64::from(v as f32).to_bits()
        } else {
            v.to_bits()
        });
        c.flags.push(0);
    }
    c.value_bits[3] = f64::NAN.to_bits() | 0x1234; // a NaN payload
    round_trip(&c, &[kind::F64, kind::F32]);
}

#[test]
fn plant_data_beats_v1_by_far() {
    let (c, kinds) = plant_chunk(&mut Rng::new(7), 60, 100);
    let v2 = round_trip(&c, &kinds).len();
    let v1 = v1::encode(&c.columns()).unwrap().len();
    let per = v2 as f64 / c.len() as f64;
    assert!(per < 2.0, "{per:.2} bytes/sample");
    assert!(v2 * 2 < v1, "v2 {v2} bytes, v1 {v1}");
    // Hints matter: untyped words cost more.
    assert!(v2 < v2::encode(&c.columns(), &[]).unwrap().len());
}

#[test]
fn oversized_and_bad_headers_are_refused() {
    let mut p = vec![2];
    varint::put_u64(&mut p, (v2::MAX_SAMPLES + 1) as u64);
    assert!(decode(&p).unwrap_err().to_string().contains("n_samples"));
    let e = decode(&[2, 1, 0, 9, 0, 0]).unwrap_err().to_string();
    assert_eq!(e, "codec: unknown compression 9 at offset 1");
    // A head that declares more than it holds.
    assert!(decode(&[2, 0, 0, 0, 5, 5, 1]).is_err());
    // A valid head followed by an unknown column method.
    let mut ok = v2::encode(&Chunk::default().columns(), &[]).unwrap();
    let n = ok.len();
    ok[n - 2] = 7;
    assert!(decode(&ok)
        .unwrap_err()
        .to_string()
        .contains("unknown column method 7"));
}

pub(super) fn mutate_and_decode(r: &mut Rng, enc: &[u8], rounds: usize) {
    for cut in 0..enc.len().min(48) {
        assert!(decode(&enc[..cut]).is_err());
    }
    for _ in 0..rounds {
        let mut m = enc.to_vec();
        for _ in 0..1 + r.below(4) {
            let i = r.below(m.len() as u64) as usize;
            match r.below(3) {
                0 => m[i] ^= 1 << r.below(8),
                1 => m[i] = r.u64() as u8,
                _ => {
                    m.insert(i, r.u64() as u8);
                }
            }
        }
        let _ = decode(&m);
    }
}

#[test]
fn mutated_payloads_never_panic() {
    let mut r = Rng::new(0xf022);
    for case in 0..40 {
        let (c, k) = if case % 2 == 0 {
            plant_chunk(&mut r, 1 + case as u32, 1 + case as i64)
        } else {
            let n = r.below(400) as usize;
            (random_chunk(&mut r, n), random_kinds(&mut r, 25))
        };
        let enc = v2::encode(&c.columns(), &k).unwrap();
        mutate_and_decode(&mut r, &enc, 150);
        let raw = v2::encode_with(&c.columns(), &k, false).unwrap();
        mutate_and_decode(&mut r, &raw, 150);
    }
}

/// The fuzz corpus kept in the repository (tests/codec_corpus, v1 to v4
/// payloads): every file decodes or fails cleanly, and so do mutations of it.
#[test]
fn corpus_never_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/codec_corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "corpus has {} files", files.len());
    for v in ["v1-", "v2-", "v3-", "v4-"] {
        let name = |f: &std::path::PathBuf| f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            files.iter().any(|f| name(f).starts_with(v)),
            "no {v} payload in the corpus"
        );
    }
    let mut r = Rng::new(0xc0);
    for f in files {
        let b = std::fs::read(&f).unwrap();
        let _ = decode(&b);
        mutate_and_decode(&mut r, &b, 100);
    }
}

/// Writes the seed corpus: `cargo test -p tidegate-core write_corpus -- --ignored`.
#[test]
#[ignore]
fn write_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/codec_corpus");
    std::fs::create_dir_all(&dir).unwrap();
    let mut r = Rng::new(2026);
    let put = |name: &str, b: Vec<u8>| std::fs::write(dir.join(name), b).unwrap();
    for i in 0..6 {
        let (c, k) = plant_chunk(&mut r, 2 + i * 5, 3 + i as i64 * 20);
        put(
            &format!("v2-plant-{i}.bin"),
            v2::encode(&c.columns(), &k).unwrap(),
        );
        put(
            &format!("v4-plant-{i}.bin"),
            v3::encode(&c.columns(), &k).unwrap(),
        );
        put(
            &format!("v4-plant-{i}-rawrest.bin"),
            v3::encode_with(&c.columns(), &k, false).unwrap(),
        );
        put(
            &format!("v2-plant-{i}-rawhead.bin"),
            v2::encode_with(&c.columns(), &k, false).unwrap(),
        );
    }
    for i in 0..4 {
        let n = 10 + 100 * i;
        let c = random_chunk(&mut r, n);
        let k = random_kinds(&mut r, 25);
        put(
            &format!("v2-random-{i}.bin"),
            v2::encode(&c.columns(), &k).unwrap(),
        );
        put(
            &format!("v4-random-{i}.bin"),
            v3::encode(&c.columns(), &k).unwrap(),
        );
        put(
            &format!("v1-random-{i}.bin"),
            v1::encode(&c.columns()).unwrap(),
        );
        put(
            &format!("v1-random-{i}-raw.bin"),
            v1::encode_with(&c.columns(), false).unwrap(),
        );
    }
}

// -- lossy ------------------------------------------------------------------

fn reconstruct_ok(orig: &[(i64, f64)], kept: &[(i64, f64)], bound: f64) {
    for &(t, v) in orig {
        let j = kept.partition_point(|&(kt, _)| kt < t);
        let rec = if j < kept.len() && kept[j].0 == t {
            kept[j].1
        } else {
            assert!(
                j > 0 && j < kept.len(),
                "sample at {t} is outside the kept range"
            );
            let (t0, v0) = kept[j - 1];
            let (t1, v1) = kept[j];
            v0 + (v1 - v0) * ((t - t0) as f64 / (t1 - t0) as f64)
        };
        assert!(
            (rec - v).abs() <= bound,
            "t={t}: {rec} vs {v}, bound {bound}"
        );
    }
}

#[test]
fn lossy_reconstruction_stays_within_bound() {
    let mut r = Rng::new(0x10557);
    let mut total_in = 0usize;
    let mut total_kept = 0usize;
    for case in 0..200 {
        let k = if case % 3 == 0 { kind::INT } else { kind::F64 };
        let max_error = [0.0, 0.01, 0.5, 2.0, 100.0][case % 5];
        let exc = if case % 2 == 0 {
            max_error * (r.below(51) as f64 / 100.0)
        } else {
            0.0
        };
        let bound = lossy::Bound {
            kind: k,
            max_error,
            exception_deviation: exc,
            swinging_door: case % 7 != 0,
            max_hold_ns: 1 + r.below(30) as i64 * 1_000_000_000,
        };
        let mut f = lossy::Filter::new();
        f.configure(3, Some(bound)).unwrap();
        let (mut t, mut v) = (1_700_000_000_000_000_000i64, (r.below(1000) as f64) - 500.0);
        let mut orig: Vec<(i64, f64, u32)> = Vec::new();
        let mut kept = Chunk::default();
        let mut now = 0i64;
        for _window in 0..(20 + r.below(40)) {
            let mut c = Chunk::default();
            for _ in 0..r.below(30) {
                t += 1 + r.below(2_000_000_000) as i64;
                v += match r.below(10) {
                    0 => (r.below(2000) as f64 - 1000.0) * 0.1, // a step
                    _ => (r.below(200) as f64 - 100.0) * 0.003,
                };
                if k == kind::INT {
                    v = v.round();
                }
                let status = match r.below(40) {
                    0 => 0x8000_0000,
                    1 => 0x4000_0000,
                    _ => 0,
                };
                c.tag.push(3);
                c.source_ns.push(t);
                c.server_ns.push(t + 5);
                c.status.push(status);
                c.value_bits.push(if k == kind::INT {
                    (v as i64) as u64
                } else {
                    v.to_bits()
                });
                c.flags.push(0);
                orig.push((t, v, status));
            }
            now += r.below(3_000_000_000) as i64;
            let out = f.apply(&c.columns(), now).unwrap();
            for i in 0..out.len() {
                kept.tag.push(out.tag[i]);
                kept.source_ns.push(out.source_ns[i]);
                kept.value_bits.push(out.value_bits[i]);
                kept.status.push(out.status[i]);
            }
        }
        let tail = f.flush_all();
        kept.source_ns.extend(&tail.source_ns);
        kept.value_bits.extend(&tail.value_bits);
        kept.status.extend(&tail.status);
        assert_eq!(f.pending(), 0);
        assert!(kept.source_ns.is_sorted(), "kept samples out of time order");
        let val = |b: u64| {
            if k == kind::INT {
                b as i64 as f64
            } else {
                f64::from_bits(b)
            }
        };
        let kept_pts: Vec<(i64, f64)> = kept
            .source_ns
            .iter()
            .zip(&kept.value_bits)
            .map(|(&t, &b)| (t, val(b)))
            .collect();
        // Never dropped: Bad samples and every status change, with their value.
        let mut prev_status = None;
        for &(t, v, s) in &orig {
            if s & 0x8000_0000 != 0 || prev_status != Some(s) {
                assert!(
                    kept_pts.contains(&(t, v)),
                    "case {case}: status {s:#x} at {t} dropped"
                );
            }
            prev_status = Some(s);
        }
        // Every kept sample is an original one.
        for p in &kept_pts {
            assert!(orig.iter().any(|&(t, v, _)| (t, v) == *p));
        }
        // Within a status segment, interpolation meets the bound.
        let mut seg_start = 0;
        for i in 1..=orig.len() {
            if i == orig.len() || orig[i].2 != orig[seg_start].2 {
                let seg: Vec<(i64, f64)> =
                    orig[seg_start..i].iter().map(|&(t, v, _)| (t, v)).collect();
                let lo = seg[0].0;
                let hi = seg[seg.len() - 1].0;
                let ks: Vec<(i64, f64)> = kept_pts
                    .iter()
                    .copied()
                    .filter(|&(t, _)| t >= lo && t <= hi)
                    .collect();
                reconstruct_ok(&seg, &ks, max_error);
                seg_start = i;
            }
        }
        total_in += orig.len();
        total_kept += kept_pts.len();
    }
    assert!(
        total_kept * 4 < total_in * 3,
        "kept {total_kept} of {total_in}"
    );
}

#[test]
fn lossy_bound_checks_and_passthrough() {
    let mut f = lossy::Filter::new();
    let bad = lossy::Bound {
        kind: kind::F64,
        max_error: 1.0,
        exception_deviation: 0.6,
        swinging_door: true,
        max_hold_ns: 1,
    };
    assert!(f.configure(0, Some(bad)).is_err());
    let nan = lossy::Bound {
        max_error: f64::NAN,
        exception_deviation: 0.0,
        ..bad
    };
    assert!(f.configure(0, Some(nan)).is_err());
    // Strings and unconfigured tags pass untouched.
    let ok = lossy::Bound {
        kind: kind::STRING,
        max_error: 1.0,
        exception_deviation: 0.0,
        ..bad
    };
    f.configure(1, Some(ok)).unwrap();
    let c = random_chunk(&mut Rng::new(3), 200);
    let out = f.apply(&c.columns(), 0).unwrap();
    assert_eq!(out.len(), c.len());
}

/// The v2 vector printed in docs/format.md: the v1 test chunk with tag 1 a
/// Double and tag 2 untyped; columns this small are always varints.
const VECTOR_V2: &str = concat!(
    "020301",                       // version 2, 3 samples, 1 string
    "001c1c",                       // head stored raw, 28 bytes
    "02",                           // 2 runs
    "0101",                         // tag deltas: 1, 1 (tags 1, 2)
    "0100",                         // counts - 1: 2, 1
    "0104",                         // modes: DEC64, WORD
    "0000",                         // DEC64: e = 0, no exceptions
    "0001808080800801",             // status runs: 0 x1, 0x80000000 x1,
    "0001",                         // 0 x1
    "000101010001",                 // flag runs: 0 x1, 1 x1, 0 x1
    "026f6b",                       // strings: "ok"
    "0005d00fd00f00",               // time: 1000, +1000 | 1000 - 1000 (vs tag 1's first)
    "000c02e0e0ffffffffffffff010a", // latency: 1, MIN-2000 (wrapped), 5
    "00020402",                     // ints: k 2, +1 (2.0, 3.0 at e = 0)
    "0000",                         // floats: none
    "000980808080808080f83f",       // words: 1.0 XOR 0
);

#[test]
fn fixed_vector_v2() {
    let c = super::tests::vector_chunk();
    let enc = v2::encode_with(&c.columns(), &[0, kind::F64, 0], false).unwrap();
    assert_eq!(super::tests::hex(&enc), VECTOR_V2);
    assert_eq!(decode(&enc).unwrap(), canonical(&c.columns()).unwrap());
}
