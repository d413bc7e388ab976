//! Live state, as actors exchanging typed messages: one [`session`] per
//! WebSocket, one [`room`] per live room, the [`registry`] of who is where
//! (the source of truth for admin control) and the admin [`monitor`].
//!
//! Dependencies run one way, and no actor names the session's type:
//!
//! ```text
//! session ──► registry ──► monitor
//!    │           │
//!    └──► room ◄─┘      every actor ──► messages, protocol
//! ```
//!
//! The registry starts rooms and a room reports "idle" to a recipient it was
//! given; rooms, the registry and the monitor hold sessions by the
//! recipients in [`messages::SessionLink`].

pub mod frame;
pub mod ice;
pub mod limits;
pub mod messages;
pub mod monitor;
pub mod protocol;
pub mod registry;
pub mod room;
pub mod session;
pub mod socket;
#[cfg(test)]
pub mod testing;
