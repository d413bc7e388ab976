//! The systemd integration: the unit in deploy/ passes `systemd-analyze
//! verify` (skipped where systemd-analyze is missing), and the server speaks
//! the notify protocol its `Type=notify` and `WatchdogSec=` rely on: READY=1
//! once it listens, WATCHDOG=1 pings, STOPPING=1 on SIGTERM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Server, FRAME_WAIT};
use tokio::net::UnixDatagram;

/// The next notification, within FRAME_WAIT.
async fn next(socket: &UnixDatagram) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(FRAME_WAIT, socket.recv(&mut buf))
        .await
        .expect("no notification within FRAME_WAIT")
        .unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[tokio::test]
async fn the_server_notifies_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut server =
        Server::start_with(&[("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "400000")]).await;

    let ready = next(&socket).await;
    let lines: Vec<&str> = ready.lines().collect();
    assert_eq!(lines[0], "READY=1", "{ready:?}");
    let addr = server.base.trim_start_matches("http://");
    assert_eq!(lines[1], format!("STATUS=listening on {addr}"));
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200, "ready means serving");

    for _ in 0..3 {
        assert_eq!(next(&socket).await, "WATCHDOG=1");
    }

    // The process has exited: everything it sent is waiting in the socket.
    server.terminate().await;
    let mut after = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.try_recv(&mut buf) {
        after.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(after.iter().any(|s| s == "STOPPING=1"), "{after:?}");
}

/// The unit as shipped, with ExecStart pointing at the binary under test
/// (verify insists the program exists), written to `dir`.
fn unit_in(dir: &Path, extra: &str) -> PathBuf {
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/switchboard.service")).unwrap();
    let shipped = "ExecStart=/usr/local/bin/switchboard ";
    assert_eq!(
        unit.matches(shipped).count(),
        1,
        "the unit starts /usr/local/bin/switchboard once"
    );
    let tested = unit.replace(shipped, &format!("ExecStart={} ", env!("CARGO_BIN_EXE_switchboard")));
    let path = dir.join("switchboard.service");
    std::fs::write(&path, tested.replace("[Service]\n", &format!("[Service]\n{extra}"))).unwrap();
    path
}

/// `systemd-analyze ARGS`: success and everything it printed.
fn analyze(args: &[&str]) -> (bool, String) {
    let output = Command::new("systemd-analyze").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("skipped: systemd-analyze is not installed (Debian package systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_in(dir.path(), "");
    let (ok, said) = analyze(&["verify", "--man=no", unit.to_str().unwrap()]);
    assert!(ok && said.trim().is_empty(), "systemd-analyze verify: {said}");

    // verify only warns (exit 0) about a key it does not know: the check
    // above relies on its silence, so make sure it does speak up.
    let broken_dir = tempfile::tempdir().unwrap();
    let broken = unit_in(broken_dir.path(), "ProtectEverything=yes\n");
    let (_, said) = analyze(&["verify", "--man=no", broken.to_str().unwrap()]);
    assert!(said.contains("ProtectEverything"), "a bad key goes unnoticed: {said:?}");

    let (ok, said) = analyze(&["security", "--offline=yes", unit.to_str().unwrap()]);
    if !ok && said.contains("offline") {
        eprintln!("skipped the exposure check: this systemd-analyze has no --offline ({said})");
        return;
    }
    let exposure: f64 = said
        .lines()
        .find_map(|l| l.split("Overall exposure level for switchboard.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in {said}"));
    assert!(exposure <= 2.0, "the sandbox got weaker: exposure {exposure}\n{said}");
}
