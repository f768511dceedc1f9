//! Diode sender: two threads joined by a bounded queue of ready packets.
//! The encoder (encode.rs) reads durable frames from the spool after the
//! cursor "sent", protects them (frame tag, Reed-Solomon repair), interleaves
//! the symbols of about a second of frames and seals each packet. The pacer
//! (pace.rs) takes the packets from the queue, paces them with a token bucket
//! and sends them in sendmmsg batches on a connected socket shut for reading:
//! it never reads from the link. It also sends a HEARTBEAT every second and a
//! MANIFEST every minute. The queue holds about a quarter second of link
//! time, so the wire stays busy while the encoder reads and encodes the next
//! window. Spare capacity re-sends frames with fresh repair symbols (the
//! carousel).
//! The cursor advances only when every packet of a window has been handed to
//! the kernel, and the encoder persists it, so a restart resends at most about
//! one window (the receiver drops the duplicates). LSNs the spool no longer
//! holds (dropped with a GAP, or corrupt) are skipped: frames keep their LSN.
//! An operator's re-send request (`resend`) queues an LSN range that the
//! encoder sends between live windows, with fresh repair symbols, without
//! moving the cursor.

use std::collections::VecDeque;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::auth::LinkKeys;
use super::packet;
use super::{resolve, udp, DiodeError};
use crate::spool::{random_session_id, Spool};

mod encode;
mod pace;

pub use encode::RepairRule;

pub const CURSOR: &str = "sent";
/// Packets per sendmmsg call (and per message on the encoder -> pacer queue).
const BURST_PACKETS: usize = 64;
/// How much data one interleaving window holds when the link is unpaced.
const UNPACED_WINDOW: usize = 16 << 20;
const MAX_WINDOW: usize = 64 << 20;
/// Link time the encoder -> pacer queue holds: more than the encoder needs
/// to read and encode the next window, so the wire never waits for it.
const QUEUE_TIME: Duration = Duration::from_millis(250);

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

    /// Bursts the encoder -> pacer queue holds (QUEUE_TIME of link time;
    /// unpaced, one window).
    fn queue_bursts(&self) -> usize {
        let bytes = if self.rate_bps == 0 {
            UNPACED_WINDOW
        } else {
            (self.rate_bps as f64 / 8.0 * QUEUE_TIME.as_secs_f64()) as usize
        };
        (bytes / (BURST_PACKETS * self.mtu)).clamp(4, 1024)
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
    /// Re-send windows the encoder has queued that the pacer has not sent yet.
    resend_inflight: AtomicU64,
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
            resend_inflight: AtomicU64::new(0),
            resent_frames: AtomicU64::new(0),
        });
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("tidegate-sender".into())
            .spawn(move || run(&s, socket, opts))
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
            && self.shared.resend_inflight.load(Relaxed) == 0
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

/// The sender thread: the pacer runs here, the encoder beside it; when either
/// ends (stop, spool closed) the queue between them closes and the other ends.
fn run(s: &Shared, sock: UdpSocket, opts: SenderOptions) {
    let (queue_tx, queue_rx) = mpsc::sync_channel(opts.queue_bursts());
    let (free_tx, free_rx) = mpsc::channel();
    std::thread::scope(|sc| {
        let enc = encode::Encoder::new(s, opts.clone(), queue_tx, free_rx);
        let spawned = std::thread::Builder::new()
            .name("tidegate-encoder".into())
            .spawn_scoped(sc, move || enc.run());
        if let Err(e) = spawned {
            eprintln!("tidegate sender: cannot start the encoder thread: {e}");
        }
        pace::Pacer::new(s, sock, opts, free_tx).run(queue_rx);
    });
    let _ = s.spool.set_cursor(CURSOR, s.cursor.load(Relaxed));
}

/// Encoder -> pacer messages, in send order.
enum Msg {
    /// Sealed packets, at most BURST_PACKETS.
    Burst(Vec<Vec<u8>>),
    /// Every packet of a window was queued before this.
    Done(Done),
}

struct Done {
    kind: Kind,
    frames: u64,
    /// Lowest first LSN of any window still due for a carousel pass once
    /// this one is sent (u64::MAX: none); final_below is min(cursor, floor).
    floor: u64,
}

enum Kind {
    /// First send: the cursor moves to `next` (past frames and skipped LSNs).
    Live {
        next: u64,
        runs: Vec<(u64, u64)>,
    },
    Resend,
    Carousel,
}

/// Logs an error once until a different one occurs (no log flood at 1000 packets/s).
#[derive(Default)]
struct Reporter {
    last: String,
}

impl Reporter {
    fn report(&mut self, msg: String) {
        if msg != self.last {
            eprintln!("tidegate sender: {msg}");
            self.last = msg;
        }
    }
}

/// Sleep up to `d`, waking early when asked to stop. Returns false on stop.
fn sleep(stop: &AtomicBool, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if stop.load(Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}
