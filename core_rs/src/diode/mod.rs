//! The one-way link: frames -> authenticated FEC symbols in UDP packets
//! (sender) and back (receiver).
//! The sender never reads from its socket; the receiver never sends.

use std::net::{SocketAddr, ToSocketAddrs};

use thiserror::Error;

use crate::spool::SpoolError;

pub mod auth;
mod drain;
pub mod fec;
pub mod ledger;
pub mod pacing;
pub mod packet;
pub mod reassembly;
pub mod receiver;
pub mod sender;
pub mod udp;

#[cfg(test)]
mod relay;
#[cfg(test)]
mod tests;

pub use auth::LinkKeys;
pub use receiver::{DiodeReceiver, ReceiverOptions, ReceiverStats};
pub use sender::{DiodeSender, SenderOptions, SenderStats};

#[derive(Debug, Error)]
pub enum DiodeError {
    #[error("diode: {0}")]
    Config(String),
    #[error("diode: {context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// Resolve "host:port" to one socket address.
pub fn resolve(addr: &str) -> Result<SocketAddr, DiodeError> {
    addr.to_socket_addrs()
        .map_err(|e| DiodeError::Config(format!("cannot resolve {addr:?}: {e}")))?
        .next()
        .ok_or_else(|| DiodeError::Config(format!("{addr:?} resolves to no address")))
}
