//! Sender -> (lossy relay) -> receiver over real loopback UDP.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::relay::{Impairment, Relay};
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

struct Sides {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    ot: Arc<Spool>,
    it: Arc<Spool>,
    it_dir: std::path::PathBuf,
}

fn sides() -> Sides {
    let ot_dir = tempfile::tempdir().unwrap();
    let it_dir = tempfile::tempdir().unwrap();
    let ot = Arc::new(Spool::open(ot_dir.path(), 1, None, 4 << 20).unwrap());
    let it = Arc::new(Spool::open(it_dir.path(), 0, None, 4 << 20).unwrap());
    let p = it_dir.path().to_path_buf();
    Sides {
        _dirs: (ot_dir, it_dir),
        ot,
        it,
        it_dir: p,
    }
}

fn fill(ot: &Spool, rng: &mut Rng, from: u64, n: u64) {
    for i in from..from + n {
        let len = frame_size(rng, i);
        ot.append(Kind::Data, i as i64, i as i64, &rng.bytes(len))
            .unwrap();
    }
    ot.commit().unwrap();
}

/// Every OT frame is in the IT spool, byte for byte (order may differ).
fn assert_all_landed(ot: &Spool, it: &Spool) {
    let sent = ot.read(0, 1 << 20).unwrap();
    let mut got: Vec<Vec<u8>> = it
        .read(0, 1 << 20)
        .unwrap()
        .into_iter()
        .filter(|f| frame::parse(f).unwrap().header.kind != Kind::Gap)
        .collect();
    got.sort_by_key(|f| frame::parse(f).unwrap().header.seq);
    assert_eq!(got.len(), sent.len(), "frames landed");
    for (g, s) in got.iter().zip(&sent) {
        assert!(
            g == s,
            "IT frame seq {} differs",
            frame::parse(g).unwrap().header.seq
        );
    }
}

fn opts(rate: u64, repair: f64, carousel: &[u64]) -> SenderOptions {
    let mut o = SenderOptions::new(rate, 1500);
    o.repair_pct = repair;
    o.carousel = carousel
        .iter()
        .map(|&ms| Duration::from_millis(ms))
        .collect();
    o.heartbeat = Duration::from_millis(200);
    o
}

#[test]
fn loopback_2000_frames_with_garbage() {
    let s = sides();
    let rx = DiodeReceiver::start("127.0.0.1:0", s.it.clone(), 1500).unwrap();
    let addr = rx.local_addr().to_string();
    let mut rng = Rng::new(2024);
    fill(&s.ot, &mut rng, 0, 1000);
    // Well below what loopback carries: these tests check correctness, and a
    // starved receiver on a loaded CI box would drop packets at higher rates.
    let tx = DiodeSender::start(s.ot.clone(), &addr, 100_000_000, 1500).unwrap();
    // Garbage datagrams interleaved with real traffic must not hurt.
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..500u64 {
        let n = rng.below(1500) as usize;
        let mut b = rng.bytes(n);
        if i % 3 == 0 && b.len() >= 4 {
            b[..4].copy_from_slice(&[b'T', b'G', 2, 1 + (i % 3) as u8]);
        }
        junk.send_to(&b, &addr).unwrap();
    }
    fill(&s.ot, &mut rng, 1000, 1000); // appended while the sender runs
    wait_for("sender idle", Duration::from_secs(60), || tx.idle());
    wait_for("receiver", Duration::from_secs(30), || {
        rx.stats().frames_ok >= 2000
    });
    tx.stop().unwrap();
    assert_eq!(tx.stats().frames_sent, 2000);
    assert_eq!(s.ot.get_cursor(sender::CURSOR).unwrap(), 2000);
    rx.stop();
    let rs = rx.stats();
    assert_eq!(
        (rs.frames_ok, rs.frames_bad, rs.lost),
        (2000, 0, 0),
        "{rs:?}"
    );
    assert_eq!(rs.packets_bad, 500, "{rs:?}");
    // No loss: every frame, byte for byte. (Order is kept only within the
    // receiver's 1 s hold, which a starved CI box can exceed.)
    assert_all_landed(&s.ot, &s.it);
}

#[test]
fn restart_resends_nothing_twice_and_dedupes() {
    let s = sides();
    let rx = DiodeReceiver::start("127.0.0.1:0", s.it.clone(), 1500).unwrap();
    let addr = rx.local_addr().to_string();
    for i in 0..50u64 {
        // Tiny frames travel many to an object.
        let len = if i % 2 == 0 { 5000 } else { (i % 3) as usize };
        s.ot.append(Kind::Meta, 0, 0, &vec![i as u8; len]).unwrap();
    }
    s.ot.commit().unwrap();
    let tx = DiodeSender::start(s.ot.clone(), &addr, 0, 1500).unwrap();
    wait_for("idle", Duration::from_secs(10), || tx.idle());
    wait_for("frames", Duration::from_secs(10), || {
        rx.stats().frames_ok == 50
    });
    let first = tx.stats().link_session;
    tx.stop().unwrap();
    // Rewind the cursor: a new session resends 40 frames, all dropped as duplicates.
    s.ot.set_cursor(sender::CURSOR, 10).unwrap();
    let tx = DiodeSender::start(s.ot.clone(), &addr, 0, 1500).unwrap();
    assert_ne!(tx.stats().link_session, first);
    wait_for("idle", Duration::from_secs(10), || tx.idle());
    wait_for("duplicates", Duration::from_secs(10), || {
        rx.stats().duplicate_packets > 20
    });
    drop(tx);
    rx.stop();
    assert_eq!(rx.stats().frames_ok, 50);
    assert_eq!(s.it.durable_lsn(), 50);
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
    // ~420 KB + headers at 8 Mbit/s (1 MB/s): about 0.35 s after the first burst.
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

/// The encoder runs ahead of the wire; stopping mid-window (encoder blocked
/// on the full queue) must leave the cursor where the last fully sent window
/// ended, so a restart sends the rest and nothing is lost.
#[test]
fn stop_mid_window_keeps_the_cursor_and_a_restart_completes() {
    let s = sides();
    let rx = DiodeReceiver::start("127.0.0.1:0", s.it.clone(), 1500).unwrap();
    let addr = rx.local_addr().to_string();
    for i in 0..300u64 {
        s.ot.append(Kind::Data, i as i64, i as i64, &vec![i as u8; 20_000])
            .unwrap();
    }
    s.ot.commit().unwrap();
    // 8 Mbit/s with a 5 s window: the first window alone takes 5 s to send.
    let mut o = opts(8_000_000, 5.0, &[]);
    o.interleave = Duration::from_secs(5);
    let tx = DiodeSender::start_with(s.ot.clone(), &addr, o).unwrap();
    wait_for("first packets", Duration::from_secs(10), || {
        tx.stats().packets_sent > 50
    });
    let t = Instant::now();
    tx.stop().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "stop took {:?}",
        t.elapsed()
    );
    let st = tx.stats();
    assert!(st.packets_sent > 50 && st.packets_sent < 3000, "{st:?}");
    assert_eq!((st.cursor, st.frames_sent), (0, 0), "{st:?}");
    assert_eq!(s.ot.get_cursor(sender::CURSOR).unwrap(), 0);
    assert!(!tx.idle());
    drop(tx);
    let tx = DiodeSender::start(s.ot.clone(), &addr, 0, 1500).unwrap();
    wait_for("idle", Duration::from_secs(30), || tx.idle());
    tx.stop().unwrap(); // before its next 1 s heartbeat, most likely
    assert_eq!(
        (
            tx.stats().frames_sent,
            s.ot.get_cursor(sender::CURSOR).unwrap()
        ),
        (300, 300)
    );
    wait_for("frames", Duration::from_secs(30), || {
        rx.stats().frames_ok == 300
    });
    // The last HEARTBEAT, sent on stop, tells the receiver where the session ended.
    wait_for("final heartbeat", Duration::from_secs(5), || {
        rx.stats().sent_below == 300
    });
    rx.stop();
    assert_all_landed(&s.ot, &s.it);
}

#[test]
fn bad_config_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let sp = Arc::new(Spool::open(d.path(), 1, None, 1 << 20).unwrap());
    assert!(DiodeSender::start(sp.clone(), "127.0.0.1:9", 0, 500).is_err());
    assert!(DiodeSender::start(sp.clone(), "not an address", 0, 1500).is_err());
    let mut o = SenderOptions::new(0, 1500);
    o.repair_pct = 101.0;
    assert!(DiodeSender::start_with(sp.clone(), "127.0.0.1:9", o).is_err());
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

/// Send `n` frames through a relay with `imp`; returns (receiver stats, relay drops).
fn lossy_run(imp: Impairment, repair: f64, n: u64) -> (ReceiverStats, u64) {
    let s = sides();
    let rx = DiodeReceiver::start("127.0.0.1:0", s.it.clone(), 1500).unwrap();
    let relay = Relay::start(rx.local_addr(), imp);
    let mut rng = Rng::new(imp.seed);
    fill(&s.ot, &mut rng, 0, n);
    let tx = DiodeSender::start_with(
        s.ot.clone(),
        &relay.addr.to_string(),
        opts(50_000_000, repair, &[]), // the relay is one more thread to starve: stay slow
    )
    .unwrap();
    wait_for("sender idle", Duration::from_secs(60), || tx.idle());
    wait_for("all frames or named gaps", Duration::from_secs(20), || {
        let r = rx.stats();
        r.frames_ok + r.lost >= n
    });
    drop(tx);
    rx.stop();
    assert_all_landed(&s.ot, &s.it);
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    assert!(
        relay.forwarded.load(relaxed) > 1000,
        "the relay carried the link"
    );
    (rx.stats(), relay.dropped.load(relaxed))
}

#[test]
fn zero_loss_at_2pct_drop_with_5pct_repair() {
    let imp = Impairment {
        drop_ppm: 20_000,
        seed: 1,
        ..Default::default()
    };
    let (rs, dropped) = lossy_run(imp, 5.0, 1500);
    assert!(dropped > 100, "the relay dropped {dropped}");
    assert!(rs.blocks_repaired >= 3, "{rs:?}");
    assert_eq!((rs.lost, rs.gap_frames), (0, 0), "{rs:?}");
}

#[test]
fn zero_loss_at_5pct_drop_with_10pct_repair_reorder_and_dups() {
    let imp = Impairment {
        drop_ppm: 50_000,
        dup_ppm: 10_000,
        reorder_ppm: 20_000,
        seed: 2,
        record: false,
    };
    let (rs, dropped) = lossy_run(imp, 10.0, 1500);
    assert!(dropped > 200, "the relay dropped {dropped}");
    assert!(rs.duplicate_packets > 0, "{rs:?}");
    assert_eq!(rs.lost, 0, "{rs:?}");
}

#[test]
fn blackout_names_the_gap_then_the_carousel_fills_it() {
    let s = sides();
    let mut ro = ReceiverOptions::new(1500);
    ro.ledger = Some(s.it_dir.join("link.ledger"));
    let rx = DiodeReceiver::start_with("127.0.0.1:0", s.it.clone(), ro).unwrap();
    let relay = Relay::start(rx.local_addr(), Impairment::default());
    let tx = DiodeSender::start_with(
        s.ot.clone(),
        &relay.addr.to_string(),
        opts(50_000_000, 5.0, &[3000]),
    )
    .unwrap();
    let mut rng = Rng::new(3);
    fill(&s.ot, &mut rng, 0, 20);
    wait_for("first frames", Duration::from_secs(10), || {
        rx.stats().frames_ok == 20
    });
    // Frames sent during a 1 s blackout are lost on their first pass...
    let t = std::thread::spawn(move || {
        relay.blackout(Duration::from_secs(1));
        relay
    });
    std::thread::sleep(Duration::from_millis(100));
    fill(&s.ot, &mut rng, 20, 20);
    let relay = t.join().unwrap();
    let t_named = Instant::now();
    // ... named as missing within 2 s of the blackout's end ...
    wait_for("gap named", Duration::from_secs(2), || {
        rx.missing() == vec![(20, 39)]
    });
    assert!(t_named.elapsed() < Duration::from_secs(2));
    assert_eq!(rx.stats().lost, 0, "the carousel still holds them");
    // ... and delivered by the carousel pass 3 s after the first.
    wait_for("carousel", Duration::from_secs(10), || {
        rx.stats().frames_ok == 40
    });
    wait_for("final", Duration::from_secs(5), || {
        tx.stats().carousel_pending == 0
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(rx.missing().is_empty());
    assert_eq!(rx.stats().gap_frames, 0);
    drop((tx, relay));
    rx.stop();
    assert_all_landed(&s.ot, &s.it);
}

#[test]
fn loss_beyond_the_carousel_becomes_a_gap_frame() {
    let s = sides();
    let rx = DiodeReceiver::start("127.0.0.1:0", s.it.clone(), 1500).unwrap();
    let relay = Relay::start(rx.local_addr(), Impairment::default());
    let tx = DiodeSender::start_with(
        s.ot.clone(),
        &relay.addr.to_string(),
        opts(50_000_000, 5.0, &[]),
    )
    .unwrap();
    let mut rng = Rng::new(4);
    fill(&s.ot, &mut rng, 0, 10);
    wait_for("first frames", Duration::from_secs(10), || {
        rx.stats().frames_ok == 10
    });
    relay
        .blackout_on
        .store(true, std::sync::atomic::Ordering::Relaxed);
    for i in 10..15 {
        s.ot.append(Kind::Data, 1000 + i, 2000 + i, b"lost")
            .unwrap();
    }
    s.ot.commit().unwrap();
    wait_for("sent", Duration::from_secs(5), || tx.idle());
    std::thread::sleep(Duration::from_millis(100));
    relay
        .blackout_on
        .store(false, std::sync::atomic::Ordering::Relaxed);
    fill(&s.ot, &mut rng, 15, 5);
    wait_for("gap frame", Duration::from_secs(5), || {
        rx.stats().gap_frames == 1
    });
    wait_for("rest", Duration::from_secs(5), || {
        rx.stats().frames_ok == 15
    });
    rx.stop();
    let gaps: Vec<Vec<u8>> =
        s.it.read(0, 100)
            .unwrap()
            .into_iter()
            .filter(|f| frame::parse(f).unwrap().header.kind == Kind::Gap)
            .collect();
    assert_eq!(gaps.len(), 1);
    let g = frame::parse(&gaps[0]).unwrap();
    let p = g.payload;
    // msgpack: seq_first 10, seq_last 14, reason link_loss (decoded in Python tests).
    assert!(p.windows(9).any(|w| w == b"link_loss"));
    assert!(p.ends_with(&[0xcf, 0, 0, 0, 0, 0, 0, 0, 14]));
    assert_eq!(rx.stats().lost, 5);
}

#[test]
fn receiver_restart_mid_stream_loses_nothing() {
    let s = sides();
    let ledger = s.it_dir.join("link.ledger");
    let start_rx = |port: u16| {
        let mut ro = ReceiverOptions::new(1500);
        ro.ledger = Some(ledger.clone());
        DiodeReceiver::start_with(&format!("127.0.0.1:{port}"), s.it.clone(), ro).unwrap()
    };
    let rx = start_rx(0);
    let port = rx.local_addr().port();
    let tx = DiodeSender::start_with(
        s.ot.clone(),
        &rx.local_addr().to_string(),
        opts(20_000_000, 5.0, &[2000]),
    )
    .unwrap();
    let mut rng = Rng::new(5);
    fill(&s.ot, &mut rng, 0, 100);
    wait_for("some frames", Duration::from_secs(10), || {
        rx.stats().frames_ok > 10
    });
    rx.stop();
    drop(rx);
    std::thread::sleep(Duration::from_millis(500));
    let rx = start_rx(port);
    wait_for("carousel fills the hole", Duration::from_secs(20), || {
        s.it.read(0, 1000).unwrap().len() >= 100
    });
    wait_for("settled", Duration::from_secs(10), || {
        tx.stats().carousel_pending == 0
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rx.stats().gap_frames, 0, "{:?}", rx.stats());
    drop(tx);
    rx.stop();
    assert_all_landed(&s.ot, &s.it);
}

#[test]
fn wrong_key_and_replays_are_counted_and_dropped() {
    let s = sides();
    let key_a = s.it_dir.join("a.key");
    let key_b = s.it_dir.join("b.key");
    auth::generate_key_file(&key_a).unwrap();
    auth::generate_key_file(&key_b).unwrap();
    let mut ro = ReceiverOptions::new(1500);
    ro.keys = LinkKeys::load(&key_a).unwrap();
    let rx = DiodeReceiver::start_with("127.0.0.1:0", s.it.clone(), ro).unwrap();
    let imp = Impairment {
        record: true,
        ..Default::default()
    };
    let relay = Relay::start(rx.local_addr(), imp);
    let mut o = opts(0, 5.0, &[]);
    o.keys = LinkKeys::load(&key_b).unwrap();
    let tx = DiodeSender::start_with(s.ot.clone(), &relay.addr.to_string(), o).unwrap();
    fill(&s.ot, &mut Rng::new(6), 0, 30);
    wait_for("forged packets", Duration::from_secs(10), || {
        rx.stats().packets_bad_tag > 50
    });
    tx.stop().unwrap();
    assert_eq!(rx.stats().frames_ok, 0);
    // The right key: everything lands; then replay every recorded packet.
    s.ot.set_cursor(sender::CURSOR, 0).unwrap();
    let mut o = opts(0, 5.0, &[]);
    o.keys = LinkKeys::load(&key_a).unwrap();
    relay.recorded.lock().unwrap().clear();
    let tx = DiodeSender::start_with(s.ot.clone(), &relay.addr.to_string(), o).unwrap();
    wait_for("frames", Duration::from_secs(10), || {
        rx.stats().frames_ok == 30
    });
    drop(tx);
    let before = rx.stats();
    let replay = UdpSocket::bind("127.0.0.1:0").unwrap();
    for p in relay.recorded.lock().unwrap().iter() {
        replay.send_to(p, rx.local_addr()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rx.stats();
    assert_eq!(after.frames_ok, 30);
    assert!(
        after.duplicate_packets > before.duplicate_packets,
        "{after:?}"
    );
    assert!(after.replayed_controls > 0, "{after:?}");
    rx.stop();
    assert_all_landed(&s.ot, &s.it);
}

#[test]
fn jumbo_mtu_symbols_fill_the_datagram() {
    let s = sides();
    let rx = DiodeReceiver::start("127.0.0.1:0", s.it.clone(), 9000).unwrap();
    let mut o = opts(0, 5.0, &[]);
    o.mtu = 9000;
    let tx = DiodeSender::start_with(s.ot.clone(), &rx.local_addr().to_string(), o).unwrap();
    fill(&s.ot, &mut Rng::new(8), 0, 200);
    wait_for("frames", Duration::from_secs(20), || {
        rx.stats().frames_ok == 200
    });
    let st = tx.stats();
    // Full packets are 9000 - 28 bytes: symbols of 8928 plus 44 bytes of header and tag.
    assert_eq!(packet::symbol_size(9000), 8928);
    assert!(st.bytes_sent / st.packets_sent > 4000, "{st:?}");
    drop(tx);
    rx.stop();
    assert_all_landed(&s.ot, &s.it);
}
