//! Per-session limits on the socket: token buckets for frames and chat, and
//! the flood rule that closes a session that keeps going past them.

use std::time::{Duration, Instant};

/// Refusals within one window before the session is closed.
const FLOOD_STRIKES: u32 = 20;
const FLOOD_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct TokenBucket {
    per_sec: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(per_sec: f64, burst: f64) -> Self {
        Self {
            per_sec,
            capacity: burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes one token; false when the bucket is empty.
    pub fn take(&mut self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.per_sec;
        self.tokens = (self.tokens + refill).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts refused frames; true once a session has gone on flooding.
#[derive(Debug)]
pub struct Flood {
    strikes: u32,
    window_start: Instant,
}

impl Default for Flood {
    fn default() -> Self {
        Self {
            strikes: 0,
            window_start: Instant::now(),
        }
    }
}

impl Flood {
    pub fn strike(&mut self) -> bool {
        if self.window_start.elapsed() > FLOOD_WINDOW {
            self.strikes = 0;
            self.window_start = Instant::now();
        }
        self.strikes += 1;
        self.strikes > FLOOD_STRIKES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, 3.0);
        b.last = t0;
        assert!((0..3).all(|_| b.take_at(t0)));
        assert!(!b.take_at(t0));
        assert!(
            b.take_at(t0 + Duration::from_millis(500)),
            "one token after half a second at 2/s"
        );
        assert!(!b.take_at(t0 + Duration::from_millis(500)));
    }

    #[test]
    fn flooding_is_a_run_of_strikes() {
        let mut f = Flood::default();
        assert!((0..FLOOD_STRIKES).all(|_| !f.strike()));
        assert!(f.strike());
    }
}
