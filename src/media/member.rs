//! One member on the SFU: its WebRTC peer connection (rtc, sans-I/O), the
//! m-line that carries its microphone up, its receive slots (one per other
//! speaker in the room, reused when speakers come and go) and where its
//! offer/answer exchange stands. The server always makes the offers, one
//! at a time, so two descriptions never cross.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MediaEngine, MIME_TYPE_OPUS};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverId, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::error::Error as RtcError;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use super::rewrite::Rewriter;
use super::signal::{ServerData, TrackInfo};
use super::MemberId;
use crate::ids::{RoomCode, SessionId};

/// Opus, as every member's connection offers it (browsers use 111 too).
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// An offer not answered within this is given up, and the member with it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// ICE consent: browsers check every few seconds; silence this long fails.
const ICE_DISCONNECTED_AFTER: Duration = Duration::from_secs(6);
const ICE_FAILED_AFTER: Duration = Duration::from_secs(20);
/// Datagrams kept while the first answer is awaited.
const EARLY_DATAGRAMS: usize = 8;

/// Why an answer was not taken.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("no offer of that version is waiting for an answer")]
    NotAwaited,
    #[error("the answer could not be applied: {0}")]
    Rejected(#[from] RtcError),
}

/// What the connection reported that the engine must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Fine,
    /// Failed or closed: the member's media is over.
    Ended,
}

struct Slot {
    transceiver: RTCRtpTransceiverId,
    sender: RTCRtpSenderId,
    ssrc: u32,
    publisher: Option<(MemberId, SessionId)>,
    /// The member's browser has answered an offer holding this slot.
    negotiated: bool,
    rewriter: Rewriter,
}

struct Negotiation {
    version: u32,
    /// The version sent and when it is given up.
    awaiting: Option<(u32, Instant)>,
    /// Slots were added since the last offer.
    wanted: bool,
}

pub struct Member {
    pub sid: SessionId,
    pub room: RoomCode,
    pub ufrag: String,
    pub connected: bool,
    pub muted: bool,
    pub deafened: bool,
    /// It has sent voice: the others have (or get) a receive slot for it.
    pub publishing: bool,
    pc: RTCPeerConnection,
    upload: RTCRtpTransceiverId,
    slots: Vec<Slot>,
    /// Publisher -> its slot in `slots`, for the per-packet lookup.
    slot_of: HashMap<MemberId, usize>,
    /// Connectivity checks that came before the first answer (see `receive`).
    early: Vec<(Vec<u8>, SocketAddr, SocketAddr)>,
    negotiation: Negotiation,
    next_timeout: Option<Instant>,
}

impl Member {
    /// A connection that receives the member's voice, ICE-lite with one
    /// host candidate: the shared socket's announced address.
    pub fn new(sid: SessionId, room: RoomCode, announced: SocketAddr, now: Instant) -> Result<Self, RtcError> {
        let ufrag = rtc::ice::rand::generate_ufrag();
        let settings = SettingEngineBuilder::new()
            .with_lite(true)
            .with_ice_credentials(ufrag.clone(), rtc::ice::rand::generate_pwd())
            .with_ice_timeouts(Some(ICE_DISCONNECTED_AFTER), Some(ICE_FAILED_AFTER), None)
            .build();
        let mut media = MediaEngine::default();
        media.register_codec(opus(), RtpCodecKind::Audio)?;
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(settings)
            .with_media_engine(media)
            .with_interceptor_registry(Registry::new())
            .build(now)?;
        let upload = pc.add_transceiver_from_kind(
            RtpCodecKind::Audio,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )?;
        let candidate = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: announced.ip().to_string(),
                port: announced.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()?;
        pc.add_local_candidate(RTCIceCandidate::from(&candidate).to_json()?)?;
        Ok(Self {
            sid,
            room,
            ufrag,
            connected: false,
            muted: false,
            deafened: false,
            publishing: false,
            pc,
            upload,
            slots: Vec::new(),
            slot_of: HashMap::new(),
            early: Vec::new(),
            negotiation: Negotiation {
                version: 0,
                awaiting: None,
                wanted: true,
            },
            next_timeout: None,
        })
    }

    /// Gives a receive slot to `publisher`: a free one, else a new one (the
    /// next offer carries it). Answers whether the client must be told of a
    /// reused slot now (a new one comes with its offer).
    pub fn assign(&mut self, publisher: MemberId, sid: SessionId) -> Result<bool, RtcError> {
        if self.slot_of.contains_key(&publisher) {
            return Ok(false);
        }
        if let Some(index) = self.slots.iter().position(|s| s.publisher.is_none()) {
            let slot = &mut self.slots[index];
            slot.publisher = Some((publisher, sid));
            slot.rewriter.resync();
            self.slot_of.insert(publisher, index);
            return Ok(slot.negotiated);
        }
        let ssrc = rand::random::<u32>();
        let label = format!("sb-{ssrc:08x}");
        let track = MediaStreamTrack::new(
            label.clone(),
            label.clone(),
            label.clone(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                active: true,
                codec: opus().rtp_codec,
                ..Default::default()
            }],
        );
        let transceiver = self.pc.add_transceiver_from_track(
            track,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![label],
                send_encodings: Vec::new(),
            }),
        )?;
        let sender = self
            .pc
            .rtp_transceiver(transceiver)
            .and_then(|t| t.sender())
            .ok_or(RtcError::ErrRTPSenderNotExisted)?;
        self.slot_of.insert(publisher, self.slots.len());
        self.slots.push(Slot {
            transceiver,
            sender,
            ssrc,
            publisher: Some((publisher, sid)),
            negotiated: false,
            rewriter: Rewriter::default(),
        });
        self.negotiation.wanted = true;
        Ok(false)
    }

    /// Frees the slot `publisher` had. Answers whether the client must be
    /// told (a slot it knows of went idle).
    pub fn release(&mut self, publisher: MemberId) -> bool {
        match self.slot_of.remove(&publisher) {
            Some(index) => {
                let slot = &mut self.slots[index];
                slot.publisher = None;
                slot.negotiated
            }
            None => false,
        }
    }

    /// The next offer, when one is wanted and none is waiting for its answer.
    pub fn offer(&mut self, now: Instant) -> Result<Option<ServerData>, RtcError> {
        if !self.negotiation.wanted || self.negotiation.awaiting.is_some() {
            return Ok(None);
        }
        let offer = self.pc.create_offer(None)?;
        self.pc.set_local_description(now, offer)?;
        let sdp = self
            .pc
            .local_description()
            .ok_or(RtcError::ErrPeerConnLocalDescriptionNil)?
            .sdp;
        self.negotiation.version += 1;
        self.negotiation.wanted = false;
        self.negotiation.awaiting = Some((self.negotiation.version, now + ANSWER_TIMEOUT));
        Ok(Some(ServerData::Offer {
            version: self.negotiation.version,
            sdp,
            upload: self.mid(self.upload).unwrap_or_default(),
            tracks: self.tracks(),
        }))
    }

    /// Takes the client's answer; answers the next offer if one is wanted.
    pub fn answer(&mut self, version: u32, sdp: String, now: Instant) -> Result<Option<ServerData>, AnswerError> {
        if self.negotiation.awaiting.map(|(v, _)| v) != Some(version) {
            return Err(AnswerError::NotAwaited);
        }
        let answer = RTCSessionDescription::answer(sdp)?;
        self.pc.set_remote_description(now, answer)?;
        for (datagram, from, local) in std::mem::take(&mut self.early) {
            self.receive(&datagram, from, local, now);
        }
        self.negotiation.awaiting = None;
        for slot in &mut self.slots {
            slot.negotiated = true;
        }
        Ok(self.offer(now)?)
    }

    /// An offer has waited too long for its answer.
    pub fn answer_overdue(&self, now: Instant) -> bool {
        self.negotiation.awaiting.is_some_and(|(_, deadline)| now >= deadline)
    }

    /// Every receive slot the client knows of, and whose voice it carries.
    pub fn tracks(&mut self) -> Vec<TrackInfo> {
        let slots: Vec<(RTCRtpTransceiverId, Option<SessionId>)> = self
            .slots
            .iter()
            .map(|slot| (slot.transceiver, slot.publisher.as_ref().map(|(_, sid)| sid.clone())))
            .collect();
        slots
            .into_iter()
            .filter_map(|(transceiver, sid)| {
                Some(TrackInfo {
                    mid: self.mid(transceiver)?,
                    sid,
                })
            })
            .collect()
    }

    /// Sends one of `publisher`'s packets on its slot, renumbered for the
    /// slot's stream. Answers whether it went out.
    pub fn forward(&mut self, publisher: MemberId, packet: &rtc::rtp::Packet, now: Instant) -> bool {
        let Some(&index) = self.slot_of.get(&publisher) else {
            return false;
        };
        let slot = &mut self.slots[index];
        if !slot.negotiated {
            return false;
        }
        let header = &packet.header;
        let (seq, ts) = slot
            .rewriter
            .rewrite(header.ssrc, header.sequence_number, header.timestamp, now);
        let mut out = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                padding: false,
                extension: false,
                marker: header.marker,
                payload_type: OPUS_PAYLOAD_TYPE,
                sequence_number: seq,
                timestamp: ts,
                ssrc: slot.ssrc,
                ..Default::default()
            },
            payload: packet.payload.clone(),
        };
        out.header.csrc.clear();
        let sender = slot.sender;
        match self.pc.rtp_sender(sender) {
            Some(mut sender) => sender.write_rtp(now, out).is_ok(),
            None => false,
        }
    }

    /// Restarts the numbering of every stream this member receives (it
    /// heard nothing for a while), or of the one `publisher` feeds.
    pub fn resync(&mut self, publisher: Option<MemberId>) {
        for slot in &mut self.slots {
            if publisher.is_none() || slot.publisher.as_ref().map(|(id, _)| *id) == publisher {
                slot.rewriter.resync();
            }
        }
    }

    /// Feeds one datagram from `from` (addressed to `local`) to the connection.
    pub fn receive(&mut self, datagram: &[u8], from: SocketAddr, local: SocketAddr, now: Instant) {
        if self.pc.remote_description().is_none() {
            // A browser's first checks can beat its answer here (the answer takes
            // the WebSocket and the actor). ICE cannot take them yet; refused, they
            // would be retried only after a retransmission timeout (250 ms or more).
            if self.early.len() < EARLY_DATAGRAMS {
                self.early.push((datagram.to_vec(), from, local));
            }
            return;
        }
        let message = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: local,
                peer_addr: from,
                transport_protocol: TransportProtocol::UDP,
                ecn: None,
            },
            message: BytesMut::from(datagram),
        };
        if let Err(error) = self.pc.handle_read(message) {
            tracing::debug!(sid = %self.sid, %error, "SFU: a datagram was refused");
        }
    }

    /// Whether a timer of the connection is due.
    pub fn due(&self, now: Instant) -> bool {
        self.next_timeout.is_some_and(|at| at <= now)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Err(error) = self.pc.handle_timeout(now) {
            tracing::debug!(sid = %self.sid, %error, "SFU: timer handling failed");
        }
    }

    /// Hands every queued datagram to `send`, and notes the next deadline.
    pub fn flush(&mut self, send: &mut impl FnMut(&[u8], SocketAddr)) {
        while let Some(out) = self.pc.poll_write() {
            send(&out.message, out.transport.peer_addr);
        }
        self.next_timeout = self.pc.poll_timeout();
    }

    /// Moves the member's received voice packets into `into`.
    pub fn take_voice(&mut self, into: &mut Vec<rtc::rtp::Packet>) {
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(_, packet) = message {
                into.push(packet);
            }
        }
    }

    /// Takes the connection's events, keeping `connected` up to date.
    pub fn take_events(&mut self) -> Health {
        let mut health = Health::Fine;
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
                tracing::debug!(sid = %self.sid, %state, "SFU: connection state");
                match state {
                    RTCPeerConnectionState::Connected => self.connected = true,
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        self.connected = false;
                        health = Health::Ended;
                    }
                    _ => {}
                }
            }
        }
        health
    }

    pub fn close(&mut self) {
        if let Err(error) = self.pc.close() {
            tracing::debug!(sid = %self.sid, %error, "SFU: close failed");
        }
    }

    fn mid(&mut self, transceiver: RTCRtpTransceiverId) -> Option<String> {
        self.pc.rtp_transceiver(transceiver).and_then(|t| t.mid().clone())
    }
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
