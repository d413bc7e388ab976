//! The media loop: owns the shared UDP socket and every member's peer
//! connection, on one thread. A datagram is routed to its member (see
//! `demux`); the voice packets it yields are written straight into the
//! connections of the other members of that room, and out on the socket.
//! Control commands arrive on a channel; timers are checked on a short
//! tick against each connection's own next deadline.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::demux::Demux;
use super::member::{Health, Member};
use super::signal::ServerData;
use super::{Command, MediaEvent, MemberId};
use crate::ids::{RoomCode, SessionId};
use crate::metrics::Metrics;

/// How often connection timers (ICE consent, DTLS retransmits) are checked.
const TICK: Duration = Duration::from_millis(10);
/// Datagrams read in one go before commands and timers get a turn.
const READ_BATCH: usize = 256;
/// Larger than any datagram WebRTC sends (the MTU).
const DATAGRAM_MAX: usize = 2048;

type Events = Box<dyn Fn(MediaEvent) + Send>;

pub(super) fn spawn(
    socket: std::net::UdpSocket,
    announced: SocketAddr,
    metrics: Arc<Metrics>,
    events: Events,
    commands: mpsc::Receiver<Command>,
) -> std::io::Result<()> {
    std::thread::Builder::new().name("sfu-media".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => return tracing::error!(%error, "SFU: cannot start the media loop"),
        };
        runtime.block_on(async move {
            match UdpSocket::from_std(socket) {
                Ok(socket) => Engine::new(socket, announced, metrics, events).run(commands).await,
                Err(error) => tracing::error!(%error, "SFU: cannot use the UDP socket"),
            }
        });
    })?;
    Ok(())
}

struct Engine {
    socket: Arc<UdpSocket>,
    announced: SocketAddr,
    members: HashMap<MemberId, Member>,
    rooms: HashMap<RoomCode, Vec<MemberId>>,
    demux: Demux<MemberId>,
    metrics: Arc<Metrics>,
    events: Events,
    /// Voice packets taken from one member, about to be forwarded.
    voice: Vec<rtc::rtp::Packet>,
    due: Vec<MemberId>,
}

impl Engine {
    fn new(socket: UdpSocket, announced: SocketAddr, metrics: Arc<Metrics>, events: Events) -> Self {
        Self {
            socket: Arc::new(socket),
            announced,
            members: HashMap::new(),
            rooms: HashMap::new(),
            demux: Demux::default(),
            metrics,
            events,
            voice: Vec::new(),
            due: Vec::new(),
        }
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let socket = self.socket.clone();
        let mut buffer = vec![0u8; DATAGRAM_MAX];
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.guarded_command(command),
                    None => break,
                },
                readable = socket.readable() => match readable {
                    Ok(()) => self.read_batch(&mut buffer),
                    Err(error) => tracing::warn!(%error, "SFU: socket error"),
                },
                _ = tick.tick() => self.timers(),
            }
        }
        for member in self.members.values_mut() {
            member.close();
        }
        tracing::info!("SFU: media loop stopped");
    }

    fn read_batch(&mut self, buffer: &mut [u8]) {
        for _ in 0..READ_BATCH {
            match self.socket.try_recv_from(buffer) {
                Ok((len, from)) => self.datagram(&buffer[..len], from),
                Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                Err(error) => {
                    // ICMP errors and the like concern one peer, not the socket.
                    tracing::debug!(%error, "SFU: receive failed");
                }
            }
        }
    }

    fn datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        let Some(id) = self.demux.route(from, datagram) else {
            return;
        };
        let now = Instant::now();
        let local = self.announced;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if let Some(member) = self.members.get_mut(&id) {
                member.receive(datagram, from, local, now);
                self.settle(id, now);
            }
        }));
        if outcome.is_err() {
            tracing::error!(member = id.0, "SFU: a datagram broke the member's connection");
            self.end(id, Some("internal error"));
        }
    }

    /// After a member's connection was fed: its datagrams out, its voice
    /// forwarded, its state changes acted on.
    fn settle(&mut self, id: MemberId, now: Instant) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        // Events first: acting on one can queue datagrams (ICE connected
        // starts the DTLS handshake), which the flush then sends at once.
        let health = member.take_events();
        member.take_voice(&mut self.voice);
        member.flush(&mut send_via(&self.socket));

        if !self.voice.is_empty() {
            self.forward(id, now);
        }
        if health == Health::Ended {
            self.end(id, Some("the connection failed"));
        }
    }

    /// Writes the packets in `self.voice` into every other connection of the room.
    fn forward(&mut self, from: MemberId, now: Instant) {
        if self.members.get(&from).is_some_and(|m| !m.publishing) {
            self.subscribe_room_to(from, now);
        }
        let Some(publisher) = self.members.get(&from) else {
            self.voice.clear();
            return;
        };
        let silenced = publisher.muted || publisher.deafened;
        let room = self.rooms.get(&publisher.room);
        let (Some(room), false) = (room, silenced) else {
            self.voice.clear();
            return;
        };
        let mut forwarded = 0u64;
        let mut send = send_via(&self.socket);
        for to in room {
            if *to == from {
                continue;
            }
            let Some(listener) = self.members.get_mut(to) else {
                continue;
            };
            if listener.deafened || !listener.connected {
                continue;
            }
            for packet in &self.voice {
                forwarded += u64::from(listener.forward(from, packet, now));
            }
            listener.flush(&mut send);
        }
        self.voice.clear();
        self.metrics
            .sfu_packets_forwarded
            .fetch_add(forwarded, Ordering::Relaxed);
    }

    fn timers(&mut self) {
        let now = Instant::now();
        self.due.clear();
        self.due
            .extend(self.members.iter().filter(|(_, m)| m.due(now)).map(|(id, _)| *id));
        for id in std::mem::take(&mut self.due) {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                if let Some(member) = self.members.get_mut(&id) {
                    member.handle_timeout(now);
                    self.settle(id, now);
                }
            }));
            if outcome.is_err() {
                tracing::error!(member = id.0, "SFU: a timer broke the member's connection");
                self.end(id, Some("internal error"));
            }
        }
        let overdue: Vec<MemberId> = self
            .members
            .iter()
            .filter(|(_, m)| m.answer_overdue(now))
            .map(|(id, _)| *id)
            .collect();
        for id in overdue {
            self.end(id, Some("the offer was not answered"));
        }
    }

    fn guarded_command(&mut self, command: Command) {
        let member = match &command {
            Command::Join { member, .. }
            | Command::Answer { member, .. }
            | Command::Leave { member }
            | Command::SetMuted { member, .. }
            | Command::SetDeafened { member, .. } => *member,
        };
        if catch_unwind(AssertUnwindSafe(|| self.command(command))).is_err() {
            tracing::error!(member = member.0, "SFU: a request broke the member's connection");
            self.end(member, Some("internal error"));
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Join { member, sid, room } => self.join(member, sid, room),
            Command::Answer { member, version, sdp } => self.answer(member, version, sdp),
            Command::Leave { member } => self.end(member, None),
            Command::SetMuted { member, muted } => self.set_silenced(member, |m| &mut m.muted, muted),
            Command::SetDeafened { member, deafened } => self.set_silenced(member, |m| &mut m.deafened, deafened),
        }
    }

    fn join(&mut self, id: MemberId, sid: SessionId, room: RoomCode) {
        let now = Instant::now();
        let mut member = match Member::new(sid.clone(), room.clone(), self.announced, now) {
            Ok(member) => member,
            Err(error) => {
                tracing::error!(%error, "SFU: cannot create a peer connection");
                return (self.events)(MediaEvent::Ended {
                    member: id,
                    reason: "the server could not set up voice".into(),
                });
            }
        };
        // Its first offer holds a slot for everyone already speaking here.
        for other in self.rooms.get(&room).into_iter().flatten() {
            let Some(peer) = self.members.get(other).filter(|p| p.publishing) else {
                continue;
            };
            if let Err(error) = member.assign(*other, peer.sid.clone()) {
                tracing::error!(%error, "SFU: cannot add a receive slot");
            }
        }
        self.demux.add(member.ufrag.clone(), id);
        self.members.insert(id, member);
        self.rooms.entry(room).or_default().push(id);
        self.metrics.sfu_members.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%sid, member = id.0, "SFU: member joined");
        self.offer(id, now);
    }

    /// A member's first voice: every other member of its room gets a slot
    /// for it (an idle one, announced with `tracks`, or a new one, offered).
    /// Listeners who never speak thus cost the others no m-line.
    fn subscribe_room_to(&mut self, publisher: MemberId, now: Instant) {
        let Some(member) = self.members.get_mut(&publisher) else {
            return;
        };
        member.publishing = true;
        let sid = member.sid.clone();
        let others = self.rooms.get(&member.room).cloned().unwrap_or_default();
        for other in others.into_iter().filter(|o| *o != publisher) {
            let Some(peer) = self.members.get_mut(&other) else {
                continue;
            };
            match peer.assign(publisher, sid.clone()) {
                Ok(true) => {
                    let tracks = peer.tracks();
                    (self.events)(MediaEvent::Signal {
                        member: other,
                        data: ServerData::Tracks { tracks },
                    });
                }
                Ok(false) => self.offer(other, now),
                Err(error) => tracing::error!(%error, "SFU: cannot add a receive slot"),
            }
        }
    }

    /// Sends the member its next offer, if one is wanted now.
    fn offer(&mut self, id: MemberId, now: Instant) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        match member.offer(now) {
            Ok(Some(data)) => (self.events)(MediaEvent::Signal { member: id, data }),
            Ok(None) => {}
            Err(error) => {
                tracing::error!(%error, "SFU: cannot make an offer");
                return self.end(id, Some("the server could not set up voice"));
            }
        }
        member.flush(&mut send_via(&self.socket));
    }

    fn answer(&mut self, id: MemberId, version: u32, sdp: String) {
        let now = Instant::now();
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        match member.answer(version, sdp, now) {
            Ok(next) => {
                if let Some(data) = next {
                    (self.events)(MediaEvent::Signal { member: id, data });
                }
                self.settle(id, now);
            }
            Err(error) => (self.events)(MediaEvent::Refused {
                member: id,
                message: error.to_string(),
            }),
        }
    }

    /// Mutes or deafens (whichever `flag` picks). Streams that pause and
    /// resume are renumbered so the browsers see no gap.
    fn set_silenced(&mut self, id: MemberId, flag: fn(&mut Member) -> &mut bool, value: bool) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        *flag(member) = value;
        member.resync(None);
        let Some(room) = self.rooms.get(&member.room) else {
            return;
        };
        for other in room {
            if let Some(listener) = self.members.get_mut(other) {
                listener.resync(Some(id));
            }
        }
    }

    /// Ends a member's media: its connection closes, the others' slots for
    /// it go idle. With a reason, the client is told (`closed`).
    fn end(&mut self, id: MemberId, reason: Option<&str>) {
        let Some(mut member) = self.members.remove(&id) else {
            return;
        };
        member.close();
        self.demux.remove(&member.ufrag, id);
        self.metrics.sfu_members.fetch_sub(1, Ordering::Relaxed);
        if let Some(room) = self.rooms.get_mut(&member.room) {
            room.retain(|m| *m != id);
            if room.is_empty() {
                self.rooms.remove(&member.room);
            }
        }
        for other in self.rooms.get(&member.room).into_iter().flatten() {
            let Some(peer) = self.members.get_mut(other) else {
                continue;
            };
            if peer.release(id) {
                let tracks = peer.tracks();
                (self.events)(MediaEvent::Signal {
                    member: *other,
                    data: ServerData::Tracks { tracks },
                });
            }
        }
        tracing::info!(sid = %member.sid, member = id.0, reason = reason.unwrap_or("left"), "SFU: member left");
        if let Some(reason) = reason {
            (self.events)(MediaEvent::Ended {
                member: id,
                reason: reason.to_owned(),
            });
        }
    }
}

/// Sends datagrams without waiting: a full socket buffer drops the
/// datagram, as the network would.
fn send_via(socket: &UdpSocket) -> impl FnMut(&[u8], SocketAddr) + '_ {
    move |datagram, to| {
        if let Err(error) = socket.try_send_to(datagram, to) {
            tracing::debug!(%error, %to, "SFU: a datagram was not sent");
        }
    }
}
