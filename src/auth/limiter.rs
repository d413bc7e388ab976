//! A sliding-window counter per key (an IP, an account): failed logins, guest
//! logins, registrations, CAPTCHA and OIDC starts, password changes. In
//! memory, pruned as it goes.
//!
//! An attempt whose outcome is not known yet (a password being checked) is
//! *reserved* before the work starts and refunded if it turns out not to
//! count, so parallel requests cannot all pass the check before any of them
//! is recorded.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many keys, stale ones are swept on the next record.
const SWEEP_ABOVE_KEYS: usize = 10_000;

/// A refused event: how long to wait, and whether this is the key's first
/// refusal in a window (only that one is audited, so a flood of refused
/// requests writes one audit entry a minute per key, not one per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after_secs: u64,
    pub first: bool,
}

#[derive(Debug, Default)]
struct Entry {
    times: VecDeque<Instant>,
    refusal_noted: Option<Instant>,
}

#[derive(Debug)]
pub struct SlidingWindow {
    /// Events allowed per window; 0 turns the limit off.
    limit: usize,
    window: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

/// Events counted ahead of their outcome. Dropped, they are refunded;
/// [`keep`](Self::keep) makes them count.
#[must_use = "a reservation dropped at once is refunded at once"]
#[derive(Debug)]
pub struct Reservation<'a> {
    window: &'a SlidingWindow,
    keys: Vec<String>,
    at: Instant,
    kept: bool,
}

impl Reservation<'_> {
    /// The attempt failed: it counts against every key.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.window.refund(&self.keys, self.at);
        }
    }
}

/// The part of a client address that limits count against: an IPv4 address,
/// or the /64 of an IPv6 one (one subscriber's whole network, which a single
/// attacker can spread requests over).
pub fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
            }
        },
    }
}

impl SlidingWindow {
    pub fn per_minute(limit: u32) -> Self {
        Self {
            limit: limit as usize,
            window: Duration::from_secs(60),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Err` when `key` has used its allowance; counts nothing.
    pub fn check(&self, key: &str) -> Result<(), Refused> {
        let now = Instant::now();
        self.check_at(&mut self.lock(), key, now)
    }

    /// Checks, and counts the event when it is allowed.
    pub fn hit(&self, key: &str) -> Result<(), Refused> {
        let now = Instant::now();
        let mut entries = self.lock();
        self.check_at(&mut entries, key, now)?;
        self.record_at(&mut entries, key, now);
        Ok(())
    }

    /// Counts one event against every key at once, or against none when any
    /// of them has used its allowance.
    pub fn reserve(&self, keys: &[String]) -> Result<Reservation<'_>, Refused> {
        let now = Instant::now();
        let mut entries = self.lock();
        for key in keys {
            self.check_at(&mut entries, key, now)?;
        }
        for key in keys {
            self.record_at(&mut entries, key, now);
        }
        Ok(Reservation {
            window: self,
            keys: keys.to_vec(),
            at: now,
            kept: false,
        })
    }

    fn refund(&self, keys: &[String], at: Instant) {
        let mut entries = self.lock();
        for key in keys {
            if let Some(entry) = entries.get_mut(key) {
                if let Some(position) = entry.times.iter().rposition(|t| *t == at) {
                    entry.times.remove(position);
                }
            }
        }
    }

    fn check_at(&self, entries: &mut HashMap<String, Entry>, key: &str, now: Instant) -> Result<(), Refused> {
        if self.limit == 0 {
            return Ok(());
        }
        let Some(entry) = entries.get_mut(key) else {
            return Ok(());
        };
        self.expire(&mut entry.times, now);
        if entry.times.len() < self.limit {
            return Ok(());
        }
        // The wait until the oldest counted event leaves the window, in
        // whole seconds, rounded up.
        let oldest = entry.times.front().copied().unwrap_or(now);
        let wait = (oldest + self.window).saturating_duration_since(now);
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let first = entry
            .refusal_noted
            .is_none_or(|noted| now.duration_since(noted) >= self.window);
        if first {
            entry.refusal_noted = Some(now);
        }
        Err(Refused {
            retry_after_secs: secs.max(1),
            first,
        })
    }

    fn record_at(&self, entries: &mut HashMap<String, Entry>, key: &str, now: Instant) {
        if self.limit == 0 {
            return;
        }
        if entries.len() > SWEEP_ABOVE_KEYS {
            entries.retain(|_, entry| {
                let recent = |t: &Instant| now.duration_since(*t) < self.window;
                entry.times.back().is_some_and(recent) || entry.refusal_noted.as_ref().is_some_and(recent)
            });
        }
        let entry = entries.entry(key.to_owned()).or_default();
        self.expire(&mut entry.times, now);
        entry.times.push_back(now);
    }

    fn expire(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            times.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_limit_then_refuses_until_the_window_slides() {
        let w = SlidingWindow::per_minute(3);
        let t0 = Instant::now();
        let mut entries = w.lock();
        for i in 0..3 {
            assert!(w.check_at(&mut entries, "ip", t0 + Duration::from_secs(i)).is_ok());
            w.record_at(&mut entries, "ip", t0 + Duration::from_secs(i));
        }
        let refused = w
            .check_at(&mut entries, "ip", t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(refused.retry_after_secs, 50);
        assert!(refused.first);
        let again = w
            .check_at(&mut entries, "ip", t0 + Duration::from_secs(11))
            .unwrap_err();
        assert!(!again.first, "one refusal per window is noted");
        assert!(w.check_at(&mut entries, "other", t0).is_ok(), "keys are independent");
        assert!(
            w.check_at(&mut entries, "ip", t0 + Duration::from_secs(60)).is_ok(),
            "the first event left the window"
        );
    }

    #[test]
    fn zero_means_unlimited() {
        let w = SlidingWindow::per_minute(0);
        for _ in 0..100 {
            assert!(w.hit("k").is_ok());
            w.reserve(&["k".into()]).unwrap().keep();
        }
    }

    #[test]
    fn reservations_count_at_once_and_are_refunded_unless_kept() {
        let w = SlidingWindow::per_minute(2);
        let keys = vec!["ip".to_owned(), "account".to_owned()];
        let first = w.reserve(&keys).unwrap();
        let second = w.reserve(&keys).unwrap();
        assert!(w.reserve(&keys).is_err(), "two attempts in flight use the allowance");
        drop(first);
        let third = w.reserve(&keys).unwrap();
        second.keep();
        third.keep();
        assert!(w.check("ip").is_err());
        assert!(w.check("account").is_err());
    }

    #[test]
    fn a_reservation_is_all_or_nothing() {
        let w = SlidingWindow::per_minute(1);
        w.hit("account").unwrap();
        assert!(w.reserve(&["ip".into(), "account".into()]).is_err());
        assert!(w.check("ip").is_ok(), "the refused reservation counted nothing");
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        assert_eq!(ip_key(a), "2001:db8:1:2::/64");
        assert_eq!(ip_key("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(ip_key("192.0.2.7".parse().unwrap()), "192.0.2.7");
    }
}
