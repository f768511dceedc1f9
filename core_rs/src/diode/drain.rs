//! The receiver's socket drain: a thread that only moves datagrams from the
//! kernel (recvmmsg) into packed batches and hands them to the decode thread
//! through a bounded queue, so decoding and storing a completed window never
//! leaves packets piling up in the socket buffer (the lidi receiver design).
//!
//! The queue holds about one second of a 1 Gbit/s link (QUEUE_BYTES). When
//! it is full the drain blocks rather than drops: the kernel buffer behind it
//! then absorbs the burst, and a dropped batch would be lost for sure while a
//! blocked drain only loses packets if the kernel buffer overflows too. The
//! time spent blocked is counted (`queue_full_ms`).

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use super::udp;

/// Datagrams per recvmmsg call.
const RECV_SLOTS: usize = 64;
/// A recvmmsg slot holds the largest UDP datagram: anything the sender's MTU
/// allows arrives whole, whatever MTU the receiver was configured with.
const SLOT_BYTES: usize = 65536;
/// Packet bytes per batch; a batch is sent when full or FLUSH_AFTER after
/// its first datagram. Handing over every short read would wake the decode
/// thread for each packet of a paced link (one per 12 us at 1 Gbit/s).
pub const BATCH_BYTES: usize = 256 << 10;
const FLUSH_AFTER: Duration = Duration::from_millis(2);
/// After a short read, let datagrams gather in the kernel buffer this long
/// before the next recvmmsg: on a paced link one call per datagram (and one
/// wake-up) would cost more than the decoding; 0.5 ms of 1 Gbit/s is 42
/// datagrams, nothing for the socket buffer.
const GATHER: Duration = Duration::from_micros(500);
/// The socket's read timeout while no batch is pending (how soon a stop is seen).
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// About one second of a 1 Gbit/s link (125 MB) queued between the threads.
pub const QUEUE_BYTES: usize = 128 << 20;
pub const QUEUE_BATCHES: usize = QUEUE_BYTES / BATCH_BYTES;

/// Datagrams packed back to back; buffers are recycled between the threads.
pub struct Batch {
    data: Vec<u8>,
    ends: Vec<usize>,
    /// When the first datagram of the batch was received.
    pub at: Instant,
}

impl Batch {
    fn new() -> Self {
        Batch {
            data: Vec::with_capacity(BATCH_BYTES + SLOT_BYTES),
            ends: Vec::with_capacity(BATCH_BYTES / 1024),
            at: Instant::now(),
        }
    }

    fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn packets(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let p = &self.data[start..end];
            start = end;
            p
        })
    }
}

/// Counters the drain updates (shared with the receiver's stats).
pub struct DrainCounters<'a> {
    pub packets: &'a AtomicU64,
    pub bytes: &'a AtomicU64,
    pub queue_full_ns: &'a AtomicU64,
}

/// Queue `batch`, blocking while the queue is full (the time is counted).
/// False when the decode thread has gone.
fn hand_over(out: &SyncSender<Batch>, batch: Batch, c: &DrainCounters<'_>) -> bool {
    let batch = match out.try_send(batch) {
        Ok(()) => return true,
        Err(TrySendError::Full(b)) => b,
        Err(TrySendError::Disconnected(_)) => return false,
    };
    let t = Instant::now();
    let sent = out.send(batch).is_ok();
    c.queue_full_ns
        .fetch_add(t.elapsed().as_nanos() as u64, Relaxed);
    sent
}

/// Receive until `stop`; batches go to `out`, empty ones come back on `pool`.
/// Returns when `stop` is set or the decode thread has gone.
pub fn run(
    socket: UdpSocket,
    stop: &AtomicBool,
    out: SyncSender<Batch>,
    pool: Receiver<Batch>,
    c: DrainCounters<'_>,
) {
    let mut slots: Vec<Vec<u8>> = (0..RECV_SLOTS).map(|_| vec![0u8; SLOT_BYTES]).collect();
    let mut lens = [0usize; RECV_SLOTS];
    let take = |pool: &Receiver<Batch>| {
        pool.try_recv()
            .map(|mut b| {
                b.clear();
                b
            })
            .unwrap_or_else(|_| Batch::new())
    };
    let mut batch = take(&pool);
    let mut waiting_short = false;
    while !stop.load(Relaxed) {
        let mut timed_out = false;
        let n = match udp::recv_batch(&socket, &mut slots, &mut lens) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                timed_out = true;
                0
            }
            Err(_) => {
                // e.g. a stray ICMP error surfaced on the socket; keep listening.
                std::thread::sleep(Duration::from_millis(1));
                0
            }
        };
        if n > 0 && batch.is_empty() {
            batch.at = Instant::now();
        }
        let mut bytes = 0;
        for i in 0..n {
            // Big datagrams: a batch never exceeds BATCH_BYTES by more than
            // one, so the queue's memory stays bounded whatever arrives.
            if batch.data.len() >= BATCH_BYTES {
                let at = batch.at;
                if !hand_over(&out, batch, &c) {
                    return;
                }
                batch = take(&pool);
                batch.at = at;
            }
            batch.data.extend_from_slice(&slots[i][..lens[i]]);
            batch.ends.push(batch.data.len());
            bytes += lens[i];
        }
        c.packets.fetch_add(n as u64, Relaxed);
        c.bytes.fetch_add(bytes as u64, Relaxed);
        let due = !batch.is_empty()
            && (timed_out || batch.data.len() >= BATCH_BYTES || batch.at.elapsed() >= FLUSH_AFTER);
        if due {
            if !hand_over(&out, batch, &c) {
                return;
            }
            batch = take(&pool);
        }
        if n > 0 && n < RECV_SLOTS {
            std::thread::sleep(GATHER);
        }
        // A pending batch must not wait IDLE_WAIT for a packet that may not come.
        if waiting_short == batch.is_empty() {
            waiting_short = !batch.is_empty();
            let wait = if waiting_short {
                FLUSH_AFTER
            } else {
                IDLE_WAIT
            };
            let _ = socket.set_read_timeout(Some(wait));
        }
    }
    if !batch.is_empty() {
        let _ = out.send(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Datagrams of every size up to jumbo and beyond arrive whole and in
    /// order; a full queue blocks the drain (counted) instead of dropping.
    #[test]
    fn drain_packs_datagrams_and_blocks_when_the_queue_is_full() {
        let socket = udp::receiver_socket("127.0.0.1:0".parse().unwrap(), 16 << 20).unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = AtomicBool::new(false);
        let (packets, bytes, full_ns) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
        // One batch in flight: the second must wait for the consumer.
        let (tx, rx) = mpsc::sync_channel(1);
        let (pool_tx, pool_rx) = mpsc::channel();
        let sizes: Vec<usize> = (0..200).map(|i| [1, 1472, 9000, 60000][i % 4]).collect();
        let total: usize = sizes.iter().sum();
        std::thread::scope(|s| {
            let c = DrainCounters {
                packets: &packets,
                bytes: &bytes,
                queue_full_ns: &full_ns,
            };
            s.spawn(|| run(socket, &stop, tx, pool_rx, c));
            let out = UdpSocket::bind("127.0.0.1:0").unwrap();
            for (i, &n) in sizes.iter().enumerate() {
                let mut d = vec![(i % 251) as u8; n];
                d[0] = (i % 256) as u8;
                out.send_to(&d, addr).unwrap();
                if i % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(2)); // stay within the kernel buffer
                }
            }
            // Nothing consumed yet: the drain is blocked on the second batch.
            std::thread::sleep(Duration::from_millis(300));
            let mut got: Vec<Vec<u8>> = Vec::new();
            while got.len() < sizes.len() {
                let b = rx.recv_timeout(Duration::from_secs(10)).expect("batch");
                assert!(b.data.len() <= BATCH_BYTES + SLOT_BYTES);
                got.extend(b.packets().map(|p| p.to_vec()));
                pool_tx.send(b).unwrap();
            }
            stop.store(true, Relaxed);
            for (i, p) in got.iter().enumerate() {
                assert_eq!((p.len(), p[0]), (sizes[i], (i % 256) as u8), "datagram {i}");
            }
        });
        assert_eq!(packets.load(Relaxed), sizes.len() as u64);
        assert_eq!(bytes.load(Relaxed), total as u64);
        assert!(
            full_ns.load(Relaxed) >= 100_000_000,
            "blocked {} ns",
            full_ns.load(Relaxed)
        );
    }
}
