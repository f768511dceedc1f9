//! Segment files: `seg-<first_lsn, 20 digits>.tgs`, each a run of verbatim frames.
//! Naming by first LSN keeps the directory listing in LSN order and lets
//! retention (issue 5) drop the oldest whole files without rewriting anything.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use crate::frame::{self, FrameError};

const PREFIX: &str = "seg-";
const SUFFIX: &str = ".tgs";

pub fn segment_name(first_lsn: u64) -> String {
    format!("{PREFIX}{first_lsn:020}{SUFFIX}")
}

/// First LSN from a segment file name, or None for any other file.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Where one record lives, plus its dedupe key (kept so dropping a segment
/// can also forget its keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLoc {
    pub offset: u64,
    pub len: u32,
    pub session_id: u64,
    pub seq: u64,
}

#[derive(Debug)]
pub struct Segment {
    pub first_lsn: u64,
    pub path: PathBuf,
    /// Bytes in the segment including those still buffered in memory.
    pub len: u64,
    pub records: Vec<RecordLoc>,
    /// Lazily opened read handle shared with readers (they pread without the lock).
    pub read_fh: Option<Arc<File>>,
}

impl Segment {
    pub fn end_lsn(&self) -> u64 {
        self.first_lsn + self.records.len() as u64
    }
}

/// Result of scanning a segment's bytes from offset 0.
#[derive(Debug)]
pub struct Scan {
    pub records: Vec<RecordLoc>,
    /// Length of the valid prefix (end of the last good frame).
    pub valid_len: u64,
    /// The first bad frame, if the scan stopped before the end.
    pub error: Option<(u64, FrameError)>,
}

pub fn scan(data: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut off = 0usize;
    while off < data.len() {
        match frame::parse_prefix(&data[off..]) {
            Ok((f, len)) => {
                records.push(RecordLoc {
                    offset: off as u64,
                    len: len as u32,
                    session_id: f.header.session_id,
                    seq: f.header.seq,
                });
                off += len;
            }
            Err(e) => {
                return Scan {
                    records,
                    valid_len: off as u64,
                    error: Some((off as u64, e)),
                }
            }
        }
    }
    Scan {
        records,
        valid_len: off as u64,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(segment_name(0), "seg-00000000000000000000.tgs");
        assert_eq!(segment_name(u64::MAX), "seg-18446744073709551615.tgs");
        assert_eq!(parse_segment_name("seg-00000000000000000042.tgs"), Some(42));
        assert_eq!(parse_segment_name("seg-42.tgs"), None);
        assert_eq!(parse_segment_name("seg-0000000000000000004x.tgs"), None);
        assert_eq!(parse_segment_name("seg-99999999999999999999.tgs"), None);
        assert_eq!(parse_segment_name("cursors"), None);
    }
}
