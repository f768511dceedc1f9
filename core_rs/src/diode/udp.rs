//! UDP plumbing: batched send (sendmmsg) on a connected, read-shut socket,
//! batched receive (recvmmsg), and socket buffers sized from the protocol
//! with a warning when the kernel clamps them.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

use super::DiodeError;

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> DiodeError {
    let context = context.into();
    move |source| DiodeError::Io { context, source }
}

/// Ask for `bytes` of socket buffer; past the sysctl limit try the FORCE
/// variant (needs CAP_NET_ADMIN); warn once if the kernel still clamps it.
pub fn size_buffer(sock: &Socket, bytes: usize, recv: bool, who: &str) {
    let (opt, force, sysctl) = if recv {
        (libc::SO_RCVBUF, libc::SO_RCVBUFFORCE, "net.core.rmem_max")
    } else {
        (libc::SO_SNDBUF, libc::SO_SNDBUFFORCE, "net.core.wmem_max")
    };
    let get = || {
        if recv {
            sock.recv_buffer_size()
        } else {
            sock.send_buffer_size()
        }
        .unwrap_or(0)
    };
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    for o in [opt, force] {
        // SAFETY: a valid fd and a pointer/length to a live c_int.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                o,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        // Linux reports twice the requested size (bookkeeping overhead).
        if get() >= 2 * bytes {
            return;
        }
    }
    eprintln!(
        "tidegate {who}: {} clamped to {} bytes, asked for {bytes} (raise {sysctl}); bursts may be lost",
        if recv { "SO_RCVBUF" } else { "SO_SNDBUF" },
        get() / 2
    );
}

/// The sender's socket: connected to the target (no destination per packet,
/// the kernel drops anything from elsewhere) and shut down for reading.
pub fn sender_socket(target: SocketAddr, send_buffer: usize) -> Result<UdpSocket, DiodeError> {
    let sock = Socket::new(
        Domain::for_address(target),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .map_err(io_err("create UDP socket"))?;
    size_buffer(&sock, send_buffer, false, "sender");
    sock.connect(&target.into())
        .map_err(io_err(format!("connect UDP socket to {target}")))?;
    sock.shutdown(std::net::Shutdown::Read)
        .map_err(io_err("shut the UDP socket for reading"))?;
    Ok(sock.into())
}

pub fn receiver_socket(addr: SocketAddr, recv_buffer: usize) -> Result<UdpSocket, DiodeError> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(io_err("create UDP socket"))?;
    size_buffer(&sock, recv_buffer, true, "receiver");
    sock.bind(&addr.into())
        .map_err(io_err(format!("bind UDP {addr}")))?;
    sock.set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .map_err(io_err("set read timeout"))?;
    Ok(sock.into())
}

/// Send every packet of `pkts` with as few sendmmsg calls as possible.
/// Returns how many went out; the rest failed with the returned error.
pub fn send_batch(sock: &UdpSocket, pkts: &[&[u8]]) -> (usize, Option<io::Error>) {
    let mut iov: Vec<libc::iovec> = pkts
        .iter()
        .map(|p| libc::iovec {
            iov_base: p.as_ptr() as *mut _,
            iov_len: p.len(),
        })
        .collect();
    // SAFETY: zeroed mmsghdr is valid (null name, no control).
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = v as *mut libc::iovec;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let mut done = 0;
    while done < msgs.len() {
        let n = (msgs.len() - done).min(1024);
        // SAFETY: msgs[done..done+n] are initialised and point at live iovecs/buffers.
        let r = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs[done..].as_mut_ptr(), n as u32, 0) };
        if r < 0 {
            return (done, Some(io::Error::last_os_error()));
        }
        done += r as usize;
    }
    (done, None)
}

/// Receive up to `bufs.len()` datagrams (waits for the first, up to the read
/// timeout); `lens` gets their lengths. Returns how many arrived.
pub fn recv_batch(sock: &UdpSocket, bufs: &mut [Vec<u8>], lens: &mut [usize]) -> io::Result<usize> {
    let mut iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            // SAFETY: zeroed mmsghdr is valid (null name, no control).
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = v as *mut libc::iovec;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    // SAFETY: msgs point at live iovecs over live buffers.
    let r = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            msgs.as_mut_ptr(),
            msgs.len() as u32,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    for (i, m) in msgs.iter().take(r as usize).enumerate() {
        // A datagram larger than the buffer is truncated: mark it so it fails parsing.
        lens[i] = if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            0
        } else {
            m.msg_len as usize
        };
    }
    Ok(r as usize)
}
