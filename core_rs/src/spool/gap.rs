//! GAP frames the spool writes itself: for unsent frames it had to drop
//! (bounds) and for records found corrupt on open. The payload is the msgpack
//! map of docs/format.md ("GAP"), decoded on the IT side by edge/frames.py.

use std::collections::{BTreeMap, BTreeSet};

use super::segment::TimeSpan;
use crate::codec;
use crate::frame::{FrameRef, Kind};

pub const REASON_FULL: &str = "spool_full";
pub const REASON_AGE: &str = "spool_age";
pub const REASON_CORRUPT: &str = "spool_corrupt";

/// What one GAP frame says. One per (reason, building session) so seq ranges
/// are unambiguous.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GapInfo {
    pub reason: &'static str,
    pub session_id: u64,
    /// Sorted tag indexes from the dropped DATA payloads.
    pub tags: BTreeSet<u32>,
    /// True when some dropped payload could not be read or decoded.
    pub tags_unknown: bool,
    pub times: TimeSpan,
    /// Seq range of the dropped frames (None when unknown: corrupt records
    /// of a spool whose seqs are not its LSNs).
    pub seq: Option<(u64, u64)>,
    pub frames: u64,
    pub bytes: u64,
}

impl GapInfo {
    pub fn add_seq(&mut self, seq: u64) {
        self.seq = Some(match self.seq {
            None => (seq, seq),
            Some((a, b)) => (a.min(seq), b.max(seq)),
        });
    }

    /// Fold one dropped frame in (tags from DATA payloads).
    pub fn add_frame(&mut self, f: &FrameRef<'_>, len: u64) {
        self.add_seq(f.header.seq);
        self.times.add(f.header.t_first_ns, f.header.t_last_ns);
        self.frames += 1;
        self.bytes += len;
        if f.header.kind == Kind::Data {
            match codec::decode(f.payload) {
                Ok(c) => self.tags.extend(c.tag),
                Err(_) => self.tags_unknown = true,
            }
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        use rmp::encode as e;
        let mut b = Vec::with_capacity(96 + 5 * self.tags.len());
        let (t0, t1) = self.times.bounds();
        // Writes into a Vec cannot fail.
        let _ = e::write_map_len(&mut b, 10);
        let _ = e::write_str(&mut b, "reason");
        let _ = e::write_str(&mut b, self.reason);
        let _ = e::write_str(&mut b, "tags");
        let _ = e::write_array_len(&mut b, self.tags.len() as u32);
        for t in &self.tags {
            let _ = e::write_uint(&mut b, u64::from(*t));
        }
        let _ = e::write_str(&mut b, "tags_unknown");
        let _ = e::write_bool(&mut b, self.tags_unknown);
        let _ = e::write_str(&mut b, "t_first_ns");
        let _ = e::write_sint(&mut b, t0);
        let _ = e::write_str(&mut b, "t_last_ns");
        let _ = e::write_sint(&mut b, t1);
        for (k, v) in [
            ("seq_first", self.seq.map(|s| s.0)),
            ("seq_last", self.seq.map(|s| s.1)),
        ] {
            let _ = e::write_str(&mut b, k);
            match v {
                Some(v) => drop(e::write_uint(&mut b, v)),
                None => drop(e::write_nil(&mut b)),
            }
        }
        for (k, v) in [
            ("session_id", self.session_id),
            ("frames", self.frames),
            ("bytes", self.bytes),
        ] {
            let _ = e::write_str(&mut b, k);
            let _ = e::write_uint(&mut b, v);
        }
        b
    }
}

/// A GAP payload this spool wrote (a spool reason, a session and a seq
/// range), read back so a dropped GAP can be merged instead of carried.
pub fn decode_own(payload: &[u8]) -> Option<GapInfo> {
    let v = rmpv::decode::read_value(&mut &payload[..]).ok()?;
    let map = v.as_map()?;
    let get = |k: &str| {
        map.iter()
            .find(|(key, _)| key.as_str() == Some(k))
            .map(|(_, v)| v)
    };
    let reason = match get("reason")?.as_str()? {
        REASON_FULL => REASON_FULL,
        REASON_AGE => REASON_AGE,
        REASON_CORRUPT => REASON_CORRUPT,
        _ => return None,
    };
    let tags = get("tags")?
        .as_array()?
        .iter()
        .map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok()))
        .collect::<Option<BTreeSet<u32>>>()?;
    let mut times = TimeSpan::default();
    times.add(get("t_first_ns")?.as_i64()?, get("t_last_ns")?.as_i64()?);
    Some(GapInfo {
        reason,
        session_id: get("session_id")?.as_u64()?,
        tags,
        tags_unknown: get("tags_unknown")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        times,
        seq: Some((get("seq_first")?.as_u64()?, get("seq_last")?.as_u64()?)),
        frames: get("frames").and_then(|v| v.as_u64()).unwrap_or(0),
        bytes: get("bytes").and_then(|v| v.as_u64()).unwrap_or(0),
    })
}

/// GAPs being collected, keyed by (reason, session).
#[derive(Debug, Default)]
pub struct GapSet {
    pub gaps: BTreeMap<(&'static str, u64), GapInfo>,
    /// GAP frames among the dropped ones (t_first, t_last, payload).
    pub dropped_gaps: Vec<(i64, i64, Vec<u8>)>,
    /// Dropped GAP frames re-appended verbatim, so the loss they name still
    /// reaches IT (those `finish` could not merge).
    pub carried: Vec<(i64, i64, Vec<u8>)>,
}

/// The loss run of each (reason, session): everything dropped unsent since
/// the release cursor last moved past a drop. A new GAP names the whole run,
/// so the GAPs of earlier trims are covered by it and may be dropped in turn
/// without carrying them: a long outage keeps one or two GAP frames, not one
/// per dropped segment.
pub type LossRuns = BTreeMap<(&'static str, u64), GapInfo>;

fn adjacent(a: (u64, u64), b: (u64, u64)) -> bool {
    a.1.saturating_add(1) >= b.0 && a.0 <= b.1.saturating_add(1)
}

fn merge(into: &mut GapInfo, other: &GapInfo) {
    if let (Some(a), Some(b)) = (into.seq, other.seq) {
        into.seq = Some((a.0.min(b.0), a.1.max(b.1)));
    }
    into.tags.extend(other.tags.iter().copied());
    into.tags_unknown |= other.tags_unknown;
    let (t0, t1) = other.times.bounds();
    into.times.add(t0, t1);
    into.frames += other.frames;
    into.bytes += other.bytes;
}

impl GapSet {
    pub fn entry(&mut self, reason: &'static str, session_id: u64) -> &mut GapInfo {
        self.gaps
            .entry((reason, session_id))
            .or_insert_with(|| GapInfo {
                reason,
                session_id,
                ..Default::default()
            })
    }

    /// Extend this trim's GAPs by the loss runs they continue, settle the
    /// dropped GAP frames (covered by a run: gone; adjacent: merged; else
    /// carried), and remember the new runs.
    pub fn finish(&mut self, runs: &mut LossRuns) {
        for (key, cur) in self.gaps.iter_mut() {
            if let Some(run) = runs.get(key) {
                if let (Some(r), Some(c)) = (run.seq, cur.seq) {
                    if adjacent(r, c) {
                        merge(cur, run);
                    }
                }
            }
        }
        for (t0, t1, payload) in std::mem::take(&mut self.dropped_gaps) {
            if let Some(old) = decode_own(&payload) {
                if let Some(cur) = self.gaps.get_mut(&(old.reason, old.session_id)) {
                    if let (Some(o), Some(c)) = (old.seq, cur.seq) {
                        if o.0 >= c.0 && o.1 <= c.1 {
                            continue; // named again by the run's GAP
                        }
                        if adjacent(o, c) {
                            merge(cur, &old);
                            continue;
                        }
                    }
                }
            }
            self.carried.push((t0, t1, payload));
        }
        for (key, cur) in &self.gaps {
            runs.insert(*key, cur.clone());
        }
    }

    /// (t_first, t_last, payload) of every GAP frame to append.
    pub fn frames(&self) -> Vec<(i64, i64, Vec<u8>)> {
        let mut out = self.carried.clone();
        for g in self.gaps.values() {
            let (t0, t1) = g.times.bounds();
            out.push((t0, t1, g.encode()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_gap_round_trips_and_merges() {
        let mut g = GapInfo {
            reason: REASON_FULL,
            session_id: u64::MAX - 3,
            ..Default::default()
        };
        g.add_seq(0);
        g.add_seq(9);
        g.tags.extend([3, 1]);
        g.times.add(-5, 7);
        g.frames = 10;
        let back = decode_own(&g.encode()).expect("decodes");
        assert_eq!(back, g);
        let mut runs = LossRuns::new();
        let mut set = GapSet::default();
        let cur = set.entry(REASON_FULL, u64::MAX - 3);
        cur.add_seq(10);
        cur.add_seq(12);
        set.dropped_gaps.push((-5, 7, g.encode()));
        set.finish(&mut runs);
        assert!(set.carried.is_empty());
        let m = &set.gaps[&(REASON_FULL, u64::MAX - 3)];
        assert_eq!(m.seq, Some((0, 12)));
        assert_eq!(m.frames, 10);
        // The next trim continues the run, and a GAP it covers disappears.
        let mut set = GapSet::default();
        set.entry(REASON_FULL, u64::MAX - 3).add_seq(13);
        set.dropped_gaps.push((-5, 7, g.encode()));
        // Not adjacent to anything: carried verbatim.
        let mut far = g.clone();
        far.seq = Some((100, 200));
        set.dropped_gaps.push((0, 0, far.encode()));
        set.finish(&mut runs);
        assert_eq!(set.gaps[&(REASON_FULL, u64::MAX - 3)].seq, Some((0, 13)));
        assert_eq!(set.carried.len(), 1);
    }
}
