//! RaptorQ (raptorq) vs Reed-Solomon (reed-solomon-simd) on this machine:
//! one block of K source symbols of 1440 bytes (MTU 1500) with `repair`%
//! repair symbols; decode after losing as many source symbols as there are
//! repair symbols (the worst case the code must still survive).
//! Run: cargo run --release -p tidegate-core --example fec_compare
use std::time::Instant;

use raptorq::{ObjectTransmissionInformation, SourceBlockDecoder, SourceBlockEncoder};
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

const SYMBOL: usize = 1440;

fn data(n: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn rate(bytes: usize, iters: usize, secs: f64) -> f64 {
    (bytes * iters) as f64 * 8.0 / secs / 1e9
}

fn bench_rs(k: usize, r: usize, iters: usize) -> (f64, f64) {
    let d = data(k * SYMBOL);
    let mut enc = ReedSolomonEncoder::new(k, r, SYMBOL).unwrap();
    let mut recovery: Vec<Vec<u8>> = Vec::new();
    let t = Instant::now();
    for _ in 0..iters {
        for c in d.chunks(SYMBOL) {
            enc.add_original_shard(c).unwrap();
        }
        let res = enc.encode().unwrap();
        recovery = res.recovery_iter().map(|s| s.to_vec()).collect();
    }
    let e = t.elapsed().as_secs_f64();
    let mut dec = ReedSolomonDecoder::new(k, r, SYMBOL).unwrap();
    let t = Instant::now();
    for _ in 0..iters {
        for (i, c) in d.chunks(SYMBOL).enumerate().skip(r) {
            dec.add_original_shard(i, c).unwrap();
        }
        for (i, c) in recovery.iter().enumerate() {
            dec.add_recovery_shard(i, c).unwrap();
        }
        let res = dec.decode().unwrap();
        assert_eq!(res.restored_original(0).unwrap(), &d[..SYMBOL]);
    }
    let dd = t.elapsed().as_secs_f64();
    (rate(d.len(), iters, e), rate(d.len(), iters, dd))
}

fn bench_rq(k: usize, r: usize, iters: usize) -> (f64, f64) {
    let d = data(k * SYMBOL);
    let cfg = ObjectTransmissionInformation::new(d.len() as u64, SYMBOL as u16, 1, 1, 8);
    let mut repair = Vec::new();
    let t = Instant::now();
    for _ in 0..iters {
        let enc = SourceBlockEncoder::new(0, &cfg, &d);
        repair = enc.repair_packets(0, r as u32);
    }
    let e = t.elapsed().as_secs_f64();
    let enc = SourceBlockEncoder::new(0, &cfg, &d);
    let src = enc.source_packets();
    let t = Instant::now();
    for _ in 0..iters {
        let mut dec = SourceBlockDecoder::new(0, &cfg, d.len() as u64);
        let pk = src[r..].iter().cloned().chain(repair.iter().cloned());
        let out = dec.decode(pk).expect("decodes");
        assert_eq!(out.len(), d.len());
    }
    let dd = t.elapsed().as_secs_f64();
    (rate(d.len(), iters, e), rate(d.len(), iters, dd))
}

fn main() {
    println!("symbol {SYMBOL} B; Gbit/s of source data per core (encode / decode with r source symbols lost)");
    for &(k, pct) in &[(100usize, 5usize), (1000, 5), (1000, 10), (4000, 5)] {
        let r = (k * pct).div_ceil(100);
        let iters = (200_000 / k).max(5);
        let (re, rd) = bench_rs(k, r, iters);
        let (qe, qd) = bench_rq(k, r, iters.min(60));
        println!(
            "K={k:5} repair={pct:2}%  reed-solomon-simd enc {re:6.2} dec {rd:6.2}   raptorq enc {qe:6.2} dec {qd:6.2}"
        );
    }
}
