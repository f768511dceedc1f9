//! A lossy UDP relay for tests: forwards datagrams from its port to a target
//! with seeded drop, duplication, reordering and blackouts.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::testutil::Rng;

#[derive(Clone, Copy, Default)]
pub struct Impairment {
    /// Per-packet drop probability in parts per million.
    pub drop_ppm: u64,
    pub dup_ppm: u64,
    /// Probability that a packet is held back and sent after the next few.
    pub reorder_ppm: u64,
    pub seed: u64,
    pub record: bool,
}

pub struct Relay {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    pub blackout_on: Arc<AtomicBool>,
    pub forwarded: Arc<AtomicU64>,
    pub dropped: Arc<AtomicU64>,
    /// Every datagram that arrived, if recording (for replay tests).
    pub recorded: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    handle: Option<JoinHandle<()>>,
}

impl Relay {
    pub fn start(target: SocketAddr, imp: Impairment) -> Relay {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let sock2 = socket2::Socket::from(sock);
        let _ = sock2.set_recv_buffer_size(32 << 20);
        let sock: UdpSocket = sock2.into();
        let addr = sock.local_addr().unwrap();
        let out = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let blackout = Arc::new(AtomicBool::new(false));
        let forwarded = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let recorded = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (st, bl, fw, dr, rec) = (
            stop.clone(),
            blackout.clone(),
            forwarded.clone(),
            dropped.clone(),
            recorded.clone(),
        );
        let handle = std::thread::spawn(move || {
            let mut rng = Rng::new(imp.seed);
            let mut buf = vec![0u8; 65536];
            let mut held: Vec<(Vec<u8>, u32)> = Vec::new();
            let roll = |rng: &mut Rng, ppm: u64| ppm > 0 && rng.below(1_000_000) < ppm;
            while !st.load(Relaxed) {
                let n = match sock.recv_from(&mut buf) {
                    Ok((n, _)) => n,
                    Err(_) => continue,
                };
                if imp.record {
                    rec.lock().unwrap().push(buf[..n].to_vec());
                }
                if bl.load(Relaxed) || roll(&mut rng, imp.drop_ppm) {
                    dr.fetch_add(1, Relaxed);
                    continue;
                }
                let p = &buf[..n];
                if roll(&mut rng, imp.reorder_ppm) {
                    held.push((p.to_vec(), 1 + rng.below(20) as u32));
                } else {
                    let _ = out.send_to(p, target);
                    fw.fetch_add(1, Relaxed);
                    if roll(&mut rng, imp.dup_ppm) {
                        let _ = out.send_to(p, target);
                    }
                }
                held.retain_mut(|(q, left)| {
                    *left -= 1;
                    if *left == 0 {
                        let _ = out.send_to(q, target);
                        fw.fetch_add(1, Relaxed);
                    }
                    *left > 0
                });
            }
        });
        Relay {
            addr,
            stop,
            blackout_on: blackout,
            forwarded,
            dropped,
            recorded,
            handle: Some(handle),
        }
    }

    /// Drop everything for `d` (blocks the caller).
    pub fn blackout(&self, d: Duration) {
        self.blackout_on.store(true, Relaxed);
        let end = Instant::now() + d;
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.blackout_on.store(false, Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
