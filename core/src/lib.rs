//! FastNet: encrypted, low-latency UDP networking for real-time multiplayer games.
//!
//! # The model
//!
//! A session starts with a TLS 1.3 handshake that authenticates the server and
//! yields two directional secrets and connection IDs ([`SessionKeys`]). From then
//! on every UDP datagram is one ChaCha20-Poly1305 packet whose header is
//! authenticated too; `docs/PROTOCOL.md` fixes every byte.
//!
//! The protocol itself is [`Connection`], a sans-IO state machine: it owns no
//! socket and reads no clock. Datagrams and the current time go in; datagrams to
//! send, messages, events and the next deadline come out. Socket drivers (a
//! game-loop driver and a Tokio driver) wrap it; [`sim::SimPair`] runs two of
//! them over a simulated network with a virtual clock.
//!
//! Each connection has up to 64 channels (`config::MAX_CHANNELS`), each of one
//! [`ChannelKind`]: reliable-ordered, unreliable, reliable-unordered or
//! sequenced. The default table numbers them 0 to 3 ([`channels`]). Messages
//! larger than a datagram are fragmented; small ones share datagrams;
//! acknowledgements ride on data.
//!
//! ```
//! use fastnet::{channels, sim::SimPair, LinkConfig, TransportConfig};
//! use std::time::Duration;
//!
//! // Two connections over a lossy, jittery simulated link.
//! let mut pair = SimPair::new(TransportConfig::default(), LinkConfig::mobile(), 1);
//! for i in 0..100u32 {
//!     pair.client.send(channels::RELIABLE_ORDERED, &i.to_le_bytes()).unwrap();
//! }
//! let mut next = 0u32;
//! let mut buf = Vec::new();
//! pair.run_until(Duration::from_secs(30), |p| {
//!     while let Some(channel) = p.server.recv_into(&mut buf) {
//!         assert_eq!(channel, channels::RELIABLE_ORDERED);
//!         assert_eq!(buf, next.to_le_bytes());
//!         next += 1;
//!     }
//!     (next == 100).then_some(())
//! })
//! .expect("all 100 messages arrive, in order");
//! ```
//!
//! # Modules
//!
//! Application-facing: [`net`] (the socket drivers: game-loop `Client` and
//! `Server`, the multi-peer `Endpoint`, socket set-up), [`session`] (the TLS 1.3
//! handshake, trust options, certificates), [`connection`], [`config`],
//! [`error`], [`stats`], [`conditioner`] (simulated bad networks, also over real
//! sockets), [`sim`].
//! Protocol building blocks, public for tools, fuzzing and alternative drivers:
//! [`packet`], [`frame`], [`varint`], [`ack`], [`crypto`], [`keys`], [`replay`].

// One module may use `unsafe`: `net::batch`, Linux's batched UDP system calls
// (recvmmsg, sendmmsg, UDP_SEGMENT, ppoll), which std does not wrap. Everything
// else, the protocol and crypto included, is safe Rust.
#![deny(unsafe_code)]
#![warn(missing_docs)]

// Modules (one line each; keep alphabetical).
pub mod ack;
mod channel;
pub mod conditioner;
pub mod config;
pub mod connection;
pub mod crypto;
pub mod error;
pub mod frame;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod keys;
pub mod net;
pub mod packet;
mod pool;
pub mod replay;
pub mod rtt;
pub mod session;
pub mod sim;
pub mod stats;
pub mod varint;

pub use conditioner::{LinkConditioner, LinkConfig};
pub use config::{channels, ChannelConfig, ChannelId, ChannelKind, ConfigError, TransportConfig};
pub use connection::{Connection, Event, Message, SessionKeys};
pub use crypto::Secret;
pub use error::{close_code, DisconnectReason, DropReason, SendError, Violation};
pub use packet::ConnectionId;
pub use stats::{ConnectionStats, DropCounters};
