//! The SFU's media plane: one UDP socket for every room and member, each
//! member's WebRTC peer connection (the `rtc` crate, sans-I/O) and the
//! forwarding of Opus RTP between the members of a room, without decoding
//! or mixing. It runs on its own thread, and packets never pass through an
//! actor mailbox. The control plane (the `Sfu` actor, `realtime::sfu`)
//! drives it through a [`MediaHandle`]; it answers through [`MediaEvent`]s.

mod demux;
mod engine;
mod member;
mod rewrite;
pub mod signal;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::ids::{RoomCode, SessionId};
use crate::metrics::Metrics;
use signal::ServerData;

/// One membership of the SFU: a join, until its leave. A session that
/// leaves and joins again is a new member, so late news of the old one is
/// never taken for the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub u64);

/// Control messages queued for the media loop beyond this are refused.
const COMMAND_QUEUE: usize = 4096;

/// What the control plane asks of the media loop.
#[derive(Debug)]
enum Command {
    Join {
        member: MemberId,
        sid: SessionId,
        room: RoomCode,
    },
    Answer {
        member: MemberId,
        version: u32,
        sdp: String,
    },
    Leave {
        member: MemberId,
    },
    SetMuted {
        member: MemberId,
        muted: bool,
    },
    SetDeafened {
        member: MemberId,
        deafened: bool,
    },
}

/// What the media loop tells the control plane.
#[derive(Debug, Clone)]
pub enum MediaEvent {
    /// `data` for the member's client, in an `sfu` frame.
    Signal { member: MemberId, data: ServerData },
    /// The member's last request could not be carried out.
    Refused { member: MemberId, message: String },
    /// The media loop ended the member (its connection failed, its offer
    /// went unanswered); the client is told with `closed`.
    Ended { member: MemberId, reason: String },
}

/// Where the SFU listens and what it announces.
#[derive(Debug, Clone, Copy)]
pub struct MediaConfig {
    pub port: u16,
    pub public_ip: Option<IpAddr>,
}

/// The media loop is gone (the server is stopping) or its queue is full.
#[derive(Debug, thiserror::Error)]
#[error("the SFU's media loop is not taking requests")]
pub struct Busy;

/// The control plane's handle on the media loop. Dropping it (and every
/// clone) stops the loop, which closes every connection.
#[derive(Debug, Clone)]
pub struct MediaHandle {
    commands: mpsc::Sender<Command>,
    /// The socket's own address (the port is the bound one).
    pub local_addr: SocketAddr,
    /// The address in every member's ICE candidate.
    pub announced: SocketAddr,
}

impl MediaHandle {
    pub fn join(&self, member: MemberId, sid: SessionId, room: RoomCode) -> Result<(), Busy> {
        self.send(Command::Join { member, sid, room })
    }

    pub fn answer(&self, member: MemberId, version: u32, sdp: String) -> Result<(), Busy> {
        self.send(Command::Answer { member, version, sdp })
    }

    /// Ends the member's media at once (its connection closes).
    pub fn leave(&self, member: MemberId) -> Result<(), Busy> {
        self.send(Command::Leave { member })
    }

    /// A muted member is not forwarded to anyone.
    pub fn set_muted(&self, member: MemberId, muted: bool) -> Result<(), Busy> {
        self.send(Command::SetMuted { member, muted })
    }

    /// A deafened member is neither forwarded to nor forwarded from.
    pub fn set_deafened(&self, member: MemberId, deafened: bool) -> Result<(), Busy> {
        self.send(Command::SetDeafened { member, deafened })
    }

    fn send(&self, command: Command) -> Result<(), Busy> {
        self.commands.try_send(command).map_err(|_| Busy)
    }
}

/// Binds the one UDP port and starts the media loop on its own thread.
/// `events` is called on that thread for everything the loop reports.
pub fn start(
    config: MediaConfig,
    metrics: Arc<Metrics>,
    events: impl Fn(MediaEvent) + Send + 'static,
) -> std::io::Result<MediaHandle> {
    let announced_ip = config.public_ip.unwrap_or_else(guess_local_ip);
    // A loopback announcement means a machine-local server (tests, trials):
    // then the port stays on loopback too.
    let bind_ip = if announced_ip.is_loopback() {
        announced_ip
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let socket = UdpSocket::bind((bind_ip, config.port))?;
    socket.set_nonblocking(true)?;
    let local_addr = socket.local_addr()?;
    let announced = SocketAddr::new(announced_ip, local_addr.port());
    let (commands, queue) = mpsc::channel(COMMAND_QUEUE);
    engine::spawn(socket, announced, metrics, Box::new(events), queue)?;
    Ok(MediaHandle {
        commands,
        local_addr,
        announced,
    })
}

/// Without SFU_PUBLIC_IP: the address this host would use to reach the
/// Internet (a UDP "connect" sends nothing), else loopback.
fn guess_local_ip() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
        Ok(socket.local_addr()?.ip())
    };
    match probe() {
        Ok(ip) if !ip.is_unspecified() => ip,
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

#[cfg(test)]
mod tests;
