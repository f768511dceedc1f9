//! The pacer thread: takes sealed packets from the encoder's queue, spends
//! the token bucket and sends them with sendmmsg; between bursts it sends
//! HEARTBEAT and MANIFEST packets. It owns what the link has been told: the
//! cursor (moved when a window's last packet is out), final_below and the
//! manifest history.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{sleep, Done, Kind, Msg, Reporter, SenderOptions, Shared, BURST_PACKETS};
use crate::diode::pacing::TokenBucket;
use crate::diode::packet::{self, Control};
use crate::diode::udp;

const MANIFEST_HISTORY: Duration = Duration::from_secs(15 * 60);
/// Lateness the token bucket makes up for: a wake-up or a preemption later
/// than this costs link time. Sleep overshoot (50-100 us) and a sendmmsg of
/// one burst fit easily; a loaded box's scheduler can take a few ms.
const PACE_SLACK: Duration = Duration::from_millis(2);
/// Longest wait for the next burst before looking at the clock and the stop flag.
const POLL: Duration = Duration::from_millis(20);

pub(super) struct Pacer<'a> {
    s: &'a Shared,
    sock: UdpSocket,
    opts: SenderOptions,
    bucket: TokenBucket,
    free: Sender<Vec<Vec<u8>>>,
    cursor: u64,
    floor: u64,
    control_buf: Vec<u8>,
    counter: u64,
    next_hb: Instant,
    next_manifest: Instant,
    history: VecDeque<(Instant, u64, u64)>,
    log: Reporter,
}

/// The bucket's depth: one sendmmsg batch, or PACE_SLACK of link time if
/// more (2 ms at 1 Gbit/s = 250 kB, nothing for a 64 MiB receive buffer).
fn burst_bytes(opts: &SenderOptions) -> usize {
    let slack = opts.rate_bps as f64 / 8.0 * PACE_SLACK.as_secs_f64();
    (BURST_PACKETS * opts.mtu).max(slack as usize)
}

impl<'a> Pacer<'a> {
    pub(super) fn new(
        s: &'a Shared,
        sock: UdpSocket,
        opts: SenderOptions,
        free: Sender<Vec<Vec<u8>>>,
    ) -> Self {
        let now = Instant::now();
        Pacer {
            s,
            sock,
            bucket: TokenBucket::new(opts.rate_bps, burst_bytes(&opts)),
            opts,
            free,
            cursor: s.cursor.load(Relaxed),
            floor: u64::MAX,
            control_buf: Vec::new(),
            counter: 0,
            next_hb: now,
            next_manifest: now,
            history: VecDeque::new(),
            log: Reporter::default(),
        }
    }

    /// Until stopped or the encoder has ended (spool closed).
    pub(super) fn run(mut self, queue: Receiver<Msg>) {
        while !self.s.stop.load(Relaxed) {
            self.control_if_due();
            let wait = self
                .next_hb
                .min(self.next_manifest)
                .saturating_duration_since(Instant::now())
                .min(POLL);
            match queue.recv_timeout(wait) {
                Ok(Msg::Burst(burst)) => {
                    if !self.send_paced(&burst) {
                        break;
                    }
                    let _ = self.free.send(burst);
                }
                Ok(Msg::Done(done)) => self.apply(done),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // A last HEARTBEAT: the receiver learns at once where this session
        // stopped (what will not come), instead of waiting for a restart.
        self.next_hb = Instant::now();
        self.control_if_due();
    }

    /// A window's packets are all out: account for it.
    fn apply(&mut self, done: Done) {
        let s = self.s;
        match done.kind {
            Kind::Live { next, runs } => {
                s.frames_sent.fetch_add(done.frames, Relaxed);
                let now = Instant::now();
                self.history
                    .extend(runs.into_iter().map(|(a, b)| (now, a, b)));
                self.cursor = self.cursor.max(next);
                s.cursor.store(self.cursor, Relaxed);
            }
            Kind::Resend => {
                s.resent_frames.fetch_add(done.frames, Relaxed);
                s.resend_inflight.fetch_sub(1, Relaxed);
            }
            Kind::Carousel => {
                s.carousel_frames.fetch_add(done.frames, Relaxed);
            }
        }
        self.floor = done.floor;
        self.update_final();
    }

    fn update_final(&mut self) {
        self.s
            .final_below
            .store(self.floor.min(self.cursor), Relaxed);
        let horizon = Instant::now().checked_sub(MANIFEST_HISTORY);
        while let (Some(h), Some(&(t, _, _))) = (horizon, self.history.front()) {
            if t >= h {
                break;
            }
            self.history.pop_front();
        }
    }

    /// Pace and send one burst. False when stopped while waiting.
    fn send_paced(&mut self, burst: &[Vec<u8>]) -> bool {
        let wire: usize = burst
            .iter()
            .map(|p| p.len() + packet::IP_UDP_OVERHEAD)
            .sum();
        let wait = self.bucket.take(wire, Instant::now());
        if !wait.is_zero() && !sleep(&self.s.stop, wait) {
            return false;
        }
        let pkts: Vec<&[u8]> = burst.iter().map(|b| b.as_slice()).collect();
        self.send(&pkts);
        true
    }

    fn control_if_due(&mut self) {
        let now = Instant::now();
        if now < self.next_hb && now < self.next_manifest {
            return;
        }
        let manifest = now >= self.next_manifest;
        self.update_final();
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
        let s = self.s;
        let c = Control {
            link_session: s.link_session,
            counter: self.counter,
            time_ns,
            site_id: s.spool.site_id(),
            sent_below: self.cursor,
            final_below: s.final_below.load(Relaxed),
            durable: s.spool.durable_lsn(),
            frames_sent: s.frames_sent.load(Relaxed),
            packets_sent: s.packets_sent.load(Relaxed),
            send_errors: s.send_errors.load(Relaxed),
            rate_bps: self.opts.rate_bps,
            ranges,
        };
        let mut buf = std::mem::take(&mut self.control_buf);
        packet::write_control(&c, manifest, &self.opts.keys, &mut buf);
        self.send(&[&buf]);
        self.control_buf = buf;
        s.heartbeats.fetch_add(1, Relaxed);
        if manifest {
            self.next_manifest = now + self.opts.manifest;
        } else {
            self.next_hb = (self.next_hb + self.opts.heartbeat).max(now);
        }
    }

    /// Send packets; transient kernel back-pressure is retried briefly,
    /// anything else is a lost packet (no back channel), counted.
    fn send(&mut self, pkts: &[&[u8]]) {
        let s = self.s;
        let mut at = 0;
        let mut retries = 0;
        while at < pkts.len() {
            let (n, err) = udp::send_batch(&self.sock, &pkts[at..]);
            let bytes: usize = pkts[at..at + n].iter().map(|p| p.len()).sum();
            s.packets_sent.fetch_add(n as u64, Relaxed);
            s.bytes_sent.fetch_add(bytes as u64, Relaxed);
            at += n;
            let Some(e) = err else { break };
            match e.kind() {
                // An ICMP error from an earlier packet (receiver down): not this packet's fault.
                ErrorKind::ConnectionRefused => {}
                ErrorKind::WouldBlock | ErrorKind::Interrupted => {}
                _ if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                _ => {
                    s.send_errors.fetch_add(1, Relaxed);
                    self.log.report(format!("send: {e}"));
                    at += 1;
                    continue;
                }
            }
            retries += 1;
            if retries > 200 {
                s.send_errors.fetch_add((pkts.len() - at) as u64, Relaxed);
                return;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}
