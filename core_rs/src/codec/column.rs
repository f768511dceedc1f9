//! One numeric column of a v2 chunk: the encoder picks, per column, the
//! smaller of zigzag varints and pco (the pcodec crate), and writes a method
//! byte so the decoder knows which it got. Tiny columns skip pco (its header
//! outweighs the data).

use pco::standalone::{simple_compress, simple_decompress_into};
use pco::{ChunkConfig, DeltaSpec};

use super::varint::{put_u64, Reader};
use super::CodecError;

pub const METHOD_VARINT: u8 = 0;
pub const METHOD_PCO: u8 = 1;
/// Below this many values pco's header costs more than it saves.
const PCO_MIN_N: usize = 32;
/// pco level: 4 is close to the default 8 on plant data and much faster.
const PCO_LEVEL: usize = 4;

/// The number types a column holds; pco models each differently (f64 gets
/// its float modes, e.g. decimal multiples).
pub trait ColumnNum: pco::data_types::Number + Copy + Default {
    fn to_zigzag_u64(self) -> u64;
    fn from_zigzag_u64(v: u64) -> Self;
}

impl ColumnNum for i64 {
    fn to_zigzag_u64(self) -> u64 {
        super::varint::zigzag(self)
    }
    fn from_zigzag_u64(v: u64) -> Self {
        super::varint::unzigzag(v)
    }
}

impl ColumnNum for u64 {
    fn to_zigzag_u64(self) -> u64 {
        self
    }
    fn from_zigzag_u64(v: u64) -> Self {
        v
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

/// Read a column of exactly `n` values written by `put`.
pub fn get<T: ColumnNum>(
    r: &mut Reader<'_>,
    n: usize,
    field: &'static str,
) -> Result<Vec<T>, CodecError> {
    let at = r.pos();
    let method = r.u8(field)?;
    let len = r.varint_max(field, r.remaining() as u64)? as usize;
    let body = r.bytes(len, field)?;
    match method {
        METHOD_VARINT => {
            let mut br = Reader::new(body);
            let mut out = Vec::with_capacity(n.min(body.len()));
            for _ in 0..n {
                out.push(T::from_zigzag_u64(
                    br.varint(field)
                        .map_err(|_| CodecError::Truncated { field, offset: at })?,
                ));
            }
            if br.remaining() != 0 {
                return Err(CodecError::Trailing {
                    extra: br.remaining(),
                    offset: at,
                });
            }
            Ok(out)
        }
        METHOD_PCO => {
            let mut out = vec![T::default(); n];
            let p = simple_decompress_into(body, &mut out).map_err(|e| pco_err(field, at, e))?;
            if p.n_processed != n || !p.finished {
                return Err(CodecError::Invalid {
                    field,
                    offset: at,
                    msg: format!("pco column holds a different count than the {n} expected"),
                });
            }
            Ok(out)
        }
        m => Err(CodecError::Invalid {
            field,
            offset: at,
            msg: format!("unknown column method {m}"),
        }),
    }
}
