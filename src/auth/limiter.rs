//! A sliding-window counter per key (an IP, an account): failed logins, guest
//! logins. In memory, pruned as it goes.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many keys, stale ones are swept on the next record.
const SWEEP_ABOVE_KEYS: usize = 10_000;

#[derive(Debug)]
pub struct SlidingWindow {
    /// Events allowed per window; 0 turns the limit off.
    limit: usize,
    window: Duration,
    events: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SlidingWindow {
    pub fn per_minute(limit: u32) -> Self {
        Self {
            limit: limit as usize,
            window: Duration::from_secs(60),
            events: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when `key` has used its allowance.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        self.check_at(key, Instant::now())
    }

    /// Counts one event for `key`.
    pub fn record(&self, key: &str) {
        self.record_at(key, Instant::now());
    }

    /// Checks, and counts the event when it is allowed.
    pub fn hit(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        self.check_at(key, now)?;
        self.record_at(key, now);
        Ok(())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), u64> {
        if self.limit == 0 {
            return Ok(());
        }
        let mut events = self.lock();
        let Some(times) = events.get_mut(key) else {
            return Ok(());
        };
        self.expire(times, now);
        if times.len() < self.limit {
            return Ok(());
        }
        // The wait until the oldest counted event leaves the window, in
        // whole seconds, rounded up.
        let oldest = times.front().copied().unwrap_or(now);
        let wait = (oldest + self.window).saturating_duration_since(now);
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Err(secs.max(1))
    }

    fn record_at(&self, key: &str, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let mut events = self.lock();
        if events.len() > SWEEP_ABOVE_KEYS {
            events.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < self.window));
        }
        let times = events.entry(key.to_owned()).or_default();
        self.expire(times, now);
        times.push_back(now);
    }

    fn expire(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            times.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.events.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_limit_then_refuses_until_the_window_slides() {
        let w = SlidingWindow::per_minute(3);
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(w.check_at("ip", t0 + Duration::from_secs(i)).is_ok());
            w.record_at("ip", t0 + Duration::from_secs(i));
        }
        let wait = w.check_at("ip", t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, 50);
        assert!(w.check_at("other", t0).is_ok(), "keys are independent");
        assert!(
            w.check_at("ip", t0 + Duration::from_secs(60)).is_ok(),
            "the first event left the window"
        );
    }

    #[test]
    fn zero_means_unlimited() {
        let w = SlidingWindow::per_minute(0);
        for _ in 0..100 {
            assert!(w.hit("k").is_ok());
        }
    }
}
