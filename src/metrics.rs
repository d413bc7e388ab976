//! Counters for `/metrics`, in the Prometheus text format. Plain atomics:
//! cheap enough to bump on hot paths.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub logins: AtomicU64,
    pub login_failures: AtomicU64,
    pub registrations: AtomicU64,
    pub ws_connections: AtomicI64,
    pub ws_connections_total: AtomicU64,
    pub chat_messages: AtomicU64,
    pub deliveries: AtomicU64,
    /// bcrypt hashes and verifications run, and those refused for want of a slot.
    pub password_jobs: AtomicU64,
    pub password_jobs_refused: AtomicU64,
    pub password_jobs_running: AtomicI64,
    /// The most bcrypt jobs that have run at once.
    pub password_jobs_peak: AtomicI64,
    /// Mails the mailer sent, and those it gave up or dropped.
    pub mail_sent: AtomicU64,
    pub mail_failed: AtomicU64,
    /// Sessions closed because their socket did not take its frames (4008).
    pub slow_sessions_dropped: AtomicU64,
    pub bans: AtomicU64,
    /// Files stored, and their bytes.
    pub uploads: AtomicU64,
    pub upload_bytes: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let counters: [(&str, &str, &AtomicU64); 14] = [
            ("switchboard_logins_total", "Successful sign-ins", &self.logins),
            (
                "switchboard_login_failures_total",
                "Failed password logins",
                &self.login_failures,
            ),
            (
                "switchboard_registrations_total",
                "Accounts registered",
                &self.registrations,
            ),
            (
                "switchboard_ws_connections_total",
                "WebSocket sessions opened",
                &self.ws_connections_total,
            ),
            (
                "switchboard_chat_messages_total",
                "Chat messages stored",
                &self.chat_messages,
            ),
            (
                "switchboard_deliveries_total",
                "Frames delivered to sockets",
                &self.deliveries,
            ),
            ("switchboard_mail_sent_total", "Mails sent", &self.mail_sent),
            (
                "switchboard_mail_failed_total",
                "Mails given up or dropped unsent",
                &self.mail_failed,
            ),
            (
                "switchboard_password_jobs_total",
                "bcrypt hashes and verifications run",
                &self.password_jobs,
            ),
            (
                "switchboard_password_jobs_refused_total",
                "Requests answered busy for want of a bcrypt slot",
                &self.password_jobs_refused,
            ),
            (
                "switchboard_slow_sessions_dropped_total",
                "Sessions closed because their socket did not take its frames",
                &self.slow_sessions_dropped,
            ),
            ("switchboard_bans_total", "Bans made", &self.bans),
            ("switchboard_uploads_total", "Files stored", &self.uploads),
            (
                "switchboard_upload_bytes_total",
                "Bytes of files stored",
                &self.upload_bytes,
            ),
        ];
        let mut out = String::new();
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP switchboard_ws_connections Open WebSocket sessions\n# TYPE switchboard_ws_connections gauge\nswitchboard_ws_connections {}",
            self.ws_connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP switchboard_password_jobs_peak Most bcrypt jobs run at once\n# TYPE switchboard_password_jobs_peak gauge\nswitchboard_password_jobs_peak {}",
            self.password_jobs_peak.load(Ordering::Relaxed)
        );
        out
    }
}
