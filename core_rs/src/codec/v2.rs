//! Codec v2 layout (docs/format.md, "DATA payload: codec v2"): typed, with a
//! coding chosen per tag and per column.
//!
//! Samples are stable-sorted by tag, as in v1. A small "head" block (tag runs
//! with each tag's value mode, decimal exceptions, status and flag runs,
//! strings) is zstd'd when that helps; then five numeric columns, each written
//! by `column::put` (varints or pco, whichever is smaller):
//! time (per-tag deltas), latency (server - source), ints (per-tag deltas of
//! integers and of decimal-float mantissas), floats (non-decimal doubles),
//! words (XOR of untyped 64-bit words).

use pco::DeltaSpec;

use super::decimal::{self, Width};
use super::v1::{inflate, put_rle, read_rle};
use super::varint::{put_u64, Reader};
use super::{column, kind, tag_order, Chunk, CodecError, Columns, MAX_RAW_LEN};

pub const VERSION: u8 = 2;
/// A chunk holds at most this many samples: bounds decoder memory (about
/// 160 MiB at the limit) whatever the header says. A 1 s window at 100k
/// values/s is 100k samples.
pub const MAX_SAMPLES: usize = 1 << 22;
pub(super) const HEAD_NONE: u8 = 0;
pub(super) const HEAD_ZSTD: u8 = 1;
const ZSTD_LEVEL: i32 = 3;

/// How one tag's values are stored.
pub const MODE_INT: u8 = 0; // wrapping delta of the 64-bit word, in `ints`
pub const MODE_DEC64: u8 = 1; // decimal f64: delta of k, in `ints`; exceptions in the head
pub const MODE_DEC32: u8 = 2; // decimal f32 (widened to f64)
pub const MODE_FLOAT: u8 = 3; // the double itself, in `floats`
pub const MODE_WORD: u8 = 4; // XOR with the previous word, in `words`

struct Run {
    tag: u32,
    count: usize,
    mode: u8,
    e: u8,
    /// (position within the run, raw word) of values that are not decimal.
    exceptions: Vec<(usize, u64)>,
}

pub(super) fn width(mode: u8) -> Width {
    if mode == MODE_DEC32 {
        Width::F32
    } else {
        Width::F64
    }
}

/// Pick a tag's mode from its kind hint and, for floats, from its values.
pub(super) fn choose_mode(k: u8, vals: impl Iterator<Item = u64> + Clone) -> (u8, u8) {
    match k {
        kind::F64 => decimal::choose(vals, Width::F64).map_or((MODE_FLOAT, 0), |e| (MODE_DEC64, e)),
        kind::F32 => decimal::choose(vals, Width::F32).map_or((MODE_FLOAT, 0), |e| (MODE_DEC32, e)),
        kind::INT | kind::UINT | kind::BOOL | kind::STRING | kind::TIME => (MODE_INT, 0),
        _ => (MODE_WORD, 0),
    }
}

/// Encode; `kinds[tag]` is the tag's type hint (`kind::*`), missing = unknown.
pub fn encode(c: &Columns<'_>, kinds: &[u8]) -> Result<Vec<u8>, CodecError> {
    encode_with(c, kinds, true)
}

/// `compress = false` keeps the head raw (fixed test vectors use it).
pub fn encode_with(c: &Columns<'_>, kinds: &[u8], compress: bool) -> Result<Vec<u8>, CodecError> {
    c.check_lengths()?;
    let n = c.len();
    if n > MAX_SAMPLES {
        return Err(CodecError::TooLarge(n));
    }
    let order = tag_order(c.tag);

    let mut runs: Vec<Run> = Vec::new();
    for &i in &order {
        match runs.last_mut() {
            Some(r) if r.tag == c.tag[i] => r.count += 1,
            _ => runs.push(Run {
                tag: c.tag[i],
                count: 1,
                mode: MODE_WORD,
                e: 0,
                exceptions: Vec::new(),
            }),
        }
    }

    let mut time = Vec::with_capacity(n);
    let mut latency = Vec::with_capacity(n);
    let mut ints: Vec<i64> = Vec::with_capacity(n);
    let mut floats: Vec<f64> = Vec::new();
    let mut words: Vec<u64> = Vec::new();
    let mut pos = 0;
    let mut base = 0i64;
    for run in &mut runs {
        let idx = &order[pos..pos + run.count];
        pos += run.count;
        let vals = idx.iter().map(|&i| c.value_bits[i]);
        // The exponent is chosen on an even sample of at most 64 values; the
        // encoding below still checks every value.
        let step = run.count.div_ceil(64);
        let sample = idx.iter().step_by(step).map(|&i| c.value_bits[i]);
        (run.mode, run.e) = choose_mode(kinds.get(run.tag as usize).copied().unwrap_or(0), sample);

        // Time: the run's first sample against the previous run's first.
        let mut prev = base;
        base = c.source_ns[idx[0]];
        for &i in idx {
            time.push(c.source_ns[i].wrapping_sub(prev));
            prev = c.source_ns[i];
            latency.push(c.server_ns[i].wrapping_sub(c.source_ns[i]));
        }

        match run.mode {
            MODE_INT => {
                let mut prev = 0u64;
                for v in vals {
                    ints.push(v.wrapping_sub(prev) as i64);
                    prev = v;
                }
            }
            MODE_DEC64 | MODE_DEC32 => {
                let w = width(run.mode);
                let mut prev = 0i64;
                let at = ints.len();
                for (j, v) in vals.clone().enumerate() {
                    match decimal::encode_one(v, run.e, w) {
                        Some(k) => {
                            ints.push(k.wrapping_sub(prev));
                            prev = k;
                        }
                        None => run.exceptions.push((j, v)),
                    }
                }
                if run.exceptions.len() * 4 > run.count {
                    // The sample misled us: the plain float column is better.
                    ints.truncate(at);
                    run.exceptions.clear();
                    run.mode = MODE_FLOAT;
                    floats.extend(vals.map(f64::from_bits));
                }
            }
            MODE_FLOAT => floats.extend(vals.map(f64::from_bits)),
            _ => {
                let mut prev = 0u64;
                for v in vals {
                    words.push(v ^ prev);
                    prev = v;
                }
            }
        }
    }

    let mut head: Vec<u8> = Vec::with_capacity(runs.len() * 8 + 16);
    // Runs as columns (tag deltas, counts - 1, modes, then the decimal
    // parameters): with one or two samples per tag per window these are
    // most of the head, and zstd packs homogeneous runs of bytes best.
    put_u64(&mut head, runs.len() as u64);
    let mut prev_tag = 0u32;
    for run in &runs {
        put_u64(&mut head, (run.tag - prev_tag).into()); // ascending tags
        prev_tag = run.tag;
    }
    for run in &runs {
        put_u64(&mut head, run.count as u64 - 1);
    }
    head.extend(runs.iter().map(|r| r.mode));
    for run in runs
        .iter()
        .filter(|r| matches!(r.mode, MODE_DEC64 | MODE_DEC32))
    {
        head.push(run.e);
        put_u64(&mut head, run.exceptions.len() as u64);
        let mut next = 0usize;
        for &(j, v) in &run.exceptions {
            put_u64(&mut head, (j - next) as u64); // gap since the last exception
            head.extend_from_slice(&v.to_le_bytes());
            next = j + 1;
        }
    }
    put_rle(&mut head, order.iter().map(|&i| c.status[i]), |o, v| {
        put_u64(o, v.into())
    });
    put_rle(&mut head, order.iter().map(|&i| c.flags[i]), |o, v| {
        o.push(v)
    });
    for s in c.strings {
        put_u64(&mut head, s.len() as u64);
        head.extend_from_slice(s.as_bytes());
    }
    if head.len() > MAX_RAW_LEN {
        return Err(CodecError::TooLarge(head.len()));
    }

    let mut out = Vec::with_capacity(head.len() / 2 + n * 2 + 32);
    out.push(VERSION);
    put_u64(&mut out, n as u64);
    put_u64(&mut out, c.strings.len() as u64);
    let z = if compress && head.len() > 64 {
        zstd_head(&head)?
    } else {
        Vec::new()
    };
    let (method, body) = if !z.is_empty() && z.len() < head.len() {
        (HEAD_ZSTD, &z)
    } else {
        (HEAD_NONE, &head)
    };
    out.push(method);
    put_u64(&mut out, head.len() as u64);
    put_u64(&mut out, body.len() as u64);
    out.extend_from_slice(body);

    column::put(&mut out, &time, DeltaSpec::NoOp)?;
    column::put(&mut out, &latency, DeltaSpec::NoOp)?;
    column::put(&mut out, &ints, DeltaSpec::NoOp)?;
    column::put(&mut out, &floats, DeltaSpec::TryConsecutive(1))?;
    column::put(&mut out, &words, DeltaSpec::NoOp)?;
    Ok(out)
}

thread_local! {
    // A zstd context costs more to set up than a small head costs to compress.
    static ZSTD: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

pub(super) fn zstd_head(head: &[u8]) -> Result<Vec<u8>, CodecError> {
    let err = |e: std::io::Error| CodecError::Zstd(e.to_string());
    ZSTD.with(|z| {
        let mut z = z.borrow_mut();
        if z.is_none() {
            *z = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(err)?);
        }
        z.as_mut().expect("set").compress(head).map_err(err)
    })
}

pub(super) fn invalid(field: &'static str, offset: usize, msg: String) -> CodecError {
    CodecError::Invalid { field, offset, msg }
}

/// Each string takes at least its length byte: refuse a count the block
/// (`what`, of `len` bytes) cannot hold before anything is sized by it.
pub(super) fn strings_fit(n_strings: usize, len: usize, what: &str) -> Result<(), CodecError> {
    if n_strings > len {
        return Err(invalid(
            "n_strings",
            0,
            format!("{n_strings} strings cannot fit in a {len} byte {what}"),
        ));
    }
    Ok(())
}

/// A WORD run's values from its column: the first word, then each word
/// XOR the previous value.
pub(super) fn unxor_into(out: &mut Vec<u64>, words: &[u64]) {
    let mut prev = 0u64;
    out.extend(words.iter().map(|&x| {
        prev ^= x;
        prev
    }));
}

/// The end of a head (v2 and v3): status and flags as runs, the strings,
/// and nothing after them.
pub(super) fn read_head_tail(
    r: &mut Reader<'_>,
    n: usize,
    n_strings: usize,
    out: &mut Chunk,
) -> Result<(), CodecError> {
    read_rle(
        r,
        n,
        "status",
        |r| Ok(r.varint_max("status", u32::MAX.into())? as u32),
        &mut out.status,
    )?;
    read_rle(r, n, "flags", |r| r.u8("flags"), &mut out.flags)?;
    out.strings.reserve(n_strings.min(r.remaining()));
    for _ in 0..n_strings {
        let offset = r.pos();
        let len = r.varint_max("string_len", r.remaining() as u64)? as usize;
        let s = std::str::from_utf8(r.bytes(len, "string")?)
            .map_err(|e| invalid("string", offset, format!("not UTF-8: {e}")))?;
        out.strings.push(s.to_owned());
    }
    if r.remaining() != 0 {
        return Err(CodecError::Trailing {
            extra: r.remaining(),
            offset: r.pos(),
        });
    }
    Ok(())
}

fn read_head(
    h: &[u8],
    n: usize,
    n_strings: usize,
    out: &mut Chunk,
) -> Result<Vec<Run>, CodecError> {
    let mut r = Reader::new(h);
    let n_runs = r.varint_max("tag_runs", n as u64)? as usize;
    let mut runs = Vec::with_capacity(n_runs);
    let mut tag = 0u32;
    for _ in 0..n_runs {
        let offset = r.pos();
        let d = r.varint("tag_delta")?;
        tag = u32::try_from(u64::from(tag) + d).map_err(|_| CodecError::OutOfRange {
            field: "tag_delta",
            offset,
            value: d,
            max: u64::from(u32::MAX - tag),
        })?;
        runs.push(Run {
            tag,
            count: 0,
            mode: 0,
            e: 0,
            exceptions: Vec::new(),
        });
    }
    let mut total = 0usize;
    for run in &mut runs {
        let offset = r.pos();
        let count = r.varint("tag_run_count")?.saturating_add(1);
        if count > (n - total) as u64 {
            return Err(invalid(
                "tag_run_count",
                offset,
                format!(
                    "run of {count} for tag {} with {} samples left",
                    run.tag,
                    n - total
                ),
            ));
        }
        run.count = count as usize;
        total += run.count;
    }
    for run in &mut runs {
        let at = r.pos();
        run.mode = r.u8("value_mode")?;
        if run.mode > MODE_WORD {
            return Err(invalid(
                "value_mode",
                at,
                format!("unknown value mode {}", run.mode),
            ));
        }
    }
    for run in runs
        .iter_mut()
        .filter(|r| matches!(r.mode, MODE_DEC64 | MODE_DEC32))
    {
        let at = r.pos();
        run.e = r.u8("decimal_exponent")?;
        if run.e > decimal::MAX_E {
            return Err(invalid(
                "decimal_exponent",
                at,
                format!("{} exceeds {}", run.e, decimal::MAX_E),
            ));
        }
        let count = run.count;
        let n_exc = r.varint_max("exception_count", count as u64)? as usize;
        let mut next = 0usize;
        for _ in 0..n_exc {
            let off = r.pos();
            let gap = r.varint_max("exception_gap", (count - next) as u64)? as usize;
            let j = next + gap;
            if j >= count {
                return Err(invalid(
                    "exception_gap",
                    off,
                    format!("position {j} outside a run of {count}"),
                ));
            }
            run.exceptions.push((j, r.u64_le("exception_value")?));
            next = j + 1;
        }
    }
    for run in &runs {
        out.tag.extend(std::iter::repeat_n(run.tag, run.count));
    }
    if total != n {
        return Err(invalid(
            "tag_runs",
            r.pos(),
            format!("runs cover {total} samples, header says {n}"),
        ));
    }
    read_head_tail(&mut r, n, n_strings, out)?;
    Ok(runs)
}

pub fn decode(payload: &[u8]) -> Result<Chunk, CodecError> {
    let mut r = Reader::new(payload);
    let version = r.u8("codec_version")?;
    if version != VERSION {
        return Err(CodecError::UnsupportedVersion(version));
    }
    let n = r.varint_max("n_samples", MAX_SAMPLES as u64)? as usize;
    let n_strings = r.varint_max("n_strings", MAX_RAW_LEN as u64)? as usize;
    let method = r.u8("head_compression")?;
    let raw_len = r.varint_max("head_raw_len", MAX_RAW_LEN as u64)? as usize;
    let stored = r.varint_max("head_len", r.remaining() as u64)? as usize;
    let body = r.bytes(stored, "head")?;
    let raw;
    let head: &[u8] = match method {
        HEAD_NONE if stored == raw_len => body,
        HEAD_NONE => {
            return Err(CodecError::RawLenMismatch {
                declared: raw_len,
                got: stored,
            })
        }
        HEAD_ZSTD => {
            raw = inflate(body, raw_len)?;
            &raw
        }
        m => return Err(CodecError::UnknownCompression(m)),
    };
    // Every sample takes at least two head bytes (status and flag runs can
    // be long, but each run names a tag run first); n_strings likewise.
    strings_fit(n_strings, head.len(), "head")?;
    let mut out = Chunk::with_capacity(0);
    let runs = read_head(head, n, n_strings, &mut out)?;

    let (mut n_ints, mut n_floats, mut n_words) = (0usize, 0usize, 0usize);
    for run in &runs {
        match run.mode {
            MODE_INT => n_ints += run.count,
            MODE_DEC64 | MODE_DEC32 => n_ints += run.count - run.exceptions.len(),
            MODE_FLOAT => n_floats += run.count,
            _ => n_words += run.count,
        }
    }
    let time: Vec<i64> = column::get(&mut r, n, "time")?;
    let latency: Vec<i64> = column::get(&mut r, n, "latency")?;
    let ints: Vec<i64> = column::get(&mut r, n_ints, "ints")?;
    let floats: Vec<f64> = column::get(&mut r, n_floats, "floats")?;
    let words: Vec<u64> = column::get(&mut r, n_words, "words")?;
    if r.remaining() != 0 {
        return Err(CodecError::Trailing {
            extra: r.remaining(),
            offset: r.pos(),
        });
    }

    out.source_ns.reserve_exact(n);
    out.server_ns.reserve_exact(n);
    out.value_bits.reserve_exact(n);
    let (mut ti, mut ii, mut fi, mut wi) = (0usize, 0usize, 0usize, 0usize);
    let mut base = 0i64;
    for run in &runs {
        let mut prev = base;
        for j in 0..run.count {
            let t = prev.wrapping_add(time[ti]);
            if j == 0 {
                base = t;
            }
            out.source_ns.push(t);
            out.server_ns.push(t.wrapping_add(latency[ti]));
            prev = t;
            ti += 1;
        }
        match run.mode {
            MODE_INT => {
                let mut prev = 0u64;
                for &d in &ints[ii..ii + run.count] {
                    prev = prev.wrapping_add(d as u64);
                    out.value_bits.push(prev);
                }
                ii += run.count;
            }
            MODE_DEC64 | MODE_DEC32 => {
                let w = width(run.mode);
                let mut prev = 0i64;
                let mut exc = run.exceptions.iter().peekable();
                for j in 0..run.count {
                    if let Some(&(_, v)) = exc.next_if(|&&(p, _)| p == j) {
                        out.value_bits.push(v);
                    } else {
                        prev = prev.wrapping_add(ints[ii]);
                        ii += 1;
                        out.value_bits.push(decimal::decode(prev, run.e, w));
                    }
                }
            }
            MODE_FLOAT => {
                out.value_bits
                    .extend(floats[fi..fi + run.count].iter().map(|f| f.to_bits()));
                fi += run.count;
            }
            _ => {
                unxor_into(&mut out.value_bits, &words[wi..wi + run.count]);
                wi += run.count;
            }
        }
    }
    Ok(out)
}
