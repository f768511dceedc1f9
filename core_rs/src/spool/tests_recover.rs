//! Corrupt records found on open: skipped (an LSN hole) and named in a GAP.

use std::fs;

use super::tests::{gap_map, held, open, payload, segment_files};
use super::*;
use crate::frame::{self, FrameSpec, Kind};

/// Flip one byte of `file` at `offset`.
fn flip(file: &Path, offset: usize) {
    let mut data = fs::read(file).unwrap();
    data[offset] ^= 0xff;
    fs::write(file, data).unwrap();
}

/// Byte offset of the `n`-th record of a segment file.
fn record_offset(file: &Path, n: usize) -> usize {
    segment::scan(&fs::read(file).unwrap()).records[n].offset as usize
}

fn gaps(sp: &Spool) -> Vec<(u64, std::collections::BTreeMap<String, rmpv::Value>)> {
    held(sp)
        .into_iter()
        .filter_map(|(lsn, f)| {
            let p = frame::parse(&f).unwrap();
            (p.header.kind == Kind::Gap).then(|| (lsn, gap_map(p.payload)))
        })
        .collect()
}

fn fill(sp: &Spool, n: u64) -> Vec<Vec<u8>> {
    for i in 0..n {
        sp.append(Kind::Data, i as i64 * 10, i as i64 * 10 + 1, &payload(i))
            .unwrap();
    }
    sp.commit().unwrap();
    sp.read(0, 10_000).unwrap()
}

#[test]
fn corrupt_record_in_a_sealed_segment_is_skipped_with_a_gap() {
    let td = tempfile::tempdir().unwrap();
    let sp = open(td.path(), 600);
    let before = fill(&sp, 20);
    drop(sp);
    let first = segment_files(td.path()).remove(0);
    flip(&first, record_offset(&first, 1) + 60); // inside record 1's payload
    let sp = open(td.path(), 600);
    let st = sp.stats();
    assert_eq!((st.corrupt_records, st.gap_frames), (1, 1), "{st:?}");
    assert!(st.corrupt_bytes > 0 && st.truncated_bytes == 0);
    let got = held(&sp);
    // LSN 1 is gone; every other record keeps its LSN and bytes.
    for (lsn, f) in &got[..19] {
        assert_ne!(*lsn, 1);
        assert_eq!(f, &before[*lsn as usize]);
    }
    let g = gaps(&sp);
    assert_eq!(g.len(), 1);
    let (lsn, m) = &g[0];
    assert_eq!(*lsn, 20, "the GAP is appended at the end");
    assert_eq!(m["reason"].as_str(), Some("spool_corrupt"));
    assert_eq!(
        (m["seq_first"].as_u64(), m["seq_last"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(m["tags_unknown"].as_bool(), Some(true));
    assert_eq!(m["session_id"].as_u64(), Some(sp.session_id()));
    // The lost record lies between its neighbours' times.
    assert_eq!(
        (m["t_first_ns"].as_i64(), m["t_last_ns"].as_i64()),
        (Some(1), Some(20))
    );
    drop(sp);
    // Reported once: a second open finds the same hole but writes no new GAP.
    let sp = open(td.path(), 600);
    assert_eq!((sp.stats().corrupt_records, sp.stats().gap_frames), (1, 0));
    assert_eq!(gaps(&sp).len(), 1);
}

#[test]
fn several_damaged_records_keep_exact_lsns() {
    let td = tempfile::tempdir().unwrap();
    let sp = open(td.path(), 4000);
    let before = fill(&sp, 40);
    drop(sp);
    let first = segment_files(td.path()).remove(0);
    let n = segment::scan(&fs::read(&first).unwrap()).records.len();
    assert!(n > 8);
    let offsets: Vec<usize> = [2, 3, 6]
        .iter()
        .map(|&r| record_offset(&first, r))
        .collect();
    for o in offsets {
        flip(&first, o + 8); // site_id byte: CRC mismatch
    }
    let sp = open(td.path(), 4000);
    assert_eq!(sp.stats().corrupt_records, 3);
    for (lsn, f) in held(&sp).iter().filter(|(l, _)| *l < 40) {
        assert!(![2, 3, 6].contains(lsn));
        assert_eq!(f, &before[*lsn as usize]);
    }
    let g = gaps(&sp);
    let (a, b) = (g[0].1["seq_first"].as_u64(), g[0].1["seq_last"].as_u64());
    assert_eq!((a, b), (Some(2), Some(6)));
}

#[test]
fn corrupt_record_mid_last_segment_keeps_what_follows() {
    let td = tempfile::tempdir().unwrap();
    let sp = open(td.path(), 1 << 20);
    let before = fill(&sp, 30);
    drop(sp);
    let only = segment_files(td.path()).remove(0);
    flip(&only, record_offset(&only, 10) + 3); // magic of record 10
    let sp = open(td.path(), 1 << 20);
    let st = sp.stats();
    assert_eq!((st.corrupt_records, st.truncated_bytes), (1, 0), "{st:?}");
    let got = held(&sp);
    assert_eq!(got.len(), 30, "29 records + 1 GAP");
    assert_eq!(got[28], (29, before[29].clone()));
    // The spool goes on appending after the hole.
    let lsn = sp.append(Kind::Event, 0, 0, b"after").unwrap();
    assert_eq!(lsn, 31);
}

#[test]
fn it_side_corruption_is_placed_by_count() {
    // Frames received from another spool: seqs are not our LSNs.
    let td = tempfile::tempdir().unwrap();
    let sp = Spool::open(td.path(), 0, None, 800).unwrap();
    let mk = |seq: u64| {
        frame::build(
            &FrameSpec {
                kind: Kind::Data,
                site_id: 9,
                session_id: 77,
                seq: 1000 + seq * 2,
                t_first_ns: seq as i64,
                t_last_ns: seq as i64,
            },
            &payload(seq),
        )
        .unwrap()
    };
    for i in 0..40 {
        assert!(sp.append_frame(&mk(i)).unwrap());
    }
    sp.commit().unwrap();
    let before = sp.read(0, 100).unwrap();
    drop(sp);
    let segs = segment_files(td.path());
    assert!(segs.len() > 3);
    let second_first: u64 =
        segment::parse_segment_name(segs[1].file_name().unwrap().to_str().unwrap()).unwrap();
    flip(&segs[0], record_offset(&segs[0], 1) + 20);
    let sp = Spool::open(td.path(), 0, None, 800).unwrap();
    let got = held(&sp);
    // Later segments keep their LSNs (the count is known from the names).
    let at = got.iter().find(|(l, _)| *l == second_first).unwrap();
    assert_eq!(at.1, before[second_first as usize]);
    let g = gaps(&sp);
    assert_eq!(g.len(), 1);
    assert!(
        g[0].1["seq_first"].is_nil(),
        "seqs unknown on a receiving spool"
    );
    // Duplicates of the lost frame are accepted again (it is gone).
    assert!(sp.append_frame(&mk(1)).unwrap());
    assert!(!sp.append_frame(&mk(2)).unwrap());
}

#[test]
fn already_sent_corruption_needs_no_gap() {
    let td = tempfile::tempdir().unwrap();
    let o = SpoolOptions {
        segment_bytes: 600,
        release_cursor: Some("sent".into()),
        ..Default::default()
    };
    let sp = Spool::open_with(td.path(), 3, None, o.clone()).unwrap();
    fill(&sp, 20);
    sp.set_cursor("sent", 10).unwrap();
    drop(sp);
    let first = segment_files(td.path()).remove(0);
    flip(&first, record_offset(&first, 1) + 8);
    let sp = Spool::open_with(td.path(), 3, None, o).unwrap();
    let st = sp.stats();
    assert_eq!((st.corrupt_records, st.gap_frames), (1, 0), "{st:?}");
}

#[test]
fn sealed_segment_with_too_many_records_is_an_error() {
    let td = tempfile::tempdir().unwrap();
    let sp = open(td.path(), 600);
    fill(&sp, 20);
    drop(sp);
    let segs = segment_files(td.path());
    // Renaming the second segment one LSN lower makes the first overfull.
    let name = segs[1].file_name().unwrap().to_str().unwrap().to_owned();
    let first = segment::parse_segment_name(&name).unwrap();
    fs::rename(&segs[1], td.path().join(segment::segment_name(first - 1))).unwrap();
    let e = Spool::open(td.path(), 3, None, 600)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("but the next segment starts at LSN"), "{e}");
}

/// A power cut loses or mangles what was written after the last fdatasync:
/// the tail may be cut anywhere, zero-filled (delayed allocation) or garbage.
/// Every frame committed before the cut must come back intact, and the spool
/// must go on.
#[test]
fn power_cut_after_the_durable_point_keeps_every_durable_frame() {
    use crate::testutil::Rng;
    let mut rng = Rng::new(77);
    for round in 0..60 {
        let td = tempfile::tempdir().unwrap();
        let seg = 2000 + rng.below(6000);
        let sp = open(td.path(), seg);
        let n = 5 + rng.below(60);
        for i in 0..n {
            sp.append(Kind::Data, i as i64, i as i64, &payload(i))
                .unwrap();
        }
        let durable = sp.commit().unwrap();
        let committed = sp.read(0, 10_000).unwrap();
        let last = segment_files(td.path()).pop().unwrap();
        let durable_len = fs::metadata(&last).unwrap().len() as usize;
        for i in n..n + 1 + rng.below(30) {
            sp.append(Kind::Data, i as i64, i as i64, &payload(i))
                .unwrap();
        }
        drop(sp); // buffered bytes reach the OS, never synced
                  // The cut: only the last segment written after the sync can suffer
                  // (a roll syncs the segment it seals); later segments may vanish.
        let segs = segment_files(td.path());
        let cut_at = segs.iter().position(|p| *p == last).unwrap();
        for later in &segs[cut_at + 1..] {
            if rng.chance(2) {
                fs::remove_file(later).unwrap();
            }
        }
        let mut data = fs::read(&last).unwrap();
        let end = durable_len + rng.below((data.len() - durable_len) as u64 + 1) as usize;
        data.truncate(end);
        if end > durable_len {
            let a = durable_len + rng.below((end - durable_len) as u64) as usize;
            let b = a + rng.below((end - a) as u64 + 1) as usize;
            match rng.below(3) {
                0 => data[a..b].fill(0),
                1 => data[a..b].copy_from_slice(&rng.bytes(b - a)),
                _ => {}
            }
        }
        fs::write(&last, &data).unwrap();
        // A vanished segment in the middle is not a power-cut shape: keep the
        // later ones contiguous by removing everything after the first gap.
        let mut keep = true;
        for later in &segs[cut_at + 1..] {
            keep &= later.exists();
            if !keep && later.exists() {
                fs::remove_file(later).unwrap();
            }
        }
        let sp = open(td.path(), seg);
        assert!(sp.next_lsn() >= durable, "round {round}");
        let got = held(&sp);
        for (lsn, f) in &committed.iter().enumerate().collect::<Vec<_>>() {
            let at = got.iter().find(|(l, _)| *l == *lsn as u64);
            assert_eq!(
                at.map(|x| &x.1),
                Some(*f),
                "round {round}: durable LSN {lsn}"
            );
        }
        for (_, f) in &got {
            frame::parse(f).unwrap();
        }
        let lsn = sp.append(Kind::Event, 0, 0, b"after").unwrap();
        sp.commit().unwrap();
        assert_eq!(sp.read(lsn, 1).unwrap().len(), 1, "round {round}");
    }
}
