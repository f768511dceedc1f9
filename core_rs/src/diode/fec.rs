//! Forward error correction: a frame (plus its 16-byte tag) is an "object"
//! cut into equal symbols, grouped into source blocks of at most MAX_K
//! symbols, each protected by Reed-Solomon recovery symbols
//! (reed-solomon-simd, GF(2^16) Leopard: any K of the K + R symbols of a
//! block rebuild it). See docs/link.md for why not RaptorQ.

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

/// Most source symbols per block (about 1.4 MiB at MTU 1500): small enough to
/// decode fast and to interleave, large enough that 5% repair is many symbols.
pub const MAX_K: usize = 1024;
/// Most recovery symbols per block (every carousel pass adds fresh ones).
pub const MAX_REPAIR: usize = 8192;

/// The block structure of an object, derived from (object_len, symbol_size) alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub object_len: usize,
    pub symbol: usize,
    pub symbols: usize,
    pub blocks: usize,
}

impl Layout {
    pub fn new(object_len: usize, symbol: usize) -> Layout {
        let symbols = object_len.div_ceil(symbol).max(1);
        Layout {
            object_len,
            symbol,
            symbols,
            blocks: symbols.div_ceil(MAX_K),
        }
    }
    /// (first symbol, K) of block `b`: an even split, the first blocks one larger.
    pub fn block(&self, b: usize) -> (usize, usize) {
        let (q, r) = (self.symbols / self.blocks, self.symbols % self.blocks);
        (b * q + b.min(r), q + usize::from(b < r))
    }
}

/// Recovery symbols for every block: `repair_total` is the code's R (all
/// packets of a transmission carry it), of which indexes [first, first+count)
/// are returned. `padded` is the object zero-padded to symbols * symbol bytes.
pub fn encode(
    enc: &mut Option<ReedSolomonEncoder>,
    layout: &Layout,
    padded: &[u8],
    repair_total: usize,
    first: usize,
    count: usize,
) -> Result<Vec<Vec<Vec<u8>>>, String> {
    debug_assert_eq!(padded.len(), layout.symbols * layout.symbol);
    let mut out = Vec::with_capacity(layout.blocks);
    for b in 0..layout.blocks {
        if count == 0 || repair_total == 0 {
            out.push(Vec::new());
            continue;
        }
        let (s0, k) = layout.block(b);
        let e = match enc {
            Some(e) => {
                e.reset(k, repair_total, layout.symbol)
                    .map_err(|e| e.to_string())?;
                e
            }
            None => enc.insert(
                ReedSolomonEncoder::new(k, repair_total, layout.symbol)
                    .map_err(|e| e.to_string())?,
            ),
        };
        for i in 0..k {
            let at = (s0 + i) * layout.symbol;
            e.add_original_shard(&padded[at..at + layout.symbol])
                .map_err(|e| e.to_string())?;
        }
        let res = e.encode().map_err(|e| e.to_string())?;
        out.push(
            (first..(first + count).min(repair_total))
                .map(|i| res.recovery(i).expect("index below repair_total").to_vec())
                .collect(),
        );
    }
    Ok(out)
}

/// Collects the symbols of one block; source symbols go straight into the
/// object buffer, recovery symbols are held until the block can be rebuilt.
pub struct BlockDecoder {
    k: usize,
    have: Vec<bool>,
    originals: usize,
    recovery: Vec<(usize, Vec<u8>)>,
    pub done: bool,
}

impl BlockDecoder {
    pub fn new(k: usize) -> Self {
        BlockDecoder {
            k,
            have: vec![false; k],
            originals: 0,
            recovery: Vec::new(),
            done: false,
        }
    }

    /// Add symbol `esi` (< K: source, else recovery esi - K). Returns false
    /// for a duplicate. `block_buf` is this block's slice of the object.
    pub fn add(&mut self, esi: usize, data: &[u8], block_buf: &mut [u8]) -> bool {
        if self.done {
            return false;
        }
        let s = data.len();
        if esi < self.k {
            if self.have[esi] {
                return false;
            }
            self.have[esi] = true;
            self.originals += 1;
            block_buf[esi * s..(esi + 1) * s].copy_from_slice(data);
        } else {
            let idx = esi - self.k;
            if self.recovery.iter().any(|(i, _)| *i == idx) {
                return false;
            }
            // More than K recovery symbols can never be needed.
            if self.recovery.len() < self.k {
                self.recovery.push((idx, data.to_vec()));
            }
        }
        true
    }

    pub fn originals_complete(&self) -> bool {
        self.originals == self.k
    }

    pub fn ready(&self) -> bool {
        self.originals + self.recovery.len() >= self.k
    }

    /// Rebuild the missing source symbols in place; call once `ready()`.
    pub fn finish(&mut self, repair_total: usize, block_buf: &mut [u8]) -> Result<(), String> {
        let s = block_buf.len() / self.k;
        if self.originals < self.k {
            let mut d =
                ReedSolomonDecoder::new(self.k, repair_total, s).map_err(|e| e.to_string())?;
            for i in (0..self.k).filter(|&i| self.have[i]) {
                d.add_original_shard(i, &block_buf[i * s..(i + 1) * s])
                    .map_err(|e| e.to_string())?;
            }
            for (i, data) in &self.recovery {
                d.add_recovery_shard(*i, data).map_err(|e| e.to_string())?;
            }
            let res = d.decode().map_err(|e| e.to_string())?;
            for (i, data) in res.restored_original_iter() {
                block_buf[i * s..(i + 1) * s].copy_from_slice(data);
            }
        }
        self.done = true;
        self.recovery = Vec::new();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    #[test]
    fn layout_splits_evenly() {
        let l = Layout::new(1432 * 2500 + 1, 1432);
        assert_eq!((l.symbols, l.blocks), (2501, 3));
        assert_eq!(l.block(0), (0, 834));
        assert_eq!(l.block(1), (834, 834));
        assert_eq!(l.block(2), (1668, 833));
        assert_eq!(Layout::new(10, 1432).block(0), (0, 1));
    }

    #[test]
    fn any_k_of_k_plus_r_rebuild_the_block() {
        let mut rng = Rng::new(7);
        let s = 64;
        for &(len, r) in &[(s * 20, 3usize), (s * 1500 + 5, 80), (100, 1)] {
            let l = Layout::new(len, s);
            let mut padded = rng.bytes(len);
            padded.resize(l.symbols * s, 0);
            let mut enc = None;
            let rec = encode(&mut enc, &l, &padded, r, 0, r).unwrap();
            let mut out = vec![0u8; padded.len()];
            for (b, rec_b) in rec.iter().enumerate() {
                let (s0, k) = l.block(b);
                let buf = &mut out[s0 * s..(s0 + k) * s];
                let mut d = BlockDecoder::new(k);
                // Lose r source symbols, chosen at random.
                let mut lost = std::collections::HashSet::new();
                while lost.len() < r.min(k) {
                    lost.insert(rng.below(k as u64) as usize);
                }
                for i in (0..k).filter(|i| !lost.contains(i)) {
                    let at = (s0 + i) * s;
                    assert!(d.add(i, &padded[at..at + s], buf));
                }
                for (j, sym) in rec_b.iter().enumerate() {
                    assert!(d.add(k + j, sym, buf));
                    assert!(!d.add(k + j, sym, buf), "duplicate");
                }
                assert!(d.ready());
                d.finish(r, buf).unwrap();
            }
            assert_eq!(out, padded);
        }
    }
}
