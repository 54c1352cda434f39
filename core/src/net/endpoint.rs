//! A sans-IO endpoint serving many connections over one UDP socket: it routes
//! datagrams to connections by destination connection ID (never by source
//! address), decides which address each peer is reached at, and turns the
//! connections' events into peer events. Both socket drivers (game loop and
//! Tokio) wrap it.
//!
//! Work is proportional to the peers that have some, not to all peers: a
//! queue holds the peers that may have a datagram to send (after a datagram
//! or a transmit that leaves one to send, a send, a timer or the
//! application; the connection's `may_transmit` tells cheaply, so a peer is
//! not visited once more for nothing) and an indexed min-heap
//! holds every peer's next deadline (see `deadlines`), so a server with
//! thousands of idle clients does not visit them on each service call.
//! Peers live in numbered slots: the connection-ID table and the queues lead
//! straight to a peer's slot, and only calls naming a [`PeerId`] look it up.
//!
//! Address binding follows RFC 9000 §9.3: a peer's address is set, or moved, only
//! by an authenticated packet that carries the highest packet number seen so
//! far. A replayed or reordered copy from another source is rejected by the
//! replay window or is not the newest, so it can bind nothing; a client whose NAT
//! rebinds keeps its session with its next packet.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::deadlines::Deadlines;
use crate::config::{ChannelId, TransportConfig};
use crate::connection::{Connection, Event, SessionKeys};
use crate::error::{DisconnectReason, SendError};
use crate::packet::{peek_destination, ConnectionId};
use crate::stats::ConnectionStats;

/// Identifies one peer of an endpoint for as long as the endpoint lives; IDs
/// are never reused, so a stale ID can never reach another peer.
pub type PeerId = u64;

/// Something that happened to a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// The peer's first authenticated datagram arrived: it is reachable.
    Connected(PeerId),
    /// The peer's connection ended.
    Disconnected(PeerId, DisconnectReason),
}

/// Datagrams the endpoint dropped before any connection saw them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Too short, or not a FastNet version 1 packet.
    pub malformed: u64,
    /// Addressed to a connection ID this endpoint does not have.
    pub unknown_connection: u64,
    /// Rejected by the connection (see its [`ConnectionStats::dropped`]).
    pub rejected: u64,
    /// Authenticated datagrams accepted.
    pub accepted: u64,
    /// Times a peer's address moved (NAT rebinding, network change).
    pub address_changes: u64,
}

/// Where a peer is: its slot, and its ID to tell it from a later peer in the
/// same slot (queue entries may outlive their peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Handle {
    slot: u32,
    id: PeerId,
}

/// One peer. Boxed in the endpoint's slots: a `Connection` is a few KiB, and
/// a table of them by value would also pay that for each free slot.
#[derive(Debug)]
struct Peer {
    handle: Handle,
    conn: Connection,
    /// Where to send; `None` until the first authenticated datagram (server side).
    addr: Option<SocketAddr>,
    /// Whether `Connected` was reported.
    announced: bool,
    /// Whether the peer is in the `ready` queue.
    ready: bool,
    /// Whether the peer is in the `sending` queue.
    sending: bool,
    /// The deadline this peer is filed under in the endpoint's deadlines.
    timer: Option<Instant>,
}

impl Peer {
    /// When the connection next needs `handle_timeout`: its own deadline once
    /// the peer's address is known; before that (a server waiting for the
    /// client's first datagram) only the idle timeout runs.
    fn deadline(&self) -> Option<Instant> {
        match self.addr {
            Some(_) => self.conn.poll_timeout(),
            None => self.conn.idle_deadline(),
        }
    }

    /// Puts the peer in the `sending` queue unless it is there.
    fn queue_to_send(&mut self, sending: &mut VecDeque<Handle>) {
        if !self.sending {
            self.sending = true;
            sending.push_back(self.handle);
        }
    }

    /// Files the peer's deadline if it moved: its one entry in `deadlines`
    /// is updated in place.
    #[inline(always)]
    fn file_timer(&mut self, deadlines: &mut Deadlines<(Instant, PeerId)>) {
        let deadline = self.deadline();
        if deadline != self.timer {
            self.timer = deadline;
            deadlines.set(self.handle.slot, deadline.map(|t| (t, self.handle.id)));
        }
    }

    /// Moves the connection's events to `events`.
    fn collect_events(&mut self, events: &mut VecDeque<PeerEvent>) {
        while let Some(Event::Disconnected(reason)) = self.conn.poll_event() {
            if self.announced {
                self.announced = false;
                events.push_back(PeerEvent::Disconnected(self.handle.id, reason));
            }
        }
    }

    /// Whether the connection is over and has nothing left for anybody.
    fn is_finished(&self) -> bool {
        self.conn.is_closed() && self.conn.pending_messages() == 0
    }
}

/// The peer a handle names, if it is still there.
#[inline]
fn peer_at(slots: &mut [Option<Box<Peer>>], handle: Handle) -> Option<&mut Peer> {
    slots
        .get_mut(handle.slot as usize)?
        .as_deref_mut()
        .filter(|p| p.handle.id == handle.id)
}

/// Hashes the endpoint's 64-bit keys, peer IDs and connection IDs, with one
/// folded multiplication instead of SipHash (on every datagram's path).
///
/// Not meant to resist chosen keys, and it need not: peer IDs are our own
/// counter, and connection IDs are pseudorandom 64-bit values from the TLS
/// exporter, which a client cannot choose (docs/HANDSHAKE.md §4). A random
/// seed per endpoint keeps even a client grinding handshakes from predicting
/// where its IDs land. Lookups of an unknown (forged) ID insert nothing. A
/// table keyed by something an attacker picks, such as source addresses, would
/// need SipHash instead.
#[derive(Clone, Debug)]
struct IdHashBuilder {
    seed: u64,
}

impl IdHashBuilder {
    fn new() -> Self {
        Self {
            seed: fastrand::u64(..),
        }
    }
}

impl BuildHasher for IdHashBuilder {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher { state: self.seed }
    }
}

/// See [`IdHashBuilder`].
struct IdHasher {
    state: u64,
}

impl IdHasher {
    /// An odd constant with well-spread bits (the fractional part of π).
    const MULTIPLIER: u64 = 0x243f_6a88_85a3_08d3;

    fn mix(&mut self, word: u64) {
        let product = u128::from(self.state ^ word) * u128::from(Self::MULTIPLIER);
        self.state = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by the `u64` keys, which take `write_u64`.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.mix(word);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

/// Many connections behind one socket (see the module docs).
#[derive(Debug)]
pub struct Endpoint {
    config: Arc<TransportConfig>,
    /// The peers, by slot; a free slot is `None` and listed in `free_slots`.
    slots: Vec<Option<Box<Peer>>>,
    free_slots: Vec<u32>,
    /// Slot of each peer, by ID (calls from the application).
    by_id: HashMap<PeerId, u32, IdHashBuilder>,
    /// Slot of each peer, by local connection ID (incoming datagrams).
    by_cid: HashMap<ConnectionId, u32, IdHashBuilder>,
    /// Peer IDs in the order they were added.
    order: Vec<PeerId>,
    /// Peers that may have a datagram to send, served round-robin.
    sending: VecDeque<Handle>,
    /// Every peer's next deadline and ID (the order of peers due together),
    /// by slot.
    deadlines: Deadlines<(Instant, PeerId)>,
    /// Peers the application reached through `connection_mut`, rescheduled
    /// at the next call that can.
    touched: Vec<PeerId>,
    /// Scratch for `handle_timeout` (kept for its capacity).
    due: Vec<Handle>,
    /// Peers visited by `poll_transmit` and `handle_timeout` (tests).
    #[cfg(test)]
    visits: u64,
    /// Peers with delivered messages, in arrival order.
    ready: VecDeque<Handle>,
    events: VecDeque<PeerEvent>,
    next_peer: PeerId,
    stats: EndpointStats,
}

/// Why a connection could not be added.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// Another connection already uses this local connection ID.
    #[error("connection ID {0} is already in use")]
    DuplicateConnectionId(ConnectionId),
    /// The transport configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
}

impl Endpoint {
    /// An endpoint whose connections all use `config`.
    pub fn new(config: Arc<TransportConfig>) -> Self {
        Self {
            config,
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_id: HashMap::with_hasher(IdHashBuilder::new()),
            by_cid: HashMap::with_hasher(IdHashBuilder::new()),
            order: Vec::new(),
            sending: VecDeque::new(),
            deadlines: Deadlines::new(),
            touched: Vec::new(),
            due: Vec::new(),
            #[cfg(test)]
            visits: 0,
            ready: VecDeque::new(),
            events: VecDeque::new(),
            next_peer: 1,
            stats: EndpointStats::default(),
        }
    }

    /// The configuration of this endpoint's connections.
    pub fn config(&self) -> &Arc<TransportConfig> {
        &self.config
    }

    /// Adds an established connection. `addr` is where the peer is reached:
    /// known for a client (the server's address), `None` for a server until the
    /// client's first authenticated datagram arrives.
    pub fn insert(
        &mut self,
        keys: SessionKeys,
        addr: Option<SocketAddr>,
        now: Instant,
    ) -> Result<PeerId, InsertError> {
        if self.by_cid.contains_key(&keys.local_cid) {
            return Err(InsertError::DuplicateConnectionId(keys.local_cid));
        }
        let cid = keys.local_cid;
        let conn = Connection::new(self.config.clone(), keys, now)?;
        let id = self.next_peer;
        self.next_peer += 1;
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 peers")
            }
        };
        let handle = Handle { slot, id };
        self.slots[slot as usize] = Some(Box::new(Peer {
            handle,
            conn,
            addr,
            announced: false,
            ready: false,
            sending: false,
            timer: None,
        }));
        self.by_cid.insert(cid, slot);
        self.by_id.insert(id, slot);
        self.order.push(id);
        self.touch(handle);
        Ok(id)
    }

    /// The handle of peer `id`, if it exists.
    #[inline]
    fn handle(&self, id: PeerId) -> Option<Handle> {
        let slot = *self.by_id.get(&id)?;
        Some(Handle { slot, id })
    }

    /// Peer `id`, if it exists.
    fn peer(&self, id: PeerId) -> Option<&Peer> {
        let slot = *self.by_id.get(&id)?;
        self.slots[slot as usize].as_deref()
    }

    /// Peer `id`, mutable, if it exists.
    fn peer_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        let slot = *self.by_id.get(&id)?;
        self.slots[slot as usize].as_deref_mut()
    }

    /// After anything that may have changed a peer's connection: it may have
    /// something to send, and its deadline may have moved.
    fn touch(&mut self, handle: Handle) {
        let Some(peer) = peer_at(&mut self.slots, handle) else {
            return;
        };
        peer.queue_to_send(&mut self.sending);
        peer.file_timer(&mut self.deadlines);
    }

    /// Reschedules the peers handed out by `connection_mut` (usually none:
    /// the check is inline, the work out of line).
    #[inline]
    fn touch_pending(&mut self) {
        if !self.touched.is_empty() {
            self.touch_touched();
        }
    }

    /// [`Endpoint::touch_pending`] when some were handed out.
    #[inline(never)]
    fn touch_touched(&mut self) {
        while let Some(id) = self.touched.pop() {
            if let Some(handle) = self.handle(id) {
                self.touch(handle);
            }
        }
    }

    /// Forgets a peer whose connection is over.
    fn remove(&mut self, handle: Handle) {
        let Some(slot) = self.slots.get_mut(handle.slot as usize) else {
            return;
        };
        if slot.as_ref().is_none_or(|p| p.handle != handle) {
            return;
        }
        let p = slot.take().expect("checked above");
        self.free_slots.push(handle.slot);
        self.deadlines.set(handle.slot, None);
        self.by_id.remove(&handle.id);
        self.by_cid.remove(&p.conn.local_cid());
        if let Some(i) = self.order.iter().position(|&x| x == handle.id) {
            self.order.remove(i);
        }
    }

    /// Number of peers (connected or waiting for their first datagram).
    pub fn peer_count(&self) -> usize {
        self.by_id.len()
    }

    /// IDs of all peers.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.order.iter().copied()
    }

    /// Whether `peer` exists and its connection is established.
    pub fn is_connected(&self, peer: PeerId) -> bool {
        self.peer(peer).is_some_and(|p| p.conn.is_established())
    }

    /// The address a peer is reached at, once known.
    pub fn peer_addr(&self, peer: PeerId) -> Option<SocketAddr> {
        self.peer(peer)?.addr
    }

    /// A peer's connection.
    pub fn connection(&self, peer: PeerId) -> Option<&Connection> {
        self.peer(peer).map(|p| &p.conn)
    }

    /// A peer's connection, mutable.
    pub fn connection_mut(&mut self, peer: PeerId) -> Option<&mut Connection> {
        let slot = *self.by_id.get(&peer)?;
        self.touched.push(peer);
        self.slots[slot as usize]
            .as_deref_mut()
            .map(|p| &mut p.conn)
    }

    /// A peer's statistics.
    pub fn peer_stats(&self, peer: PeerId) -> Option<ConnectionStats> {
        self.peer(peer).map(|p| p.conn.stats())
    }

    /// Drops counted before any connection saw the datagram.
    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// Whether `datagram` is addressed to a connection ID this endpoint does
    /// not have (false for a malformed one). Looks at the header only.
    pub fn is_for_unknown_connection(&self, datagram: &[u8]) -> bool {
        peek_destination(datagram).is_some_and(|cid| !self.by_cid.contains_key(&cid))
    }

    /// Handles a datagram from `from`, decrypting it in place. Returns the peer
    /// it belonged to if it was accepted.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
    ) -> Option<PeerId> {
        let Some(cid) = peek_destination(datagram) else {
            self.stats.malformed += 1;
            return None;
        };
        let Some(&slot) = self.by_cid.get(&cid) else {
            self.stats.unknown_connection += 1;
            return None;
        };
        let peer = self.slots[slot as usize]
            .as_deref_mut()
            .expect("by_cid names occupied slots");
        let handle = peer.handle;
        let before = peer.conn.largest_received();
        if peer.conn.handle_datagram(now, datagram).is_err() {
            self.stats.rejected += 1;
            // A rejection changes nothing, but for a connection closed by
            // too many failed authentications.
            if !peer.conn.is_established() {
                peer.collect_events(&mut self.events);
                self.touch(handle);
            }
            return None;
        }
        self.stats.accepted += 1;
        let newest = peer.conn.largest_received() > before;
        if newest && peer.addr != Some(from) {
            if peer.addr.is_some() {
                self.stats.address_changes += 1;
            }
            peer.addr = Some(from);
        }
        if !peer.announced && peer.conn.is_established() {
            peer.announced = true;
            self.events.push_back(PeerEvent::Connected(handle.id));
        }
        if !peer.ready && peer.conn.pending_messages() > 0 {
            peer.ready = true;
            self.ready.push_back(handle);
        }
        peer.collect_events(&mut self.events);
        // An ACK owed now, or an answer: the connection says if it has one
        // (anything later comes with its deadline).
        if peer.conn.may_transmit(now) {
            peer.queue_to_send(&mut self.sending);
        }
        peer.file_timer(&mut self.deadlines);
        Some(handle.id)
    }

    /// Takes the next message from any peer, swapping it into `out` (see
    /// [`Connection::recv_into`]). Peers are served in the order their messages
    /// arrived.
    pub fn recv_into(&mut self, out: &mut Vec<u8>) -> Option<(PeerId, ChannelId)> {
        while let Some(&handle) = self.ready.front() {
            let Some(peer) = peer_at(&mut self.slots, handle) else {
                self.ready.pop_front();
                continue;
            };
            match peer.conn.recv_into(out) {
                Some(channel) => {
                    if peer.conn.pending_messages() == 0 {
                        peer.ready = false;
                        self.ready.pop_front();
                        if peer.conn.is_closed() {
                            // Its last message is out: it can go.
                            self.touch(handle);
                        }
                    }
                    return Some((handle.id, channel));
                }
                None => {
                    peer.ready = false;
                    self.ready.pop_front();
                }
            }
        }
        None
    }

    /// Whether messages or events wait for the application.
    pub fn has_pending(&self) -> bool {
        !self.ready.is_empty() || !self.events.is_empty()
    }

    /// Takes the next peer event.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// Queues a message for a peer.
    pub fn send(&mut self, peer: PeerId, channel: ChannelId, data: &[u8]) -> Result<(), SendError> {
        let slot = *self.by_id.get(&peer).ok_or(SendError::Closed)?;
        let p = self.slots[slot as usize]
            .as_deref_mut()
            .expect("by_id names occupied slots");
        p.conn.send(channel, data)?;
        p.queue_to_send(&mut self.sending);
        Ok(())
    }

    /// Closes a peer's connection with `code`; it leaves once the peer is told.
    pub fn disconnect(&mut self, peer: PeerId, code: u32) {
        if let Some(p) = self.peer_mut(peer) {
            p.conn.close(code);
            let handle = p.handle;
            if p.announced {
                p.announced = false;
                self.events.push_back(PeerEvent::Disconnected(
                    peer,
                    DisconnectReason::ClosedLocally { code },
                ));
            }
            self.touch(handle);
        }
    }

    /// Writes the next datagram to send into `buf`: returns its destination and
    /// length, or `None` when no connection has anything to send. Peers take
    /// turns, one datagram each.
    #[inline]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        // Most calls find no peer to visit (the last call of every drain, a
        // driver's pass with nothing to send): answered inline.
        if !self.may_transmit() {
            return None;
        }
        self.transmit_next(now, buf)
    }

    /// [`Endpoint::poll_transmit`] once a peer may have something to send.
    #[inline(never)]
    fn transmit_next(&mut self, now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        self.touch_pending();
        while let Some(handle) = self.sending.pop_front() {
            #[cfg(test)]
            {
                self.visits += 1;
            }
            let Some(peer) = peer_at(&mut self.slots, handle) else {
                continue;
            };
            if let Some(addr) = peer.addr {
                // A peer is queued when it may have something to send (a
                // datagram in, a message queued, a timer, a connection
                // handed out, `may_transmit` after its last datagram):
                // `poll_transmit`'s shortcut would mostly answer yes.
                if let Some(len) = peer.conn.poll_transmit_unguarded(now, buf) {
                    if peer.conn.may_transmit(now) || peer.conn.is_closed() {
                        // It may have more (or be finished, which the next
                        // visit sees): back of the queue, after the others.
                        self.sending.push_back(handle);
                    } else {
                        peer.sending = false;
                    }
                    peer.collect_events(&mut self.events);
                    peer.file_timer(&mut self.deadlines);
                    return Some((addr, len));
                }
            }
            peer.sending = false;
            if peer.is_finished() {
                self.remove(handle);
            }
        }
        None
    }

    /// Whether a peer may have something to send: [`Endpoint::poll_transmit`]
    /// would look at it. `false` means `poll_transmit` returns `None` (which
    /// it then does inline, at the cost of this check).
    #[inline]
    pub fn may_transmit(&self) -> bool {
        !self.sending.is_empty() || !self.touched.is_empty()
    }

    /// The next deadline of any connection (exact for the peers filed; a peer
    /// handed out by `connection_mut` counts with its current deadline).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let filed = self.deadlines.peek().map(|((t, _), _)| t);
        let touched = self
            .touched
            .iter()
            .filter_map(|&id| self.peer(id)?.deadline());
        filed.into_iter().chain(touched).min()
    }

    /// Runs the connections' timers that are due, each connection once (a
    /// deadline that is still due afterwards, such as a closing connection's
    /// next close packet, waits for the next call).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.touch_pending();
        let mut due = std::mem::take(&mut self.due);
        // Every key of time `now` is at or below `(now, PeerId::MAX)`.
        while let Some((_, slot)) = self.deadlines.pop_due((now, PeerId::MAX)) {
            let peer = self.slots[slot as usize]
                .as_deref_mut()
                .expect("deadlines are filed for occupied slots");
            peer.timer = None;
            due.push(peer.handle);
        }
        for &handle in &due {
            #[cfg(test)]
            {
                self.visits += 1;
            }
            let Some(peer) = peer_at(&mut self.slots, handle) else {
                continue;
            };
            if peer.deadline().is_some_and(|d| d <= now) {
                peer.conn.handle_timeout(now);
                peer.collect_events(&mut self.events);
            }
            if peer.is_finished() {
                self.remove(handle);
            } else {
                self.touch(handle);
            }
        }
        due.clear();
        self.due = due;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::session_keys_pair;
    use std::time::Duration;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A server endpoint and a client endpoint, moving datagrams by hand.
    struct Net {
        server: Endpoint,
        client: Endpoint,
        client_peer: PeerId,
        now: Instant,
        buf: Vec<u8>,
    }

    impl Net {
        fn new(seed: u64) -> (Self, PeerId) {
            let config = Arc::new(TransportConfig::default());
            let now = Instant::now();
            let (ck, sk) = session_keys_pair(seed);
            let mut server = Endpoint::new(config.clone());
            let mut client = Endpoint::new(config);
            let server_peer = server.insert(sk, None, now).unwrap();
            let client_peer = client.insert(ck, Some(addr(7777)), now).unwrap();
            let net = Self {
                server,
                client,
                client_peer,
                now,
                buf: vec![0; 1500],
            };
            (net, server_peer)
        }

        /// Client datagrams, as the server would receive them from `from`.
        fn client_to_server(&mut self, from: SocketAddr) -> Vec<Vec<u8>> {
            let mut out = Vec::new();
            while let Some((to, n)) = self.client.poll_transmit(self.now, &mut self.buf) {
                assert_eq!(to, addr(7777));
                out.push(self.buf[..n].to_vec());
            }
            for d in &out {
                self.server.handle_datagram(self.now, from, &mut d.clone());
            }
            out
        }
    }

    #[test]
    fn may_transmit_is_false_only_when_poll_transmit_has_nothing() {
        let (mut net, peer) = Net::new(21);
        let now = net.now;
        // A new peer is looked at once; drained, nothing is left to look at.
        while net.server.poll_transmit(now, &mut net.buf).is_some() {}
        assert!(!net.server.may_transmit());
        // A datagram from the client: the peer may owe an ACK.
        net.client.send(net.client_peer, 0, b"ping").unwrap();
        net.client_to_server(addr(5000));
        assert!(net.server.may_transmit());
        while net.server.poll_transmit(now, &mut net.buf).is_some() {}
        assert!(!net.server.may_transmit());
        // A message queued by the application.
        net.server.send(peer, 0, b"pong").unwrap();
        assert!(net.server.may_transmit());
        assert!(net.server.poll_transmit(now, &mut net.buf).is_some());
        while net.server.poll_transmit(now, &mut net.buf).is_some() {}
        assert!(!net.server.may_transmit());
        // A connection handed out for changes is looked at again.
        net.server.connection_mut(peer).unwrap().ping();
        assert!(net.server.may_transmit());
        assert!(net.server.poll_transmit(now, &mut net.buf).is_some());
    }

    #[test]
    fn unknown_connections_are_told_apart_by_header() {
        let (mut net, _) = Net::new(9);
        net.client.send(net.client_peer, 0, b"hi").unwrap();
        let sent = net.client_to_server(addr(5000));
        assert!(!net.server.is_for_unknown_connection(&sent[0]));
        // Another session's datagram: a connection ID this server lacks.
        let (mut elsewhere, _) = Net::new(11);
        elsewhere
            .client
            .send(elsewhere.client_peer, 0, b"x")
            .unwrap();
        let foreign = elsewhere.client_to_server(addr(5001));
        assert!(net.server.is_for_unknown_connection(&foreign[0]));
        assert!(
            !net.server.is_for_unknown_connection(&[1, 2, 3]),
            "malformed"
        );
    }

    #[test]
    fn first_authenticated_datagram_binds_and_connects() {
        let (mut net, peer) = Net::new(1);
        assert_eq!(net.server.peer_addr(peer), None);
        assert!(
            net.server.poll_transmit(net.now, &mut net.buf).is_none(),
            "no address yet"
        );
        net.client.send(net.client_peer, 0, b"hi").unwrap();
        net.client_to_server(addr(5000));
        assert_eq!(net.server.poll_event(), Some(PeerEvent::Connected(peer)));
        assert_eq!(net.server.peer_addr(peer), Some(addr(5000)));
        let mut out = Vec::new();
        assert_eq!(net.server.recv_into(&mut out), Some((peer, 0)));
        assert_eq!(out, b"hi");
    }

    #[test]
    fn a_replayed_first_datagram_from_elsewhere_binds_nothing() {
        let (mut net, peer) = Net::new(2);
        net.client.send(net.client_peer, 0, b"hi").unwrap();
        let sent = net.client_to_server(addr(5000));
        // An attacker replays the first datagram from its own address.
        for d in &sent {
            assert_eq!(
                net.server
                    .handle_datagram(net.now, addr(6666), &mut d.clone()),
                None
            );
        }
        assert_eq!(net.server.peer_addr(peer), Some(addr(5000)));
        assert_eq!(net.server.stats().rejected, sent.len() as u64);
    }

    #[test]
    fn a_copy_that_wins_the_race_is_overruled_by_the_next_packet() {
        let (mut net, peer) = Net::new(3);
        net.client.send(net.client_peer, 0, b"one").unwrap();
        let mut first = Vec::new();
        while let Some((_, n)) = net.client.poll_transmit(net.now, &mut net.buf) {
            first.push(net.buf[..n].to_vec());
        }
        // The attacker's copy arrives first and binds its address...
        for d in &first {
            net.server
                .handle_datagram(net.now, addr(6666), &mut d.clone());
        }
        assert_eq!(net.server.peer_addr(peer), Some(addr(6666)));
        // ...until the client's next, newer packet arrives from its real address.
        net.client.send(net.client_peer, 0, b"two").unwrap();
        net.client_to_server(addr(5000));
        assert_eq!(net.server.peer_addr(peer), Some(addr(5000)));
    }

    #[test]
    fn another_peers_connection_id_from_another_source_changes_nothing() {
        let (mut net, peer) = Net::new(4);
        net.client.send(net.client_peer, 0, b"hi").unwrap();
        let sent = net.client_to_server(addr(5000));
        // Same destination ID, forged contents, other source.
        let mut forged = sent[0].clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(
            net.server.handle_datagram(net.now, addr(6666), &mut forged),
            None
        );
        assert_eq!(net.server.peer_addr(peer), Some(addr(5000)));
        assert!(net.server.is_connected(peer));
        let mut garbage = vec![0x10; 64];
        assert_eq!(
            net.server
                .handle_datagram(net.now, addr(6666), &mut garbage),
            None
        );
        assert_eq!(
            net.server.stats().unknown_connection + net.server.stats().malformed,
            1
        );
    }

    #[test]
    fn closed_peers_are_reported_and_removed() {
        let (mut net, peer) = Net::new(5);
        net.client.send(net.client_peer, 0, b"hi").unwrap();
        net.client_to_server(addr(5000));
        assert_eq!(net.server.poll_event(), Some(PeerEvent::Connected(peer)));
        net.client.disconnect(net.client_peer, 300);
        net.client_to_server(addr(5000));
        assert_eq!(
            net.server.poll_event(),
            Some(PeerEvent::Disconnected(
                peer,
                DisconnectReason::ClosedByPeer { code: 300 }
            ))
        );
        // The message delivered before the close is still readable.
        let mut out = Vec::new();
        assert_eq!(net.server.recv_into(&mut out), Some((peer, 0)));
        net.now += Duration::from_millis(1);
        net.server.handle_timeout(net.now);
        assert!(net.server.poll_transmit(net.now, &mut net.buf).is_none());
        assert_eq!(net.server.peer_count(), 0);
        assert_eq!(net.server.send(peer, 0, b"x"), Err(SendError::Closed));
    }

    #[test]
    fn idle_peers_cost_nothing_per_call() {
        // 1,000 connected, idle peers and one chatty one: sending to the chatty
        // one and running its timers visits it alone.
        let config = Arc::new(TransportConfig::default());
        let now = Instant::now();
        let mut server = Endpoint::new(config.clone());
        let mut clients = Vec::new();
        let mut buf = vec![0u8; 1500];
        for i in 0..1000u64 {
            let (ck, sk) = session_keys_pair(1000 + i);
            let id = server.insert(sk, None, now).unwrap();
            let mut client = Endpoint::new(config.clone());
            let cp = client.insert(ck, Some(addr(7777)), now).unwrap();
            client.connection_mut(cp).unwrap().ping();
            while let Some((_, n)) = client.poll_transmit(now, &mut buf) {
                server.handle_datagram(now, addr(10_000 + i as u16), &mut buf[..n]);
            }
            clients.push((client, cp, id));
        }
        while server.poll_transmit(now, &mut buf).is_some() {}
        server.handle_timeout(now);
        assert_eq!(server.peer_count(), 1000);
        let (_, _, chatty) = clients[7];
        let before = server.visits;
        for round in 0..100u32 {
            let t = now + Duration::from_millis(u64::from(round));
            server.send(chatty, 0, b"tick").unwrap();
            let mut sent = 0;
            while server.poll_transmit(t, &mut buf).is_some() {
                sent += 1;
            }
            assert_eq!(sent, 1);
            server.handle_timeout(t);
        }
        // Each round: the chatty peer once in poll_transmit (its datagram;
        // it says when it has nothing more), perhaps once for a timer. Never
        // the other 999.
        let visits = server.visits - before;
        assert!(visits <= 300, "{visits} visits for 100 rounds");
        // Their timers still run: an idle timeout reaches every one of them.
        let later = now + Duration::from_secs(60);
        server.handle_timeout(later);
        while server.poll_transmit(later, &mut buf).is_some() {}
        assert_eq!(server.peer_count(), 0);
    }
}
