//! The spool: a crash-safe, append-only log of frames in segment files.
//!
//! OT side: `append` builds frames (seq = LSN) and `commit` makes them durable;
//! the diode sender reads durable frames from a cursor. IT side: `append_frame`
//! stores received frames verbatim, dropping (session_id, seq) duplicates.
//! One internal lock; fsync and file reads happen outside it so a slow SD card
//! does not stall the other thread.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::frame::{self, FrameError, FrameSpec, Kind, HEADER_LEN};

pub mod cursor;
pub mod segment;
#[cfg(test)]
mod tests;

use segment::{RecordLoc, Segment};

pub const DEFAULT_SEGMENT_BYTES: u64 = 16 << 20;
pub const META_FILE: &str = "spool.meta";
pub const LOCK_FILE: &str = "spool.lock";
/// Buffered bytes are written to the segment file once this much piles up.
const WRITE_BUFFER: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum SpoolError {
    #[error("spool: {context}: {source}")]
    Io { context: String, source: io::Error },
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("spool: segment {segment} is corrupt at offset {offset} ({error}); only the last segment may have a torn tail")]
    Corrupt {
        segment: String,
        offset: u64,
        error: FrameError,
    },
    #[error("spool: segment {segment} starts at LSN {found}, expected {expected} (missing or extra segment)")]
    LsnGap {
        segment: String,
        found: u64,
        expected: u64,
    },
    #[error("spool: bad cursor name {0:?} (use 1-64 of A-Z a-z 0-9 _ -)")]
    BadCursorName(String),
    #[error("spool: cursor file {path} does not hold a number (got {content:?})")]
    BadCursorFile { path: String, content: String },
    #[error("spool: {0}")]
    Invalid(String),
    #[error("spool: {0} is in use by another Spool (in this or another process)")]
    Locked(String),
    #[error("spool: closed")]
    Closed,
    #[error("spool: unusable after an earlier write error ({0}); reopen it")]
    Failed(String),
}

impl SpoolError {
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        SpoolError::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, SpoolError>;

/// Counters reported by `stats()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    pub frames: u64,
    pub bytes: u64,
    pub segments: u64,
    pub next_lsn: u64,
    pub durable_lsn: u64,
    pub duplicates: u64,
    pub truncated_bytes: u64,
}

impl SpoolStats {
    pub fn items(&self) -> [(&'static str, u64); 7] {
        [
            ("frames", self.frames),
            ("bytes", self.bytes),
            ("segments", self.segments),
            ("next_lsn", self.next_lsn),
            ("durable_lsn", self.durable_lsn),
            ("duplicates", self.duplicates),
            ("truncated_bytes", self.truncated_bytes),
        ]
    }
}

struct Inner {
    segments: Vec<Segment>,
    /// Append handle of the last segment.
    active: Option<Arc<File>>,
    /// Bytes appended to the last segment but not yet written to the file.
    pending: Vec<u8>,
    next_lsn: u64,
    durable_lsn: u64,
    dedupe: HashSet<(u64, u64)>,
    frames: u64,
    bytes: u64,
    duplicates: u64,
    truncated_bytes: u64,
    closed: bool,
    failed: Option<String>,
}

pub struct Spool {
    dir: PathBuf,
    site_id: u32,
    session_id: u64,
    segment_bytes: u64,
    inner: Mutex<Inner>,
    /// Serialises commits (the fsync runs outside `inner`).
    commit_lock: Mutex<()>,
    cursor_lock: Mutex<()>,
    /// Holds an exclusive flock on spool.lock: two writers (or a writer and a
    /// torn-tail truncation on open) on one spool would corrupt it.
    lock_file: Mutex<Option<File>>,
}

fn lock_dir(dir: &Path) -> Result<File> {
    use std::os::fd::AsRawFd;
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SpoolError::io(format!("open {}", path.display()), e))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            return Err(SpoolError::Locked(dir.display().to_string()));
        }
        return Err(SpoolError::io(format!("lock {}", path.display()), e));
    }
    Ok(f)
}

/// A random non-zero session id.
pub fn random_session_id() -> u64 {
    loop {
        if let Ok(v) = getrandom::u64() {
            if v != 0 {
                return v;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not make the spool unusable for the other thread.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl Inner {
    fn check(&self) -> Result<()> {
        if self.closed {
            return Err(SpoolError::Closed);
        }
        if let Some(f) = &self.failed {
            return Err(SpoolError::Failed(f.clone()));
        }
        Ok(())
    }

    /// Write buffered bytes to the active file; any failure poisons the spool
    /// (the file's tail is unknown until a reopen rescans it).
    fn write_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let file = self.active.as_ref().ok_or(SpoolError::Closed)?;
        let seg = self.segments.last().expect("a spool always has a segment");
        if let Err(e) = (&**file).write_all(&self.pending) {
            let err = SpoolError::io(format!("write {}", seg.path.display()), e);
            self.failed = Some(err.to_string());
            return Err(err);
        }
        self.pending.clear();
        Ok(())
    }

    fn last(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a spool always has a segment")
    }
}

impl Spool {
    /// Open (or create) the spool in `dir`. A torn or corrupt tail of the last
    /// segment is truncated; corruption anywhere else is an error.
    pub fn open(
        dir: impl AsRef<Path>,
        site_id: u32,
        session_id: Option<u64>,
        segment_bytes: u64,
    ) -> Result<Spool> {
        let dir = dir.as_ref().to_path_buf();
        if segment_bytes == 0 {
            return Err(SpoolError::Invalid("segment_bytes must be > 0".into()));
        }
        let session_id = match session_id {
            Some(0) => return Err(SpoolError::Invalid("session_id must be non-zero".into())),
            Some(s) => s,
            None => random_session_id(),
        };
        fs::create_dir_all(dir.join(cursor::CURSOR_DIR))
            .map_err(|e| SpoolError::io(format!("create {}", dir.display()), e))?;
        let lock_file = lock_dir(&dir)?;
        let meta = dir.join(META_FILE);
        if !meta.exists() {
            let text = format!(
                "format_version={}\nsite_id={site_id}\ncreated_unix_ns={}\nsegment_bytes={segment_bytes}\n",
                frame::FORMAT_VERSION,
                now_ns()
            );
            cursor::write_atomic(&meta, text.as_bytes())?;
        }

        let mut firsts: Vec<u64> = Vec::new();
        let entries =
            fs::read_dir(&dir).map_err(|e| SpoolError::io(format!("list {}", dir.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| SpoolError::io(format!("list {}", dir.display()), e))?;
            if let Some(first) = entry
                .file_name()
                .to_str()
                .and_then(segment::parse_segment_name)
            {
                firsts.push(first);
            }
        }
        firsts.sort_unstable();

        let mut inner = Inner {
            segments: Vec::with_capacity(firsts.len() + 1),
            active: None,
            pending: Vec::new(),
            next_lsn: firsts.first().copied().unwrap_or(0),
            durable_lsn: 0,
            dedupe: HashSet::new(),
            frames: 0,
            bytes: 0,
            duplicates: 0,
            truncated_bytes: 0,
            closed: false,
            failed: None,
        };
        for (i, &first) in firsts.iter().enumerate() {
            let name = segment::segment_name(first);
            let path = dir.join(&name);
            if first != inner.next_lsn {
                return Err(SpoolError::LsnGap {
                    segment: name,
                    found: first,
                    expected: inner.next_lsn,
                });
            }
            let data = fs::read(&path)
                .map_err(|e| SpoolError::io(format!("read {}", path.display()), e))?;
            let scan = segment::scan(&data);
            if let Some((offset, error)) = scan.error {
                if i + 1 != firsts.len() {
                    return Err(SpoolError::Corrupt {
                        segment: name,
                        offset,
                        error,
                    });
                }
                let dropped = data.len() as u64 - scan.valid_len;
                eprintln!(
                    "tidegate spool: truncating {} at offset {offset}: dropped {dropped} bytes of torn tail ({error})",
                    path.display()
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| SpoolError::io(format!("open {}", path.display()), e))?;
                f.set_len(scan.valid_len)
                    .and_then(|_| f.sync_all())
                    .map_err(|e| SpoolError::io(format!("truncate {}", path.display()), e))?;
                inner.truncated_bytes += dropped;
            }
            for r in &scan.records {
                inner.dedupe.insert((r.session_id, r.seq));
            }
            inner.next_lsn += scan.records.len() as u64;
            inner.frames += scan.records.len() as u64;
            inner.bytes += scan.valid_len;
            inner.segments.push(Segment {
                first_lsn: first,
                path,
                len: scan.valid_len,
                records: scan.records,
                read_fh: None,
            });
        }
        inner.durable_lsn = inner.next_lsn;

        let spool = Spool {
            dir,
            site_id,
            session_id,
            segment_bytes,
            inner: Mutex::new(inner),
            commit_lock: Mutex::new(()),
            cursor_lock: Mutex::new(()),
            lock_file: Mutex::new(Some(lock_file)),
        };
        {
            let mut inner = lock(&spool.inner);
            if inner.segments.is_empty() {
                spool.new_segment(&mut inner)?;
            } else {
                let path = inner.last().path.clone();
                let f = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|e| SpoolError::io(format!("open {}", path.display()), e))?;
                inner.active = Some(Arc::new(f));
            }
        }
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn site_id(&self) -> u32 {
        self.site_id
    }
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// Create the segment starting at `next_lsn` and make it the active one.
    fn new_segment(&self, inner: &mut Inner) -> Result<()> {
        let first = inner.next_lsn;
        let path = self.dir.join(segment::segment_name(first));
        let f = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| SpoolError::io(format!("create {}", path.display()), e))?;
        cursor::fsync_dir(&self.dir)?;
        inner.segments.push(Segment {
            first_lsn: first,
            path,
            len: 0,
            records: Vec::new(),
            read_fh: None,
        });
        inner.active = Some(Arc::new(f));
        Ok(())
    }

    /// Seal the active segment (write + fdatasync, so everything before the
    /// new segment is on disk) and start a new one.
    fn roll(&self, inner: &mut Inner) -> Result<()> {
        inner.write_pending()?;
        if let Some(f) = &inner.active {
            if let Err(e) = f.sync_data() {
                let err = SpoolError::io(format!("fdatasync {}", inner.last().path.display()), e);
                inner.failed = Some(err.to_string());
                return Err(err);
            }
        }
        self.new_segment(inner)
    }

    /// Add one record (already a complete frame) to the log under the lock.
    fn push_record(
        &self,
        inner: &mut Inner,
        rec_len: u64,
        key: (u64, u64),
        write: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<u64> {
        if inner.last().len > 0 && inner.last().len + rec_len > self.segment_bytes {
            self.roll(inner)?;
        }
        let before = inner.pending.len();
        if let Err(e) = write(&mut inner.pending) {
            inner.pending.truncate(before);
            return Err(e);
        }
        let lsn = inner.next_lsn;
        let seg = inner.last();
        seg.records.push(RecordLoc {
            offset: seg.len,
            len: rec_len as u32,
            session_id: key.0,
            seq: key.1,
        });
        seg.len += rec_len;
        inner.dedupe.insert(key);
        inner.next_lsn += 1;
        inner.frames += 1;
        inner.bytes += rec_len;
        if inner.pending.len() >= WRITE_BUFFER {
            inner.write_pending()?;
        }
        Ok(lsn)
    }

    /// OT side: build a frame (seq = LSN) and append it. Durable after `commit`.
    pub fn append(
        &self,
        kind: Kind,
        t_first_ns: i64,
        t_last_ns: i64,
        payload: &[u8],
    ) -> Result<u64> {
        if payload.len() > frame::MAX_PAYLOAD {
            return Err(FrameError::PayloadTooLarge { len: payload.len() }.into());
        }
        let mut inner = lock(&self.inner);
        inner.check()?;
        let lsn = inner.next_lsn;
        let spec = FrameSpec {
            kind,
            site_id: self.site_id,
            session_id: self.session_id,
            seq: lsn,
            t_first_ns,
            t_last_ns,
        };
        let rec_len = (HEADER_LEN + payload.len()) as u64;
        self.push_record(&mut inner, rec_len, (self.session_id, lsn), |buf| {
            frame::build_into(&spec, payload, buf).map_err(SpoolError::from)
        })
    }

    /// IT side: verify and store a received frame verbatim. Returns false (and
    /// counts a duplicate) if a frame with the same (session_id, seq) is stored.
    pub fn append_frame(&self, data: &[u8]) -> Result<bool> {
        let f = frame::parse(data)?;
        let key = (f.header.session_id, f.header.seq);
        let mut inner = lock(&self.inner);
        inner.check()?;
        if inner.dedupe.contains(&key) {
            inner.duplicates += 1;
            return Ok(false);
        }
        self.push_record(&mut inner, data.len() as u64, key, |buf| {
            buf.extend_from_slice(data);
            Ok(())
        })?;
        Ok(true)
    }

    /// Write and fdatasync everything appended so far; returns the new
    /// durable_lsn (all records with lsn < it survive a crash).
    pub fn commit(&self) -> Result<u64> {
        let _serial = lock(&self.commit_lock);
        let (file, target, path) = {
            let mut inner = lock(&self.inner);
            inner.check()?;
            if inner.durable_lsn == inner.next_lsn {
                return Ok(inner.durable_lsn);
            }
            inner.write_pending()?;
            let path = inner.last().path.clone();
            (
                inner.active.clone().ok_or(SpoolError::Closed)?,
                inner.next_lsn,
                path,
            )
        };
        // Records in older segments were synced when their segment was sealed.
        if let Err(e) = file.sync_data() {
            let err = SpoolError::io(format!("fdatasync {}", path.display()), e);
            lock(&self.inner).failed = Some(err.to_string());
            return Err(err);
        }
        let mut inner = lock(&self.inner);
        inner.durable_lsn = inner.durable_lsn.max(target);
        Ok(inner.durable_lsn)
    }

    pub fn next_lsn(&self) -> u64 {
        lock(&self.inner).next_lsn
    }

    pub fn durable_lsn(&self) -> u64 {
        lock(&self.inner).durable_lsn
    }

    /// Up to `max_frames` durable frames from `from_lsn`, in LSN order.
    pub fn read(&self, from_lsn: u64, max_frames: usize) -> Result<Vec<Vec<u8>>> {
        let mut plan: Vec<(Arc<File>, RecordLoc)> = Vec::new();
        {
            let mut inner = lock(&self.inner);
            if inner.closed {
                return Err(SpoolError::Closed);
            }
            let first = inner.segments.first().map(|s| s.first_lsn).unwrap_or(0);
            let from = from_lsn.max(first);
            let to = inner
                .durable_lsn
                .min(from.saturating_add(max_frames as u64));
            if from >= to {
                return Ok(Vec::new());
            }
            let mut si = inner.segments.partition_point(|s| s.end_lsn() <= from);
            let mut lsn = from;
            while lsn < to && si < inner.segments.len() {
                let seg = &mut inner.segments[si];
                if seg.read_fh.is_none() {
                    let f = File::open(&seg.path)
                        .map_err(|e| SpoolError::io(format!("open {}", seg.path.display()), e))?;
                    seg.read_fh = Some(Arc::new(f));
                }
                let fh = seg.read_fh.clone().expect("just opened");
                let end = seg.end_lsn().min(to);
                for l in lsn..end {
                    let rec = seg.records[(l - seg.first_lsn) as usize];
                    plan.push((fh.clone(), rec));
                }
                lsn = end;
                si += 1;
            }
        }
        let mut out = Vec::with_capacity(plan.len());
        for (fh, rec) in plan {
            let mut buf = vec![0u8; rec.len as usize];
            fh.read_exact_at(&mut buf, rec.offset)
                .map_err(|e| SpoolError::io(format!("read record at offset {}", rec.offset), e))?;
            out.push(buf);
        }
        Ok(out)
    }

    pub fn get_cursor(&self, name: &str) -> Result<u64> {
        let _g = lock(&self.cursor_lock);
        cursor::read(&self.dir, name)
    }

    pub fn set_cursor(&self, name: &str, lsn: u64) -> Result<()> {
        let _g = lock(&self.cursor_lock);
        cursor::write(&self.dir, name, lsn)
    }

    pub fn stats(&self) -> SpoolStats {
        let inner = lock(&self.inner);
        SpoolStats {
            frames: inner.frames,
            bytes: inner.bytes,
            segments: inner.segments.len() as u64,
            next_lsn: inner.next_lsn,
            durable_lsn: inner.durable_lsn,
            duplicates: inner.duplicates,
            truncated_bytes: inner.truncated_bytes,
        }
    }

    /// Commit and release file handles; later calls fail with `Closed`.
    pub fn close(&self) -> Result<()> {
        let res = {
            let inner = lock(&self.inner);
            if inner.closed {
                return Ok(());
            }
            inner.failed.is_none()
        };
        let r = if res {
            self.commit().map(|_| ())
        } else {
            Ok(())
        };
        let mut inner = lock(&self.inner);
        inner.closed = true;
        inner.active = None;
        for s in &mut inner.segments {
            s.read_fh = None;
        }
        drop(inner);
        lock(&self.lock_file).take(); // release the directory for another Spool
        r
    }

    pub fn is_closed(&self) -> bool {
        lock(&self.inner).closed
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        // Best effort: hand buffered records to the OS (not durable without commit).
        let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        if !inner.closed && inner.failed.is_none() {
            let _ = inner.write_pending();
        }
    }
}
