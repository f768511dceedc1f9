//! Sender -> receiver over real loopback UDP.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::frame::{self, Kind};
use crate::spool::Spool;
use crate::testutil::Rng;

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn frame_size(rng: &mut Rng, i: u64) -> usize {
    match i % 50 {
        0 => 100_000 + rng.below(200_000) as usize,
        1..=5 => rng.below(20_000) as usize,
        _ => rng.below(3000) as usize,
    }
}

#[test]
fn loopback_2000_frames_with_garbage() {
    let ot_dir = tempfile::tempdir().unwrap();
    let it_dir = tempfile::tempdir().unwrap();
    let ot = Arc::new(Spool::open(ot_dir.path(), 1, None, 1 << 20).unwrap());
    let it = Arc::new(Spool::open(it_dir.path(), 0, None, 4 << 20).unwrap());
    let rx = DiodeReceiver::start("127.0.0.1:0", it.clone(), 1500).unwrap();
    let addr = rx.local_addr().to_string();

    let mut rng = Rng::new(2024);
    let mut payloads = Vec::new();
    for i in 0..1000u64 {
        let n = frame_size(&mut rng, i);
        let p = rng.bytes(n);
        ot.append(Kind::Data, i as i64, i as i64, &p).unwrap();
        payloads.push(p);
    }
    ot.commit().unwrap();
    let tx = DiodeSender::start(ot.clone(), &addr, 400_000_000, 1500).unwrap();

    // Garbage datagrams interleaved with real traffic must not hurt.
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..500u64 {
        let n = rng.below(1500) as usize;
        let mut b = rng.bytes(n);
        if i % 3 == 0 && b.len() >= 28 {
            b[..4].copy_from_slice(&[b'T', b'G', 1, 1]);
        }
        junk.send_to(&b, &addr).unwrap();
    }
    // The second half is appended while the sender runs.
    for i in 1000..2000u64 {
        let n = frame_size(&mut rng, i);
        let p = rng.bytes(n);
        ot.append(Kind::Data, i as i64, i as i64, &p).unwrap();
        payloads.push(p);
        if i % 100 == 0 {
            ot.commit().unwrap();
        }
    }
    ot.commit().unwrap();
    wait_for("sender idle", Duration::from_secs(60), || tx.idle());
    wait_for("receiver", Duration::from_secs(30), || {
        it.durable_lsn() >= 2000
    });
    tx.stop().unwrap();
    let st = tx.stats();
    assert_eq!(st.frames_sent, 2000);
    assert_eq!(st.backlog, 0);
    assert_eq!(ot.get_cursor(sender::CURSOR).unwrap(), 2000);
    rx.stop();
    let rs = rx.stats();
    assert_eq!(rs.frames_ok, 2000, "{rs:?}");
    assert_eq!(rs.frames_bad, 0);
    assert!(rs.packets_bad >= 1, "{rs:?}");
    assert_eq!(rs.packets, st.packets_sent + 500);

    let got = it.read(0, 5000).unwrap();
    assert_eq!(got.len(), 2000);
    let sent = ot.read(0, 5000).unwrap();
    for (g, s) in got.iter().zip(&sent) {
        assert_eq!(g, s, "IT spool holds the OT frame verbatim");
    }
    for (i, g) in got.iter().enumerate() {
        let f = frame::parse(g).unwrap();
        assert_eq!(f.header.seq, i as u64);
        assert_eq!(f.payload, &payloads[i][..]);
    }
}

#[test]
fn restart_resends_nothing_twice_and_dedupes() {
    let ot_dir = tempfile::tempdir().unwrap();
    let it_dir = tempfile::tempdir().unwrap();
    let ot = Arc::new(Spool::open(ot_dir.path(), 1, None, 1 << 20).unwrap());
    let it = Arc::new(Spool::open(it_dir.path(), 0, None, 1 << 20).unwrap());
    let rx = DiodeReceiver::start("127.0.0.1:0", it.clone(), 1500).unwrap();
    let addr = rx.local_addr().to_string();
    for i in 0..50u64 {
        ot.append(Kind::Meta, 0, 0, &vec![i as u8; 5000]).unwrap();
    }
    ot.commit().unwrap();
    let tx = DiodeSender::start(ot.clone(), &addr, 0, 1500).unwrap();
    wait_for("idle", Duration::from_secs(10), || tx.idle());
    tx.stop().unwrap();
    // Rewind the cursor: everything is resent and dropped as duplicates.
    ot.set_cursor(sender::CURSOR, 10).unwrap();
    let tx = DiodeSender::start(ot.clone(), &addr, 0, 1500).unwrap();
    wait_for("idle", Duration::from_secs(10), || tx.idle());
    wait_for("duplicates", Duration::from_secs(10), || {
        rx.stats().duplicates == 40
    });
    drop(tx);
    rx.stop();
    assert_eq!(rx.stats().frames_ok, 50);
    assert_eq!(it.durable_lsn(), 50);
}

#[test]
fn pacing_holds_the_rate() {
    let ot_dir = tempfile::tempdir().unwrap();
    let ot = Arc::new(Spool::open(ot_dir.path(), 1, None, 1 << 20).unwrap());
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..40 {
        ot.append(Kind::Data, 0, 0, &[0u8; 10_000]).unwrap();
    }
    ot.commit().unwrap();
    // ~400 KB + headers at 8 Mbit/s (1 MB/s): about 0.35 s after the first burst.
    let t0 = Instant::now();
    let tx = DiodeSender::start(
        ot.clone(),
        &sink.local_addr().unwrap().to_string(),
        8_000_000,
        1500,
    )
    .unwrap();
    wait_for("idle", Duration::from_secs(10), || tx.idle());
    let dt = t0.elapsed().as_secs_f64();
    let st = tx.stats();
    let wire = st.bytes_sent + 28 * st.packets_sent;
    let burst = 64.0 * 1500.0;
    let expect = (wire as f64 - burst) / 1e6;
    assert!(
        dt >= expect * 0.9,
        "sent {wire} bytes in {dt:.3}s, expected >= {expect:.3}s"
    );
    assert!(dt < expect * 3.0 + 0.5, "too slow: {dt:.3}s");
}

#[test]
fn bad_config_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let sp = Arc::new(Spool::open(d.path(), 1, None, 1 << 20).unwrap());
    assert!(DiodeSender::start(sp.clone(), "127.0.0.1:9", 0, 500).is_err());
    assert!(DiodeSender::start(sp.clone(), "not an address", 0, 1500).is_err());
    assert!(DiodeReceiver::start("127.0.0.1:99999", sp, 1500).is_err());
}

#[test]
fn sender_skips_dropped_frames_and_resends_a_range() {
    use crate::spool::SpoolOptions;
    let ot_dir = tempfile::tempdir().unwrap();
    let it_dir = tempfile::tempdir().unwrap();
    let opts = SpoolOptions {
        segment_bytes: 4096,
        max_bytes: 8192,
        release_cursor: Some(sender::CURSOR.into()),
        ..Default::default()
    };
    let ot = Arc::new(Spool::open_with(ot_dir.path(), 1, None, opts).unwrap());
    // Nothing sent yet and the bound is small: the oldest frames are dropped.
    for i in 0..100u64 {
        ot.append(Kind::Data, i as i64, i as i64, &[i as u8; 300])
            .unwrap();
    }
    ot.commit().unwrap();
    let first = ot.first_lsn();
    assert!(first > 0 && ot.stats().dropped_frames > 0);
    let it = Arc::new(Spool::open(it_dir.path(), 0, None, 1 << 20).unwrap());
    let rx = DiodeReceiver::start("127.0.0.1:0", it.clone(), 1500).unwrap();
    let addr = rx.local_addr().to_string();
    let tx = DiodeSender::start(ot.clone(), &addr, 0, 1500).unwrap();
    wait_for("idle", Duration::from_secs(20), || tx.idle());
    let held = ot.durable_lsn() - first;
    assert_eq!(tx.stats().frames_sent, held, "{:?}", tx.stats());
    assert_eq!(tx.stats().cursor, ot.durable_lsn());
    wait_for("landed", Duration::from_secs(20), || {
        it.durable_lsn() == held
    });
    // Re-send: clamped to what the spool holds; the cursor stays.
    assert_eq!(tx.resend(0, first + 3), Some((first, first + 3)));
    assert_eq!(tx.resend(0, first), None);
    wait_for("re-sent", Duration::from_secs(20), || {
        tx.stats().resent_frames == 3 && tx.idle()
    });
    assert_eq!(tx.stats().cursor, ot.durable_lsn());
    tx.stop().unwrap();
    rx.stop();
}
