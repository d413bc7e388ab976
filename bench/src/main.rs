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
//! - `floor`: no server: one thread writes the same frames to N loopback
//!   sockets at the rate, one `write` per delivery; its CPU per delivery is
//!   the floor for a server's (see `floor.rs`).
//! - `close`: N connections closed one after another as a standard client
//!   closes: how long until the server has answered the close frame and
//!   ended the TCP connection.
//! - `soak`: N connections in R rooms for a long time, chatting at the
//!   rate while an admin kicks and users reconnect (see `soak.rs`).
//! - `crash`: one round of the crash test: check what earlier rounds saw
//!   acknowledged, catch up, then chat until the server dies (see
//!   `crash.rs`).
//! - `sfu`, `sfu-churn`: voice through the SFU with headless WebRTC peers
//!   (see `sfu.rs`).
//!
//! Every loop is bounded in count and time, and a watchdog ends the process
//! after `--max-runtime` seconds whatever happens.

mod client;
mod crash;
mod floor;
mod sfu;
mod soak;
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
    Floor,
    Close,
    Soak,
    Crash,
    Sfu,
    SfuChurn,
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
    /// SFU: members that talk (50 packets per second each).
    #[arg(long, default_value_t = 10)]
    speakers: usize,
    /// SFU: members that only listen.
    #[arg(long, default_value_t = 40)]
    listeners: usize,
    /// SFU churn: joins and leaves in all.
    #[arg(long, default_value_t = 1000)]
    cycles: usize,
    /// SFU churn: sessions joining and leaving at once.
    #[arg(long, default_value_t = 10)]
    churners: usize,
    /// Hard limit on the whole run, in seconds.
    #[arg(long, default_value_t = 180)]
    max_runtime: u64,
    /// Floor mode: the JSON size of each frame (a Switchboard delivery of
    /// the peer harness's chat is about this long).
    #[arg(long, default_value_t = 197)]
    frame_bytes: usize,
    /// Soak mode: admin kicks per second, spread over the non-senders.
    #[arg(long, default_value_t = 1.0)]
    kicks_per_s: f64,
    /// Soak mode: reconnects per second (a user reloading the page).
    #[arg(long, default_value_t = 2.0)]
    churn_per_s: f64,
    /// Crash mode: the file that carries sessions, rooms and acknowledged
    /// messages from one round to the next.
    #[arg(long, default_value = "crash-state.json")]
    state: std::path::PathBuf,
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

/// The WebSocket modes run on one thread; the SFU modes, whose peers each
/// decrypt every packet they hear, on two.
fn main() {
    let args = Args::parse();
    let runtime = match args.mode {
        Mode::Sfu | Mode::SfuChurn => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        Mode::Fanout | Mode::Idle | Mode::Floor | Mode::Close | Mode::Soak | Mode::Crash => {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        }
    };
    match runtime {
        Ok(runtime) => runtime.block_on(start(args)),
        Err(e) => println!("{}", json!({"fatal": format!("runtime: {e}")})),
    }
}

async fn start(args: Args) {
    let watchdog = args.max_runtime;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(watchdog)).await;
        println!("{}", json!({"fatal": format!("watchdog: run exceeded {watchdog} s")}));
        std::process::exit(3);
    });
    let outcome = match args.mode {
        Mode::Sfu => sfu::fanout(&args).await,
        Mode::SfuChurn => sfu::churn(&args).await,
        Mode::Fanout | Mode::Idle | Mode::Floor | Mode::Close | Mode::Soak | Mode::Crash => run(&args).await,
    };
    let report = match outcome {
        Ok(report) => report,
        Err(e) => json!({"fatal": e}),
    };
    println!("{report}");
    if report.get("fatal").is_some() {
        std::process::exit(1);
    }
}

async fn run(args: &Args) -> Result<Value, String> {
    if args.mode == Mode::Floor {
        return run_floor(args).await;
    }
    let server = Server::new(&args.url, args.connect_concurrency)?;
    if args.mode == Mode::Crash {
        return crash::round(&server, &args.state, args.conns, args.rooms, args.rate, args.duration).await;
    }
    let epoch = Instant::now();
    let before = args.server_pid.and_then(stats::sample);
    let rooms = prepare_rooms(&server, args).await?;
    if args.mode == Mode::Soak {
        let plan = soak::Plan {
            conns: args.conns,
            rooms,
            senders: args.senders,
            rate: args.rate,
            duration: Duration::from_secs(args.duration),
            kicks_per_s: args.kicks_per_s,
            churn_per_s: args.churn_per_s,
            admin: args.clone_admin(),
            connect_concurrency: args.connect_concurrency,
        };
        return soak::run(&server, plan).await;
    }
    if args.mode == Mode::Close {
        let (sockets, connect_errors, _) = open_all(&server, args, &rooms, |ws, room| (ws, room)).await;
        let mut report = close_all(sockets).await;
        merge(
            &mut report,
            json!({"conns_requested": args.conns, "errors": {"connect": connect_errors}}),
        );
        return Ok(report);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let counters = Arc::new(Counters::default());
    // Each socket is read from the moment it has joined, as a real client's
    // is: one left unread while the others connect would miss the server's
    // pings and be dropped as silent.
    let (reading, shared) = (stop_rx, counters.clone());
    let start_reading = move |ws: Ws, room: usize| {
        let (sink, stream) = ws.split();
        (
            sink,
            tokio::spawn(read(stream, reading.clone(), epoch, shared.clone())),
            room,
        )
    };
    let (sockets, connect_errors, connect_time) = open_all(&server, args, &rooms, start_reading).await;
    let established = sockets.len();
    let threads_before = args.server_pid.map(stats::threads);
    let mut sinks = Vec::with_capacity(established);
    let mut readers = Vec::with_capacity(established);
    let mut room_of = Vec::with_capacity(established);
    for (sink, reader, room) in sockets {
        sinks.push(Some(sink));
        room_of.push(room);
        readers.push(reader);
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
        Mode::Floor | Mode::Close | Mode::Soak | Mode::Crash => unreachable!("handled above"),
        Mode::Sfu | Mode::SfuChurn => return Err("the SFU modes run in sfu.rs".into()),
        Mode::Idle => {
            // Memory is read 2 s into the hold and at its end (as the peer
            // harness does): the second is what idle connections cost once
            // the connect phase's short-lived allocations are gone.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let settled = args.server_pid.and_then(stats::sample);
            tokio::time::sleep(Duration::from_secs(args.duration.saturating_sub(2))).await;
            let end_of_hold = args.server_pid.and_then(stats::sample);
            let alive = ping_all(&mut sinks, &counters).await;
            merge(&mut report, json!({"hold_s": args.duration, "pings_sent": alive}));
            if let (Some(b), Some(s), Some(e)) = (before, settled, end_of_hold) {
                let per_conn = |rss_kb: u64| round2(rss_kb.saturating_sub(b.rss_kb) as f64 / established.max(1) as f64);
                merge(
                    &mut report,
                    json!({"server_idle": {
                        "rss_kb_before": b.rss_kb,
                        "rss_kb_settled": s.rss_kb,
                        "rss_kb_per_conn_settled": per_conn(s.rss_kb),
                        "rss_kb_held": e.rss_kb,
                        "rss_kb_per_conn": per_conn(e.rss_kb),
                    }}),
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
    if let (Some(pid), Some(before)) = (args.server_pid, threads_before) {
        report["server"]["threads"] = thread_cpu(&before, &stats::threads(pid));
    }
    Ok(report)
}

/// CPU seconds per server thread over the run, busiest first.
fn thread_cpu(
    before: &std::collections::HashMap<u32, (String, f64)>,
    after: &std::collections::HashMap<u32, (String, f64)>,
) -> Value {
    let mut used: Vec<(String, f64)> = after
        .iter()
        .map(|(tid, (name, cpu))| {
            let start = before.get(tid).map_or(0.0, |(_, cpu)| *cpu);
            (format!("{name} ({tid})"), cpu - start)
        })
        .filter(|(_, cpu)| *cpu > 0.0)
        .collect();
    used.sort_by(|a, b| b.1.total_cmp(&a.1));
    Value::Array(
        used.into_iter()
            .map(|(name, cpu)| json!({"thread": name, "cpu_s": round2(cpu)}))
            .collect(),
    )
}

/// The floor: no server, one writer thread, the usual readers.
async fn run_floor(args: &Args) -> Result<Value, String> {
    let epoch = Instant::now();
    let writer = floor::Writer::bind().map_err(|e| format!("bind: {e}"))?;
    let addr = writer.addr().map_err(|e| e.to_string())?;
    let finished = writer.run(
        args.conns,
        args.rate,
        Duration::from_secs(args.duration),
        args.frame_bytes,
        epoch,
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let counters = Arc::new(Counters::default());
    let mut readers = Vec::with_capacity(args.conns);
    let mut sinks = Vec::with_capacity(args.conns);
    for _ in 0..args.conns {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let ws = Ws::from_raw_socket(stream, tokio_tungstenite::tungstenite::protocol::Role::Client, None).await;
        let (sink, stream) = ws.split();
        sinks.push(sink);
        readers.push(tokio::spawn(read(stream, stop_rx.clone(), epoch, counters.clone())));
    }
    let (frames, cpu_s) = tokio::task::spawn_blocking(move || finished.recv())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the writer thread died".to_owned())??;
    let expected = frames * args.conns as u64;
    let drain_started = Instant::now();
    while counters.delivered.load(Ordering::Relaxed) < expected
        && drain_started.elapsed() < Duration::from_secs(args.drain)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let mut latencies = stats::histogram();
    let mut received = 0;
    for reader in readers {
        if let Ok(seen) = reader.await {
            let _ = latencies.add(&seen.latencies);
            received += seen.deliveries;
        }
    }
    let mut report = json!({
        "mode": "floor",
        "conns_requested": args.conns,
        "conns_established": args.conns,
        "rate_target": args.rate,
        "duration_s": args.duration,
        "frame_bytes": args.frame_bytes,
        "deliveries_received": received,
        "all_delivered": received >= expected,
        "latency_ms": stats::summary_ms(&latencies),
    });
    merge(&mut report, floor::report(frames, args.conns, cpu_s, received));
    Ok(report)
}

/// Closes every socket in turn as a standard client does: close frame,
/// the server's answer, then the end of the TCP connection, which the
/// server should close first (RFC 6455 section 7.1.1).
async fn close_all(sockets: Vec<(Ws, usize)>) -> Value {
    const WAIT: Duration = Duration::from_secs(5);
    let started = Instant::now();
    let mut took = stats::histogram();
    let (mut closed_by_server, mut timed_out) = (0u64, 0u64);
    let count = sockets.len();
    for (mut ws, _) in sockets {
        let one = Instant::now();
        match tokio::time::timeout(WAIT, close_one(&mut ws)).await {
            Ok(true) => closed_by_server += 1,
            Ok(false) => {}
            Err(_) => timed_out += 1,
        }
        let _ = took.record(one.elapsed().as_micros() as u64);
    }
    json!({
        "mode": "close",
        "conns_established": count,
        "closes": count,
        "closed_by_server_first": closed_by_server,
        "timed_out_after_5s": timed_out,
        "close_ms": stats::summary_ms(&took),
        "total_s": round2(started.elapsed().as_secs_f64()),
    })
}

/// True when the server ended the TCP connection after the handshake.
async fn close_one(ws: &mut Ws) -> bool {
    use tokio::io::AsyncReadExt;
    if ws.close(None).await.is_err() {
        return false;
    }
    while let Some(Ok(_)) = ws.next().await {}
    let mut byte = [0u8; 1];
    matches!(ws.get_mut().read(&mut byte).await, Ok(0))
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

/// Opens every connection (bounded concurrency, each setup bounded in time)
/// and hands each joined socket with its room index to `opened`: what it
/// made of each, the failures, and the time it took.
async fn open_all<T: Send + 'static>(
    server: &Server,
    args: &Args,
    rooms: &[String],
    opened: impl Fn(Ws, usize) -> T + Clone + Send + Sync + 'static,
) -> (Vec<T>, u64, Duration) {
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut tasks = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        let (server, gate, rooms, opened) = (server.clone(), gate.clone(), rooms.to_vec(), opened.clone());
        let source = args.sources[i % args.sources.len()];
        let source = (args.sources.len() > 1 || source != Ipv4Addr::LOCALHOST).then_some(source);
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            let room = i % rooms.len();
            let setup = async {
                let session = server.guest(&format!("load {i}")).await?;
                let (mut ws, _hello) = server.connect(&session, source).await?;
                client::join(&mut ws, &rooms[room]).await?;
                Ok::<_, String>(opened(ws, room))
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
