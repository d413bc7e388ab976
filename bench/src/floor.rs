//! `--mode floor`: what "one send per delivery" costs on this machine, with
//! no framework at all. One thread writes each frame to every socket with
//! one blocking `write` (TCP_NODELAY, loopback) at the run's rate; the same
//! readers as the fan-out mode receive and time the frames. That thread's
//! CPU time per delivery is the floor a server's is measured against: the
//! frames have the size and shape of a Switchboard chat delivery.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A Switchboard `message` frame as the server sends it for a load
/// generator's chat (same fields), carrying its send time, its text padded
/// so the frame's JSON is at least `size` bytes.
fn message_frame(id: u64, sent_ns: u128, size: usize) -> Vec<u8> {
    let frame = |pad: usize| {
        json!({
            "type": "message",
            "id": id,
            "room": "lobby",
            "user_id": 2,
            "username": "guest-load-0-k3v9xq",
            "display_name": "load 0",
            "text": format!("t{sent_ns}:{}", "p".repeat(pad)),
            "ts": "2026-11-27T16:00:00.000Z",
        })
        .to_string()
    };
    let bare = frame(0);
    let text = if bare.len() < size {
        frame(size - bare.len())
    } else {
        bare
    };
    let mut frame = Vec::with_capacity(text.len() + 4);
    frame.push(0x81);
    match text.len() {
        n @ 0..=125 => frame.push(n as u8),
        n => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(text.as_bytes());
    frame
}

/// This thread's CPU seconds (user + system), from /proc.
fn thread_cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    ticks / crate::stats::clock_ticks_per_second()
}

/// The server side: `conns` accepted sockets.
pub struct Writer {
    listener: TcpListener,
}

impl Writer {
    pub fn bind() -> std::io::Result<Writer> {
        Ok(Writer {
            listener: TcpListener::bind("127.0.0.1:0")?,
        })
    }

    pub fn addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts `conns` sockets, then (on its own thread) writes `rate`
    /// frames a second to each of them for `duration`. Answers the frames
    /// sent and the thread's CPU seconds.
    pub fn run(
        self,
        conns: usize,
        rate: f64,
        duration: Duration,
        size: usize,
        epoch: Instant,
    ) -> mpsc::Receiver<Result<(u64, f64), String>> {
        let (done, result) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(self.write_all(conns, rate, duration, size, epoch));
        });
        result
    }

    fn write_all(
        self,
        conns: usize,
        rate: f64,
        duration: Duration,
        size: usize,
        epoch: Instant,
    ) -> Result<(u64, f64), String> {
        let mut sockets: Vec<TcpStream> = Vec::with_capacity(conns);
        while sockets.len() < conns {
            let (socket, _) = self.listener.accept().map_err(|e| format!("accept: {e}"))?;
            socket.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
            sockets.push(socket);
        }
        // Let the readers settle, as the fan-out mode does after joining.
        std::thread::sleep(Duration::from_millis(500));
        let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
        let cpu_before = thread_cpu_s();
        let started = Instant::now();
        let mut next = started;
        let mut sent = 0u64;
        while started.elapsed() < duration {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            let frame = message_frame(sent + 1, epoch.elapsed().as_nanos(), size);
            for socket in &mut sockets {
                socket.write_all(&frame).map_err(|e| format!("write: {e}"))?;
            }
            sent += 1;
            next += interval;
        }
        Ok((sent, thread_cpu_s() - cpu_before))
    }
}

pub fn report(frames: u64, conns: usize, cpu_s: f64, received: u64) -> Value {
    let per_delivery_us = if received > 0 {
        cpu_s * 1e6 / received as f64
    } else {
        0.0
    };
    json!({
        "msgs_sent": frames,
        "deliveries_expected": frames * conns as u64,
        "writer": {"cpu_s": (cpu_s * 100.0).round() / 100.0, "cpu_us_per_delivery": (per_delivery_us * 1000.0).round() / 1000.0},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_floor_frame_is_a_text_frame_the_readers_time() {
        let frame = message_frame(7, 123_456, 250);
        assert_eq!(frame[..2], [0x81, 126]);
        let text = std::str::from_utf8(&frame[4..]).unwrap();
        assert_eq!(usize::from(u16::from_be_bytes([frame[2], frame[3]])), text.len());
        assert_eq!(text.len(), 250);
        assert_eq!(crate::stats::sent_at_ns(text), Some(123_456));
        // A size below the bare frame's gives the bare frame, unpadded; with
        // every field a chat delivery has it needs the 16-bit length.
        let short = message_frame(7, 1, 10);
        let text = std::str::from_utf8(&short[4..]).unwrap();
        assert_eq!(short[..2], [0x81, 126]);
        assert_eq!(usize::from(u16::from_be_bytes([short[2], short[3]])), text.len());
        assert!(text.contains(r#""text":"t1:""#), "{text}");
    }
}
