//! The Tokio driver: [`SecureSocket`], one async handle for a FastNet server or
//! client.
//!
//! ```no_run
//! use fastnet::net::{SecureEvent, SecureSocket};
//! use fastnet::session::DevCertificate;
//!
//! # async fn server() -> std::io::Result<()> {
//! let dev = DevCertificate::generate(&["localhost"]).expect("certificate");
//! let udp = "[::]:7777".parse().unwrap();
//! let tcp = "[::]:7778".parse().unwrap();
//! let socket = SecureSocket::bind_server(udp, tcp, vec![dev.cert], dev.key).await?;
//! loop {
//!     for event in socket.poll().await? {
//!         match event {
//!             SecureEvent::Connected(peer) => println!("{peer} joined"),
//!             SecureEvent::Data(peer, channel, data) => socket.send(peer, channel, data).await?,
//!             SecureEvent::Disconnected(peer, reason) => println!("{peer} left: {reason}"),
//!         }
//!     }
//! }
//! # }
//! ```
//!
//! # Receiving without allocating
//!
//! `poll` is the simple form: each call returns a new `Vec`, and each
//! [`SecureEvent::Data`] owns a new `Vec<u8>`, so it allocates about twice per
//! message. [`SecureSocket::poll_into`] is the same call for loops that must
//! not allocate (a game server's hot path): it fills a vector you keep, and
//! takes back the message buffers of the events it held, so the connections
//! move the next messages' bytes into them (the game-loop drivers' `recv_into`
//! does the same). Read the events by reference; nothing else changes:
//!
//! ```no_run
//! use fastnet::net::{SecureEvent, SecureSocket};
//!
//! # async fn server(socket: SecureSocket) -> std::io::Result<()> {
//! let mut events = Vec::new();
//! loop {
//!     socket.poll_into(&mut events).await?;
//!     for event in &events {
//!         if let SecureEvent::Data(peer, channel, data) = event {
//!             socket.send(*peer, *channel, data).await?; // copies `data`
//!         }
//!     }
//! }
//! # }
//! ```
//!
//! Once warm (after the first few messages of each connection), this loop and
//! [`send`](SecureSocket::send) allocate nothing per packet: the event vector
//! keeps its capacity, message buffers circulate between it and the
//! connections' buffer pools, and the driver's own queues, timers and
//! datagram buffers are reused (`core/tests/zero_alloc.rs` counts 0
//! allocations over thousands of round trips on a current-thread runtime).
//!
//! # How it runs
//!
//! Every method takes `&self` and the handle is [`Clone`]: clones share one
//! [`Endpoint`] behind a `std::sync::Mutex` that is never held across an
//! `.await`. So one task can await [`SecureSocket::poll`] while others
//! [`send`](SecureSocket::send).
//!
//! * [`poll`](SecureSocket::poll) (and `poll_into`) drives the I/O on the
//!   caller's task: it reads every datagram the socket holds (until it would
//!   block), runs due timers, transmits, and returns as soon as there are
//!   events. Otherwise it awaits, all at once, the socket's readability, the
//!   next protocol deadline (`sleep_until`), and a *poke* that `send`,
//!   `disconnect` and the handshake tasks give when they change what it waits
//!   for (a count of pokes and the waiting polls' wakers: a `poll` call
//!   registers its waker once however often it waits, where a
//!   `tokio::sync::Notify` registers per wait). A lone datagram costs one
//!   `recvfrom` (plus one that finds the socket empty) and no wake-up of any
//!   other task: no thread hop on the hot path. A `poll` woken by a datagram
//!   returns as soon as it has events, and leaves that empty `recvfrom` to
//!   the next `poll`, after the application has answered; that one reads on
//!   until the socket is empty, so a burst is still read in one go. A
//!   ping-pong then makes the same system calls in the same order as a plain
//!   Tokio UDP echo: wake, `recvfrom`, `sendto`, empty `recvfrom`, wait.
//! * [`send`](SecureSocket::send) queues the message and transmits at once on
//!   the sender's task. It wakes a waiting `poll` only when its message moved
//!   the next deadline earlier (the first unacknowledged message arms the
//!   retransmission timer), not per message.
//! * On Linux, with [`SocketConfig::batching`] (the default), the I/O uses
//!   the game-loop drivers' batched system calls: a third datagram in a row
//!   switches the reads to `recvmmsg` (32 datagrams a call), and everything
//!   one transmit produces leaves in one `sendmmsg`, runs of equal-sized
//!   datagrams to one peer (a large message's fragments) as one GSO buffer
//!   ([`SocketConfig::gso`]); [`SocketConfig::gro`] takes such runs in as one
//!   buffer. A lone datagram still goes with `send`/`sendto`. Every receive
//!   goes through Tokio's `try_io`, so an empty socket clears the readiness
//!   `poll` waits for. [`SecureSocket::io_stats`] counts the calls.
//! * On Unix the socket is registered with Tokio's reactor for readability
//!   only: with edge-triggered readiness a registration for writability too
//!   is woken after nearly every datagram sent (the socket is writable
//!   again), one more return from the reactor's wait and one more turn of the
//!   runtime per datagram for nothing. So a round trip costs each side one
//!   wake-up, the arrival. When the socket would block, the datagrams it
//!   refused are kept (in the send batch, or the one datagram without it),
//!   nothing new is taken from the connections, and the next `send` or
//!   `poll` awaits writability (registered for that wait only) and sends
//!   them first: a full socket slows a bulk sender down instead of dropping
//!   its datagrams.
//! * A client's socket is **connected** to the server's UDP address: the
//!   kernel drops datagrams from anyone else, and the driver sends with `send`
//!   and receives with `recv`, which skip the route lookup of every `sendto`
//!   and the source address of every `recvfrom`.
//! * A **background ticker** task keeps connections alive when nobody polls
//!   (a game busy loading a level, an application that only sends): every
//!   [`BACKGROUND_TICK_MS`] it checks when the I/O last ran, and if no `poll`
//!   is active and nothing ran for a tick it does what `poll` would do without
//!   awaiting: reads the socket, runs timers (acknowledgements, keep-alives,
//!   retransmissions), transmits. Messages and events wait in the endpoint for
//!   the next `poll` (bounded by the transport configuration's receive queue).
//!   Its cost is one timer wake-up and a lock per tick (40 per second) while
//!   polls are frequent; it never touches a datagram then. While a `poll` is
//!   active but has not run the I/O for [`POLL_STALL_TAKEOVER_MS`] (a future
//!   created and then not polled), the ticker runs it too.
//!
//! Server handshakes run in tasks of their own (see `net::async_handshake`):
//! each under the handshake timeout, at most `max_pending_handshakes` at once
//! (the oldest is dropped when full); a finished one inserts its keys into the
//! endpoint (the peer's address is learnt from its first authenticated datagram)
//! and notifies `poll`. All tasks stop when the last handle is dropped; dropping
//! it also tells every connected peer goodbye (best effort).
//!
//! Works on current-thread and multi-thread runtimes; the constructors must be
//! awaited inside a runtime (they spawn the tasks).

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio::time::Sleep;

use crate::config::{ChannelId, TransportConfig};
use crate::error::{close_code, DisconnectReason, SendError};
use crate::net::async_handshake::{
    bind_listener, client_handshake, spawn_acceptor, Acceptor, SessionSink,
};
use crate::net::async_io::{AsyncUdp, UdpPath};
use crate::net::client::{ClientConfig, ConnectError};
use crate::net::endpoint::{Endpoint, EndpointStats, PeerEvent, PeerId};
use crate::net::io::{IoStats, LinkSimulation};
use crate::net::server::{HandshakeStats, ServerConfig};
use crate::net::service::lock;
use crate::net::socket::{bind_udp, SocketConfig};
use crate::pool::BufferPool;
use crate::session::trust::SHA256_FINGERPRINT_BYTES;
use crate::session::{
    CertificateDer, ClientHandshake, PrivateKeyDer, ServerCredentials, ServerTrust, SessionParams,
};
use crate::stats::ConnectionStats;

/// Interval of the background ticker (milliseconds): how late, at most,
/// datagrams are read and timers run while nobody polls.
pub const BACKGROUND_TICK_MS: u64 = 25;
/// A `poll` that has not run the I/O for this long (milliseconds) is treated
/// as absent by the background ticker.
pub const POLL_STALL_TAKEOVER_MS: u64 = 250;
/// The client's first UDP packet is repeated until the server answers: first
/// after 1 ms (it can overtake the end of the handshake on the server), then
/// twice as late each time, up to [`FIRST_PACKET_RETRY_MAX_MS`] apart.
pub const FIRST_PACKET_RETRY_MIN_MS: u64 = 1;
/// Longest interval between two first packets (milliseconds).
pub const FIRST_PACKET_RETRY_MAX_MS: u64 = 200;
/// Most datagrams read per round of I/O before timers and transmissions run,
/// so a flood cannot starve them.
const MAX_DATAGRAMS_PER_DRIVE: usize = 1024;
/// Shortest wait for a deadline that is already due but whose work cannot be
/// done yet (a server peer whose address is not known yet, a blocked socket),
/// so the driver never spins (milliseconds).
const MIN_TIMER_WAIT_MS: u64 = 1;
/// Deadline of the poll timer before a poll first sets it (never reached).
const UNARMED_TIMER: Duration = Duration::from_secs(365 * 24 * 3600);
/// Message buffers a socket keeps from the `Data` events handed back to
/// [`SecureSocket::poll_into`] until new messages take them (more are freed).
const SPARE_MESSAGE_BUFFERS: usize = 64;

/// Something that happened on a [`SecureSocket`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecureEvent {
    /// A peer's first authenticated datagram arrived: it is reachable. On a
    /// client, the server (peer 1) once the connection is up.
    Connected(PeerId),
    /// A message from a peer on a channel.
    Data(PeerId, ChannelId, Vec<u8>),
    /// A peer's connection ended; its last messages came before this event.
    Disconnected(PeerId, DisconnectReason),
}

/// How much of the socket one round of I/O reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// Until it would block (at most [`MAX_DATAGRAMS_PER_DRIVE`]).
    Drain,
    /// Until the application has events, else as `Drain`: a `poll` woken by
    /// a datagram returns its events without first asking the socket for
    /// another one. That last `recvfrom`, which finds the socket empty, then
    /// happens in the next `poll`, after the application has answered: off
    /// the round trip. The next `poll` drains what else arrived meanwhile, so
    /// a flood is still read in batches.
    UntilEvents,
}

/// The driver state behind the lock.
#[derive(Debug)]
struct State {
    endpoint: Endpoint,
    udp: UdpPath,
    /// Message buffers of the events a `poll_into` caller handed back, waiting
    /// to be swapped for the next messages' buffers (see `take_events_into`).
    spare: BufferPool,
    /// Departures collected while arrivals and messages are taken (they go
    /// last); empty between calls, its capacity kept.
    departures: Vec<SecureEvent>,
    /// When the I/O last ran (by `poll`, `send`, or the ticker).
    last_drive: Instant,
    /// `Some(until)` while a `poll` waits, with the deadline it sleeps to.
    poller_wait: Option<Option<Instant>>,
    /// The timer a waiting `poll` sleeps on, kept from one wait to the next
    /// (see [`ActivePoll::sleep_until`]); `None` while a poll holds it. Taken
    /// and given back under the lock a poll holds anyway.
    poll_timer: Option<Pin<Box<Sleep>>>,
}

impl State {
    fn new(endpoint: Endpoint, udp: UdpPath) -> Self {
        Self {
            endpoint,
            udp,
            spare: BufferPool::new(SPARE_MESSAGE_BUFFERS),
            departures: Vec::new(),
            last_drive: Instant::now(),
            poller_wait: None,
            poll_timer: None,
        }
    }

    /// One round of I/O without waiting: read (as `read` says), timers,
    /// transmit.
    fn drive(&mut self, socket: &AsyncUdp, now: Instant, read: Read) -> io::Result<()> {
        self.last_drive = now;
        let endpoint = &mut self.endpoint;
        self.udp
            .receive(socket, now, MAX_DATAGRAMS_PER_DRIVE, |from, datagram| {
                endpoint.handle_datagram(now, from, datagram);
                read == Read::Drain || !endpoint.has_pending()
            })?;
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
        }
        self.transmit(socket, now);
        Ok(())
    }

    /// Sends everything the connections have to send (one `sendmmsg` on
    /// Linux), until the socket would block.
    fn transmit(&mut self, socket: &AsyncUdp, now: Instant) {
        if !self.udp.flush(socket, now) {
            return;
        }
        // `poll_transmit` answers `None` inline when no peer may send.
        while self.endpoint.may_transmit() {
            let Some(slot) = self.udp.send_slot(socket) else {
                return;
            };
            let Some((to, n)) = self.endpoint.poll_transmit(now, slot) else {
                break;
            };
            self.udp.commit(socket, now, to, n);
        }
        self.udp.flush(socket, now);
    }

    /// Takes back the events a caller is done with: the message buffers of its
    /// `Data` events become spares for the next messages. Leaves `events` empty.
    fn recycle(&mut self, events: &mut Vec<SecureEvent>) {
        for event in events.drain(..) {
            if let SecureEvent::Data(_, _, data) = event {
                self.spare.give(data);
            }
        }
    }

    /// Appends peer events and messages, in order: arrivals, messages,
    /// departures. Returns how many.
    ///
    /// Each message is swapped into a spare buffer (`Endpoint::recv_into`),
    /// whose old allocation goes to the connection's buffer pool for its next
    /// message: with spares coming back through [`State::recycle`], nothing is
    /// allocated in steady state.
    fn take_events_into(&mut self, events: &mut Vec<SecureEvent>) -> usize {
        let before = events.len();
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                PeerEvent::Connected(peer) => events.push(SecureEvent::Connected(peer)),
                PeerEvent::Disconnected(peer, reason) => self
                    .departures
                    .push(SecureEvent::Disconnected(peer, reason)),
            }
        }
        loop {
            let mut data = self.spare.take(0);
            match self.endpoint.recv_into(&mut data) {
                Some((peer, channel)) => events.push(SecureEvent::Data(peer, channel, data)),
                None => {
                    self.spare.give(data);
                    break;
                }
            }
        }
        events.append(&mut self.departures);
        events.len() - before
    }

    /// When the driver next has work, never earlier than `now` plus
    /// [`MIN_TIMER_WAIT_MS`] (see the constant).
    fn wait_deadline(&self, now: Instant) -> Option<Instant> {
        let earliest = now + Duration::from_millis(MIN_TIMER_WAIT_MS);
        // The endpoint files every peer's deadline in a heap (a peer without
        // an address yet only under its idle timeout): no scan of all peers.
        [self.udp.next_deadline(), self.endpoint.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.max(earliest))
    }

    /// Whether a waiting `poll` must look again because `peer`'s deadline moved
    /// earlier than the one it sleeps to.
    fn poller_must_wake_for(&self, peer: PeerId) -> bool {
        let Some(until) = self.poller_wait else {
            return false;
        };
        let Some(t) = self
            .endpoint
            .connection(peer)
            .and_then(|c| c.poll_timeout())
        else {
            return false;
        };
        until.is_none_or(|until| t < until)
    }
}

/// What every clone of a [`SecureSocket`] shares.
struct Shared {
    state: Mutex<State>,
    socket: AsyncUdp,
    /// Wakes waiting `poll`s when what they wait for changed.
    poll_wake: PollWake,
    /// `poll` futures alive (waiting or running).
    active_polls: AtomicUsize,
    local_udp: SocketAddr,
    local_tcp: Option<SocketAddr>,
    handshake_stats: Option<Arc<Mutex<HandshakeStats>>>,
    server_certificate_sha256: Option<[u8; SHA256_FINGERPRINT_BYTES]>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    fn new(
        socket: AsyncUdp,
        mut state: State,
        local_tcp: Option<SocketAddr>,
        handshake_stats: Option<Arc<Mutex<HandshakeStats>>>,
        server_certificate_sha256: Option<[u8; SHA256_FINGERPRINT_BYTES]>,
    ) -> io::Result<Arc<Self>> {
        let local_udp = socket.local_addr()?;
        // Not registered with the timer wheel until first awaited.
        state.poll_timer = Some(Box::pin(tokio::time::sleep(UNARMED_TIMER)));
        Ok(Arc::new(Self {
            state: Mutex::new(state),
            socket,
            poll_wake: PollWake::new(),
            active_polls: AtomicUsize::new(0),
            local_udp,
            local_tcp,
            handshake_stats,
            server_certificate_sha256,
            tasks: Mutex::new(Vec::new()),
        }))
    }

    /// Starts the background ticker.
    fn spawn_ticker(self: &Arc<Self>) {
        let handle = tokio::spawn(run_ticker(Arc::downgrade(self))).abort_handle();
        lock(&self.tasks).push(handle);
    }

    /// One tick of the background ticker (see the module docs).
    fn tick(&self) {
        let now = Instant::now();
        let mut s = lock(&self.state);
        let idle = now.saturating_duration_since(s.last_drive);
        let takeover_ms = if self.active_polls.load(Ordering::Acquire) == 0 {
            BACKGROUND_TICK_MS
        } else {
            POLL_STALL_TAKEOVER_MS
        };
        if idle < Duration::from_millis(takeover_ms) {
            return;
        }
        if let Err(e) = s.drive(&self.socket, now, Read::Drain) {
            tracing::debug!(error = %e, "background I/O failed");
        }
        // Rare (a poll that stalled): let it look at what arrived.
        let poller_waits = s.poller_wait.is_some();
        drop(s);
        if poller_waits {
            self.poke();
        }
    }

    /// Tells every waiting `poll` to look again (see [`PollWake::poke`]).
    fn poke(&self) {
        self.poll_wake.poke();
    }
}

/// How a change wakes the `poll`s that wait (`send` moved a deadline
/// earlier, a handshake finished, a peer was disconnected): a count of pokes,
/// which a poll reads before it drives the I/O and watches while it waits
/// (see [`Poked`]), and the wakers of the polls that wait, one entry per
/// `poll` call however often it waits, removed when the call ends. (A
/// `tokio::sync::Notify` adds and removes a waiter per wait: about 300
/// instructions per round trip more, counted by callgrind.)
struct PollWake {
    pokes: AtomicU64,
    /// Identifies each `poll` call's entry in `wakers`.
    next_id: AtomicU64,
    /// Wakers of waiting polls, by call: at most one entry per live `poll`
    /// future.
    wakers: Mutex<Vec<(u64, Waker)>>,
}

impl PollWake {
    fn new() -> Self {
        Self {
            pokes: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            wakers: Mutex::new(Vec::new()),
        }
    }

    /// An identity for a `poll` call's entry.
    fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A [`Poked`] for the call `id`, completing at the next poke.
    fn poked(&self, id: u64) -> Poked<'_> {
        Poked {
            wake: self,
            id,
            seen: self.pokes.load(Ordering::Acquire),
        }
    }

    /// Tells every waiting poll to look again (what it waits for changed):
    /// counts a poke, then wakes and forgets the registered wakers. A poll
    /// that registers after the count moved sees it (see [`Poked`]), so no
    /// poke is lost. Wakers are woken under the lock: they only schedule
    /// their tasks, and the list keeps its capacity (nothing allocates).
    fn poke(&self) {
        self.pokes.fetch_add(1, Ordering::Release);
        for (_, waker) in lock(&self.wakers).drain(..) {
            waker.wake();
        }
    }

    /// Registers the waker of the waiting call `id` (or updates it: the
    /// future may have moved to another task), until a poke or
    /// [`PollWake::deregister`].
    fn register(&self, id: u64, waker: &Waker) {
        let mut wakers = lock(&self.wakers);
        match wakers.iter_mut().find(|(i, _)| *i == id) {
            Some((_, w)) => {
                if !w.will_wake(waker) {
                    w.clone_from(waker);
                }
            }
            None => wakers.push((id, waker.clone())),
        }
    }

    /// The call `id` ended: forgets its waker, if still registered.
    fn deregister(&self, id: u64) {
        let mut wakers = lock(&self.wakers);
        if let Some(i) = wakers.iter().position(|(i, _)| *i == id) {
            wakers.swap_remove(i);
        }
    }
}

/// Completes once [`PollWake::poke`] was called after the count `seen` was
/// read; registers the waker of the `poll` call `id` while pending.
struct Poked<'a> {
    wake: &'a PollWake,
    id: u64,
    seen: u64,
}

impl Future for Poked<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let wake = self.wake;
        if wake.pokes.load(Ordering::Acquire) != self.seen {
            return Poll::Ready(());
        }
        wake.register(self.id, cx.waker());
        // A poke between the first look and the registration has already
        // taken the wakers: its count shows now (it counted before taking
        // them, and the registration locked after).
        if wake.pokes.load(Ordering::Acquire) != self.seen {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(|p| p.into_inner());
        for task in tasks.drain(..) {
            task.abort();
        }
        let s = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        let peers: Vec<PeerId> = s.endpoint.peers().collect();
        for peer in peers {
            s.endpoint.disconnect(peer, close_code::NORMAL);
        }
        s.transmit(&self.socket, Instant::now());
    }
}

async fn run_ticker(shared: Weak<Shared>) {
    let mut interval = tokio::time::interval(Duration::from_millis(BACKGROUND_TICK_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.tick();
    }
}

/// Counts a `poll` future as active for as long as it lives, and holds the
/// socket's poll timer while it needs one.
struct ActivePoll<'a> {
    shared: &'a Shared,
    /// Whether it is awaiting (and so has published its deadline).
    waiting: bool,
    /// Its entry among the wakers of [`PollWake`].
    id: u64,
    /// Whether it ever waited (and so may have a waker registered).
    waited: bool,
    /// The socket's poll timer, once taken (another poll may hold it).
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether it tried to take the timer.
    took_timer: bool,
}

impl<'a> ActivePoll<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.active_polls.fetch_add(1, Ordering::AcqRel);
        Self {
            shared,
            waiting: false,
            id: shared.poll_wake.new_id(),
            waited: false,
            timer: None,
            took_timer: false,
        }
    }

    /// Sleeps until `deadline` (forever if `None`).
    ///
    /// On the socket's poll timer, which stays registered with Tokio's timer
    /// wheel between waits: nearly every packet moves the next deadline a
    /// little later (acknowledgement, retransmission and keep-alive timers
    /// count from the last packet), and moving a registered timer later only
    /// updates its deadline, where a new timer per wait is inserted into the
    /// wheel and removed again. A poll that finds the timer taken (several
    /// polls at once) sleeps on a timer of its own.
    async fn sleep_until(&mut self, deadline: Option<Instant>) {
        let Some(deadline) = deadline else {
            return std::future::pending().await;
        };
        let deadline = tokio_instant(deadline);
        match &mut self.timer {
            Some(timer) => {
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                timer.as_mut().await
            }
            None => tokio::time::sleep_until(deadline).await,
        }
    }
}

impl Drop for ActivePoll<'_> {
    fn drop(&mut self) {
        self.shared.active_polls.fetch_sub(1, Ordering::AcqRel);
        if self.waited {
            self.shared.poll_wake.deregister(self.id);
        }
        // A poll that returns events gives the timer back itself, under its
        // lock (see `poll_into`); an error or a cancellation gets here.
        if self.waiting || self.timer.is_some() {
            let mut s = lock(&self.shared.state);
            if self.waiting {
                // Cancelled while awaiting: nobody waits on that deadline any more.
                s.poller_wait = None;
            }
            if let Some(timer) = self.timer.take() {
                s.poll_timer = Some(timer);
            }
        }
    }
}

fn tokio_instant(t: Instant) -> tokio::time::Instant {
    tokio::time::Instant::from_std(t)
}

/// A `SendError` as an `io::Error` whose inner error is the `SendError`.
fn send_error(e: SendError) -> io::Error {
    let kind = match e {
        SendError::WouldBlock => io::ErrorKind::WouldBlock,
        SendError::Closed => io::ErrorKind::NotConnected,
        SendError::UnknownChannel(_) | SendError::MessageTooLarge { .. } => {
            io::ErrorKind::InvalidInput
        }
    };
    io::Error::new(kind, e)
}

/// A `ConnectError` as an `io::Error` whose inner error is the `ConnectError`.
fn connect_error(e: ConnectError) -> io::Error {
    let kind = match &e {
        ConnectError::Resolve { .. } => io::ErrorKind::NotFound,
        ConnectError::Tcp { source, .. } => source.kind(),
        ConnectError::Handshake(_) => io::ErrorKind::InvalidData,
        ConnectError::HandshakeClosed => io::ErrorKind::ConnectionAborted,
        ConnectError::HandshakeIo(source) | ConnectError::Udp(source) => source.kind(),
        ConnectError::NoUdpAnswer(_) | ConnectError::Timeout => io::ErrorKind::TimedOut,
        ConnectError::Config(_) => io::ErrorKind::InvalidInput,
    };
    io::Error::new(kind, e)
}

/// A FastNet server or client on Tokio (see the module docs). Cheap to clone:
/// clones are handles on the same socket and connections.
///
/// Errors are `std::io::Error`s. Those of a connect wrap a [`ConnectError`]
/// and those of [`send`](Self::send) a [`SendError`]; get them back with
/// `err.get_ref().and_then(|e| e.downcast_ref::<ConnectError>())`.
#[derive(Clone)]
pub struct SecureSocket {
    shared: Arc<Shared>,
}

impl fmt::Debug for SecureSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureSocket")
            .field("udp", &self.shared.local_udp)
            .field("tcp", &self.shared.local_tcp)
            .finish_non_exhaustive()
    }
}

impl SecureSocket {
    /// Binds a server: UDP for the sessions, TCP for the handshakes, with this
    /// certificate chain (the server's certificate first) and its private key,
    /// and the default [`ServerConfig`]. A wildcard IPv6 address (`[::]`)
    /// serves IPv4 clients too where the OS allows dual stack.
    pub async fn bind_server(
        udp_addr: SocketAddr,
        tcp_addr: SocketAddr,
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> io::Result<Self> {
        let credentials = ServerCredentials::new(certs, key)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Self::bind_server_with(udp_addr, tcp_addr, ServerConfig::new(Arc::new(credentials))).await
    }

    /// Binds a server with a full configuration: transport, credentials,
    /// advertised UDP address, handshake timeout and bound, socket options,
    /// link simulation.
    pub async fn bind_server_with(
        udp_addr: SocketAddr,
        tcp_addr: SocketAddr,
        config: ServerConfig,
    ) -> io::Result<Self> {
        config
            .transport
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let socket = bind_async_udp(udp_addr, &config.socket, None)?;
        let bound_udp = socket.local_addr()?;
        let listener = bind_listener(tcp_addr)?;
        let local_tcp = listener.local_addr()?;
        let advertised = config.advertised_udp_addr.unwrap_or(bound_udp);
        let params = SessionParams::from_config(&config.transport).with_udp_address(advertised);
        let max_datagram = config.transport.max_datagram_bytes();
        let udp = UdpPath::new(&socket, &config.link, &config.socket, max_datagram)?;
        let state = State::new(Endpoint::new(Arc::new(config.transport)), udp);
        let stats = Arc::new(Mutex::new(HandshakeStats::default()));
        let shared = Shared::new(socket, state, Some(local_tcp), Some(stats.clone()), None)?;
        let weak = Arc::downgrade(&shared);
        let sink: SessionSink = Arc::new(move |keys| {
            let Some(shared) = weak.upgrade() else {
                return false;
            };
            let inserted = {
                let mut s = lock(&shared.state);
                match s.endpoint.insert(keys, None, Instant::now()) {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "session rejected");
                        false
                    }
                }
            };
            // The new peer's timers count from now: let a waiting poll know.
            shared.poke();
            inserted
        });
        let acceptor = Acceptor {
            credentials: config.credentials,
            params,
            timeout: config.handshake_timeout,
            max_pending: config.max_pending_handshakes,
            stats,
            sink,
        };
        let handle = spawn_acceptor(listener, acceptor);
        lock(&shared.tasks).push(handle);
        shared.spawn_ticker();
        Ok(Self { shared })
    }

    /// Connects to a server's TCP address with the default [`ClientConfig`]:
    /// the server's certificate must chain to the Mozilla roots and be valid
    /// for the address's IP (so a self-signed development certificate is
    /// refused; use [`connect_with`](Self::connect_with)). Returns once the
    /// server has answered over UDP; the server is peer 1.
    pub async fn connect(server: SocketAddr) -> io::Result<Self> {
        Self::connect_with(server, ClientConfig::default()).await
    }

    /// Connects to a server's TCP address with `config` (trust, server name,
    /// transport, timeout, socket options, link simulation). The server name
    /// defaults to the address's IP.
    pub async fn connect_with(server: SocketAddr, config: ClientConfig) -> io::Result<Self> {
        let deadline = Instant::now() + config.connect_timeout;
        let name = config
            .server_name
            .clone()
            .unwrap_or_else(|| server.ip().to_string());
        let connect = async {
            let stream = TcpStream::connect(server)
                .await
                .map_err(|source| ConnectError::Tcp {
                    host: server.to_string(),
                    source,
                })?;
            Self::connect_stream(stream, &name, config, deadline).await
        };
        match tokio::time::timeout_at(tokio_instant(deadline), connect).await {
            Ok(result) => result.map_err(connect_error),
            Err(_) => Err(connect_error(ConnectError::Timeout)),
        }
    }

    /// Connects to `host` (a name, or an IPv4 or IPv6 address, brackets
    /// allowed) on TCP `port`, trying each address it resolves to in turn. The
    /// server name defaults to `host`.
    pub async fn connect_host(host: &str, port: u16, config: ClientConfig) -> io::Result<Self> {
        let deadline = Instant::now() + config.connect_timeout;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = config
            .server_name
            .clone()
            .unwrap_or_else(|| host.to_string());
        let connect = async {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
                .await
                .map_err(|source| ConnectError::Resolve {
                    host: host.to_string(),
                    source,
                })?
                .collect();
            let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(stream) => {
                        return Self::connect_stream(stream, &name, config, deadline).await
                    }
                    Err(e) => last = e,
                }
            }
            Err(ConnectError::Tcp {
                host: host.to_string(),
                source: last,
            })
        };
        match tokio::time::timeout_at(tokio_instant(deadline), connect).await {
            Ok(result) => result.map_err(connect_error),
            Err(_) => Err(connect_error(ConnectError::Timeout)),
        }
    }

    /// The handshake on an open TCP stream, then the first UDP exchange.
    async fn connect_stream(
        stream: TcpStream,
        server_name: &str,
        config: ClientConfig,
        deadline: Instant,
    ) -> Result<Self, ConnectError> {
        config.transport.validate()?;
        stream
            .set_nodelay(true)
            .map_err(ConnectError::HandshakeIo)?;
        let params = SessionParams::from_config(&config.transport);
        let trust: ServerTrust = config.trust.clone();
        let handshake = ClientHandshake::new(server_name, trust, params)?;
        let outcome = client_handshake(&stream, handshake).await?;
        let tcp_peer = stream.peer_addr().map_err(ConnectError::HandshakeIo)?;
        drop(stream);
        let server = outcome
            .peer_params
            .udp_target(tcp_peer.ip())
            .ok_or(ConnectError::NoUdpAnswer(tcp_peer))?;
        let local: SocketAddr = if server.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket =
            bind_async_udp(local, &config.socket, Some(server)).map_err(ConnectError::Udp)?;
        let max_datagram = config.transport.max_datagram_bytes();
        let udp = UdpPath::new(&socket, &config.link, &config.socket, max_datagram)
            .map_err(ConnectError::Udp)?;
        let mut endpoint = Endpoint::new(Arc::new(config.transport));
        let peer = endpoint
            .insert(outcome.keys, Some(server), Instant::now())
            .map_err(|e| match e {
                crate::net::endpoint::InsertError::Config(c) => ConnectError::Config(c),
                other => ConnectError::Udp(io::Error::other(other)),
            })?;
        let state = State::new(endpoint, udp);
        let shared = Shared::new(socket, state, None, None, outcome.server_certificate_sha256)
            .map_err(ConnectError::Udp)?;
        let socket = Self { shared };
        socket.await_first_answer(peer, server, deadline).await?;
        socket.shared.spawn_ticker();
        Ok(socket)
    }

    /// Repeats the first packet (a PING) with exponential backoff until the
    /// server answers or `deadline` passes.
    async fn await_first_answer(
        &self,
        peer: PeerId,
        server: SocketAddr,
        deadline: Instant,
    ) -> Result<(), ConnectError> {
        let shared = &*self.shared;
        let mut next_ping = Instant::now();
        let mut retry = Duration::from_millis(FIRST_PACKET_RETRY_MIN_MS);
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(ConnectError::NoUdpAnswer(server));
            }
            let blocked = {
                let mut s = lock(&shared.state);
                if now >= next_ping {
                    if let Some(conn) = s.endpoint.connection_mut(peer) {
                        conn.ping();
                    }
                    next_ping = now + retry;
                    retry = (retry * 2).min(Duration::from_millis(FIRST_PACKET_RETRY_MAX_MS));
                }
                s.drive(&shared.socket, now, Read::Drain)
                    .map_err(ConnectError::Udp)?;
                let answered = s
                    .endpoint
                    .connection(peer)
                    .is_some_and(|c| c.largest_received().is_some());
                if answered {
                    return Ok(());
                }
                if s.endpoint.connection(peer).is_none() {
                    // Closed (refused by the transport, say): it will not answer.
                    return Err(ConnectError::NoUdpAnswer(server));
                }
                s.udp.is_blocked()
            };
            let wake = tokio_instant(next_ping.min(deadline));
            tokio::select! {
                r = shared.socket.readable() => r.map_err(ConnectError::Udp)?,
                r = shared.socket.writable(), if blocked => r.map_err(ConnectError::Udp)?,
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Waits for events and returns them, driving the I/O meanwhile (see the
    /// module docs). Each call returns at least one event; a peer's messages
    /// come after its `Connected` and before its `Disconnected`.
    ///
    /// The simple form: every call returns a new vector and every
    /// [`SecureEvent::Data`] owns a new buffer, about two heap allocations per
    /// message received. A loop that should allocate nothing uses
    /// [`poll_into`](Self::poll_into), which is otherwise the same.
    ///
    /// Cancel-safe: events are only taken from the endpoint when they are
    /// returned, so dropping the future (in a `select!`) loses nothing.
    /// Several tasks may poll at once; each event goes to one of them.
    ///
    /// A client whose connection has ended has no peer left, so `poll` then
    /// waits forever: stop polling after `Disconnected(1, _)`.
    pub async fn poll(&self) -> io::Result<Vec<SecureEvent>> {
        let mut events = Vec::new();
        self.poll_into(&mut events).await?;
        Ok(events)
    }

    /// [`poll`](Self::poll) without allocating: waits for events and puts
    /// them in `events`, replacing what it held; returns how many (at least
    /// one). Keep one vector and pass it to every call, reading the events by
    /// reference (`for event in &events`): the message buffers of the `Data`
    /// events it held go back to the connections, which move the next
    /// messages' bytes into them (as the game-loop drivers' `recv_into` does),
    /// and the vector keeps its capacity. Once warm, a receive loop allocates
    /// nothing (a message over 2 KiB still gets a buffer of its own).
    ///
    /// ```no_run
    /// use fastnet::net::{SecureEvent, SecureSocket};
    ///
    /// # async fn echo(socket: SecureSocket) -> std::io::Result<()> {
    /// let mut events = Vec::new();
    /// loop {
    ///     socket.poll_into(&mut events).await?;
    ///     for event in &events {
    ///         match event {
    ///             SecureEvent::Connected(peer) => println!("{peer} joined"),
    ///             SecureEvent::Data(peer, channel, data) => {
    ///                 socket.send(*peer, *channel, data).await?
    ///             }
    ///             SecureEvent::Disconnected(peer, reason) => println!("{peer} left: {reason}"),
    ///         }
    ///     }
    /// }
    /// # }
    /// ```
    ///
    /// Events the caller moved out of the vector (`events.drain(..)`, a
    /// `Data` buffer kept with `std::mem::take`) are simply not recycled.
    /// Cancel-safe like `poll`: if the future is dropped before it completes,
    /// `events` is unchanged or empty and no new event is lost. On an error
    /// `events` is empty.
    pub async fn poll_into(&self, events: &mut Vec<SecureEvent>) -> io::Result<usize> {
        // A loop that always finds events never awaits anything else: give
        // the runtime its turn (handshake tasks, other sockets) once the task's
        // cooperative budget is spent.
        tokio::task::coop::consume_budget().await;
        let shared = &*self.shared;
        let mut active = ActivePoll::new(shared);
        let mut read = Read::Drain;
        loop {
            // Read before the drive: a poke given after it wakes the wait
            // below, one given before it changed what the drive sees.
            let poked = shared.poll_wake.poked(active.id);
            let (deadline, blocked) = {
                let mut s = lock(&shared.state);
                s.poller_wait = None;
                active.waiting = false;
                if !events.is_empty() {
                    s.recycle(events);
                }
                let now = Instant::now();
                s.drive(&shared.socket, now, read)?;
                let n = s.take_events_into(events);
                if n > 0 {
                    if let Some(timer) = active.timer.take() {
                        s.poll_timer = Some(timer);
                    }
                    return Ok(n);
                }
                if !active.took_timer {
                    active.took_timer = true;
                    active.timer = s.poll_timer.take();
                }
                let deadline = s.wait_deadline(now);
                s.poller_wait = Some(deadline);
                s.udp.count_wait();
                active.waiting = true;
                active.waited = true;
                (deadline, s.udp.is_blocked())
            };
            // In order, not in a random order: every wake-up ends in a full
            // drive of the loop above, so no branch can starve another, and
            // the random start costs a generator call per wait.
            tokio::select! {
                biased;
                r = shared.socket.readable() => r?,
                r = shared.socket.writable(), if blocked => r?,
                _ = poked => {}
                _ = active.sleep_until(deadline) => {}
            }
            read = Read::UntilEvents;
        }
    }

    /// Queues a message for a peer and transmits at once. Fails when the peer
    /// does not exist or is closing (`NotConnected`), the channel does not
    /// exist or the message exceeds its limit (`InvalidInput`), or the send
    /// queue is full (`WouldBlock`: try again once the peer has acknowledged
    /// some data); the inner error is the [`SendError`]. Awaits only when the
    /// UDP socket's buffer is full.
    ///
    /// Like every Tokio resource it counts against the task's cooperative
    /// budget, so a task that sends in a loop lets others run now and then.
    /// If cancelled after its first `.await`, the message is queued; what the
    /// socket refused goes out with the next `send` or `poll`.
    pub async fn send(
        &self,
        peer: PeerId,
        channel: ChannelId,
        data: impl AsRef<[u8]>,
    ) -> io::Result<()> {
        tokio::task::coop::consume_budget().await;
        let shared = &*self.shared;
        let (wake, mut blocked) = {
            let mut s = lock(&shared.state);
            s.endpoint
                .send(peer, channel, data.as_ref())
                .map_err(send_error)?;
            let now = Instant::now();
            s.transmit(&shared.socket, now);
            (s.poller_must_wake_for(peer), s.udp.is_blocked())
        };
        if wake {
            shared.poke();
        }
        while blocked {
            shared.socket.writable().await?;
            let mut s = lock(&shared.state);
            s.transmit(&shared.socket, Instant::now());
            blocked = s.udp.is_blocked();
        }
        Ok(())
    }

    /// Closes a peer's connection with `code` (applications use codes from
    /// [`close_code::APPLICATION_MIN`]), telling the peer at once. The next
    /// `poll` reports `Disconnected(peer, ClosedLocally { code })`.
    pub fn disconnect(&self, peer: PeerId, code: u32) {
        let shared = &*self.shared;
        {
            let mut s = lock(&shared.state);
            s.endpoint.disconnect(peer, code);
            s.transmit(&shared.socket, Instant::now());
        }
        shared.poke();
    }

    /// The bound UDP address.
    pub fn local_udp_addr(&self) -> SocketAddr {
        self.shared.local_udp
    }

    /// The bound TCP address of a server (handshakes); `None` on a client.
    pub fn local_tcp_addr(&self) -> Option<SocketAddr> {
        self.shared.local_tcp
    }

    /// Peers whose connection is established.
    pub fn peer_count(&self) -> usize {
        let s = lock(&self.shared.state);
        s.endpoint
            .peers()
            .filter(|&p| s.endpoint.is_connected(p))
            .count()
    }

    /// IDs of all peers, including those whose first datagram has not arrived.
    pub fn peers(&self) -> Vec<PeerId> {
        lock(&self.shared.state).endpoint.peers().collect()
    }

    /// A peer's connection statistics.
    pub fn peer_stats(&self, peer: PeerId) -> Option<ConnectionStats> {
        lock(&self.shared.state).endpoint.peer_stats(peer)
    }

    /// A peer's UDP address, once known.
    pub fn peer_addr(&self, peer: PeerId) -> Option<SocketAddr> {
        lock(&self.shared.state).endpoint.peer_addr(peer)
    }

    /// A peer's smoothed round-trip time.
    pub fn rtt(&self, peer: PeerId) -> Option<Duration> {
        lock(&self.shared.state)
            .endpoint
            .connection(peer)
            .map(|c| c.rtt())
    }

    /// Datagrams dropped before reaching a connection.
    pub fn endpoint_stats(&self) -> EndpointStats {
        lock(&self.shared.state).endpoint.stats()
    }

    /// Turns UDP GRO (see `SocketConfig::gro`) on for this running socket,
    /// where the kernel has it and the socket batches its receives (Linux,
    /// `SocketConfig::batching`); returns whether GRO is now on. A kernel
    /// that refuses it is not an error: receives go on without. There is no
    /// way back: runs already queued in the kernel would be cut short by
    /// receives that no longer expect them.
    pub fn enable_gro(&self) -> bool {
        let mut state = lock(&self.shared.state);
        state.udp.enable_gro(&self.shared.socket)
    }

    /// Counters of the UDP socket's system calls (a `poll`'s waits for
    /// readiness count as `waits`), and whether it sends with GSO and
    /// receives with GRO.
    pub fn io_stats(&self) -> IoStats {
        lock(&self.shared.state).udp.stats()
    }

    /// Counters of the handshake side of a server; `None` on a client.
    pub fn handshake_stats(&self) -> Option<HandshakeStats> {
        self.shared.handshake_stats.as_ref().map(|s| *lock(s))
    }

    /// On a client: SHA-256 of the certificate the server presented (log it,
    /// or pin it with [`ServerTrust::PinnedSha256`] next time).
    pub fn server_certificate_sha256(&self) -> Option<[u8; SHA256_FINGERPRINT_BYTES]> {
        self.shared.server_certificate_sha256
    }

    /// The transport configuration of the connections.
    pub fn transport_config(&self) -> Arc<TransportConfig> {
        lock(&self.shared.state).endpoint.config().clone()
    }

    /// Replaces the simulated network conditions of this socket (testing): a
    /// direction that stays simulated keeps the datagrams it holds, one no
    /// longer simulated drops them.
    pub fn set_link_simulation(&self, link: &LinkSimulation) -> io::Result<()> {
        lock(&self.shared.state).udp.set_simulation(link)?;
        self.shared.poke();
        Ok(())
    }
}

/// Binds a UDP socket with `config`, connects it to `peer` if given (a
/// client's server: the kernel then drops datagrams from anyone else), and
/// registers it with Tokio.
fn bind_async_udp(
    addr: SocketAddr,
    config: &SocketConfig,
    peer: Option<SocketAddr>,
) -> io::Result<AsyncUdp> {
    let (socket, report) = bind_udp(addr, config)?;
    if !report.refused.is_empty() {
        tracing::debug!(refused = ?report.refused, "some socket options were refused");
    }
    if let Some(peer) = peer {
        socket.connect(peer)?;
    }
    AsyncUdp::new(socket, peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    fn poll_once(f: &mut Poked<'_>, waker: &Waker) -> Poll<()> {
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_poke_given_before_the_wait_is_not_lost() {
        let wake = PollWake::new();
        let (count, waker) = counting_waker();
        let mut poked = wake.poked(wake.new_id());
        wake.poke();
        assert_eq!(poll_once(&mut poked, &waker), Poll::Ready(()));
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_poke_during_the_wait_wakes_the_waiting_call_once() {
        let wake = PollWake::new();
        let (count, waker) = counting_waker();
        let mut poked = wake.poked(wake.new_id());
        assert_eq!(poll_once(&mut poked, &waker), Poll::Pending);
        wake.poke();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll_once(&mut poked, &waker), Poll::Ready(()));
        // The poke forgot the waker: a second poke wakes nobody.
        wake.poke();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_call_that_waits_again_and_again_holds_one_entry_until_it_ends() {
        let wake = PollWake::new();
        let (count, waker) = counting_waker();
        let id = wake.new_id();
        for _ in 0..5 {
            let mut poked = wake.poked(id);
            assert_eq!(poll_once(&mut poked, &waker), Poll::Pending);
            assert_eq!(poll_once(&mut poked, &waker), Poll::Pending);
        }
        assert_eq!(lock(&wake.wakers).len(), 1);
        wake.deregister(id);
        assert!(lock(&wake.wakers).is_empty());
        wake.poke();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            0,
            "an ended call is not woken"
        );
    }

    #[test]
    fn a_call_that_ends_leaves_the_others_registered_even_on_the_same_task() {
        let wake = PollWake::new();
        let (count, waker) = counting_waker();
        let (a, b) = (wake.new_id(), wake.new_id());
        let mut first = wake.poked(a);
        let mut second = wake.poked(b);
        assert_eq!(poll_once(&mut first, &waker), Poll::Pending);
        assert_eq!(poll_once(&mut second, &waker), Poll::Pending);
        wake.deregister(a);
        wake.poke();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the call still waiting is woken"
        );
        assert_eq!(poll_once(&mut second, &waker), Poll::Ready(()));
    }

    #[test]
    fn a_future_moved_to_another_task_is_woken_there() {
        let wake = PollWake::new();
        let (old, old_waker) = counting_waker();
        let (new, new_waker) = counting_waker();
        let mut poked = wake.poked(wake.new_id());
        assert_eq!(poll_once(&mut poked, &old_waker), Poll::Pending);
        assert_eq!(poll_once(&mut poked, &new_waker), Poll::Pending);
        wake.poke();
        assert_eq!(old.0.load(Ordering::SeqCst), 0);
        assert_eq!(new.0.load(Ordering::SeqCst), 1);
    }
}
