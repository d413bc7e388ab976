//! Live state, as actors exchanging typed messages: one [`session`] per
//! WebSocket, one [`room`] per live room, the [`registry`] of who is where
//! (the source of truth for admin control), the admin [`monitor`] and the
//! [`sfu`]'s control plane (its media loop is `crate::media`).
//! Messages flow session → room → client, session → registry → monitor,
//! session → sfu → client.

pub mod ice;
pub mod limits;
pub mod monitor;
pub mod protocol;
pub mod registry;
pub mod room;
pub mod session;
pub mod sfu;
