//! Codec benchmark: bytes per sample and encode/decode speed per core, ours
//! beside zstd(3)/zstd(19) on raw columns, Gorilla, and pco on the values, in
//! one run over the same flush windows. See benchmarks/README.md.
//!
//!   python benchmarks/codec_data.py /tmp/codec_bench
//!   cargo run --release --example bench_codec -- /tmp/codec_bench/*.cols
//!
//! BENCH_WINDOWS=1,10 picks the flush windows (seconds), BENCH_REPS=N the
//! runs per window (the fastest counts); BENCH_ONLY=ours
//! runs only our codec, BENCH_ONLY=row only its ts+value+status row
//! (profiling).

use std::time::Instant;

use _core::codec::{self, v1, v2, Chunk};

struct Data {
    name: String,
    c: Chunk,
    kinds: Vec<u8>,
}

fn load(path: &str) -> Data {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut at = 0usize;
    let mut take = |k: usize| {
        let s = &b[at..at + k];
        at += k;
        s
    };
    let n = u64::from_le_bytes(take(8).try_into().unwrap()) as usize;
    let u32s = |s: &[u8]| {
        s.chunks(4)
            .map(|x| u32::from_le_bytes(x.try_into().unwrap()))
            .collect::<Vec<_>>()
    };
    let u64s = |s: &[u8]| {
        s.chunks(8)
            .map(|x| u64::from_le_bytes(x.try_into().unwrap()))
            .collect::<Vec<_>>()
    };
    let tag = u32s(take(4 * n));
    let source_ns = u64s(take(8 * n)).into_iter().map(|v| v as i64).collect();
    let server_ns = u64s(take(8 * n)).into_iter().map(|v| v as i64).collect();
    let status = u32s(take(4 * n));
    let value_bits = u64s(take(8 * n));
    let k = u64::from_le_bytes(take(8).try_into().unwrap()) as usize;
    let kinds = take(k).to_vec();
    let name = std::path::Path::new(path)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let c = Chunk {
        tag,
        source_ns,
        server_ns,
        status,
        value_bits,
        flags: vec![0; n],
        strings: vec![],
    };
    Data { name, c, kinds }
}

/// Split into flush windows of `w_ns` by source time (the file is in arrival order).
fn windows(c: &Chunk, w_ns: i64) -> Vec<Chunk> {
    let mut out: Vec<Chunk> = Vec::new();
    let mut cur_w = i64::MIN;
    for i in 0..c.len() {
        let w = c.source_ns[i].div_euclid(w_ns);
        if w != cur_w {
            out.push(Chunk::default());
            cur_w = w;
        }
        let o = out.last_mut().unwrap();
        o.tag.push(c.tag[i]);
        o.source_ns.push(c.source_ns[i]);
        o.server_ns.push(c.server_ns[i]);
        o.status.push(c.status[i]);
        o.value_bits.push(c.value_bits[i]);
        o.flags.push(0);
    }
    out
}

// -- Gorilla (Pelkonen et al., VLDB 2015), per tag series within a window ----
// Timestamps: delta-of-delta with the Prometheus XOR-chunk buckets (0 | 14 |
// 17 | 20 bits | 64 bits), since our clocks are ns, not the paper's seconds;
// values: XOR with the previous, reusing the previous leading/trailing window.
// Status is not part of Gorilla: it gets our run-length bytes added.

#[derive(Default)]
struct BitW {
    buf: Vec<u8>,
    acc: u64,
    n: u32,
}
impl BitW {
    fn put(&mut self, v: u64, bits: u32) {
        for i in (0..bits).rev() {
            self.acc = (self.acc << 1) | ((v >> i) & 1);
            self.n += 1;
            if self.n == 8 {
                self.buf.push(self.acc as u8);
                self.acc = 0;
                self.n = 0;
            }
        }
    }
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.buf.push((self.acc << (8 - self.n)) as u8);
        }
        self.buf
    }
}
struct BitR<'a> {
    b: &'a [u8],
    pos: usize,
}
impl BitR<'_> {
    fn get(&mut self, bits: u32) -> u64 {
        let mut v = 0u64;
        for _ in 0..bits {
            let bit = (self.b[self.pos / 8] >> (7 - self.pos % 8)) & 1;
            v = (v << 1) | u64::from(bit);
            self.pos += 1;
        }
        v
    }
}

const BUCKETS: [(u64, u32, u32); 3] = [(0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)];

fn gorilla_encode(ts: &[i64], vals: &[u64]) -> Vec<u8> {
    let mut w = BitW::default();
    w.put(ts.len() as u64, 32);
    let (mut pt, mut pd, mut pv) = (0i64, 0i64, 0u64);
    let (mut lead, mut trail) = (u32::MAX, 0u32);
    for i in 0..ts.len() {
        if i == 0 {
            w.put(ts[0] as u64, 64);
            w.put(vals[0], 64);
        } else {
            let d = ts[i].wrapping_sub(pt);
            let dod = d.wrapping_sub(pd);
            if dod == 0 {
                w.put(0, 1);
            } else if let Some(&(p, pb, b)) = BUCKETS
                .iter()
                .find(|&&(_, _, b)| dod > -(1i64 << (b - 1)) && dod <= 1i64 << (b - 1))
            {
                w.put(p, pb);
                w.put(dod as u64 & ((1u64 << b) - 1), b);
            } else {
                w.put(0b1111, 4);
                w.put(dod as u64, 64);
            }
            pd = d;
            let x = vals[i] ^ pv;
            if x == 0 {
                w.put(0, 1);
            } else {
                w.put(1, 1);
                let l = x.leading_zeros().min(31);
                let t = x.trailing_zeros();
                if lead != u32::MAX && l >= lead && t >= trail {
                    w.put(0, 1);
                    w.put(x >> trail, 64 - lead - trail);
                } else {
                    (lead, trail) = (l, t);
                    w.put(1, 1);
                    w.put(u64::from(l), 5);
                    let sig = 64 - l - t;
                    w.put(u64::from(sig - 1), 6);
                    w.put(x >> t, sig);
                }
            }
        }
        pt = ts[i];
        pv = vals[i];
    }
    w.finish()
}

fn gorilla_decode(b: &[u8], ts: &mut Vec<i64>, vals: &mut Vec<u64>) -> usize {
    let mut r = BitR { b, pos: 0 };
    let n = r.get(32) as usize;
    let (mut pt, mut pd, mut pv) = (0i64, 0i64, 0u64);
    let (mut lead, mut trail) = (0u32, 0u32);
    for i in 0..n {
        if i == 0 {
            pt = r.get(64) as i64;
            pv = r.get(64);
        } else {
            let dod = if r.get(1) == 0 {
                0
            } else if r.get(1) == 0 {
                sext(r.get(14), 14)
            } else if r.get(1) == 0 {
                sext(r.get(17), 17)
            } else if r.get(1) == 0 {
                sext(r.get(20), 20)
            } else {
                r.get(64) as i64
            };
            pd = pd.wrapping_add(dod);
            pt = pt.wrapping_add(pd);
            if r.get(1) == 1 {
                if r.get(1) == 1 {
                    lead = r.get(5) as u32;
                    let sig = r.get(6) as u32 + 1;
                    trail = 64 - lead - sig;
                }
                pv ^= r.get(64 - lead - trail) << trail;
            }
        }
        ts.push(pt);
        vals.push(pv);
    }
    n
}

fn sext(v: u64, bits: u32) -> i64 {
    let v = v as i64;
    if v > 1i64 << (bits - 1) {
        v - (1i64 << bits)
    } else {
        v
    }
}

/// Per-tag series of a window (sorted by tag, arrival order within a tag).
type Series = (u32, Vec<i64>, Vec<u64>, Vec<u32>);

fn series(c: &Chunk) -> Vec<Series> {
    let s = codec::canonical(&c.columns()).unwrap();
    let mut out: Vec<Series> = Vec::new();
    for i in 0..s.len() {
        if out.last().is_none_or(|l| l.0 != s.tag[i]) {
            out.push((s.tag[i], vec![], vec![], vec![]));
        }
        let l = out.last_mut().unwrap();
        l.1.push(s.source_ns[i]);
        l.2.push(s.value_bits[i]);
        l.3.push(s.status[i]);
    }
    out
}

fn status_rle(st: &[u32]) -> usize {
    let mut b = Vec::new();
    v1::put_rle(&mut b, st.iter().copied(), |o, v| {
        codec::varint::put_u64(o, v.into())
    });
    b.len()
}

fn raw_columns(c: &Chunk) -> Vec<u8> {
    let mut b = Vec::with_capacity(c.len() * 24);
    for x in &c.tag {
        b.extend_from_slice(&x.to_le_bytes());
    }
    for x in &c.source_ns {
        b.extend_from_slice(&x.to_le_bytes());
    }
    for x in &c.status {
        b.extend_from_slice(&x.to_le_bytes());
    }
    for x in &c.value_bits {
        b.extend_from_slice(&x.to_le_bytes());
    }
    b
}

struct Row {
    bytes: usize,
    enc_s: f64,
    dec_s: f64,
}

/// Run `enc` on each window `reps` times and `dec` on its output `reps`
/// times, keeping each window's fastest run: on a shared machine the minimum
/// filters out time slices lost to other processes (each window is then
/// warm in cache, as a window the agent has just collected is).
fn measure<E, D>(ws: &[Chunk], reps: usize, enc: E, dec: D) -> Row
where
    E: Fn(&Chunk) -> Vec<Vec<u8>>,
    D: Fn(&[Vec<u8>]) -> usize,
{
    let (mut enc_s, mut dec_s, mut bytes) = (0.0, 0.0, 0);
    for c in ws {
        let mut best = f64::MAX;
        let mut out = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            out = enc(c);
            best = best.min(t.elapsed().as_secs_f64());
        }
        enc_s += best;
        bytes += out.iter().map(Vec::len).sum::<usize>();
        let mut best = f64::MAX;
        for _ in 0..reps {
            let t = Instant::now();
            std::hint::black_box(dec(&out));
            best = best.min(t.elapsed().as_secs_f64());
        }
        dec_s += best;
    }
    Row {
        bytes,
        enc_s,
        dec_s,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // BENCH_ONLY=ours runs only our codec (for profiling).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let only_ours = only == "ours" || only == "row";
    assert!(!args.is_empty(), "usage: bench_codec FILE.cols ...");
    let pco_cfg = pco::ChunkConfig::default();
    for path in &args {
        let d = load(path);
        let n = d.c.len();
        // Every codec here is lossless: check it on a sample of windows first.
        let short = windows(&d.c, 1_000_000_000);
        for c in short.iter().take(50) {
            assert_eq!(
                codec::decode(&codec::encode_typed(&c.columns(), &d.kinds).unwrap()).unwrap(),
                codec::canonical(&c.columns()).unwrap()
            );
        }
        for c in windows(&d.c, 10_000_000_000).iter().take(20) {
            assert_eq!(
                codec::decode(&codec::encode_typed(&c.columns(), &d.kinds).unwrap()).unwrap(),
                codec::canonical(&c.columns()).unwrap()
            );
            assert_eq!(
                codec::decode(&v2::encode(&c.columns(), &d.kinds).unwrap()).unwrap(),
                codec::canonical(&c.columns()).unwrap()
            );
            for (_, t, x, _) in series(c) {
                let (mut t2, mut x2) = (Vec::new(), Vec::new());
                gorilla_decode(&gorilla_encode(&t, &x), &mut t2, &mut x2);
                assert!(t2 == t && x2 == x, "gorilla round trip");
            }
        }
        let span = (d.c.source_ns.iter().max().unwrap() - d.c.source_ns.iter().min().unwrap())
            as f64
            / 1e9;
        println!(
            "\n## {}: {} samples, {} tags, {:.0} s, {:.0} samples/s",
            d.name,
            n,
            d.kinds.len(),
            span,
            n as f64 / span
        );
        // BENCH_WINDOWS=1,10 picks the flush windows (seconds) to run.
        let wins: Vec<i64> = std::env::var("BENCH_WINDOWS")
            .unwrap_or("1,10,60".into())
            .split(',')
            .map(|w| {
                w.trim()
                    .parse()
                    .expect("BENCH_WINDOWS: seconds, comma separated")
            })
            .collect();
        for &w_s in &wins {
            let ws = windows(&d.c, w_s * 1_000_000_000);
            println!(
                "\nflush window {w_s} s ({} windows, {:.0} samples each)\n",
                ws.len(),
                n as f64 / ws.len() as f64
            );
            // BENCH_REPS=N times each window N times (a busy machine needs more).
            let reps = std::env::var("BENCH_REPS")
                .ok()
                .map(|v| v.parse().expect("BENCH_REPS: a count"))
                .unwrap_or(if w_s == 1 { 5 } else { 3 });
            let kinds = &d.kinds;
            // Like for like: the other rows store tag, source time, value and
            // status, not server time; "ours, ts+value+status" is our payload
            // for the same chunks with the server-timestamp column made empty
            // (server = source), and "vs ours" divides by it.
            let no_server: Vec<Chunk> = ws.iter().map(|c| strip(c, true)).collect();
            if only == "row" {
                let r = measure(
                    &no_server,
                    reps,
                    |c| vec![codec::encode_typed(&c.columns(), kinds).unwrap()],
                    |o| codec::decode(&o[0]).unwrap().len(),
                );
                println!(
                    "ts+value+status: encode {:.1} decode {:.1} M samples/s",
                    n as f64 / r.enc_s / 1e6,
                    n as f64 / r.dec_s / 1e6
                );
                continue;
            }
            // Our tag + time + status bytes alone (values zeroed, untyped: the
            // value column costs nothing), added to the pco row.
            let ts_status: Vec<usize> = ws
                .iter()
                .map(|c| codec::encode(&strip(c, false).columns()).unwrap().len())
                .collect();
            let mut rows: Vec<(String, Row)> = Vec::new();
            let ours_enc = |c: &Chunk| vec![codec::encode_typed(&c.columns(), kinds).unwrap()];
            let ours_dec = |o: &[Vec<u8>]| codec::decode(&o[0]).unwrap().len();
            rows.push((
                "ours v4, all columns (+ server ts, flags)".into(),
                measure(&ws, reps, ours_enc, ours_dec),
            ));
            rows.push((
                "**ours v4, ts+value+status**".into(),
                measure(&no_server, reps, ours_enc, ours_dec),
            ));
            if !only_ours {
                rows.push((
                    "ours v2 (pco columns), ts+value+status".into(),
                    measure(
                        &no_server,
                        reps,
                        |c| vec![v2::encode(&c.columns(), kinds).unwrap()],
                        ours_dec,
                    ),
                ));
                rows.push((
                    "ours v4 untyped, ts+value+status".into(),
                    measure(
                        &no_server,
                        reps,
                        |c| vec![codec::encode(&c.columns()).unwrap()],
                        ours_dec,
                    ),
                ));
                rows.push((
                    "ours v1, ts+value+status".into(),
                    measure(
                        &no_server,
                        reps,
                        |c| vec![v1::encode(&c.columns()).unwrap()],
                        ours_dec,
                    ),
                ));
                for lvl in [3, 19] {
                    rows.push((
                        format!("zstd({lvl}) raw tag+ts+status+value"),
                        measure(
                            &ws,
                            reps,
                            |c| vec![zstd::bulk::compress(&raw_columns(c), lvl).unwrap()],
                            |o| zstd::bulk::decompress(&o[0], 64 << 20).unwrap().len(),
                        ),
                    ));
                }
                rows.push((
                    "Gorilla (+ status RLE)".into(),
                    measure(
                        &ws,
                        reps,
                        |c| {
                            let ss = series(c);
                            let mut v: Vec<Vec<u8>> =
                                ss.iter().map(|(_, t, x, _)| gorilla_encode(t, x)).collect();
                            let st: Vec<u32> =
                                ss.iter().flat_map(|s| s.3.iter().copied()).collect();
                            v.push(vec![0; status_rle(&st) + 2 * ss.len()]); // status + tag ids
                            v
                        },
                        |o| {
                            let (mut t, mut x) = (Vec::new(), Vec::new());
                            o[..o.len() - 1]
                                .iter()
                                .map(|b| gorilla_decode(b, &mut t, &mut x))
                                .sum()
                        },
                    ),
                ));
                let mut pco_row = measure(
                    &ws,
                    reps,
                    |c| {
                        // Timed: pco on the value column, sorted by tag as ours is.
                        let order = codec::tag_order(&c.tag);
                        let vals: Vec<f64> = order
                            .iter()
                            .map(|&i| f64::from_bits(c.value_bits[i]))
                            .collect();
                        vec![pco::standalone::simple_compress(&vals, &pco_cfg).unwrap()]
                    },
                    |o| {
                        pco::standalone::simple_decompress::<f64>(&o[0])
                            .unwrap()
                            .len()
                    },
                );
                // Plus, untimed, our tag + time + status bytes.
                pco_row.bytes += ts_status.iter().sum::<usize>();
                rows.push(("pco(8) on values + our ts + status".into(), pco_row));
            }
            println!(
                "| codec | bytes/sample | vs ours ts+value+status | encode M samples/s | decode M samples/s |"
            );
            println!("|---|---:|---:|---:|---:|");
            let ours = rows[1].1.bytes as f64;
            for (name, r) in &rows {
                println!(
                    "| {name} | {:.3} | {:.2}x | {:.1} | {:.1} |",
                    r.bytes as f64 / n as f64,
                    r.bytes as f64 / ours,
                    n as f64 / r.enc_s / 1e6,
                    n as f64 / r.dec_s / 1e6
                );
            }
            let per = |b: usize| b as f64 / n as f64;
            let ts = per(ts_status.iter().sum());
            println!(
                "\nours by part, bytes/sample: tags + time + status {ts:.3}, values {:.3}, \
                 server timestamps (+ flags) {:.3}",
                per(rows[1].1.bytes) - ts,
                per(rows[0].1.bytes) - per(rows[1].1.bytes)
            );
            let find = |p: &str| rows.iter().find(|(name, _)| name.starts_with(p));
            if let (Some((_, g)), Some((_, p))) = (find("Gorilla"), find("pco(8)")) {
                println!(
                    "verdict: ours ts+value+status {:.3} B/sample vs pco {:.3} ({}), \
                     vs Gorilla {:.3} ({:.2}x smaller, goal >= 2x)",
                    per(rows[1].1.bytes),
                    per(p.bytes),
                    if rows[1].1.bytes <= p.bytes {
                        "beats pco"
                    } else {
                        "WORSE than pco"
                    },
                    per(g.bytes),
                    g.bytes as f64 / ours
                );
            }
        }
    }
}

/// The chunk without server timestamps (server = source, so our latency
/// column is empty) and, unless `values`, without values.
fn strip(c: &Chunk, values: bool) -> Chunk {
    let mut s = c.clone();
    s.server_ns = s.source_ns.clone();
    if !values {
        s.value_bits.iter_mut().for_each(|v| *v = 0);
    }
    s
}
