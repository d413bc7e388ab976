//! Counters for `/metrics`, in the Prometheus text format. Plain atomics:
//! cheap enough to bump on hot paths.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// A latency histogram with fixed buckets: one atomic add per observation.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative; `render` sums them).
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = BUCKETS.iter().position(|&le| seconds <= le).unwrap_or(BUCKETS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            match BUCKETS.get(i) {
                Some(le) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub logins: AtomicU64,
    pub login_failures: AtomicU64,
    pub registrations: AtomicU64,
    pub ws_connections: AtomicI64,
    pub ws_connections_total: AtomicU64,
    pub chat_messages: AtomicU64,
    pub deliveries: AtomicU64,
    /// Voice packets the SFU wrote to a listener's connection.
    pub sfu_packets_forwarded: AtomicU64,
    pub sfu_members: AtomicI64,
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
    /// Jobs waiting for the database writer.
    pub writer_queue: AtomicI64,
    /// How long each of the writer's batches took to write and commit.
    pub writer_commit: Histogram,
    /// How long a room took to hand one frame to every member's mailbox.
    pub fanout: Histogram,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let counters: [(&str, &str, &AtomicU64); 15] = [
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
            (
                "switchboard_sfu_packets_forwarded_total",
                "Voice packets the SFU forwarded to a listener",
                &self.sfu_packets_forwarded,
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
            "# HELP switchboard_sfu_members Members connected to the SFU\n# TYPE switchboard_sfu_members gauge\nswitchboard_sfu_members {}",
            self.sfu_members.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP switchboard_writer_queue Jobs waiting for the database writer\n# TYPE switchboard_writer_queue gauge\nswitchboard_writer_queue {}",
            self.writer_queue.load(Ordering::Relaxed)
        );
        self.writer_commit.render(
            &mut out,
            "switchboard_writer_commit_seconds",
            "Time to write and commit one batch of the database writer",
        );
        self.fanout.render(
            &mut out,
            "switchboard_fanout_seconds",
            "Time for a room to hand one frame to every member",
        );
        let _ = writeln!(
            out,
            "# HELP switchboard_password_jobs_peak Most bcrypt jobs run at once\n# TYPE switchboard_password_jobs_peak gauge\nswitchboard_password_jobs_peak {}",
            self.password_jobs_peak.load(Ordering::Relaxed)
        );
        out
    }
}
