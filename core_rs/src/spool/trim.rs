//! The bounds: when the spool holds more than `max_bytes`, or its oldest
//! segment was last written more than `max_age` ago, or was released (sent)
//! more than `retain_released` ago, the oldest whole segments go. Released
//! frames among them are retired quietly; unreleased ones are lost, so a GAP
//! frame naming their seqs, tags and times is appended (and made durable)
//! before their files are deleted. A crash in between can only repeat a GAP,
//! never lose one.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, TryLockError};

use super::gap::{self, GapSet};
use super::segment::{bad_path, Segment};
use super::{cursor, lock, now_ns, Inner, Result, Spool};
use crate::frame::{self, Kind};

const RETIRED: &str = "retired";

impl Spool {
    fn drop_reason(&self, inner: &Inner, seg: &Segment, now: i64) -> Option<&'static str> {
        if self.over_bytes(inner) {
            return Some(gap::REASON_FULL);
        }
        let age = self.opts.max_age;
        if !age.is_zero() && now.saturating_sub(seg.written_ns) as u128 > age.as_nanos() {
            return Some(gap::REASON_AGE);
        }
        let keep = self.opts.retain_released;
        if !keep.is_zero() && seg.end_lsn() <= inner.released {
            if let Some(t) = seg.released_ns {
                if now.saturating_sub(t) as u128 > keep.as_nanos() {
                    return Some(RETIRED);
                }
            }
        }
        None
    }

    /// Is the oldest segment due to go? (cheap: memory only)
    pub(super) fn trim_due(&self) -> bool {
        let inner = lock(&self.inner);
        inner.segments.len() > 1
            && self
                .drop_reason(&inner, &inner.segments[0], now_ns())
                .is_some()
    }

    /// Apply the bounds now.
    pub(super) fn trim(&self) -> Result<()> {
        let _serial = match self.trim_lock.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(()), // one is running (maybe our caller)
        };
        let now = now_ns();
        let (victims, released) = {
            let mut inner = lock(&self.inner);
            inner.check()?;
            let mut v: Vec<(Segment, &'static str)> = Vec::new();
            while inner.segments.len() > 1 {
                let Some(reason) = self.drop_reason(&inner, &inner.segments[0], now) else {
                    break;
                };
                let seg = inner.segments.remove(0);
                inner.bytes -= seg.len;
                inner.frames -= seg.frames();
                for r in seg.records.iter().filter(|r| !r.is_hole()) {
                    inner.dedupe.remove(&(r.session_id, r.seq));
                }
                v.push((seg, reason));
            }
            (v, inner.released)
        };
        if victims.is_empty() {
            return Ok(());
        }
        let mut set = GapSet::default();
        let (mut retired, mut dropped) = ([0u64; 3], [0u64; 3]); // frames, bytes, segments
        for (seg, reason) in &victims {
            let from = released.clamp(seg.first_lsn, seg.end_lsn());
            let split = (from - seg.first_lsn) as usize;
            for r in seg.records[..split].iter().filter(|r| !r.is_hole()) {
                retired[0] += 1;
                retired[1] += u64::from(r.len);
            }
            if split == seg.records.len() {
                retired[2] += 1;
                continue;
            }
            let n = summarize(seg, split, reason, &mut set);
            dropped[0] += n.0;
            dropped[1] += n.1;
            dropped[2] += 1;
        }
        set.finish(&mut lock(&self.loss_runs));
        if dropped[0] > 0 {
            let seqs: Vec<String> = set
                .gaps
                .values()
                .filter_map(|g| g.seq.map(|(a, b)| format!("{a}..{b}")))
                .collect();
            eprintln!(
                "tidegate spool: dropped {} unsent frames ({} bytes, seq {}) to keep the bounds; a GAP frame names them",
                dropped[0],
                dropped[1],
                seqs.join(", ")
            );
        }
        let frames = set.frames();
        for (t0, t1, payload) in &frames {
            self.append(Kind::Gap, *t0, *t1, payload)?;
        }
        if !frames.is_empty() {
            self.commit_sync()?;
        }
        {
            let mut inner = lock(&self.inner);
            let c = &mut inner.counters;
            c.gap_frames += frames.len() as u64;
            c.retired_frames += retired[0];
            c.retired_bytes += retired[1];
            c.retired_segments += retired[2];
            c.dropped_frames += dropped[0];
            c.dropped_bytes += dropped[1];
            c.dropped_segments += dropped[2];
        }
        for (seg, _) in &victims {
            for p in [seg.path.clone(), bad_path(&seg.path)] {
                if let Err(e) = std::fs::remove_file(&p) {
                    if e.kind() != ErrorKind::NotFound {
                        eprintln!("tidegate spool: cannot delete {}: {e}", p.display());
                    }
                }
            }
        }
        cursor::fsync_dir(&self.dir)
    }
}

/// Fold the records of `seg` from slot `split` on into GAPs; returns the
/// (frames, bytes) dropped. Reads each record back for its tags and times;
/// a record that cannot be read is still named by its index entry.
fn summarize(seg: &Segment, split: usize, reason: &'static str, set: &mut GapSet) -> (u64, u64) {
    let fh: Option<Arc<File>> = seg
        .read_fh
        .clone()
        .or_else(|| File::open(&seg.path).ok().map(Arc::new));
    let (mut frames, mut bytes) = (0u64, 0u64);
    let mut buf = Vec::new();
    for r in seg.records[split..].iter().filter(|r| !r.is_hole()) {
        frames += 1;
        bytes += u64::from(r.len);
        buf.resize(r.len as usize, 0);
        let read = fh
            .as_ref()
            .is_some_and(|f| f.read_exact_at(&mut buf, r.offset).is_ok());
        match frame::parse(&buf) {
            Ok(f) if read => {
                set.entry(reason, f.header.session_id)
                    .add_frame(&f, u64::from(r.len));
                if f.header.kind == Kind::Gap {
                    set.dropped_gaps.push((
                        f.header.t_first_ns,
                        f.header.t_last_ns,
                        f.payload.to_vec(),
                    ));
                }
            }
            _ => {
                let g = set.entry(reason, r.session_id);
                g.add_seq(r.seq);
                g.tags_unknown = true;
                let (a, b) = seg.times.bounds();
                g.times.add(a, b);
                g.frames += 1;
                g.bytes += u64::from(r.len);
            }
        }
    }
    (frames, bytes)
}
