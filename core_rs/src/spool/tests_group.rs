//! Group commit and wait_durable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::tests::payload;
use super::*;
use crate::frame::Kind;

fn group(dir: &Path, interval_ms: u64, bytes: u64) -> Arc<Spool> {
    let o = SpoolOptions {
        segment_bytes: 1 << 20,
        commit_interval: Duration::from_millis(interval_ms),
        commit_bytes: bytes,
        ..Default::default()
    };
    let sp = Arc::new(Spool::open_with(dir, 3, None, o).unwrap());
    sp.start_group_commit().unwrap();
    sp
}

#[test]
fn many_appends_share_few_syncs() {
    let td = tempfile::tempdir().unwrap();
    let sp = group(td.path(), 50, 0);
    let mut last = 0;
    for i in 0..2000u64 {
        last = sp.append(Kind::Data, 0, 0, &payload(i)).unwrap();
    }
    assert!(sp
        .wait_durable(last, Some(Duration::from_secs(20)))
        .unwrap());
    assert_eq!(sp.durable_lsn(), 2000);
    let st = sp.stats();
    assert!(st.commits >= 1 && st.commits < 200, "{st:?}");
    assert_eq!(sp.read(1999, 5).unwrap().len(), 1);
}

#[test]
fn size_trigger_commits_before_the_interval() {
    let td = tempfile::tempdir().unwrap();
    let sp = group(td.path(), 3_600_000, 10_000);
    let t = Instant::now();
    let mut lsn = 0;
    // Exactly enough records that the last one crosses the trigger: the commit
    // it kicks covers them all (records appended after a commit wait for the
    // next trigger or the interval, by design).
    let rec = (crate::frame::HEADER_LEN + 500) as u64;
    for _ in 0..10_000u64.div_ceil(rec) {
        lsn = sp.append(Kind::Data, 0, 0, &[7u8; 500]).unwrap();
    }
    assert!(sp.wait_durable(lsn, Some(Duration::from_secs(30))).unwrap());
    assert!(t.elapsed() < Duration::from_secs(30));
}

#[test]
fn wait_durable_times_out_then_succeeds_after_commit() {
    let td = tempfile::tempdir().unwrap();
    let sp = group(td.path(), 3_600_000, 0);
    let lsn = sp.append(Kind::Data, 0, 0, b"x").unwrap();
    assert!(!sp
        .wait_durable(lsn, Some(Duration::from_millis(100)))
        .unwrap());
    let waiter = {
        let sp = sp.clone();
        std::thread::spawn(move || sp.wait_durable(lsn, None))
    };
    std::thread::sleep(Duration::from_millis(50));
    sp.commit().unwrap();
    assert!(waiter.join().unwrap().unwrap());
    let e = sp.wait_durable(5, None).unwrap_err().to_string();
    assert!(e.contains("LSN 5 has not been appended"), "{e}");
}

#[test]
fn wait_durable_without_committer_commits_itself() {
    let td = tempfile::tempdir().unwrap();
    let sp = Spool::open(td.path(), 3, None, 4096).unwrap();
    let lsn = sp.append(Kind::Data, 0, 0, b"x").unwrap();
    assert!(sp.wait_durable(lsn, Some(Duration::ZERO)).unwrap());
    assert_eq!(sp.durable_lsn(), 1);
}

#[test]
fn close_wakes_waiters_and_stops_the_committer() {
    let td = tempfile::tempdir().unwrap();
    let sp = group(td.path(), 3_600_000, 0);
    let lsn = sp.append(Kind::Data, 0, 0, b"x").unwrap();
    let waiter = {
        let sp = sp.clone();
        std::thread::spawn(move || sp.wait_durable(lsn, None))
    };
    std::thread::sleep(Duration::from_millis(50));
    sp.close().unwrap();
    assert!(waiter.join().unwrap().unwrap(), "close commits");
    assert!(matches!(
        sp.wait_durable(lsn + 1, None),
        Err(SpoolError::Closed)
    ));
}

#[test]
fn dropping_the_spool_releases_it() {
    let td = tempfile::tempdir().unwrap();
    let sp = group(td.path(), 10, 0);
    sp.append(Kind::Data, 0, 0, b"x").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(sp);
    // The committer holds no strong reference: the directory is free again.
    let t = Instant::now();
    loop {
        match Spool::open(td.path(), 3, None, 4096) {
            Ok(sp) => {
                assert_eq!(sp.durable_lsn(), 1);
                break;
            }
            Err(SpoolError::Locked(_)) if t.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn committer_applies_the_byte_bound() {
    let td = tempfile::tempdir().unwrap();
    let o = SpoolOptions {
        segment_bytes: 4096,
        max_bytes: 8192,
        commit_interval: Duration::from_secs(3600),
        ..Default::default()
    };
    let sp = Arc::new(Spool::open_with(td.path(), 3, None, o).unwrap());
    sp.start_group_commit().unwrap();
    let mut lsn = 0;
    for i in 0..300u64 {
        lsn = sp.append(Kind::Data, 0, 0, &payload(i % 20)).unwrap();
    }
    // The appends only woke the committer; it commits and drops.
    assert!(sp.wait_durable(lsn, Some(Duration::from_secs(30))).unwrap());
    // The trim frees the bytes first and counts the drop after writing its
    // GAP frame: wait for both.
    let t = Instant::now();
    loop {
        let st = sp.stats();
        if st.bytes <= 8192 && st.dropped_frames > 0 && st.gap_frames > 0 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{st:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
