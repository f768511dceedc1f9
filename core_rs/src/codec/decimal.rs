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
#[cfg(test)]
fn min_exponent(bits: u64, w: Width) -> Option<u8> {
    min_k(bits, w, 0).map(|(_, e)| e)
}

/// The smallest exponent at which `bits` round-trips, with its k. The search
/// starts at `guess` (the previous value's: a tag's values mostly share it),
/// goes up to the first fit, and below the guess only when nothing fits above
/// (k outgrew 2^53 there). Then, for f64, each trailing decimal zero of k is
/// one digit less: k/10 at e - 1 is the same rational, so the same double.
/// One or two divisions per value instead of one per exponent tried.
pub fn min_k(bits: u64, w: Width, guess: u8) -> Option<(i64, u8)> {
    let g = guess.min(MAX_E);
    match encode_one(bits, g, w) {
        Some(k) => Some(down(bits, w, k, g)),
        None => search(bits, w, g),
    }
}

/// The first exponent other than `g` at which `bits` fits: above `g`, then
/// below it.
fn search(bits: u64, w: Width, g: u8) -> Option<(i64, u8)> {
    let (k, e) = (g + 1..=MAX_E)
        .chain(0..g)
        .find_map(|e| encode_one(bits, e, w).map(|k| (k, e)))?;
    Some(down(bits, w, k, e))
}

/// From a fit `k` at `e` down to the smallest exponent that fits.
#[inline]
fn down(bits: u64, w: Width, mut k: i64, mut e: u8) -> (i64, u8) {
    match w {
        Width::F64 => {
            while e > 0 && k % 10 == 0 {
                k /= 10;
                e -= 1;
            }
        }
        // Many k round to one f32: walk down while a smaller e still fits.
        Width::F32 => {
            while let Some(k1) = e.checked_sub(1).and_then(|e1| encode_one(bits, e1, w)) {
                (k, e) = (k1, e - 1);
            }
        }
    }
    (k, e)
}

const POW10_I: [i64; MAX_E as usize + 1] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
];

/// k at exponent `e` of a value that is `k0` at `e0 <= e`: k0 * 10^(e - e0)
/// is the same rational, so `decode` gives the same double, as long as it is
/// an exact f64 (|k| <= 2^53).
#[inline]
pub fn rescale(k0: i64, e0: u8, e: u8) -> Option<i64> {
    let k = k0.checked_mul(*POW10_I.get(usize::from(e.checked_sub(e0)?))?)?;
    (k.unsigned_abs() <= 1 << 53).then_some(k)
}

/// The exponent for values whose smallest exponents are counted in `hist`
/// (last slot: never fits), or None when too many values are not decimal
/// for the mode to pay.
fn choose_hist(hist: &[usize; MAX_E as usize + 2], n: usize) -> Option<u8> {
    let lo = hist
        .iter()
        .position(|&h| h > 0)
        .unwrap_or(0)
        .min(MAX_E as usize);
    let hi = hist[..=MAX_E as usize]
        .iter()
        .rposition(|&h| h > 0)
        .unwrap_or(0);
    choose_in(hist, n, lo as u8, hi as u8)
}

/// `choose_hist` for a histogram whose fitting values all lie in `lo..=hi`:
/// below `lo` every value is an exception (72 bits each, more than the
/// 12 digits at most that `hi` costs), above `hi` no more values fit, so
/// the best exponent is in that range.
fn choose_in(hist: &[usize; MAX_E as usize + 2], n: usize, lo: u8, hi: u8) -> Option<u8> {
    if n == 0 {
        return Some(0);
    }
    // All values at one exponent (a tag's usual case): that one, or none.
    if hist[usize::from(hi)] == n {
        return Some(hi);
    }
    if hist[MAX_E as usize + 1] == n {
        return None;
    }
    let mut best: Option<(f64, u8)> = None;
    let mut fit = 0usize;
    for e in lo..=hi {
        fit += hist[e as usize];
        let cost = fit as f64 * f64::from(e) * BITS_PER_DIGIT + ((n - fit) * EXCEPTION_BITS) as f64;
        if best.is_none_or(|(c, _)| cost < c) {
            best = Some((cost, e));
        }
    }
    let (_, e) = best?;
    let fit: usize = hist[lo as usize..=e as usize].iter().sum();
    // Mostly not decimal (noisy derived values): the plain float column wins.
    (fit * 4 >= n * 3).then_some(e)
}

/// The exponent for a tag's values and how many would be exceptions, or None
/// when too many values are not decimal for the mode to pay.
pub fn choose(vals: impl Iterator<Item = u64> + Clone, w: Width) -> Option<u8> {
    let mut hist = [0usize; MAX_E as usize + 2];
    let mut n = 0usize;
    let mut guess = 2;
    for b in vals {
        let e = min_k(b, w, guess).map(|(_, e)| e);
        guess = e.unwrap_or(guess);
        hist[e.map_or(MAX_E as usize + 1, usize::from)] += 1;
        n += 1;
    }
    choose_hist(&hist, n)
}

/// `ks` entry of a value that is not decimal at any exponent.
pub const NO_FIT: u8 = u8::MAX;

/// `choose` over every value, keeping each one's smallest (k, e) in `ks`
/// (e = `NO_FIT` if none) so that encoding at the chosen e is a `rescale`,
/// not another division. The loop is the encoder's hottest: one division a
/// value when it fits at the previous value's exponent.
pub fn analyse(
    vals: impl Iterator<Item = u64>,
    w: Width,
    guess: u8,
    ks: &mut Vec<(i64, u8)>,
) -> Option<u8> {
    ks.clear();
    let mut guess = guess.min(MAX_E);
    let (mut lo, mut hi, mut misfits) = (MAX_E, 0u8, 0usize);
    for b in vals {
        // One division a value while it fits at the guess (then only
        // trailing zeros are stripped), a search when it does not.
        let ke = match encode_one(b, guess, w) {
            Some(k) => Some(down(b, w, k, guess)),
            None => search(b, w, guess),
        };
        match ke {
            Some((k, e)) => {
                (lo, hi) = (lo.min(e), hi.max(e));
                // f64: the run's most digits so far, which every value with
                // fewer also fits at; f32 walks down from the guess a
                // division a step, so there the last value's.
                guess = match w {
                    Width::F64 => hi,
                    Width::F32 => e,
                };
                ks.push((k, e));
            }
            None => {
                misfits += 1;
                ks.push((0, NO_FIT));
            }
        }
    }
    if misfits == 0 && lo >= hi {
        return Some(if ks.is_empty() { 0 } else { hi }); // one exponent for all
    }
    let mut hist = [0usize; MAX_E as usize + 2];
    for &(_, e) in ks.iter() {
        hist[usize::from(e.min(MAX_E + 1))] += 1;
    }
    choose_in(&hist, ks.len(), lo.min(hi), hi)
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
    fn search_from_a_guess_matches_the_scan() {
        let scan = |b: u64, w| (0..=MAX_E).find(|&e| encode_one(b, e, w).is_some());
        let vals = [
            0.0,
            1.0,
            23.45,
            -0.5,
            0.001,
            1e-12,
            123456.789,
            0.1,
            1e300,
            f64::NAN,
            7.25e-3,
        ];
        for v in vals {
            for w in [Width::F64, Width::F32] {
                let b = match w {
                    Width::F64 => v.to_bits(),
                    Width::F32 => f64::from(v as f32).to_bits(),
                };
                for guess in 0..=MAX_E + 3 {
                    let got = min_k(b, w, guess);
                    assert_eq!(got.map(|(_, e)| e), scan(b, w), "{v} {w:?} {guess}");
                    if let Some((k, e)) = got {
                        assert_eq!(decode(k, e, w), b);
                        for up in e..=MAX_E {
                            if let Some(k2) = rescale(k, e, up) {
                                assert_eq!(decode(k2, up, w), b, "{v} at {up}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// `analyse`'s shortcuts give what `min_k` gives for each value, with
    /// the guess carried from value to value the same way.
    #[test]
    fn analyse_agrees_with_min_k_value_by_value() {
        let mut r = crate::testutil::Rng::new(3);
        for w in [Width::F64, Width::F32] {
            for _ in 0..200 {
                // Readings at a few resolutions, some landing on round values.
                let vals: Vec<u64> = (0..40)
                    .map(|_| {
                        let e = r.below(5) as i32;
                        let x = (r.below(200_000) as f64 - 100_000.0) / 10f64.powi(e);
                        match w {
                            Width::F64 => x.to_bits(),
                            Width::F32 => f64::from(x as f32).to_bits(),
                        }
                    })
                    .collect();
                let mut ks = Vec::new();
                let guess0 = r.below(u64::from(MAX_E) + 2) as u8;
                analyse(vals.iter().copied(), w, guess0, &mut ks);
                let mut guess = guess0;
                let want: Vec<(i64, u8)> = vals
                    .iter()
                    .map(|&b| match min_k(b, w, guess) {
                        Some((k, e)) => {
                            guess = e;
                            (k, e)
                        }
                        None => (0, NO_FIT),
                    })
                    .collect();
                assert_eq!(ks, want, "{w:?}");
            }
        }
    }

    /// The exponent search over `lo..=hi` picks what a scan of every
    /// exponent picks.
    #[test]
    fn choosing_in_the_fitting_range_matches_the_full_scan() {
        let scan = |hist: &[usize; MAX_E as usize + 2], n: usize| -> Option<u8> {
            if n == 0 {
                return Some(0);
            }
            let mut best: Option<(f64, u8)> = None;
            let mut fit = 0usize;
            for e in 0..=MAX_E {
                fit += hist[e as usize];
                let cost = fit as f64 * f64::from(e) * BITS_PER_DIGIT
                    + ((n - fit) * EXCEPTION_BITS) as f64;
                if best.is_none_or(|(c, _)| cost < c) {
                    best = Some((cost, e));
                }
            }
            let (_, e) = best?;
            let fit: usize = hist[..=e as usize].iter().sum();
            (fit * 4 >= n * 3).then_some(e)
        };
        let mut r = crate::testutil::Rng::new(11);
        for _ in 0..20_000 {
            let mut hist = [0usize; MAX_E as usize + 2];
            for _ in 0..r.below(4) + 1 {
                hist[r.below(u64::from(MAX_E) + 2) as usize] += r.below(50) as usize + 1;
            }
            let n = hist.iter().sum();
            assert_eq!(choose_hist(&hist, n), scan(&hist, n), "{hist:?}");
        }
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
