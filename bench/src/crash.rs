//! `crash`: one round of the crash test (bench/crash.sh kills the server
//! with SIGKILL during each round and starts it again before the next).
//!
//! A round:
//! 1. reads the state file the earlier rounds left (sessions, rooms, every
//!    message id a sender saw come back to itself: acknowledged);
//! 2. pages through each room's whole history over HTTP
//!    (`?before=ID&limit=200`) and counts the acknowledged messages that
//!    are missing and any id that appears twice;
//! 3. reconnects the clients: each one's `joined` history, then paging
//!    back to the last message it had seen, must give exactly the room's
//!    messages after that one, once each. A fifth of each room's clients
//!    sit each round out, so that next time they have more than the `joined`
//!    history to catch up on;
//! 4. chats at the rate (unless the duration is 0) until the server dies
//!    or the duration ends, recording what comes back; saves the state.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Server, Session, Ws};

struct ClientState {
    session: Session,
    room: String,
    last_seen: i64,
}

struct State {
    round: u64,
    rooms: Vec<String>,
    clients: Vec<ClientState>,
    acked: HashMap<String, Vec<i64>>,
}

pub async fn round(
    server: &Server,
    path: &Path,
    conns: usize,
    rooms: usize,
    rate: f64,
    duration: u64,
) -> Result<Value, String> {
    let mut state = match std::fs::read_to_string(path) {
        Ok(text) => State::parse(&text)?,
        Err(_) => State::fresh(server, conns, rooms.max(1)).await?,
    };
    state.round += 1;
    let reader = state.clients[0].session.clone();
    let mut histories = HashMap::new();
    let (mut lost, mut paging_duplicates, mut acked_total) = (0u64, 0u64, 0u64);
    for room in &state.rooms {
        let (ids, duplicates) = full_history(server, &reader, room, None).await?;
        let acked = state.acked.get(room).map_or(&[][..], Vec::as_slice);
        acked_total += acked.len() as u64;
        lost += acked.iter().filter(|id| !ids.contains(id)).count() as u64;
        paging_duplicates += duplicates;
        histories.insert(room.clone(), ids);
    }
    let mut sockets = Vec::new();
    let (mut catchup_mismatches, mut catchup_duplicates, mut caught_up) = (0u64, 0u64, 0u64);
    for (i, client) in state.clients.iter().enumerate() {
        let turn = (i / state.rooms.len()) as u64;
        if duration > 0 && (turn + state.round).is_multiple_of(5) {
            continue;
        }
        let (ws, history) = connect(server, client).await.map_err(|e| format!("client {i}: {e}"))?;
        let (seen, duplicates) = catch_up(server, client, &history).await?;
        let expected: BTreeSet<i64> = histories[&client.room].range(client.last_seen + 1..).copied().collect();
        catchup_duplicates += duplicates;
        if seen != expected {
            catchup_mismatches += 1;
            eprintln!(
                "crash: client {i} caught up {} messages, the room has {} after {}",
                seen.len(),
                expected.len(),
                client.last_seen
            );
        }
        caught_up += seen.len() as u64;
        sockets.push((i, ws));
    }
    for &(i, _) in &sockets {
        let client = &mut state.clients[i];
        client.last_seen = histories[&client.room].last().copied().unwrap_or(client.last_seen);
    }
    let mut report = json!({
        "mode": "crash",
        "round": state.round,
        "acked_before": acked_total,
        "acked_lost": lost,
        "history_duplicates": paging_duplicates,
        "clients_connected": sockets.len(),
        "catchup_messages": caught_up,
        "catchup_mismatches": catchup_mismatches,
        "catchup_duplicates": catchup_duplicates,
    });
    if duration > 0 {
        let chat = chat(&mut state, sockets, rate, Duration::from_secs(duration)).await;
        if let (Some(report), Value::Object(fields)) = (report.as_object_mut(), chat) {
            report.extend(fields);
        }
    }
    std::fs::write(path, state.to_json().to_string()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(report)
}

impl State {
    async fn fresh(server: &Server, conns: usize, rooms: usize) -> Result<State, String> {
        let owner = server.guest("crash owner").await?;
        let mut codes = Vec::with_capacity(rooms);
        for i in 0..rooms {
            codes.push(server.create_room(&owner, &format!("crash room {i}")).await?);
        }
        let mut clients = Vec::with_capacity(conns);
        for i in 0..conns {
            clients.push(ClientState {
                session: server.guest(&format!("crash {i}")).await?,
                room: codes[i % rooms].clone(),
                last_seen: 0,
            });
        }
        Ok(State {
            round: 0,
            rooms: codes,
            clients,
            acked: HashMap::new(),
        })
    }

    fn parse(text: &str) -> Result<State, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("state file: {e}"))?;
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        let clients = v["clients"]
            .as_array()
            .ok_or("state file: no clients")?
            .iter()
            .map(|c| ClientState {
                session: Session {
                    cookie: c["cookie"].as_str().unwrap_or_default().to_owned(),
                    csrf: c["csrf"].as_str().unwrap_or_default().to_owned(),
                },
                room: c["room"].as_str().unwrap_or_default().to_owned(),
                last_seen: c["last_seen"].as_i64().unwrap_or(0),
            })
            .collect();
        let acked = v["acked"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(room, ids)| {
                        let ids = ids.as_array().map(|a| a.iter().filter_map(Value::as_i64).collect());
                        (room.clone(), ids.unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(State {
            round: v["round"].as_u64().unwrap_or(0),
            rooms: strings(&v["rooms"]),
            clients,
            acked,
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "round": self.round,
            "rooms": self.rooms,
            "clients": self.clients.iter().map(|c| json!({
                "cookie": c.session.cookie, "csrf": c.session.csrf, "room": c.room, "last_seen": c.last_seen,
            })).collect::<Vec<_>>(),
            "acked": self.acked,
        })
    }
}

/// Every message id in `room` older than `before` (all of them when
/// `None`), by pages of 200 from the newest back, as a client pages; and
/// how many ids came twice.
async fn full_history(
    server: &Server,
    session: &Session,
    room: &str,
    before: Option<i64>,
) -> Result<(BTreeSet<i64>, u64), String> {
    history_until(server, session, room, before, 0).await
}

/// Pages back from `before` until a page reaches `stop_at` or the start.
async fn history_until(
    server: &Server,
    session: &Session,
    room: &str,
    mut before: Option<i64>,
    stop_at: i64,
) -> Result<(BTreeSet<i64>, u64), String> {
    let mut ids = BTreeSet::new();
    let mut duplicates = 0;
    loop {
        let query = match before {
            Some(id) => format!("?before={id}&limit=200"),
            None => "?limit=200".to_owned(),
        };
        let page = server
            .get(&format!("/api/rooms/{room}/messages{query}"), session)
            .await?;
        let page: Vec<i64> = page["messages"]
            .as_array()
            .ok_or("no messages in the page")?
            .iter()
            .filter_map(|m| m["id"].as_i64())
            .collect();
        let Some(&oldest) = page.first() else {
            return Ok((ids, duplicates));
        };
        for id in &page {
            if !ids.insert(*id) {
                duplicates += 1;
            }
        }
        if oldest <= stop_at || page.len() < 200 {
            return Ok((ids, duplicates));
        }
        before = Some(oldest);
    }
}

async fn connect(server: &Server, client: &ClientState) -> Result<(Ws, Vec<i64>), String> {
    let setup = async {
        let (mut ws, _) = server.connect(&client.session, None).await?;
        crate::client::send(&mut ws, &json!({"type": "join", "room": client.room})).await?;
        let joined = crate::client::next_of(&mut ws, "joined").await?;
        let history = joined["history"]
            .as_array()
            .ok_or("joined has no history")?
            .iter()
            .filter_map(|m| m["id"].as_i64())
            .collect();
        Ok((ws, history))
    };
    tokio::time::timeout(Duration::from_secs(30), setup)
        .await
        .map_err(|_| "connect timed out".to_owned())?
}

/// What a reconnecting client has after the `joined` history and paging
/// back to its last seen message: the ids after that one, and how many it
/// got twice.
async fn catch_up(server: &Server, client: &ClientState, history: &[i64]) -> Result<(BTreeSet<i64>, u64), String> {
    let mut seen = BTreeSet::new();
    let mut duplicates = 0;
    for id in history {
        if !seen.insert(*id) {
            duplicates += 1;
        }
    }
    if let Some(&oldest) = history.first() {
        if oldest > client.last_seen + 1 && history.len() >= 200 {
            let (older, twice) =
                history_until(server, &client.session, &client.room, Some(oldest), client.last_seen).await?;
            duplicates += twice;
            for id in older {
                if !seen.insert(id) {
                    duplicates += 1;
                }
            }
        }
    }
    Ok((seen.split_off(&(client.last_seen + 1)), duplicates))
}

/// Every client chats (nonce-tagged) at its share of the rate until its
/// socket dies or the time is up; the ids of its own messages that came
/// back to it are acknowledged.
async fn chat(state: &mut State, sockets: Vec<(usize, Ws)>, rate: f64, duration: Duration) -> Value {
    eprintln!("crash: sending");
    let count = sockets.len().max(1);
    let every = Duration::from_secs_f64(count as f64 / rate.max(0.001));
    let deadline = Instant::now() + duration;
    let round = state.round;
    let mut tasks = Vec::new();
    for (n, (i, ws)) in sockets.into_iter().enumerate() {
        let offset = every.mul_f64(n as f64 / count as f64);
        tasks.push((i, tokio::spawn(chat_one(ws, i, round, every, offset, deadline))));
    }
    let (mut sent, mut acked, mut errors) = (0u64, 0u64, 0u64);
    for (i, task) in tasks {
        let Ok(outcome) = task.await else { continue };
        sent += outcome.sent;
        acked += outcome.acked.len() as u64;
        errors += outcome.error_frames;
        let client = &mut state.clients[i];
        client.last_seen = client.last_seen.max(outcome.last_seen);
        state
            .acked
            .entry(client.room.clone())
            .or_default()
            .extend(outcome.acked);
    }
    json!({"sent": sent, "acked": acked, "error_frames": errors})
}

struct Outcome {
    sent: u64,
    acked: Vec<i64>,
    last_seen: i64,
    error_frames: u64,
}

async fn chat_one(mut ws: Ws, i: usize, round: u64, every: Duration, offset: Duration, deadline: Instant) -> Outcome {
    let mine = format!("r{round}c{i}-");
    let mut out = Outcome {
        sent: 0,
        acked: Vec::new(),
        last_seen: 0,
        error_frames: 0,
    };
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let stop = tokio::time::sleep_until(deadline.into());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticks.tick() => {
                out.sent += 1;
                let chat = json!({"type": "chat", "text": format!("crash {mine}{}", out.sent), "nonce": format!("{mine}{}", out.sent)});
                if ws.send(Message::Text(chat.to_string().into())).await.is_err() {
                    break;
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    match frame["type"].as_str() {
                        Some("message") => {
                            let id = frame["id"].as_i64().unwrap_or(0);
                            out.last_seen = out.last_seen.max(id);
                            if frame["nonce"].as_str().is_some_and(|n| n.starts_with(&mine)) {
                                out.acked.push(id);
                            }
                        }
                        Some("error") => out.error_frames += 1,
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
        }
    }
    out
}
