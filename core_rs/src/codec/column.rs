//! One numeric column of a v2 or v3 chunk: the encoder picks, per column,
//! the smallest of zigzag varints, pco (the pcodec crate) and (v3 only)
//! frame-of-reference bit packing (`pack`), and writes a method byte so the
//! decoder knows which it got. Tiny columns skip pco (its header outweighs the
//! data); in v3 so do short ones, where packing is close in size and much faster.

use pco::standalone::{simple_compress, simple_decompress_into};
use pco::{ChunkConfig, DeltaSpec};

use super::bins;
use super::pack;
use super::segframe;
use super::varint::{put_u64, Reader};
use super::CodecError;

pub const METHOD_VARINT: u8 = 0;
pub const METHOD_PCO: u8 = 1;
/// v3: method `METHOD_PACK + w` is a `pack` frame of width `w` (0..=64).
pub const METHOD_PACK: u8 = 2;
/// v3: a segmented column (`segframe`), a frame per tag run.
pub const METHOD_SEG: u8 = 67;
/// v3: the whole column as one `segframe` segment (`v = q * B + r` with one
/// base for every value: a time column whose tags share a sampling grid).
pub const METHOD_MULT: u8 = 68;
/// v4: a binned column (`bins`): Huffman-coded bins, an offset in each.
pub const METHOD_BINS: u8 = 69;

/// How a v3 column made of per-run segments may be written as a `segframe`.
pub struct Segs<'a> {
    /// The runs' segment lengths, summing to the column's length.
    pub lens: &'a [u32],
    /// Also try `v = q * B + r` (time deltas), per segment and for the column.
    pub mult: bool,
    /// Reused plans: per segment, and the whole column.
    pub plans: &'a mut [segframe::Plan; 2],
}
/// Below this many values pco's header costs more than it saves.
const PCO_MIN_N: usize = 32;
/// pco level: 4 is close to the default 8 on plant data and much faster.
const PCO_LEVEL: usize = 4;
/// A v3 column is long, and tries pco (floats, words) or bins (v4, the
/// integer columns), from this many values: below it pco saved a few
/// percent at ten times the cost, and planning bins cost as much as packing
/// the whole chunk (recorded, 1 s: encode 28 -> 14 M samples/s for 14 %
/// fewer bytes; docs/codec.md has the figures).
pub const PCO_MIN_N_V3: usize = 4096;
/// ... and from this many when the packed frame is wide (16 bits or more: a
/// time column mixing several sampling periods, which bins separate).
pub const PCO_WIDE_N_V3: usize = 512;
/// v3 tries `segframe` from this many values: below it (1 s windows, runs
/// of one or two samples) it did not win once on the benchmark's data.
const SEG_MIN_N: usize = 512;

/// The number types a column holds; pco models each differently (f64 gets
/// its float modes, e.g. decimal multiples).
pub trait ColumnNum: pco::data_types::Number + Copy + Default {
    fn to_zigzag_u64(self) -> u64;
    fn as_i64s(vals: &[Self]) -> std::borrow::Cow<'_, [i64]> {
        std::borrow::Cow::Owned(vals.iter().map(|v| v.to_i64()).collect())
    }
    fn from_zigzag_u64(v: u64) -> Self;
    /// The same 64 bits as an i64 (what `pack` frames).
    fn to_i64(self) -> i64;
    fn from_i64(v: i64) -> Self;
}

impl ColumnNum for i64 {
    fn as_i64s(vals: &[Self]) -> std::borrow::Cow<'_, [i64]> {
        std::borrow::Cow::Borrowed(vals)
    }
    fn to_zigzag_u64(self) -> u64 {
        super::varint::zigzag(self)
    }
    fn from_zigzag_u64(v: u64) -> Self {
        super::varint::unzigzag(v)
    }
    fn to_i64(self) -> i64 {
        self
    }
    fn from_i64(v: i64) -> Self {
        v
    }
}

impl ColumnNum for u64 {
    fn to_zigzag_u64(self) -> u64 {
        self
    }
    fn from_zigzag_u64(v: u64) -> Self {
        v
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_i64(v: i64) -> Self {
        v as u64
    }
}

impl ColumnNum for f64 {
    // Byte-swapped so the sign and exponent land in the low varint groups.
    fn to_zigzag_u64(self) -> u64 {
        self.to_bits().swap_bytes()
    }
    fn from_zigzag_u64(v: u64) -> Self {
        f64::from_bits(v.swap_bytes())
    }
    fn to_i64(self) -> i64 {
        self.to_bits() as i64
    }
    fn from_i64(v: i64) -> Self {
        f64::from_bits(v as u64)
    }
}

fn pco_err(field: &'static str, offset: usize, e: impl std::fmt::Display) -> CodecError {
    CodecError::Invalid {
        field,
        offset,
        msg: format!("pco: {e}"),
    }
}

/// Append `u8 method, varint len, bytes` for `vals`. `delta` tells pco
/// whether to look for deltas itself: our integer columns are deltas
/// already, and pco's automatic search is its most expensive step.
pub fn put<T: ColumnNum>(
    out: &mut Vec<u8>,
    vals: &[T],
    delta: DeltaSpec,
) -> Result<(), CodecError> {
    let mut var = Vec::with_capacity(vals.len() * 2);
    for &v in vals {
        put_u64(&mut var, v.to_zigzag_u64());
    }
    let mut best = (METHOD_VARINT, var);
    if vals.len() >= PCO_MIN_N {
        let cfg = ChunkConfig::default()
            .with_compression_level(PCO_LEVEL)
            .with_delta_spec(delta);
        let p = simple_compress(vals, &cfg).map_err(|e| pco_err("column", 0, e))?;
        if p.len() < best.1.len() {
            best = (METHOD_PCO, p);
        }
    }
    out.push(best.0);
    put_u64(out, best.1.len() as u64);
    out.extend_from_slice(&best.1);
    Ok(())
}

pub(super) fn varint_len(v: u64) -> usize {
    // ceil(bits / 7) for bits in 1..=64, without a division.
    ((9 * (64 - (v | 1).leading_zeros()) + 64) / 64) as usize
}

/// v3: append the column as the smallest of a `pack` frame, varints and
/// (long columns only) pco. An empty column takes no bytes at all.
pub fn put3<T: ColumnNum>(
    out: &mut Vec<u8>,
    vals: &[T],
    delta: DeltaSpec,
) -> Result<(), CodecError> {
    put3_with(out, vals, delta, None, Pco::Try)
}

/// Whether a long v3 column tries pco.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Pco {
    /// Float and word columns: pco's float modes (decimal multiples, common
    /// low bits) model what bins do not.
    Try,
    /// Integer columns: bins match pco there at a fraction of its cost
    /// (docs/codec.md).
    Never,
}

/// `put3` for a column made of per-run segments (`segs`, lengths summing to
/// `vals.len()`), which may also be written as a `segframe`; `pco` says
/// when pco is tried (docs/codec.md has what each column gets).
pub fn put3_with<T: ColumnNum>(
    out: &mut Vec<u8>,
    vals: &[T],
    delta: DeltaSpec,
    segs: Option<Segs<'_>>,
    pco: Pco,
) -> Result<(), CodecError> {
    if vals.is_empty() {
        return Ok(());
    }
    let ints: std::borrow::Cow<'_, [i64]> = T::as_i64s(vals);
    let f = pack::frame(&ints, true);
    let packed = pack::body_len(vals.len(), f.w)
        + varint_len(super::varint::zigzag(f.min))
        + if f.w > 0 { varint_len(f.g) } else { 0 };
    // Varints take 8 bits or more a value: they can only win on wide frames
    // (skewed columns: mostly small, a few large). Long columns are judged
    // by every 8th value; the exact sum only where it decides (below).
    let var_of = |step: usize| -> usize {
        vals.iter()
            .step_by(step)
            .map(|v| varint_len(v.to_zigzag_u64()))
            .sum::<usize>()
            * step
    };
    // (body bytes, whether that is every 8th value's estimate)
    let (mut var_body, mut estimated) = if f.w <= 8 {
        (usize::MAX, false)
    } else if vals.len() < 64 {
        (var_of(1), false)
    } else {
        let estimate = var_of(8);
        if estimate < packed + packed / 8 {
            (estimate, true)
        } else {
            (usize::MAX, false)
        }
    };
    let with_len = |body: usize| body.saturating_add(varint_len(body as u64));
    let mut var = with_len(var_body);
    let long = vals.len() >= PCO_MIN_N_V3 || (vals.len() >= PCO_WIDE_N_V3 && f.w >= 16);
    // Bins first: where they win (short runs of many tags) `segframe` need
    // not be planned in full.
    let planned = long
        .then(|| bins::plan(&ints, f, packed.min(var)))
        .flatten();
    let (bins_len, bins_plan) = match planned {
        Some((len, plan)) => (len, Some(plan)),
        None => (usize::MAX, None),
    };
    let one = [vals.len() as u32];
    let (mut seg, mut seg_len) = (None, usize::MAX);
    // Per-run frames pay for their headers from runs of a few values on;
    // one base for the whole column is for runs too short to find their own.
    let n_segs = segs.as_ref().map_or(0, |s| s.lens.len());
    let runs_of = |k: usize| vals.len() >= k * n_segs;
    if let Some(Segs { lens, mult, plans }) = segs.filter(|_| vals.len() >= SEG_MIN_N) {
        let [per_run, whole] = plans;
        // Tried from four values a segment on average (below that no data
        // set of the benchmark chose them), and planned in full only when a
        // sample of the segments comes close.
        let other = packed.min(var).min(bins_len);
        if runs_of(4)
            && segframe::estimate(&ints, lens, mult, per_run).is_none_or(|e| e < other + other / 4)
        {
            if let Some(len) = segframe::plan(&ints, lens, mult, per_run) {
                (seg, seg_len) = (Some((METHOD_SEG, lens, &*per_run)), len);
            }
        }
        if mult && !runs_of(16) && f.w > 12 && segframe::mult_looks_narrower(&ints, f.w) {
            match segframe::plan(&ints, &one, true, whole) {
                Some(len) if len < seg_len => {
                    (seg, seg_len) = (Some((METHOD_MULT, &one[..], &*whole)), len)
                }
                _ => {}
            }
        }
    }
    // The estimate only ranks bins: pco (which costs far more) is weighed
    // against the exact varint size, and so are frames and per-run frames
    // wherever the estimate ranks varints first.
    let mut exact = |var_body: &mut usize, var: &mut usize| {
        if std::mem::take(&mut estimated) {
            *var_body = var_of(1);
            *var = with_len(*var_body);
        }
    };
    if pco == Pco::Try && long {
        exact(&mut var_body, &mut var);
    }
    let others = packed.min(var).min(seg_len);
    let best = others.min(bins_len);
    let p = if pco == Pco::Try && long {
        let cfg = ChunkConfig::default()
            .with_compression_level(PCO_LEVEL)
            .with_delta_spec(delta);
        Some(simple_compress(vals, &cfg).map_err(|e| pco_err("column", 0, e))?)
    } else {
        None
    };
    match p {
        Some(p) if p.len() + varint_len(p.len() as u64) < best => {
            out.push(METHOD_PCO);
            put_u64(out, p.len() as u64);
            out.extend_from_slice(&p);
        }
        // Bins must save an eighth over every other coding: they cost more
        // time both ways (long windows, where per-run frames come close).
        _ if bins_len < others - others / 8 => {
            out.push(METHOD_BINS);
            bins::put(out, &ints, bins_plan.as_ref().expect("planned"));
        }
        _ => {
            if var < packed.min(seg_len) {
                exact(&mut var_body, &mut var);
            }
            if seg_len < packed.min(var) {
                let (method, lens, plan) = seg.expect("planned");
                out.push(method);
                segframe::put(out, &ints, lens, plan);
            } else if var < packed {
                out.push(METHOD_VARINT);
                put_u64(out, var_body as u64);
                for &v in vals {
                    put_u64(out, v.to_zigzag_u64());
                }
            } else {
                out.push(METHOD_PACK + f.w as u8);
                pack::put(out, &ints, f);
            }
        }
    }
    Ok(())
}

/// v3: a small column (one value per tag run: tag deltas, counts, modes)
/// always packed, without the divisor search: cheap where it is cheap anyway.
pub fn put3_small(out: &mut Vec<u8>, vals: &[i64]) {
    if vals.is_empty() {
        return;
    }
    let f = pack::frame(vals, false);
    out.push(METHOD_PACK + f.w as u8);
    pack::put(out, vals, f);
}

/// v3: read a column of exactly `n` values written by `put3` or `put3_small`
/// into a reused buffer (cleared first): the decoder of a small chunk reads
/// a dozen short columns, and their allocations were a fixed cost.
pub fn get3_into<T: ColumnNum>(
    r: &mut Reader<'_>,
    n: usize,
    field: &'static str,
    out: &mut Vec<T>,
) -> Result<(), CodecError> {
    out.clear();
    if n == 0 {
        return Ok(());
    }
    let at = r.pos();
    let m = r.u8(field)?;
    get3_body(r, m, at, n, field, out)
}

/// `get3_into` for a column written by `put3_with` with these segment lengths.
pub fn get3_segs_into(
    r: &mut Reader<'_>,
    n: usize,
    segs: &[u32],
    field: &'static str,
    bufs: &mut segframe::Bufs,
    out: &mut Vec<i64>,
) -> Result<(), CodecError> {
    out.clear();
    if n == 0 {
        return Ok(());
    }
    let at = r.pos();
    match r.u8(field)? {
        METHOD_SEG if segs.iter().map(|&l| l as usize).sum::<usize>() == n => {
            segframe::get(r, segs, field, bufs, out)
        }
        METHOD_MULT => segframe::get(r, &[n as u32], field, bufs, out),
        m => get3_body(r, m, at, n, field, out),
    }
}

fn get3_body<T: ColumnNum>(
    r: &mut Reader<'_>,
    m: u8,
    at: usize,
    n: usize,
    field: &'static str,
    out: &mut Vec<T>,
) -> Result<(), CodecError> {
    match m {
        m @ METHOD_PACK..=66 => pack::get(r, n, u32::from(m - METHOD_PACK), field, out),
        METHOD_BINS => bins::get(r, n, field, out),
        m @ (METHOD_VARINT | METHOD_PCO) => get_body_into(r, m, at, n, field, out),
        m => Err(CodecError::Invalid {
            field,
            offset: at,
            msg: format!("unknown column method {m}"),
        }),
    }
}

/// Read a column of exactly `n` values written by `put`.
pub fn get<T: ColumnNum>(
    r: &mut Reader<'_>,
    n: usize,
    field: &'static str,
) -> Result<Vec<T>, CodecError> {
    let at = r.pos();
    let method = r.u8(field)?;
    let mut out = Vec::new();
    get_body_into(r, method, at, n, field, &mut out)?;
    Ok(out)
}

/// The varint or pco body of a column whose method byte (at `at`) was read,
/// into `out` (empty; a reused buffer keeps its capacity).
fn get_body_into<T: ColumnNum>(
    r: &mut Reader<'_>,
    method: u8,
    at: usize,
    n: usize,
    field: &'static str,
    out: &mut Vec<T>,
) -> Result<(), CodecError> {
    let len = r.varint_max(field, r.remaining() as u64)? as usize;
    let body = r.bytes(len, field)?;
    match method {
        METHOD_VARINT => {
            out.reserve(n.min(body.len()));
            let used = super::varint::read_n(body, n, |v| out.push(T::from_zigzag_u64(v)))
                .ok_or(CodecError::Truncated { field, offset: at })?;
            if used != body.len() {
                return Err(CodecError::Trailing {
                    extra: body.len() - used,
                    offset: at,
                });
            }
            Ok(())
        }
        METHOD_PCO => {
            out.resize(n, T::default());
            let p = simple_decompress_into(body, out).map_err(|e| pco_err(field, at, e))?;
            if p.n_processed != n || !p.finished {
                return Err(CodecError::Invalid {
                    field,
                    offset: at,
                    msg: format!("pco column holds a different count than the {n} expected"),
                });
            }
            Ok(())
        }
        m => Err(CodecError::Invalid {
            field,
            offset: at,
            msg: format!("unknown column method {m}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_len_matches_the_writer() {
        for bits in 0..64 {
            for v in [1u64 << bits, (1u64 << bits) - 1, u64::MAX >> (63 - bits)] {
                let mut b = Vec::new();
                put_u64(&mut b, v);
                assert_eq!(varint_len(v), b.len(), "{v}");
            }
        }
    }

    #[test]
    fn v3_picks_the_smallest_coding() {
        let read = |b: &[u8], n| {
            let mut v: Vec<i64> = Vec::new();
            get3_into(&mut Reader::new(b), n, "x", &mut v).unwrap();
            v
        };
        // Narrow: packed. Constant: no body at all.
        let narrow: Vec<i64> = (0..100).map(|i| 1000 + i % 7).collect();
        let mut b = Vec::new();
        put3(&mut b, &narrow, DeltaSpec::NoOp).unwrap();
        assert_eq!(b[0], METHOD_PACK + 3);
        assert_eq!(read(&b, 100), narrow);
        b.clear();
        put3(&mut b, &[5i64; 40], DeltaSpec::NoOp).unwrap();
        assert_eq!(b, [METHOD_PACK, 10]);
        // Skewed (mostly tiny, one huge): varints.
        let skewed: Vec<i64> = (0..100)
            .map(|i| if i == 50 { 1 << 60 } else { i % 3 })
            .collect();
        b.clear();
        put3(&mut b, &skewed, DeltaSpec::NoOp).unwrap();
        assert_eq!(b[0], METHOD_VARINT);
        assert_eq!(read(&b, 100), skewed);
        // Long and multi-modal: bins.
        let long: Vec<i64> = (0..PCO_MIN_N_V3 as i64)
            .map(|i| {
                [100_000_000, 250_000_000, 1_000_000_000][i as usize % 3] + (i * 7919) % 20_000
            })
            .collect();
        b.clear();
        put3(&mut b, &long, DeltaSpec::NoOp).unwrap();
        assert_eq!(b[0], METHOD_BINS);
        assert_eq!(read(&b, long.len()), long);
        // Long floats on a decimal step: pco (its float modes).
        let floats: Vec<f64> = (0..PCO_MIN_N_V3)
            .map(|i| ((i * 7919) % 20_000) as f64 * 0.01)
            .collect();
        b.clear();
        put3(&mut b, &floats, DeltaSpec::NoOp).unwrap();
        assert_eq!(b[0], METHOD_PCO);
        let mut got: Vec<f64> = Vec::new();
        get3_into(&mut Reader::new(&b), floats.len(), "x", &mut got).unwrap();
        assert_eq!(got, floats);
        let narrow: Vec<i64> = (0..PCO_WIDE_N_V3 as i64)
            .map(|i| (i * 7919) % 20_000)
            .collect();
        b.clear();
        put3(&mut b, &narrow, DeltaSpec::NoOp).unwrap();
        assert_eq!(b[0], METHOD_PACK + 15);
        // Nothing for an empty column.
        b.clear();
        put3::<i64>(&mut b, &[], DeltaSpec::NoOp).unwrap();
        assert!(b.is_empty());
    }

    #[test]
    fn value_deltas_pick_segments_or_bins() {
        let mut plans = Default::default();
        let mut r = crate::testutil::Rng::new(11);
        let lens = [1000u32; 8];
        let mut put = |vals: &[i64]| {
            let mut b = Vec::new();
            let segs = Segs {
                lens: &lens,
                mult: false,
                plans: &mut plans,
            };
            put3_with(&mut b, vals, DeltaSpec::NoOp, Some(segs), Pco::Never).unwrap();
            let mut got = Vec::new();
            let mut bufs = segframe::Bufs::default();
            get3_segs_into(
                &mut Reader::new(&b),
                vals.len(),
                &lens,
                "x",
                &mut bufs,
                &mut got,
            )
            .unwrap();
            assert_eq!(got, vals);
            b[0]
        };
        // Ramps, each tag at its own rate: a frame per run (4 bits a value,
        // where bins pay for a bin per tag).
        let narrow: Vec<i64> = (0..8000)
            .map(|i| (i / 1000) * 1_000_000 + r.below(9) as i64)
            .collect();
        assert_eq!(put(&narrow), METHOD_SEG);
        // Heavy-tailed (mostly small, now and then thousands): bins win.
        let heavy: Vec<i64> = (0..8000)
            .map(|_| {
                let x = r.below(1 << 21) as i64 - (1 << 20);
                if r.chance(4) {
                    x
                } else {
                    x >> 16
                }
            })
            .collect();
        assert_eq!(put(&heavy), METHOD_BINS);
    }
}
