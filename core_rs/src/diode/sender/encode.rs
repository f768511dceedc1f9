//! The encoder thread: decides what goes out next (live frames after the
//! cursor, an operator's re-send, a carousel pass due), reads those frames,
//! builds FEC objects, encodes the recovery symbols, interleaves the symbols
//! of the whole window round-robin and seals each packet, then queues the
//! packets for the pacer in bursts. It also persists the cursor the pacer
//! moves, so the pacer never waits on an fsync.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use super::{lock, sleep, Done, Kind, Msg, Reporter, SenderOptions, Shared, BURST_PACKETS, CURSOR};
use crate::diode::auth::FRAME_TAG_LEN;
use crate::diode::fec::{self, Layout, MAX_REPAIR};
use crate::diode::packet::{self, SymbolHeader};
use crate::spool::{Spool, SpoolError};

/// Frames read from the spool per read.
const READ_FRAMES: usize = 64;
const IDLE_SLEEP: Duration = Duration::from_millis(5);

/// (lsn, frame) pairs in LSN order, possibly with holes.
type Frames = Vec<(u64, Vec<u8>)>;

/// One block's symbols, emitted round-robin with the other blocks of the window.
struct BlockTx {
    frame: usize,
    block: usize,
    k: usize,
    recovery: Vec<Vec<u8>>,
    next: usize,
}

struct ObjectTx {
    seq: u64,
    frame_count: u16,
    layout: Layout,
    padded: Vec<u8>,
    repair_total: usize,
    /// Index of the first recovery symbol sent in this pass.
    first_recovery: usize,
}

/// Frames [first, end) first sent at `at`, due for the next carousel pass.
#[derive(Clone, Copy)]
struct Due {
    at: Instant,
    first: u64,
    end: u64,
}

pub(super) struct Encoder<'a> {
    s: &'a Shared,
    opts: SenderOptions,
    out: SyncSender<Msg>,
    /// Bursts the pacer has sent, back for reuse (no allocation per packet).
    free: Receiver<Vec<Vec<u8>>>,
    burst: Vec<Vec<u8>>,
    /// Packets filled in `burst`.
    n: usize,
    enc: Option<reed_solomon_simd::ReedSolomonEncoder>,
    repair: RepairRule,
    /// One queue per carousel pass, each in send order.
    carousel: Vec<VecDeque<Due>>,
    persisted: u64,
    log: Reporter,
}

impl<'a> Encoder<'a> {
    pub(super) fn new(
        s: &'a Shared,
        opts: SenderOptions,
        out: SyncSender<Msg>,
        free: Receiver<Vec<Vec<u8>>>,
    ) -> Self {
        Encoder {
            s,
            carousel: vec![VecDeque::new(); opts.carousel.len()],
            repair: RepairRule::new(opts.repair_pct),
            opts,
            out,
            free,
            burst: Vec::new(),
            n: 0,
            enc: None,
            persisted: s.cursor.load(Relaxed),
            log: Reporter::default(),
        }
    }

    pub(super) fn run(mut self) {
        // Next LSN to read: ahead of the cursor by what is queued for the pacer.
        let mut queued = self.s.cursor.load(Relaxed);
        while !self.s.stop.load(Relaxed) {
            let limit = self.opts.window_bytes();
            match read_window(&self.s.spool, queued, u64::MAX, limit) {
                Ok((frames, next)) => {
                    // Past the frames read and any LSNs the spool no longer holds.
                    let moved = next > queued;
                    if moved {
                        let (count, runs) = (frames.len() as u64, runs(&frames));
                        if !frames.is_empty() {
                            if !self.transmit(frames, 0) {
                                break; // this window is resent after a restart
                            }
                            if let Some(q) = self.carousel.first_mut() {
                                q.push_back(Due {
                                    at: Instant::now(),
                                    first: queued,
                                    end: next,
                                });
                            }
                        }
                        let kind = Kind::Live { next, runs };
                        if !self.finish(kind, count) {
                            break;
                        }
                        queued = next;
                    }
                    let resent = match self.resend_step() {
                        Some(r) => r,
                        None => break,
                    };
                    let carousel = !moved && !resent && {
                        match self.carousel_step() {
                            Some(sent) => sent,
                            None => break,
                        }
                    };
                    if !moved && !resent && !carousel && !sleep(&self.s.stop, IDLE_SLEEP) {
                        break;
                    }
                }
                Err(SpoolError::Closed) => break,
                Err(e) => {
                    self.log.report(e.to_string());
                    if !sleep(&self.s.stop, Duration::from_millis(200)) {
                        break;
                    }
                }
            }
            let pending: u64 = self
                .carousel
                .iter()
                .flatten()
                .map(|d| d.end - d.first)
                .sum();
            self.s.carousel_pending.store(pending, Relaxed);
            self.persist_cursor();
        }
    }

    /// Persist the cursor the pacer moved (at most one fsync per window).
    fn persist_cursor(&mut self) {
        let cursor = self.s.cursor.load(Relaxed);
        if cursor != self.persisted {
            match self.s.spool.set_cursor(CURSOR, cursor) {
                Ok(()) => self.persisted = cursor,
                Err(e) => self.log.report(format!("cannot persist cursor: {e}")),
            }
        }
    }

    /// The lowest first LSN of any window still due for a carousel pass.
    fn floor(&self) -> u64 {
        self.carousel
            .iter()
            .filter_map(|q| q.front().map(|d| d.first))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Queue the partial burst and the end-of-window mark. False if the pacer is gone.
    fn finish(&mut self, kind: Kind, frames: u64) -> bool {
        if !self.flush() {
            return false;
        }
        let floor = self.floor();
        self.out
            .send(Msg::Done(Done {
                kind,
                frames,
                floor,
            }))
            .is_ok()
    }

    /// Send one window of the oldest queued re-send range with fresh repair
    /// symbols. Some(false) when none is queued, None when stopped midway.
    fn resend_step(&mut self) -> Option<bool> {
        let Some((first, end)) = lock(&self.s.resend).front().copied() else {
            return Some(false);
        };
        let (frames, next) = match read_window(&self.s.spool, first, end, self.opts.window_bytes())
        {
            Ok(r) => r,
            Err(e) => {
                self.log.report(format!(
                    "re-send from LSN {first}: {e}; dropping the request"
                ));
                lock(&self.s.resend).pop_front();
                return Some(true);
            }
        };
        // Counted before the request shrinks, so idle() never sees it done early.
        self.s.resend_inflight.fetch_add(1, Relaxed);
        let count = frames.len() as u64;
        // Beyond every carousel pass: recovery symbols not sent before.
        if !frames.is_empty() && !self.transmit(frames, self.opts.carousel.len() + 1) {
            return None;
        }
        {
            let mut q = lock(&self.s.resend);
            if next >= end || next <= first {
                q.pop_front(); // done, or nothing left to read in it
            } else if let Some(front) = q.front_mut() {
                front.0 = next;
            }
        }
        self.finish(Kind::Resend, count).then_some(true)
    }

    /// Send the oldest due carousel batch, if any. Some(true) if it sent,
    /// None when stopped midway.
    fn carousel_step(&mut self) -> Option<bool> {
        let now = Instant::now();
        let due = (0..self.carousel.len())
            .filter(|&p| {
                self.carousel[p]
                    .front()
                    .is_some_and(|d| now >= d.at + self.opts.carousel[p])
            })
            .min_by_key(|&p| {
                self.carousel[p]
                    .front()
                    .map(|d| d.at + self.opts.carousel[p])
            });
        let Some(pass) = due else { return Some(false) };
        let d = self.carousel[pass].pop_front().expect("front exists");
        let frames = match read_window(&self.s.spool, d.first, d.end, usize::MAX) {
            Ok((f, _)) => f,
            Err(e) => {
                self.log.report(format!("carousel: {e}"));
                return Some(true);
            }
        };
        if let Some(q) = self.carousel.get_mut(pass + 1) {
            q.push_back(d);
        }
        let count = frames.len() as u64;
        if !self.transmit(frames, pass + 1) {
            return None;
        }
        self.finish(Kind::Carousel, count).then_some(true)
    }

    /// Encode frames as carousel pass `pass` (0 = first send) and queue their
    /// packets. Returns false if the pacer is gone (stopped).
    fn transmit(&mut self, frames: Frames, pass: usize) -> bool {
        let sym = packet::symbol_size(self.opts.mtu);
        let mut objects = Vec::new();
        let mut blocks = Vec::new();
        for (start, n) in group(&frames, fec::MAX_K * sym - FRAME_TAG_LEN) {
            if self.s.stop.load(Relaxed) {
                return false; // a stop need not wait for a whole window's encoding
            }
            let group = &frames[start..start + n];
            let len: usize = group.iter().map(|(_, f)| f.len()).sum();
            let layout = Layout::new(len + FRAME_TAG_LEN, sym);
            let mut padded = Vec::with_capacity(layout.symbols * sym);
            for (_, f) in group {
                padded.extend_from_slice(f);
            }
            let tag = self.opts.keys.frame_tag(&padded);
            padded.extend_from_slice(&tag);
            padded.resize(layout.symbols * sym, 0);
            let r = self.repair.for_block(layout.block(0).1);
            let repair_total = (r * (pass + 1)).min(MAX_REPAIR);
            let first_recovery = repair_total - r.min(repair_total);
            let rec = match fec::encode(
                &mut self.enc,
                &layout,
                &padded,
                repair_total,
                first_recovery,
                r,
            ) {
                Ok(rec) => rec,
                Err(e) => {
                    self.log.report(format!("FEC encode: {e}"));
                    vec![Vec::new(); layout.blocks]
                }
            };
            for (b, recovery) in rec.into_iter().enumerate() {
                let k = layout.block(b).1;
                blocks.push(BlockTx {
                    frame: objects.len(),
                    block: b,
                    k,
                    recovery,
                    next: 0,
                });
            }
            objects.push(ObjectTx {
                seq: group[0].0,
                frame_count: n as u16,
                layout,
                padded,
                repair_total,
                first_recovery,
            });
        }
        drop(frames); // the objects hold a copy: one window in memory, not two
                      // Round-robin over every block of the window: a burst of loss costs
                      // each block only its share.
        let mut live = blocks.len();
        while live > 0 {
            live = 0;
            for bt in blocks.iter_mut() {
                if bt.next >= bt.k + bt.recovery.len() {
                    continue;
                }
                live += 1;
                let o = &objects[bt.frame];
                let (s0, _) = o.layout.block(bt.block);
                let (esi, data): (usize, &[u8]) = if bt.next < bt.k {
                    let at = (s0 + bt.next) * sym;
                    (bt.next, &o.padded[at..at + sym])
                } else {
                    let j = bt.next - bt.k;
                    (bt.k + o.first_recovery + j, &bt.recovery[j])
                };
                let h = SymbolHeader {
                    link_session: self.s.link_session,
                    first_seq: o.seq,
                    object_len: o.layout.object_len as u32,
                    symbol_size: sym as u16,
                    block: bt.block as u16,
                    esi: esi as u16,
                    repair: o.repair_total as u16,
                    frame_count: o.frame_count,
                };
                if self.n == self.burst.len() {
                    self.burst.push(Vec::with_capacity(self.opts.mtu));
                }
                packet::write_symbol(&h, data, &self.opts.keys, &mut self.burst[self.n]);
                bt.next += 1;
                self.n += 1;
                if self.n == BURST_PACKETS && !self.flush() {
                    return false;
                }
            }
        }
        true
    }

    /// Queue the filled packets as one burst (waits while the queue is full).
    fn flush(&mut self) -> bool {
        if self.n == 0 {
            return true;
        }
        let mut burst = self.free.try_recv().unwrap_or_default();
        std::mem::swap(&mut burst, &mut self.burst);
        burst.truncate(self.n);
        self.n = 0;
        if self.out.send(Msg::Burst(burst)).is_err() {
            return false;
        }
        self.persist_cursor();
        true
    }
}

/// Frames with LSN in [from, end), up to `limit` bytes (at least one
/// frame), skipping LSNs the spool no longer holds, and the LSN after the
/// last one read or skipped (`from` when nothing is durable there).
fn read_window(
    spool: &Spool,
    from: u64,
    end: u64,
    limit: usize,
) -> Result<(Frames, u64), SpoolError> {
    let mut out: Frames = Vec::new();
    let mut bytes = 0;
    let mut next = from;
    'read: while bytes < limit && next < end {
        let want = (end - next).min(READ_FRAMES as u64) as usize;
        let (got, after) = spool.read_entries(next, want)?;
        if got.is_empty() && after <= next {
            break;
        }
        for (lsn, f) in got {
            if lsn >= end {
                next = end;
                break 'read;
            }
            bytes += f.len();
            out.push((lsn, f));
            next = lsn + 1;
            if bytes >= limit {
                break 'read;
            }
        }
        next = after.min(end).max(next);
    }
    Ok((out, next))
}

/// Runs of frames with consecutive LSNs of at most `limit` bytes (a larger
/// frame alone), at most u16::MAX frames: the FEC objects of a window. The
/// same frames always group the same way, so carousel passes repeat the objects.
fn group(frames: &[(u64, Vec<u8>)], limit: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (lsn, f)) in frames.iter().enumerate() {
        if i > start
            && (bytes + f.len() > limit
                || i - start == u16::MAX as usize
                || *lsn != frames[i - 1].0 + 1)
        {
            out.push((start, i - start));
            (start, bytes) = (i, 0);
        }
        bytes += f.len();
    }
    if start < frames.len() {
        out.push((start, frames.len() - start));
    }
    out
}

/// The [first, end) runs of consecutive LSNs in `frames`.
fn runs(frames: &[(u64, Vec<u8>)]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (lsn, _) in frames {
        match out.last_mut() {
            Some(last) if last.1 == *lsn => last.1 = lsn + 1,
            _ => out.push((*lsn, lsn + 1)),
        }
    }
    out
}

/// Recovery symbols per block: `pct` of K, and for small blocks enough that
/// a block survives i.i.d. loss of pct/2.5 (2% at 5% repair) with
/// probability above 1 - 1e-7 (a 1-symbol object at 5% gets 4 recovery symbols).
pub struct RepairRule {
    pct: f64,
    cache: Vec<u16>,
}

impl RepairRule {
    pub fn new(pct: f64) -> Self {
        RepairRule {
            pct,
            cache: Vec::new(),
        }
    }

    pub fn for_block(&mut self, k: usize) -> usize {
        if self.cache.is_empty() {
            self.cache = (0..=fec::MAX_K).map(|k| self.compute(k) as u16).collect();
        }
        self.cache[k.min(fec::MAX_K)] as usize
    }

    fn compute(&self, k: usize) -> usize {
        let base = (k as f64 * self.pct / 100.0).ceil() as usize;
        let loss = self.pct / 100.0 / 2.5;
        if k == 0 || loss <= 0.0 {
            return base.min(MAX_REPAIR);
        }
        let mut r = base;
        while r < MAX_REPAIR && binomial_tail(k + r, loss, r) > 1e-7 {
            r += 1;
        }
        r.max(base).min(MAX_REPAIR)
    }
}

/// P(X > r) for X ~ Binomial(n, p).
fn binomial_tail(n: usize, p: f64, r: usize) -> f64 {
    let q = 1.0 - p;
    let mut pmf = q.powi(n as i32);
    let mut cdf = pmf;
    for x in 0..r.min(n) {
        pmf *= (n - x) as f64 / (x + 1) as f64 * p / q;
        cdf += pmf;
    }
    (1.0 - cdf).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_repair() {
        let f = |lsn: u64, n: usize| (lsn, vec![0u8; n]);
        let frames = vec![
            f(0, 100),
            f(1, 100),
            f(2, 900),
            f(3, 5000),
            f(4, 10),
            f(5, 10),
        ];
        assert_eq!(group(&frames, 1000), vec![(0, 2), (2, 1), (3, 1), (4, 2)]);
        // A hole in the LSNs ends an object.
        let holes = vec![f(0, 10), f(1, 10), f(5, 10), f(6, 10), f(9, 10)];
        assert_eq!(group(&holes, 1000), vec![(0, 2), (2, 2), (4, 1)]);
        assert_eq!(runs(&holes), vec![(0, 2), (5, 7), (9, 10)]);
        let mut r = RepairRule::new(5.0);
        assert_eq!(r.for_block(1), 4); // 0.02^4 = 1.6e-7 is not enough
        assert_eq!(r.for_block(1000), 50);
        assert!(
            r.for_block(100) > 5 && r.for_block(100) < 15,
            "{}",
            r.for_block(100)
        );
        assert_eq!(RepairRule::new(0.0).for_block(100), 0);
        assert!((binomial_tail(10, 0.5, 4) - 0.623046875).abs() < 1e-9);
    }
}
