//! The spool: a crash-safe, append-only log of frames in segment files.
//!
//! OT side: `append` builds frames (seq = LSN) and `commit` (or the group
//! committer) makes them durable; the diode sender reads durable frames from
//! a cursor. IT side: `append_frame` stores received frames verbatim, dropping
//! (session_id, seq) duplicates. Bounded by bytes and age: the oldest whole
//! segments go, and unsent frames among them are named in a GAP frame.
//! One internal lock; fsync and file reads happen outside it so a slow SD card
//! does not stall the other thread. See docs/spool.md.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::frame::{self, FrameError, FrameSpec, Kind, HEADER_LEN};

pub mod cursor;
pub mod gap;
mod group;
pub mod options;
pub mod recover;
pub mod segment;
pub mod stats;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bounds;
#[cfg(test)]
mod tests_group;
#[cfg(test)]
mod tests_recover;
mod trim;

pub use options::SpoolOptions;
use segment::{RecordLoc, Segment, TimeSpan};
pub use stats::SpoolStats;

pub const DEFAULT_SEGMENT_BYTES: u64 = 16 << 20;
pub const META_FILE: &str = "spool.meta";
pub const LOCK_FILE: &str = "spool.lock";
/// Frames read with their LSNs, and the LSN to read from next.
pub type Entries = (Vec<(u64, Vec<u8>)>, u64);
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

struct Inner {
    segments: Vec<Segment>,
    /// Append handle of the last segment.
    active: Option<Arc<File>>,
    /// Bytes appended to the last segment but not yet written to the file.
    pending: Vec<u8>,
    next_lsn: u64,
    durable_lsn: u64,
    /// Bytes appended since the last commit started (the size trigger).
    unsynced_bytes: u64,
    /// Cached value of the release cursor.
    released: u64,
    dedupe: HashSet<(u64, u64)>,
    frames: u64,
    bytes: u64,
    rates: stats::Rates,
    counters: SpoolStats,
    /// A group committer is running (wait_durable relies on it).
    group_commit: bool,
    closed: bool,
    failed: Option<String>,
}

pub struct Spool {
    dir: PathBuf,
    site_id: u32,
    session_id: u64,
    opts: SpoolOptions,
    inner: Mutex<Inner>,
    /// Signalled whenever durable_lsn moves or the spool fails or closes.
    durable_cv: Condvar,
    /// Serialises commits (the fsync runs outside `inner`).
    commit_lock: Mutex<()>,
    cursor_lock: Mutex<()>,
    /// One trim at a time (a trim appends GAP frames, which may ask for another).
    trim_lock: Mutex<()>,
    loss_runs: Mutex<gap::LossRuns>,
    committer: group::Committer,
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

fn mtime_ns(path: &Path) -> i64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or_else(now_ns, |d| d.as_nanos() as i64)
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

    fn first_lsn(&self) -> u64 {
        self.segments.first().map_or(self.next_lsn, |s| s.first_lsn)
    }

    /// Start the retention clock of segments the release cursor has passed.
    fn mark_released(&mut self, now: i64) {
        let released = self.released;
        for seg in self.segments.iter_mut() {
            if seg.end_lsn() > released || seg.first_lsn == seg.end_lsn() {
                break;
            }
            seg.released_ns.get_or_insert(now);
        }
    }
}

/// One segment as found on disk during open.
struct Opened {
    seg: Segment,
    new_holes: Vec<recover::Hole>,
    all_holes: Vec<recover::Hole>,
}

impl Spool {
    /// Open (or create) the spool in `dir` with default options and the given
    /// segment size (unbounded, no group committer).
    pub fn open(
        dir: impl AsRef<Path>,
        site_id: u32,
        session_id: Option<u64>,
        segment_bytes: u64,
    ) -> Result<Spool> {
        Self::open_with(
            dir,
            site_id,
            session_id,
            SpoolOptions::with_segment_bytes(segment_bytes),
        )
    }

    /// Open (or create) the spool in `dir`. A torn tail of the last segment is
    /// truncated; corrupt records elsewhere are skipped (LSN holes) and named
    /// in a GAP frame; then the bounds are applied. Call
    /// `start_group_commit` on the `Arc` to run the background committer.
    pub fn open_with(
        dir: impl AsRef<Path>,
        site_id: u32,
        session_id: Option<u64>,
        opts: SpoolOptions,
    ) -> Result<Spool> {
        let dir = dir.as_ref().to_path_buf();
        opts.check()?;
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
                "format_version={}\nsite_id={site_id}\ncreated_unix_ns={}\nsegment_bytes={}\n",
                frame::FORMAT_VERSION,
                now_ns(),
                opts.segment_bytes
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

        let released = match &opts.release_cursor {
            Some(c) => cursor::read(&dir, c)?,
            None => 0,
        };
        let mut inner = Inner {
            segments: Vec::with_capacity(firsts.len() + 1),
            active: None,
            pending: Vec::new(),
            next_lsn: firsts.first().copied().unwrap_or(0),
            durable_lsn: 0,
            unsynced_bytes: 0,
            released,
            dedupe: HashSet::new(),
            frames: 0,
            bytes: 0,
            rates: stats::Rates::new(),
            counters: SpoolStats::default(),
            group_commit: false,
            closed: false,
            failed: None,
        };
        let mut to_report: Vec<(PathBuf, Vec<recover::Hole>, Vec<recover::Hole>)> = Vec::new();
        for (i, &first) in firsts.iter().enumerate() {
            if first != inner.next_lsn {
                return Err(SpoolError::LsnGap {
                    segment: segment::segment_name(first),
                    found: first,
                    expected: inner.next_lsn,
                });
            }
            let next = firsts.get(i + 1).copied();
            let o = Self::open_segment(&dir, first, next, &mut inner)?;
            if !o.new_holes.is_empty() {
                to_report.push((o.seg.path.clone(), o.new_holes, o.all_holes));
            }
            inner.next_lsn = o.seg.end_lsn();
            inner.frames += o.seg.frames();
            inner.bytes += o.seg.len;
            inner.segments.push(o.seg);
        }
        inner.durable_lsn = inner.next_lsn;
        inner.mark_released(now_ns());

        let spool = Spool {
            dir,
            site_id,
            session_id,
            opts,
            inner: Mutex::new(inner),
            durable_cv: Condvar::new(),
            commit_lock: Mutex::new(()),
            cursor_lock: Mutex::new(()),
            trim_lock: Mutex::new(()),
            loss_runs: Mutex::new(gap::LossRuns::new()),
            committer: group::Committer::default(),
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
        spool.report_holes(to_report)?;
        spool.trim()?;
        spool.warn_if_bound_exceeds_disk();
        Ok(spool)
    }

    /// A byte bound larger than the disk cannot protect it: say so once at
    /// open (the writes would fail with ENOSPC before the bound is reached).
    fn warn_if_bound_exceeds_disk(&self) {
        use std::os::unix::ffi::OsStrExt;
        if self.opts.max_bytes == 0 {
            return;
        }
        let Ok(c) = std::ffi::CString::new(self.dir.as_os_str().as_bytes()) else {
            return;
        };
        // SAFETY: statvfs fills the struct we pass for a NUL-terminated path.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return;
        }
        let free = (st.f_bavail as u64).saturating_mul(st.f_frsize as u64);
        let held = lock(&self.inner).bytes;
        if self.opts.max_bytes > free.saturating_add(held) {
            eprintln!(
                "tidegate spool: warning: max_bytes {} exceeds the {} bytes this spool holds plus the {} free on the disk of {}; lower the bound or the disk fills first",
                self.opts.max_bytes,
                held,
                free,
                self.dir.display()
            );
        }
    }

    /// Scan one segment file, truncate a torn tail of the last one, and place
    /// its records in LSN slots (holes for corrupt records).
    fn open_segment(
        dir: &Path,
        first: u64,
        next: Option<u64>,
        inner: &mut Inner,
    ) -> Result<Opened> {
        let name = segment::segment_name(first);
        let path = dir.join(&name);
        let data =
            fs::read(&path).map_err(|e| SpoolError::io(format!("read {}", path.display()), e))?;
        let scan = segment::scan(&data);
        let expected = next.map(|n| n.saturating_sub(first));
        if let (Some((offset, error)), None) = (&scan.error, next) {
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
            inner.counters.truncated_bytes += dropped;
        }
        let placed = recover::place(first, expected, &scan, data.len() as u64)
            .map_err(|e| SpoolError::Invalid(format!("{}: {e}", path.display())))?;
        for b in &scan.bad {
            eprintln!(
                "tidegate spool: {} is corrupt at offset {} ({} bytes, {}); skipping to the next valid frame",
                path.display(),
                b.offset,
                b.len,
                b.error
            );
        }
        let mut times = TimeSpan::default();
        for &(a, b) in &scan.times {
            times.add(a, b);
        }
        for r in &placed.records {
            if !r.is_hole() {
                inner.dedupe.insert((r.session_id, r.seq));
            }
        }
        inner.counters.corrupt_records += placed.holes.iter().map(|h| h.count).sum::<u64>();
        inner.counters.corrupt_bytes += placed.corrupt_bytes;
        let known = if placed.holes.is_empty() {
            HashSet::new()
        } else {
            recover::reported(&path)
        };
        let new_holes: Vec<recover::Hole> = placed
            .holes
            .iter()
            .filter(|h| !known.contains(&(h.lsn, h.count)))
            .cloned()
            .collect();
        let len = if next.is_none() {
            scan.valid_len
        } else {
            data.len() as u64
        };
        Ok(Opened {
            seg: Segment {
                first_lsn: first,
                written_ns: mtime_ns(&path),
                path,
                len,
                records: placed.records,
                read_fh: None,
                times,
                released_ns: None,
            },
            new_holes,
            all_holes: placed.holes,
        })
    }

    /// GAP frames for corrupt records not reported before (and not already
    /// released), made durable before the `.bad` sidecar says so.
    fn report_holes(
        &self,
        found: Vec<(PathBuf, Vec<recover::Hole>, Vec<recover::Hole>)>,
    ) -> Result<()> {
        if found.is_empty() {
            return Ok(());
        }
        let released = lock(&self.inner).released;
        let mut set = gap::GapSet::default();
        for (_, new, _) in &found {
            for h in new {
                if h.lsn + h.count <= released {
                    continue; // already sent before it rotted: nothing to tell IT
                }
                let g = set.entry(
                    gap::REASON_CORRUPT,
                    if h.seq_known { self.session_id } else { 0 },
                );
                g.tags_unknown = true;
                g.times.add(h.times.bounds().0, h.times.bounds().1);
                if h.seq_known {
                    g.add_seq(h.lsn);
                    g.add_seq(h.lsn + h.count - 1);
                }
                g.frames += h.count;
                g.bytes += h.bytes;
            }
        }
        for (t0, t1, payload) in set.frames() {
            self.append(Kind::Gap, t0, t1, &payload)?;
            lock(&self.inner).counters.gap_frames += 1;
        }
        self.commit_sync()?;
        for (path, _, all) in &found {
            recover::mark_reported(path, all)?;
        }
        Ok(())
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
    pub fn options(&self) -> &SpoolOptions {
        &self.opts
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
            times: TimeSpan::default(),
            written_ns: now_ns(),
            released_ns: None,
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
                self.durable_cv.notify_all();
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
        times: (i64, i64),
        write: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<u64> {
        if inner.last().len > 0 && inner.last().len + rec_len > self.opts.segment_bytes {
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
        seg.times.add(times.0, times.1);
        seg.written_ns = now_ns();
        inner.dedupe.insert(key);
        inner.next_lsn += 1;
        inner.frames += 1;
        inner.bytes += rec_len;
        inner.rates.record(rec_len);
        inner.unsynced_bytes += rec_len;
        if self.opts.commit_bytes > 0 && inner.unsynced_bytes >= self.opts.commit_bytes {
            self.committer.kick();
        }
        if inner.pending.len() >= WRITE_BUFFER {
            inner.write_pending()?;
        }
        Ok(lsn)
    }

    fn over_bytes(&self, inner: &Inner) -> bool {
        self.opts.max_bytes > 0 && inner.bytes > self.opts.max_bytes
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
        let lsn = self.push_record(
            &mut inner,
            rec_len,
            (self.session_id, lsn),
            (t_first_ns, t_last_ns),
            |buf| frame::build_into(&spec, payload, buf).map_err(SpoolError::from),
        )?;
        self.after_append(inner);
        Ok(lsn)
    }

    /// IT side: verify and store a received frame verbatim. Returns false (and
    /// counts a duplicate) if a frame with the same (session_id, seq) is stored.
    pub fn append_frame(&self, data: &[u8]) -> Result<bool> {
        let f = frame::parse(data)?;
        let key = (f.header.session_id, f.header.seq);
        let mut inner = lock(&self.inner);
        inner.check()?;
        if inner.dedupe.contains(&key) {
            inner.counters.duplicates += 1;
            return Ok(false);
        }
        self.push_record(
            &mut inner,
            data.len() as u64,
            key,
            (f.header.t_first_ns, f.header.t_last_ns),
            |buf| {
                buf.extend_from_slice(data);
                Ok(())
            },
        )?;
        self.after_append(inner);
        Ok(true)
    }

    /// Over the byte bound: the group committer drops segments on its own
    /// thread (reading them back for the GAP is kept off the appender's
    /// thread); without one, the appender does it now. Either way the frame
    /// just appended stays appended; a failing trim is reported, and leaves
    /// the spool in the failed state if it could not write.
    fn after_append(&self, inner: MutexGuard<'_, Inner>) {
        if !self.over_bytes(&inner) {
            return;
        }
        if inner.group_commit {
            drop(inner);
            self.committer.kick();
        } else {
            drop(inner);
            self.trim_logged();
        }
    }

    fn trim_logged(&self) {
        if let Err(e) = self.trim() {
            eprintln!("tidegate spool: applying the bounds: {e}");
        }
    }

    /// Write and fdatasync everything appended so far, then apply the age and
    /// retention bounds; returns the new durable_lsn (all records with lsn <
    /// it survive a crash).
    pub fn commit(&self) -> Result<u64> {
        let d = self.commit_sync()?;
        if self.trim_due() {
            self.trim_logged();
        }
        Ok(d)
    }

    fn commit_sync(&self) -> Result<u64> {
        let _serial = lock(&self.commit_lock);
        let (file, target, path) = {
            let mut inner = lock(&self.inner);
            inner.check()?;
            if inner.durable_lsn == inner.next_lsn {
                return Ok(inner.durable_lsn);
            }
            inner.write_pending()?;
            inner.unsynced_bytes = 0;
            let path = inner.last().path.clone();
            (
                inner.active.clone().ok_or(SpoolError::Closed)?,
                inner.next_lsn,
                path,
            )
        };
        // Records in older segments were synced when their segment was sealed.
        let res = file.sync_data();
        let mut inner = lock(&self.inner);
        if let Err(e) = res {
            let err = SpoolError::io(format!("fdatasync {}", path.display()), e);
            inner.failed = Some(err.to_string());
            self.durable_cv.notify_all();
            return Err(err);
        }
        inner.durable_lsn = inner.durable_lsn.max(target);
        inner.counters.commits += 1;
        self.durable_cv.notify_all();
        Ok(inner.durable_lsn)
    }

    /// Block until record `lsn` is durable (true) or `timeout` passes (false).
    /// With a group committer running this waits for its next sync; without
    /// one it commits itself. Errors if the spool fails or closes meanwhile,
    /// or if `lsn` was never appended.
    pub fn wait_durable(&self, lsn: u64, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut inner = lock(&self.inner);
        loop {
            if inner.durable_lsn > lsn {
                return Ok(true);
            }
            inner.check()?;
            if lsn >= inner.next_lsn {
                return Err(SpoolError::Invalid(format!(
                    "wait_durable: LSN {lsn} has not been appended (next LSN is {})",
                    inner.next_lsn
                )));
            }
            if !inner.group_commit {
                drop(inner);
                self.commit_sync()?;
                inner = lock(&self.inner);
                continue;
            }
            inner = match deadline {
                None => self
                    .durable_cv
                    .wait(inner)
                    .unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(false);
                    }
                    self.durable_cv
                        .wait_timeout(inner, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }

    pub fn next_lsn(&self) -> u64 {
        lock(&self.inner).next_lsn
    }

    pub fn durable_lsn(&self) -> u64 {
        lock(&self.inner).durable_lsn
    }

    /// The oldest LSN still held (older ones were released or dropped).
    pub fn first_lsn(&self) -> u64 {
        lock(&self.inner).first_lsn()
    }

    /// Up to `max_frames` durable frames from `from_lsn`, in LSN order.
    pub fn read(&self, from_lsn: u64, max_frames: usize) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .read_entries(from_lsn, max_frames)?
            .0
            .into_iter()
            .map(|(_, f)| f)
            .collect())
    }

    /// Up to `max_frames` durable (lsn, frame) pairs from `from_lsn`, skipping
    /// LSNs no longer held (dropped or corrupt), and the LSN to read from next.
    pub fn read_entries(&self, from_lsn: u64, max_frames: usize) -> Result<Entries> {
        let mut plan: Vec<(Arc<File>, u64, RecordLoc)> = Vec::new();
        let next;
        {
            let mut inner = lock(&self.inner);
            if inner.closed {
                return Err(SpoolError::Closed);
            }
            let from = from_lsn.max(inner.first_lsn());
            let durable = inner.durable_lsn;
            let mut si = inner.segments.partition_point(|s| s.end_lsn() <= from);
            let mut lsn = from;
            // Holes count towards a bound on the work done per call.
            let mut budget = max_frames.saturating_mul(4).max(1);
            while lsn < durable
                && si < inner.segments.len()
                && plan.len() < max_frames
                && budget > 0
            {
                let seg = &mut inner.segments[si];
                if seg.read_fh.is_none() {
                    let f = File::open(&seg.path)
                        .map_err(|e| SpoolError::io(format!("open {}", seg.path.display()), e))?;
                    seg.read_fh = Some(Arc::new(f));
                }
                let fh = seg.read_fh.clone().expect("just opened");
                let end = seg.end_lsn().min(durable);
                while lsn < end && plan.len() < max_frames && budget > 0 {
                    let rec = seg.records[(lsn - seg.first_lsn) as usize];
                    if !rec.is_hole() {
                        plan.push((fh.clone(), lsn, rec));
                    }
                    lsn += 1;
                    budget -= 1;
                }
                if lsn >= seg.end_lsn() {
                    si += 1;
                }
            }
            next = lsn;
        }
        let mut out = Vec::with_capacity(plan.len());
        for (fh, lsn, rec) in plan {
            let mut buf = vec![0u8; rec.len as usize];
            fh.read_exact_at(&mut buf, rec.offset)
                .map_err(|e| SpoolError::io(format!("read record at offset {}", rec.offset), e))?;
            out.push((lsn, buf));
        }
        Ok((out, next))
    }

    /// LSNs [first, end) of the held durable frames whose time range overlaps
    /// [t0, t1] (None if none do). Reads frame headers from disk, only in
    /// segments whose time summary overlaps.
    pub fn lsn_range_for_time(&self, t0: i64, t1: i64) -> Result<Option<(u64, u64)>> {
        let mut plan: Vec<(Arc<File>, u64, RecordLoc)> = Vec::new();
        {
            let mut inner = lock(&self.inner);
            inner.check()?;
            let durable = inner.durable_lsn;
            for seg in inner.segments.iter_mut() {
                if !seg.times.overlaps(t0, t1) || seg.first_lsn >= durable {
                    continue;
                }
                if seg.read_fh.is_none() {
                    let f = File::open(&seg.path)
                        .map_err(|e| SpoolError::io(format!("open {}", seg.path.display()), e))?;
                    seg.read_fh = Some(Arc::new(f));
                }
                let fh = seg.read_fh.clone().expect("just opened");
                for (i, rec) in seg.records.iter().enumerate() {
                    let lsn = seg.first_lsn + i as u64;
                    if lsn < durable && !rec.is_hole() {
                        plan.push((fh.clone(), lsn, *rec));
                    }
                }
            }
        }
        let mut range: Option<(u64, u64)> = None;
        let mut hdr = [0u8; HEADER_LEN];
        for (fh, lsn, rec) in plan {
            fh.read_exact_at(&mut hdr, rec.offset)
                .map_err(|e| SpoolError::io(format!("read record at offset {}", rec.offset), e))?;
            let h = frame::parse_header(&hdr)?;
            let mut t = TimeSpan::default();
            t.add(h.t_first_ns, h.t_last_ns);
            if t.overlaps(t0, t1) {
                range = Some(match range {
                    None => (lsn, lsn + 1),
                    Some((a, b)) => (a.min(lsn), b.max(lsn + 1)),
                });
            }
        }
        Ok(range)
    }

    pub fn get_cursor(&self, name: &str) -> Result<u64> {
        let _g = lock(&self.cursor_lock);
        cursor::read(&self.dir, name)
    }

    pub fn set_cursor(&self, name: &str, lsn: u64) -> Result<()> {
        let _g = lock(&self.cursor_lock);
        cursor::write(&self.dir, name, lsn)?;
        if self.opts.release_cursor.as_deref() == Some(name) {
            let mut inner = lock(&self.inner);
            inner.released = lsn;
            inner.mark_released(now_ns());
        }
        Ok(())
    }

    pub fn stats(&self) -> SpoolStats {
        let mut inner = lock(&self.inner);
        inner.rates.tick();
        let cap = self.opts.max_bytes;
        let pos = |t: i64| {
            if t == i64::MAX || t == i64::MIN {
                0
            } else {
                t.max(0) as u64
            }
        };
        let oldest = inner
            .segments
            .iter()
            .find(|s| !s.times.is_empty())
            .map_or(0, |s| pos(s.times.min));
        let newest = inner
            .segments
            .iter()
            .rev()
            .find(|s| !s.times.is_empty())
            .map_or(0, |s| pos(s.times.max));
        let released = inner.released.max(inner.first_lsn());
        SpoolStats {
            frames: inner.frames,
            bytes: inner.bytes,
            segments: inner.segments.len() as u64,
            next_lsn: inner.next_lsn,
            durable_lsn: inner.durable_lsn,
            first_lsn: inner.first_lsn(),
            capacity_bytes: cap,
            fill_permille: inner
                .bytes
                .saturating_mul(1000)
                .checked_div(cap)
                .map_or(0, |p| p.min(1000)),
            released_lsn: inner.released,
            unreleased_frames: inner.durable_lsn.saturating_sub(released),
            oldest_ns: oldest,
            newest_ns: newest,
            append_frames_per_s: inner.rates.frames_per_s,
            append_bytes_per_s: inner.rates.bytes_per_s,
            ..inner.counters
        }
    }

    /// Stop the group committer, commit, and release file handles; later
    /// calls fail with `Closed`.
    pub fn close(&self) -> Result<()> {
        let res = {
            let inner = lock(&self.inner);
            if inner.closed {
                return Ok(());
            }
            inner.failed.is_none()
        };
        self.committer.stop(true);
        let r = if res {
            self.commit_sync().map(|_| ())
        } else {
            Ok(())
        };
        let mut inner = lock(&self.inner);
        inner.closed = true;
        inner.group_commit = false;
        inner.active = None;
        for s in &mut inner.segments {
            s.read_fh = None;
        }
        drop(inner);
        self.durable_cv.notify_all();
        lock(&self.lock_file).take(); // release the directory for another Spool
        r
    }

    pub fn is_closed(&self) -> bool {
        lock(&self.inner).closed
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.committer.stop(false);
        // Best effort: hand buffered records to the OS (not durable without commit).
        let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        if !inner.closed && inner.failed.is_none() {
            let _ = inner.write_pending();
        }
    }
}
