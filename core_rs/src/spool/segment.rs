//! Segment files: `seg-<first_lsn, 20 digits>.tgs`, each a run of verbatim frames.
//! Naming by first LSN keeps the directory listing in LSN order and lets
//! retention drop the oldest whole files without rewriting anything.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::frame::{self, FrameError, MAGIC};

const PREFIX: &str = "seg-";
const SUFFIX: &str = ".tgs";
/// Sidecar of a segment listing its corrupt slots already reported by a GAP.
const BAD_SUFFIX: &str = ".bad";

pub fn segment_name(first_lsn: u64) -> String {
    format!("{PREFIX}{first_lsn:020}{SUFFIX}")
}

/// `seg-<first>.bad` next to `seg-<first>.tgs`.
pub fn bad_path(segment: &Path) -> PathBuf {
    segment.with_extension(&BAD_SUFFIX[1..])
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
/// can also forget its keys). `len == 0` marks a hole: an LSN whose record
/// was found corrupt on open (readers skip it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLoc {
    pub offset: u64,
    pub len: u32,
    pub session_id: u64,
    pub seq: u64,
}

impl RecordLoc {
    pub const HOLE: RecordLoc = RecordLoc {
        offset: 0,
        len: 0,
        session_id: 0,
        seq: 0,
    };
    pub fn is_hole(&self) -> bool {
        self.len == 0
    }
}

/// Time bounds that ignore the "no time" sentinel (`i64::MIN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSpan {
    pub min: i64,
    pub max: i64,
}

impl Default for TimeSpan {
    fn default() -> Self {
        TimeSpan {
            min: i64::MAX,
            max: i64::MIN,
        }
    }
}

impl TimeSpan {
    pub fn add(&mut self, t_first: i64, t_last: i64) {
        for t in [t_first, t_last] {
            if t != i64::MIN {
                self.min = self.min.min(t);
                self.max = self.max.max(t);
            }
        }
    }
    pub fn is_empty(&self) -> bool {
        self.min > self.max
    }
    pub fn overlaps(&self, t0: i64, t1: i64) -> bool {
        !self.is_empty() && self.max >= t0 && self.min <= t1
    }
    /// (first, last) for a GAP payload; `i64::MIN` when unknown.
    pub fn bounds(&self) -> (i64, i64) {
        if self.is_empty() {
            (i64::MIN, i64::MIN)
        } else {
            (self.min, self.max)
        }
    }
}

#[derive(Debug)]
pub struct Segment {
    pub first_lsn: u64,
    pub path: PathBuf,
    /// Bytes in the segment including those still buffered in memory.
    pub len: u64,
    /// One entry per LSN slot (holes included).
    pub records: Vec<RecordLoc>,
    /// Lazily opened read handle shared with readers (they pread without the lock).
    pub read_fh: Option<Arc<File>>,
    /// Frame times held, for stats and time-range lookups without disk I/O.
    pub times: TimeSpan,
    /// Wall clock of the last append (the file's mtime after a restart): the age bound.
    pub written_ns: i64,
    /// When the release cursor passed the segment's end: the retention clock.
    pub released_ns: Option<i64>,
}

impl Segment {
    pub fn end_lsn(&self) -> u64 {
        self.first_lsn + self.records.len() as u64
    }
    pub fn frames(&self) -> u64 {
        self.records.iter().filter(|r| !r.is_hole()).count() as u64
    }
}

/// A damaged run of bytes followed by a valid frame.
#[derive(Debug)]
pub struct BadRegion {
    pub offset: u64,
    pub len: u64,
    pub error: FrameError,
    /// Good records before it.
    pub before: usize,
}

/// Result of scanning a segment's bytes from offset 0.
#[derive(Debug, Default)]
pub struct Scan {
    pub records: Vec<RecordLoc>,
    /// (t_first_ns, t_last_ns) of each record.
    pub times: Vec<(i64, i64)>,
    /// Length of the valid prefix (end of the last good frame).
    pub valid_len: u64,
    /// Damage with good frames after it (skipped, not truncated).
    pub bad: Vec<BadRegion>,
    /// Damage with no good frame after it: a torn tail.
    pub error: Option<(u64, FrameError)>,
}

/// The next offset at or after `from` where a whole valid frame starts.
fn resync(data: &[u8], from: usize) -> Option<usize> {
    let mut p = from;
    while p + MAGIC.len() <= data.len() {
        let at = p + data[p..].windows(MAGIC.len()).position(|w| w == MAGIC)?;
        if frame::parse_prefix(&data[at..]).is_ok() {
            return Some(at);
        }
        p = at + 1;
    }
    None
}

/// Scan frames from offset 0. A bad frame followed (anywhere later) by a
/// CRC-valid frame is a bad region that is skipped; one with nothing valid
/// after it ends the scan as a torn tail.
pub fn scan(data: &[u8]) -> Scan {
    let mut s = Scan::default();
    let mut off = 0usize;
    while off < data.len() {
        match frame::parse_prefix(&data[off..]) {
            Ok((f, len)) => {
                s.records.push(RecordLoc {
                    offset: off as u64,
                    len: len as u32,
                    session_id: f.header.session_id,
                    seq: f.header.seq,
                });
                s.times.push((f.header.t_first_ns, f.header.t_last_ns));
                off += len;
            }
            Err(e) => match resync(data, off + 1) {
                Some(next) => {
                    s.bad.push(BadRegion {
                        offset: off as u64,
                        len: (next - off) as u64,
                        error: e,
                        before: s.records.len(),
                    });
                    off = next;
                }
                None => {
                    s.valid_len = off as u64;
                    s.error = Some((off as u64, e));
                    return s;
                }
            },
        }
    }
    s.valid_len = off as u64;
    s
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
        assert_eq!(parse_segment_name("seg-00000000000000000042.bad"), None);
        assert_eq!(parse_segment_name("cursors"), None);
        assert_eq!(
            bad_path(Path::new("/s/seg-00000000000000000042.tgs")),
            Path::new("/s/seg-00000000000000000042.bad")
        );
    }

    #[test]
    fn time_span_ignores_sentinel() {
        let mut t = TimeSpan::default();
        assert!(t.is_empty());
        assert_eq!(t.bounds(), (i64::MIN, i64::MIN));
        t.add(i64::MIN, 5);
        t.add(3, 4);
        assert_eq!(t.bounds(), (3, 5));
        assert!(t.overlaps(5, 9) && t.overlaps(0, 3) && !t.overlaps(6, 9));
    }
}
