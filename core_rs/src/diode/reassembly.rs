//! Reassembly of FEC symbols into objects (frame + tag), keyed by
//! (link_session, first_seq, repair): the packets of one transmission.
//!
//! Memory is bounded: a partial object reserves its padded length, the total
//! is capped (oldest partials dropped first) and partials expire after a
//! timeout. Recently completed (link_session, first_seq) are remembered so
//! late symbols do not start a partial that could only expire.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::fec::{BlockDecoder, Layout};
use super::packet::SymbolHeader;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MEMORY_CAP: usize = 256 << 20;
const RECENT_KEYS: usize = 16384;

type Key = (u64, u64, u16);

struct Partial {
    layout: Layout,
    buf: Vec<u8>,
    blocks: Vec<BlockDecoder>,
    blocks_done: usize,
    started: Instant,
}

impl Partial {
    fn reserved(&self) -> usize {
        self.buf.len()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// A symbol already held, or of an object already completed.
    Duplicate,
    /// Over the memory cap even after dropping every other partial.
    NoMemory,
    /// The code could not rebuild a block (cannot happen with honest packets).
    Decode(String),
}

pub struct Reassembler {
    partials: HashMap<Key, Partial>,
    memory: usize,
    memory_cap: usize,
    timeout: Duration,
    recent: VecDeque<(u64, u64)>,
    recent_set: HashSet<(u64, u64)>,
    /// Partials dropped by timeout or the memory cap.
    pub incomplete_dropped: u64,
    /// Blocks rebuilt with recovery symbols (some source symbols were lost).
    pub blocks_repaired: u64,
}

impl Default for Reassembler {
    fn default() -> Self {
        Self::new(DEFAULT_TIMEOUT, DEFAULT_MEMORY_CAP)
    }
}

impl Reassembler {
    pub fn new(timeout: Duration, memory_cap: usize) -> Self {
        Reassembler {
            partials: HashMap::new(),
            memory: 0,
            memory_cap,
            timeout,
            recent: VecDeque::new(),
            recent_set: HashSet::new(),
            incomplete_dropped: 0,
            blocks_repaired: 0,
        }
    }

    pub fn memory(&self) -> usize {
        self.memory
    }

    pub fn pending(&self) -> usize {
        self.partials.len()
    }

    fn remember(&mut self, key: (u64, u64)) {
        if self.recent_set.insert(key) {
            self.recent.push_back(key);
            if self.recent.len() > RECENT_KEYS {
                if let Some(old) = self.recent.pop_front() {
                    self.recent_set.remove(&old);
                }
            }
        }
    }

    fn drop_oldest(&mut self) -> bool {
        let oldest = self
            .partials
            .iter()
            .min_by_key(|(_, p)| p.started)
            .map(|(k, _)| *k);
        match oldest {
            Some(k) => {
                let p = self.partials.remove(&k).expect("key from the map");
                self.memory -= p.reserved();
                self.incomplete_dropped += 1;
                true
            }
            None => false,
        }
    }

    /// Add one verified symbol; returns the whole object when it completes.
    pub fn push(
        &mut self,
        h: &SymbolHeader,
        data: &[u8],
        now: Instant,
    ) -> Result<Option<Vec<u8>>, Push> {
        if self.recent_set.contains(&(h.link_session, h.first_seq)) {
            return Err(Push::Duplicate);
        }
        let key = (h.link_session, h.first_seq, h.repair);
        if !self.partials.contains_key(&key) {
            let layout = Layout::new(h.object_len as usize, h.symbol_size as usize);
            let need = layout.symbols * layout.symbol;
            while self.memory + need > self.memory_cap && self.drop_oldest() {}
            if self.memory + need > self.memory_cap {
                return Err(Push::NoMemory);
            }
            self.memory += need;
            let blocks = (0..layout.blocks)
                .map(|b| BlockDecoder::new(layout.block(b).1))
                .collect();
            self.partials.insert(
                key,
                Partial {
                    layout,
                    buf: vec![0u8; need],
                    blocks,
                    blocks_done: 0,
                    started: now,
                },
            );
        }
        let p = self.partials.get_mut(&key).expect("inserted above");
        // Same key, another shape: a forged or buggy packet; the first shape wins.
        if p.layout != Layout::new(h.object_len as usize, h.symbol_size as usize) {
            return Err(Push::Duplicate);
        }
        let b = h.block as usize;
        let (s0, k) = p.layout.block(b);
        let s = p.layout.symbol;
        let block_buf = &mut p.buf[s0 * s..(s0 + k) * s];
        let dec = &mut p.blocks[b];
        if !dec.add(h.esi as usize, data, block_buf) {
            return Err(Push::Duplicate);
        }
        if !dec.ready() {
            return Ok(None);
        }
        let repaired = !dec.originals_complete();
        if let Err(e) = dec.finish(h.repair as usize, block_buf) {
            let p = self.partials.remove(&key).expect("present");
            self.memory -= p.reserved();
            self.incomplete_dropped += 1;
            return Err(Push::Decode(e));
        }
        if repaired {
            self.blocks_repaired += 1;
        }
        p.blocks_done += 1;
        if p.blocks_done < p.layout.blocks {
            return Ok(None);
        }
        let mut p = self.partials.remove(&key).expect("present");
        self.memory -= p.reserved();
        self.remember((h.link_session, h.first_seq));
        p.buf.truncate(p.layout.object_len);
        Ok(Some(p.buf))
    }

    /// Drop partials older than the timeout; returns how many were dropped.
    pub fn expire(&mut self, now: Instant) -> usize {
        let timeout = self.timeout;
        let before = self.partials.len();
        let mut freed = 0usize;
        self.partials.retain(|_, p| {
            let keep = now.saturating_duration_since(p.started) < timeout;
            if !keep {
                freed += p.reserved();
            }
            keep
        });
        self.memory -= freed;
        let dropped = before - self.partials.len();
        self.incomplete_dropped += dropped as u64;
        dropped
    }
}
