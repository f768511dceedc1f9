//! Token-bucket pacing: the link's rate is a hard budget (a diode has no
//! feedback, so anything sent faster than the far side drains is lost).

use std::time::{Duration, Instant};

pub struct TokenBucket {
    /// Bytes per second; 0 means unpaced.
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `rate_bps` in bits per second; `burst_bytes` is the most sent back to back.
    pub fn new(rate_bps: u64, burst_bytes: usize) -> Self {
        let capacity = burst_bytes as f64;
        TokenBucket {
            rate: rate_bps as f64 / 8.0,
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    /// Take `bytes` now; returns how long to wait before sending them.
    /// The bucket may go into debt, so the caller sleeps once instead of spinning.
    pub fn take(&mut self, bytes: usize, now: Instant) -> Duration {
        if self.rate <= 0.0 {
            return Duration::ZERO;
        }
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::new(8_000_000, 10_000); // 1 MB/s
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(b.take(1000, t0), Duration::ZERO);
        }
        let d = b.take(1000, t0);
        assert!((d.as_secs_f64() - 0.001).abs() < 1e-6, "{d:?}");
        // After waiting, the debt is paid and tokens accrue again.
        let t1 = t0 + Duration::from_millis(11);
        assert_eq!(b.take(1000, t1), Duration::ZERO);
    }

    #[test]
    fn unpaced() {
        let mut b = TokenBucket::new(0, 10);
        assert_eq!(b.take(1 << 30, Instant::now()), Duration::ZERO);
    }
}
