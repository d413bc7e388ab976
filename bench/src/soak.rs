//! `soak`: many connections held for a long time while the state churns.
//! Every connection reads all the time and reconnects when it is closed;
//! the first `senders` (spread over the rooms) chat at the total rate and
//! check that each of their messages comes back to them; an admin kicks a
//! random other connection `kicks_per_s` times a second, and `churn_per_s`
//! times a second another closes itself and reconnects, as a user
//! reloading the page does. When the time is up every connection closes
//! cleanly, so the server's descriptors can be compared with its baseline.
//!
//! Errors are anything a well-behaved client should never see: a failed
//! sign-in, upgrade or join, an `error` frame, a close it did not cause
//! and that was not a kick, a message of its own that never came back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Server, Session, Ws};

/// What the soak is asked to do.
pub struct Plan {
    pub conns: usize,
    pub rooms: Vec<String>,
    pub senders: usize,
    pub rate: f64,
    pub duration: Duration,
    pub kicks_per_s: f64,
    pub churn_per_s: f64,
    pub admin: (String, String),
    pub connect_concurrency: usize,
}

#[derive(Default)]
struct Totals {
    connects: AtomicU64,
    connect_failures: AtomicU64,
    error_frames: AtomicU64,
    unexpected_closes: AtomicU64,
    kicks_sent: AtomicU64,
    kicks_missed: AtomicU64,
    kicks_seen: AtomicU64,
    churns: AtomicU64,
    deliveries: AtomicU64,
    sent: AtomicU64,
    echoed: AtomicU64,
}

/// One connection slot: its live session id (for the kicker) and a bell
/// that asks it to reconnect.
#[derive(Default)]
struct Slot {
    sid: Mutex<Option<String>>,
    churn: Notify,
}

pub async fn run(server: &Server, plan: Plan) -> Result<Value, String> {
    let started = Instant::now();
    let admin = server.admin(&plan.admin.0, &plan.admin.1).await?;
    let totals = Arc::new(Totals::default());
    let slots: Arc<Vec<Slot>> = Arc::new((0..plan.conns).map(|_| Slot::default()).collect());
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(tokio::sync::Semaphore::new(plan.connect_concurrency.max(1)));
    let senders = plan.senders.min(plan.conns);
    let interval = Duration::from_secs_f64(senders.max(1) as f64 / plan.rate.max(0.001));
    let mut clients = Vec::with_capacity(plan.conns);
    for i in 0..plan.conns {
        let client = Client {
            index: i,
            room: plan.rooms[i % plan.rooms.len()].clone(),
            send_every: (i < senders).then_some(interval),
            server: server.clone(),
            totals: totals.clone(),
            slots: slots.clone(),
            stop: stop_rx.clone(),
            gate: gate.clone(),
        };
        clients.push(tokio::spawn(client.run()));
    }
    let upheaval = tokio::spawn(upheaval(
        server.clone(),
        admin,
        slots.clone(),
        senders,
        (plan.kicks_per_s, plan.churn_per_s),
        totals.clone(),
        stop_rx.clone(),
    ));
    tokio::time::sleep(plan.duration).await;
    let _ = stop_tx.send(true);
    for client in clients {
        let _ = client.await;
    }
    let _ = upheaval.await;
    let t = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let lost = t(&totals.sent).saturating_sub(t(&totals.echoed));
    let errors = t(&totals.connect_failures) + t(&totals.error_frames) + t(&totals.unexpected_closes) + lost;
    Ok(json!({
        "mode": "soak",
        "conns": plan.conns,
        "rooms": plan.rooms.len(),
        "senders": senders,
        "rate_target": plan.rate,
        "duration_s": plan.duration.as_secs(),
        "elapsed_s": started.elapsed().as_secs(),
        "connects": t(&totals.connects),
        "msgs_sent": t(&totals.sent),
        "msgs_echoed": t(&totals.echoed),
        "deliveries_received": t(&totals.deliveries),
        "kicks_sent": t(&totals.kicks_sent),
        "kicks_missed_target_gone": t(&totals.kicks_missed),
        "kicks_seen": t(&totals.kicks_seen),
        "churn_reconnects": t(&totals.churns),
        "errors": {
            "total": errors,
            "connect_failures": t(&totals.connect_failures),
            "error_frames": t(&totals.error_frames),
            "unexpected_closes": t(&totals.unexpected_closes),
            "messages_not_echoed": lost,
        },
    }))
}

struct Client {
    index: usize,
    room: String,
    send_every: Option<Duration>,
    server: Server,
    totals: Arc<Totals>,
    slots: Arc<Vec<Slot>>,
    stop: watch::Receiver<bool>,
    gate: Arc<tokio::sync::Semaphore>,
}

/// Why one connection ended.
enum Ended {
    Stop,
    Kicked,
    Churned,
    Unexpected,
}

impl Client {
    async fn run(mut self) {
        let Some(session) = self.sign_in().await else {
            return;
        };
        let mut sent = 0u64;
        while !*self.stop.borrow() {
            let Some(ws) = self.connect(&session).await else {
                // Back off, then try again: the failure is already counted.
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let ended = self.hold(ws, &mut sent).await;
            *self.slots[self.index].sid.lock().unwrap_or_else(|e| e.into_inner()) = None;
            match ended {
                Ended::Stop => break,
                Ended::Kicked => self.count(|t| &t.kicks_seen),
                Ended::Churned => self.count(|t| &t.churns),
                Ended::Unexpected => self.count(|t| &t.unexpected_closes),
            }
        }
    }

    fn count(&self, counter: impl Fn(&Totals) -> &AtomicU64) {
        counter(&self.totals).fetch_add(1, Ordering::Relaxed);
    }

    async fn sign_in(&self) -> Option<Session> {
        let _permit = self.gate.acquire().await.ok()?;
        match self.server.guest(&format!("soak {}", self.index)).await {
            Ok(session) => Some(session),
            Err(e) => {
                eprintln!("soak: sign-in {}: {e}", self.index);
                self.count(|t| &t.connect_failures);
                None
            }
        }
    }

    async fn connect(&self, session: &Session) -> Option<Ws> {
        let _permit = self.gate.acquire().await.ok()?;
        let setup = async {
            let (mut ws, hello) = self.server.connect(session, None).await?;
            client::join(&mut ws, &self.room).await?;
            Ok::<_, String>((ws, hello))
        };
        match tokio::time::timeout(Duration::from_secs(30), setup).await {
            Ok(Ok((ws, hello))) => {
                let sid = hello["sid"].as_str().map(str::to_owned);
                if self.send_every.is_none() {
                    *self.slots[self.index].sid.lock().unwrap_or_else(|e| e.into_inner()) = sid;
                }
                self.count(|t| &t.connects);
                Some(ws)
            }
            Ok(Err(e)) => {
                eprintln!("soak: connect {}: {e}", self.index);
                self.count(|t| &t.connect_failures);
                None
            }
            Err(_) => {
                eprintln!("soak: connect {}: timed out", self.index);
                self.count(|t| &t.connect_failures);
                None
            }
        }
    }

    /// Reads (and sends, for a sender) until the connection ends.
    async fn hold(&mut self, mut ws: Ws, sent: &mut u64) -> Ended {
        let mut ticks = self.send_every.map(|every| {
            let start = tokio::time::Instant::now() + every.mul_f64((self.index % 97) as f64 / 97.0);
            let mut t = tokio::time::interval_at(start, every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        let mut kicked = false;
        loop {
            let tick = async {
                match ticks.as_mut() {
                    Some(t) => t.tick().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.stop.changed() => {
                    self.drain_echoes(&mut ws).await;
                    let _ = ws.close(None).await;
                    while let Some(Ok(_)) = ws.next().await {}
                    return Ended::Stop;
                }
                _ = self.slots[self.index].churn.notified() => {
                    let _ = ws.close(None).await;
                    while let Some(Ok(_)) = ws.next().await {}
                    return Ended::Churned;
                }
                _ = tick => {
                    *sent += 1;
                    let chat = json!({"type": "chat", "text": format!("soak {} {}", self.index, sent),
                        "nonce": format!("{}-{}", self.index, sent)});
                    if ws.send(Message::Text(chat.to_string().into())).await.is_err() {
                        return Ended::Unexpected;
                    }
                    self.count(|t| &t.sent);
                }
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => kicked |= self.on_text(text.as_str()),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        return if kicked { Ended::Kicked } else { Ended::Unexpected };
                    }
                    Some(Ok(_)) => {}
                },
            }
        }
    }

    /// Counts a frame; true when it says this session was kicked.
    fn on_text(&self, text: &str) -> bool {
        let Ok(frame) = serde_json::from_str::<Value>(text) else {
            self.count(|t| &t.error_frames);
            return false;
        };
        match frame["type"].as_str() {
            Some("message") => {
                self.count(|t| &t.deliveries);
                let mine = format!("{}-", self.index);
                if frame["nonce"].as_str().is_some_and(|n| n.starts_with(&mine)) {
                    self.count(|t| &t.echoed);
                }
                false
            }
            Some("error") => {
                eprintln!("soak: {}: {frame}", self.index);
                self.count(|t| &t.error_frames);
                false
            }
            Some("kicked") => true,
            _ => false,
        }
    }

    /// A sender's last messages are still on their way back when the time
    /// is up: read (at most 10 s) until the frames stop coming.
    async fn drain_echoes(&self, ws: &mut Ws) {
        if self.send_every.is_none() {
            return;
        }
        while let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
            self.on_text(text.as_str());
        }
    }
}

/// The admin's kicks and the users' reloads, until told to stop.
async fn upheaval(
    server: Server,
    admin: Session,
    slots: Arc<Vec<Slot>>,
    senders: usize,
    (kicks_per_s, churn_per_s): (f64, f64),
    totals: Arc<Totals>,
    mut stop: watch::Receiver<bool>,
) {
    let others = slots.len().saturating_sub(senders);
    if others == 0 {
        return;
    }
    let mut random = Xorshift::seeded();
    let every = |per_s: f64| Duration::from_secs_f64(1.0 / per_s.max(0.001));
    let mut kicks = tokio::time::interval(every(kicks_per_s));
    let mut churns = tokio::time::interval(every(churn_per_s));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = kicks.tick(), if kicks_per_s > 0.0 => {
                let slot = &slots[senders + random.below(others)];
                let sid = slot.sid.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let Some(sid) = sid else { continue };
                totals.kicks_sent.fetch_add(1, Ordering::Relaxed);
                if server.kick(&admin, &sid).await.is_err() {
                    // The target reconnected or was churned meanwhile (404).
                    totals.kicks_missed.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ = churns.tick(), if churn_per_s > 0.0 => {
                slots[senders + random.below(others)].churn.notify_one();
            }
        }
    }
}

/// Enough randomness to pick whom to kick, with no extra dependency.
struct Xorshift(u64);

impl Xorshift {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Xorshift(nanos | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}
