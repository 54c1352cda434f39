//! A deterministic in-memory network: two connected [`Connection`]s joined by
//! two [`LinkConditioner`]s (one per direction) under a virtual clock that jumps
//! from one deadline to the next. Loss, latency, jitter, reordering and
//! duplication are reproducible from a seed, and a minute of simulated time
//! takes milliseconds, so games can test their netcode the way FastNet tests
//! itself.
//!
//! ```
//! use fastnet::sim::SimPair;
//! use fastnet::{channels, LinkConfig, TransportConfig};
//! use std::time::Duration;
//!
//! let mut pair = SimPair::new(TransportConfig::default(), LinkConfig::wifi(), 7);
//! pair.client.send(channels::RELIABLE_ORDERED, b"hello").unwrap();
//! let got = pair.run_until(Duration::from_secs(5), |p| p.server.recv());
//! assert_eq!(got.unwrap().data, b"hello");
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conditioner::{LinkConditioner, LinkConfig};
use crate::config::TransportConfig;
use crate::connection::{Connection, SessionKeys};
use crate::crypto::Secret;
use crate::error::DropReason;
use crate::packet::{ConnectionId, MAX_DATAGRAM_BYTES};

/// The smallest step the clock takes when a deadline is already due but nothing
/// moved, so a simulation can never spin in place.
const MIN_STEP: Duration = Duration::from_micros(1);

/// Matching session keys for a client and a server, derived from `seed` (what
/// a handshake would produce; for tests and simulations only).
pub fn session_keys_pair(seed: u64) -> (SessionKeys, SessionKeys) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut secret = || {
        let mut b = [0u8; 32];
        rng.fill(&mut b);
        Secret::from_bytes(b)
    };
    let (c2s, s2c) = (secret(), secret());
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x9e37_79b9_7f4a_7c15);
    let (client_cid, server_cid) = (ConnectionId(rng.u64(..)), ConnectionId(rng.u64(..)));
    (
        SessionKeys {
            local_cid: client_cid,
            peer_cid: server_cid,
            send_secret: c2s.clone(),
            recv_secret: s2c.clone(),
        },
        SessionKeys {
            local_cid: server_cid,
            peer_cid: client_cid,
            send_secret: s2c,
            recv_secret: c2s,
        },
    )
}

/// Which end of a [`SimPair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The connection that sends through `to_server`.
    Client,
    /// The connection that sends through `to_client`.
    Server,
}

/// Two connections over a simulated network, with a virtual clock.
#[derive(Debug)]
pub struct SimPair {
    /// The client end.
    pub client: Connection,
    /// The server end.
    pub server: Connection,
    /// The link from client to server.
    pub to_server: LinkConditioner,
    /// The link from server to client.
    pub to_client: LinkConditioner,
    now: Instant,
    buf: Vec<u8>,
    sent: [u64; 2],
    capture: Option<Vec<(Side, Vec<u8>)>>,
}

impl SimPair {
    /// Two connections with the same configuration and the same link conditions
    /// both ways (each direction with its own random stream).
    pub fn new(config: TransportConfig, link: LinkConfig, seed: u64) -> Self {
        Self::with_links(config.clone(), config, link.clone(), link, seed)
    }

    /// Two connections with their own configurations and links.
    ///
    /// # Panics
    /// If a configuration or link is invalid (this is a test tool).
    pub fn with_links(
        client_config: TransportConfig,
        server_config: TransportConfig,
        to_server: LinkConfig,
        to_client: LinkConfig,
        seed: u64,
    ) -> Self {
        let now = Instant::now();
        let (ck, sk) = session_keys_pair(seed);
        Self {
            client: Connection::new(Arc::new(client_config), ck, now).expect("valid client config"),
            server: Connection::new(Arc::new(server_config), sk, now).expect("valid server config"),
            to_server: LinkConditioner::new(to_server, seed.wrapping_mul(3)).expect("valid link"),
            to_client: LinkConditioner::new(to_client, seed.wrapping_mul(5).wrapping_add(1))
                .expect("valid link"),
            now,
            buf: vec![0; MAX_DATAGRAM_BYTES],
            sent: [0; 2],
            capture: None,
        }
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// One end of the pair.
    pub fn connection(&mut self, side: Side) -> &mut Connection {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// Datagrams `side` has handed to its link so far.
    pub fn datagrams_sent(&self, side: Side) -> u64 {
        self.sent[side as usize]
    }

    /// Starts or stops keeping a copy of every datagram sent (before the link
    /// conditioner), for replay and tampering tests.
    pub fn set_capture(&mut self, on: bool) {
        self.capture = on.then(Vec::new);
    }

    /// The datagrams captured since the last call.
    pub fn take_captured(&mut self) -> Vec<(Side, Vec<u8>)> {
        self.capture
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Hands `datagram` straight to one end, as if it had just arrived.
    pub fn inject(&mut self, to: Side, datagram: &[u8]) -> Result<(), DropReason> {
        let mut copy = datagram.to_vec();
        let now = self.now;
        self.connection(to).handle_datagram(now, &mut copy)
    }

    /// Does everything due at the current instant (timers, transmissions,
    /// deliveries) until nothing moves.
    pub fn flush(&mut self) {
        let now = self.now;
        loop {
            let mut progress = false;
            for side in [Side::Client, Side::Server] {
                let (conn, link) = match side {
                    Side::Client => (&mut self.client, &mut self.to_server),
                    Side::Server => (&mut self.server, &mut self.to_client),
                };
                if conn.poll_timeout().is_some_and(|t| t <= now) {
                    conn.handle_timeout(now);
                }
                while let Some(n) = conn.poll_transmit(now, &mut self.buf) {
                    link.push(now, &self.buf[..n]);
                    self.sent[side as usize] += 1;
                    if let Some(c) = &mut self.capture {
                        c.push((side, self.buf[..n].to_vec()));
                    }
                    progress = true;
                }
            }
            while let Some(n) = self.to_server.poll(now, &mut self.buf) {
                let _ = self.server.handle_datagram(now, &mut self.buf[..n]);
                progress = true;
            }
            while let Some(n) = self.to_client.poll(now, &mut self.buf) {
                let _ = self.client.handle_datagram(now, &mut self.buf[..n]);
                progress = true;
            }
            if !progress {
                break;
            }
        }
    }

    /// The next instant anything is scheduled.
    fn next_event(&self) -> Option<Instant> {
        [
            self.client.poll_timeout(),
            self.server.poll_timeout(),
            self.to_server.next_delivery(),
            self.to_client.next_delivery(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the simulation up to `deadline`, event by event.
    pub fn advance_to(&mut self, deadline: Instant) {
        loop {
            self.flush();
            match self.next_event() {
                Some(t) if t <= deadline => self.now = t.max(self.now + MIN_STEP),
                _ => {
                    self.now = self.now.max(deadline);
                    self.flush();
                    return;
                }
            }
        }
    }

    /// Runs the simulation for `duration`.
    pub fn advance(&mut self, duration: Duration) {
        self.advance_to(self.now + duration);
    }

    /// Runs event by event until `done` returns `Some` (returned) or `limit` of
    /// virtual time has passed (`None`). `done` is checked after every event.
    pub fn run_until<T>(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<T> {
        let deadline = self.now + limit;
        loop {
            self.flush();
            if let Some(v) = done(self) {
                return Some(v);
            }
            match self.next_event() {
                Some(t) if t <= deadline => self.now = t.max(self.now + MIN_STEP),
                _ => {
                    self.now = deadline;
                    self.flush();
                    return done(self);
                }
            }
        }
    }
}
