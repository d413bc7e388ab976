//! Load on the SFU with headless voice clients (sb-peer, the server's own
//! webrtc-rs stack), on loopback:
//!
//! - `sfu`: N speakers and M listeners in one room, each speaker sending 50
//!   packets per second. Listeners join one at a time while the speakers
//!   talk (join → first packet heard). Then, over the measured window: the
//!   packets the server forwarded per second (its own counter), the server's
//!   CPU from /proc and so packets per CPU-second, and send → receive
//!   latency of every packet.
//! - `sfu-churn`: two speakers talk while churners join the SFU, wait for
//!   the first packet, leave, and join again, `cycles` times in all; the
//!   server's RSS is sampled along the way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sb_peer::Peer;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Server};
use crate::stats::{self, ProcSample};
use crate::{round2, Args};

/// A bound on each step of setting up or tearing down a member.
const STEP: Duration = Duration::from_secs(30);
/// Listeners joining at once in `sfu` mode.
const JOIN_CONCURRENCY: usize = 8;

/// One guest in the room and in voice, its socket pumped by two tasks.
struct Member {
    peer: Arc<Peer>,
    frames: mpsc::UnboundedSender<Value>,
}

impl Member {
    /// Signs in, joins `room` and voice, and starts a peer; not yet on the SFU.
    async fn enter(server: &Server, room: &str, tag: u32) -> Result<Member, String> {
        let ws = in_voice(server, room, &format!("voice {tag}")).await?;
        let (peer, answers) = Peer::spawn(tag).await.map_err(|e| format!("peer: {e}"))?;
        let peer = Arc::new(peer);
        let (frames, outgoing) = mpsc::unbounded_channel();
        tokio::spawn(pump(ws, peer.clone(), outgoing));
        let answers_to = frames.clone();
        tokio::spawn(forward_answers(answers, answers_to));
        Ok(Member { peer, frames })
    }

    fn sfu(&self, action: &str) {
        let _ = self.frames.send(json!({"type": "sfu", "data": {"action": action}}));
    }
}

/// A new guest's socket, in `room` and in voice (not yet on the SFU).
async fn in_voice(server: &Server, room: &str, name: &str) -> Result<client::Ws, String> {
    let session = server.guest(name).await?;
    let (mut ws, hello) = server.connect(&session, None).await?;
    let sid = hello["sid"].as_str().ok_or("no sid")?.to_owned();
    client::join(&mut ws, room).await?;
    client::send(&mut ws, &json!({"type": "voice", "action": "join"})).await?;
    loop {
        let state = client::next_of(&mut ws, "voice_state").await?;
        if state["sid"] == sid.as_str() {
            return Ok(ws);
        }
    }
}

/// Writes the queued frames; hands every `sfu` frame's data to the peer.
async fn pump(ws: client::Ws, peer: Arc<Peer>, mut outgoing: mpsc::UnboundedReceiver<Value>) {
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            frame = outgoing.recv() => match frame {
                Some(frame) => {
                    if sink.send(Message::Text(frame.to_string().into())).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) {
                        if frame["type"] == "sfu" {
                            peer.signal(frame["data"].clone());
                        } else if frame["type"] == "error" {
                            eprintln!("sb-loadgen: server error: {frame}");
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
}

async fn forward_answers(mut answers: mpsc::UnboundedReceiver<Value>, to: mpsc::UnboundedSender<Value>) {
    while let Some(answer) = answers.recv().await {
        if to.send(json!({"type": "sfu", "data": answer})).is_err() {
            break;
        }
    }
}

/// Polls `done` every 5 ms until it holds or `limit` passes.
async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// Joins the SFU and answers the time until the first voice packet arrives.
async fn join_and_hear(member: &Member) -> Result<Duration, String> {
    let started = Instant::now();
    member.sfu("join");
    let peer = member.peer.clone();
    if !wait_for(STEP, || peer.packets_received() > 0).await {
        return Err("no voice within 30 s of joining".into());
    }
    let first = peer
        .stats()
        .from
        .values()
        .filter_map(|r| r.first_at)
        .min()
        .ok_or("voice without a first arrival")?;
    Ok(first.saturating_duration_since(started))
}

async fn server_counter(server: &Server, name: &str) -> Result<f64, String> {
    let text = server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .map_err(|e| format!("GET /metrics: {e}"))?
        .text()
        .await
        .map_err(|e| format!("GET /metrics: {e}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no {name} in /metrics"))
}

fn durations_ms(samples: &[Duration]) -> Value {
    let mut h = stats::histogram();
    for d in samples {
        let _ = h.record(d.as_micros() as u64);
    }
    stats::summary_ms(&h)
}

/// `sfu` mode.
pub async fn fanout(args: &Args) -> Result<Value, String> {
    let server = Server::new(&args.url, 64)?;
    let room = "lobby";
    let (speakers, listeners) = (args.speakers.max(1), args.listeners);
    let mut members = Vec::with_capacity(speakers + listeners);
    for tag in 0..speakers + listeners {
        members.push(
            tokio::time::timeout(STEP, Member::enter(&server, room, tag as u32))
                .await
                .map_err(|_| "enter timed out")??,
        );
    }
    // The speakers join and talk.
    for member in &members[..speakers] {
        member.sfu("join");
        member.peer.set_sending(true);
    }
    if speakers > 1 {
        let all_heard = wait_for(STEP, || {
            members[..speakers].iter().all(|m| m.peer.packets_received() > 0)
        })
        .await;
        if !all_heard {
            return Err("the speakers do not hear each other".into());
        }
    }
    // Listeners join while the speakers talk, a few at a time.
    let gate = Arc::new(Semaphore::new(JOIN_CONCURRENCY));
    let members = Arc::new(members);
    let mut joins = Vec::new();
    for i in speakers..speakers + listeners {
        let (gate, members) = (gate.clone(), members.clone());
        joins.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            join_and_hear(&members[i]).await
        }));
    }
    let mut join_to_audio = Vec::new();
    let mut join_failures = 0;
    for join in joins {
        match join.await {
            Ok(Ok(took)) => join_to_audio.push(took),
            _ => join_failures += 1,
        }
    }
    // Settle, then measure over the window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = Duration::from_secs(args.duration);
    for m in members.iter() {
        m.peer.take_latencies();
    }
    let received_before: u64 = members.iter().map(|m| m.peer.packets_received()).sum();
    let sent_before: u64 = members.iter().map(|m| m.peer.stats().sent).sum();
    let forwarded_before = server_counter(&server, "switchboard_sfu_packets_forwarded_total").await?;
    let cpu_before = args.server_pid.and_then(stats::sample);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = args.server_pid.and_then(stats::sample);
    let forwarded = server_counter(&server, "switchboard_sfu_packets_forwarded_total").await? - forwarded_before;
    let received: u64 = members.iter().map(|m| m.peer.packets_received()).sum::<u64>() - received_before;
    let sent: u64 = members.iter().map(|m| m.peer.stats().sent).sum::<u64>() - sent_before;
    let mut latencies = stats::histogram();
    for m in members.iter() {
        for us in m.peer.take_latencies() {
            let _ = latencies.record(u64::from(us));
        }
    }
    let errors: usize = members.iter().map(|m| m.peer.stats().errors.len()).sum();
    let mut report = json!({
        "mode": "sfu",
        "speakers": speakers,
        "listeners": listeners,
        "window_s": round2(elapsed),
        "packets_sent_per_s": (sent as f64 / elapsed).round(),
        "forwarded_per_s": (forwarded / elapsed).round(),
        "forwarded_expected_per_s": (speakers * 50 * (speakers + listeners - 1)) as f64,
        "received_per_s": (received as f64 / elapsed).round(),
        "latency_ms": stats::summary_ms(&latencies),
        "join_to_audio_ms": durations_ms(&join_to_audio),
        "join_failures": join_failures,
        "peer_errors": errors,
    });
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let cpu = after.cpu_s - before.cpu_s;
        report["server"] = json!({
            "cpu_s": round2(cpu),
            "cpu_share_of_one_core": round2(cpu / elapsed),
            "forwarded_per_cpu_s": (forwarded / cpu.max(0.001)).round(),
            "rss_kb": after.rss_kb,
        });
    }
    Ok(report)
}

/// `sfu-churn` mode.
pub async fn churn(args: &Args) -> Result<Value, String> {
    let server = Server::new(&args.url, 64)?;
    let room = "lobby";
    let mut speakers = Vec::new();
    for tag in 0..2u32 {
        let member = Member::enter(&server, room, tag).await?;
        member.sfu("join");
        member.peer.set_sending(true);
        speakers.push(member);
    }
    let churners = args.churners.clamp(1, args.cycles.max(1));
    let per_churner = args.cycles.div_ceil(churners);
    let pid = args.server_pid;
    // Warm-up: each churner does a few cycles before the baseline sample.
    let warm_up = 5;
    let (samples_tx, mut samples_rx) = mpsc::unbounded_channel::<Duration>();
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..churners {
        let (server, samples, done) = (server.clone(), samples_tx.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut failures = 0u64;
            let (sink, stream) = in_voice(&server, room, &format!("churn {c}")).await?.split();
            let socket = Arc::new(tokio::sync::Mutex::new((sink, stream)));
            for cycle in 0..warm_up + per_churner {
                match tokio::time::timeout(STEP, churn_once(&socket, 1000 + (c * per_churner + cycle) as u32)).await {
                    Ok(Ok(took)) => {
                        if cycle >= warm_up {
                            let _ = samples.send(took);
                            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    _ => failures += 1,
                }
            }
            Ok::<u64, String>(failures)
        }));
    }
    drop(samples_tx);
    // RSS after the warm-up, then every 100 cycles.
    let warm = wait_for(STEP * 4, || done.load(std::sync::atomic::Ordering::Relaxed) > 0).await;
    let baseline = pid.and_then(stats::sample);
    let mut rss_kb = vec![json!({"cycles": 0, "rss_kb": baseline.map(|s| s.rss_kb)})];
    let mut next_mark = 100;
    let mut samples = Vec::new();
    while let Some(took) = samples_rx.recv().await {
        samples.push(took);
        if samples.len() >= next_mark {
            rss_kb.push(json!({"cycles": samples.len(), "rss_kb": pid.and_then(stats::sample).map(|s| s.rss_kb)}));
            next_mark += 100;
        }
    }
    let mut failures = 0;
    for task in tasks {
        failures += task.await.map_err(|e| e.to_string())??;
    }
    let end: Option<ProcSample> = pid.and_then(stats::sample);
    let members_left = server_counter(&server, "switchboard_sfu_members").await?;
    Ok(json!({
        "mode": "sfu-churn",
        "warmed_up": warm,
        "cycles": samples.len(),
        "failures": failures,
        "join_to_audio_ms": durations_ms(&samples),
        "rss_kb": rss_kb,
        "rss_kb_growth": match (baseline, end) {
            (Some(b), Some(e)) => json!(e.rss_kb as i64 - b.rss_kb as i64),
            _ => Value::Null,
        },
        "sfu_members_at_end": members_left,
    }))
}

type Socket = tokio::sync::Mutex<(
    futures_util::stream::SplitSink<client::Ws, Message>,
    futures_util::stream::SplitStream<client::Ws>,
)>;

/// One join → first packet → leave on an open socket, with a fresh peer.
async fn churn_once(socket: &Socket, tag: u32) -> Result<Duration, String> {
    let (peer, mut answers) = Peer::spawn(tag).await.map_err(|e| format!("peer: {e}"))?;
    let mut guard = socket.lock().await;
    let (sink, stream) = &mut *guard;
    let send = |data: Value| Message::Text(json!({"type": "sfu", "data": data}).to_string().into());
    let started = Instant::now();
    sink.send(send(json!({"action": "join"})))
        .await
        .map_err(|e| e.to_string())?;
    let heard = loop {
        if let Some(first) = peer.stats().from.values().filter_map(|r| r.first_at).min() {
            break first.saturating_duration_since(started);
        }
        tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(text.as_str()).map_err(|e| e.to_string())?;
                    if frame["type"] == "sfu" {
                        peer.signal(frame["data"].clone());
                    } else if frame["type"] == "error" {
                        return Err(format!("server error: {frame}"));
                    }
                }
                Some(Ok(_)) => {}
                _ => return Err("socket closed".into()),
            },
            Some(answer) = answers.recv() => {
                sink.send(send(answer)).await.map_err(|e| e.to_string())?;
            }
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    };
    sink.send(send(json!({"action": "leave"})))
        .await
        .map_err(|e| e.to_string())?;
    Ok(heard)
}
