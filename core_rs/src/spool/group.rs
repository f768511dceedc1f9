//! Group commit: one background thread syncs the spool every
//! `commit_interval`, or early once `commit_bytes` are waiting, so many
//! appends (and everyone in `wait_durable`) share one fdatasync. On an SD card
//! that keeps writes large and sequential; the loss window after a power cut
//! is at most one interval of appends, none of it acknowledged.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::{lock, Result, Spool, SpoolError};

#[derive(Default)]
struct State {
    stop: bool,
    kick: bool,
}

#[derive(Default)]
struct Signal {
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Default)]
pub(super) struct Committer {
    sig: Arc<Signal>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Committer {
    /// Ask for a commit now (the size trigger).
    pub fn kick(&self) {
        let mut s = lock(&self.sig.state);
        if !s.kick {
            s.kick = true;
            self.sig.cv.notify_one();
        }
    }

    /// Stop the thread; wait for it unless called from it (a Drop of the
    /// last reference may run there).
    pub fn stop(&self, join: bool) {
        lock(&self.sig.state).stop = true;
        self.sig.cv.notify_all();
        if !join {
            return;
        }
        let handle = lock(&self.handle).take();
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

impl Spool {
    /// Start the background committer (no-op if `commit_interval` is zero or
    /// it already runs). It holds only a weak reference: dropping the last
    /// `Arc` or calling `close` ends it.
    pub fn start_group_commit(self: &Arc<Self>) -> Result<()> {
        let interval = self.opts.commit_interval;
        if interval.is_zero() {
            return Ok(());
        }
        let mut handle = lock(&self.committer.handle);
        if handle.is_some() {
            return Ok(());
        }
        {
            let mut inner = lock(&self.inner);
            inner.check()?;
            inner.group_commit = true;
        }
        let weak = Arc::downgrade(self);
        let sig = self.committer.sig.clone();
        let h = std::thread::Builder::new()
            .name("tidegate-commit".into())
            .spawn(move || {
                let mut last_error = String::new();
                loop {
                    {
                        let mut st = lock(&sig.state);
                        if !st.stop && !st.kick {
                            st = sig
                                .cv
                                .wait_timeout(st, interval)
                                .unwrap_or_else(|p| p.into_inner())
                                .0;
                        }
                        if st.stop {
                            break;
                        }
                        st.kick = false;
                    }
                    let Some(sp) = weak.upgrade() else { break };
                    match sp.commit() {
                        Ok(_) => {}
                        Err(SpoolError::Closed) => break,
                        Err(e) => {
                            let msg = e.to_string();
                            if msg != last_error {
                                eprintln!("tidegate spool: group commit: {msg}");
                                last_error = msg;
                            }
                        }
                    }
                }
            })
            .map_err(|e| SpoolError::io("spawn the group commit thread", e))?;
        *handle = Some(h);
        Ok(())
    }
}
