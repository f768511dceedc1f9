//! Decimal floats (the idea of ALP, Afroozeh et al. 2023): instruments report
//! values with a fixed resolution, so most doubles are the nearest double to
//! some k / 10^e. Per tag we pick one exponent e, store the integer k (whose
//! deltas are small), and keep every value that does not round-trip bit for
//! bit as an exception. Lossless by construction: a value is stored as k only
//! if `decode(k, e)` gives back exactly its bits.

/// 10^e is exact in f64 up to e = 22 and k must stay below 2^53; past 12
/// digits a value is noise, not an instrument reading, and the float column wins.
pub const MAX_E: u8 = 12;
const POW10: [f64; MAX_E as usize + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
];
const K_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
/// Rough cost in bits of one exception (position + 8 raw bytes) versus one
/// more decimal digit in every k; used to choose e.
const EXCEPTION_BITS: usize = 72;
const BITS_PER_DIGIT: f64 = 3.33;

/// f64 tags keep all 64 bits; f32 tags (OPC UA Float, widened to f64 on the
/// way in) are matched in f32 precision, where 0.1f32 is "0.1".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    F64,
    F32,
}

#[inline]
pub fn decode(k: i64, e: u8, w: Width) -> u64 {
    // e is checked against MAX_E by the decoder before it gets here.
    let x = (k as f64) / POW10[e as usize];
    match w {
        Width::F64 => x.to_bits(),
        Width::F32 => ((x as f32) as f64).to_bits(),
    }
}

/// k for `bits` at exponent e, if it round-trips exactly.
#[inline]
pub fn encode_one(bits: u64, e: u8, w: Width) -> Option<i64> {
    let x = f64::from_bits(bits) * POW10[e as usize];
    if x.is_nan() || x.abs() >= K_LIMIT {
        return None; // also NaN and infinities
    }
    // Round to nearest by the 1.5 * 2^52 trick: no libm call, and any tie
    // rule is fine since the round trip below decides.
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let k = if x.abs() < 2_251_799_813_685_248.0 {
        (x + MAGIC) - MAGIC
    } else {
        x.round()
    } as i64;
    (decode(k, e, w) == bits).then_some(k)
}

/// Smallest e at which `bits` round-trips, if any.
fn min_exponent(bits: u64, w: Width) -> Option<u8> {
    (0..=MAX_E).find(|&e| encode_one(bits, e, w).is_some())
}

/// The exponent for a tag's values and how many would be exceptions, or None
/// when too many values are not decimal for the mode to pay.
pub fn choose(vals: impl Iterator<Item = u64> + Clone, w: Width) -> Option<u8> {
    let mut hist = [0usize; MAX_E as usize + 2]; // last slot: never fits
    let mut n = 0usize;
    for b in vals {
        let slot = min_exponent(b, w).map_or(MAX_E as usize + 1, usize::from);
        hist[slot] += 1;
        n += 1;
    }
    if n == 0 {
        return Some(0);
    }
    let mut best: Option<(f64, u8)> = None;
    let mut fit = 0usize;
    for e in 0..=MAX_E {
        fit += hist[e as usize];
        let cost = fit as f64 * f64::from(e) * BITS_PER_DIGIT + ((n - fit) * EXCEPTION_BITS) as f64;
        if best.is_none_or(|(c, _)| cost < c) {
            best = Some((cost, e));
        }
    }
    let (_, e) = best?;
    let fit: usize = hist[..=e as usize].iter().sum();
    // Mostly not decimal (noisy derived values): the plain float column wins.
    (fit * 4 >= n * 3).then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plant_values_round_trip_as_small_integers() {
        for (v, e, k) in [
            (23.45, 2, 2345i64),
            (-0.5, 1, -5),
            (1013.0, 0, 1013),
            (0.001, 3, 1),
        ] {
            let bits = f64::to_bits(v);
            assert_eq!(min_exponent(bits, Width::F64), Some(e));
            assert_eq!(encode_one(bits, e, Width::F64), Some(k));
            assert_eq!(decode(k, e, Width::F64), bits);
        }
        let f = f64::from(0.1f32).to_bits();
        assert_eq!(min_exponent(f, Width::F64), None);
        assert_eq!(min_exponent(f, Width::F32), Some(1));
        assert_eq!(decode(1, 1, Width::F32), f);
    }

    #[test]
    fn non_decimal_values_are_exceptions() {
        for v in [f64::NAN, f64::INFINITY, -0.0, 1e300, std::f64::consts::PI] {
            assert_eq!(min_exponent(v.to_bits(), Width::F64), None, "{v}");
        }
        let vals: Vec<u64> = (0..100)
            .map(|i| (i as f64 * 0.37).sin().to_bits())
            .collect();
        assert_eq!(choose(vals.iter().copied(), Width::F64), None);
        let vals: Vec<u64> = (0..100).map(|i| (i as f64 * 0.25).to_bits()).collect();
        assert_eq!(choose(vals.iter().copied(), Width::F64), Some(2));
    }
}
