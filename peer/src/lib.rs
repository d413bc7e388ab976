//! sb-peer: a headless Switchboard voice client on the webrtc-rs stack
//! (the `rtc` crate, sans-I/O, as the server's SFU uses it). It answers the
//! SFU's offers like a browser does, sends synthetic Opus packets at 50 per
//! second on its upload m-line, and counts what arrives on each receive
//! m-line, by the session the server says it carries.
//!
//! The signalling transport is the caller's: the `sfu` frames' `data` from
//! the server goes in through [`Peer::signal`], and what the peer
//! sends back comes out of the receiver that [`Peer::spawn`] returns.
//!
//! Every payload starts with [`MAGIC`], the sender's tag, a counter and the
//! sending time, so a receiver can tell whose packet it got, in what order,
//! and how long it took (both ends in one process share [`epoch`]).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MediaEngine, MIME_TYPE_OPUS};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverId};
use rtc::sansio::Protocol;
use rtc::shared::error::Error as RtcError;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use serde_json::{json, Value};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// The first bytes of every synthetic voice payload.
pub const MAGIC: &[u8; 4] = b"SBV1";
/// An Opus frame of 20 ms at about 32 kbit/s.
pub const PAYLOAD_LEN: usize = 80;
/// 50 packets per second, as a browser sends Opus.
pub const PACKET_INTERVAL: Duration = Duration::from_millis(20);
const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Latency samples kept per peer.
const MAX_SAMPLES: usize = 1_000_000;
/// Connectivity checks are paced like a browser's (rtc's default, 200 ms,
/// would put its own wait into every join-to-audio figure).
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(20);

/// The instant payload send times count from, shared by every peer in the process.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// What one peer has seen so far.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// The connection to the SFU is up.
    pub connected: bool,
    /// Voice packets written on the upload m-line.
    pub sent: u64,
    /// Receive m-line -> the session it carries, as the server last said.
    pub tracks: HashMap<String, Option<String>>,
    /// Received voice, by the session the server said sent it.
    pub from: HashMap<String, Received>,
    /// Packets on an m-line the server had not given to anyone.
    pub unattributed: u64,
    /// Payloads that did not carry [`MAGIC`].
    pub foreign: u64,
    /// Microseconds from sending to receiving, one per packet.
    pub latencies_us: Vec<u32>,
    /// The server's `closed` reason, once it ended this peer.
    pub closed: Option<String>,
    /// Answers sent (one per offer).
    pub answers: u32,
    /// Anything that went wrong locally.
    pub errors: Vec<String>,
}

/// Voice received from one session.
#[derive(Debug, Default, Clone)]
pub struct Received {
    pub packets: u64,
    pub bytes: u64,
    /// The sender tags found in the payloads.
    pub tags: Vec<u32>,
    pub first_at: Option<Instant>,
    pub last_at: Option<Instant>,
}

enum Command {
    Server(Value),
    Sending(bool),
}

/// A running peer. Dropping it stops the peer (its socket closes).
pub struct Peer {
    commands: mpsc::UnboundedSender<Command>,
    stats: Arc<Mutex<Stats>>,
    pub tag: u32,
    pub local_addr: SocketAddr,
}

impl Peer {
    /// Starts a peer on a loopback UDP port. `tag` goes into every payload
    /// it sends. The receiver yields the `sfu` data to send to the server.
    pub async fn spawn(tag: u32) -> std::io::Result<(Peer, mpsc::UnboundedReceiver<Value>)> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let local_addr = socket.local_addr()?;
        let (commands, inbox) = mpsc::unbounded_channel();
        let (outbox, signals) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(Stats::default()));
        let pc = build_connection(local_addr).map_err(std::io::Error::other)?;
        let driver = Driver {
            socket,
            local_addr,
            pc,
            tag,
            upload: None,
            ssrc: rand::random(),
            seq: rand::random(),
            timestamp: rand::random(),
            counter: 0,
            sending: false,
            mids: HashMap::new(),
            stats: stats.clone(),
            outbox,
        };
        tokio::spawn(driver.run(inbox));
        Ok((
            Peer {
                commands,
                stats,
                tag,
                local_addr,
            },
            signals,
        ))
    }

    /// The `data` of an `sfu` frame from the server.
    pub fn signal(&self, data: Value) {
        let _ = self.commands.send(Command::Server(data));
    }

    /// Starts or stops sending voice (50 packets per second once connected).
    pub fn set_sending(&self, sending: bool) {
        let _ = self.commands.send(Command::Sending(sending));
    }

    pub fn stats(&self) -> Stats {
        lock(&self.stats).clone()
    }

    /// Packets received from `sid` so far.
    pub fn packets_from(&self, sid: &str) -> u64 {
        lock(&self.stats).from.get(sid).map_or(0, |r| r.packets)
    }

    /// Packets received from anyone so far.
    pub fn packets_received(&self) -> u64 {
        let stats = lock(&self.stats);
        stats.from.values().map(|r| r.packets).sum::<u64>() + stats.unattributed
    }

    /// Takes the latency samples gathered so far.
    pub fn take_latencies(&self) -> Vec<u32> {
        std::mem::take(&mut lock(&self.stats).latencies_us)
    }
}

fn lock(stats: &Mutex<Stats>) -> MutexGuard<'_, Stats> {
    stats.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The synthetic payload: magic, tag, counter, send time (ns since [`epoch`]), padding.
pub fn payload(tag: u32, counter: u32) -> Bytes {
    let mut out = BytesMut::with_capacity(PAYLOAD_LEN);
    out.put_slice(MAGIC);
    out.put_u32(tag);
    out.put_u32(counter);
    out.put_u64(epoch().elapsed().as_nanos() as u64);
    out.resize(PAYLOAD_LEN, 0);
    out.freeze()
}

/// The tag and send time of a synthetic payload.
pub fn parse_payload(payload: &[u8]) -> Option<(u32, Duration)> {
    if payload.len() < 20 || &payload[..4] != MAGIC {
        return None;
    }
    let tag = u32::from_be_bytes(payload[4..8].try_into().ok()?);
    let nanos = u64::from_be_bytes(payload[12..20].try_into().ok()?);
    Some((tag, Duration::from_nanos(nanos)))
}

fn opus() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: OPUS_PAYLOAD_TYPE,
    }
}

fn build_connection(local_addr: SocketAddr) -> Result<RTCPeerConnection, RtcError> {
    let mut media = MediaEngine::default();
    media.register_codec(opus(), RtpCodecKind::Audio)?;
    // Like a browser answering: DTLS client (`a=setup:active`), so the
    // handshake starts once this side's ICE is up.
    let settings = SettingEngineBuilder::new()
        .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), None)
        .with_answering_dtls_role(RTCDtlsRole::Client)
        .build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(settings)
        .with_media_engine(media)
        .with_interceptor_registry(Registry::new())
        .build(Instant::now())?;
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: local_addr.ip().to_string(),
            port: local_addr.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()?;
    pc.add_local_candidate(RTCIceCandidate::from(&candidate).to_json()?)?;
    Ok(pc)
}

struct Driver {
    socket: UdpSocket,
    local_addr: SocketAddr,
    pc: RTCPeerConnection,
    tag: u32,
    upload: Option<RTCRtpSenderId>,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    counter: u32,
    sending: bool,
    /// Received track id -> its m-line.
    mids: HashMap<String, String>,
    stats: Arc<Mutex<Stats>>,
    outbox: mpsc::UnboundedSender<Value>,
}

impl Driver {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Command>) {
        let mut buffer = vec![0u8; 2048];
        let mut ticks = tokio::time::interval(PACKET_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let timer = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(timer);
        loop {
            let deadline = self
                .pc
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            if timer.deadline() != deadline.into() {
                timer.as_mut().reset(deadline.into());
            }
            tokio::select! {
                command = inbox.recv() => match command {
                    Some(Command::Server(data)) => self.signal(data),
                    Some(Command::Sending(on)) => self.sending = on,
                    None => break,
                },
                readable = self.socket.readable() => {
                    if readable.is_ok() {
                        self.read_batch(&mut buffer);
                    }
                }
                _ = ticks.tick() => self.send_voice(),
                () = &mut timer => {
                    let _ = self.pc.handle_timeout(Instant::now());
                }
            }
            self.drain();
        }
        let _ = self.pc.close();
    }

    fn note_error(&self, error: impl std::fmt::Display) {
        lock(&self.stats).errors.push(error.to_string());
    }

    fn signal(&mut self, data: Value) {
        match data["action"].as_str() {
            Some("offer") => {
                if let Err(error) = self.answer(&data) {
                    self.note_error(format!("offer: {error}"));
                }
            }
            Some("tracks") => self.take_tracks(&data["tracks"]),
            Some("closed") => {
                let mut stats = lock(&self.stats);
                stats.closed = Some(data["reason"].as_str().unwrap_or_default().to_owned());
                stats.connected = false;
            }
            _ => self.note_error(format!("unexpected sfu data {data}")),
        }
    }

    fn answer(&mut self, data: &Value) -> Result<(), RtcError> {
        let sdp = data["sdp"].as_str().unwrap_or_default().to_owned();
        let upload_mid = data["upload"].as_str().unwrap_or_default();
        let now = Instant::now();
        self.pc
            .set_remote_description(now, RTCSessionDescription::offer(sdp)?)?;
        if self.upload.is_none() {
            self.attach_upload(upload_mid)?;
        }
        let answer = self.pc.create_answer(None)?;
        self.pc.set_local_description(now, answer)?;
        let sdp = self
            .pc
            .local_description()
            .ok_or(RtcError::ErrPeerConnLocalDescriptionNil)?
            .sdp;
        self.take_tracks(&data["tracks"]);
        lock(&self.stats).answers += 1;
        let _ = self
            .outbox
            .send(json!({"action": "answer", "version": data["version"], "sdp": sdp}));
        Ok(())
    }

    /// The microphone goes on the m-line the server named `upload`.
    fn attach_upload(&mut self, upload_mid: &str) -> Result<(), RtcError> {
        let label = format!("sb-peer-{}", self.tag);
        let track = MediaStreamTrack::new(
            label.clone(),
            label.clone(),
            label,
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(self.ssrc),
                    ..Default::default()
                },
                active: true,
                codec: opus().rtp_codec,
                ..Default::default()
            }],
        );
        let sender = self.pc.add_track(track)?;
        let mid = self
            .pc
            .rtp_transceiver(RTCRtpTransceiverId::from(sender))
            .and_then(|t| t.mid().clone());
        if mid.as_deref() != Some(upload_mid) {
            return Err(RtcError::Other(format!(
                "the microphone landed on m-line {mid:?}, not {upload_mid}"
            )));
        }
        self.upload = Some(sender);
        Ok(())
    }

    fn take_tracks(&mut self, tracks: &Value) {
        let mut stats = lock(&self.stats);
        for track in tracks.as_array().into_iter().flatten() {
            if let Some(mid) = track["mid"].as_str() {
                stats
                    .tracks
                    .insert(mid.to_owned(), track["sid"].as_str().map(str::to_owned));
            }
        }
    }

    /// Everything waiting on the socket, up to a bound.
    fn read_batch(&mut self, buffer: &mut [u8]) {
        for _ in 0..64 {
            match self.socket.try_recv_from(buffer) {
                Ok((len, from)) => self.receive(&buffer[..len], from),
                Err(_) => return,
            }
        }
    }

    fn receive(&mut self, datagram: &[u8], from: SocketAddr) {
        let message = TaggedBytesMut {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: self.local_addr,
                peer_addr: from,
                transport_protocol: TransportProtocol::UDP,
                ecn: None,
            },
            message: BytesMut::from(datagram),
        };
        let _ = self.pc.handle_read(message);
    }

    fn send_voice(&mut self) {
        let Some(sender) = self.upload.filter(|_| self.sending && lock(&self.stats).connected) else {
            return;
        };
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(960);
        self.counter += 1;
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                payload_type: OPUS_PAYLOAD_TYPE,
                sequence_number: self.seq,
                timestamp: self.timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload: payload(self.tag, self.counter),
        };
        let written = self
            .pc
            .rtp_sender(sender)
            .map(|mut s| s.write_rtp(Instant::now(), packet));
        match written {
            Some(Ok(())) => lock(&self.stats).sent += 1,
            Some(Err(error)) => self.note_error(format!("write_rtp: {error}")),
            None => self.note_error("the upload sender is gone"),
        }
    }

    /// Events, then received packets, then datagrams out: acting on an
    /// event can queue datagrams, which go out in the same pass.
    fn drain(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    lock(&self.stats).connected = state == RTCPeerConnectionState::Connected;
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let mid = self
                        .pc
                        .rtp_transceiver(RTCRtpTransceiverId::from(init.receiver_id))
                        .and_then(|t| t.mid().clone());
                    if let Some(mid) = mid {
                        self.mids.insert(init.track_id, mid);
                    }
                }
                _ => {}
            }
        }
        let now = Instant::now();
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(track_id, packet) = message {
                self.record(&track_id, &packet.payload, now);
            }
        }
        while let Some(out) = self.pc.poll_write() {
            // Loopback: a full socket buffer drops the datagram, as a network would.
            let _ = self.socket.try_send_to(&out.message, out.transport.peer_addr);
        }
    }

    fn record(&mut self, track_id: &str, payload: &[u8], now: Instant) {
        let mut stats = lock(&self.stats);
        let Some((tag, sent_at)) = parse_payload(payload) else {
            stats.foreign += 1;
            return;
        };
        let latency = now.saturating_duration_since(epoch()).saturating_sub(sent_at);
        if stats.latencies_us.len() < MAX_SAMPLES {
            stats
                .latencies_us
                .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        }
        let sid = self
            .mids
            .get(track_id)
            .and_then(|mid| stats.tracks.get(mid).cloned().flatten());
        let Some(sid) = sid else {
            stats.unattributed += 1;
            return;
        };
        let received = stats.from.entry(sid).or_default();
        received.packets += 1;
        received.bytes += payload.len() as u64;
        if !received.tags.contains(&tag) {
            received.tags.push(tag);
        }
        received.first_at.get_or_insert(now);
        received.last_at = Some(now);
    }
}
