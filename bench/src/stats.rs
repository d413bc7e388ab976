//! What the load generator measures: latency histograms, and the server's
//! CPU time and resident memory read from /proc.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Latencies in microseconds, three significant figures; it grows as needed.
pub fn histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_max(60_000_000, 3).expect("valid bounds");
    h.auto(true);
    h
}

pub fn summary_ms(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| (us as f64 / 1000.0 * 100.0).round() / 100.0;
    json!({
        "count": h.len(),
        "p50": ms(h.value_at_quantile(0.50)),
        "p90": ms(h.value_at_quantile(0.90)),
        "p99": ms(h.value_at_quantile(0.99)),
        "max": ms(h.max()),
    })
}

/// CPU seconds (user + system) and resident set size of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub cpu_s: f64,
    pub rss_kb: u64,
}

pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may itself hold spaces.
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some(ProcSample {
        cpu_s: ticks / clock_ticks_per_second(),
        rss_kb,
    })
}

/// CPU seconds of each thread of a process, by thread id, with its name.
pub fn threads(pid: u32) -> std::collections::HashMap<u32, (String, f64)> {
    let mut threads = std::collections::HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return threads;
    };
    let per_second = clock_ticks_per_second();
    for task in tasks.flatten() {
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some((_, rest))) = (stat.find('('), stat.rsplit_once(") ")) else {
            continue;
        };
        let name = stat[open + 1..stat.len() - rest.len() - 2].to_owned();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<f64>().ok()))
            .sum();
        threads.insert(tid, (name, ticks / per_second));
    }
    threads
}

pub fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The send time carried in a chat text `t<nanoseconds>`, found without
/// parsing the whole frame.
pub fn sent_at_ns(frame: &str) -> Option<u64> {
    let start = frame.find("\"text\":\"t")? + 9;
    let digits: &str = &frame[start..];
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_timestamp_in_a_message_frame() {
        let frame =
            r#"{"type":"message","id":3,"room":"lobby","user_id":1,"username":"g","text":"t123456789","ts":"x"}"#;
        assert_eq!(sent_at_ns(frame), Some(123_456_789));
        assert_eq!(sent_at_ns(r#"{"type":"pong"}"#), None);
    }

    #[test]
    fn reads_this_process() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_kb > 0);
    }
}
