//! The math CAPTCHA: "What is 3 + 4?". Each challenge works once and expires
//! after five minutes. Held in memory: a restart only costs a new question.
//! A full store refuses new challenges rather than forget live ones, so a
//! flood cannot take away the challenge a person is answering.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

use super::tokens::random_token;

const TTL: Duration = Duration::from_secs(300);
/// Bounds memory under a flood of GET /api/auth/captcha.
const MAX_OPEN: usize = 20_000;

#[derive(Debug)]
struct Challenge {
    answer: u32,
    expires: Instant,
}

#[derive(Debug, Default)]
pub struct CaptchaStore {
    open: Mutex<HashMap<String, Challenge>>,
}

impl CaptchaStore {
    /// A new challenge: its id and its question. `Err(seconds)` while the
    /// store is full of live challenges: the wait until the first expires.
    pub fn issue(&self) -> Result<(String, String), u64> {
        self.issue_within(MAX_OPEN)
    }

    fn issue_within(&self, capacity: usize) -> Result<(String, String), u64> {
        let mut rng = rand::rng();
        let (a, b) = (rng.random_range(1..=12u32), rng.random_range(1..=12u32));
        let (question, answer) = (format!("What is {a} + {b}?"), a + b);
        let id = random_token(16);
        let now = Instant::now();
        let mut open = self.lock();
        if open.len() >= capacity {
            open.retain(|_, c| c.expires > now);
        }
        if open.len() >= capacity {
            let first_expiry = open.values().map(|c| c.expires).min().unwrap_or(now);
            let wait = first_expiry.saturating_duration_since(now);
            return Err((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1));
        }
        open.insert(
            id.clone(),
            Challenge {
                answer,
                expires: now + TTL,
            },
        );
        Ok((id, question))
    }

    /// True when `answer` solves challenge `id`; the challenge is used up
    /// either way.
    pub fn solve(&self, id: &str, answer: &str) -> bool {
        let Some(challenge) = self.lock().remove(id) else {
            return false;
        };
        let answer = answer.trim();
        challenge.expires > Instant::now()
            && !answer.is_empty()
            && answer.len() <= 4
            && answer.bytes().all(|b| b.is_ascii_digit())
            && answer.parse::<u32>().is_ok_and(|n| n == challenge.answer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Challenge>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(test)]
    fn answer_of(&self, id: &str) -> u32 {
        self.lock()[id].answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_works_once() {
        let store = CaptchaStore::default();
        let (id, question) = store.issue().unwrap();
        assert!(question.starts_with("What is "));
        let answer = store.answer_of(&id).to_string();
        assert!(store.solve(&id, &answer));
        assert!(!store.solve(&id, &answer), "single use");
    }

    #[test]
    fn a_wrong_answer_uses_the_challenge_up() {
        let store = CaptchaStore::default();
        let (id, _) = store.issue().unwrap();
        let answer = store.answer_of(&id);
        assert!(!store.solve(&id, &(answer + 1).to_string()));
        assert!(!store.solve(&id, &answer.to_string()));
        assert!(!store.solve("unknown", "1"));
    }

    #[test]
    fn non_digit_answers_fail() {
        let store = CaptchaStore::default();
        let (id, _) = store.issue().unwrap();
        assert!(!store.solve(&id, "-0"));
    }

    #[test]
    fn questions_are_sums() {
        let store = CaptchaStore::default();
        for _ in 0..200 {
            let (id, question) = store.issue().unwrap();
            let sum = question
                .strip_prefix("What is ")
                .and_then(|q| q.strip_suffix('?'))
                .unwrap();
            let (a, b) = sum.split_once(" + ").unwrap();
            let (a, b): (u32, u32) = (a.parse().unwrap(), b.parse().unwrap());
            assert_eq!(store.answer_of(&id), a + b, "{question}");
        }
    }

    #[test]
    fn a_full_store_refuses_rather_than_forgets() {
        let store = CaptchaStore::default();
        let live: Vec<String> = (0..3).map(|_| store.issue_within(3).unwrap().0).collect();
        let wait = store.issue_within(3).unwrap_err();
        assert!((299..=300).contains(&wait), "{wait}");
        for id in &live {
            let answer = store.answer_of(id).to_string();
            assert!(store.solve(id, &answer), "a live challenge was forgotten");
        }
        assert!(store.issue_within(3).is_ok(), "solved challenges free their place");
    }
}
