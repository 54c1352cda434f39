//! The game-loop server's handshake thread: it owns the TCP listener, accepts
//! connections and runs their TLS 1.3 handshakes (a bounded table, each under
//! a timeout) on a thread of its own, and hands each finished session to the
//! game thread through a bounded queue.
//!
//! So the game thread never spends a TLS handshake's CPU time (a signature and
//! key exchanges per client) and never watches TCP: its only source is the
//! UDP socket, in which it can sleep (a blocking receive costs one system call
//! per wake-up, where a wait on several sources costs a `ppoll` and a read).
//! When a session is finished the thread rings a **doorbell**: an empty
//! datagram from a loopback socket of its own to the server's UDP socket,
//! which wakes a server asleep in its receive. FastNet never sends empty
//! datagrams, so the server reads one as "sessions are waiting" and nothing
//! else; anyone may send one, and all it does is make the server look at the
//! queue (an atomic flag) once more. Should the doorbell be lost (a full
//! socket buffer, a simulated lossy link), the server takes the sessions at
//! its next service call.
//!
//! A client's first datagram usually arrives before its session: the client
//! sends it as soon as its TLS side is done, when the server has yet to read
//! the client's last TLS message. The server keeps a few such datagrams while
//! handshakes are in flight and retries them when sessions come in (see
//! `net::server`).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::net::service::lock;
use crate::session::{HandshakeOutcome, ServerCredentials, ServerHandshake, SessionParams};

/// The TCP listener's token; handshakes take the tokens after the waker's.
const LISTENER: mio::Token = mio::Token(0);
/// The token of the waker that stops the thread.
const WAKER: mio::Token = mio::Token(1);
/// The first token of a handshake's connection.
const FIRST_STREAM_TOKEN: usize = 2;
/// Bytes read from one TCP connection per pump.
const READ_BYTES: usize = 16 << 10;
/// Readiness events taken per wait.
const EVENTS: usize = 256;

/// Counters of the handshake side of a server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandshakeStats {
    /// TCP connections accepted.
    pub accepted: u64,
    /// Handshakes completed (sessions the server took in).
    pub completed: u64,
    /// Handshakes that failed (bad TLS, untrusted, incompatible, closed), and
    /// sessions the server could not take in.
    pub failed: u64,
    /// Handshakes dropped at the timeout.
    pub timed_out: u64,
    /// Handshakes dropped because the table was full (oldest silent one first).
    pub evicted: u64,
}

/// What the handshake thread needs to run handshakes.
#[derive(Debug)]
pub(crate) struct HandshakeSetup {
    /// The server's certificate chain and key.
    pub credentials: Arc<ServerCredentials>,
    /// The session parameters the server announces.
    pub params: SessionParams,
    /// Time a client has to finish.
    pub timeout: Duration,
    /// Handshakes in progress at most; also the bound of finished sessions
    /// waiting for the game thread.
    pub max_pending: usize,
}

/// What the handshake thread and the game thread share.
#[derive(Debug, Default)]
struct Shared {
    /// Finished handshakes, oldest first, waiting for the game thread.
    finished: Mutex<VecDeque<HandshakeOutcome>>,
    /// Whether `finished` may hold something (read without the lock).
    has_finished: AtomicBool,
    /// Handshakes in progress.
    in_flight: AtomicUsize,
    stats: Mutex<HandshakeStats>,
    stop: AtomicBool,
}

/// The handle the server keeps on its handshake thread; dropping it stops
/// the thread (handshakes in progress are dropped).
#[derive(Debug)]
pub(crate) struct Handshaker {
    shared: Arc<Shared>,
    waker: Arc<mio::Waker>,
    thread: Option<JoinHandle<()>>,
}

impl Handshaker {
    /// Starts the thread on `listener` (non-blocking). `doorbell`: the
    /// address of the server's UDP socket to ring, as seen from this host.
    pub fn start(
        listener: std::net::TcpListener,
        setup: HandshakeSetup,
        doorbell: SocketAddr,
    ) -> io::Result<Self> {
        let poll = mio::Poll::new()?;
        let mut listener = mio::net::TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, mio::Interest::READABLE)?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        let shared = Arc::new(Shared::default());
        let doorbell = Doorbell::new(doorbell);
        let mut table = Table {
            poll,
            listener,
            setup,
            pending: VecDeque::new(),
            next_token: FIRST_STREAM_TOKEN,
            buf: vec![0; READ_BYTES],
            shared: shared.clone(),
            doorbell,
        };
        let thread = std::thread::Builder::new()
            .name("fastnet-handshakes".into())
            .spawn(move || table.run())?;
        Ok(Self {
            shared,
            waker,
            thread: Some(thread),
        })
    }

    /// Whether a datagram for an unknown connection may belong to a session
    /// that is not in yet: handshakes are in progress, or finished ones wait.
    pub fn in_flight(&self) -> bool {
        self.shared.in_flight.load(Ordering::Acquire) > 0
            || self.shared.has_finished.load(Ordering::Acquire)
    }

    /// Hands every finished session to `admit`, which returns whether the
    /// server took it in (counted as completed, else failed). Returns how
    /// many it handed over: zero, after one atomic load, when none waits.
    pub fn take_finished(&self, mut admit: impl FnMut(HandshakeOutcome) -> bool) -> usize {
        if !self.shared.has_finished.swap(false, Ordering::AcqRel) {
            return 0;
        }
        let finished = std::mem::take(&mut *lock(&self.shared.finished));
        let n = finished.len();
        let (mut completed, mut failed) = (0, 0);
        for outcome in finished {
            if admit(outcome) {
                completed += 1;
            } else {
                failed += 1;
            }
        }
        let mut stats = lock(&self.shared.stats);
        stats.completed += completed;
        stats.failed += failed;
        n
    }

    /// The counters so far.
    pub fn stats(&self) -> HandshakeStats {
        *lock(&self.shared.stats)
    }

    /// Handshakes in progress.
    pub fn pending(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }
}

impl Drop for Handshaker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Err(e) = self.waker.wake() {
            tracing::debug!(error = %e, "cannot wake the handshake thread");
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The empty datagram that tells the server's UDP socket sessions are waiting.
#[derive(Debug)]
struct Doorbell {
    socket: Option<UdpSocket>,
    to: SocketAddr,
}

impl Doorbell {
    /// A doorbell for the UDP socket bound at `server`: its own address, or
    /// the loopback address of its family if bound to a wildcard.
    fn new(server: SocketAddr) -> Self {
        let to = SocketAddr::new(ring_address(server.ip()), server.port());
        let local: SocketAddr = match to {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(
                |e| tracing::debug!(error = %e, "no doorbell: sessions wait for the next service"),
            )
            .ok();
        Self { socket, to }
    }

    fn ring(&self) {
        if let Some(socket) = &self.socket {
            if let Err(e) = socket.send_to(&[], self.to) {
                tracing::debug!(error = %e, "doorbell not sent");
            }
        }
    }
}

/// Where a server bound to `ip` is reached from this host.
fn ring_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(v6) if v6.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        other => other,
    }
}

/// A handshake in progress.
#[derive(Debug)]
struct Pending {
    stream: mio::net::TcpStream,
    token: mio::Token,
    handshake: ServerHandshake,
    started: Instant,
    /// Bytes received so far: zero marks a connection that stalls.
    received: usize,
    out: Vec<u8>,
    written: usize,
}

enum PumpResult {
    Continue,
    Done,
    Failed,
}

impl Pending {
    /// Reads what arrived, feeds it to the handshake and writes its answer.
    fn pump(&mut self, buf: &mut [u8]) -> PumpResult {
        loop {
            match self.stream.read(buf) {
                // The client closes TCP once it has everything it needs: fine if
                // we have everything too.
                Ok(0) if self.handshake.is_done() => return PumpResult::Done,
                Ok(0) => return PumpResult::Failed,
                Ok(n) => {
                    self.received += n;
                    if let Err(e) = self.handshake.read_tls(&buf[..n]) {
                        tracing::debug!(error = %e, "handshake failed");
                        // Let rustls's alert go out (best effort) before closing.
                        self.handshake.write_tls(&mut self.out);
                        let _ = self.stream.write(&self.out[self.written..]);
                        return PumpResult::Failed;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return PumpResult::Failed,
            }
        }
        if self.handshake.is_done() {
            // Our last message went out before the client could finish; nothing
            // we would still write (session tickets) matters to it.
            return PumpResult::Done;
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        }
        self.handshake.write_tls(&mut self.out);
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return PumpResult::Failed,
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return PumpResult::Failed,
            }
        }
        if self.handshake.is_done() && self.written == self.out.len() {
            PumpResult::Done
        } else {
            PumpResult::Continue
        }
    }
}

/// The thread's side: the listener, the table of handshakes in progress.
struct Table {
    poll: mio::Poll,
    listener: mio::net::TcpListener,
    setup: HandshakeSetup,
    /// In the order they started: the front expires first.
    pending: VecDeque<Pending>,
    next_token: usize,
    buf: Vec<u8>,
    shared: Arc<Shared>,
    doorbell: Doorbell,
}

impl Table {
    fn run(&mut self) {
        let mut events = mio::Events::with_capacity(EVENTS);
        let mut finished = Vec::new();
        loop {
            let timeout = self.pending.front().map(|p| {
                (p.started + self.setup.timeout).saturating_duration_since(Instant::now())
            });
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::warn!(error = %e, "handshake thread cannot wait; stopping");
                    return;
                }
            }
            if self.shared.stop.load(Ordering::Acquire) {
                return;
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now, &mut finished),
                    WAKER => {}
                    token => {
                        if let Some(i) = self.pending.iter().position(|p| p.token == token) {
                            self.pump_at(i, &mut finished);
                        }
                    }
                }
            }
            self.expire(now);
            self.publish(&mut finished);
        }
    }

    /// Accepts every waiting connection and gives each a first pump (its
    /// ClientHello may be there already).
    fn accept(&mut self, now: Instant, finished: &mut Vec<HandshakeOutcome>) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    lock(&self.shared.stats).accepted += 1;
                    let _ = stream.set_nodelay(true);
                    if self.pending.len() >= self.setup.max_pending {
                        let victim = self
                            .pending
                            .iter()
                            .position(|p| p.received == 0)
                            .unwrap_or(0);
                        if let Some(mut p) = self.pending.remove(victim) {
                            let _ = self.poll.registry().deregister(&mut p.stream);
                        }
                        lock(&self.shared.stats).evicted += 1;
                    }
                    let token = mio::Token(self.next_token);
                    self.next_token = self.next_token.checked_add(1).unwrap_or(FIRST_STREAM_TOKEN);
                    let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
                    if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
                        tracing::debug!(error = %e, "cannot watch a TCP connection");
                        lock(&self.shared.stats).failed += 1;
                        continue;
                    }
                    let mut params = self.setup.params.clone();
                    if params.udp_address().is_none_or(|a| a.ip().is_unspecified()) {
                        // Tell the client the address it reached us at, with our UDP port.
                        if let (Ok(local), Some(udp)) =
                            (stream.local_addr(), self.setup.params.udp_address())
                        {
                            // `to_canonical`: a dual-stack listener sees IPv4 clients
                            // as ::ffff:a.b.c.d; tell them the plain IPv4 address.
                            let ip = local.ip().to_canonical();
                            params = params.with_udp_address(SocketAddr::new(ip, udp.port()));
                        }
                    }
                    match ServerHandshake::new(self.setup.credentials.clone(), params) {
                        Ok(handshake) => {
                            self.pending.push_back(Pending {
                                stream,
                                token,
                                handshake,
                                started: now,
                                received: 0,
                                out: Vec::new(),
                                written: 0,
                            });
                            // Counted before its first pump, which may send the
                            // server's flight: the client's first datagram can
                            // come right after it and must find a handshake in
                            // flight, or it is not kept for the session.
                            self.shared
                                .in_flight
                                .store(self.pending.len(), Ordering::Release);
                            self.pump_at(self.pending.len() - 1, finished);
                        }
                        Err(e) => {
                            let _ = self.poll.registry().deregister(&mut stream);
                            tracing::warn!(error = %e, %peer, "cannot start handshake");
                            lock(&self.shared.stats).failed += 1;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors and the like: try again next time.
                    tracing::debug!(error = %e, "accept failed");
                    break;
                }
            }
        }
    }

    /// Advances handshake `i`; a finished one goes to `finished`.
    fn pump_at(&mut self, i: usize, finished: &mut Vec<HandshakeOutcome>) {
        let result = self.pending[i].pump(&mut self.buf);
        if matches!(result, PumpResult::Continue) {
            return;
        }
        let mut p = self.pending.remove(i).expect("index in range");
        let _ = self.poll.registry().deregister(&mut p.stream);
        match (result, p.handshake.take_outcome()) {
            (PumpResult::Done, Some(outcome)) => finished.push(outcome),
            _ => lock(&self.shared.stats).failed += 1,
        }
    }

    /// Drops handshakes past their timeout.
    fn expire(&mut self, now: Instant) {
        let timeout = self.setup.timeout;
        let registry = self.poll.registry();
        let mut timed_out = 0;
        self.pending.retain_mut(|p| {
            let alive = now < p.started + timeout;
            if !alive {
                let _ = registry.deregister(&mut p.stream);
                timed_out += 1;
            }
            alive
        });
        if timed_out > 0 {
            lock(&self.shared.stats).timed_out += timed_out;
        }
    }

    /// Hands the finished sessions over (dropping those beyond the bound:
    /// the game thread is not servicing), publishes the count in progress,
    /// and rings the doorbell if it handed anything over.
    fn publish(&mut self, finished: &mut Vec<HandshakeOutcome>) {
        if !finished.is_empty() {
            let mut dropped = 0;
            {
                let mut queue = lock(&self.shared.finished);
                for outcome in finished.drain(..) {
                    if queue.len() < self.setup.max_pending {
                        queue.push_back(outcome);
                    } else {
                        dropped += 1;
                    }
                }
            }
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    "finished sessions dropped: the server has not serviced for a while"
                );
                lock(&self.shared.stats).failed += dropped;
            }
            // Before the count in progress drops: a datagram of one of these
            // sessions is kept until the server takes them.
            self.shared.has_finished.store(true, Ordering::Release);
            self.shared
                .in_flight
                .store(self.pending.len(), Ordering::Release);
            self.doorbell.ring();
        } else {
            self.shared
                .in_flight
                .store(self.pending.len(), Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_doorbell_rings_a_wildcard_server_on_loopback() {
        assert_eq!(
            ring_address("0.0.0.0".parse().unwrap()),
            IpAddr::from(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            ring_address("::".parse().unwrap()),
            IpAddr::from(Ipv6Addr::LOCALHOST)
        );
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(ring_address(ip), ip);
    }

    #[test]
    fn a_ring_is_an_empty_datagram_to_the_server() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let bound = server.local_addr().unwrap();
        let wildcard = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), bound.port());
        Doorbell::new(wildcard).ring();
        let mut buf = [0u8; 16];
        let (n, _) = server.recv_from(&mut buf).expect("the ring");
        assert_eq!(n, 0);
    }
}
