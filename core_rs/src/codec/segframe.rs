//! Segmented frames: a v3 column made of one segment per tag run (the time
//! deltas or value deltas within each run), packed with a frame per segment.
//!
//! One frame for the whole column stores every value at the width of the
//! widest tag: a flow meter's deltas of thousands set the width for a
//! temperature that moves by 1. A frame per segment stores each tag's deltas
//! at its own width, which on plant data is smaller than pco's binning of the
//! whole column (pco models the mixture of all tags, not each tag) and runs
//! at bit-packing speed. Both sides know the segment lengths from the tag
//! runs, so they are not stored.
//!
//! Layout after the method byte: the segments' minimums (one per non-empty
//! segment, a v3 column), their widths (one per segment of two or more
//! values, a v3 column), `g` (varint, the common divisor of every value's
//! distance from its segment's minimum), then the packed bits of every
//! segment of two or more values, back to back. A segment of one value is
//! its minimum alone.

use super::column::{get3_into, put3_small};
use super::pack::{self, BitWriter, Exact};
use super::varint::{put_u64, Reader};
use super::CodecError;

/// The encoder's plan for one column, in reused buffers.
#[derive(Default)]
pub struct Plan {
    /// Per non-empty segment: its minimum (of `r` in a multiple segment).
    mins: Vec<i64>,
    /// Per segment of two or more: the width of its values (of `r`).
    widths: Vec<i64>,
    /// Per segment of two or more: its base `B`, 0 when values are plain.
    bases: Vec<i64>,
    /// Per multiple segment: the minimum and width of `q`.
    qmins: Vec<i64>,
    qwidths: Vec<i64>,
    g: u64,
    /// Bits of the packed body.
    bits: u64,
    /// `estimate`'s sample of the segments: their values and lengths.
    sample: Vec<i64>,
    sample_lens: Vec<u32>,
}

/// The headers' bytes that do not grow with the segments (an upper bound):
/// the method byte, each of the five small columns' method byte, minimum and
/// divisor varints (21), and `g`'s varint.
const HEAD_FIXED: usize = 1 + 5 * 21 + 10;

/// A multiple segment is tried from this many values on.
const MULT_MIN_LEN: usize = 2;
/// ... with values below this (so `q * B` and `r` are exact in an i64 and
/// in the f64 that finds `q`): time deltas of up to 52 days in ns.
const MULT_MAX: i64 = 1 << 52;

/// Split the values of a segment into `v = q * B + r`, `B` a multiple of `g`
/// near the segment's smallest step: a tag sampled every 500 ms that reports
/// on change has time deltas of `q` periods plus clock jitter, and `q` and
/// the jitter are both narrow where `v` is wide. None if it does not fit.
fn try_mult(s: &[i64], lo: i64, hi: i64, g: u64) -> Option<(i64, i64, u32, i64, u32)> {
    if lo <= 0 || hi >= MULT_MAX {
        return None;
    }
    // The period: the mean of the values within half a step of the smallest.
    let lim = lo + lo / 2 + 1;
    // Values below `lim` (< 1.5 * 2^52) add up past an i64 from 2^10 of
    // them: summed in i128, divided in i64 when the sum fits (an i128
    // division is a library call).
    let (sum, cnt) = s
        .iter()
        .filter(|&&v| v < lim)
        .fold((0i128, 0i64), |(s, c), &v| (s + i128::from(v), c + 1));
    let mean = i64::try_from(sum).map_or_else(|_| (sum / i128::from(cnt)) as i64, |s| s / cnt);
    let g = g as i64;
    let b = (mean + g / 2) / g * g;
    if b <= 0 {
        return None;
    }
    let inv = 1.0 / b as f64;
    let (mut qlo, mut qhi, mut rlo, mut rhi) = (i64::MAX, i64::MIN, i64::MAX, i64::MIN);
    for &v in s {
        let (q, r) = split(v, b, inv);
        qlo = qlo.min(q);
        qhi = qhi.max(q);
        rlo = rlo.min(r);
        rhi = rhi.max(r);
    }
    let wq = 64 - ((qhi - qlo) as u64).leading_zeros();
    let wr = 64 - (((rhi - rlo) / g) as u64).leading_zeros();
    Some((b, rlo, wr, qlo, wq))
}

/// Whether one base for the whole column looks worth planning: `v = q * B +
/// r` tried on about 64 values spread over `vals`, against width `w`.
pub fn mult_looks_narrower(vals: &[i64], w: u32) -> bool {
    let step = (vals.len() / 64).max(1);
    let sample: Vec<i64> = vals.iter().step_by(step).copied().collect();
    let (lo, hi) = (sample.iter().min(), sample.iter().max());
    let (Some(&lo), Some(&hi)) = (lo, hi) else {
        return false;
    };
    let g = pack::common_divisor(sample.iter().map(|&v| v.wrapping_sub(lo) as u64)).max(1);
    try_mult(&sample, lo, hi, g).is_some_and(|(_, _, wr, _, wq)| wq + wr + 2 < w)
}

/// `q` nearest `v / b` (for `0 < v < 2^52`, `b >= 1`), and `r = v - q * b`.
/// Adding 2^52 rounds `v / b` to an integer in the mantissa's low bits: no
/// saturating float-to-int conversion (`f64::round` is a libm call on
/// baseline x86-64). Encoder only: the decoder reads `q` and `r`.
#[inline]
fn split(v: i64, b: i64, inv: f64) -> (i64, i64) {
    const TWO52: f64 = 4_503_599_627_370_496.0;
    let q = ((v as f64 * inv + TWO52).to_bits() - TWO52.to_bits()) as i64;
    (q, v - q * b)
}

/// Plan `vals` split into `segs` (lengths summing to `vals.len()`) and return
/// the bytes it would take (an upper bound), or None when no segment has two
/// values (nothing to gain). `mult` also tries multiple segments.
pub fn plan(vals: &[i64], segs: &[u32], mult: bool, p: &mut Plan) -> Option<usize> {
    debug_assert_eq!(segs.iter().map(|&l| l as usize).sum::<usize>(), vals.len());
    for v in [
        &mut p.mins,
        &mut p.widths,
        &mut p.bases,
        &mut p.qmins,
        &mut p.qwidths,
    ] {
        v.clear();
    }
    let mut at = 0usize;
    let mut g = 0u64;
    // First pass: each segment's min and range; the divisor over all distances.
    for &l in segs {
        let l = l as usize;
        if l == 0 {
            continue;
        }
        let s = &vals[at..at + l];
        at += l;
        let (mut lo, mut hi) = (s[0], s[0]);
        for &v in s {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        p.mins.push(lo);
        if l >= 2 {
            p.widths.push(hi); // the max for now
            if g != 1 {
                g = gcd_with(g, s.iter().map(|&v| v.wrapping_sub(lo) as u64));
            }
        }
    }
    if p.widths.is_empty() {
        return None;
    }
    let g = g.max(1);
    let mut bits = 0u64;
    for (at, l, m, j) in walk(segs).filter(|w| w.1 >= 2) {
        let (s, lo) = (&vals[at..at + l], p.mins[m]);
        let hi = p.widths[j];
        let w = 64 - (hi.wrapping_sub(lo) as u64 / g).leading_zeros();
        let (mut base, mut seg_bits) = (0i64, l as u64 * u64::from(w));
        if mult && l >= MULT_MIN_LEN && w > 8 {
            if let Some((b, rlo, wr, qlo, wq)) = try_mult(s, lo, hi, g) {
                let mb = l as u64 * u64::from(wq + wr);
                if mb + 16 < seg_bits {
                    (base, seg_bits) = (b, mb);
                    p.mins[m] = rlo;
                    p.qmins.push(qlo);
                    p.qwidths.push(wq.into());
                    p.widths[j] = wr.into();
                }
            }
        }
        if base == 0 {
            p.widths[j] = w.into();
        }
        p.bases.push(base);
        bits += seg_bits;
    }
    p.g = g;
    p.bits = bits;
    let body = |v: &[i64], w: u32| pack::body_len(v.len(), w);
    let mins_w = pack::frame(&p.mins, true).w;
    let head = HEAD_FIXED
        + body(&p.mins, mins_w)
        + body(&p.widths, 7)
        + body(&p.bases, if p.qmins.is_empty() { 0 } else { 64 })
        + body(&p.qmins, 64)
        + body(&p.qwidths, 7);
    Some(head + bits.div_ceil(8) as usize)
}

/// Estimate `plan`'s bytes from every `STRIDE`th segment, at about an
/// eighth of its cost: on a 1 s window of a large plant (runs of one to
/// three samples) the per-segment headers make `segframe` lose to one frame
/// almost always, and planning it in full was 15 % of the encoder's time.
/// None when there are too few segments to sample (plan them in full).
pub fn estimate(vals: &[i64], segs: &[u32], mult: bool, p: &mut Plan) -> Option<usize> {
    const STRIDE: usize = 8;
    if segs.len() < 64 * STRIDE {
        return None;
    }
    let (mut sample, mut lens) = (
        std::mem::take(&mut p.sample),
        std::mem::take(&mut p.sample_lens),
    );
    sample.clear();
    lens.clear();
    let mut at = 0usize;
    for (i, &l) in segs.iter().enumerate() {
        let l = l as usize;
        if i % STRIDE == 0 {
            sample.extend_from_slice(&vals[at..at + l]);
            lens.push(l as u32);
        }
        at += l;
    }
    let est = plan(&sample, &lens, mult, p);
    let scaled = |b: usize| b.saturating_sub(HEAD_FIXED) * segs.len() / lens.len() + HEAD_FIXED;
    let est = est.map(scaled);
    (p.sample, p.sample_lens) = (sample, lens);
    Some(est.unwrap_or(usize::MAX))
}

/// Each non-empty segment: (its start in the column, its length, its index
/// among non-empty segments, its index among segments of two or more).
fn walk(segs: &[u32]) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
    let (mut at, mut m, mut j) = (0usize, 0usize, 0usize);
    segs.iter().filter(|&&l| l > 0).map(move |&l| {
        let (l, here) = (l as usize, (at, l as usize, m, j));
        at += l;
        m += 1;
        j += usize::from(l >= 2);
        here
    })
}

fn gcd_with(g: u64, dists: impl Iterator<Item = u64>) -> u64 {
    pack::common_divisor(std::iter::once(g).chain(dists))
}

/// A column of a few values packed in a frame with its divisor.
fn put_frame(out: &mut Vec<u8>, vals: &[i64]) {
    if vals.is_empty() {
        return;
    }
    let f = pack::frame(vals, true);
    out.push(super::column::METHOD_PACK + f.w as u8);
    pack::put(out, vals, f);
}

/// Write the planned column (after the caller's method byte).
pub fn put(out: &mut Vec<u8>, vals: &[i64], segs: &[u32], p: &Plan) {
    put_frame(out, &p.mins);
    put3_small(out, &p.widths);
    put_frame(out, &p.bases);
    put_frame(out, &p.qmins);
    put3_small(out, &p.qwidths);
    put_u64(out, p.g);
    out.reserve(p.bits.div_ceil(8) as usize + 8);
    let div = Exact::new(p.g);
    let mut bw = BitWriter::new();
    let mut k = 0usize;
    for (at, l, m, j) in walk(segs).filter(|w| w.1 >= 2) {
        let (s, lo) = (&vals[at..at + l], p.mins[m]);
        let (w, b) = (p.widths[j] as u32, p.bases[j]);
        if b != 0 {
            let (qlo, wq) = (p.qmins[k], p.qwidths[k] as u32);
            k += 1;
            let inv = 1.0 / b as f64;
            if wq > 0 {
                for &v in s {
                    bw.push(out, (split(v, b, inv).0 - qlo) as u64, wq);
                }
            }
            if w > 0 {
                for &v in s {
                    bw.push(out, div.div((split(v, b, inv).1 - lo) as u64), w);
                }
            }
        } else if w > 0 {
            for &v in s {
                bw.push(out, div.div(v.wrapping_sub(lo) as u64), w);
            }
        }
    }
    bw.finish(out);
}

/// Buffers the decoder reuses.
#[derive(Default)]
pub struct Bufs {
    mins: Vec<i64>,
    widths: Vec<i64>,
    bases: Vec<i64>,
    qmins: Vec<i64>,
    qwidths: Vec<i64>,
    q: Vec<i64>,
    pad: Vec<u8>,
}

impl Bufs {
    pub fn trim(&mut self, keep: usize) {
        for v in [
            &mut self.mins,
            &mut self.widths,
            &mut self.bases,
            &mut self.qmins,
            &mut self.qwidths,
            &mut self.q,
        ] {
            if v.capacity() > keep {
                *v = Vec::new();
            }
        }
        if self.pad.capacity() > keep * 8 {
            self.pad = Vec::new();
        }
    }
}

fn widths_ok(ws: &[i64], field: &'static str, at: usize) -> Result<(), CodecError> {
    match ws.iter().find(|w| !(0..=64).contains(*w)) {
        Some(w) => Err(CodecError::Invalid {
            field,
            offset: at,
            msg: format!("segment width {w} is not 0..64"),
        }),
        None => Ok(()),
    }
}

/// Read a segmented column (its method byte already read) of `segs` into
/// `out` (cleared by the caller).
pub fn get(
    r: &mut Reader<'_>,
    segs: &[u32],
    field: &'static str,
    b: &mut Bufs,
    out: &mut Vec<i64>,
) -> Result<(), CodecError> {
    let n_mins = segs.iter().filter(|&&l| l >= 1).count();
    let n_wide = segs.iter().filter(|&&l| l >= 2).count();
    get3_into(r, n_mins, field, &mut b.mins)?;
    let at = r.pos();
    get3_into(r, n_wide, field, &mut b.widths)?;
    widths_ok(&b.widths, field, at)?;
    get3_into(r, n_wide, field, &mut b.bases)?;
    let n_mult = b.bases.iter().filter(|&&x| x != 0).count();
    get3_into(r, n_mult, field, &mut b.qmins)?;
    let at = r.pos();
    get3_into(r, n_mult, field, &mut b.qwidths)?;
    widths_ok(&b.qwidths, field, at)?;
    let mut bits = 0u64;
    let mut k = 0usize;
    for ((&w, &base), &l) in b
        .widths
        .iter()
        .zip(&b.bases)
        .zip(segs.iter().filter(|&&l| l >= 2))
    {
        let mut w = w as u64;
        if base != 0 {
            w += b.qwidths[k] as u64;
            k += 1;
        }
        bits += u64::from(l) * w;
    }
    let g = pack::read_divisor(r, field)?;
    let len = usize::try_from(bits.div_ceil(8)).unwrap_or(usize::MAX);
    let body = r.bytes(len, field)?; // bounds the work below by the input's size
    b.pad.clear();
    b.pad.extend_from_slice(body);
    b.pad.resize(body.len() + 16, 0);
    let total: usize = segs.iter().map(|&l| l as usize).sum();
    out.reserve(total);
    let (mut bit, mut k) = (0usize, 0usize);
    for (_, l, m, j) in walk(segs) {
        let lo = b.mins[m];
        if l == 1 {
            out.push(lo);
            continue;
        }
        // A multiple segment's `q`s come first; `unpack_padded` reads width 0
        // as a run of the minimum.
        let (w, base) = (b.widths[j] as u32, b.bases[j]);
        if base != 0 {
            let (qlo, wq) = (b.qmins[k], b.qwidths[k] as u32);
            k += 1;
            b.q.clear();
            pack::unpack_padded(&b.pad, bit, wq, l, |x| qlo.wrapping_add(x as i64), &mut b.q);
            bit += l * wq as usize;
        }
        let at = out.len();
        let g = g as i64;
        pack::unpack_padded(
            &b.pad,
            bit,
            w,
            l,
            |p| lo.wrapping_add((p as i64).wrapping_mul(g)),
            out,
        );
        bit += l * w as usize;
        if base != 0 {
            for (v, &q) in out[at..].iter_mut().zip(&b.q) {
                *v = v.wrapping_add(q.wrapping_mul(base));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(vals: &[i64], segs: &[u32]) -> Option<usize> {
        let mut p = Plan::default();
        let est = plan(vals, segs, true, &mut p)?;
        let mut out = Vec::new();
        put(&mut out, vals, segs, &p);
        assert!(
            out.len() <= est,
            "estimate {est} below the real {}",
            out.len()
        );
        let mut r = Reader::new(&out);
        let mut got = Vec::new();
        get(&mut r, segs, "x", &mut Bufs::default(), &mut got).unwrap();
        assert_eq!(r.remaining(), 0);
        assert_eq!(got, vals);
        Some(out.len())
    }

    #[test]
    fn each_segment_gets_its_own_width() {
        // A slow tag moving by 1 and a fast one moving by thousands: one
        // frame stores both at 14 bits, segments at 1 and 14.
        let slow: Vec<i64> = (0..200).map(|i| i % 2).collect();
        let fast: Vec<i64> = (0..200).map(|i| (i * 7919) % 10_000).collect();
        let vals: Vec<i64> = slow.iter().chain(&fast).copied().collect();
        let seg = round_trip(&vals, &[200, 200]).unwrap();
        let whole = pack::body_len(400, pack::frame(&vals, true).w);
        assert!(seg * 10 < whole * 6, "{seg} vs {whole}");
    }

    #[test]
    fn shapes_and_extremes_round_trip() {
        round_trip(&[5, 5, 7, 1, 2, 3], &[0, 3, 0, 1, 2]).unwrap();
        round_trip(&[i64::MIN, i64::MAX, 0, -1], &[2, 2]).unwrap();
        round_trip(&[u64::MAX as i64, 0, 3], &[3]).unwrap();
        // A common step: timestamps at 100 ns.
        round_trip(&[0, 300, 1000, 5, 305], &[3, 2]).unwrap();
        // Constant segments take no body bits.
        round_trip(&[9; 10], &[5, 5]).unwrap();
        for w in 1..=64u32 {
            let top = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
            let vals: Vec<i64> = (0..37u64)
                .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & top) as i64)
                .chain([top as i64, 0])
                .collect();
            round_trip(&vals, &[1, 20, 0, 18]).unwrap();
        }
        // Only segments of one value: nothing to plan.
        assert!(round_trip(&[1, 2, 3], &[1, 1, 0, 1]).is_none());
    }

    #[test]
    fn time_deltas_split_into_periods_and_jitter() {
        // 1 s sampling reported on change (1-4 periods), jitter of +-1.5 ms
        // at 100 ns: 32 bits a delta in one frame, about 2 + 15 split.
        let mut r = crate::testutil::Rng::new(3);
        let vals: Vec<i64> = (0..400)
            .map(|_| {
                (1 + r.below(4) as i64) * 1_000_000_000 + (r.below(30_001) as i64 - 15_000) * 100
            })
            .collect();
        let split = round_trip(&vals, &[400]).unwrap();
        assert!(split * 8 < 400 * 18, "{split} bytes");
        // Per segment, with different periods; and the smallest step of 1.
        let mut v2 = vals.clone();
        v2[200..].iter_mut().for_each(|v| *v /= 2);
        round_trip(&v2, &[200, 200]).unwrap();
        round_trip(&[1, 2, 1, 3, 1, 1, 2, 5, 9, 1], &[10]).unwrap();
        // Thousands of deltas of 2^51 (26 days in ns): the period's sum is
        // past an i64.
        let big: Vec<i64> = (0..5000).map(|i| (1 << 51) + (i * 7919) % 1000).collect();
        round_trip(&big, &[5000]).unwrap();
        // Out of the exact range: plain frames.
        round_trip(&[1 << 53, (1 << 53) + 7, 3 << 52, 1 << 60], &[4]).unwrap();
    }

    #[test]
    fn bad_bytes_give_errors_not_panics() {
        let vals: Vec<i64> = (0..50).map(|i| i * i).collect();
        let segs = [10u32, 0, 25, 15];
        let mut p = Plan::default();
        plan(&vals, &segs, true, &mut p).unwrap();
        let mut out = Vec::new();
        put(&mut out, &vals, &segs, &p);
        for cut in 0..out.len() {
            let mut got = Vec::new();
            let res = get(
                &mut Reader::new(&out[..cut]),
                &segs,
                "x",
                &mut Bufs::default(),
                &mut got,
            );
            assert!(res.is_err(), "cut at {cut} decoded");
        }
        for i in 0..out.len() {
            for x in [0u8, 0x41, 0xff] {
                let mut bad = out.clone();
                bad[i] = x;
                let mut got = Vec::new();
                let _ = get(
                    &mut Reader::new(&bad),
                    &segs,
                    "x",
                    &mut Bufs::default(),
                    &mut got,
                );
            }
        }
    }
}
