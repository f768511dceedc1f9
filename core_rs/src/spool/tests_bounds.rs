//! Bounds by bytes, age and retention: what goes, and the GAP that names it.

use std::collections::BTreeSet;
use std::time::Duration;

use super::tests::{gap_map, held};
use super::*;
use crate::codec::{self, Columns};
use crate::frame::{self, Kind};

/// A real DATA payload holding tags {i % 7, 100 + i / 10}.
fn data_payload(i: u64) -> (Vec<u8>, BTreeSet<u32>) {
    let tags = [(i % 7) as u32, 100 + (i / 10) as u32];
    let ns = [i as i64 * 1000, i as i64 * 1000 + 1];
    let cols = Columns {
        tag: &tags,
        source_ns: &ns,
        server_ns: &ns,
        status: &[0, 0],
        value_bits: &[i, i.wrapping_mul(31)],
        flags: &[0, 0],
        strings: &[],
    };
    (codec::encode(&cols).unwrap(), tags.into_iter().collect())
}

fn opts(seg: u64, max: u64) -> SpoolOptions {
    SpoolOptions {
        segment_bytes: seg,
        max_bytes: max,
        release_cursor: Some("sent".into()),
        ..Default::default()
    }
}

/// Every LSN below next_lsn is either sent (below `sent`), held, or inside
/// the seq range of a held GAP frame (seq = LSN on the OT side): nothing is
/// lost silently.
fn assert_accounted(sp: &Spool, sent: u64) -> Vec<std::collections::BTreeMap<String, rmpv::Value>> {
    let frames = held(sp);
    let mut covered: BTreeSet<u64> = frames.iter().map(|(l, _)| *l).collect();
    let mut gaps = Vec::new();
    for (_, f) in &frames {
        let p = frame::parse(f).unwrap();
        if p.header.kind == Kind::Gap {
            let g = gap_map(p.payload);
            let (a, b) = (
                g["seq_first"].as_u64().unwrap(),
                g["seq_last"].as_u64().unwrap(),
            );
            covered.extend(a..=b);
            gaps.push(g);
        }
    }
    for lsn in sent..sp.next_lsn() {
        assert!(
            covered.contains(&lsn),
            "LSN {lsn} neither held nor named in a GAP"
        );
    }
    gaps
}

#[test]
fn byte_bound_drops_oldest_unsent_and_names_them_in_a_gap() {
    let td = tempfile::tempdir().unwrap();
    let sp = Spool::open_with(td.path(), 3, None, opts(2048, 4096)).unwrap();
    let mut data = std::collections::BTreeMap::new(); // lsn -> (time, tags)
    for i in 0..200u64 {
        let (p, tags) = data_payload(i);
        let t = i as i64 * 1000;
        let lsn = sp.append(Kind::Data, t, t + 1, &p).unwrap();
        data.insert(lsn, (t, tags));
        assert!(sp.stats().bytes <= 4096, "{:?}", sp.stats());
        if i % 10 == 0 {
            sp.commit().unwrap();
        }
    }
    sp.commit().unwrap();
    let st = sp.stats();
    assert!(st.dropped_frames > 100 && st.dropped_segments > 5, "{st:?}");
    assert_eq!(st.retired_frames, 0, "nothing was sent");
    assert!(st.gap_frames > 0 && st.first_lsn > 0, "{st:?}");
    assert_eq!(st.capacity_bytes, 4096);
    assert!(st.fill_permille > 300 && st.fill_permille <= 1000, "{st:?}");
    let gaps = assert_accounted(&sp, 0);
    // One run of loss: a GAP naming it from seq 0, with the tags and times
    // of every DATA frame in its range.
    assert!(gaps.len() <= 2, "{gaps:?}");
    let g = &gaps[gaps.len() - 1];
    assert_eq!(g["reason"].as_str(), Some("spool_full"));
    assert_eq!(g["seq_first"].as_u64(), Some(0));
    let last = g["seq_last"].as_u64().unwrap();
    let lost: Vec<_> = data.range(0..=last).map(|(_, v)| v).collect();
    let want: BTreeSet<u32> = lost.iter().flat_map(|(_, t)| t.iter().copied()).collect();
    let got: BTreeSet<u32> = g["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(got, want);
    assert_eq!(g["t_first_ns"].as_i64(), Some(0));
    assert_eq!(g["t_last_ns"].as_i64(), Some(lost[lost.len() - 1].0 + 1));
    assert_eq!(g["tags_unknown"].as_bool(), Some(false));
    assert!(g["frames"].as_u64().unwrap() >= lost.len() as u64);
    // Segment files on disk are exactly the ones held.
    drop(sp);
    let sp = Spool::open_with(td.path(), 3, None, opts(2048, 4096)).unwrap();
    assert_eq!(sp.stats().dropped_frames, 0, "a clean reopen drops nothing");
    assert_accounted(&sp, 0);
}

#[test]
fn sent_frames_are_retired_without_gap() {
    let td = tempfile::tempdir().unwrap();
    let sp = Spool::open_with(td.path(), 3, None, opts(2048, 4096)).unwrap();
    for i in 0..200u64 {
        sp.append(Kind::Data, 0, 0, &data_payload(i).0).unwrap();
        let d = sp.commit().unwrap();
        sp.set_cursor("sent", d).unwrap();
    }
    let st = sp.stats();
    assert!(st.retired_frames > 100 && st.retired_segments > 5, "{st:?}");
    assert_eq!((st.dropped_frames, st.gap_frames), (0, 0), "{st:?}");
    assert_eq!(st.unreleased_frames, 0);
    let kinds: Vec<Kind> = held(&sp)
        .iter()
        .map(|(_, f)| frame::parse(f).unwrap().header.kind)
        .collect();
    assert!(kinds.iter().all(|k| *k == Kind::Data));
}

#[test]
fn partly_sent_segment_names_only_the_unsent_part() {
    let td = tempfile::tempdir().unwrap();
    let sp = Spool::open_with(td.path(), 3, None, opts(2048, 4096)).unwrap();
    for i in 0..12u64 {
        sp.append(Kind::Data, 0, 0, &data_payload(i).0).unwrap();
    }
    sp.commit().unwrap();
    sp.set_cursor("sent", 5).unwrap();
    for i in 12..200u64 {
        sp.append(Kind::Data, 0, 0, &data_payload(i).0).unwrap();
    }
    sp.commit().unwrap();
    let gaps = assert_accounted(&sp, 5);
    assert_eq!(gaps[gaps.len() - 1]["seq_first"].as_u64(), Some(5));
    assert_eq!(sp.stats().retired_frames, 5);
}

#[test]
fn retention_window_keeps_sent_frames_for_resend() {
    let td = tempfile::tempdir().unwrap();
    let o = SpoolOptions {
        retain_released: Duration::from_millis(300),
        ..opts(2048, 0)
    };
    let sp = Spool::open_with(td.path(), 3, None, o).unwrap();
    for i in 0..100u64 {
        sp.append(Kind::Data, 0, 0, &data_payload(i).0).unwrap();
    }
    let d = sp.commit().unwrap();
    sp.set_cursor("sent", d).unwrap();
    let segs = sp.stats().segments;
    assert!(segs > 3);
    sp.commit().unwrap();
    assert_eq!(sp.stats().segments, segs, "inside the window: kept");
    assert_eq!(sp.read(0, 1).unwrap().len(), 1);
    std::thread::sleep(Duration::from_millis(600));
    sp.append(Kind::Event, 0, 0, b"tick").unwrap();
    sp.commit().unwrap();
    let st = sp.stats();
    assert_eq!(st.segments, 1, "{st:?}");
    assert_eq!((st.dropped_frames, st.gap_frames), (0, 0));
    assert!(st.retired_frames > 0);
}

#[test]
fn age_bound_drops_old_unsent_segments() {
    let td = tempfile::tempdir().unwrap();
    let o = SpoolOptions {
        max_age: Duration::from_millis(300),
        ..opts(2048, 0)
    };
    let sp = Spool::open_with(td.path(), 3, None, o.clone()).unwrap();
    for i in 0..100u64 {
        sp.append(Kind::Data, 7, 9, &data_payload(i).0).unwrap();
    }
    sp.commit().unwrap();
    std::thread::sleep(Duration::from_millis(600));
    sp.append(Kind::Event, 10, 10, b"x").unwrap();
    sp.commit().unwrap();
    let gaps = assert_accounted(&sp, 0);
    assert!(gaps
        .iter()
        .all(|g| g["reason"].as_str() == Some("spool_age")));
    assert!(sp.stats().dropped_frames > 0);
    assert_eq!(sp.stats().segments, 1);
    for i in 0..100u64 {
        sp.append(Kind::Data, 7, 9, &data_payload(i).0).unwrap();
    }
    sp.close().unwrap();
    drop(sp);
    // After a restart the age comes from the file mtimes.
    std::thread::sleep(Duration::from_millis(600));
    let sp = Spool::open_with(td.path(), 3, None, o).unwrap();
    assert!(sp.stats().dropped_frames > 0, "{:?}", sp.stats());
    assert_eq!(sp.stats().segments, 1);
    assert_accounted(&sp, 0);
}

#[test]
fn dropped_gap_frames_are_carried_forward() {
    let td = tempfile::tempdir().unwrap();
    let sp = Spool::open_with(td.path(), 3, None, opts(1024, 2048)).unwrap();
    for i in 0..400u64 {
        sp.append(Kind::Data, i as i64, i as i64, &data_payload(i).0)
            .unwrap();
    }
    sp.commit().unwrap();
    // Many rounds of dropping: GAPs were dropped too, yet every LSN is named.
    assert!(sp.stats().gap_frames > 10);
    let gaps = assert_accounted(&sp, 0);
    assert!(gaps.iter().any(|g| g["seq_first"].as_u64() == Some(0)));
    assert!(gaps.len() <= 2, "adjacent GAPs merge: {gaps:?}");
}

#[test]
fn bad_bounds_are_rejected() {
    let td = tempfile::tempdir().unwrap();
    let e = Spool::open_with(td.path(), 3, None, opts(4096, 5000))
        .err()
        .unwrap();
    assert!(e.to_string().contains("at least 2 x segment_bytes"), "{e}");
    let e = Spool::open_with(
        td.path(),
        3,
        None,
        SpoolOptions {
            release_cursor: Some("a/b".into()),
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert!(matches!(e, SpoolError::BadCursorName(_)), "{e}");
}

#[test]
fn time_range_lookup() {
    let td = tempfile::tempdir().unwrap();
    let sp = Spool::open_with(td.path(), 3, None, opts(1024, 0)).unwrap();
    for i in 0..100i64 {
        sp.append(Kind::Data, i * 10, i * 10 + 5, &data_payload(i as u64).0)
            .unwrap();
    }
    assert_eq!(
        sp.lsn_range_for_time(0, 1000).unwrap(),
        None,
        "nothing durable yet"
    );
    sp.commit().unwrap();
    assert_eq!(sp.lsn_range_for_time(203, 297).unwrap(), Some((20, 30)));
    assert_eq!(sp.lsn_range_for_time(206, 208).unwrap(), None);
    assert_eq!(sp.lsn_range_for_time(-50, 0).unwrap(), Some((0, 1)));
    assert_eq!(sp.lsn_range_for_time(995, 5000).unwrap(), Some((99, 100)));
    let st = sp.stats();
    assert_eq!((st.oldest_ns, st.newest_ns), (0, 995));
}
