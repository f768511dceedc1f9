//! Error-bounded lossy reduction per tag, set by OT in the tag file: PI-style
//! exception deviation followed by swinging-door compression. Runs before the
//! (lossless) codec and keeps state across flush windows, since one window
//! often holds a single sample per tag.
//!
//! Guarantee (docs/codec.md): reconstructing a tag by linear interpolation
//! between its kept samples gives every dropped sample within `max_error`.
//! The corridor is `max_error - 2 * exception_deviation`: a sample dropped
//! by the exception test lies within 2 E of the line between the passed
//! samples around it, and the door keeps that line within the corridor.
//! Never dropped: the first sample, status changes, Bad status, null or
//! non-finite values, samples without or with backwards source time.

use std::collections::HashMap;

use super::{kind, Chunk, CodecError, Columns};

const BAD: u32 = 0x8000_0000;
const NULL_FLAG: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    /// Type hint (`kind::*`); only numeric kinds are reduced.
    pub kind: u8,
    /// Guaranteed bound on |reconstructed - original|, engineering units.
    pub max_error: f64,
    /// PI ExcDev: samples within this of the last passed one are dropped.
    pub exception_deviation: f64,
    /// Swinging door on the passed samples (else exception test only).
    pub swinging_door: bool,
    /// Longest a sample may be held back before it is released, ns.
    pub max_hold_ns: i64,
}

impl Bound {
    pub fn check(&self) -> Result<(), CodecError> {
        let ok = self.max_error.is_finite()
            && self.max_error >= 0.0
            && self.exception_deviation.is_finite()
            && self.exception_deviation >= 0.0
            && 2.0 * self.exception_deviation <= self.max_error
            && self.max_hold_ns > 0;
        if ok {
            Ok(())
        } else {
            Err(CodecError::Invalid {
                field: "bound",
                offset: 0,
                msg: format!(
                    "need 0 <= 2*exception_deviation <= max_error and max_hold > 0, got {self:?}"
                ),
            })
        }
    }

    fn corridor(&self) -> f64 {
        self.max_error - 2.0 * self.exception_deviation
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    tag: u32,
    t: i64,
    server: i64,
    status: u32,
    bits: u64,
    flags: u8,
    v: f64,
}

#[derive(Default)]
struct State {
    last_status: Option<u32>,
    last_t: i64,
    /// Value of the last sample the exception test passed.
    exc_ref: f64,
    /// Last sample the exception test dropped: passed on ("the previous
    /// value", as PI does) when the next exception comes.
    dropped: Option<Sample>,
    /// Last kept sample, the door's hinge.
    anchor: Option<(i64, f64)>,
    /// Candidate end of the current door segment, not yet emitted.
    held: Option<Sample>,
    lo: f64,
    hi: f64,
    /// Wall time since something of this tag has been pending.
    pending_since: Option<i64>,
}

#[derive(Default)]
pub struct Filter {
    bounds: HashMap<u32, Bound>,
    state: HashMap<u32, State>,
    pub samples_in: u64,
    pub samples_kept: u64,
}

fn value_of(k: u8, bits: u64) -> Option<f64> {
    let v = match k {
        kind::F64 | kind::F32 => f64::from_bits(bits),
        kind::INT => bits as i64 as f64,
        kind::UINT => bits as f64,
        _ => return None,
    };
    v.is_finite().then_some(v)
}

impl Filter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Set (or replace) a tag's bound; `None` turns reduction off for it
    /// (anything it still holds comes out with the next `apply`).
    pub fn configure(&mut self, tag: u32, bound: Option<Bound>) -> Result<(), CodecError> {
        match bound {
            Some(b) => {
                b.check()?;
                self.bounds.insert(tag, b);
            }
            None => {
                self.bounds.remove(&tag);
            }
        }
        Ok(())
    }

    /// Samples held back for all tags right now.
    pub fn pending(&self) -> usize {
        self.state
            .values()
            .map(|s| usize::from(s.held.is_some()) + usize::from(s.dropped.is_some()))
            .sum()
    }

    /// Filter one window. The result holds the kept samples of `c` plus held
    /// samples of earlier windows released now; per tag in time order.
    pub fn apply(&mut self, c: &Columns<'_>, now_ns: i64) -> Result<Chunk, CodecError> {
        c.check_lengths()?;
        self.samples_in += c.len() as u64;
        let mut out = Chunk::with_capacity(c.len());
        out.strings = c.strings.to_vec();
        let tags: Vec<u32> = self.state.keys().copied().collect();
        for tag in tags {
            let stale = !self.bounds.contains_key(&tag)
                || self.state[&tag]
                    .pending_since
                    .is_some_and(|p| now_ns.saturating_sub(p) >= self.bounds[&tag].max_hold_ns);
            if stale {
                self.release(tag, &mut out);
            }
        }
        for i in 0..c.len() {
            let tag = c.tag[i];
            let s = Sample {
                tag,
                t: c.source_ns[i],
                server: c.server_ns[i],
                status: c.status[i],
                bits: c.value_bits[i],
                flags: c.flags[i],
                v: 0.0,
            };
            match self.bounds.get(&tag).copied() {
                None => emit(&mut out, &s),
                Some(b) => self.push(b, s, now_ns, &mut out),
            }
        }
        self.samples_kept += out.len() as u64;
        Ok(out)
    }

    /// Everything still held, e.g. at shutdown.
    pub fn flush_all(&mut self) -> Chunk {
        let mut out = Chunk::default();
        let mut tags: Vec<u32> = self.state.keys().copied().collect();
        tags.sort_unstable();
        for tag in tags {
            self.release(tag, &mut out);
        }
        self.samples_kept += out.len() as u64;
        out
    }

    fn release(&mut self, tag: u32, out: &mut Chunk) {
        let Some(b) = self.bounds.get(&tag).copied() else {
            if let Some(st) = self.state.remove(&tag) {
                for s in [st.held, st.dropped].into_iter().flatten() {
                    emit(out, &s);
                }
            }
            return;
        };
        let st = self.state.get_mut(&tag).expect("state");
        if let Some(d) = st.dropped.take() {
            door(b, st, d, out);
        }
        if let Some(h) = st.held.take() {
            emit(out, &h);
            st.anchor = Some((h.t, h.v));
        }
        st.pending_since = None;
    }

    fn push(&mut self, b: Bound, mut s: Sample, now_ns: i64, out: &mut Chunk) {
        let st = self.state.entry(s.tag).or_default();
        let v = value_of(b.kind, s.bits);
        let forced = match v {
            None => true,
            Some(_) => {
                st.last_status != Some(s.status)
                    || s.status & BAD != 0
                    || s.flags & NULL_FLAG != 0
                    || s.t == i64::MIN
                    || s.t <= st.last_t
                    || st.anchor.is_none()
            }
        };
        st.last_status = Some(s.status);
        if s.t > st.last_t || forced {
            st.last_t = s.t;
        }
        s.v = v.unwrap_or(0.0);
        if forced {
            if let Some(d) = st.dropped.take() {
                door(b, st, d, out);
            }
            if let Some(h) = st.held.take() {
                emit(out, &h);
            }
            emit(out, &s);
            // A sample the door cannot hinge on (no value, no time) starts nothing.
            st.anchor = (v.is_some() && s.t != i64::MIN).then_some((s.t, s.v));
            st.exc_ref = s.v;
            st.pending_since = None;
            return;
        }
        if st.pending_since.is_none() {
            st.pending_since = Some(now_ns);
        }
        if b.exception_deviation > 0.0 && (s.v - st.exc_ref).abs() <= b.exception_deviation {
            st.dropped = Some(s);
            return;
        }
        if let Some(d) = st.dropped.take() {
            door(b, st, d, out);
        }
        st.exc_ref = s.v;
        door(b, st, s, out);
    }
}

fn emit(out: &mut Chunk, s: &Sample) {
    out.tag.push(s.tag);
    out.source_ns.push(s.t);
    out.server_ns.push(s.server);
    out.status.push(s.status);
    out.value_bits.push(s.bits);
    out.flags.push(s.flags);
}

/// Swinging door: `s` becomes the held end if the line from the anchor to it
/// stays within the corridor of every sample since the anchor; otherwise the
/// held sample is kept and becomes the new anchor.
fn door(b: Bound, st: &mut State, s: Sample, out: &mut Chunk) {
    let (ta, va) = st.anchor.expect("anchored");
    if !b.swinging_door {
        emit(out, &s);
        st.anchor = Some((s.t, s.v));
        return;
    }
    let dt = (s.t - ta) as f64;
    let slope = (s.v - va) / dt;
    if st.held.is_some() && !(st.lo <= slope && slope <= st.hi) {
        let h = st.held.take().expect("held");
        emit(out, &h);
        st.anchor = Some((h.t, h.v));
        return door(b, st, s, out);
    }
    // Shrink a hair for rounding, so interpolation by the reader stays inside.
    let c = b.corridor() * (1.0 - 1e-9) - 1e-12 * (va.abs() + s.v.abs());
    let (lo, hi) = ((s.v - c - va) / dt, (s.v + c - va) / dt);
    if st.held.is_none() {
        (st.lo, st.hi) = (lo, hi);
    } else {
        st.lo = st.lo.max(lo);
        st.hi = st.hi.min(hi);
    }
    st.held = Some(s);
}
