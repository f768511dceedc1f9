//! DATA payload codec: a chunk of samples as columns, compressed.
//!
//! The layout is versioned by its first byte; decoders keep reading every
//! version they ever wrote (see docs/format.md). `v1` holds the v1 layout,
//! `v2` the typed layout, `v3` the same typing with fast bit-packed columns,
//! and v4 (also in `v3`) adds binned columns (`bins`); the encoder writes v4
//! (docs/codec.md says why).

use thiserror::Error;

pub mod bins;
pub mod column;
pub mod decimal;
pub mod lossy;
pub mod pack;
pub mod segframe;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v2;
#[cfg(test)]
mod tests_v3;
pub mod v1;
pub mod v2;
pub mod v3;
pub mod varint;

/// The version `encode` writes.
pub const CODEC_VERSION: u8 = 4;

/// Per-tag type hints for the encoder (a u8 per tag index). A hint only
/// steers the choice of coding; every value round-trips whatever its hint.
pub mod kind {
    pub const UNKNOWN: u8 = 0;
    pub const F64: u8 = 1;
    pub const F32: u8 = 2;
    pub const INT: u8 = 3;
    pub const UINT: u8 = 4;
    pub const BOOL: u8 = 5;
    pub const STRING: u8 = 6;
    pub const TIME: u8 = 7;
}
/// Cap on the uncompressed column block, bounding decoder memory.
pub const MAX_RAW_LEN: usize = 256 << 20;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    #[error("codec: column {column} has {got} values, tag has {expected}")]
    LengthMismatch {
        column: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("codec: empty payload (no codec version byte)")]
    Empty,
    #[error("codec: unsupported codec version {0} at offset 0")]
    UnsupportedVersion(u8),
    #[error("codec: unknown compression {0} at offset 1")]
    UnknownCompression(u8),
    #[error("codec: truncated while reading {field} at offset {offset}")]
    Truncated { field: &'static str, offset: usize },
    #[error("codec: bad varint for {field} at offset {offset}")]
    BadVarint { field: &'static str, offset: usize },
    #[error("codec: {field} = {value} at offset {offset} exceeds the limit {max}")]
    OutOfRange {
        field: &'static str,
        offset: usize,
        value: u64,
        max: u64,
    },
    #[error("codec: {field} at offset {offset}: {msg}")]
    Invalid {
        field: &'static str,
        offset: usize,
        msg: String,
    },
    #[error("codec: zstd block: {0}")]
    Zstd(String),
    #[error("codec: column block is {got} bytes after decompression, header says {declared}")]
    RawLenMismatch { declared: usize, got: usize },
    #[error("codec: {extra} trailing bytes after the column block at offset {offset}")]
    Trailing { extra: usize, offset: usize },
    #[error("codec: chunk too large: {0} bytes uncompressed (max {MAX_RAW_LEN})")]
    TooLarge(usize),
}

/// Borrowed parallel columns: what `encode` takes (numpy buffers map onto these).
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a> {
    pub tag: &'a [u32],
    pub source_ns: &'a [i64],
    pub server_ns: &'a [i64],
    pub status: &'a [u32],
    /// Raw 64-bit value word; the codec never interprets it.
    pub value_bits: &'a [u64],
    pub flags: &'a [u8],
    pub strings: &'a [String],
}

impl Columns<'_> {
    pub fn len(&self) -> usize {
        self.tag.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tag.is_empty()
    }

    /// All columns must be as long as `tag`; the error names the first that is not.
    pub fn check_lengths(&self) -> Result<(), CodecError> {
        let n = self.tag.len();
        for (column, got) in [
            ("source_ns", self.source_ns.len()),
            ("server_ns", self.server_ns.len()),
            ("status", self.status.len()),
            ("value_bits", self.value_bits.len()),
            ("flags", self.flags.len()),
        ] {
            if got != n {
                return Err(CodecError::LengthMismatch {
                    column,
                    got,
                    expected: n,
                });
            }
        }
        Ok(())
    }
}

/// Owned columns: what `decode` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk {
    pub tag: Vec<u32>,
    pub source_ns: Vec<i64>,
    pub server_ns: Vec<i64>,
    pub status: Vec<u32>,
    pub value_bits: Vec<u64>,
    pub flags: Vec<u8>,
    pub strings: Vec<String>,
}

impl Chunk {
    pub fn with_capacity(n: usize) -> Self {
        Chunk {
            tag: Vec::with_capacity(n),
            source_ns: Vec::with_capacity(n),
            server_ns: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            value_bits: Vec::with_capacity(n),
            flags: Vec::with_capacity(n),
            strings: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.tag.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tag.is_empty()
    }

    pub fn columns(&self) -> Columns<'_> {
        Columns {
            tag: &self.tag,
            source_ns: &self.source_ns,
            server_ns: &self.server_ns,
            status: &self.status,
            value_bits: &self.value_bits,
            flags: &self.flags,
            strings: &self.strings,
        }
    }

    fn push_from(&mut self, c: &Columns<'_>, i: usize) {
        self.tag.push(c.tag[i]);
        self.source_ns.push(c.source_ns[i]);
        self.server_ns.push(c.server_ns[i]);
        self.status.push(c.status[i]);
        self.value_bits.push(c.value_bits[i]);
        self.flags.push(c.flags[i]);
    }
}

/// Stable order by tag: the order `decode` returns samples in (arrival order
/// is kept within a tag, not across tags).
pub fn tag_order(tag: &[u32]) -> Vec<usize> {
    let n = tag.len();
    if tag.is_sorted() {
        return (0..n).collect();
    }
    // Tag indexes are catalog positions, so usually dense: a counting sort
    // (stable, linear) beats a comparison sort by far for chunks of many tags.
    let max = tag.iter().copied().max().unwrap_or(0) as usize;
    if max <= 4 * n + 1024 {
        let mut start = vec![0usize; max + 2];
        for &t in tag {
            start[t as usize + 1] += 1;
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        let mut idx = vec![0usize; n];
        for (i, &t) in tag.iter().enumerate() {
            idx[start[t as usize]] = i;
            start[t as usize] += 1;
        }
        return idx;
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by_key(|&i| tag[i]); // stable
    idx
}

/// The chunk `decode(encode(c))` returns: `c` stable-sorted by tag.
pub fn canonical(c: &Columns<'_>) -> Result<Chunk, CodecError> {
    c.check_lengths()?;
    let mut out = Chunk::with_capacity(c.len());
    for i in tag_order(c.tag) {
        out.push_from(c, i);
    }
    out.strings = c.strings.to_vec();
    Ok(out)
}

/// Encode a chunk with the current codec version, without type hints.
pub fn encode(c: &Columns<'_>) -> Result<Vec<u8>, CodecError> {
    v3::encode(c, &[])
}

/// Encode with `kinds[tag]` (see `kind`) telling the encoder each tag's type.
pub fn encode_typed(c: &Columns<'_>, kinds: &[u8]) -> Result<Vec<u8>, CodecError> {
    v3::encode(c, kinds)
}

/// Decode a DATA payload of any supported codec version.
pub fn decode(payload: &[u8]) -> Result<Chunk, CodecError> {
    match payload.first() {
        None => Err(CodecError::Empty),
        Some(1) => v1::decode(payload),
        Some(2) => v2::decode(payload),
        Some(3 | 4) => v3::decode(payload),
        Some(&v) => Err(CodecError::UnsupportedVersion(v)),
    }
}
