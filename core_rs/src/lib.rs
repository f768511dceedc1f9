//! tidegate core: frames, the DATA codec, the spool, and the one-way diode link.
//! Plain Rust; the Python binding lives in `py` behind the `python` feature.

pub mod codec;
pub mod diode;
pub mod frame;
pub mod spool;

#[cfg(test)]
mod testutil;

#[cfg(feature = "python")]
mod py;
