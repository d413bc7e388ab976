//! systemd service notifications (the sd_notify protocol): `READY=1` once
//! the server listens, `WATCHDOG=1` while its event loop and database
//! writer answer, `STOPPING=1` on shutdown. Each is one datagram to the
//! Unix socket named by `$NOTIFY_SOCKET`; without it nothing is sent.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go: `$NOTIFY_SOCKET`.
pub struct Notifier {
    socket: UnixDatagram,
    target: SocketAddr,
}

impl Notifier {
    /// The notifier systemd asked for, if any. A socket that cannot be used
    /// is logged, and the server runs without notifications.
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        match Self::to(&path) {
            Ok(notifier) => Some(notifier),
            Err(error) => {
                tracing::warn!(%error, socket = ?path, "cannot use NOTIFY_SOCKET: systemd will not be notified");
                None
            }
        }
    }

    /// A path, or `@name` for a socket in the abstract namespace.
    fn to(path: &OsStr) -> io::Result<Notifier> {
        let target = match path.as_bytes().strip_prefix(b"@") {
            Some(name) => abstract_address(name)?,
            None => SocketAddr::from_pathname(path)?,
        };
        Ok(Notifier {
            socket: UnixDatagram::unbound()?,
            target,
        })
    }

    /// Sends one notification, such as `READY=1`. Failures are logged only:
    /// systemd going away must not stop the server.
    pub fn notify(&self, state: &str) {
        if let Err(error) = self.socket.send_to_addr(state.as_bytes(), &self.target) {
            tracing::warn!(%error, state, "systemd notification failed");
        }
    }
}

#[cfg(target_os = "linux")]
fn abstract_address(name: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_address(_: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, as systemd
/// advises, when the watchdog is meant for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    interval_for(usec.as_deref(), pid.as_deref(), std::process::id())
}

fn interval_for(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if pid.is_some_and(|pid| pid.trim().parse() != Ok(own_pid)) {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|usec| *usec > 0)?;
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_interval_is_half_the_timeout_for_this_process_only() {
        assert_eq!(interval_for(Some("30000000"), None, 7), Some(Duration::from_secs(15)));
        assert_eq!(
            interval_for(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(interval_for(Some("30000000"), Some("8"), 7), None, "another process's");
        assert_eq!(interval_for(Some("0"), None, 7), None);
        assert_eq!(interval_for(Some("soon"), None, 7), None);
        assert_eq!(interval_for(None, None, 7), None);
    }

    #[test]
    fn notifications_arrive_as_datagrams_on_paths_and_abstract_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        Notifier::to(path.as_os_str()).unwrap().notify("READY=1");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        #[cfg(target_os = "linux")]
        {
            let name = format!("switchboard-test-{}", std::process::id());
            let listener = UnixDatagram::bind_addr(&abstract_address(name.as_bytes()).unwrap()).unwrap();
            Notifier::to(OsStr::new(&format!("@{name}")))
                .unwrap()
                .notify("WATCHDOG=1");
            let n = listener.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"WATCHDOG=1");
        }
    }
}
