//! Frame-of-reference bit packing: the fast column coding of codec v3.
//!
//! A column of integers is stored as its minimum, a common divisor `g` of
//! every value's distance from that minimum (timestamps at 100 ns or 1 us
//! resolution, decimal steps), and each `(v - min) / g` in `w` bits. On the
//! short columns of a 1 s flush window this is within a few percent of pco
//! and an order of magnitude faster both ways; `column3` picks pco instead
//! for long columns where its binning wins.

use super::column::ColumnNum;
use super::varint::{put_u64, unzigzag, zigzag, Reader};
use super::CodecError;

/// The frame of one column: `v = min + g * p` with every `p < 2^w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub min: i64,
    pub g: u64,
    pub w: u32,
}

/// Exact division by a fixed divisor via its odd part's inverse mod 2^64:
/// a divisibility test and the quotient cost a multiply, not a `div`.
#[derive(Clone, Copy)]
struct Divisor {
    shift: u32,
    inv: u64,
    limit: u64,
}

impl Divisor {
    fn new(g: u64) -> Self {
        debug_assert!(g > 0);
        let shift = g.trailing_zeros();
        let odd = g >> shift;
        // Newton's iteration doubles the correct low bits each step: 3 -> 96.
        let mut inv = odd;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(inv)));
        }
        Divisor {
            shift,
            inv,
            limit: u64::MAX / odd,
        }
    }

    /// `d / g` if `g` divides `d`.
    #[inline]
    fn quotient(&self, d: u64) -> Option<u64> {
        if d.trailing_zeros() < self.shift {
            return None;
        }
        let q = (d >> self.shift).wrapping_mul(self.inv);
        (q <= self.limit).then_some(q)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The frame of `vals` (min, common divisor, width); `vals` must not be
/// empty. `find_gcd = false` skips the divisor search (small columns where
/// it cannot pay for its pass).
pub fn frame(vals: &[i64], find_gcd: bool) -> Frame {
    let (mut min, mut max) = (vals[0], vals[0]);
    for &v in vals {
        min = min.min(v);
        max = max.max(v);
    }
    let range = max.wrapping_sub(min) as u64;
    if range == 0 || !find_gcd {
        return Frame {
            min,
            g: 1,
            w: 64 - range.leading_zeros(),
        };
    }
    let g = common_divisor(vals.iter().map(|&v| v.wrapping_sub(min) as u64)).max(1);
    let w = 64 - (range / g).leading_zeros();
    Frame { min, g, w }
}

/// The gcd of `dists` (0 when all are 0): the first nonzero distance, then a
/// multiply-only test per value; a real `gcd` only when a value breaks it.
pub fn common_divisor(dists: impl Iterator<Item = u64>) -> u64 {
    let mut g = 0u64;
    let mut div = Divisor::new(1);
    for d in dists {
        if g == 0 {
            if d != 0 {
                g = d;
                div = Divisor::new(g);
            }
        } else if div.quotient(d).is_none() {
            g = gcd(g, d);
            if g == 1 {
                break;
            }
            div = Divisor::new(g);
        }
    }
    g
}

/// Little-endian bit stream writer: each value goes into a u64 accumulator
/// whole, its high bits carried into the next word when it straddles one.
#[derive(Default)]
pub struct BitWriter {
    acc: u64,
    bits: u32,
}

impl BitWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append the low `w` bits of `p` (`p < 2^w`, `w` in 1..=64).
    #[inline]
    pub fn push(&mut self, out: &mut Vec<u8>, p: u64, w: u32) {
        self.acc |= p << self.bits;
        self.bits += w;
        if self.bits >= 64 {
            out.extend_from_slice(&self.acc.to_le_bytes());
            self.bits -= 64;
            self.acc = if self.bits == 0 {
                0
            } else {
                p >> (w - self.bits)
            };
        }
    }

    /// Write the last partial word (whole bytes only).
    pub fn finish(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.acc.to_le_bytes()[..self.bits.div_ceil(8) as usize]);
    }
}

/// `BitWriter` into a buffer sized in advance (8 bytes of slack past the
/// last bit): each push stores the whole accumulator, unaligned, and moves
/// on by the bytes it completed. No "word full?" branch, which codes of
/// varying length (bins) mispredict; fixed widths predict it well and are
/// faster with `BitWriter`.
pub struct BitSink<'a> {
    buf: &'a mut [u8],
    pos: usize,
    acc: u64,
    bits: u32,
}

impl<'a> BitSink<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        BitSink {
            buf,
            pos: 0,
            acc: 0,
            bits: 0,
        }
    }

    /// Append the low `w` bits of `p` (`p < 2^w`, `w` at most 56).
    #[inline]
    pub fn push(&mut self, p: u64, w: u32) {
        debug_assert!(w <= 56 && p >> w == 0);
        self.acc |= p << self.bits;
        self.bits += w;
        self.buf[self.pos..self.pos + 8].copy_from_slice(&self.acc.to_le_bytes());
        let done = self.bits >> 3;
        self.pos += done as usize;
        // `done` is at most 7 (bits < 8 before, w <= 56): the shift is valid.
        self.acc >>= done * 8;
        self.bits &= 7;
    }

    /// Append the low `w` bits of `p` for any `w` up to 64.
    #[inline]
    pub fn push_wide(&mut self, p: u64, w: u32) {
        if w > 56 {
            self.push(p & 0xffff_ffff, 32);
            self.push(p >> 32, w - 32);
        } else {
            self.push(p, w);
        }
    }

    /// Bytes written (the last partial byte included).
    pub fn bytes(&self) -> usize {
        self.pos + usize::from(self.bits > 0)
    }
}

/// Exact division by `g` (which must divide `d`): a multiply, not a `div`.
#[derive(Clone, Copy)]
pub struct Exact(Divisor);

impl Exact {
    pub fn new(g: u64) -> Self {
        Exact(Divisor::new(g))
    }
    #[inline]
    pub fn div(&self, d: u64) -> u64 {
        self.0.quotient(d).expect("g divides every distance")
    }
}

/// Append `n` values of `w` bits (0..=64; 0 gives `f(0)` each) starting at
/// bit `bit0` of `pad`, each mapped by `f`. `pad` must extend at least 8
/// bytes (16 when `w > 56`) past the last value's first byte (the caller
/// copies the body into a zero-padded buffer where it would not), so every
/// load is a plain unaligned read.
#[inline]
pub fn unpack_padded<T>(
    pad: &[u8],
    bit0: usize,
    w: u32,
    n: usize,
    f: impl Fn(u64) -> T,
    out: &mut Vec<T>,
) {
    let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
    let wz = w as usize;
    if w <= 56 {
        out.extend((0..n).map(|j| {
            let bit = bit0 + j * wz;
            let b8: [u8; 8] = pad[bit >> 3..(bit >> 3) + 8].try_into().expect("8 bytes");
            f((u64::from_le_bytes(b8) >> (bit & 7)) & mask)
        }));
    } else {
        out.extend((0..n).map(|j| {
            let bit = bit0 + j * wz;
            let b16: [u8; 16] = pad[bit >> 3..(bit >> 3) + 16].try_into().expect("16 bytes");
            f((u128::from_le_bytes(b16) >> (bit & 7)) as u64 & mask)
        }));
    }
}

/// Bytes the packed body of `n` values at width `w` takes.
pub fn body_len(n: usize, w: u32) -> usize {
    (n * w as usize).div_ceil(8)
}

/// Append the header (`zigzag(min)`, and `g` when `w > 0`; `w` itself is in
/// the column's method byte) and the packed body of `vals` in `f`.
pub fn put(out: &mut Vec<u8>, vals: &[i64], f: Frame) {
    put_u64(out, zigzag(f.min));
    if f.w == 0 {
        return;
    }
    put_u64(out, f.g);
    let start = out.len();
    let len = body_len(vals.len(), f.w);
    out.reserve(len + 16);
    let mut bw = BitWriter::new();
    if f.g == 1 {
        for &v in vals {
            bw.push(out, v.wrapping_sub(f.min) as u64, f.w);
        }
    } else {
        let div = Exact::new(f.g);
        for &v in vals {
            bw.push(out, div.div(v.wrapping_sub(f.min) as u64), f.w);
        }
    }
    bw.finish(out);
    debug_assert_eq!(out.len() - start, len);
}

/// Read `n` values packed by `put` at width `w` (from the method byte) into
/// `out` (cleared first; a reused buffer keeps its capacity).
pub fn get<T: ColumnNum>(
    r: &mut Reader<'_>,
    n: usize,
    w: u32,
    field: &'static str,
    out: &mut Vec<T>,
) -> Result<(), CodecError> {
    let min = unzigzag(r.varint(field)?);
    out.clear();
    if w == 0 {
        out.resize(n, T::from_i64(min));
        return Ok(());
    }
    let g = read_divisor(r, field)?;
    let body = r.bytes(body_len(n, w), field)?;
    out.reserve_exact(n);
    unpack(
        body,
        w,
        n,
        |p| T::from_i64(min.wrapping_add((p as i64).wrapping_mul(g as i64))),
        out,
    );
    Ok(())
}

/// A frame's divisor `g` (varint, at least 1).
pub fn read_divisor(r: &mut Reader<'_>, field: &'static str) -> Result<u64, CodecError> {
    let at = r.pos();
    match r.varint(field)? {
        0 => Err(CodecError::Invalid {
            field,
            offset: at,
            msg: "frame divisor 0".into(),
        }),
        g => Ok(g),
    }
}

/// Append `n` values of width `w` from `body` (`body.len() == body_len(n, w)`),
/// each mapped by `f`: one pass, no zeroing of `out` first.
#[inline]
fn unpack<T: Copy>(body: &[u8], w: u32, n: usize, f: impl Fn(u64) -> T, out: &mut Vec<T>) {
    if w > 56 {
        // Wide columns (raw words) are rare: one padded copy of the body.
        let mut pad = Vec::with_capacity(body.len() + 16);
        pad.extend_from_slice(body);
        pad.resize(body.len() + 16, 0);
        unpack_padded(&pad, 0, w, n, f, out);
        return;
    }
    let wz = w as usize;
    // Eight values take `w` whole bytes: groups of eight at a width known
    // at compile time while 8 bytes past the group are in the body ...
    let groups = if wz > 0 && body.len() >= 8 {
        ((body.len() - 8) / wz).min(n / 8)
    } else {
        0
    };
    unpack_groups(body, w, groups, &f, out);
    let (body, n) = (&body[groups * wz..], n - groups * 8);
    // ... then an 8-byte load per value, straight from the body while its
    // 8 bytes are in it, the last few from one zero-padded copy of the
    // body's tail, not a copy per value.
    let fast = if body.len() >= 8 && wz > 0 {
        ((body.len() - 8) * 8 / wz + 1).min(n)
    } else {
        0
    };
    unpack_padded(body, 0, w, fast, &f, out);
    let tb = (fast * wz) >> 3;
    let mut pad = [0u8; 16];
    pad[..body.len() - tb].copy_from_slice(&body[tb..]);
    unpack_padded(&pad, fast * wz - tb * 8, w, n - fast, &f, out);
}

/// `groups` groups of eight values of width `w` (1..=56) from the start of
/// `body`, which extends at least 8 bytes past the last group.
#[inline]
fn unpack_groups<T: Copy>(
    body: &[u8],
    w: u32,
    groups: usize,
    f: &impl Fn(u64) -> T,
    out: &mut Vec<T>,
) {
    macro_rules! by_width {
        ($($w:literal)*) => {
            match w {
                $($w => groups_of::<$w, T>(body, groups, f, out),)*
                _ => unpack_padded(body, 0, w, groups * 8, f, out),
            }
        };
    }
    if groups > 0 {
        by_width!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24)
    }
}

/// `unpack_groups` at a fixed width: every shift and offset a constant,
/// one bounds check and one capacity check per eight values.
#[inline]
fn groups_of<const W: usize, T: Copy>(
    body: &[u8],
    groups: usize,
    f: &impl Fn(u64) -> T,
    out: &mut Vec<T>,
) {
    let mask = (1u64 << W) - 1;
    out.reserve(groups * 8);
    for g in 0..groups {
        let src = &body[g * W..g * W + W + 8];
        let vals: [T; 8] = std::array::from_fn(|k| {
            let bit = k * W;
            let b8: [u8; 8] = src[bit / 8..bit / 8 + 8].try_into().expect("8 bytes");
            f((u64::from_le_bytes(b8) >> (bit % 8)) & mask)
        });
        out.extend_from_slice(&vals);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_sink_writes_what_bit_writer_writes() {
        let mut seed = 7u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for n in [0usize, 1, 7, 100, 1000] {
            let items: Vec<(u64, u32)> = (0..n)
                .map(|_| {
                    let w = (next() % 65) as u32;
                    (if w == 0 { 0 } else { next() >> (64 - w) }, w)
                })
                .collect();
            let (mut a, mut bw) = (Vec::new(), BitWriter::new());
            for &(p, w) in items.iter().filter(|i| i.1 > 0) {
                bw.push(&mut a, p, w);
            }
            bw.finish(&mut a);
            let bits: u32 = items.iter().map(|i| i.1).sum();
            let mut b = vec![0u8; bits.div_ceil(8) as usize + 8];
            let mut sink = BitSink::new(&mut b);
            for &(p, w) in &items {
                sink.push_wide(p, w);
            }
            let len = sink.bytes();
            assert_eq!(&b[..len], &a[..], "{n} values");
        }
    }

    fn round_trip(vals: &[i64]) -> Frame {
        for gcd in [false, true] {
            let f = frame(vals, gcd);
            let mut out = Vec::new();
            put(&mut out, vals, f);
            let mut r = Reader::new(&out);
            let mut got: Vec<i64> = Vec::new();
            get(&mut r, vals.len(), f.w, "x", &mut got).unwrap();
            assert_eq!(r.remaining(), 0);
            assert_eq!(got, vals, "frame {f:?}");
        }
        frame(vals, true)
    }

    #[test]
    fn frames_find_the_step_and_width() {
        // Timestamps at 100 ns resolution: the divisor takes out ~6.6 bits.
        let t: Vec<i64> = (0..50)
            .map(|i| 1_780_000_000_000_000_000 + i * 1_234_500)
            .collect();
        let f = round_trip(&t);
        assert_eq!((f.g, f.w), (1_234_500, 6));
        assert_eq!(round_trip(&[5, 5, 5]).w, 0);
        assert_eq!(
            round_trip(&[-3, 7, 2]),
            Frame {
                min: -3,
                g: 5,
                w: 2
            }
        );
        assert_eq!(
            round_trip(&[-3, 7, 3]),
            Frame {
                min: -3,
                g: 2,
                w: 3
            }
        );
        assert_eq!(
            round_trip(&[0, 300, 1000]),
            Frame {
                min: 0,
                g: 100,
                w: 4
            }
        );
    }

    #[test]
    fn extremes_and_every_width_round_trip() {
        round_trip(&[i64::MIN, i64::MAX, 0, -1, 1]);
        round_trip(&[i64::MAX, i64::MIN]);
        round_trip(&[u64::MAX as i64, 0]);
        // Every width at lengths around the groups of eight and the tail.
        for w in 1..=64u32 {
            let top = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
            for n in [0u64, 1, 7, 8, 9, 15, 16, 17, 37, 200] {
                let vals: Vec<i64> = (0..n)
                    .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & top) as i64)
                    .chain([top as i64])
                    .collect();
                round_trip(&vals);
            }
        }
        // A divisor broken late: gcd falls back and still divides everything.
        round_trip(&[0, 1000, 2000, 3000, 3500, 7]);
        round_trip(&[10, 16, 4, 22]);
    }

    #[test]
    fn divisor_quotient_is_exact_division() {
        for g in [1u64, 2, 3, 10, 100, 1000, 7 << 20, u64::MAX, u64::MAX / 3] {
            let d = Divisor::new(g);
            for q in [0u64, 1, 2, 17, 12345, u64::MAX / g] {
                if q > u64::MAX / g {
                    continue;
                }
                assert_eq!(d.quotient(q * g), Some(q), "g {g} q {q}");
                if g > 1 && q < u64::MAX / g {
                    assert_eq!(d.quotient(q * g + 1), None, "g {g} q {q}");
                }
            }
        }
    }
}
