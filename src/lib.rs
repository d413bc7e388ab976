//! Switchboard: a self-hosted voice-and-chat intercom. The binary in
//! `main.rs` is a thin command line over this library.

pub mod auth;
pub mod backup;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod ids;
pub mod ip_scope;
pub mod janitor;
pub mod logging;
pub mod mail;
pub mod media;
pub mod metrics;
pub mod realtime;
pub mod retention;
pub mod server;
pub mod state;
pub mod systemd;
