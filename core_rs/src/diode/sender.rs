//! Diode sender: a thread that reads durable frames from the spool after the
//! cursor "sent", splits them into packets, paces them and sends them. It
//! never reads from its socket. The cursor is persisted after each batch, so
//! a restart resends at most one batch (the receiver drops the duplicates).
//! An operator's re-send request (`resend`) queues an LSN range that the
//! thread sends between live batches, without moving the cursor.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::pacing::TokenBucket;
use super::{packet, resolve, DiodeError};
use crate::spool::{random_session_id, Spool, SpoolError};

pub const CURSOR: &str = "sent";
/// Frames read from the spool per batch (one cursor write per batch).
const BATCH_FRAMES: usize = 256;
/// Most packets sent back to back by the pacer.
const BURST_PACKETS: usize = 64;
const IDLE_SLEEP: Duration = Duration::from_millis(10);
const SEND_BUFFER: usize = 4 << 20;

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
    /// Frames sent again on an operator's request, and LSN slots still queued.
    pub resent_frames: u64,
    pub resend_queued: u64,
}

impl SenderStats {
    pub fn items(&self) -> [(&'static str, u64); 8] {
        [
            ("frames_sent", self.frames_sent),
            ("packets_sent", self.packets_sent),
            ("bytes_sent", self.bytes_sent),
            ("send_errors", self.send_errors),
            ("cursor", self.cursor),
            ("backlog", self.backlog),
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
    /// Start the sender thread. `rate_bps` is the link budget in bits per
    /// second counting IP/UDP headers (0 = unpaced, for tests only).
    pub fn start(
        spool: Arc<Spool>,
        target: &str,
        rate_bps: u64,
        mtu: usize,
    ) -> Result<DiodeSender, DiodeError> {
        packet::check_mtu(mtu).map_err(DiodeError::Config)?;
        let target = resolve(target)?;
        let socket = open_socket(target)?;
        let mut cursor = spool.get_cursor(CURSOR)?;
        let durable = spool.durable_lsn();
        if cursor > durable {
            eprintln!("tidegate sender: cursor {CURSOR:?} = {cursor} is past the spool end {durable}; resetting it");
            cursor = durable;
        }
        let shared = Arc::new(Shared {
            spool,
            stop: AtomicBool::new(false),
            cursor: AtomicU64::new(cursor),
            frames_sent: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            link_session: random_session_id(),
            resend: Mutex::new(VecDeque::new()),
            resent_frames: AtomicU64::new(0),
        });
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("tidegate-sender".into())
            .spawn(move || run(&s, socket, target, rate_bps, mtu))
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
            resent_frames: s.resent_frames.load(Relaxed),
            resend_queued: lock(&s.resend).iter().map(|(a, b)| b - a).sum(),
        }
    }

    /// Queue the durable frames with LSN in [first, end) to be sent again
    /// (clamped to what the spool holds); returns the LSN range queued, or
    /// None if the spool holds none of it. Live frames keep flowing: the
    /// thread alternates live and re-send batches.
    pub fn resend(&self, first: u64, end: u64) -> Option<(u64, u64)> {
        let sp = &self.shared.spool;
        let (a, b) = (first.max(sp.first_lsn()), end.min(sp.durable_lsn()));
        if a >= b {
            return None;
        }
        lock(&self.shared.resend).push_back((a, b));
        Some((a, b))
    }

    /// True when every durable frame has been sent and no re-send is queued.
    pub fn idle(&self) -> bool {
        self.shared.cursor.load(Relaxed) >= self.shared.spool.durable_lsn()
            && lock(&self.shared.resend).is_empty()
    }

    /// Stop the thread, wait for it, and persist the cursor.
    pub fn stop(&self) -> Result<(), DiodeError> {
        self.shared.stop.store(true, Relaxed);
        let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take();
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

fn open_socket(target: SocketAddr) -> Result<UdpSocket, DiodeError> {
    let io = |context: &str| {
        let context = context.to_owned();
        move |e| DiodeError::Io { context, source: e }
    };
    let sock = Socket::new(
        Domain::for_address(target),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .map_err(io("create UDP socket"))?;
    let _ = sock.set_send_buffer_size(SEND_BUFFER); // best effort; pacing matters more
    let any: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("literal address");
    sock.bind(&any.into()).map_err(io("bind UDP socket"))?;
    Ok(sock.into())
}

/// Sleep up to `d`, waking early when asked to stop. Returns false on stop.
fn sleep_unless_stopped(s: &Shared, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if s.stop.load(Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

fn send_packet(s: &Shared, socket: &UdpSocket, target: SocketAddr, p: &[u8]) {
    // Transient kernel back-pressure is retried briefly; anything else is a
    // lost packet (no back channel), counted.
    for attempt in 0..50 {
        match socket.send_to(p, target) {
            Ok(_) => {
                s.packets_sent.fetch_add(1, Relaxed);
                s.bytes_sent.fetch_add(p.len() as u64, Relaxed);
                return;
            }
            Err(e)
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
                    || e.raw_os_error() == Some(105) =>
            {
                // 105 = ENOBUFS on Linux
                if attempt < 49 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            Err(_) => break,
        }
    }
    s.send_errors.fetch_add(1, Relaxed);
}

/// Packetize, pace and send one frame; Err(()) when asked to stop mid-frame.
#[allow(clippy::too_many_arguments)]
fn send_frame(
    s: &Shared,
    socket: &UdpSocket,
    target: SocketAddr,
    bucket: &mut TokenBucket,
    lsn: u64,
    f: &[u8],
    mtu: usize,
    buf: &mut Vec<u8>,
) -> Result<(), ()> {
    packet::packetize(s.link_session, lsn, f, mtu, buf, |p| {
        let wait = bucket.take(p.len() + packet::IP_UDP_OVERHEAD, Instant::now());
        if !wait.is_zero() && !sleep_unless_stopped(s, wait) {
            return Err(());
        }
        send_packet(s, socket, target, p);
        Ok(())
    })
}

/// Send one batch of the oldest queued re-send range; false when none is queued.
fn resend_batch(
    s: &Shared,
    socket: &UdpSocket,
    target: SocketAddr,
    bucket: &mut TokenBucket,
    mtu: usize,
    buf: &mut Vec<u8>,
) -> Result<bool, ()> {
    let Some((next, end)) = lock(&s.resend).front().copied() else {
        return Ok(false);
    };
    let want = ((end - next) as usize).min(BATCH_FRAMES);
    let (frames, after) = match s.spool.read_entries(next, want) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tidegate sender: re-send from LSN {next}: {e}; dropping the request");
            lock(&s.resend).pop_front();
            return Ok(true);
        }
    };
    for (lsn, f) in frames.iter().filter(|(lsn, _)| *lsn < end) {
        send_frame(s, socket, target, bucket, *lsn, f, mtu, buf)?;
        s.resent_frames.fetch_add(1, Relaxed);
    }
    let mut q = lock(&s.resend);
    if after >= end || after == next {
        q.pop_front(); // done, or nothing left to read in it
    } else if let Some(front) = q.front_mut() {
        front.0 = after;
    }
    Ok(true)
}

fn run(s: &Shared, socket: UdpSocket, target: SocketAddr, rate_bps: u64, mtu: usize) {
    let mut bucket = TokenBucket::new(rate_bps, BURST_PACKETS * mtu);
    let mut buf = Vec::with_capacity(mtu);
    let mut cursor = s.cursor.load(Relaxed);
    let mut persisted = cursor;
    let mut last_error = String::new();
    'outer: while !s.stop.load(Relaxed) {
        let (frames, next) = match s.spool.read_entries(cursor, BATCH_FRAMES) {
            Ok(f) => f,
            Err(SpoolError::Closed) => break,
            Err(e) => {
                let msg = e.to_string();
                if msg != last_error {
                    eprintln!("tidegate sender: {msg}");
                    last_error = msg;
                }
                if !sleep_unless_stopped(s, Duration::from_millis(200)) {
                    break;
                }
                continue;
            }
        };
        for (lsn, f) in &frames {
            if send_frame(s, &socket, target, &mut bucket, *lsn, f, mtu, &mut buf).is_err() {
                break 'outer; // this frame is resent after a restart
            }
            cursor = lsn + 1;
            s.cursor.store(cursor, Relaxed);
            s.frames_sent.fetch_add(1, Relaxed);
        }
        // LSNs the spool no longer holds (dropped with a GAP, or corrupt) are skipped.
        if next > cursor {
            cursor = next;
            s.cursor.store(cursor, Relaxed);
        }
        if cursor != persisted {
            match s.spool.set_cursor(CURSOR, cursor) {
                Ok(()) => persisted = cursor,
                Err(e) => eprintln!("tidegate sender: cannot persist cursor: {e}"),
            }
        }
        let resent = match resend_batch(s, &socket, target, &mut bucket, mtu, &mut buf) {
            Ok(r) => r,
            Err(()) => break,
        };
        if frames.is_empty() && !resent && !sleep_unless_stopped(s, IDLE_SLEEP) {
            break;
        }
    }
    if persisted != cursor {
        let _ = s.spool.set_cursor(CURSOR, cursor);
    }
}
