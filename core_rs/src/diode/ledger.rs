//! The receiver's ledger: which frame seqs (OT spool LSNs) arrived, which
//! are missing, and which are lost for good. Without a back channel, the
//! sender's HEARTBEAT/MANIFEST say what was sent (`sent_below`) and what will
//! never be sent again (`final_below`); one second of grace later the ledger
//! names missing seqs, and seqs missing below `final_below` become GAP frames
//! (written by the receiver into the IT spool, so IT gets a gap record).
//! Persisted as a small text file, replaced atomically.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::spool::cursor::write_atomic;

/// How long after a heartbeat its claims are trusted (symbols in flight land).
pub const GRACE: Duration = Duration::from_secs(1);
const FORMAT: &str = "tidegate-ledger 1";

/// Disjoint half-open ranges [start, end), merged on insert.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RangeSet(BTreeMap<u64, u64>);

impl RangeSet {
    pub fn contains(&self, v: u64) -> bool {
        self.0.range(..=v).next_back().is_some_and(|(_, &e)| v < e)
    }
    pub fn insert(&mut self, a: u64, b: u64) {
        if a >= b {
            return;
        }
        let (mut a, mut b) = (a, b);
        let overlapping: Vec<u64> = self
            .0
            .range(..=b)
            .rev()
            .take_while(|(_, &e)| e >= a)
            .map(|(&s, _)| s)
            .collect();
        for s in overlapping {
            let e = self.0.remove(&s).expect("present");
            a = a.min(s);
            b = b.max(e);
        }
        self.0.insert(a, b);
    }
    /// The parts of [a, b) not in the set.
    pub fn holes(&self, a: u64, b: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        if a >= b {
            return out; // e.g. frames (a re-send) arrived before any heartbeat
        }
        let mut at = a;
        let start = self.0.range(..=a).next_back().map(|(&s, _)| s).unwrap_or(a);
        for (&s, &e) in self.0.range(start..b) {
            if s > at {
                out.push((at, s.min(b)));
            }
            at = at.max(e);
            if at >= b {
                break;
            }
        }
        if at < b {
            out.push((at, b));
        }
        out
    }
    /// Forget everything below `v`.
    pub fn trim_below(&mut self, v: u64) {
        let keep = self.0.split_off(&v);
        if let Some((_, &e)) = self.0.iter().next_back() {
            if e > v {
                self.0.insert(v, e);
            }
        }
        self.0.retain(|&s, _| s >= v);
        self.0.extend(keep);
    }
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.iter().map(|(&a, &b)| (a, b))
    }
}

/// A lost seq range and the time it must cover (from its neighbours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost {
    pub gap_seq: u64,
    pub seq_first: u64,
    pub seq_last: u64,
    pub t_first_ns: i64,
    pub t_last_ns: i64,
}

pub struct Ledger {
    path: Option<PathBuf>,
    /// Session id of the GAP frames the ledger writes (random, kept across restarts).
    pub id: u64,
    /// First seq in scope (the first contact); nothing below it is a gap.
    base: Option<u64>,
    /// Every seq below this is received or reported lost.
    settled: u64,
    received: RangeSet,
    sent_below: u64,
    final_below: u64,
    /// Next GAP frame seq.
    gap_seq: u64,
    /// IT spool position up to which `received` reflects the spool.
    pub spool_lsn: u64,
    pending: VecDeque<(Instant, u64, u64)>,
    /// Time range of recently received frames, to date a lost range.
    times: BTreeMap<u64, (i64, i64)>,
    dirty: bool,
}

const TIMES_KEPT: usize = 1 << 16;

impl Ledger {
    pub fn new(path: Option<PathBuf>, id: u64) -> Self {
        Ledger {
            path,
            id,
            base: None,
            settled: 0,
            received: RangeSet::default(),
            sent_below: 0,
            final_below: 0,
            gap_seq: 0,
            spool_lsn: 0,
            pending: VecDeque::new(),
            times: BTreeMap::new(),
            dirty: false,
        }
    }

    /// Load the ledger at `path`, or start a new one if there is none.
    pub fn open(path: PathBuf, new_id: u64) -> Result<Self, String> {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::new(Some(path), new_id))
            }
            Err(e) => return Err(format!("ledger {}: {e}", path.display())),
        };
        let mut l = Self::new(Some(path.clone()), new_id);
        let err = |n: usize, m: &str| format!("ledger {}: line {}: {m}", path.display(), n + 1);
        let mut lines = text.lines().enumerate();
        if lines.next().map(|(_, s)| s) != Some(FORMAT) {
            return Err(err(0, &format!("expected {FORMAT:?}")));
        }
        for (n, line) in lines {
            let mut it = line.split_whitespace();
            let key = it.next().unwrap_or("");
            let nums: Result<Vec<u64>, _> = it.map(str::parse::<u64>).collect();
            let nums = nums.map_err(|_| err(n, "expected numbers"))?;
            match (key, nums.as_slice()) {
                ("id", [v]) => l.id = *v,
                ("base", [v]) => l.base = Some(*v),
                ("settled", [v]) => l.settled = *v,
                ("sent_below", [v]) => l.sent_below = *v,
                ("final_below", [v]) => l.final_below = *v,
                ("gap_seq", [v]) => l.gap_seq = *v,
                ("spool_lsn", [v]) => l.spool_lsn = *v,
                ("received", [a, b]) if a < b => l.received.insert(*a, *b),
                _ => return Err(err(n, &format!("unexpected {line:?}"))),
            }
        }
        Ok(l)
    }

    pub fn save(&mut self) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut s = format!(
            "{FORMAT}\nid {}\nsettled {}\nsent_below {}\nfinal_below {}\ngap_seq {}\nspool_lsn {}\n",
            self.id, self.settled, self.sent_below, self.final_below, self.gap_seq, self.spool_lsn
        );
        if let Some(b) = self.base {
            s.push_str(&format!("base {b}\n"));
        }
        for (a, b) in self.received.ranges() {
            s.push_str(&format!("received {a} {b}\n"));
        }
        write_atomic(path, s.as_bytes()).map_err(|e| e.to_string())?;
        self.dirty = false;
        Ok(())
    }

    pub fn dirty(&self) -> bool {
        self.dirty
    }

    /// True if `seq` needs no more packets (received, or settled as lost).
    pub fn done(&self, seq: u64) -> bool {
        (self.base.is_some() && seq < self.settled) || self.received.contains(seq)
    }

    /// True if every seq of [first, first + n) needs no more packets.
    pub fn done_range(&self, first: u64, n: u64) -> bool {
        (first..first.saturating_add(n)).all(|s| self.done(s))
    }

    pub fn on_frame(&mut self, seq: u64, t_first_ns: i64, t_last_ns: i64) {
        if self.base.is_none_or(|b| seq < b && self.sent_below == 0) {
            self.base = Some(seq);
            self.settled = self.settled.max(seq);
        }
        self.received.insert(seq, seq + 1);
        self.times.insert(seq, (t_first_ns, t_last_ns));
        if self.times.len() > TIMES_KEPT {
            self.times.pop_first();
        }
        self.dirty = true;
    }

    pub fn on_control(&mut self, sent_below: u64, final_below: u64, now: Instant) {
        if self.base.is_none() || (self.sent_below == 0 && final_below < self.base.unwrap_or(0)) {
            // First contact: what the sender will never send again is not ours to miss.
            self.base = Some(final_below.min(self.base.unwrap_or(u64::MAX)));
            self.settled = self.settled.max(self.base.unwrap_or(0));
        }
        self.pending.push_back((now, sent_below, final_below));
    }

    /// True if a control packet's claims are due to be applied by `tick(now)`.
    pub fn maturing(&self, now: Instant) -> bool {
        self.pending
            .front()
            .is_some_and(|&(t, _, _)| now.saturating_duration_since(t) >= GRACE)
    }

    /// Apply heartbeats older than the grace; returns newly lost ranges.
    pub fn tick(&mut self, now: Instant) -> Vec<Lost> {
        while let Some(&(t, sent, fin)) = self.pending.front() {
            if now.saturating_duration_since(t) < GRACE {
                break;
            }
            self.pending.pop_front();
            if sent > self.sent_below || fin > self.final_below {
                self.dirty = true;
            }
            self.sent_below = self.sent_below.max(sent);
            self.final_below = self.final_below.max(fin);
        }
        let Some(base) = self.base else {
            return Vec::new();
        };
        let upto = self.final_below.min(self.sent_below);
        let from = self.settled.max(base);
        if upto <= from {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (a, b) in self.received.holes(from, upto) {
            let t_first = self
                .times
                .range(..a)
                .next_back()
                .map_or(i64::MIN, |(_, t)| t.1);
            let t_last = self.times.range(b..).next().map_or(i64::MIN, |(_, t)| t.0);
            out.push(Lost {
                gap_seq: self.gap_seq,
                seq_first: a,
                seq_last: b - 1,
                t_first_ns: t_first,
                t_last_ns: t_last,
            });
            self.gap_seq += 1;
        }
        self.settled = upto;
        self.received.trim_below(upto);
        self.dirty = true;
        out
    }

    /// Seq ranges [first, last] sent but not (yet) received.
    pub fn missing(&self) -> Vec<(u64, u64)> {
        let Some(base) = self.base else {
            return Vec::new();
        };
        self.received
            .holes(self.settled.max(base), self.sent_below)
            .into_iter()
            .map(|(a, b)| (a, b - 1))
            .collect()
    }

    pub fn sent_below(&self) -> u64 {
        self.sent_below
    }
    pub fn final_below(&self) -> u64 {
        self.final_below
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_set() {
        let mut r = RangeSet::default();
        r.insert(5, 6);
        r.insert(7, 9);
        r.insert(6, 7);
        r.insert(20, 30);
        assert_eq!(r.ranges().collect::<Vec<_>>(), vec![(5, 9), (20, 30)]);
        assert!(r.contains(8) && !r.contains(9) && !r.contains(4));
        assert_eq!(r.holes(0, 40), vec![(0, 5), (9, 20), (30, 40)]);
        assert_eq!(r.holes(6, 8), vec![]);
        assert_eq!(r.holes(25, 3), vec![]); // an empty span, even inside a range
        assert_eq!(r.holes(25, 32), vec![(30, 32)]);
        r.trim_below(7);
        assert_eq!(r.ranges().collect::<Vec<_>>(), vec![(7, 9), (20, 30)]);
    }

    #[test]
    fn names_gaps_then_loses_them_and_persists() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ledger");
        let mut l = Ledger::open(p.clone(), 77).unwrap();
        let t0 = Instant::now();
        for s in (10..20).filter(|s| *s != 13 && *s != 14) {
            l.on_frame(s, s as i64 * 100, s as i64 * 100 + 50);
        }
        // Sent up to 20, carousel still holds 12 and up.
        l.on_control(20, 12, t0);
        assert!(l.tick(t0).is_empty(), "grace");
        assert!(l.tick(t0 + GRACE).is_empty());
        assert_eq!(l.missing(), vec![(13, 14)]);
        l.save().unwrap();
        let mut l = Ledger::open(p.clone(), 1).unwrap();
        assert_eq!(l.id, 77);
        assert_eq!(l.missing(), vec![(13, 14)]);
        assert!(l.done(15) && !l.done(13));
        l.on_control(22, 22, t0);
        l.on_frame(12, 1200, 1250);
        l.on_frame(15, 1500, 1550);
        let lost = l.tick(t0 + GRACE);
        assert_eq!(
            lost,
            vec![
                Lost {
                    gap_seq: 0,
                    seq_first: 13,
                    seq_last: 14,
                    t_first_ns: 1250,
                    t_last_ns: 1500
                },
                Lost {
                    gap_seq: 1,
                    seq_first: 20,
                    seq_last: 21,
                    t_first_ns: 1550,
                    t_last_ns: i64::MIN
                },
            ]
        );
        assert!(l.missing().is_empty());
        assert!(l.done(13), "settled");
        std::fs::write(&p, "tidegate-ledger 1\nbase x\n").unwrap();
        assert!(Ledger::open(p, 1).err().unwrap().contains("line 2"));
    }
}
