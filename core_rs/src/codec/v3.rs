//! Codec v3 and v4 layout (docs/format.md, "DATA payload: codec v3" and
//! "codec v4"): v2's typed coding, made fast for short (1 s) flush windows.
//! v4 adds one column method, bins (`bins`), for the long columns of a large
//! plant's window, where v3 used pco.
//!
//! Same per-tag choices as v2 (tag runs, value modes, decimal floats), but
//! every column is a frame-of-reference bit packing (`pack`): the per-run
//! columns always (`column::put3_small`), the others unless varints or, on
//! long columns, pco are smaller (`column::put3`). Each run's first time and
//! first value get their own columns (absolute, so their frame spans one
//! window, not two), which keeps the per-sample deltas narrow. Only the small
//! irregular part (decimal exceptions, status and flag runs, strings) is a
//! byte block, zstd'd only when it is large enough to pay.

use pco::DeltaSpec;

use super::column::Pco;
use super::decimal::{self, Width};
use super::v1::{inflate, put_rle};
use super::v2::{
    invalid, read_head_tail, strings_fit, unxor_into, width, zstd_head, HEAD_NONE, HEAD_ZSTD,
    MAX_SAMPLES, MODE_DEC32, MODE_DEC64, MODE_FLOAT, MODE_INT, MODE_WORD,
};
use super::varint::{put_u64, Reader};
use super::{column, kind, segframe, tag_order, Chunk, CodecError, Columns, MAX_RAW_LEN};

/// The version the encoder writes: v4 is v3's layout with one more column
/// method (`bins`), which a v3 payload never holds.
pub const VERSION: u8 = 4;
/// The older version this module also reads.
pub const VERSION_V3: u8 = 3;
/// The rest block is zstd'd from this size on (strings, many status runs);
/// below it zstd costs more time than it saves bytes.
const ZSTD_MIN: usize = 512;

/// Encode; `kinds[tag]` is the tag's type hint (`kind::*`), missing = unknown.
pub fn encode(c: &Columns<'_>, kinds: &[u8]) -> Result<Vec<u8>, CodecError> {
    encode_with(c, kinds, true)
}

/// The columns of a chunk before they are written.
#[derive(Default)]
struct Cols {
    tag_delta: Vec<i64>,
    count_m1: Vec<i64>,
    mode: Vec<i64>,
    exponent: Vec<i64>,
    exceptions: Vec<i64>,
    d: DataCols,
    /// Decimal exceptions, then status and flag runs, then strings.
    rest: Vec<u8>,
    /// Each value's smallest decimal (k, e) within the current run.
    ks: Vec<(i64, u8)>,
    /// Sample indexes in tag order, and the counting sort's bucket starts.
    order: Vec<usize>,
    /// Tags, source times and value words in tag order.
    tags: Vec<u32>,
    ts: Vec<i64>,
    vs: Vec<u64>,
    start: Vec<usize>,
    plans: [segframe::Plan; 2],
    /// Each tag's decimal exponent in the last chunk: where the next search
    /// starts. The exponent found does not depend on it, only the work.
    exp_hint: Vec<u8>,
}

/// Where the decimal search for `tag` starts (see `Cols::exp_hint`).
fn hint(hints: &[u8], tag: u32) -> u8 {
    hints.get(tag as usize).copied().unwrap_or(2)
}

fn set_hint(hints: &mut Vec<u8>, tag: u32, e: u8) {
    let t = tag as usize;
    if t >= hints.len() && t < 1 << 20 {
        hints.resize(t + 1, 2);
    }
    if let Some(h) = hints.get_mut(t) {
        *h = e;
    }
}

/// The data columns of a chunk, as the encoder fills them and the decoder
/// reads them, and the segments of `time_rest` and `int_rest` (the lengths
/// of the runs' non-empty segments).
#[derive(Default)]
struct DataCols {
    time_first: Vec<i64>,
    time_rest: Vec<i64>,
    latency: Vec<i64>,
    int_first: Vec<i64>,
    int_rest: Vec<i64>,
    floats: Vec<f64>,
    words: Vec<u64>,
    seg_time: Vec<u32>,
    seg_int: Vec<u32>,
}

impl DataCols {
    /// Empty every column; with `keep`, free those past `keep` elements so
    /// one huge chunk does not pin its memory in the thread for good.
    fn clear(&mut self, keep: usize) {
        fn c<T>(v: &mut Vec<T>, keep: usize) {
            v.clear();
            if v.capacity() > keep {
                *v = Vec::new();
            }
        }
        for v in [
            &mut self.time_first,
            &mut self.time_rest,
            &mut self.latency,
            &mut self.int_first,
            &mut self.int_rest,
        ] {
            c(v, keep);
        }
        c(&mut self.floats, keep);
        c(&mut self.words, keep);
        c(&mut self.seg_time, keep);
        c(&mut self.seg_int, keep);
    }
}

/// `tag_order` into reused buffers.
fn sort_by_tag(tag: &[u32], order: &mut Vec<usize>, start: &mut Vec<usize>) {
    let n = tag.len();
    order.clear();
    let max = tag.iter().copied().max().unwrap_or(0) as usize;
    if tag.is_sorted() || max > 4 * n + 1024 {
        order.extend(tag_order(tag));
        return;
    }
    start.clear();
    start.resize(max + 2, 0);
    for &t in tag {
        start[t as usize + 1] += 1;
    }
    for i in 1..start.len() {
        start[i] += start[i - 1];
    }
    order.resize(n, 0);
    for (i, &t) in tag.iter().enumerate() {
        let s = &mut start[t as usize];
        order[*s] = i;
        *s += 1;
    }
}

impl Cols {
    fn clear(&mut self) {
        for v in [
            &mut self.tag_delta,
            &mut self.count_m1,
            &mut self.mode,
            &mut self.exponent,
            &mut self.exceptions,
        ] {
            v.clear();
        }
        self.d.clear(usize::MAX);
        self.tags.clear();
        self.ts.clear();
        self.vs.clear();
        self.rest.clear();
    }
}

thread_local! {
    // Column buffers reused across chunks: a 1 s window is small enough that
    // allocating and faulting in a dozen vectors shows in the profile.
    static SCRATCH: std::cell::RefCell<Cols> = std::cell::RefCell::new(Cols::default());
}

/// `compress = false` never zstds the rest block (fixed test vectors use it).
pub fn encode_with(c: &Columns<'_>, kinds: &[u8], compress: bool) -> Result<Vec<u8>, CodecError> {
    c.check_lengths()?;
    let n = c.len();
    if n > MAX_SAMPLES {
        return Err(CodecError::TooLarge(n));
    }
    let mut k = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    k.clear();
    let out = encode_into(c, kinds, compress, &mut k);
    if k.d.latency.capacity() <= 1 << 18 {
        SCRATCH.with(|s| *s.borrow_mut() = k); // keep at most ~25 MB around
    }
    out
}

fn encode_into(
    c: &Columns<'_>,
    kinds: &[u8],
    compress: bool,
    k: &mut Cols,
) -> Result<Vec<u8>, CodecError> {
    let mut order = std::mem::take(&mut k.order);
    sort_by_tag(c.tag, &mut order, &mut k.start);
    let out = encode_runs(c, kinds, compress, k, &order);
    k.order = order;
    out
}

fn encode_runs(
    c: &Columns<'_>,
    kinds: &[u8],
    compress: bool,
    k: &mut Cols,
    order: &[usize],
) -> Result<Vec<u8>, CodecError> {
    let n = c.len();
    // Gather once into tag order (contiguous, no per-push checks); the run
    // loop below then reads slices.
    k.d.latency.extend(
        order
            .iter()
            .map(|&i| c.server_ns[i].wrapping_sub(c.source_ns[i])),
    );
    k.tags.extend(order.iter().map(|&i| c.tag[i]));
    k.ts.extend(order.iter().map(|&i| c.source_ns[i]));
    k.vs.extend(order.iter().map(|&i| c.value_bits[i]));
    let mut exc: Vec<(usize, u64)> = Vec::new();
    let (mut pos, mut prev_tag) = (0usize, 0u32);
    while pos < n {
        let tag = k.tags[pos];
        let mut end = pos + 1;
        while end < n && k.tags[end] == tag {
            end += 1;
        }
        let (ts, vals) = (&k.ts[pos..end], &k.vs[pos..end]);
        pos = end;
        let count = ts.len();
        k.tag_delta.push(i64::from(tag - prev_tag)); // ascending tags
        prev_tag = tag;
        k.count_m1.push(count as i64 - 1);
        k.d.time_first.push(ts[0]);
        k.d.time_rest
            .extend(ts.windows(2).map(|w| w[1].wrapping_sub(w[0])));
        if count > 1 {
            k.d.seg_time.push(count as u32 - 1);
        }

        let mut mode = match kinds.get(tag as usize).copied().unwrap_or(0) {
            kind::F64 => MODE_DEC64,
            kind::F32 => MODE_DEC32,
            kind::INT | kind::UINT | kind::BOOL | kind::STRING | kind::TIME => MODE_INT,
            _ => MODE_WORD,
        };
        if count == 1 && matches!(mode, MODE_DEC64 | MODE_DEC32) {
            // One sample (most tags in a 1 s window): what `analyse` would
            // choose, without its per-run work.
            match decimal::min_k(vals[0], width(mode), hint(&k.exp_hint, tag)) {
                Some((x, e)) => {
                    set_hint(&mut k.exp_hint, tag, e);
                    k.d.int_first.push(x);
                    k.exponent.push(e.into());
                    k.exceptions.push(0);
                }
                None => {
                    mode = MODE_FLOAT;
                    k.d.floats.push(f64::from_bits(vals[0]));
                }
            }
            k.mode.push(mode.into());
            continue;
        }
        let ints_before = k.d.int_rest.len();
        let mut e = 0u8;
        if matches!(mode, MODE_DEC64 | MODE_DEC32) {
            match decimal::analyse(
                vals.iter().copied(),
                width(mode),
                hint(&k.exp_hint, tag),
                &mut k.ks,
            ) {
                Some(x) => {
                    e = x;
                    set_hint(&mut k.exp_hint, tag, x);
                }
                None => mode = MODE_FLOAT,
            }
        }
        match mode {
            MODE_INT => {
                k.d.int_first.push(vals[0] as i64);
                k.d.int_rest
                    .extend(vals.windows(2).map(|w| w[1].wrapping_sub(w[0]) as i64));
            }
            MODE_DEC64 | MODE_DEC32 => {
                let (first_at, rest_at) = (k.d.int_first.len(), k.d.int_rest.len());
                exc.clear();
                let mut prev: Option<i64> = None;
                for (j, (&v, &(k0, e0))) in vals.iter().zip(&k.ks).enumerate() {
                    match (decimal::rescale(k0, e0, e), prev) {
                        (Some(x), Some(p)) => {
                            k.d.int_rest.push(x.wrapping_sub(p));
                            prev = Some(x);
                        }
                        (Some(x), None) => {
                            k.d.int_first.push(x);
                            prev = Some(x);
                        }
                        (None, _) => exc.push((j, v)), // also NO_FIT
                    }
                }
                if exc.len() * 4 > count {
                    // The sample misled us: the plain float column is better.
                    // (So a decimal run always has a first k.)
                    k.d.int_first.truncate(first_at);
                    k.d.int_rest.truncate(rest_at);
                    mode = MODE_FLOAT;
                    k.d.floats.extend(vals.iter().map(|&v| f64::from_bits(v)));
                } else {
                    k.exponent.push(e.into());
                    k.exceptions.push(exc.len() as i64);
                    let mut next = 0usize;
                    for &(j, v) in &exc {
                        put_u64(&mut k.rest, (j - next) as u64); // gap since the last one
                        k.rest.extend_from_slice(&v.to_le_bytes());
                        next = j + 1;
                    }
                }
            }
            MODE_FLOAT => k.d.floats.extend(vals.iter().map(|&v| f64::from_bits(v))),
            _ => {
                k.d.words.push(vals[0]);
                k.d.words.extend(vals.windows(2).map(|w| w[1] ^ w[0]));
            }
        }
        if k.d.int_rest.len() > ints_before {
            k.d.seg_int.push((k.d.int_rest.len() - ints_before) as u32);
        }
        k.mode.push(mode.into());
    }
    // One status and one flag value for the whole chunk is the usual case:
    // a single run, written without walking the tag order.
    if n > 0 && c.status.iter().all(|&s| s == c.status[0]) {
        put_u64(&mut k.rest, c.status[0].into()); // put_rle's (value, count)
        put_u64(&mut k.rest, n as u64);
    } else {
        put_rle(&mut k.rest, order.iter().map(|&i| c.status[i]), |o, v| {
            put_u64(o, v.into())
        });
    }
    if n > 0 && c.flags.iter().all(|&f| f == c.flags[0]) {
        k.rest.push(c.flags[0]);
        put_u64(&mut k.rest, n as u64);
    } else {
        put_rle(&mut k.rest, order.iter().map(|&i| c.flags[i]), |o, v| {
            o.push(v)
        });
    }
    for s in c.strings {
        put_u64(&mut k.rest, s.len() as u64);
        k.rest.extend_from_slice(s.as_bytes());
    }
    if k.rest.len() > MAX_RAW_LEN {
        return Err(CodecError::TooLarge(k.rest.len()));
    }

    // Room for about 10 bytes a sample: no regrowth on plant data.
    let mut out = Vec::with_capacity(k.rest.len() + n * 10 + 256);
    out.push(VERSION);
    put_u64(&mut out, n as u64);
    put_u64(&mut out, c.strings.len() as u64);
    put_u64(&mut out, k.tag_delta.len() as u64);
    for col in [
        &k.tag_delta,
        &k.count_m1,
        &k.mode,
        &k.exponent,
        &k.exceptions,
    ] {
        column::put3_small(&mut out, col);
    }
    let z = if compress && k.rest.len() >= ZSTD_MIN {
        zstd_head(&k.rest)?
    } else {
        Vec::new()
    };
    let (method, body) = if !z.is_empty() && z.len() < k.rest.len() {
        (HEAD_ZSTD, &z)
    } else {
        (HEAD_NONE, &k.rest)
    };
    out.push(method);
    put_u64(&mut out, k.rest.len() as u64);
    if method != HEAD_NONE {
        put_u64(&mut out, body.len() as u64);
    }
    out.extend_from_slice(body);
    // The runs' first times are absolute: pco's own delta search is wasted there too.
    let plans = &mut k.plans;
    column::put3_with(&mut out, &k.d.time_first, DeltaSpec::NoOp, None, Pco::Never)?;
    let segs_t = Some(column::Segs {
        lens: &k.d.seg_time,
        mult: true,
        plans: &mut *plans,
    });
    // Never pco on these three: per-run frames match or beat it on the time
    // and value deltas, it saves ~5% of latency, and it cost more than the
    // rest of the encoder together (docs/codec.md).
    column::put3_with(
        &mut out,
        &k.d.time_rest,
        DeltaSpec::NoOp,
        segs_t,
        Pco::Never,
    )?;
    column::put3_with(&mut out, &k.d.latency, DeltaSpec::NoOp, None, Pco::Never)?;
    column::put3_with(&mut out, &k.d.int_first, DeltaSpec::NoOp, None, Pco::Never)?;
    let segs_i = Some(column::Segs {
        lens: &k.d.seg_int,
        mult: false,
        plans,
    });
    column::put3_with(&mut out, &k.d.int_rest, DeltaSpec::NoOp, segs_i, Pco::Never)?;
    column::put3(&mut out, &k.d.floats, DeltaSpec::TryConsecutive(1))?;
    column::put3(&mut out, &k.d.words, DeltaSpec::NoOp)?;
    Ok(out)
}

/// One tag run as the decoder needs it.
struct Run {
    tag: u32,
    count: usize,
    mode: u8,
    e: u8,
    /// Index of the run's first exception in `exceptions`, and how many.
    exc_at: usize,
    n_exc: usize,
}

fn read_runs(r: &mut Reader<'_>, n: usize, b: &mut DecodeBufs) -> Result<Counts, CodecError> {
    let n_runs = r.varint_max("tag_runs", n as u64)? as usize;
    if (n_runs == 0) != (n == 0) {
        return Err(invalid(
            "tag_runs",
            r.pos(),
            format!("{n_runs} runs for {n} samples"),
        ));
    }
    let at = r.pos();
    column::get3_into(r, n_runs, "tag_delta", &mut b.a)?;
    column::get3_into(r, n_runs, "tag_run_count", &mut b.b)?;
    column::get3_into(r, n_runs, "value_mode", &mut b.c)?;
    let (deltas, counts, modes) = (&b.a, &b.b, &b.c);
    let runs = &mut b.runs;
    runs.clear();
    runs.reserve(n_runs);
    let (mut tag, mut total, mut n_dec) = (0u64, 0usize, 0usize);
    for j in 0..n_runs {
        // Bounds first: every column value is an arbitrary i64 here.
        if deltas[j] < 0 || tag + deltas[j] as u64 > u64::from(u32::MAX) {
            return Err(invalid(
                "tag_delta",
                at,
                format!("tag out of range at run {j}"),
            ));
        }
        let count = counts[j] as u64;
        if counts[j] < 0 || count >= (n - total) as u64 {
            return Err(invalid(
                "tag_run_count",
                at,
                format!(
                    "run {j} of {} with {} samples left",
                    count.wrapping_add(1),
                    n - total
                ),
            ));
        }
        tag += deltas[j] as u64;
        let mode = modes[j];
        if !(0..=i64::from(MODE_WORD)).contains(&mode) {
            return Err(invalid(
                "value_mode",
                at,
                format!("unknown value mode {mode} at run {j}"),
            ));
        }
        total += count as usize + 1;
        n_dec += usize::from(matches!(mode as u8, MODE_DEC64 | MODE_DEC32));
        runs.push(Run {
            tag: tag as u32,
            count: count as usize + 1,
            mode: mode as u8,
            e: 0,
            exc_at: 0,
            n_exc: 0,
        });
    }
    if total != n {
        return Err(invalid(
            "tag_runs",
            at,
            format!("runs cover {total} samples, header says {n}"),
        ));
    }
    let at = r.pos();
    column::get3_into(r, n_dec, "decimal_exponent", &mut b.a)?;
    column::get3_into(r, n_dec, "exception_count", &mut b.b)?;
    let (exps, excs) = (&b.a, &b.b);
    // One pass: the decimal runs' exponents and exceptions, each column's
    // count, and the segments of time_rest and int_rest.
    let (seg_time, seg_int) = (&mut b.d.seg_time, &mut b.d.seg_int);
    seg_time.clear();
    seg_int.clear();
    let mut c = Counts::default();
    let (mut jd, mut at_exc) = (0usize, 0usize);
    for run in runs.iter_mut() {
        if run.count > 1 {
            seg_time.push(run.count as u32 - 1);
        }
        let rest = match run.mode {
            MODE_INT => {
                (c.first, c.ints) = (c.first + 1, c.ints + run.count);
                run.count - 1
            }
            MODE_DEC64 | MODE_DEC32 => {
                let (e, x) = (exps[jd], excs[jd]);
                jd += 1;
                if !(0..=i64::from(decimal::MAX_E)).contains(&e) {
                    return Err(invalid(
                        "decimal_exponent",
                        at,
                        format!("{} exceeds {}", e, decimal::MAX_E),
                    ));
                }
                // A decimal run always keeps at least one value as k (its first).
                if !(0..run.count as i64).contains(&x) {
                    return Err(invalid(
                        "exception_count",
                        at,
                        format!("{} exceptions in a run of {}", x, run.count),
                    ));
                }
                run.e = e as u8;
                run.exc_at = at_exc;
                run.n_exc = x as usize;
                at_exc += run.n_exc;
                (c.first, c.ints) = (c.first + 1, c.ints + run.count - run.n_exc);
                run.count - run.n_exc - 1
            }
            MODE_FLOAT => {
                c.floats += run.count;
                0
            }
            _ => {
                c.words += run.count;
                0
            }
        };
        if rest > 0 {
            seg_int.push(rest as u32);
        }
    }
    c.any_exc = at_exc > 0;
    Ok(c)
}

/// How many values each column holds, from the runs.
#[derive(Default)]
struct Counts {
    first: usize,
    ints: usize,
    floats: usize,
    words: usize,
    /// Whether any decimal run has exceptions.
    any_exc: bool,
}

/// The rest block: decimal exceptions (position, raw word), status, flags, strings.
fn read_rest(
    h: &[u8],
    runs: &[Run],
    any_exc: bool,
    n: usize,
    n_strings: usize,
    exceptions: &mut Vec<(usize, u64)>,
    out: &mut Chunk,
) -> Result<(), CodecError> {
    let mut r = Reader::new(h);
    for run in runs.iter().filter(|r| any_exc && r.n_exc > 0) {
        let mut next = 0usize;
        for _ in 0..run.n_exc {
            let off = r.pos();
            let gap = r.varint_max("exception_gap", (run.count - next) as u64)? as usize;
            let j = next + gap;
            if j >= run.count {
                return Err(invalid(
                    "exception_gap",
                    off,
                    format!("position {j} outside a run of {}", run.count),
                ));
            }
            exceptions.push((j, r.u64_le("exception_value")?));
            next = j + 1;
        }
    }
    read_head_tail(&mut r, n, n_strings, out)?;
    Ok(())
}

/// Column buffers the decoder reuses from chunk to chunk (per thread).
#[derive(Default)]
struct DecodeBufs {
    a: Vec<i64>,
    b: Vec<i64>,
    c: Vec<i64>,
    runs: Vec<Run>,
    exceptions: Vec<(usize, u64)>,
    d: DataCols,
    seg: segframe::Bufs,
}

impl DecodeBufs {
    /// Past this many elements a buffer is freed after use, so one huge
    /// chunk does not pin its memory in the thread for good.
    const KEEP: usize = 1 << 16;

    fn trim(&mut self) {
        fn t<T>(v: &mut Vec<T>) {
            if v.capacity() > DecodeBufs::KEEP {
                *v = Vec::new();
            }
        }
        t(&mut self.a);
        t(&mut self.b);
        t(&mut self.c);
        t(&mut self.runs);
        t(&mut self.exceptions);
        self.d.clear(DecodeBufs::KEEP);
        self.seg.trim(DecodeBufs::KEEP);
    }
}

thread_local! {
    static BUFS: std::cell::RefCell<DecodeBufs> = std::cell::RefCell::new(DecodeBufs::default());
}

pub fn decode(payload: &[u8]) -> Result<Chunk, CodecError> {
    BUFS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut b) => {
            let out = decode_with(payload, &mut b);
            b.trim();
            out
        }
        Err(_) => decode_with(payload, &mut DecodeBufs::default()),
    })
}

fn decode_with(payload: &[u8], b: &mut DecodeBufs) -> Result<Chunk, CodecError> {
    let mut r = Reader::new(payload);
    let version = r.u8("codec_version")?;
    if version != VERSION && version != VERSION_V3 {
        return Err(CodecError::UnsupportedVersion(version));
    }
    let n = r.varint_max("n_samples", MAX_SAMPLES as u64)? as usize;
    let n_strings = r.varint_max("n_strings", MAX_RAW_LEN as u64)? as usize;
    let c = read_runs(&mut r, n, b)?;

    let method = r.u8("rest_compression")?;
    let raw_len = r.varint_max("rest_raw_len", MAX_RAW_LEN as u64)? as usize;
    let raw;
    let rest: &[u8] = match method {
        HEAD_NONE => r.bytes(raw_len, "rest")?,
        HEAD_ZSTD => {
            let stored = r.varint_max("rest_len", r.remaining() as u64)? as usize;
            raw = inflate(r.bytes(stored, "rest")?, raw_len)?;
            &raw
        }
        m => return Err(CodecError::UnknownCompression(m)),
    };
    strings_fit(n_strings, rest.len(), "block")?;
    let mut out = Chunk::with_capacity(0);
    // Status and flags are read run by run: sized up front they grow in one
    // step (capped: `n` is still unchecked against the columns here).
    out.status.reserve_exact(n.min(DecodeBufs::KEEP));
    out.flags.reserve_exact(n.min(DecodeBufs::KEEP));
    b.exceptions.clear();
    read_rest(
        rest,
        &b.runs,
        c.any_exc,
        n,
        n_strings,
        &mut b.exceptions,
        &mut out,
    )?;
    let (runs, exceptions) = (&b.runs, &b.exceptions);

    let (n_first, n_ints, n_floats, n_words) = (c.first, c.ints, c.floats, c.words);
    column::get3_into(&mut r, runs.len(), "time_first", &mut b.d.time_first)?;
    let t_rest = n - runs.len();
    column::get3_segs_into(
        &mut r,
        t_rest,
        &b.d.seg_time,
        "time_rest",
        &mut b.seg,
        &mut b.d.time_rest,
    )?;
    column::get3_into(&mut r, n, "latency", &mut b.d.latency)?;
    column::get3_into(&mut r, n_first, "int_first", &mut b.d.int_first)?;
    let i_rest = n_ints - n_first;
    column::get3_segs_into(
        &mut r,
        i_rest,
        &b.d.seg_int,
        "int_rest",
        &mut b.seg,
        &mut b.d.int_rest,
    )?;
    column::get3_into(&mut r, n_floats, "floats", &mut b.d.floats)?;
    column::get3_into(&mut r, n_words, "words", &mut b.d.words)?;
    let (time_first, time_rest, latency) = (&b.d.time_first, &b.d.time_rest, &b.d.latency);
    let (int_first, int_rest, floats, words) =
        (&b.d.int_first, &b.d.int_rest, &b.d.floats, &b.d.words);
    if r.remaining() != 0 {
        return Err(CodecError::Trailing {
            extra: r.remaining(),
            offset: r.pos(),
        });
    }

    out.tag.reserve_exact(n);
    out.source_ns.reserve_exact(n);
    out.server_ns.reserve_exact(n);
    out.value_bits.reserve_exact(n);
    let (mut tr, mut fi, mut ir, mut fl, mut wi) = (0usize, 0usize, 0usize, 0usize, 0usize);
    for (j, run) in runs.iter().enumerate() {
        if run.count == 1 {
            // One sample (most runs of a 1 s window): no per-run loops. A
            // decimal run of one has no exception (`read_runs` checks).
            out.tag.push(run.tag);
            out.source_ns.push(time_first[j]);
            out.value_bits.push(match run.mode {
                MODE_INT => int_first[fi] as u64,
                MODE_DEC64 | MODE_DEC32 => decimal::decode(int_first[fi], run.e, width(run.mode)),
                MODE_FLOAT => floats[fl].to_bits(),
                _ => words[wi],
            });
            match run.mode {
                MODE_INT | MODE_DEC64 | MODE_DEC32 => fi += 1,
                MODE_FLOAT => fl += 1,
                _ => wi += 1,
            }
            continue;
        }
        out.tag.extend(std::iter::repeat_n(run.tag, run.count));
        // Prefix sums written by `extend` (no capacity check a value).
        let mut t = time_first[j];
        out.source_ns.push(t);
        out.source_ns
            .extend(time_rest[tr..tr + run.count - 1].iter().map(|&d| {
                t = t.wrapping_add(d);
                t
            }));
        tr += run.count - 1;
        match run.mode {
            MODE_INT => {
                let mut v = int_first[fi] as u64;
                fi += 1;
                out.value_bits.push(v);
                out.value_bits
                    .extend(int_rest[ir..ir + run.count - 1].iter().map(|&d| {
                        v = v.wrapping_add(d as u64);
                        v
                    }));
                ir += run.count - 1;
            }
            // No exceptions (the usual case): every value is the next k.
            MODE_DEC64 | MODE_DEC32 if run.n_exc == 0 => {
                let (mut k, e) = (int_first[fi], run.e);
                fi += 1;
                let ks =
                    std::iter::once(k).chain(int_rest[ir..ir + run.count - 1].iter().map(|&d| {
                        k = k.wrapping_add(d);
                        k
                    }));
                ir += run.count - 1;
                match width(run.mode) {
                    Width::F64 => out
                        .value_bits
                        .extend(ks.map(|k| decimal::decode(k, e, Width::F64))),
                    Width::F32 => out
                        .value_bits
                        .extend(ks.map(|k| decimal::decode(k, e, Width::F32))),
                }
            }
            MODE_DEC64 | MODE_DEC32 => {
                let w = width(run.mode);
                let mut k: Option<i64> = None;
                let mut exc = exceptions[run.exc_at..run.exc_at + run.n_exc]
                    .iter()
                    .peekable();
                for p in 0..run.count {
                    if let Some(&(_, v)) = exc.next_if(|&&(q, _)| q == p) {
                        out.value_bits.push(v);
                        continue;
                    }
                    let x = match k {
                        None => {
                            fi += 1;
                            int_first[fi - 1]
                        }
                        Some(prev) => {
                            ir += 1;
                            prev.wrapping_add(int_rest[ir - 1])
                        }
                    };
                    k = Some(x);
                    out.value_bits.push(decimal::decode(x, run.e, w));
                }
            }
            MODE_FLOAT => {
                out.value_bits
                    .extend(floats[fl..fl + run.count].iter().map(|f| f.to_bits()));
                fl += run.count;
            }
            _ => {
                unxor_into(&mut out.value_bits, &words[wi..wi + run.count]);
                wi += run.count;
            }
        }
    }
    out.server_ns.extend(
        out.source_ns
            .iter()
            .zip(latency)
            .map(|(&t, &l)| t.wrapping_add(l)),
    );
    Ok(out)
}
