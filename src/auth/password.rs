//! Password hashing. bcrypt reads at most 72 bytes, so a longer password is
//! first reduced to its SHA-256 (base64, 44 bytes): every byte counts and
//! nothing is silently truncated. Requests run these through [`PasswordJobs`],
//! which keeps them off the actix workers and bounds how many run at once.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::metrics::Metrics;

/// bcrypt's input limit, counting its terminating NUL.
const BCRYPT_MAX_BYTES: usize = 72;

fn bcrypt_input(password: &str) -> Cow<'_, [u8]> {
    if password.len() < BCRYPT_MAX_BYTES {
        Cow::Borrowed(password.as_bytes())
    } else {
        Cow::Owned(STANDARD.encode(Sha256::digest(password.as_bytes())).into_bytes())
    }
}

pub fn hash(password: &str, cost: u32) -> Result<String, bcrypt::BcryptError> {
    bcrypt::non_truncating_hash(bcrypt_input(password), cost)
}

pub fn verify(password: &str, hash: &str) -> bool {
    bcrypt::non_truncating_verify(bcrypt_input(password), hash).unwrap_or(false)
}

/// Spends the time of one verification (a hash at the same cost takes as
/// long), so that a login for a missing account answers no faster.
pub fn spend_verify_time(password: &str, cost: u32) {
    let _ = hash(password, cost);
}

/// How long a request waits for a free slot before it is told to come back.
const SLOT_WAIT: Duration = Duration::from_secs(5);
const BUSY_RETRY_AFTER_SECS: u64 = 5;

/// The bound on concurrent bcrypt work: one job per core. bcrypt is slow on
/// purpose, so without a bound a burst of sign-ins (or a flood of them from
/// many addresses) would queue on the blocking pool without limit and starve
/// everything else that runs there, the database included. A request that
/// gets no slot within [`SLOT_WAIT`] is answered `503 busy` with Retry-After.
pub struct PasswordJobs {
    slots: Semaphore,
    wait: Duration,
    metrics: Arc<Metrics>,
}

impl PasswordJobs {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::with_slots(cores, SLOT_WAIT, metrics)
    }

    fn with_slots(slots: usize, wait: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            slots: Semaphore::new(slots),
            wait,
            metrics,
        }
    }

    /// Runs `job` (a hash or a verification) on the blocking pool once a
    /// slot is free.
    pub async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let busy = ApiError::Busy {
            retry_after_secs: BUSY_RETRY_AFTER_SECS,
        };
        let Ok(Ok(_slot)) = tokio::time::timeout(self.wait, self.slots.acquire()).await else {
            Metrics::inc(&self.metrics.password_jobs_refused);
            return Err(busy);
        };
        Metrics::inc(&self.metrics.password_jobs);
        let running = self.metrics.password_jobs_running.fetch_add(1, Ordering::Relaxed) + 1;
        self.metrics.password_jobs_peak.fetch_max(running, Ordering::Relaxed);
        let outcome = actix_web::web::block(job).await;
        self.metrics.password_jobs_running.fetch_sub(1, Ordering::Relaxed);
        Ok(outcome?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_passwords_round_trip() {
        let h = hash("correct horse", 4).unwrap();
        assert!(h.starts_with("$2b$04$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsf", &h));
    }

    #[test]
    fn long_passwords_are_not_truncated() {
        let base = "x".repeat(100);
        let h = hash(&format!("{base}a"), 4).unwrap();
        assert!(verify(&format!("{base}a"), &h));
        assert!(!verify(&format!("{base}b"), &h), "bytes past 72 must count");
    }

    #[test]
    fn multibyte_passwords_near_the_limit() {
        let pw = "é".repeat(40); // 80 bytes
        let h = hash(&pw, 4).unwrap();
        assert!(verify(&pw, &h));
        assert!(!verify(&"é".repeat(39), &h));
    }

    /// One slot, taken by a job that runs until the sender is used; the
    /// job's handle.
    async fn one_slot_taken(
        wait: Duration,
    ) -> (
        Arc<PasswordJobs>,
        Arc<Metrics>,
        std::sync::mpsc::Sender<()>,
        actix_web::rt::task::JoinHandle<Result<bool, ApiError>>,
    ) {
        let metrics = Arc::new(Metrics::default());
        let jobs = Arc::new(PasswordJobs::with_slots(1, wait, metrics.clone()));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let holder = {
            let jobs = jobs.clone();
            actix_web::rt::spawn(async move { jobs.run(move || hold.recv().is_ok()).await })
        };
        while metrics.password_jobs_running.load(Ordering::Relaxed) == 0 {
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        (jobs, metrics, release, holder)
    }

    #[actix_web::test]
    async fn jobs_beyond_the_slots_wait_and_are_counted() {
        let (jobs, metrics, release, holder) = one_slot_taken(Duration::from_secs(30)).await;
        let waiter = actix_web::rt::spawn(async move { jobs.run(|| 7).await });
        release.send(()).unwrap();
        assert!(holder.await.unwrap().unwrap());
        assert_eq!(waiter.await.unwrap().unwrap(), 7);
        assert_eq!(metrics.password_jobs.load(Ordering::Relaxed), 2);
        assert_eq!(
            metrics.password_jobs_peak.load(Ordering::Relaxed),
            1,
            "one slot: one at a time"
        );
    }

    #[actix_web::test]
    async fn a_job_that_gets_no_slot_in_time_is_refused_as_busy() {
        let (jobs, metrics, release, holder) = one_slot_taken(Duration::from_millis(50)).await;
        let refused = jobs.run(|| 7).await.unwrap_err();
        assert!(matches!(refused, ApiError::Busy { .. }), "{refused:?}");
        assert_eq!(metrics.password_jobs_refused.load(Ordering::Relaxed), 1);
        release.send(()).unwrap();
        assert!(holder.await.unwrap().unwrap());
    }
}
