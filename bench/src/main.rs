//! sb-loadgen: drives a running Switchboard server over its own protocol
//! and prints one JSON line of results.
//!
//! - `fanout`: N connections in R rooms, S senders at a total rate for a
//!   duration; each message carries its send time, so every delivery gives a
//!   latency. Optional kick probes measure how soon a kicked session hears it
//!   while the load runs.
//! - `idle`: N connections held for a duration, spread over loopback source
//!   addresses; memory per connection from the server's RSS, and a final
//!   ping to every connection to count the live ones.
//!
//! Every loop is bounded in count and time, and a watchdog ends the process
//! after `--max-runtime` seconds whatever happens.

mod client;
mod stats;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use client::{Server, Session, Ws};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Fanout,
    Idle,
}

#[derive(Debug, Parser)]
#[command(about = "Load generator for Switchboard")]
struct Args {
    /// Server base URL (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, value_enum, default_value = "fanout")]
    mode: Mode,
    /// Connections (one guest account each).
    #[arg(long, default_value_t = 100)]
    conns: usize,
    /// Rooms; 1 means the lobby.
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Connections that send (spread over the rooms).
    #[arg(long, default_value_t = 1)]
    senders: usize,
    /// Messages per second, all senders together.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Seconds of sending (fanout) or holding (idle).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds to wait for stragglers after sending stops.
    #[arg(long, default_value_t = 10)]
    drain: u64,
    /// The server process, for CPU and memory figures.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Loopback source addresses to spread connections over.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    sources: Vec<Ipv4Addr>,
    /// Connections set up at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Kicks to measure during a fanout run (needs an admin account).
    #[arg(long, default_value_t = 0)]
    kick_probes: usize,
    /// The admin for kick probes (made with `switchboard user create --admin`).
    #[arg(long, default_value = "bench-admin@example.org")]
    admin_email: String,
    #[arg(long, default_value = "bench-admin-password")]
    admin_password: String,
    /// Hard limit on the whole run, in seconds.
    #[arg(long, default_value_t = 180)]
    max_runtime: u64,
}

/// Live totals across all readers, for knowing when to stop waiting.
#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    pongs: AtomicU64,
}

/// What one connection's reader saw.
struct Seen {
    latencies: Histogram<u64>,
    deliveries: u64,
    pongs: u64,
    errors: u64,
    closed: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let watchdog = args.max_runtime;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(watchdog)).await;
        println!("{}", json!({"fatal": format!("watchdog: run exceeded {watchdog} s")}));
        std::process::exit(3);
    });
    let report = match run(&args).await {
        Ok(report) => report,
        Err(e) => json!({"fatal": e}),
    };
    println!("{report}");
    if report.get("fatal").is_some() {
        std::process::exit(1);
    }
}

async fn run(args: &Args) -> Result<Value, String> {
    let server = Server::new(&args.url, args.connect_concurrency)?;
    let epoch = Instant::now();
    let before = args.server_pid.and_then(stats::sample);
    let rooms = prepare_rooms(&server, args).await?;
    let (sockets, connect_errors, connect_time) = open_all(&server, args, &rooms).await;
    let established = sockets.len();
    let (stop_tx, stop_rx) = watch::channel(false);
    let counters = Arc::new(Counters::default());
    let mut sinks = Vec::with_capacity(established);
    let mut readers = Vec::with_capacity(established);
    let mut room_of = Vec::with_capacity(established);
    for (ws, room) in sockets {
        let (sink, stream) = ws.split();
        sinks.push(Some(sink));
        room_of.push(room);
        readers.push(tokio::spawn(read(stream, stop_rx.clone(), epoch, counters.clone())));
    }
    let mut report = json!({
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "conns_requested": args.conns,
        "conns_established": established,
        "connect_time_s": round2(connect_time.as_secs_f64()),
        "rooms": rooms.len(),
    });
    let mut errors = json!({"connect": connect_errors});
    match args.mode {
        Mode::Fanout => {
            let fanout = fanout(&server, args, &mut sinks, &room_of, epoch, &counters).await?;
            merge(&mut report, fanout);
        }
        Mode::Idle => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let held = args.server_pid.and_then(stats::sample);
            tokio::time::sleep(Duration::from_secs(args.duration.saturating_sub(2))).await;
            let alive = ping_all(&mut sinks, &counters).await;
            merge(&mut report, json!({"hold_s": args.duration, "pings_sent": alive}));
            if let (Some(b), Some(h)) = (before, held) {
                let per_conn = (h.rss_kb.saturating_sub(b.rss_kb)) as f64 / established.max(1) as f64;
                merge(
                    &mut report,
                    json!({"server_idle": {"rss_kb_before": b.rss_kb, "rss_kb_held": h.rss_kb, "rss_kb_per_conn": round2(per_conn)}}),
                );
            }
        }
    }
    let _ = stop_tx.send(true);
    let mut latencies = stats::histogram();
    let (mut received, mut pongs, mut frame_errors, mut closed) = (0u64, 0u64, 0u64, 0u64);
    for reader in readers {
        if let Ok(seen) = reader.await {
            let _ = latencies.add(&seen.latencies);
            received += seen.deliveries;
            pongs += seen.pongs;
            frame_errors += seen.errors;
            closed += u64::from(seen.closed);
        }
    }
    errors["error_frames"] = json!(frame_errors);
    errors["closed_early"] = json!(closed);
    merge(
        &mut report,
        json!({"deliveries_received": received, "latency_ms": stats::summary_ms(&latencies), "errors": errors}),
    );
    if args.mode == Mode::Idle {
        merge(&mut report, json!({"alive_at_end": pongs}));
    }
    if let (Some(pid), Some(b)) = (args.server_pid, before) {
        if let Some(after) = stats::sample(pid) {
            let cpu = after.cpu_s - b.cpu_s;
            let per_delivery_us = if received > 0 { cpu * 1e6 / received as f64 } else { 0.0 };
            merge(
                &mut report,
                json!({"server": {"cpu_s": round2(cpu), "rss_kb_start": b.rss_kb, "rss_kb_end": after.rss_kb,
                    "cpu_us_per_delivery": round2(per_delivery_us)}}),
            );
        }
    }
    Ok(report)
}

/// Room codes to join: the lobby, or rooms made by one owner guest.
async fn prepare_rooms(server: &Server, args: &Args) -> Result<Vec<String>, String> {
    if args.rooms <= 1 {
        return Ok(vec!["lobby".to_owned()]);
    }
    let owner = server.guest("bench owner").await?;
    let mut codes = Vec::with_capacity(args.rooms);
    for i in 0..args.rooms {
        codes.push(server.create_room(&owner, &format!("bench room {i}")).await?);
    }
    Ok(codes)
}

/// Opens every connection (bounded concurrency, each setup bounded in time):
/// the sockets with their room index, the failures, and the time it took.
async fn open_all(server: &Server, args: &Args, rooms: &[String]) -> (Vec<(Ws, usize)>, u64, Duration) {
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut tasks = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        let (server, gate, rooms) = (server.clone(), gate.clone(), rooms.to_vec());
        let source = args.sources[i % args.sources.len()];
        let source = (args.sources.len() > 1 || source != Ipv4Addr::LOCALHOST).then_some(source);
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            let room = i % rooms.len();
            let setup = async {
                let session = server.guest(&format!("load {i}")).await?;
                let (mut ws, _hello) = server.connect(&session, source).await?;
                client::join(&mut ws, &rooms[room]).await?;
                Ok::<_, String>((ws, room))
            };
            tokio::time::timeout(Duration::from_secs(30), setup)
                .await
                .map_err(|_| "setup timed out".to_owned())?
        }));
    }
    let mut sockets = Vec::with_capacity(args.conns);
    let mut failures = 0;
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(socket)) => sockets.push(socket),
            Ok(Err(e)) => {
                failures += 1;
                first_error.get_or_insert(e);
            }
            Err(e) => {
                failures += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    if let Some(e) = first_error {
        eprintln!("sb-loadgen: {failures} connections failed; first: {e}");
    }
    (sockets, failures, started.elapsed())
}

/// Counts deliveries (with their latency), pongs and error frames until told
/// to stop or the socket closes.
async fn read(
    mut stream: SplitStream<Ws>,
    mut stop: watch::Receiver<bool>,
    epoch: Instant,
    counters: Arc<Counters>,
) -> Seen {
    let mut seen = Seen {
        latencies: stats::histogram(),
        deliveries: 0,
        pongs: 0,
        errors: 0,
        closed: false,
    };
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str();
                    if let Some(sent) = stats::sent_at_ns(text) {
                        let now = epoch.elapsed().as_nanos() as u64;
                        let _ = seen.latencies.record(now.saturating_sub(sent) / 1000);
                        seen.deliveries += 1;
                        counters.delivered.fetch_add(1, Ordering::Relaxed);
                    } else if text.starts_with(r#"{"type":"pong""#) {
                        seen.pongs += 1;
                        counters.pongs.fetch_add(1, Ordering::Relaxed);
                    } else if text.starts_with(r#"{"type":"error""#) {
                        seen.errors += 1;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    seen.closed = !*stop.borrow();
                    break;
                }
                Some(Ok(_)) => {}
            }
        }
    }
    seen
}

type Sink = SplitSink<Ws, Message>;

/// Runs the senders for the duration, then waits for the deliveries to
/// arrive (at most `drain` seconds).
async fn fanout(
    server: &Server,
    args: &Args,
    sinks: &mut [Option<Sink>],
    room_of: &[usize],
    epoch: Instant,
    counters: &Counters,
) -> Result<Value, String> {
    let delivered = &counters.delivered;
    let senders = args.senders.min(sinks.len()).max(1);
    let mut members = vec![0u64; room_of.iter().max().map_or(1, |m| m + 1)];
    for room in room_of {
        members[*room] += 1;
    }
    // Senders: the first connection of each room in turn, then the next ones.
    let mut order: Vec<usize> = (0..sinks.len()).collect();
    order.sort_by_key(|i| (i / members.len().max(1), room_of[*i]));
    let chosen: Vec<usize> = order.into_iter().take(senders).collect();
    let per_sender_interval = Duration::from_secs_f64(senders as f64 / args.rate.max(0.001));
    let deadline = Instant::now() + Duration::from_secs(args.duration);

    let probes =
        (args.kick_probes > 0).then(|| tokio::spawn(kick_probes(server.clone(), args.clone_admin(), args.kick_probes)));

    let mut sent = vec![0u64; sinks.len()];
    let taken: Vec<(usize, Sink)> = chosen.iter().filter_map(|&i| sinks[i].take().map(|s| (i, s))).collect();
    let mut tasks = Vec::new();
    for (offset, (i, mut sink)) in taken.into_iter().enumerate() {
        let start_offset = per_sender_interval.mul_f64(offset as f64 / senders as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(start_offset).await;
            let mut ticks = tokio::time::interval(per_sender_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut count = 0u64;
            while Instant::now() < deadline {
                ticks.tick().await;
                let text = format!(r#"{{"type":"chat","text":"t{}"}}"#, epoch.elapsed().as_nanos());
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
                count += 1;
            }
            (i, sink, count)
        }));
    }
    for task in tasks {
        let (i, sink, count) = task.await.map_err(|e| e.to_string())?;
        sinks[i] = Some(sink);
        sent[i] = count;
    }
    let msgs_sent: u64 = sent.iter().sum();
    let expected: u64 = sent.iter().enumerate().map(|(i, n)| n * members[room_of[i]]).sum();
    let drain_started = Instant::now();
    while delivered.load(Ordering::Relaxed) < expected && drain_started.elapsed() < Duration::from_secs(args.drain) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = args.duration as f64 + drain_started.elapsed().as_secs_f64();
    let received = delivered.load(Ordering::Relaxed);
    let mut report = json!({
        "senders": senders,
        "rate_target": args.rate,
        "duration_s": args.duration,
        "msgs_sent": msgs_sent,
        "deliveries_expected": expected,
        "delivered_per_s": (received as f64 / elapsed).round(),
        "drain_ms": drain_started.elapsed().as_millis() as u64,
        "all_delivered": received >= expected,
    });
    if let Some(probes) = probes {
        let (kicks, failures) = probes.await.map_err(|e| e.to_string())?;
        report["kick_ms"] = stats::summary_ms(&kicks);
        report["kick_failures"] = json!(failures);
    }
    Ok(report)
}

/// Opens a fresh guest session `count` times, kicks it as the admin, and
/// times the kick from the request to the `kicked` frame.
async fn kick_probes(server: Server, admin: (String, String), count: usize) -> (Histogram<u64>, u64) {
    let mut latencies = stats::histogram();
    let mut failures = 0;
    let admin = match server.admin(&admin.0, &admin.1).await {
        Ok(admin) => admin,
        Err(e) => {
            eprintln!("sb-loadgen: kick probes disabled: {e}");
            return (latencies, count as u64);
        }
    };
    for i in 0..count {
        tokio::time::sleep(Duration::from_millis(200)).await;
        match tokio::time::timeout(Duration::from_secs(10), kick_once(&server, &admin, i)).await {
            Ok(Ok(us)) => {
                let _ = latencies.record(us);
            }
            _ => failures += 1,
        }
    }
    (latencies, failures)
}

async fn kick_once(server: &Server, admin: &Session, i: usize) -> Result<u64, String> {
    let victim = server.guest(&format!("kick probe {i}")).await?;
    let (mut ws, hello) = server.connect(&victim, None).await?;
    let sid = hello["sid"].as_str().ok_or("no sid")?.to_owned();
    let started = Instant::now();
    server.kick(admin, &sid).await?;
    client::next_of(&mut ws, "kicked").await?;
    Ok(started.elapsed().as_micros() as u64)
}

/// Sends a protocol ping on every socket and waits (at most 10 s) for all
/// the pongs; answers how many pings went out.
async fn ping_all(sinks: &mut [Option<Sink>], counters: &Counters) -> u64 {
    let mut sent = 0;
    for sink in sinks.iter_mut().flatten() {
        if sink.send(Message::Text(r#"{"type":"ping"}"#.into())).await.is_ok() {
            sent += 1;
        }
    }
    let waiting = Instant::now();
    while counters.pongs.load(Ordering::Relaxed) < sent && waiting.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sent
}

impl Args {
    fn clone_admin(&self) -> (String, String) {
        (self.admin_email.clone(), self.admin_password.clone())
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
