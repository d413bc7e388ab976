//! Live state, as actors exchanging typed messages: one [`session`] per
//! WebSocket, one [`room`] per live room, the [`registry`] of who is where
//! (the source of truth for admin control), the admin [`monitor`] and the
//! [`sfu`]'s control plane (its media loop is `crate::media`).
//!
//! Dependencies run one way, and no actor names the session's type:
//!
//! ```text
//! session ──► registry ──► monitor
//!    │           │
//!    ├──► room ◄─┘      every actor ──► messages, protocol
//!    └──► sfu ──► crate::media (its own thread)
//! ```
//!
//! The registry starts rooms; a room reports to recipients it was given
//! (`RoomIdle`, `SlowMember`). Rooms, the registry and the monitor hold a
//! session by recipients of [`messages::Deliver`] and [`messages::Control`];
//! the SFU by recipients of `Deliver`.
//! Sessions, rooms, the registry and the monitor all run on one thread (the
//! system arbiter), so a room's fan-out never crosses threads.

pub mod frame;
pub mod ice;
pub mod limits;
pub mod messages;
pub mod monitor;
pub mod protocol;
pub mod registry;
pub mod room;
pub mod session;
pub mod sfu;
pub mod socket;
#[cfg(test)]
pub mod testing;
