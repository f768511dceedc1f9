//! Counters for `stats()`: read from memory only (no disk I/O), so the TUI and
//! heartbeats may ask every second.

use std::time::Instant;

/// Appends per second, over windows of at least `WINDOW_S` seconds.
const WINDOW_S: f64 = 1.0;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    pub frames: u64,
    pub bytes: u64,
    pub segments: u64,
    pub next_lsn: u64,
    pub durable_lsn: u64,
    pub duplicates: u64,
    pub truncated_bytes: u64,
    /// Oldest LSN still held.
    pub first_lsn: u64,
    /// The byte bound (0 = unbounded) and bytes held per mille of it.
    pub capacity_bytes: u64,
    pub fill_permille: u64,
    /// Position of the release cursor and the durable frames not yet past it.
    pub released_lsn: u64,
    pub unreleased_frames: u64,
    /// Frame time range held (ns since the epoch; 0 when none or before 1970).
    pub oldest_ns: u64,
    pub newest_ns: u64,
    pub append_frames_per_s: u64,
    pub append_bytes_per_s: u64,
    pub commits: u64,
    /// Unsent frames dropped by the bounds (each named by a GAP frame).
    pub dropped_frames: u64,
    pub dropped_bytes: u64,
    pub dropped_segments: u64,
    /// Sent frames released after their retention window (no GAP needed).
    pub retired_frames: u64,
    pub retired_bytes: u64,
    pub retired_segments: u64,
    /// GAP frames the spool wrote itself.
    pub gap_frames: u64,
    /// Records found corrupt on open and skipped (LSN holes), and their bytes.
    pub corrupt_records: u64,
    pub corrupt_bytes: u64,
}

impl SpoolStats {
    pub fn items(&self) -> Vec<(&'static str, u64)> {
        let u = |v: u64| v;
        vec![
            ("frames", u(self.frames)),
            ("bytes", u(self.bytes)),
            ("segments", u(self.segments)),
            ("next_lsn", u(self.next_lsn)),
            ("durable_lsn", u(self.durable_lsn)),
            ("duplicates", u(self.duplicates)),
            ("truncated_bytes", u(self.truncated_bytes)),
            ("first_lsn", u(self.first_lsn)),
            ("capacity_bytes", u(self.capacity_bytes)),
            ("fill_permille", u(self.fill_permille)),
            ("released_lsn", u(self.released_lsn)),
            ("unreleased_frames", u(self.unreleased_frames)),
            ("oldest_ns", u(self.oldest_ns)),
            ("newest_ns", u(self.newest_ns)),
            ("append_frames_per_s", u(self.append_frames_per_s)),
            ("append_bytes_per_s", u(self.append_bytes_per_s)),
            ("commits", u(self.commits)),
            ("dropped_frames", u(self.dropped_frames)),
            ("dropped_bytes", u(self.dropped_bytes)),
            ("dropped_segments", u(self.dropped_segments)),
            ("retired_frames", u(self.retired_frames)),
            ("retired_bytes", u(self.retired_bytes)),
            ("retired_segments", u(self.retired_segments)),
            ("gap_frames", u(self.gap_frames)),
            ("corrupt_records", u(self.corrupt_records)),
            ("corrupt_bytes", u(self.corrupt_bytes)),
        ]
    }
}

/// Append counters and the rate derived from them.
#[derive(Debug)]
pub struct Rates {
    pub appended_frames: u64,
    pub appended_bytes: u64,
    at: Instant,
    frames_then: u64,
    bytes_then: u64,
    pub frames_per_s: u64,
    pub bytes_per_s: u64,
}

impl Default for Rates {
    fn default() -> Self {
        Self::new()
    }
}

impl Rates {
    pub fn new() -> Self {
        Rates {
            appended_frames: 0,
            appended_bytes: 0,
            at: Instant::now(),
            frames_then: 0,
            bytes_then: 0,
            frames_per_s: 0,
            bytes_per_s: 0,
        }
    }

    pub fn record(&mut self, bytes: u64) {
        self.appended_frames += 1;
        self.appended_bytes += bytes;
    }

    /// Refresh the rates if the window is long enough (called by stats()).
    pub fn tick(&mut self) {
        let dt = self.at.elapsed().as_secs_f64();
        if dt >= WINDOW_S {
            self.frames_per_s =
                ((self.appended_frames - self.frames_then) as f64 / dt).round() as u64;
            self.bytes_per_s = ((self.appended_bytes - self.bytes_then) as f64 / dt).round() as u64;
            self.at = Instant::now();
            self.frames_then = self.appended_frames;
            self.bytes_then = self.appended_bytes;
        }
    }
}
