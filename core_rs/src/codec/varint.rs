//! LEB128 varints, zigzag, and a bounds-checked reader whose errors name the
//! field and the offset, so a bad chunk says where it went wrong.

use super::CodecError;

pub fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_u64(out, zigzag(v));
}

/// Decode `n` varints from the start of `buf` into `f`, the column hot loop
/// (no per-byte `Result`): the bytes used, or None if `buf` ends early or a
/// varint is malformed (the same rule as `Reader::varint`).
#[inline]
pub fn read_n(buf: &[u8], n: usize, mut f: impl FnMut(u64)) -> Option<usize> {
    let mut p = 0usize;
    for _ in 0..n {
        let mut v = 0u64;
        let mut i = 0u32;
        loop {
            let b = *buf.get(p)?;
            p += 1;
            if i == 9 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
            i += 1;
            if i == 10 {
                return None;
            }
        }
        f(v);
    }
    Some(p)
}

/// Cursor over a byte slice; every read is bounds-checked.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, CodecError> {
        let b = *self.buf.get(self.pos).ok_or(CodecError::Truncated {
            field,
            offset: self.pos,
        })?;
        self.pos += 1;
        Ok(b)
    }

    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CodecError> {
        if self.remaining() < n {
            return Err(CodecError::Truncated {
                field,
                offset: self.pos,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u64_le(&mut self, field: &'static str) -> Result<u64, CodecError> {
        let b = self.bytes(8, field)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// One-byte varints (most header fields of a small chunk: widths,
    /// divisors, lengths) inline; longer ones in `varint_long`.
    #[inline]
    pub fn varint(&mut self, field: &'static str) -> Result<u64, CodecError> {
        match self.buf.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(b.into())
            }
            _ => self.varint_long(field),
        }
    }

    #[inline(never)]
    fn varint_long(&mut self, field: &'static str) -> Result<u64, CodecError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8(field).map_err(|_| CodecError::Truncated {
                field,
                offset: start,
            })?;
            // The 10th byte may only carry the top bit of a u64.
            if i == 9 && b > 1 {
                return Err(CodecError::BadVarint {
                    field,
                    offset: start,
                });
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::BadVarint {
            field,
            offset: start,
        })
    }

    pub fn zigzag(&mut self, field: &'static str) -> Result<i64, CodecError> {
        Ok(unzigzag(self.varint(field)?))
    }

    /// A varint that must fit in `max` (checked before it is used as a size).
    pub fn varint_max(&mut self, field: &'static str, max: u64) -> Result<u64, CodecError> {
        let offset = self.pos;
        let v = self.varint(field)?;
        if v > max {
            return Err(CodecError::OutOfRange {
                field,
                offset,
                value: v,
                max,
            });
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip_and_vectors() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0]),
            (1, &[1]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for (v, enc) in cases {
            let mut out = Vec::new();
            put_u64(&mut out, *v);
            assert_eq!(&out[..], *enc);
            let mut r = Reader::new(&out);
            assert_eq!(r.varint("x").unwrap(), *v);
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn read_n_agrees_with_the_reader() {
        let mut b = Vec::new();
        let vals = [0u64, 1, 127, 128, 300, 1 << 40, u64::MAX];
        for &v in &vals {
            put_u64(&mut b, v);
        }
        let mut got = Vec::new();
        assert_eq!(read_n(&b, vals.len(), |v| got.push(v)), Some(b.len()));
        assert_eq!(got, vals);
        assert_eq!(read_n(&b[..b.len() - 1], vals.len(), |_| ()), None);
        assert_eq!(read_n(&[0xff; 10], 1, |_| ()), None);
        assert_eq!(read_n(&[0xff; 11], 1, |_| ()), None);
        assert_eq!(read_n(&[5, 6], 1, |_| ()), Some(1));
    }

    /// `read_n` against `Reader::varint` on every length (1 to 10 bytes,
    /// minimal or not) and on random bytes, valid or not.
    #[test]
    fn read_n_matches_the_reader_on_any_bytes() {
        let by_reader = |b: &[u8], n: usize| -> Option<(Vec<u64>, usize)> {
            let mut r = Reader::new(b);
            let v = (0..n)
                .map(|_| r.varint("x").ok())
                .collect::<Option<Vec<_>>>()?;
            Some((v, r.pos()))
        };
        let by_read_n = |b: &[u8], n: usize| {
            let mut v = Vec::new();
            read_n(b, n, |x| v.push(x)).map(|p| (v, p))
        };
        let mut b = Vec::new();
        let mut n = 0;
        for bits in 0..64 {
            for v in [1u64 << bits, (1u64 << bits) - 1, (1u64 << bits) | 1] {
                put_u64(&mut b, v);
                n += 1;
            }
        }
        b.extend_from_slice(&[
            0x80, 0x80, 0x00, 0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ]);
        n += 2;
        for cut in [0, 1, 7, 8, 9] {
            let m = b.len() - cut;
            assert_eq!(by_read_n(&b[..m], n), by_reader(&b[..m], n), "cut {cut}");
        }
        let mut rng = crate::testutil::Rng::new(5);
        for _ in 0..20_000 {
            let len = rng.below(24) as usize;
            // Mostly continuation bytes, so long and malformed varints come up.
            let b: Vec<u8> = (0..len)
                .map(|_| rng.below(256) as u8 | if rng.chance(3) { 0 } else { 0x80 })
                .collect();
            let n = rng.below(6) as usize;
            assert_eq!(by_read_n(&b, n), by_reader(&b, n), "{b:02x?} n={n}");
        }
    }

    #[test]
    fn zigzag_extremes() {
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -64, 63] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
    }

    #[test]
    fn bad_varints() {
        let mut r = Reader::new(&[0x80, 0x80]);
        assert!(matches!(
            r.varint("f"),
            Err(CodecError::Truncated {
                field: "f",
                offset: 0
            })
        ));
        let over = [0xffu8; 10];
        let mut r = Reader::new(&over);
        assert!(matches!(r.varint("f"), Err(CodecError::BadVarint { .. })));
        let mut r = Reader::new(&[0x05]);
        assert!(matches!(
            r.varint_max("n", 4),
            Err(CodecError::OutOfRange { value: 5, .. })
        ));
    }
}
