//! Networking on real sockets.
//!
//! * [`Client`] and [`Server`]: the game-loop drivers. Each `service` call does
//!   all pending I/O without blocking; an opt-in service thread keeps
//!   connections alive while the game thread is busy. A server runs its TCP
//!   and TLS handshakes on a thread of its own (module `handshaker`), so the
//!   game thread only ever touches UDP.
//! * [`Endpoint`]: the sans-IO multi-peer layer both drivers share (routing by
//!   connection ID, address binding, peer events).
//! * [`bind_udp`] and [`SocketConfig`]: UDP socket set-up.
//! * `SecureSocket` (feature `tokio`, on by default): the Tokio driver, one
//!   async handle for a server or a client (module `async_socket`).

#[cfg(feature = "tokio")]
mod async_handshake;
#[cfg(feature = "tokio")]
mod async_io;
#[cfg(feature = "tokio")]
pub mod async_socket;
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // the crate's only unsafe code: see the module docs
mod batch;
pub mod client;
mod deadlines;
pub mod endpoint;
mod handshaker;
mod io;
pub mod server;
mod service;
pub mod socket;

#[cfg(feature = "tokio")]
pub use async_socket::{SecureEvent, SecureSocket};
pub use client::{Client, ClientConfig, ClientEvent, ConnectError};
pub use endpoint::{Endpoint, EndpointStats, PeerEvent, PeerId};
pub use io::{IoStats, LinkSimulation};
pub use server::{HandshakeStats, Server, ServerConfig};
pub use socket::{bind_udp, SocketConfig, SocketReport};
