//! Binned columns (codec v4, column method 69): each value is a bin's index,
//! Huffman coded, then its offset from the bin's low end in the bin's width.
//!
//! This is what pco does (quantile bins, entropy-coded) without its sort:
//! the bins come from a histogram built in one pass, so a long column costs
//! a few passes instead of pco's 20 ns a value, which was 28 % of the
//! encoder's time on a large plant's 1 s window. Two ways to bucket:
//! - linear, `x = (v - min) / g` by its top 8, 6 or 4 bits: values clustered
//!   around a few points (the first times of tags on a few sampling grids,
//!   the time deltas of tags at a few periods) get a narrow bin per cluster;
//! - by magnitude, `x = zigzag(v)` by its bit length: deltas that are mostly
//!   small with a heavy tail, each tag at its own scale.
//!
//! Each bin is stored as its lowest `x`, the bit width of its range and its
//! code length (canonical Huffman, at most `MAX_CODE` bits).

use super::column::{varint_len, ColumnNum};
use super::pack::{read_divisor, BitSink, Exact, Frame};
use super::v2::invalid;
use super::varint::{put_u64, unzigzag, zigzag, Reader};
use super::CodecError;

/// Bins a column may have (a linear bucketing has 2^8 buckets at most).
pub const MAX_BINS: usize = 256;
/// The longest code: the decoder's lookup table has 2^MAX_CODE entries.
const MAX_CODE: u32 = 11;
/// `x = (v - base) / g`.
const MAP_LINEAR: u8 = 0;
/// `x = zigzag(v)`.
const MAP_ZIGZAG: u8 = 1;
/// Linear buckets are `x`'s top bits.
const TOP_BITS: u32 = 8;
/// Value `i` is in bit stream `i % LANES`: the decoder follows the streams
/// side by side, so the wait for one code's table lookup (which gives where
/// the next code starts) overlaps the others'.
const LANES: usize = 4;

/// One bin: how many values fall in it and the range of their `x`.
#[derive(Clone, Copy)]
struct Bin {
    count: u64,
    lo: u64,
    hi: u64,
}

impl Bin {
    const EMPTY: Bin = Bin {
        count: 0,
        lo: u64::MAX,
        hi: 0,
    };

    #[inline]
    fn add(&mut self, x: u64) {
        self.count += 1;
        self.lo = self.lo.min(x);
        self.hi = self.hi.max(x);
    }

    fn merge(self, o: Bin) -> Bin {
        Bin {
            count: self.count + o.count,
            lo: self.lo.min(o.lo),
            hi: self.hi.max(o.hi),
        }
    }

    fn width(&self) -> u32 {
        64 - (self.hi - self.lo).leading_zeros()
    }
}

/// The encoder's plan for one column.
pub struct Plan {
    map: u8,
    frame: Frame,
    /// Linear: a value's bucket is `x >> shift`; by magnitude: `x`'s bit length.
    shift: u32,
    /// Each bucket's bin (0 for the empty buckets, which no value falls in).
    bin_of: Vec<u16>,
    bins: Vec<Bin>,
    lens: Vec<u8>,
    /// Canonical codes, bit-reversed for the little-endian bit stream.
    codes: Vec<u64>,
    body_bits: u64,
}

/// Estimated (body, header) bits of a column cut into `bins` (in ascending
/// order): offsets and the bins' entropy, and the bins' table.
fn estimate(bins: impl Iterator<Item = Bin>, n: u64) -> (f64, f64) {
    let (mut body, mut head, mut prev) = (0f64, 0f64, 0u64);
    for b in bins.filter(|b| b.count > 0) {
        let c = b.count as f64;
        body += c * (f64::from(b.width()) + log2_approx(n as f64 / c));
        head += 8.0 * (2 + varint_len(b.lo - prev)) as f64;
        prev = b.lo;
    }
    (body, head)
}

/// log2 within 0.01 (an estimate needs no more, and `f64::log2` is a libm
/// call): the exponent, plus a quadratic in the mantissa.
fn log2_approx(x: f64) -> f64 {
    let b = x.to_bits();
    let e = ((b >> 52) & 0x7ff) as i64 - 1023;
    let m = f64::from_bits((b & ((1 << 52) - 1)) | (1023 << 52)) - 1.0;
    e as f64 + m * (1.3465 - 0.3465 * m)
}

/// `x` of `v` in a linear map (`(v - min) / g`).
#[inline]
fn linear_x(v: i64, f: Frame, div: &Exact) -> u64 {
    let d = v.wrapping_sub(f.min) as u64;
    if f.g == 1 {
        d
    } else {
        div.div(d)
    }
}

/// `x` and bucket of a value bucketed linearly (`x >> shift`).
fn linear_key(f: Frame, div: Exact, shift: u32) -> impl Fn(i64) -> (u64, usize) {
    move |v| {
        let x = linear_x(v, f, &div);
        (x, (x >> shift) as usize)
    }
}

#[inline]
fn bit_len(z: u64) -> usize {
    (64 - z.leading_zeros()) as usize
}

/// Plan `vals` (whose frame is `f`) as bins and return the bytes they take
/// after the method byte (at most: lanes round up to a byte each). None
/// unless a sample of the values says they take under 7/8 of `beat` bytes
/// (the best other coding): bins cost more time than one frame both ways,
/// so they must pay for it.
pub fn plan(vals: &[i64], f: Frame, beat: usize) -> Option<(usize, Plan)> {
    if f.w < 2 || vals.is_empty() {
        return None;
    }
    let n = vals.len();
    let div = Exact::new(f.g);
    let shift = f.w.saturating_sub(TOP_BITS);
    // Pick the bucketing on about 1024 values: linear at 8, 6 or 4 top bits
    // of x = (v - min) / g, or by magnitude of zigzag(v).
    let step = (n / 1024).max(1);
    // On the stack: a plan for a column of a few hundred values must not
    // cost allocations.
    let mut lin = [Bin::EMPTY; 1 << TOP_BITS];
    let lin = &mut lin[..1 << (f.w - shift)];
    let mut mag = [Bin::EMPTY; 65];
    for &v in vals.iter().step_by(step) {
        let x = linear_x(v, f, &div);
        lin[(x >> shift) as usize].add(x);
        let (z, k) = magnitude_key(v);
        mag[k].add(z);
    }
    let merged = |m: usize| {
        lin.chunks(m)
            .map(|c| c.iter().fold(Bin::EMPTY, |a, &b| a.merge(b)))
    };
    let seen = n.div_ceil(step) as u64;
    let total = |(body, head): (f64, f64)| body * step as f64 + head;
    let mut best = (
        total(estimate(mag.iter().copied(), seen)),
        MAP_ZIGZAG,
        1usize,
    );
    for m in [1usize, 4, 16] {
        if m > 1 && lin.len() <= m {
            break;
        }
        let e = total(estimate(merged(m), seen));
        if e < best.0 {
            best = (e, MAP_LINEAR, m);
        }
    }
    let (bits, map, m) = best;
    if bits > beat as f64 * 7.0 {
        return None;
    }
    // The chosen bucketing over every value (the sample was every value
    // when `step` is 1).
    let (buckets, shift): (Vec<Bin>, u32) = match (map, step) {
        (MAP_LINEAR, 1) => (merged(m).collect(), shift + m.trailing_zeros()),
        (MAP_LINEAR, _) => {
            let shift = shift + m.trailing_zeros();
            let b = histogram(vals, lin.len().div_ceil(m), linear_key(f, div, shift));
            (b, shift)
        }
        (_, 1) => (mag.to_vec(), 0),
        _ => (histogram(vals, mag.len(), magnitude_key), 0),
    };
    let mut bin_of = vec![0u16; buckets.len()];
    let mut bins = Vec::new();
    for (i, b) in buckets.iter().enumerate() {
        if b.count > 0 {
            bin_of[i] = bins.len() as u16;
            bins.push(*b);
        }
    }
    let counts: Vec<u64> = bins.iter().map(|b| b.count).collect();
    let lens = huffman_lengths(&counts);
    let codes = canonical_codes(&lens);
    let body_bits: u64 = bins
        .iter()
        .zip(&lens)
        .map(|(b, &l)| b.count * u64::from(b.width() + u32::from(l)))
        .sum();
    let mut head = 1 + varint_len(bins.len() as u64);
    if map == MAP_LINEAR {
        head += varint_len(zigzag(f.min)) + varint_len(f.g);
    }
    let mut prev = 0;
    for b in &bins {
        head += 2 + varint_len(b.lo - prev);
        prev = b.lo;
    }
    // Each lane ends on a byte: at most a byte more each.
    let body = body_bits.div_ceil(8) as usize + LANES - 1;
    let p = Plan {
        map,
        frame: f,
        shift,
        bin_of,
        bins,
        lens,
        codes,
        body_bits,
    };
    Some((head + LANES * varint_len(body as u64) + body, p))
}

/// The bins of `len` buckets that `key` (a value's `x` and bucket) fills.
/// Neighbouring values mostly fall in one bin: four histograms, merged at
/// the end, so that each bin's update need not wait for the previous one's.
fn histogram(vals: &[i64], len: usize, key: impl Fn(i64) -> (u64, usize)) -> Vec<Bin> {
    let mut b = vec![Bin::EMPTY; 4 * len];
    let (b0, rest) = b.split_at_mut(len);
    let (b1, rest) = rest.split_at_mut(len);
    let (b2, b3) = rest.split_at_mut(len);
    let mut quads = vals.chunks_exact(4);
    for q in &mut quads {
        let (x0, k0) = key(q[0]);
        let (x1, k1) = key(q[1]);
        let (x2, k2) = key(q[2]);
        let (x3, k3) = key(q[3]);
        b0[k0].add(x0);
        b1[k1].add(x1);
        b2[k2].add(x2);
        b3[k3].add(x3);
    }
    for &v in quads.remainder() {
        let (x, k) = key(v);
        b0[k].add(x);
    }
    for i in 0..len {
        b0[i] = b0[i].merge(b1[i]).merge(b2[i]).merge(b3[i]);
    }
    b.truncate(len);
    b
}

/// `x` and bucket of a value bucketed by magnitude.
#[inline]
fn magnitude_key(v: i64) -> (u64, usize) {
    let z = zigzag(v);
    (z, bit_len(z))
}

/// Code lengths (at most `MAX_CODE`) of a Huffman code for `counts` (all
/// non-zero): the two-queue construction over counts sorted once; counts
/// are halved until the longest code fits.
fn huffman_lengths(counts: &[u64]) -> Vec<u8> {
    let k = counts.len();
    let mut lens = vec![0u8; k];
    if k <= 1 {
        return lens;
    }
    let mut c = counts.to_vec();
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        idx.sort_by_key(|&i| c[i]);
        let mut w: Vec<u64> = idx.iter().map(|&i| c[i]).collect();
        let mut parent = vec![0usize; 2 * k - 1];
        let (mut leaf, mut node) = (0usize, k);
        for new in k..2 * k - 1 {
            let mut take = || {
                if leaf < k && (node >= new || w[leaf] <= w[node]) {
                    leaf += 1;
                    leaf - 1
                } else {
                    node += 1;
                    node - 1
                }
            };
            let (a, b) = (take(), take());
            w.push(w[a] + w[b]);
            (parent[a], parent[b]) = (new, new);
        }
        // Parents come after their children: depths from the root down.
        let mut depth = vec![0u32; 2 * k - 1];
        for j in (0..2 * k - 2).rev() {
            depth[j] = depth[parent[j]] + 1;
        }
        if depth[..k].iter().all(|&d| d <= MAX_CODE) {
            for (j, &i) in idx.iter().enumerate() {
                lens[i] = depth[j] as u8;
            }
            return lens;
        }
        for x in &mut c {
            *x = x.div_ceil(2);
        }
    }
}

/// Canonical codes for `lens` (as deflate assigns them), each bit-reversed
/// so the code's first bit is the stream's next bit.
fn canonical_codes(lens: &[u8]) -> Vec<u64> {
    let mut count = [0u64; MAX_CODE as usize + 2];
    for &l in lens {
        count[l as usize] += 1;
    }
    count[0] = 0;
    let mut next = [0u64; MAX_CODE as usize + 2];
    let mut code = 0u64;
    for bits in 1..=MAX_CODE as usize {
        code = (code + count[bits - 1]) << 1;
        next[bits] = code;
    }
    lens.iter()
        .map(|&l| {
            if l == 0 {
                return 0;
            }
            let c = next[l as usize];
            next[l as usize] += 1;
            c.reverse_bits() >> (64 - u32::from(l))
        })
        .collect()
}

/// Write the planned column (after the caller's method byte).
pub fn put(out: &mut Vec<u8>, vals: &[i64], p: &Plan) {
    out.push(p.map);
    if p.map == MAP_LINEAR {
        put_u64(out, zigzag(p.frame.min));
        put_u64(out, p.frame.g);
    }
    put_u64(out, p.bins.len() as u64);
    let mut prev = 0;
    for (b, &l) in p.bins.iter().zip(&p.lens) {
        put_u64(out, b.lo - prev);
        out.push(b.width() as u8);
        out.push(l);
        prev = b.lo;
    }
    // Per bucket: its bin's low end, code and code length, width.
    let entries: Vec<(u64, u64, u32, u32)> = p
        .bin_of
        .iter()
        .map(|&j| {
            let j = usize::from(j);
            match p.bins.get(j) {
                Some(b) => (b.lo, p.codes[j], u32::from(p.lens[j]), b.width()),
                None => (0, 0, 0, 0),
            }
        })
        .collect();
    // The lanes one after the other, then their lengths and bodies. Each
    // lane takes at most a byte more than its bits: room for all, and the
    // sink's slack.
    let mut body = vec![0u8; p.body_bits.div_ceil(8) as usize + LANES + 8];
    let mut ends = [0usize; LANES];
    let mut start = 0;
    for (lane, end) in ends.iter_mut().enumerate() {
        let lane_vals = vals.iter().skip(lane).step_by(LANES).copied();
        let sink = BitSink::new(&mut body[start..]);
        let len = if p.map == MAP_LINEAR {
            let key = linear_key(p.frame, Exact::new(p.frame.g), p.shift);
            put_body(sink, lane_vals, &entries, key)
        } else {
            put_body(sink, lane_vals, &entries, magnitude_key)
        };
        start += len;
        *end = start;
    }
    let mut start = 0;
    for end in ends {
        put_u64(out, (end - start) as u64);
        start = end;
    }
    out.extend_from_slice(&body[..start]);
}

/// The bit stream: each value's code, then its offset in its bin. Returns
/// its length in bytes.
#[inline]
fn put_body(
    mut bw: BitSink<'_>,
    vals: impl Iterator<Item = i64>,
    entries: &[(u64, u64, u32, u32)],
    key: impl Fn(i64) -> (u64, usize),
) -> usize {
    for v in vals {
        let (x, bucket) = key(v);
        let (lo, code, l, w) = entries[bucket];
        let off = x - lo;
        if l + w <= 56 {
            bw.push(code | off << l, l + w);
        } else {
            bw.push(code, l);
            bw.push_wide(off, w);
        }
    }
    bw.bytes()
}

/// Read a binned column of `n` values (its method byte already read) into
/// `out` (cleared by the caller).
pub fn get<T: ColumnNum>(
    r: &mut Reader<'_>,
    n: usize,
    field: &'static str,
    out: &mut Vec<T>,
) -> Result<(), CodecError> {
    let at = r.pos();
    let map = r.u8(field)?;
    let (base, g) = match map {
        MAP_LINEAR => (unzigzag(r.varint(field)?), read_divisor(r, field)?),
        MAP_ZIGZAG => (0, 1),
        m => return Err(invalid(field, at, format!("unknown bin mapping {m}"))),
    };
    let at = r.pos();
    let k = r.varint_max(field, MAX_BINS as u64)? as usize;
    if k == 0 {
        return Err(invalid(field, at, "no bins".into()));
    }
    // Per bin: low end, width, code length.
    let mut bins = Vec::with_capacity(k);
    let mut lo = 0u64;
    for _ in 0..k {
        lo = lo.wrapping_add(r.varint(field)?);
        let at = r.pos();
        let (w, l) = (u32::from(r.u8(field)?), r.u8(field)?);
        if w > 64 || u32::from(l) > MAX_CODE {
            return Err(invalid(
                field,
                at,
                format!("bin width {w} or code length {l} out of range"),
            ));
        }
        bins.push((lo, w, l));
    }
    let lens: Vec<u8> = bins.iter().map(|b| b.2).collect();
    // A complete prefix code (Kraft sum exactly 1), or one bin of length 0:
    // every table entry then decodes, so no bit string is invalid.
    let kraft: u64 = lens
        .iter()
        .map(|&l| 1u64 << (MAX_CODE - u32::from(l)))
        .sum();
    let complete = if k == 1 {
        lens[0] == 0
    } else {
        lens.iter().all(|&l| l > 0) && kraft == 1 << MAX_CODE
    };
    if !complete {
        return Err(invalid(
            field,
            at,
            "bin code lengths are not a complete code".into(),
        ));
    }
    // Code lookup: the next `maxl` bits (the longest code) give the symbol
    // (bits 0-7), its code length (8-15) and code length plus width (16-23).
    // Sized to the longest code, not `MAX_CODE`: filling 2048 entries per
    // column was a third of the decode time of a 731-sample chunk.
    let maxl = lens.iter().copied().max().unwrap_or(0);
    let mut table = vec![0u32; 1 << maxl];
    for (s, (&c, &(_, w, l))) in canonical_codes(&lens).iter().zip(&bins).enumerate() {
        let step = 1usize << l;
        let mut j = c as usize;
        while j < table.len() {
            table[j] = s as u32 | u32::from(l) << 8 | (u32::from(l) + w) << 16;
            j += step;
        }
    }
    // Per symbol: low end and the width's mask.
    let syms: Vec<(u64, u64)> = bins
        .iter()
        .map(|&(lo, w, _)| (lo, if w == 0 { 0 } else { u64::MAX >> (64 - w) }))
        .collect();
    let at = r.pos();
    let mut lane_lens = [0usize; LANES];
    for l in &mut lane_lens {
        *l = r.varint_max(field, r.remaining() as u64)? as usize;
    }
    let total = lane_lens.iter().try_fold(0usize, |a, &l| a.checked_add(l));
    let body = r.bytes(total.unwrap_or(usize::MAX), field)?;
    let lanes = Lanes {
        body,
        lens: &lane_lens,
        field,
        at,
    };
    if map == MAP_LINEAR {
        lanes.decode(n, &table, &syms, out, |x| {
            T::from_i64(base.wrapping_add(x.wrapping_mul(g) as i64))
        })
    } else {
        lanes.decode(n, &table, &syms, out, |x| T::from_i64(unzigzag(x)))
    }
}

/// A binned column's body: its lanes back to back, and where it starts
/// (for errors).
struct Lanes<'a> {
    body: &'a [u8],
    lens: &'a [usize; LANES],
    field: &'static str,
    at: usize,
}

impl Lanes<'_> {
    /// Decode `n` values into `out`: each lane must hold its values exactly
    /// (to its last byte).
    #[inline]
    fn decode<T: Copy + Default>(
        &self,
        n: usize,
        table: &[u32],
        syms: &[(u64, u64)],
        out: &mut Vec<T>,
        f: impl Fn(u64) -> T,
    ) -> Result<(), CodecError> {
        let (field, offset) = (self.field, self.at);
        let short = CodecError::Truncated { field, offset };
        // Zero padding past the body: each value reads at most 11 + 64 bits
        // from a position checked to be within its lane.
        let mut pad = Vec::with_capacity(self.body.len() + 24);
        pad.extend_from_slice(self.body);
        pad.resize(self.body.len() + 24, 0);
        // Each lane's first bit, position and end.
        let (mut first, mut end) = ([0usize; LANES], [0usize; LANES]);
        let mut at = 0;
        for j in 0..LANES {
            first[j] = at * 8;
            at += self.lens[j];
            end[j] = at * 8;
        }
        let mut bit = first;
        // Written in place: no capacity check a value.
        let start = out.len();
        out.resize(start + n, T::default());
        let mut groups = out[start..].chunks_exact_mut(LANES);
        for g in &mut groups {
            for j in 0..LANES {
                g[j] =
                    one(&pad, table, syms, &f, &mut bit[j], end[j]).ok_or_else(|| short.clone())?;
            }
        }
        for (j, v) in groups.into_remainder().iter_mut().enumerate() {
            *v = one(&pad, table, syms, &f, &mut bit[j], end[j]).ok_or_else(|| short.clone())?;
        }
        let mut extra = 0;
        for j in 0..LANES {
            let used = (bit[j] - first[j]).div_ceil(8);
            if used > self.lens[j] {
                return Err(short);
            }
            extra += self.lens[j] - used;
        }
        match extra {
            0 => Ok(()),
            extra => Err(CodecError::Trailing { extra, offset }),
        }
    }
}

/// 8 bytes of the padded body from `bit` on, shifted to start there.
#[inline(always)]
fn load(pad: &[u8], bit: usize) -> u64 {
    let b: [u8; 8] = pad[bit >> 3..(bit >> 3) + 8].try_into().expect("8 bytes");
    u64::from_le_bytes(b) >> (bit & 7)
}

/// The value at `bit` (advanced past it), or None past `end`.
#[inline(always)]
fn one<T>(
    pad: &[u8],
    table: &[u32],
    syms: &[(u64, u64)],
    f: &impl Fn(u64) -> T,
    bit: &mut usize,
    end: usize,
) -> Option<T> {
    if *bit > end {
        return None;
    }
    let peek = load(pad, *bit);
    // `table.len()` is a power of two.
    let e = table[peek as usize & (table.len() - 1)];
    let (lo, wmask) = syms[(e & 0xff) as usize];
    let (l, adv) = ((e >> 8) & 0xff, e >> 16);
    // One load holds the code and an offset of up to 45 bits.
    let off = if adv <= 56 {
        (peek >> l) & wmask
    } else {
        let at = *bit + l as usize;
        (load(pad, at) & 0xffff_ffff) | (load(pad, at + 32) << 32 & wmask)
    };
    *bit += adv as usize;
    Some(f(lo.wrapping_add(off)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::pack;
    use crate::testutil::Rng;

    /// Plan, write and read back `vals`; the planned size must be a bound.
    fn round_trip(vals: &[i64]) -> Option<usize> {
        let (len, p) = plan(vals, pack::frame(vals, true), usize::MAX / 8)?;
        let mut out = Vec::new();
        put(&mut out, vals, &p);
        assert!(out.len() <= len, "planned {len}, wrote {}", out.len());
        let mut r = Reader::new(&out);
        let mut got: Vec<i64> = Vec::new();
        get(&mut r, vals.len(), "x", &mut got).unwrap();
        assert_eq!(r.remaining(), 0);
        assert_eq!(got, vals);
        Some(len)
    }

    #[test]
    fn clusters_cost_their_spread_not_the_range() {
        // First times of a 1 s window at 100 ns: tags on three grids (0, 250
        // and 500 ms), jitter of 2 ms. One frame takes 23 bits a value; bins
        // take the jitter's 15 and about a bit and a half for the cluster.
        let mut r = Rng::new(1);
        let vals: Vec<i64> = (0..5000)
            .map(|_| {
                let grid = [0, 2_500_000, 5_000_000][r.below(3) as usize];
                1_700_000_000_000_000_000 + (grid + r.below(20_000) as i64) * 100
            })
            .collect();
        let len = round_trip(&vals).unwrap();
        assert!(len * 8 < 5000 * 17, "{} bits a value", len * 8 / 5000);
    }

    #[test]
    fn heavy_tailed_deltas_cost_their_entropy() {
        // Value deltas of tags at different scales: mostly 0 and +-1, some
        // in the hundreds, a few in the millions: 6.9 bits of entropy a
        // value, where varints take 8.9 and one frame 23.
        let mut r = Rng::new(2);
        let vals: Vec<i64> = (0..10_000)
            .map(|_| {
                let scale = [1, 1, 1, 1, 1, 1, 300, 300, 3_000_000][r.below(9) as usize];
                r.below(2 * scale + 1) as i64 - scale as i64
            })
            .collect();
        let len = round_trip(&vals).unwrap();
        assert!(
            len * 8 < 10_000 * 15 / 2,
            "{} bits a value",
            len * 8 / 10_000
        );
    }

    #[test]
    fn shapes_and_extremes_round_trip() {
        assert!(
            round_trip(&[7; 300]).is_none(),
            "one value: a frame of width 0"
        );
        round_trip(&[i64::MIN, i64::MAX, 0, -1, 1]).unwrap();
        round_trip(&[0, 1, 2, 3]).unwrap();
        let mut r = Rng::new(3);
        for w in 2..=64u32 {
            let top = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
            let vals: Vec<i64> = (0..300)
                .map(|i| match i % 5 {
                    0 => (r.u64() & top) as i64,
                    1 => top as i64,
                    _ => r.below(4) as i64,
                })
                .collect();
            round_trip(&vals).unwrap();
            // The same with a common step.
            let step: Vec<i64> = vals.iter().map(|v| v.wrapping_mul(100)).collect();
            round_trip(&step).unwrap();
        }
    }

    #[test]
    fn codes_stay_short_and_complete_on_skewed_counts() {
        // Fibonacci counts give the deepest Huffman tree: 40 symbols would
        // need codes of 39 bits unlimited.
        let mut counts = vec![1u64, 1];
        while counts.len() < 40 {
            counts.push(counts[counts.len() - 1] + counts[counts.len() - 2]);
        }
        for c in [
            counts.clone(),
            vec![1; MAX_BINS],
            vec![5],
            vec![1_000_000, 1],
        ] {
            let lens = huffman_lengths(&c);
            assert!(lens.iter().all(|&l| u32::from(l) <= MAX_CODE));
            if c.len() > 1 {
                let kraft: u64 = lens
                    .iter()
                    .map(|&l| 1u64 << (MAX_CODE - u32::from(l)))
                    .sum();
                assert_eq!(kraft, 1 << MAX_CODE, "{lens:?}");
            }
        }
        // Unlimited where it fits: the optimal code for 1, 1, 2, 4.
        assert_eq!(huffman_lengths(&[4, 2, 1, 1]), [1, 2, 3, 3]);
    }

    #[test]
    fn bad_bytes_give_errors_not_panics() {
        let mut r = Rng::new(4);
        let vals: Vec<i64> = (0..400)
            .map(|_| r.below(1000) as i64 * r.below(1000) as i64)
            .collect();
        let (_, p) = plan(&vals, pack::frame(&vals, true), usize::MAX / 8).unwrap();
        let mut out = Vec::new();
        put(&mut out, &vals, &p);
        for cut in 0..out.len() {
            let mut got: Vec<i64> = Vec::new();
            let res = get(&mut Reader::new(&out[..cut]), vals.len(), "x", &mut got);
            assert!(res.is_err(), "cut at {cut} decoded");
        }
        for i in 0..out.len() {
            for x in [0u8, 0x41, 0xff, out[i] ^ 1] {
                let mut bad = out.clone();
                bad[i] = x;
                let mut got: Vec<i64> = Vec::new();
                let _ = get(&mut Reader::new(&bad), vals.len(), "x", &mut got);
            }
        }
        for _ in 0..20_000 {
            let len = r.below(64) as usize;
            let junk = r.bytes(len);
            let mut got: Vec<i64> = Vec::new();
            let _ = get(
                &mut Reader::new(&junk),
                r.below(5000) as usize,
                "x",
                &mut got,
            );
        }
        // More values than the body holds, and bytes left over.
        let mut got: Vec<i64> = Vec::new();
        assert!(get(&mut Reader::new(&out), vals.len() + 50, "x", &mut got).is_err());
        assert!(get(&mut Reader::new(&out), vals.len() - 50, "x", &mut got).is_err());
    }
}

#[cfg(test)]
mod vector {
    use super::*;
    use crate::codec::pack;

    /// The binned column printed in docs/format.md ("Binned column").
    pub const VECTOR_BINS: &str = "01020a0201fe0d030102020101080028020468";

    #[test]
    fn fixed_vector_bins() {
        let vals = [5i64, 5, 6, 5, 900, 901, 5, 903, 5, 6];
        let (_, p) = plan(&vals, pack::frame(&vals, true), usize::MAX / 8).unwrap();
        let mut out = Vec::new();
        put(&mut out, &vals, &p);
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        let mut got: Vec<i64> = Vec::new();
        get(&mut Reader::new(&out), vals.len(), "x", &mut got).unwrap();
        assert_eq!(got, vals);
        assert_eq!(hex, VECTOR_BINS);
        crate::testutil::assert_in_docs(VECTOR_BINS);
    }
}
