//! Opening a segment after a crash: which LSN slot each scanned record takes,
//! and where holes are left for records found corrupt.
//!
//! A sealed (not last) segment holds exactly `next.first_lsn - first_lsn`
//! slots, so the number of lost records is known. Where they were is known
//! exactly when the segment's frames carry their LSN as seq (every frame the
//! OT spool builds); otherwise all of them are placed at the first damage.
//! In the last segment a damaged run followed by valid frames counts as one
//! lost record unless seqs say better; damage at its very end is a torn tail
//! (truncated by the caller).

use std::collections::HashSet;
use std::path::Path;

use super::segment::{bad_path, RecordLoc, Scan, TimeSpan};
use super::{cursor, Result, SpoolError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hole {
    pub lsn: u64,
    pub count: u64,
    /// Damaged bytes at this place.
    pub bytes: u64,
    /// Times of the good frames on either side (where the lost data lies).
    pub times: TimeSpan,
    /// The LSN range is also the lost seq range (the spool built the frames).
    pub seq_known: bool,
}

#[derive(Debug, Default)]
pub struct Placed {
    pub records: Vec<RecordLoc>,
    pub holes: Vec<Hole>,
    pub corrupt_bytes: u64,
}

fn seq_is_lsn(first: u64, expected: Option<u64>, scan: &Scan) -> bool {
    let recs = &scan.records;
    let clean = scan.bad.first().map_or(recs.len(), |b| b.before);
    !recs.is_empty()
        && recs[..clean]
            .iter()
            .enumerate()
            .all(|(i, r)| r.seq == first + i as u64)
        && recs.windows(2).all(|w| w[0].seq < w[1].seq)
        && recs[0].seq >= first
        && expected.is_none_or(|n| recs[recs.len() - 1].seq < first + n)
}

/// Slots for a scanned segment. `expected` is the slot count of a sealed
/// segment (None for the last one); `file_len` its size on disk.
pub fn place(first: u64, expected: Option<u64>, scan: &Scan, file_len: u64) -> Result<Placed> {
    let recs = &scan.records;
    let n_found = recs.len() as u64;
    let sealed_tail = if expected.is_some() {
        file_len - scan.valid_len
    } else {
        0
    };
    let damaged = !scan.bad.is_empty() || sealed_tail > 0 || expected.is_some_and(|n| n != n_found);
    if !damaged {
        return Ok(Placed {
            records: recs.clone(),
            ..Default::default()
        });
    }
    // Slots lost right before record i (i == len: after the last record).
    let mut lost = vec![0u64; recs.len() + 1];
    let seq_known = seq_is_lsn(first, expected, scan);
    if seq_known {
        let mut cur = first;
        for (i, r) in recs.iter().enumerate() {
            lost[i] = r.seq - cur;
            cur = r.seq + 1;
        }
        if let Some(n) = expected {
            lost[recs.len()] = first + n - cur;
        }
    } else if let Some(n) = expected {
        if n < n_found {
            return Err(SpoolError::Invalid(format!(
                "segment at LSN {first} holds {n_found} records but the next segment starts at LSN {}",
                first + n
            )));
        }
        let at = scan.bad.first().map_or(recs.len(), |b| b.before);
        lost[at] = n - n_found;
    } else {
        for b in &scan.bad {
            lost[b.before] += 1;
        }
    }
    let mut bytes = vec![0u64; recs.len() + 1];
    for b in &scan.bad {
        bytes[b.before] += b.len;
    }
    bytes[recs.len()] += sealed_tail;

    let mut out = Placed {
        corrupt_bytes: bytes.iter().sum(),
        ..Default::default()
    };
    for i in 0..=recs.len() {
        if lost[i] > 0 {
            let mut times = TimeSpan::default();
            if i > 0 {
                times.add(scan.times[i - 1].1, scan.times[i - 1].1);
            }
            if i < recs.len() {
                times.add(scan.times[i].0, scan.times[i].0);
            }
            out.holes.push(Hole {
                lsn: first + out.records.len() as u64,
                count: lost[i],
                bytes: bytes[i],
                times,
                seq_known,
            });
            out.records
                .extend(std::iter::repeat_n(RecordLoc::HOLE, lost[i] as usize));
        }
        if i < recs.len() {
            out.records.push(recs[i]);
        }
    }
    Ok(out)
}

/// Holes of a segment already named by a GAP frame (its `.bad` sidecar).
pub fn reported(segment: &Path) -> HashSet<(u64, u64)> {
    let Ok(text) = std::fs::read_to_string(bad_path(segment)) else {
        return HashSet::new();
    };
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace().map(|w| w.parse::<u64>().ok());
            Some((it.next()??, it.next()??))
        })
        .collect()
}

/// Record that these holes have been reported (atomic replace).
pub fn mark_reported(segment: &Path, holes: &[Hole]) -> Result<()> {
    let text: String = holes
        .iter()
        .map(|h| format!("{} {}\n", h.lsn, h.count))
        .collect();
    cursor::write_atomic(&bad_path(segment), text.as_bytes())
}
