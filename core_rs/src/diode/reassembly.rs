//! Reassembly of fragments into frames, keyed by (link_session, frame_seq).
//!
//! Memory is bounded: a partial frame reserves frame_len bytes, the total is
//! capped (oldest partials are dropped first) and partials expire after a
//! timeout. Recently completed keys are remembered so late duplicate
//! fragments do not start a partial that could only expire.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::packet::{fragment_range, Fragment};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MEMORY_CAP: usize = 256 << 20;
const RECENT_KEYS: usize = 8192;

type Key = (u64, u64);

struct Partial {
    frame_len: u32,
    frag_count: u16,
    buf: Vec<u8>,
    have: Vec<u64>,
    received: u32,
    started: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// A fragment already held (or of a frame already completed).
    Duplicate,
    /// Disagrees with earlier fragments of the same frame (frame_len or count).
    Inconsistent,
}

pub struct Reassembler {
    partials: HashMap<Key, Partial>,
    memory: usize,
    memory_cap: usize,
    timeout: Duration,
    recent: VecDeque<Key>,
    recent_set: HashSet<Key>,
    /// Partials dropped by timeout or the memory cap.
    pub incomplete_dropped: u64,
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
        }
    }

    pub fn memory(&self) -> usize {
        self.memory
    }

    pub fn pending(&self) -> usize {
        self.partials.len()
    }

    fn remember(&mut self, key: Key) {
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
                self.memory -= p.frame_len as usize;
                self.incomplete_dropped += 1;
                true
            }
            None => false,
        }
    }

    /// Add one parsed fragment; returns the whole frame when it completes.
    pub fn push(&mut self, f: &Fragment<'_>, now: Instant) -> Result<Option<Vec<u8>>, Push> {
        let h = &f.header;
        let key = (h.link_session, h.frame_seq);
        if self.recent_set.contains(&key) {
            return Err(Push::Duplicate);
        }
        if h.frag_count == 1 {
            self.remember(key);
            return Ok(Some(f.data.to_vec()));
        }
        if !self.partials.contains_key(&key) {
            let need = h.frame_len as usize;
            while self.memory + need > self.memory_cap && self.drop_oldest() {}
            if self.memory + need > self.memory_cap {
                return Err(Push::Inconsistent);
            }
            self.memory += need;
            self.partials.insert(
                key,
                Partial {
                    frame_len: h.frame_len,
                    frag_count: h.frag_count,
                    buf: vec![0u8; need],
                    have: vec![0u64; (h.frag_count as usize).div_ceil(64)],
                    received: 0,
                    started: now,
                },
            );
        }
        let p = self.partials.get_mut(&key).expect("inserted above");
        if p.frame_len != h.frame_len || p.frag_count != h.frag_count {
            return Err(Push::Inconsistent);
        }
        let (word, bit) = (h.frag_index as usize / 64, 1u64 << (h.frag_index % 64));
        if p.have[word] & bit != 0 {
            return Err(Push::Duplicate);
        }
        p.have[word] |= bit;
        p.received += 1;
        let r = fragment_range(
            h.frame_len as usize,
            h.frag_count as usize,
            h.frag_index as usize,
        );
        p.buf[r].copy_from_slice(f.data);
        if p.received < p.frag_count as u32 {
            return Ok(None);
        }
        let p = self.partials.remove(&key).expect("present");
        self.memory -= p.frame_len as usize;
        self.remember(key);
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
                freed += p.frame_len as usize;
            }
            keep
        });
        self.memory -= freed;
        let dropped = before - self.partials.len();
        self.incomplete_dropped += dropped as u64;
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::super::packet::{self, parse};
    use super::*;
    use crate::testutil::Rng;

    fn packets(session: u64, seq: u64, frame: &[u8], mtu: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        packet::packetize::<()>(session, seq, frame, mtu, &mut buf, |p| {
            out.push(p.to_vec());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn out_of_order_with_duplicates() {
        let mut rng = Rng::new(5);
        let mut r = Reassembler::default();
        let frames: Vec<Vec<u8>> = (0..20).map(|i| rng.bytes(52 + i * 3001)).collect();
        let mut all: Vec<Vec<u8>> = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            all.extend(packets(1, i as u64, f, 1500));
        }
        let dups: Vec<Vec<u8>> = all.iter().step_by(7).cloned().collect();
        all.extend(dups);
        for i in (1..all.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            all.swap(i, j);
        }
        let now = Instant::now();
        let mut done = HashMap::new();
        for p in &all {
            let f = parse(p).unwrap();
            if let Ok(Some(frame)) = r.push(&f, now) {
                assert!(done.insert(f.header.frame_seq, frame).is_none());
            }
        }
        assert_eq!(done.len(), 20);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(&done[&(i as u64)], f);
        }
        assert_eq!(r.memory(), 0);
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn timeout_and_memory_cap() {
        let mut r = Reassembler::new(Duration::from_secs(10), 100_000);
        let t0 = Instant::now();
        let big = vec![7u8; 60_000];
        let p1 = packets(1, 1, &big, 1500);
        let p2 = packets(1, 2, &big, 1500);
        assert_eq!(r.push(&parse(&p1[0]).unwrap(), t0), Ok(None));
        assert_eq!(r.memory(), 60_000);
        // A second 60 KB partial pushes out the first (cap 100 KB).
        assert_eq!(
            r.push(&parse(&p2[0]).unwrap(), t0 + Duration::from_millis(1)),
            Ok(None)
        );
        assert_eq!(r.incomplete_dropped, 1);
        assert_eq!(r.memory(), 60_000);
        assert_eq!(r.expire(t0 + Duration::from_secs(5)), 0);
        assert_eq!(r.expire(t0 + Duration::from_secs(11)), 1);
        assert_eq!(r.incomplete_dropped, 2);
        assert_eq!(r.memory(), 0);
        // Inconsistent shape for the same key is refused.
        let small = packets(1, 3, &[1u8; 3000], 1500);
        let other = packets(1, 3, &[1u8; 4000], 1500);
        assert_eq!(r.push(&parse(&small[0]).unwrap(), t0), Ok(None));
        assert_eq!(
            r.push(&parse(&other[1]).unwrap(), t0),
            Err(Push::Inconsistent)
        );
        assert_eq!(r.push(&parse(&small[0]).unwrap(), t0), Err(Push::Duplicate));
    }
}
