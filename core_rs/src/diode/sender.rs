//! Diode sender: a thread that reads durable frames from the spool after the
//! cursor "sent", protects them (frame tag, Reed-Solomon repair), interleaves
//! the symbols of about a second of frames, paces them and sends them in
//! sendmmsg batches on a connected socket shut for reading: it never reads
//! from the link. Every second a HEARTBEAT, every minute a MANIFEST; spare
//! capacity re-sends frames with fresh repair symbols (the carousel).
//! The cursor is persisted after each window, so a restart resends at most
//! one window (the receiver drops the duplicates). LSNs the spool no longer
//! holds (dropped with a GAP, or corrupt) are skipped: frames keep their LSN.
//! An operator's re-send request (`resend`) queues an LSN range that the
//! thread sends between live windows, with fresh repair symbols, without
//! moving the cursor.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::auth::{LinkKeys, FRAME_TAG_LEN};
use super::fec::{self, Layout, MAX_REPAIR};
use super::pacing::TokenBucket;
use super::packet::{self, Control, SymbolHeader};
use super::{resolve, udp, DiodeError};
use crate::spool::{random_session_id, Spool, SpoolError};

pub const CURSOR: &str = "sent";
/// Frames read from the spool per read.
const READ_FRAMES: usize = 64;
/// Packets per sendmmsg call (and the pacer's burst).
const BURST_PACKETS: usize = 64;
const IDLE_SLEEP: Duration = Duration::from_millis(5);
/// How much data one interleaving window holds when the link is unpaced.
const UNPACED_WINDOW: usize = 16 << 20;
const MAX_WINDOW: usize = 64 << 20;
const MANIFEST_HISTORY: Duration = Duration::from_secs(15 * 60);

/// (lsn, frame) pairs in LSN order, possibly with holes.
type Frames = Vec<(u64, Vec<u8>)>;

#[derive(Clone)]
pub struct SenderOptions {
    /// Link budget in bits per second counting IP/UDP headers (0 = unpaced).
    pub rate_bps: u64,
    pub mtu: usize,
    /// Recovery symbols per block, percent of its source symbols.
    pub repair_pct: f64,
    /// Delays after the first send at which each frame is sent again.
    pub carousel: Vec<Duration>,
    /// Symbols of the frames sent within this span are interleaved.
    pub interleave: Duration,
    pub heartbeat: Duration,
    pub manifest: Duration,
    pub keys: LinkKeys,
}

impl SenderOptions {
    pub fn new(rate_bps: u64, mtu: usize) -> Self {
        SenderOptions {
            rate_bps,
            mtu,
            repair_pct: 5.0,
            carousel: [30, 600, 3600].map(Duration::from_secs).to_vec(),
            interleave: Duration::from_secs(1),
            heartbeat: Duration::from_secs(1),
            manifest: Duration::from_secs(60),
            keys: LinkKeys::unauthenticated(),
        }
    }

    pub fn check(&self) -> Result<(), String> {
        packet::check_mtu(self.mtu)?;
        if !(0.0..=100.0).contains(&self.repair_pct) {
            return Err(format!("repair_pct {} outside [0, 100]", self.repair_pct));
        }
        if self.carousel.len() > 8 {
            return Err(format!(
                "carousel has {} passes, at most 8",
                self.carousel.len()
            ));
        }
        if self.heartbeat.is_zero() || self.manifest.is_zero() {
            return Err("heartbeat and manifest intervals must be positive".into());
        }
        Ok(())
    }

    fn window_bytes(&self) -> usize {
        if self.rate_bps == 0 {
            UNPACED_WINDOW
        } else {
            ((self.rate_bps as f64 / 8.0 * self.interleave.as_secs_f64()) as usize)
                .clamp(64 << 10, MAX_WINDOW)
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    pub frames_sent: u64,
    pub packets_sent: u64,
    /// UDP payload bytes (without IP/UDP headers).
    pub bytes_sent: u64,
    pub send_errors: u64,
    pub cursor: u64,
    pub backlog: u64,
    pub link_session: u64,
    pub carousel_frames: u64,
    pub carousel_pending: u64,
    pub final_below: u64,
    pub heartbeats: u64,
    /// Frames sent again on an operator's request, and LSN slots still queued.
    pub resent_frames: u64,
    pub resend_queued: u64,
}

impl SenderStats {
    pub fn items(&self) -> [(&'static str, u64); 12] {
        [
            ("frames_sent", self.frames_sent),
            ("packets_sent", self.packets_sent),
            ("bytes_sent", self.bytes_sent),
            ("send_errors", self.send_errors),
            ("cursor", self.cursor),
            ("backlog", self.backlog),
            ("carousel_frames", self.carousel_frames),
            ("carousel_pending", self.carousel_pending),
            ("final_below", self.final_below),
            ("heartbeats", self.heartbeats),
            ("resent_frames", self.resent_frames),
            ("resend_queued", self.resend_queued),
        ]
    }
}

struct Shared {
    spool: Arc<Spool>,
    stop: AtomicBool,
    cursor: AtomicU64,
    frames_sent: AtomicU64,
    packets_sent: AtomicU64,
    bytes_sent: AtomicU64,
    send_errors: AtomicU64,
    carousel_frames: AtomicU64,
    carousel_pending: AtomicU64,
    final_below: AtomicU64,
    heartbeats: AtomicU64,
    link_session: u64,
    /// Queued re-send ranges [next, end) of LSNs, oldest request first.
    resend: Mutex<VecDeque<(u64, u64)>>,
    resent_frames: AtomicU64,
}

pub struct DiodeSender {
    shared: Arc<Shared>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl DiodeSender {
    /// Start with the default options (5% repair, carousel 30 s/10 min/60 min,
    /// no key: integrity only). `rate_bps` 0 = unpaced, for tests only.
    pub fn start(
        spool: Arc<Spool>,
        target: &str,
        rate_bps: u64,
        mtu: usize,
    ) -> Result<DiodeSender, DiodeError> {
        Self::start_with(spool, target, SenderOptions::new(rate_bps, mtu))
    }

    pub fn start_with(
        spool: Arc<Spool>,
        target: &str,
        opts: SenderOptions,
    ) -> Result<DiodeSender, DiodeError> {
        opts.check().map_err(DiodeError::Config)?;
        let target = resolve(target)?;
        // One window of packets fits in the kernel buffer between pacer bursts.
        let socket = udp::sender_socket(target, 4 << 20)?;
        let mut cursor = spool.get_cursor(CURSOR)?;
        let durable = spool.durable_lsn();
        if cursor > durable {
            eprintln!("tidegate sender: cursor {CURSOR:?} = {cursor} is past the spool end {durable}; resetting it");
            cursor = durable;
        }
        if !opts.keys.authenticated {
            eprintln!("tidegate sender: no key file configured: packets carry integrity tags but are not authenticated");
        }
        let shared = Arc::new(Shared {
            spool,
            stop: AtomicBool::new(false),
            cursor: AtomicU64::new(cursor),
            frames_sent: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            carousel_frames: AtomicU64::new(0),
            carousel_pending: AtomicU64::new(0),
            final_below: AtomicU64::new(cursor),
            heartbeats: AtomicU64::new(0),
            link_session: random_session_id(),
            resend: Mutex::new(VecDeque::new()),
            resent_frames: AtomicU64::new(0),
        });
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("tidegate-sender".into())
            .spawn(move || Worker::new(&s, socket, opts).run())
            .map_err(|e| DiodeError::Io {
                context: "spawn sender thread".into(),
                source: e,
            })?;
        Ok(DiodeSender {
            shared,
            handle: Mutex::new(Some(handle)),
        })
    }

    pub fn stats(&self) -> SenderStats {
        let s = &self.shared;
        let cursor = s.cursor.load(Relaxed);
        SenderStats {
            frames_sent: s.frames_sent.load(Relaxed),
            packets_sent: s.packets_sent.load(Relaxed),
            bytes_sent: s.bytes_sent.load(Relaxed),
            send_errors: s.send_errors.load(Relaxed),
            cursor,
            backlog: s.spool.durable_lsn().saturating_sub(cursor),
            link_session: s.link_session,
            carousel_frames: s.carousel_frames.load(Relaxed),
            carousel_pending: s.carousel_pending.load(Relaxed),
            final_below: s.final_below.load(Relaxed),
            heartbeats: s.heartbeats.load(Relaxed),
            resent_frames: s.resent_frames.load(Relaxed),
            resend_queued: lock(&s.resend).iter().map(|(a, b)| b - a).sum(),
        }
    }

    /// Queue the durable frames with LSN in [first, end) to be sent again
    /// (clamped to what the spool holds); returns the LSN range queued, or
    /// None if the spool holds none of it. Live frames keep flowing: the
    /// thread alternates live windows and re-send windows.
    pub fn resend(&self, first: u64, end: u64) -> Option<(u64, u64)> {
        let sp = &self.shared.spool;
        let (a, b) = (first.max(sp.first_lsn()), end.min(sp.durable_lsn()));
        if a >= b {
            return None;
        }
        lock(&self.shared.resend).push_back((a, b));
        Some((a, b))
    }

    /// True when every durable frame has been sent once and no re-send is queued.
    pub fn idle(&self) -> bool {
        self.shared.cursor.load(Relaxed) >= self.shared.spool.durable_lsn()
            && lock(&self.shared.resend).is_empty()
    }

    /// Stop the thread, wait for it, and persist the cursor.
    pub fn stop(&self) -> Result<(), DiodeError> {
        self.shared.stop.store(true, Relaxed);
        let handle = lock(&self.handle).take();
        if let Some(h) = handle {
            let _ = h.join();
            self.shared
                .spool
                .set_cursor(CURSOR, self.shared.cursor.load(Relaxed))?;
        }
        Ok(())
    }
}

impl Drop for DiodeSender {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

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

/// Frames [first, end) sent at `at`, due for carousel pass `pass`.
#[derive(Clone, Copy)]
struct Due {
    at: Instant,
    first: u64,
    end: u64,
}

struct Worker<'a> {
    s: &'a Shared,
    sock: UdpSocket,
    opts: SenderOptions,
    bucket: TokenBucket,
    enc: Option<reed_solomon_simd::ReedSolomonEncoder>,
    repair: RepairRule,
    pkt_bufs: Vec<Vec<u8>>,
    control_buf: Vec<u8>,
    counter: u64,
    next_hb: Instant,
    next_manifest: Instant,
    /// One queue per carousel pass, each in send order.
    carousel: Vec<VecDeque<Due>>,
    history: VecDeque<(Instant, u64, u64)>,
    last_error: String,
}

impl<'a> Worker<'a> {
    fn new(s: &'a Shared, sock: UdpSocket, opts: SenderOptions) -> Self {
        let now = Instant::now();
        Worker {
            s,
            sock,
            bucket: TokenBucket::new(opts.rate_bps, BURST_PACKETS * opts.mtu),
            carousel: vec![VecDeque::new(); opts.carousel.len()],
            repair: RepairRule::new(opts.repair_pct),
            opts,
            enc: None,
            pkt_bufs: vec![Vec::new(); BURST_PACKETS],
            control_buf: Vec::new(),
            counter: 0,
            next_hb: now,
            next_manifest: now,
            history: VecDeque::new(),
            last_error: String::new(),
        }
    }

    fn report(&mut self, msg: String) {
        if msg != self.last_error {
            eprintln!("tidegate sender: {msg}");
            self.last_error = msg;
        }
    }

    /// Sleep up to `d`, waking early when asked to stop. Returns false on stop.
    fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if self.s.stop.load(Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(20)));
        }
    }

    fn run(mut self) {
        let mut cursor = self.s.cursor.load(Relaxed);
        let mut persisted = cursor;
        while !self.s.stop.load(Relaxed) {
            self.control_if_due(cursor);
            let limit = self.opts.window_bytes();
            match self.read_window(cursor, u64::MAX, limit) {
                Ok((frames, next)) => {
                    if !frames.is_empty() {
                        if !self.transmit(&frames, 0) {
                            break; // this window is resent after a restart
                        }
                        self.s.frames_sent.fetch_add(frames.len() as u64, Relaxed);
                        let now = Instant::now();
                        if let Some(q) = self.carousel.first_mut() {
                            q.push_back(Due {
                                at: now,
                                first: cursor,
                                end: next,
                            });
                        }
                        for (a, b) in runs(&frames) {
                            self.history.push_back((now, a, b));
                        }
                    }
                    // Past the frames sent and any LSNs the spool no longer holds.
                    let moved = next > cursor;
                    cursor = cursor.max(next);
                    self.s.cursor.store(cursor, Relaxed);
                    if cursor != persisted {
                        match self.s.spool.set_cursor(CURSOR, cursor) {
                            Ok(()) => persisted = cursor,
                            Err(e) => self.report(format!("cannot persist cursor: {e}")),
                        }
                    }
                    let resent = match self.resend_step() {
                        Some(r) => r,
                        None => break,
                    };
                    if !moved && !resent && !self.carousel_step() && !self.sleep(IDLE_SLEEP) {
                        break;
                    }
                }
                Err(SpoolError::Closed) => break,
                Err(e) => {
                    self.report(e.to_string());
                    if !self.sleep(Duration::from_millis(200)) {
                        break;
                    }
                }
            }
            self.update_final(cursor);
        }
        let _ = self.s.spool.set_cursor(CURSOR, cursor);
    }

    /// Frames with LSN in [from, end), up to `limit` bytes (at least one
    /// frame), skipping LSNs the spool no longer holds, and the LSN after the
    /// last one read or skipped (`from` when nothing is durable there).
    fn read_window(&self, from: u64, end: u64, limit: usize) -> Result<(Frames, u64), SpoolError> {
        let mut out: Frames = Vec::new();
        let mut bytes = 0;
        let mut next = from;
        'read: while bytes < limit && next < end {
            let want = (end - next).min(READ_FRAMES as u64) as usize;
            let (got, after) = self.s.spool.read_entries(next, want)?;
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

    /// Send one window of the oldest queued re-send range with fresh repair
    /// symbols. Some(false) when none is queued, None when stopped midway.
    fn resend_step(&mut self) -> Option<bool> {
        let Some((first, end)) = lock(&self.s.resend).front().copied() else {
            return Some(false);
        };
        let (frames, next) = match self.read_window(first, end, self.opts.window_bytes()) {
            Ok(r) => r,
            Err(e) => {
                self.report(format!(
                    "re-send from LSN {first}: {e}; dropping the request"
                ));
                lock(&self.s.resend).pop_front();
                return Some(true);
            }
        };
        // Beyond every carousel pass: recovery symbols not sent before.
        if !frames.is_empty() && !self.transmit(&frames, self.opts.carousel.len() + 1) {
            return None;
        }
        self.s.resent_frames.fetch_add(frames.len() as u64, Relaxed);
        let mut q = lock(&self.s.resend);
        if next >= end || next <= first {
            q.pop_front(); // done, or nothing left to read in it
        } else if let Some(front) = q.front_mut() {
            front.0 = next;
        }
        Some(true)
    }

    fn update_final(&mut self, cursor: u64) {
        let fin = self
            .carousel
            .iter()
            .filter_map(|q| q.front().map(|d| d.first))
            .min()
            .unwrap_or(cursor)
            .min(cursor);
        self.s.final_below.store(fin, Relaxed);
        let pending: u64 = self
            .carousel
            .iter()
            .flatten()
            .map(|d| d.end - d.first)
            .sum();
        self.s.carousel_pending.store(pending, Relaxed);
        let horizon = Instant::now().checked_sub(MANIFEST_HISTORY);
        while let (Some(h), Some(&(t, _, _))) = (horizon, self.history.front()) {
            if t >= h {
                break;
            }
            self.history.pop_front();
        }
    }

    /// Send the oldest due carousel batch, if any. Returns true if it sent.
    fn carousel_step(&mut self) -> bool {
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
        let Some(pass) = due else { return false };
        let d = self.carousel[pass].pop_front().expect("front exists");
        let frames = match self.read_window(d.first, d.end, usize::MAX) {
            Ok((f, _)) => f,
            Err(e) => {
                self.report(format!("carousel: {e}"));
                return true;
            }
        };
        if self.transmit(&frames, pass + 1) {
            self.s
                .carousel_frames
                .fetch_add(frames.len() as u64, Relaxed);
            if let Some(q) = self.carousel.get_mut(pass + 1) {
                q.push_back(d);
            }
        }
        true
    }

    fn control_if_due(&mut self, cursor: u64) {
        let now = Instant::now();
        if now < self.next_hb && now < self.next_manifest {
            return;
        }
        let manifest = now >= self.next_manifest;
        self.update_final(cursor);
        self.counter += 1;
        let time_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        if manifest {
            for &(_, a, b) in &self.history {
                match ranges.last_mut() {
                    Some(last) if last.1 == a => last.1 = b,
                    _ => ranges.push((a, b)),
                }
            }
        }
        let c = Control {
            link_session: self.s.link_session,
            counter: self.counter,
            time_ns,
            site_id: self.s.spool.site_id(),
            sent_below: cursor,
            final_below: self.s.final_below.load(Relaxed),
            durable: self.s.spool.durable_lsn(),
            frames_sent: self.s.frames_sent.load(Relaxed),
            packets_sent: self.s.packets_sent.load(Relaxed),
            send_errors: self.s.send_errors.load(Relaxed),
            rate_bps: self.opts.rate_bps,
            ranges,
        };
        let mut buf = std::mem::take(&mut self.control_buf);
        packet::write_control(&c, manifest, &self.opts.keys, &mut buf);
        self.send(&[&buf]);
        self.control_buf = buf;
        self.s.heartbeats.fetch_add(1, Relaxed);
        if manifest {
            self.next_manifest = now + self.opts.manifest;
        } else {
            self.next_hb = (self.next_hb + self.opts.heartbeat).max(now);
        }
    }

    /// Encode and send frames as carousel pass `pass` (0 = first send).
    /// Returns false if stopped midway.
    fn transmit(&mut self, frames: &[(u64, Vec<u8>)], pass: usize) -> bool {
        let sym = packet::symbol_size(self.opts.mtu);
        let mut objects = Vec::new();
        let mut blocks = Vec::new();
        for (start, n) in group(frames, fec::MAX_K * sym - FRAME_TAG_LEN) {
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
                    self.report(format!("FEC encode: {e}"));
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
        // Round-robin over every block of the window: a burst of loss costs
        // each block only its share.
        let mut n = 0;
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
                packet::write_symbol(&h, data, &self.opts.keys, &mut self.pkt_bufs[n]);
                bt.next += 1;
                n += 1;
                if n == BURST_PACKETS {
                    if !self.flush(n) {
                        return false;
                    }
                    n = 0;
                }
            }
        }
        n == 0 || self.flush(n)
    }

    /// Pace and send the first `n` packet buffers; heartbeats go out in between.
    fn flush(&mut self, n: usize) -> bool {
        let wire: usize = self.pkt_bufs[..n]
            .iter()
            .map(|p| p.len() + packet::IP_UDP_OVERHEAD)
            .sum();
        let wait = self.bucket.take(wire, Instant::now());
        if !wait.is_zero() && !self.sleep(wait) {
            return false;
        }
        let bufs = std::mem::take(&mut self.pkt_bufs);
        let pkts: Vec<&[u8]> = bufs[..n].iter().map(|b| b.as_slice()).collect();
        self.send(&pkts);
        self.pkt_bufs = bufs;
        let cursor = self.s.cursor.load(Relaxed);
        self.control_if_due(cursor);
        !self.s.stop.load(Relaxed)
    }

    /// Send packets; transient kernel back-pressure is retried briefly,
    /// anything else is a lost packet (no back channel), counted.
    fn send(&mut self, pkts: &[&[u8]]) {
        let mut at = 0;
        let mut retries = 0;
        while at < pkts.len() {
            let (n, err) = udp::send_batch(&self.sock, &pkts[at..]);
            for p in &pkts[at..at + n] {
                self.s.packets_sent.fetch_add(1, Relaxed);
                self.s.bytes_sent.fetch_add(p.len() as u64, Relaxed);
            }
            at += n;
            let Some(e) = err else { break };
            match e.kind() {
                // An ICMP error from an earlier packet (receiver down): not this packet's fault.
                ErrorKind::ConnectionRefused => {}
                ErrorKind::WouldBlock | ErrorKind::Interrupted => {}
                _ if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                _ => {
                    self.s.send_errors.fetch_add(1, Relaxed);
                    self.report(format!("send: {e}"));
                    at += 1;
                    continue;
                }
            }
            retries += 1;
            if retries > 200 {
                self.s
                    .send_errors
                    .fetch_add((pkts.len() - at) as u64, Relaxed);
                return;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }
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
