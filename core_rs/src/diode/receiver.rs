//! Diode receiver: binds UDP, reassembles frames, verifies them and stores
//! them in the IT spool. It never sends. A second thread commits the spool
//! every 100 ms while frames arrive, so fsync never stalls the receive loop.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::reassembly::{Push, Reassembler};
use super::{packet, resolve, DiodeError};
use crate::spool::{Spool, SpoolError};

pub const RECV_BUFFER: usize = 8 << 20;
const READ_TIMEOUT: Duration = Duration::from_millis(100);
const COMMIT_EVERY: Duration = Duration::from_millis(100);
const EXPIRE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    pub packets: u64,
    pub bytes: u64,
    pub packets_bad: u64,
    pub frames_ok: u64,
    pub frames_bad: u64,
    pub duplicates: u64,
    pub incomplete_dropped: u64,
    pub spool_errors: u64,
}

impl ReceiverStats {
    pub fn items(&self) -> [(&'static str, u64); 8] {
        [
            ("packets", self.packets),
            ("bytes", self.bytes),
            ("packets_bad", self.packets_bad),
            ("frames_ok", self.frames_ok),
            ("frames_bad", self.frames_bad),
            ("duplicates", self.duplicates),
            ("incomplete_dropped", self.incomplete_dropped),
            ("spool_errors", self.spool_errors),
        ]
    }
}

#[derive(Default)]
struct Counters {
    packets: AtomicU64,
    bytes: AtomicU64,
    packets_bad: AtomicU64,
    frames_ok: AtomicU64,
    frames_bad: AtomicU64,
    duplicates: AtomicU64,
    incomplete_dropped: AtomicU64,
    spool_errors: AtomicU64,
}

struct Shared {
    spool: Arc<Spool>,
    stop: AtomicBool,
    c: Counters,
}

pub struct DiodeReceiver {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

fn bind(addr: SocketAddr) -> Result<UdpSocket, DiodeError> {
    let io = |context: String| move |e| DiodeError::Io { context, source: e };
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(io("create UDP socket".into()))?;
    // A diode cannot ask for a resend: a large kernel buffer absorbs bursts.
    set_recv_buffer(&sock);
    sock.bind(&addr.into())
        .map_err(io(format!("bind UDP {addr}")))?;
    sock.set_read_timeout(Some(READ_TIMEOUT))
        .map_err(io("set read timeout".into()))?;
    Ok(sock.into())
}

/// Ask for RECV_BUFFER; past net.core.rmem_max try SO_RCVBUFFORCE (needs
/// CAP_NET_ADMIN), and warn once if the kernel still clamps it.
fn set_recv_buffer(sock: &Socket) {
    let _ = sock.set_recv_buffer_size(RECV_BUFFER);
    // Linux reports twice the requested size (the doubling covers bookkeeping).
    let want = if cfg!(target_os = "linux") {
        2 * RECV_BUFFER
    } else {
        RECV_BUFFER
    };
    let got = || sock.recv_buffer_size().unwrap_or(0);
    #[cfg(target_os = "linux")]
    if got() < want {
        use std::os::fd::AsRawFd;
        let v = RECV_BUFFER as libc::c_int;
        // SAFETY: a valid fd and a pointer/length to a live c_int.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    let have = got();
    if have < want {
        eprintln!(
            "tidegate receiver: SO_RCVBUF clamped to {} bytes, asked for {RECV_BUFFER} (raise net.core.rmem_max); bursts may be lost",
            if cfg!(target_os = "linux") { have / 2 } else { have }
        );
    }
}

impl DiodeReceiver {
    /// Bind `bind_addr` ("host:port"; port 0 picks one, see `local_addr`) and start.
    /// `mtu` is validated like the sender's; datagrams of any size up to 64 KiB are read.
    pub fn start(
        bind_addr: &str,
        spool: Arc<Spool>,
        mtu: usize,
    ) -> Result<DiodeReceiver, DiodeError> {
        packet::check_mtu(mtu).map_err(DiodeError::Config)?;
        let addr = resolve(bind_addr)?;
        let socket = bind(addr)?;
        let local_addr = socket.local_addr().map_err(|e| DiodeError::Io {
            context: "local_addr".into(),
            source: e,
        })?;
        let shared = Arc::new(Shared {
            spool,
            stop: AtomicBool::new(false),
            c: Counters::default(),
        });
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| DiodeError::Io {
                    context: format!("spawn {name} thread"),
                    source: e,
                })
        };
        let s1 = shared.clone();
        let recv = spawn("tidegate-recv", Box::new(move || recv_loop(&s1, socket)))?;
        let s2 = shared.clone();
        let commit = match spawn("tidegate-commit", Box::new(move || commit_loop(&s2))) {
            Ok(h) => h,
            Err(e) => {
                shared.stop.store(true, Relaxed);
                let _ = recv.join();
                return Err(e);
            }
        };
        Ok(DiodeReceiver {
            shared,
            local_addr,
            handles: Mutex::new(vec![recv, commit]),
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
            frames_ok: c.frames_ok.load(Relaxed),
            frames_bad: c.frames_bad.load(Relaxed),
            duplicates: c.duplicates.load(Relaxed),
            incomplete_dropped: c.incomplete_dropped.load(Relaxed),
            spool_errors: c.spool_errors.load(Relaxed),
        }
    }

    /// Stop both threads; the commit thread commits once more on its way out.
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

fn deliver(s: &Shared, data: &[u8]) {
    // append_frame verifies the frame (CRC included) before storing it.
    match s.spool.append_frame(data) {
        Ok(true) => s.c.frames_ok.fetch_add(1, Relaxed),
        Ok(false) => s.c.duplicates.fetch_add(1, Relaxed),
        Err(SpoolError::Frame(_)) => s.c.frames_bad.fetch_add(1, Relaxed),
        Err(e) => {
            if s.c.spool_errors.fetch_add(1, Relaxed) == 0 {
                eprintln!("tidegate receiver: cannot store frame: {e}");
            }
            0
        }
    };
}

fn recv_loop(s: &Shared, socket: UdpSocket) {
    let mut buf = vec![0u8; 65536];
    let mut reasm = Reassembler::default();
    let mut next_expire = Instant::now() + EXPIRE_EVERY;
    while !s.stop.load(Relaxed) {
        let now = Instant::now();
        if now >= next_expire {
            reasm.expire(now);
            s.c.incomplete_dropped
                .store(reasm.incomplete_dropped, Relaxed);
            next_expire = now + EXPIRE_EVERY;
        }
        let n = match socket.recv_from(&mut buf) {
            Ok((n, _from)) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => {
                // e.g. a stray ICMP error surfaced on the socket; keep listening.
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        s.c.packets.fetch_add(1, Relaxed);
        s.c.bytes.fetch_add(n as u64, Relaxed);
        let frag = match packet::parse(&buf[..n]) {
            Ok(f) => f,
            Err(_) => {
                s.c.packets_bad.fetch_add(1, Relaxed);
                continue;
            }
        };
        match reasm.push(&frag, now) {
            Ok(Some(frame)) => deliver(s, &frame),
            Ok(None) | Err(Push::Duplicate) => {}
            Err(Push::Inconsistent) => {
                s.c.packets_bad.fetch_add(1, Relaxed);
            }
        }
        s.c.incomplete_dropped
            .store(reasm.incomplete_dropped, Relaxed);
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
