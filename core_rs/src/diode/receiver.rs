//! Diode receiver: binds UDP, checks every packet's tag, rebuilds frames from
//! FEC symbols, checks each frame's tag and CRC and stores it in the IT
//! spool; keeps the gap ledger and writes GAP frames for seqs lost for good.
//! It never sends. Three threads: the drain (drain.rs) only empties the
//! socket into a bounded queue; the decode thread (here) checks, rebuilds,
//! stores and keeps the ledger; a third commits the spool every 100 ms while
//! frames arrive, so fsync never stalls decoding.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::auth::{tags_equal, LinkKeys, FRAME_TAG_LEN};
use super::drain::{self, Batch, DrainCounters};
use super::ledger::{Ledger, Lost};
use super::packet::{self, Control, Packet, PacketError};
use super::reassembly::{Push, Reassembler};
use super::{resolve, udp, DiodeError};
use crate::frame::{self, FrameSpec, Kind};
use crate::spool::{random_session_id, Spool, SpoolError};

/// Two interleaving windows at 1 Gbit/s would be 250 MB; 64 MiB absorbs
/// about half a second at full rate while the drain thread is not scheduled
/// or the queue to the decode thread is full (drain.rs).
pub const RECV_BUFFER: usize = 64 << 20;
const COMMIT_EVERY: Duration = Duration::from_millis(100);
const TICK_EVERY: Duration = Duration::from_millis(100);
const SAVE_EVERY: Duration = Duration::from_secs(1);
const EXPIRE_EVERY: Duration = Duration::from_secs(1);
/// How long a decoded object waits for the objects before it.
const HOLD: Duration = Duration::from_secs(1);
const HOLD_BYTES: usize = 256 << 20;
/// Sessions whose control counters are remembered (replay detection).
const SESSIONS_KEPT: usize = 64;

#[derive(Clone)]
pub struct ReceiverOptions {
    pub mtu: usize,
    pub keys: LinkKeys,
    /// Where the gap ledger persists (None: in memory only).
    pub ledger: Option<PathBuf>,
}

impl ReceiverOptions {
    pub fn new(mtu: usize) -> Self {
        ReceiverOptions {
            mtu,
            keys: LinkKeys::unauthenticated(),
            ledger: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    pub packets: u64,
    pub bytes: u64,
    pub packets_bad: u64,
    pub packets_bad_tag: u64,
    pub frames_ok: u64,
    pub frames_bad: u64,
    pub duplicates: u64,
    pub duplicate_packets: u64,
    pub replayed_controls: u64,
    pub incomplete_dropped: u64,
    pub blocks_repaired: u64,
    pub spool_errors: u64,
    pub heartbeats: u64,
    pub missing: u64,
    pub lost: u64,
    pub gap_frames: u64,
    pub sent_below: u64,
    pub final_below: u64,
    pub last_heartbeat_ns: i64,
    /// Time the drain spent blocked on a full queue to the decode thread.
    pub queue_full_ms: u64,
}

impl ReceiverStats {
    pub fn items(&self) -> [(&'static str, u64); 19] {
        [
            ("packets", self.packets),
            ("bytes", self.bytes),
            ("packets_bad", self.packets_bad),
            ("packets_bad_tag", self.packets_bad_tag),
            ("frames_ok", self.frames_ok),
            ("frames_bad", self.frames_bad),
            ("duplicates", self.duplicates),
            ("duplicate_packets", self.duplicate_packets),
            ("replayed_controls", self.replayed_controls),
            ("incomplete_dropped", self.incomplete_dropped),
            ("blocks_repaired", self.blocks_repaired),
            ("spool_errors", self.spool_errors),
            ("heartbeats", self.heartbeats),
            ("missing", self.missing),
            ("lost", self.lost),
            ("gap_frames", self.gap_frames),
            ("sent_below", self.sent_below),
            ("final_below", self.final_below),
            ("queue_full_ms", self.queue_full_ms),
        ]
    }
}

#[derive(Default)]
struct Counters {
    packets: AtomicU64,
    bytes: AtomicU64,
    packets_bad: AtomicU64,
    packets_bad_tag: AtomicU64,
    frames_ok: AtomicU64,
    frames_bad: AtomicU64,
    duplicates: AtomicU64,
    duplicate_packets: AtomicU64,
    replayed_controls: AtomicU64,
    incomplete_dropped: AtomicU64,
    blocks_repaired: AtomicU64,
    spool_errors: AtomicU64,
    heartbeats: AtomicU64,
    missing: AtomicU64,
    lost: AtomicU64,
    gap_frames: AtomicU64,
    sent_below: AtomicU64,
    final_below: AtomicU64,
    last_heartbeat_ns: AtomicI64,
    queue_full_ns: AtomicU64,
}

struct Shared {
    spool: Arc<Spool>,
    stop: AtomicBool,
    c: Counters,
    missing: Mutex<Vec<(u64, u64)>>,
}

/// A thread's body.
type Job = Box<dyn FnOnce() + Send>;

pub struct DiodeReceiver {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl DiodeReceiver {
    /// Bind `bind_addr` ("host:port"; port 0 picks one, see `local_addr`) and
    /// start with default options (no key, ledger in memory).
    pub fn start(
        bind_addr: &str,
        spool: Arc<Spool>,
        mtu: usize,
    ) -> Result<DiodeReceiver, DiodeError> {
        Self::start_with(bind_addr, spool, ReceiverOptions::new(mtu))
    }

    pub fn start_with(
        bind_addr: &str,
        spool: Arc<Spool>,
        opts: ReceiverOptions,
    ) -> Result<DiodeReceiver, DiodeError> {
        packet::check_mtu(opts.mtu).map_err(DiodeError::Config)?;
        let addr = resolve(bind_addr)?;
        let mut ledger = match &opts.ledger {
            Some(p) => Ledger::open(p.clone(), random_session_id()).map_err(DiodeError::Config)?,
            None => Ledger::new(None, random_session_id()),
        };
        resync_ledger(&spool, &mut ledger)?;
        let socket = udp::receiver_socket(addr, RECV_BUFFER)?;
        let local_addr = socket.local_addr().map_err(|e| DiodeError::Io {
            context: "local_addr".into(),
            source: e,
        })?;
        let shared = Arc::new(Shared {
            spool,
            stop: AtomicBool::new(false),
            c: Counters::default(),
            missing: Mutex::new(Vec::new()),
        });
        let spawn = |name: &str, f: Job| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| DiodeError::Io {
                    context: format!("spawn {name} thread"),
                    source: e,
                })
        };
        let (batches_tx, batches_rx) = mpsc::sync_channel::<Batch>(drain::QUEUE_BATCHES);
        let (pool_tx, pool_rx) = mpsc::channel::<Batch>();
        let s0 = shared.clone();
        let s1 = shared.clone();
        let s2 = shared.clone();
        let keys = opts.keys.clone();
        let threads: [(&str, Job); 3] = [
            (
                "tidegate-recv",
                Box::new(move || {
                    let c = &s0.c;
                    let counters = DrainCounters {
                        packets: &c.packets,
                        bytes: &c.bytes,
                        queue_full_ns: &c.queue_full_ns,
                    };
                    drain::run(socket, &s0.stop, batches_tx, pool_rx, counters)
                }),
            ),
            (
                "tidegate-decode",
                Box::new(move || Loop::new(&s1, keys, ledger).run(batches_rx, pool_tx)),
            ),
            ("tidegate-commit", Box::new(move || commit_loop(&s2))),
        ];
        // Joined in this order on stop: the decode thread finishes what the
        // drain queued, then the commit thread commits once more.
        let mut handles = Vec::new();
        for (name, f) in threads {
            match spawn(name, f) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shared.stop.store(true, Relaxed);
                    for h in handles {
                        let _ = h.join();
                    }
                    return Err(e);
                }
            }
        }
        Ok(DiodeReceiver {
            shared,
            local_addr,
            handles: Mutex::new(handles),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> ReceiverStats {
        let c = &self.shared.c;
        ReceiverStats {
            packets: c.packets.load(Relaxed),
            bytes: c.bytes.load(Relaxed),
            packets_bad: c.packets_bad.load(Relaxed),
            packets_bad_tag: c.packets_bad_tag.load(Relaxed),
            frames_ok: c.frames_ok.load(Relaxed),
            frames_bad: c.frames_bad.load(Relaxed),
            duplicates: c.duplicates.load(Relaxed),
            duplicate_packets: c.duplicate_packets.load(Relaxed),
            replayed_controls: c.replayed_controls.load(Relaxed),
            incomplete_dropped: c.incomplete_dropped.load(Relaxed),
            blocks_repaired: c.blocks_repaired.load(Relaxed),
            spool_errors: c.spool_errors.load(Relaxed),
            heartbeats: c.heartbeats.load(Relaxed),
            missing: c.missing.load(Relaxed),
            lost: c.lost.load(Relaxed),
            gap_frames: c.gap_frames.load(Relaxed),
            sent_below: c.sent_below.load(Relaxed),
            final_below: c.final_below.load(Relaxed),
            last_heartbeat_ns: c.last_heartbeat_ns.load(Relaxed),
            queue_full_ms: c.queue_full_ns.load(Relaxed) / 1_000_000,
        }
    }

    /// Seq ranges [first, last] the sender sent that have not arrived (yet).
    pub fn missing(&self) -> Vec<(u64, u64)> {
        self.shared
            .missing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stop the threads; the decode thread handles what is already queued and
    /// the commit thread commits once more on its way out.
    pub fn stop(&self) {
        self.shared.stop.store(true, Relaxed);
        let handles: Vec<_> = self
            .handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for h in handles {
            let _ = h.join();
        }
    }
}

impl Drop for DiodeReceiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Frames stored after the ledger was last saved are received too.
fn resync_ledger(spool: &Spool, ledger: &mut Ledger) -> Result<(), DiodeError> {
    let mut at = ledger.spool_lsn;
    loop {
        let frames = spool.read(at, 256)?;
        if frames.is_empty() {
            break;
        }
        for f in &frames {
            if let Ok(h) = frame::parse_header(f) {
                if h.session_id != ledger.id {
                    ledger.on_frame(h.seq, h.t_first_ns, h.t_last_ns);
                }
            }
        }
        at += frames.len() as u64;
    }
    ledger.spool_lsn = at;
    Ok(())
}

/// A GAP frame payload (msgpack map, docs/format.md) for a lost seq range.
fn gap_payload(l: &Lost) -> Vec<u8> {
    let mut p = vec![0x86];
    let key = |p: &mut Vec<u8>, k: &str| {
        p.push(0xa0 | k.len() as u8);
        p.extend_from_slice(k.as_bytes());
    };
    key(&mut p, "reason");
    key(&mut p, "link_loss");
    key(&mut p, "tags");
    p.push(0x90);
    for (k, v) in [("t_first_ns", l.t_first_ns), ("t_last_ns", l.t_last_ns)] {
        key(&mut p, k);
        p.push(0xd3);
        p.extend_from_slice(&v.to_be_bytes());
    }
    for (k, v) in [("seq_first", l.seq_first), ("seq_last", l.seq_last)] {
        key(&mut p, k);
        p.push(0xcf);
        p.extend_from_slice(&v.to_be_bytes());
    }
    p
}

/// A decoded object waiting for the objects before it (in-order delivery).
struct Held {
    count: u16,
    object: Vec<u8>,
    since: Instant,
}

struct Loop<'a> {
    s: &'a Shared,
    /// Next seq to store; objects after a hole wait up to HOLD for it.
    next: Option<u64>,
    held: std::collections::BTreeMap<u64, Held>,
    held_bytes: usize,
    started: bool,
    keys: LinkKeys,
    ledger: Ledger,
    reasm: Reassembler,
    counters: HashMap<u64, u64>,
    site_id: u32,
}

impl<'a> Loop<'a> {
    fn new(s: &'a Shared, keys: LinkKeys, ledger: Ledger) -> Self {
        Loop {
            s,
            next: None,
            held: Default::default(),
            held_bytes: 0,
            started: false,
            keys,
            ledger,
            reasm: Reassembler::default(),
            counters: HashMap::new(),
            site_id: 0,
        }
    }

    /// Handle the drain's batches until it hangs up. Timers run on the
    /// batches' receive time, so a backlog in the queue does not make the
    /// ledger or the reassembler judge packets late that arrived in time.
    fn run(mut self, batches: mpsc::Receiver<Batch>, pool: mpsc::Sender<Batch>) {
        let mut clock = Instant::now();
        let mut next_tick = clock;
        let mut next_expire = clock + EXPIRE_EVERY;
        let mut next_save = clock + SAVE_EVERY;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let batch = match batches.recv_timeout(wait) {
                Ok(b) => Some(b),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            // The queue is empty on a timeout: real time is the batch time.
            clock = clock.max(batch.as_ref().map_or_else(Instant::now, |b| b.at));
            let now = clock;
            if now >= next_tick {
                self.tick(now);
                next_tick = now + TICK_EVERY;
            }
            if now >= next_expire {
                self.reasm.expire(now);
                next_expire = now + EXPIRE_EVERY;
            }
            if now >= next_save {
                self.save();
                next_save = now + SAVE_EVERY;
            }
            let Some(batch) = batch else { continue };
            for pkt in batch.packets() {
                self.handle(pkt, now);
            }
            let _ = pool.send(batch); // the drain reuses its buffers
            self.s
                .c
                .incomplete_dropped
                .store(self.reasm.incomplete_dropped, Relaxed);
            self.s
                .c
                .blocks_repaired
                .store(self.reasm.blocks_repaired, Relaxed);
        }
        let now = Instant::now().max(clock);
        self.release(now, true);
        self.tick(now);
        self.save();
    }

    fn handle(&mut self, pkt: &[u8], now: Instant) {
        let c = &self.s.c;
        match packet::parse(pkt, &self.keys) {
            Err(PacketError::BadTag) => {
                c.packets_bad.fetch_add(1, Relaxed);
                c.packets_bad_tag.fetch_add(1, Relaxed);
            }
            Err(_) => {
                c.packets_bad.fetch_add(1, Relaxed);
            }
            Ok(Packet::Symbol(h, data)) => {
                if self.ledger.done_range(h.first_seq, h.frame_count as u64) {
                    c.duplicate_packets.fetch_add(1, Relaxed);
                    return;
                }
                if !self.started {
                    // Until the first delivery, the lowest seq seen is where order starts.
                    self.next = Some(self.next.map_or(h.first_seq, |n| n.min(h.first_seq)));
                }
                match self.reasm.push(&h, data, now) {
                    Ok(Some(object)) => self.hold(h.first_seq, h.frame_count, object, now),
                    Ok(None) => {}
                    Err(Push::Duplicate) => {
                        c.duplicate_packets.fetch_add(1, Relaxed);
                    }
                    Err(Push::NoMemory | Push::Decode(_)) => {
                        c.packets_bad.fetch_add(1, Relaxed);
                    }
                }
            }
            Ok(Packet::Heartbeat(ctl)) | Ok(Packet::Manifest(ctl)) => self.control(&ctl, now),
        }
    }

    fn control(&mut self, ctl: &Control, now: Instant) {
        let c = &self.s.c;
        let last = self.counters.get(&ctl.link_session).copied().unwrap_or(0);
        if ctl.counter <= last {
            c.replayed_controls.fetch_add(1, Relaxed);
            return;
        }
        if self.counters.len() >= SESSIONS_KEPT && !self.counters.contains_key(&ctl.link_session) {
            self.counters.clear(); // old sessions: their replays only repeat old claims
        }
        self.counters.insert(ctl.link_session, ctl.counter);
        c.heartbeats.fetch_add(1, Relaxed);
        c.last_heartbeat_ns.store(ctl.time_ns, Relaxed);
        self.site_id = ctl.site_id;
        let sent = ctl
            .ranges
            .iter()
            .map(|r| r.1)
            .max()
            .unwrap_or(0)
            .max(ctl.sent_below);
        self.ledger.on_control(sent, ctl.final_below, now);
    }

    /// Store objects in seq order: one after a hole waits up to HOLD (the
    /// interleaving finishes small objects first; META must precede the DATA
    /// that uses it), then goes ahead; a late object is stored when it comes.
    fn hold(&mut self, first: u64, count: u16, object: Vec<u8>, now: Instant) {
        self.started = true;
        let next = *self.next.get_or_insert(first);
        if first <= next {
            self.deliver(object, count);
            self.next = Some(next.max(first + count as u64));
            self.release(now, false);
            return;
        }
        self.held_bytes += object.len();
        self.held.insert(
            first,
            Held {
                count,
                object,
                since: now,
            },
        );
        self.release(now, false);
    }

    /// Deliver held objects that are next in line, waited long enough, or
    /// exceed the memory cap (`all`: everything, on stop).
    fn release(&mut self, now: Instant, all: bool) {
        // Everything up to the newest object that has waited long enough goes.
        let force_upto = if all {
            u64::MAX
        } else {
            self.held
                .iter()
                .filter(|(_, h)| now.saturating_duration_since(h.since) >= HOLD)
                .map(|(&k, _)| k)
                .max()
                .unwrap_or(0)
        };
        while let Some((&first, _)) = self.held.iter().next() {
            let next = self.next.unwrap_or(first);
            let over = self.held_bytes > HOLD_BYTES;
            if first > next && first > force_upto && !over {
                break;
            }
            let h = self.held.remove(&first).expect("present");
            self.held_bytes -= h.object.len();
            self.deliver(h.object, h.count);
            self.next = Some(next.max(first + h.count as u64));
        }
    }

    /// Check the object's tag, then store each of its frames.
    fn deliver(&mut self, object: Vec<u8>, frame_count: u16) {
        let c = &self.s.c;
        let cut = object.len() - FRAME_TAG_LEN;
        if !tags_equal(&self.keys.frame_tag(&object[..cut]), &object[cut..]) {
            c.frames_bad.fetch_add(frame_count as u64, Relaxed);
            return;
        }
        let mut rest = &object[..cut];
        for _ in 0..frame_count {
            match frame::parse_prefix(rest) {
                Ok((f, len)) => {
                    self.store(&rest[..len], f.header);
                    rest = &rest[len..];
                }
                Err(_) => {
                    c.frames_bad.fetch_add(1, Relaxed);
                    return;
                }
            }
        }
        if !rest.is_empty() {
            c.frames_bad.fetch_add(1, Relaxed);
        }
    }

    fn store(&mut self, frame: &[u8], header: frame::Header) {
        let c = &self.s.c;
        match self.s.spool.append_frame(frame) {
            Ok(true) => c.frames_ok.fetch_add(1, Relaxed),
            Ok(false) => c.duplicates.fetch_add(1, Relaxed),
            Err(SpoolError::Frame(_)) => {
                c.frames_bad.fetch_add(1, Relaxed);
                return;
            }
            Err(e) => {
                if c.spool_errors.fetch_add(1, Relaxed) == 0 {
                    eprintln!("tidegate receiver: cannot store frame: {e}");
                }
                return;
            }
        };
        self.ledger
            .on_frame(header.seq, header.t_first_ns, header.t_last_ns);
    }

    fn tick(&mut self, now: Instant) {
        // Held objects are received: store them before the ledger judges loss.
        let maturing = self.ledger.maturing(now);
        self.release(now, maturing);
        let lost = self.ledger.tick(now);
        let c = &self.s.c;
        for l in &lost {
            let spec = FrameSpec {
                kind: Kind::Gap,
                site_id: self.site_id,
                session_id: self.ledger.id,
                seq: l.gap_seq,
                t_first_ns: l.t_first_ns,
                t_last_ns: l.t_last_ns,
            };
            let stored = frame::build(&spec, &gap_payload(l))
                .map_err(|e| e.to_string())
                .and_then(|f| self.s.spool.append_frame(&f).map_err(|e| e.to_string()));
            match stored {
                Ok(_) => {
                    c.gap_frames.fetch_add(1, Relaxed);
                    c.lost.fetch_add(l.seq_last - l.seq_first + 1, Relaxed);
                }
                Err(e) => {
                    c.spool_errors.fetch_add(1, Relaxed);
                    eprintln!("tidegate receiver: cannot store GAP frame: {e}");
                }
            }
        }
        if !lost.is_empty() {
            self.save(); // GAP frames durable before the ledger says they were written
        }
        let missing = self.ledger.missing();
        c.missing
            .store(missing.iter().map(|(a, b)| b - a + 1).sum(), Relaxed);
        c.sent_below.store(self.ledger.sent_below(), Relaxed);
        c.final_below.store(self.ledger.final_below(), Relaxed);
        *self.s.missing.lock().unwrap_or_else(|p| p.into_inner()) = missing;
    }

    /// Commit the spool, then persist the ledger that describes it.
    fn save(&mut self) {
        if !self.ledger.dirty() {
            return;
        }
        match self.s.spool.commit() {
            Ok(durable) => self.ledger.spool_lsn = durable,
            Err(SpoolError::Closed) => return,
            Err(e) => {
                eprintln!("tidegate receiver: commit failed: {e}");
                return;
            }
        }
        if let Err(e) = self.ledger.save() {
            eprintln!("tidegate receiver: {e}");
        }
    }
}

fn commit_loop(s: &Shared) {
    let mut reported = false;
    loop {
        let stopping = s.stop.load(Relaxed);
        if s.spool.next_lsn() > s.spool.durable_lsn() {
            if let Err(e) = s.spool.commit() {
                if !matches!(e, SpoolError::Closed) && !reported {
                    eprintln!("tidegate receiver: commit failed: {e}");
                    reported = true;
                }
            }
        }
        if stopping {
            return;
        }
        std::thread::sleep(COMMIT_EVERY);
    }
}
