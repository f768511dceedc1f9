//! What a spool may hold and how often it syncs (docs/spool.md).

use std::time::Duration;

use super::{Result, SpoolError, DEFAULT_SEGMENT_BYTES};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolOptions {
    /// Segment file size: the unit of fsync-on-roll and of release.
    pub segment_bytes: u64,
    /// Bound on all segment bytes (0 = unbounded). Oldest whole segments go first.
    pub max_bytes: u64,
    /// Segments last written longer ago than this are dropped, sent or not
    /// (ZERO = no age bound).
    pub max_age: Duration,
    /// Frames behind the release cursor ("sent") are kept this long after the
    /// cursor passed them, for re-sends (ZERO = until the space is needed).
    pub retain_released: Duration,
    /// Cursor whose position marks frames as consumed: dropping frames behind
    /// it is retirement, dropping frames at or after it is loss (a GAP frame).
    /// None: every dropped frame is loss.
    pub release_cursor: Option<String>,
    /// Group commit: the background committer syncs this often (ZERO = no
    /// background committer; only `commit()` syncs).
    pub commit_interval: Duration,
    /// ... and early once this many bytes are waiting (0 = time only).
    pub commit_bytes: u64,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_bytes: 0,
            max_age: Duration::ZERO,
            retain_released: Duration::ZERO,
            release_cursor: None,
            commit_interval: Duration::ZERO,
            commit_bytes: 0,
        }
    }
}

impl SpoolOptions {
    pub fn with_segment_bytes(segment_bytes: u64) -> Self {
        SpoolOptions {
            segment_bytes,
            ..Default::default()
        }
    }

    pub fn check(&self) -> Result<()> {
        if self.segment_bytes == 0 {
            return Err(SpoolError::Invalid("segment_bytes must be > 0".into()));
        }
        // The active segment is never dropped, so a bound below two segments
        // could not be kept.
        if self.max_bytes != 0 && self.max_bytes < 2 * self.segment_bytes {
            return Err(SpoolError::Invalid(format!(
                "max_bytes {} must be 0 (unbounded) or at least 2 x segment_bytes ({})",
                self.max_bytes,
                2 * self.segment_bytes
            )));
        }
        if let Some(c) = &self.release_cursor {
            super::cursor::check_name(c)?;
        }
        Ok(())
    }
}
