//! Codec v1 layout (docs/format.md, "DATA payload"):
//!
//! prefix (never compressed): version u8 = 1, compression u8 (0 none, 1 zstd),
//! varint n_samples, varint n_strings, varint raw_len; then the column block,
//! zstd-compressed when that is smaller. Column block, samples stable-sorted
//! by tag: tag runs, source_ns delta-of-delta, server_ns - source_ns, status
//! RLE, value_bits XOR previous of the same tag, flags RLE, strings.
//! All arithmetic wraps, so any i64/u64 (NaT = i64::MIN included) round-trips.

use std::io::Read;

use super::varint::{put_i64, put_u64, Reader};
use super::{tag_order, Chunk, CodecError, Columns, MAX_RAW_LEN};

pub const VERSION: u8 = 1;
pub const COMPRESSION_NONE: u8 = 0;
pub const COMPRESSION_ZSTD: u8 = 1;
const ZSTD_LEVEL: i32 = 3;
/// Fewest block bytes one sample can take (1 source + 1 server + 8 value),
/// so a declared sample count can be checked against the block length.
const MIN_SAMPLE_BYTES: usize = 10;

/// Write (value, run) pairs covering the whole column.
pub fn put_rle<T: Copy + PartialEq>(
    out: &mut Vec<u8>,
    vals: impl Iterator<Item = T>,
    put: impl Fn(&mut Vec<u8>, T),
) {
    let mut cur: Option<(T, u64)> = None;
    for v in vals {
        cur = match cur {
            Some((c, n)) if c == v => Some((c, n + 1)),
            Some((c, n)) => {
                put(out, c);
                put_u64(out, n);
                Some((v, 1))
            }
            None => Some((v, 1)),
        };
    }
    if let Some((c, n)) = cur {
        put(out, c);
        put_u64(out, n);
    }
}

pub fn encode(c: &Columns<'_>) -> Result<Vec<u8>, CodecError> {
    encode_with(c, true)
}

/// Encode; `compress = false` always stores the block raw (fixed test vectors
/// use it, since zstd output may differ between zstd releases).
pub fn encode_with(c: &Columns<'_>, compress: bool) -> Result<Vec<u8>, CodecError> {
    c.check_lengths()?;
    let n = c.len();
    let order = tag_order(c.tag);
    let mut b: Vec<u8> = Vec::with_capacity(n * 12 + 16);

    // Tag runs: (tag, count); sorted input gives one run per tag.
    let mut runs: Vec<(u32, usize)> = Vec::new();
    for &i in &order {
        match runs.last_mut() {
            Some((t, k)) if *t == c.tag[i] => *k += 1,
            _ => runs.push((c.tag[i], 1)),
        }
    }
    put_u64(&mut b, runs.len() as u64);
    for &(t, k) in &runs {
        put_u64(&mut b, t.into());
        put_u64(&mut b, k as u64);
    }

    // source_ns: delta-of-delta per tag, state reset at each run.
    let mut pos = 0;
    for &(_, k) in &runs {
        let (mut prev, mut prev_d) = (0i64, 0i64);
        for &i in &order[pos..pos + k] {
            let v = c.source_ns[i];
            let d = v.wrapping_sub(prev);
            put_i64(&mut b, d.wrapping_sub(prev_d));
            prev = v;
            prev_d = d;
        }
        pos += k;
    }

    // server_ns relative to source_ns (usually a small positive latency).
    for &i in &order {
        put_i64(&mut b, c.server_ns[i].wrapping_sub(c.source_ns[i]));
    }

    put_rle(&mut b, order.iter().map(|&i| c.status[i]), |o, v| {
        put_u64(o, v.into())
    });

    // value_bits: XOR with the previous word of the same tag, raw LE (issue 4 improves this).
    let mut pos = 0;
    for &(_, k) in &runs {
        let mut prev = 0u64;
        for &i in &order[pos..pos + k] {
            let v = c.value_bits[i];
            b.extend_from_slice(&(v ^ prev).to_le_bytes());
            prev = v;
        }
        pos += k;
    }

    put_rle(&mut b, order.iter().map(|&i| c.flags[i]), |o, v| o.push(v));

    for s in c.strings {
        put_u64(&mut b, s.len() as u64);
        b.extend_from_slice(s.as_bytes());
    }

    if b.len() > MAX_RAW_LEN {
        return Err(CodecError::TooLarge(b.len()));
    }

    let mut out = Vec::with_capacity(b.len() / 2 + 32);
    out.push(VERSION);
    let z = if compress {
        zstd::bulk::compress(&b, ZSTD_LEVEL).map_err(|e| CodecError::Zstd(e.to_string()))?
    } else {
        Vec::new()
    };
    let (comp, body) = if compress && z.len() < b.len() {
        (COMPRESSION_ZSTD, &z)
    } else {
        (COMPRESSION_NONE, &b)
    };
    out.push(comp);
    put_u64(&mut out, n as u64);
    put_u64(&mut out, c.strings.len() as u64);
    put_u64(&mut out, b.len() as u64);
    out.extend_from_slice(body);
    Ok(out)
}

/// Decompress at most `raw_len` bytes; the stream decoder grows the buffer
/// only as real output appears, so a lying header cannot force a huge allocation.
pub(crate) fn inflate(body: &[u8], raw_len: usize) -> Result<Vec<u8>, CodecError> {
    let dec = zstd::stream::read::Decoder::with_buffer(body)
        .map_err(|e| CodecError::Zstd(e.to_string()))?;
    let mut out = Vec::with_capacity(raw_len.min(body.len().saturating_mul(8)).min(MAX_RAW_LEN));
    dec.take(raw_len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CodecError::Zstd(e.to_string()))?;
    if out.len() != raw_len {
        return Err(CodecError::RawLenMismatch {
            declared: raw_len,
            got: out.len(),
        });
    }
    Ok(out)
}

pub(crate) fn read_rle<T>(
    r: &mut Reader<'_>,
    n: usize,
    field: &'static str,
    mut get: impl FnMut(&mut Reader<'_>) -> Result<T, CodecError>,
    out: &mut Vec<T>,
) -> Result<(), CodecError>
where
    T: Copy,
{
    let mut filled = 0usize;
    while filled < n {
        let v = get(r)?;
        let offset = r.pos();
        let run = r.varint(field)?;
        if run == 0 || run > (n - filled) as u64 {
            return Err(CodecError::Invalid {
                field,
                offset,
                msg: format!("run of {run} with {} samples left", n - filled),
            });
        }
        out.extend(std::iter::repeat_n(v, run as usize));
        filled += run as usize;
    }
    Ok(())
}

pub fn decode(payload: &[u8]) -> Result<Chunk, CodecError> {
    let mut r = Reader::new(payload);
    let version = r.u8("codec_version")?;
    if version != VERSION {
        return Err(CodecError::UnsupportedVersion(version));
    }
    let comp = r.u8("compression")?;
    let n = r.varint_max("n_samples", (MAX_RAW_LEN / MIN_SAMPLE_BYTES) as u64)? as usize;
    let n_strings = r.varint_max("n_strings", MAX_RAW_LEN as u64)? as usize;
    let raw_len = r.varint_max("raw_len", MAX_RAW_LEN as u64)? as usize;
    let body_at = r.pos();
    let body = &payload[body_at..];
    let raw: Vec<u8>;
    let block: &[u8] = match comp {
        COMPRESSION_NONE => {
            if body.len() != raw_len {
                return Err(CodecError::RawLenMismatch {
                    declared: raw_len,
                    got: body.len(),
                });
            }
            body
        }
        COMPRESSION_ZSTD => {
            raw = inflate(body, raw_len)?;
            &raw
        }
        other => return Err(CodecError::UnknownCompression(other)),
    };
    if n > block.len() / MIN_SAMPLE_BYTES {
        return Err(CodecError::Invalid {
            field: "n_samples",
            offset: 2,
            msg: format!(
                "{n} samples cannot fit in a {} byte column block",
                block.len()
            ),
        });
    }
    if n_strings > block.len() {
        return Err(CodecError::Invalid {
            field: "n_strings",
            offset: 2,
            msg: format!(
                "{n_strings} strings cannot fit in a {} byte column block",
                block.len()
            ),
        });
    }
    // Offsets below are within the decompressed column block.
    let mut r = Reader::new(block);
    let mut out = Chunk::with_capacity(n);

    let n_runs = r.varint_max("tag_runs", n as u64)? as usize;
    let mut runs: Vec<usize> = Vec::with_capacity(n_runs);
    let mut total = 0usize;
    for _ in 0..n_runs {
        let offset = r.pos();
        let t = r.varint_max("tag", u32::MAX.into())? as u32;
        let k = r.varint("tag_run_count")?;
        if k == 0 || k > (n - total) as u64 {
            return Err(CodecError::Invalid {
                field: "tag_run_count",
                offset,
                msg: format!("run of {k} for tag {t} with {} samples left", n - total),
            });
        }
        out.tag.extend(std::iter::repeat_n(t, k as usize));
        runs.push(k as usize);
        total += k as usize;
    }
    if total != n {
        return Err(CodecError::Invalid {
            field: "tag_runs",
            offset: r.pos(),
            msg: format!("runs cover {total} samples, header says {n}"),
        });
    }

    for &k in &runs {
        let (mut prev, mut prev_d) = (0i64, 0i64);
        for _ in 0..k {
            let d = prev_d.wrapping_add(r.zigzag("source_ns")?);
            let v = prev.wrapping_add(d);
            out.source_ns.push(v);
            prev = v;
            prev_d = d;
        }
    }

    for i in 0..n {
        let d = r.zigzag("server_ns")?;
        out.server_ns.push(out.source_ns[i].wrapping_add(d));
    }

    read_rle(
        &mut r,
        n,
        "status",
        |r| Ok(r.varint_max("status", u32::MAX.into())? as u32),
        &mut out.status,
    )?;

    for &k in &runs {
        let mut prev = 0u64;
        for _ in 0..k {
            let v = r.u64_le("value_bits")? ^ prev;
            out.value_bits.push(v);
            prev = v;
        }
    }

    read_rle(&mut r, n, "flags", |r| r.u8("flags"), &mut out.flags)?;

    out.strings.reserve(n_strings);
    for _ in 0..n_strings {
        let offset = r.pos();
        let rem = r.remaining() as u64;
        let len = r.varint_max("string_len", rem)? as usize;
        let bytes = r.bytes(len, "string")?;
        let s = std::str::from_utf8(bytes).map_err(|e| CodecError::Invalid {
            field: "string",
            offset,
            msg: format!("not UTF-8: {e}"),
        })?;
        out.strings.push(s.to_owned());
    }

    if r.remaining() != 0 {
        return Err(CodecError::Trailing {
            extra: r.remaining(),
            offset: r.pos(),
        });
    }
    Ok(out)
}
