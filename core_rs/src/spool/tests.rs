use std::fs::{self, OpenOptions};
use std::io::Write;
use std::sync::Arc;

use super::*;
use crate::frame::{self, FrameSpec, Kind};
use crate::testutil::Rng;

pub(super) fn payload(i: u64) -> Vec<u8> {
    let n = (i * 37 % 500) as usize;
    (0..n).map(|j| (i as usize + j) as u8).collect()
}

pub(super) fn open(dir: &Path, seg: u64) -> Spool {
    Spool::open(dir, 3, None, seg).unwrap()
}

pub(super) fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tgs"))
        .collect();
    v.sort();
    v
}

#[test]
fn append_commit_read_reopen() {
    let td = tempfile::tempdir().unwrap();
    let sp = open(td.path(), 4096);
    assert_ne!(sp.session_id(), 0);
    for i in 0..200u64 {
        assert_eq!(
            sp.append(Kind::Data, i as i64, i as i64 + 1, &payload(i))
                .unwrap(),
            i
        );
    }
    assert_eq!(sp.next_lsn(), 200);
    assert_eq!(sp.durable_lsn(), 0);
    assert!(
        sp.read(0, 10).unwrap().is_empty(),
        "nothing durable before commit"
    );
    assert_eq!(sp.commit().unwrap(), 200);
    let frames = sp.read(0, 1000).unwrap();
    assert_eq!(frames.len(), 200);
    for (i, f) in frames.iter().enumerate() {
        let p = frame::parse(f).unwrap();
        assert_eq!(p.header.seq, i as u64);
        assert_eq!(p.header.site_id, 3);
        assert_eq!(p.header.session_id, sp.session_id());
        assert_eq!(p.payload, &payload(i as u64)[..]);
    }
    assert_eq!(sp.read(150, 10).unwrap(), frames[150..160].to_vec());
    assert_eq!(sp.read(195, 10).unwrap().len(), 5);
    assert!(sp.read(200, 10).unwrap().is_empty());
    let st = sp.stats();
    assert!(st.segments > 5, "{st:?}");
    assert_eq!(st.frames, 200);
    let session = sp.session_id();
    drop(sp);

    let sp = open(td.path(), 4096);
    assert_ne!(sp.session_id(), session);
    assert_eq!(sp.next_lsn(), 200);
    assert_eq!(sp.durable_lsn(), 200);
    assert_eq!(sp.read(0, 1000).unwrap(), frames);
    assert_eq!(sp.append(Kind::Event, 0, 0, b"x").unwrap(), 200);
    sp.commit().unwrap();
    assert_eq!(sp.read(200, 5).unwrap().len(), 1);
    assert_eq!(sp.stats().truncated_bytes, 0);
}

#[test]
fn big_frame_gets_its_own_segment() {
    let td = tempfile::tempdir().unwrap();
    let sp = open(td.path(), 1000);
    sp.append(Kind::Data, 0, 0, &[1u8; 10]).unwrap();
    sp.append(Kind::Data, 0, 0, &vec![2u8; 5000]).unwrap();
    sp.append(Kind::Data, 0, 0, &[3u8; 10]).unwrap();
    sp.commit().unwrap();
    assert_eq!(sp.stats().segments, 3);
    let f = sp.read(0, 10).unwrap();
    assert_eq!(frame::parse(&f[1]).unwrap().payload.len(), 5000);
    drop(sp);
    let sp = open(td.path(), 1000);
    assert_eq!(sp.read(0, 10).unwrap(), f);
}

fn torn_case(mangle: impl Fn(&Path)) {
    let td = tempfile::tempdir().unwrap();
    let sp = open(td.path(), 1 << 20);
    for i in 0..50u64 {
        sp.append(Kind::Data, 0, 0, &payload(i)).unwrap();
    }
    sp.commit().unwrap();
    let committed = sp.read(0, 100).unwrap();
    drop(sp);
    mangle(segment_files(td.path()).last().unwrap());
    let sp = open(td.path(), 1 << 20);
    let st = sp.stats();
    assert!(st.next_lsn >= 49, "{st:?}");
    let got = sp.read(0, 100).unwrap();
    assert_eq!(&got[..], &committed[..got.len()]);
    // The spool keeps working after truncation and reopens cleanly.
    let lsn = sp.append(Kind::Data, 0, 0, b"after").unwrap();
    sp.commit().unwrap();
    drop(sp);
    let sp = open(td.path(), 1 << 20);
    assert_eq!(sp.stats().truncated_bytes, 0);
    let last = sp.read(lsn, 1).unwrap();
    assert_eq!(frame::parse(&last[0]).unwrap().payload, b"after");
}

#[test]
fn torn_tail_garbage_is_truncated() {
    torn_case(|p| {
        let mut f = OpenOptions::new().append(true).open(p).unwrap();
        f.write_all(b"garbage that is not a frame at all").unwrap();
    });
}

#[test]
fn torn_tail_cut_mid_frame_is_truncated() {
    torn_case(|p| {
        let len = fs::metadata(p).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(p)
            .unwrap()
            .set_len(len - 7)
            .unwrap();
    });
}

#[test]
fn torn_tail_cut_mid_header_is_truncated() {
    let td = tempfile::tempdir().unwrap();
    let sp = open(td.path(), 1 << 20);
    sp.append(Kind::Data, 0, 0, b"one").unwrap();
    sp.commit().unwrap();
    drop(sp);
    let p = segment_files(td.path()).pop().unwrap();
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(&frame::MAGIC).unwrap();
    f.write_all(&[1, 1, 0]).unwrap();
    drop(f);
    let sp = open(td.path(), 1 << 20);
    assert_eq!(sp.stats().truncated_bytes, 7);
    assert_eq!(sp.next_lsn(), 1);
}

#[test]
fn cursors_persist() {
    let td = tempfile::tempdir().unwrap();
    let sp = open(td.path(), 4096);
    assert_eq!(sp.get_cursor("sent").unwrap(), 0);
    sp.set_cursor("sent", 17).unwrap();
    sp.set_cursor("it-dataset_2", u64::MAX).unwrap();
    assert_eq!(sp.get_cursor("sent").unwrap(), 17);
    for bad in ["", "a/b", "..", "x y", "é", &"a".repeat(65)] {
        assert!(
            matches!(sp.set_cursor(bad, 1), Err(SpoolError::BadCursorName(_))),
            "{bad:?}"
        );
        assert!(sp.get_cursor(bad).is_err());
    }
    drop(sp);
    let sp = open(td.path(), 4096);
    assert_eq!(sp.get_cursor("sent").unwrap(), 17);
    assert_eq!(sp.get_cursor("it-dataset_2").unwrap(), u64::MAX);
    fs::write(td.path().join("cursors/sent"), "nonsense").unwrap();
    let e = sp.get_cursor("sent").unwrap_err().to_string();
    assert!(e.contains("does not hold a number"), "{e}");
}

#[test]
fn it_side_dedupes_and_survives_reopen() {
    let td = tempfile::tempdir().unwrap();
    let sp = Spool::open(td.path(), 0, None, 4096).unwrap();
    let mk = |session: u64, seq: u64| {
        frame::build(
            &FrameSpec {
                kind: Kind::Data,
                site_id: 9,
                session_id: session,
                seq,
                t_first_ns: 1,
                t_last_ns: 2,
            },
            &payload(seq),
        )
        .unwrap()
    };
    assert!(sp.append_frame(&mk(1, 0)).unwrap());
    assert!(sp.append_frame(&mk(1, 1)).unwrap());
    assert!(!sp.append_frame(&mk(1, 0)).unwrap());
    assert!(sp.append_frame(&mk(2, 0)).unwrap());
    let mut bad = mk(1, 5);
    bad[60] ^= 1;
    assert!(matches!(sp.append_frame(&bad), Err(SpoolError::Frame(_))));
    assert_eq!(sp.stats().duplicates, 1);
    sp.commit().unwrap();
    let got = sp.read(0, 10).unwrap();
    assert_eq!(got, vec![mk(1, 0), mk(1, 1), mk(2, 0)]);
    drop(sp);
    let sp = Spool::open(td.path(), 0, None, 4096).unwrap();
    assert!(!sp.append_frame(&mk(1, 1)).unwrap());
    assert!(sp.append_frame(&mk(1, 2)).unwrap());
}

#[test]
fn concurrent_append_commit_read() {
    let td = tempfile::tempdir().unwrap();
    let sp = Arc::new(open(td.path(), 8192));
    let reader = {
        let sp = sp.clone();
        std::thread::spawn(move || {
            let mut next = 0u64;
            let mut rng = Rng::new(1);
            while next < 2000 {
                let got = sp.read(next, 1 + rng.below(50) as usize).unwrap();
                for f in got {
                    let p = frame::parse(&f).unwrap();
                    assert_eq!(p.header.seq, next);
                    assert_eq!(p.payload, &payload(next)[..]);
                    next += 1;
                }
                std::thread::yield_now();
            }
        })
    };
    for i in 0..2000u64 {
        sp.append(Kind::Data, 0, 0, &payload(i)).unwrap();
        if i % 37 == 0 {
            sp.commit().unwrap();
        }
    }
    sp.commit().unwrap();
    reader.join().unwrap();
}

#[test]
fn close_then_use_fails() {
    let td = tempfile::tempdir().unwrap();
    let sp = open(td.path(), 4096);
    sp.append(Kind::Data, 0, 0, b"x").unwrap();
    sp.close().unwrap();
    assert!(matches!(
        sp.append(Kind::Data, 0, 0, b"y"),
        Err(SpoolError::Closed)
    ));
    drop(sp);
    let sp = open(td.path(), 4096);
    assert_eq!(sp.durable_lsn(), 1, "close commits");
}

#[test]
fn one_spool_per_directory() {
    let td = tempfile::tempdir().unwrap();
    let sp = open(td.path(), 4096);
    let e = Spool::open(td.path(), 3, None, 4096).err().unwrap();
    assert!(matches!(e, SpoolError::Locked(_)), "{e}");
    sp.close().unwrap();
    let _again = open(td.path(), 4096);
}

/// A GAP payload's map, key -> value.
pub(super) fn gap_map(payload: &[u8]) -> std::collections::BTreeMap<String, rmpv::Value> {
    let v = rmpv::decode::read_value(&mut &payload[..]).unwrap();
    v.as_map()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
        .collect()
}

/// (lsn, frame) of every frame held, GAPs decoded.
pub(super) fn held(sp: &Spool) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let (got, next) = sp.read_entries(from, 1000).unwrap();
        if got.is_empty() && next == from {
            return out;
        }
        out.extend(got);
        from = next;
    }
}
