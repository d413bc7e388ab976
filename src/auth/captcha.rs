//! The math CAPTCHA: "What is 3 + 4?". Each challenge works once and expires
//! after five minutes. Held in memory: a restart only costs a new question.

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
    /// A new challenge: its id and its question.
    pub fn issue(&self) -> (String, String) {
        let mut rng = rand::rng();
        let (a, b) = (rng.random_range(1..=12u32), rng.random_range(1..=12u32));
        let (question, answer) = if rng.random_bool(0.5) || a == b {
            (format!("What is {a} + {b}?"), a + b)
        } else {
            let (hi, lo) = (a.max(b), a.min(b));
            (format!("What is {hi} - {lo}?"), hi - lo)
        };
        let id = random_token(16);
        let now = Instant::now();
        let mut open = self.lock();
        if open.len() >= MAX_OPEN {
            open.retain(|_, c| c.expires > now);
        }
        if open.len() >= MAX_OPEN {
            // Still full of live challenges: forget an arbitrary one.
            if let Some(victim) = open.keys().next().cloned() {
                open.remove(&victim);
            }
        }
        open.insert(
            id.clone(),
            Challenge {
                answer,
                expires: now + TTL,
            },
        );
        (id, question)
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
        let (id, question) = store.issue();
        assert!(question.starts_with("What is "));
        let answer = store.answer_of(&id).to_string();
        assert!(store.solve(&id, &answer));
        assert!(!store.solve(&id, &answer), "single use");
    }

    #[test]
    fn a_wrong_answer_uses_the_challenge_up() {
        let store = CaptchaStore::default();
        let (id, _) = store.issue();
        let answer = store.answer_of(&id);
        assert!(!store.solve(&id, &(answer + 1).to_string()));
        assert!(!store.solve(&id, &answer.to_string()));
        assert!(!store.solve("unknown", "1"));
    }

    #[test]
    fn non_digit_answers_fail() {
        let store = CaptchaStore::default();
        let (id, _) = store.issue();
        assert!(!store.solve(&id, "-0"));
    }
}
