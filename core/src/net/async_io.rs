//! The UDP side of the Tokio driver: [`AsyncUdp`], the socket registered with
//! Tokio; non-blocking receive and send, every receive through Tokio's
//! `try_io` so its readiness tracking stays exact; on Linux the batched
//! system calls of `net::batch` (`recvmmsg`, `sendmmsg`, GSO, GRO); what
//! the socket refused when full, kept and sent first once it has room; and
//! the optional link conditioners that simulate a bad network on a real
//! socket.
//!
//! [`UdpPath`] lives inside the driver's lock; the socket does not (awaiting its
//! readiness needs no lock), so every method takes the socket as an argument.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

#[cfg(unix)]
use tokio::io::{unix::AsyncFd, Interest};

#[cfg(target_os = "linux")]
use crate::net::batch;
#[cfg(target_os = "linux")]
use crate::net::io::{account, commit_to_batch, flush_batch, SINGLE_READS};
use crate::net::io::{Conditioned as Simulated, IoStats, LinkSimulation};
use crate::net::socket::SocketConfig;
use crate::packet::MAX_DATAGRAM_BYTES;

/// Most datagrams moved from the socket into the incoming conditioner per
/// receive call, so a flood cannot keep one call busy forever.
const MAX_CONDITIONED_READS_PER_CALL: usize = 1024;

/// How long [`AsyncUdp::writable`] waits when it cannot register for
/// writability (milliseconds).
#[cfg(unix)]
const WRITABLE_FALLBACK_WAIT_MS: u64 = 1;

/// The driver's UDP socket, registered with Tokio's reactor.
///
/// On Unix it is registered for readability only. A UDP socket becomes
/// writable again after every datagram it sends, and with the edge-triggered
/// readiness Tokio uses (epoll, kqueue) a registration that includes
/// writability is woken for that after nearly every send: one more return
/// from the reactor's wait, and one more turn of the runtime, per datagram
/// sent, for a readiness nobody waits on. The driver sends without asking
/// (a send that would block keeps its datagram, see [`UdpPath`]), so only the
/// rare wait for writability needs it: [`AsyncUdp::writable`] registers a
/// duplicate of the descriptor for writability for the length of that wait.
/// Elsewhere it is a `tokio::net::UdpSocket`.
#[derive(Debug)]
pub(crate) struct AsyncUdp {
    #[cfg(unix)]
    io: AsyncFd<std::net::UdpSocket>,
    #[cfg(not(unix))]
    io: tokio::net::UdpSocket,
    /// The only peer, once the socket is connected to it (a client).
    connected: Option<SocketAddr>,
}

impl AsyncUdp {
    /// Registers a non-blocking socket with the current runtime's reactor.
    /// `connected`: the peer the socket is already connected to (a client's
    /// server), whose datagrams then go out with `send` and come in with
    /// `recv`, which skip the address handling of `sendto` and `recvfrom`
    /// (and the route lookup of every `sendto`).
    pub fn new(socket: std::net::UdpSocket, connected: Option<SocketAddr>) -> io::Result<Self> {
        #[cfg(unix)]
        let io = register(socket, Interest::READABLE)?;
        #[cfg(not(unix))]
        let io = tokio::net::UdpSocket::from_std(socket)?;
        Ok(Self { io, connected })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        #[cfg(unix)]
        return self.io.get_ref().local_addr();
        #[cfg(not(unix))]
        return self.io.local_addr();
    }

    /// Receives a datagram if one is waiting (`WouldBlock` otherwise, which
    /// also clears the readiness [`AsyncUdp::readable`] waits for).
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        #[cfg(unix)]
        return match self.connected {
            Some(peer) => self
                .io
                .try_io(Interest::READABLE, |socket| socket.recv(buf))
                .map(|n| (n, peer)),
            None => self
                .io
                .try_io(Interest::READABLE, |socket| socket.recv_from(buf)),
        };
        #[cfg(not(unix))]
        return match self.connected {
            Some(peer) => self.io.try_recv(buf).map(|n| (n, peer)),
            None => self.io.try_recv_from(buf),
        };
    }

    /// Runs a receive `f` on the socket through Tokio's `try_io`: a
    /// `WouldBlock` from `f` clears the readiness [`AsyncUdp::readable`] waits
    /// for, and `f` is not called while the socket is known to be empty.
    #[cfg(target_os = "linux")]
    fn try_read<R>(&self, f: impl FnOnce(&std::net::UdpSocket) -> io::Result<R>) -> io::Result<R> {
        self.io.try_io(Interest::READABLE, f)
    }

    /// Sends a datagram if the socket has room (`WouldBlock` otherwise).
    pub fn try_send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
        #[cfg(unix)]
        return match self.connected {
            Some(peer) if peer == to => self.io.get_ref().send(datagram),
            _ => self.io.get_ref().send_to(datagram, to),
        };
        #[cfg(not(unix))]
        return match self.connected {
            Some(peer) if peer == to => self.io.try_send(datagram),
            _ => self.io.try_send_to(datagram, to),
        };
    }

    /// Waits until a datagram may be waiting (until `try_recv_from` may
    /// succeed).
    pub async fn readable(&self) -> io::Result<()> {
        #[cfg(unix)]
        self.io.readable().await?.retain_ready();
        #[cfg(not(unix))]
        self.io.readable().await?;
        Ok(())
    }

    /// Waits until the socket has room for a datagram. Rare (the socket's
    /// send buffer was full): on Unix a duplicate of the descriptor is
    /// registered for writability for as long as this waits (registering
    /// reports a socket that is writable already). If that cannot be done
    /// (out of descriptors), it waits [`WRITABLE_FALLBACK_WAIT_MS`] instead:
    /// the caller tries again either way.
    pub async fn writable(&self) -> io::Result<()> {
        #[cfg(unix)]
        {
            match self
                .io
                .get_ref()
                .try_clone()
                .and_then(|dup| register(dup, Interest::WRITABLE))
            {
                Ok(probe) => probe.writable().await?.retain_ready(),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot wait for writability; sleeping instead");
                    let wait = std::time::Duration::from_millis(WRITABLE_FALLBACK_WAIT_MS);
                    tokio::time::sleep(wait).await;
                }
            }
        }
        #[cfg(not(unix))]
        self.io.writable().await?;
        Ok(())
    }
}

/// Registers `socket` with the current runtime's reactor for `interest`.
///
/// Tokio 1.5x deprecates the safe constructor in favour of an `unsafe` one
/// (this crate forbids `unsafe`) because an arbitrary `T: AsRawFd` could
/// close or change its descriptor while registered. A `std::net::UdpSocket`
/// owns its descriptor, which stays open and the same until the socket is
/// dropped, and the `AsyncFd` owns the socket and never hands it out mutably:
/// the requirement of the `unsafe` constructor holds by construction.
#[cfg(unix)]
#[allow(deprecated)]
fn register(
    socket: std::net::UdpSocket,
    interest: Interest,
) -> io::Result<AsyncFd<std::net::UdpSocket>> {
    AsyncFd::with_interest(socket, interest)
}

/// Errors a UDP socket reports for earlier datagrams (ICMP port unreachable,
/// a reset on Windows), which say nothing about the socket itself.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// Everything of the UDP path that needs the driver's lock (see the module docs).
#[derive(Debug)]
pub(crate) struct UdpPath {
    outgoing: Option<Simulated>,
    incoming: Option<Simulated>,
    /// Datagrams received in batches (Linux, unless turned off).
    #[cfg(target_os = "linux")]
    recv_batch: Option<batch::RecvBatch>,
    /// Datagrams queued for one `sendmmsg` (Linux, unless turned off); what
    /// a full socket refused stays queued in it.
    #[cfg(target_os = "linux")]
    send_batch: Option<batch::SendBatch>,
    /// One datagram in or out, where there is no batch.
    buf: Vec<u8>,
    /// Without a send batch: a datagram the socket refused with "would
    /// block", sent before anything else.
    stalled: Option<(SocketAddr, usize)>,
    stalled_buf: Vec<u8>,
    /// The send batch's last flush found the socket full.
    blocked: bool,
    stats: IoStats,
}

impl UdpPath {
    /// A path for `socket` with the given link simulation. On Linux with
    /// `config.batching` it receives with `recvmmsg` and sends with
    /// `sendmmsg`, with GSO and GRO as `config` asks and the kernel allows;
    /// `max_datagram` is the transport's datagram limit (longer datagrams are
    /// dropped on receipt).
    pub fn new(
        socket: &AsyncUdp,
        sim: &LinkSimulation,
        config: &SocketConfig,
        max_datagram: usize,
    ) -> io::Result<Self> {
        #[cfg(target_os = "linux")]
        let (recv_batch, send_batch) = if config.batching {
            let raw = socket.io.get_ref();
            let gso = config.gso && batch::gso_supported(raw);
            let gro = config.gro && batch::enable_gro(raw);
            let mut send = batch::SendBatch::new(max_datagram, gso);
            send.keep_when_blocked();
            if let Some(peer) = socket.connected {
                send.set_connected(peer);
            }
            (Some(batch::RecvBatch::new(max_datagram, gro)), Some(send))
        } else {
            (None, None)
        };
        #[cfg(not(target_os = "linux"))]
        let _ = (socket, config, max_datagram);
        let mut path = Self {
            outgoing: None,
            incoming: None,
            #[cfg(target_os = "linux")]
            recv_batch,
            #[cfg(target_os = "linux")]
            send_batch,
            buf: vec![0; MAX_DATAGRAM_BYTES],
            stalled: None,
            stalled_buf: vec![0; MAX_DATAGRAM_BYTES],
            blocked: false,
            stats: IoStats::default(),
        };
        path.set_simulation(sim)?;
        Ok(path)
    }

    /// Replaces the link simulation. A direction that stays simulated keeps the
    /// datagrams it holds; a direction no longer simulated drops them.
    pub fn set_simulation(&mut self, sim: &LinkSimulation) -> io::Result<()> {
        let seed = fastrand::u64(..);
        Simulated::reconfigure(&mut self.outgoing, sim.outgoing.clone(), seed)?;
        Simulated::reconfigure(&mut self.incoming, sim.incoming.clone(), seed ^ 1)
    }

    /// Whether datagrams wait for the socket to become writable.
    pub fn is_blocked(&self) -> bool {
        self.blocked || self.stalled.is_some()
    }

    /// System call counters, and whether GSO and GRO are in use.
    pub fn stats(&self) -> IoStats {
        #[allow(unused_mut)]
        let mut stats = self.stats;
        #[cfg(target_os = "linux")]
        {
            stats.gso = self.send_batch.as_ref().is_some_and(batch::SendBatch::gso);
            stats.gro = self.recv_batch.as_ref().is_some_and(batch::RecvBatch::gro);
        }
        stats
    }

    /// Turns UDP GRO on for `socket` where the kernel has it and the path
    /// batches its receives (Linux, `SocketConfig::batching`); returns
    /// whether GRO is now on. Receives after the call take runs.
    pub fn enable_gro(&mut self, socket: &AsyncUdp) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(b) = &mut self.recv_batch {
            // Every read holds the driver's lock, as this call does: no read
            // sees the socket's new setting with the old batch.
            return b.enable_gro(socket.io.get_ref());
        }
        let _ = socket;
        false
    }

    /// Counts a wait for readiness.
    pub fn count_wait(&mut self) {
        self.stats.waits += 1;
    }

    /// Receives without blocking, handing each datagram to `deliver` (through
    /// the incoming conditioner, if any, which hands over those whose time has
    /// come), until the socket is empty, `budget` datagrams were read, or
    /// `deliver` returns `false` ("stop reading": the datagrams a batch
    /// already took are still all delivered).
    pub fn receive(
        &mut self,
        socket: &AsyncUdp,
        now: Instant,
        budget: usize,
        mut deliver: impl FnMut(SocketAddr, &mut [u8]) -> bool,
    ) -> io::Result<()> {
        let Self {
            incoming,
            buf,
            stats,
            #[cfg(target_os = "linux")]
            recv_batch,
            ..
        } = self;
        #[cfg(target_os = "linux")]
        let batch = recv_batch.as_mut();
        #[cfg(not(target_os = "linux"))]
        let batch = None;
        let Some(sim) = incoming else {
            return read(socket, batch, buf, stats, budget, deliver);
        };
        let limit = budget.min(MAX_CONDITIONED_READS_PER_CALL);
        read(socket, batch, buf, stats, limit, |from, datagram| {
            sim.push(now, from, datagram);
            true
        })?;
        for _ in 0..budget {
            let Some((from, n)) = sim.pop(now, buf) else {
                break;
            };
            if !deliver(from, &mut buf[..n]) {
                break;
            }
        }
        Ok(())
    }

    /// Where the next outgoing datagram is written (at least the datagram
    /// limit long), or `None` while the socket is full: send nothing until a
    /// [`UdpPath::flush`] succeeds. [`UdpPath::commit`] sends or queues it.
    pub fn send_slot(&mut self, socket: &AsyncUdp) -> Option<&mut [u8]> {
        if self.is_blocked() {
            return None;
        }
        #[cfg(target_os = "linux")]
        if let Some(b) = &mut self.send_batch {
            if b.is_full() {
                let r = b.flush(socket.io.get_ref());
                account(&mut self.stats, r);
                if r.blocked {
                    self.blocked = true;
                    return None;
                }
            }
            return Some(b.slot());
        }
        let _ = socket;
        Some(&mut self.buf)
    }

    /// Sends (or queues in the batch, or hands to the outgoing conditioner)
    /// the `len` bytes written at [`UdpPath::send_slot`] for `to`. Without a
    /// batch a datagram the socket refuses is kept, and [`UdpPath::is_blocked`]
    /// says so.
    pub fn commit(&mut self, socket: &AsyncUdp, now: Instant, to: SocketAddr, len: usize) {
        #[cfg(target_os = "linux")]
        if let Some(b) = &mut self.send_batch {
            commit_to_batch(b, self.outgoing.as_mut(), now, to, len);
            return;
        }
        match &mut self.outgoing {
            Some(sim) => sim.push(now, to, &self.buf[..len]),
            None => {
                let Self {
                    buf,
                    stalled,
                    stalled_buf,
                    stats,
                    ..
                } = self;
                send_one(socket, stats, stalled, stalled_buf, to, &buf[..len]);
            }
        }
    }

    /// Sends what waits: the datagrams a full socket refused, those queued
    /// in the batch, and the conditioned ones whose time has come. Returns
    /// `false` while the socket would block (what did not go is kept).
    #[inline]
    pub fn flush(&mut self, socket: &AsyncUdp, now: Instant) -> bool {
        // Inline, the common "nothing waits" case costs a few instructions
        // (a transmit flushes first and last, and most find nothing).
        if self.outgoing.is_none() && !self.is_blocked() && self.queue_is_empty() {
            return true;
        }
        self.flush_waiting(socket, now)
    }

    /// Whether no datagram waits in the send batch.
    #[inline]
    fn queue_is_empty(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(b) = &self.send_batch {
            return b.is_empty();
        }
        true
    }

    /// [`UdpPath::flush`] when something may wait.
    #[inline(never)]
    fn flush_waiting(&mut self, socket: &AsyncUdp, now: Instant) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(b) = &mut self.send_batch {
            let raw = socket.io.get_ref();
            let sent = flush_batch(b, self.outgoing.as_mut(), raw, now, &mut self.stats);
            self.blocked = !sent;
            return sent;
        }
        let Self {
            outgoing,
            buf,
            stalled,
            stalled_buf,
            stats,
            ..
        } = self;
        if let Some((to, n)) = *stalled {
            *stalled = None;
            // The kept bytes move to `buf`, which `send_one` may keep again.
            buf[..n].copy_from_slice(&stalled_buf[..n]);
            if !send_one(socket, stats, stalled, stalled_buf, to, &buf[..n]) {
                return false;
            }
        }
        while let Some(sim) = outgoing {
            let Some((to, n)) = sim.pop(now, buf) else {
                break;
            };
            if !send_one(socket, stats, stalled, stalled_buf, to, &buf[..n]) {
                return false;
            }
        }
        true
    }

    /// The next instant a conditioned datagram is due, either way.
    pub fn next_deadline(&self) -> Option<Instant> {
        [&self.outgoing, &self.incoming]
            .into_iter()
            .flatten()
            .filter_map(Simulated::next_delivery)
            .min()
    }
}

/// Sends one datagram with `sendto` (`send` to a connected client's server).
/// Returns `false` when the socket would block: the datagram is then kept in
/// `stalled`. Other errors (ICMP unreachable and the like) drop it.
fn send_one(
    socket: &AsyncUdp,
    stats: &mut IoStats,
    stalled: &mut Option<(SocketAddr, usize)>,
    stalled_buf: &mut [u8],
    to: SocketAddr,
    datagram: &[u8],
) -> bool {
    stats.send_calls += 1;
    match socket.try_send_to(datagram, to) {
        Ok(_) => {
            stats.datagrams_sent += 1;
            true
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            stalled_buf[..datagram.len()].copy_from_slice(datagram);
            *stalled = Some((to, datagram.len()));
            false
        }
        Err(e) => {
            stats.send_errors += 1;
            tracing::debug!(error = %e, %to, "UDP send failed");
            true
        }
    }
}

/// Counts a receive call that was made (Tokio skips the call while it knows
/// the socket is empty).
fn count<R>(stats: &mut IoStats, r: R) -> R {
    stats.recv_calls += 1;
    r
}

/// Reads the socket without blocking (see [`UdpPath::receive`]): one
/// `recvfrom` per datagram without a batch; with one (Linux), single reads
/// first (an empty socket and a lone datagram cost half a `recvmmsg`), then
/// `recvmmsg` once a third datagram shows a burst, as the game-loop drivers
/// do. Every receive goes through Tokio's `try_io`, so an empty socket also
/// clears the readiness the driver waits for.
fn read(
    socket: &AsyncUdp,
    #[cfg(target_os = "linux")] batch: Option<&mut batch::RecvBatch>,
    #[cfg(not(target_os = "linux"))] batch: Option<()>,
    buf: &mut [u8],
    stats: &mut IoStats,
    budget: usize,
    mut deliver: impl FnMut(SocketAddr, &mut [u8]) -> bool,
) -> io::Result<()> {
    let mut total = 0;
    let result = read_into(socket, batch, buf, stats, budget, &mut total, &mut deliver);
    stats.datagrams_received += total as u64;
    result
}

/// [`read`], counting the datagrams it took in `total`.
fn read_into(
    socket: &AsyncUdp,
    #[cfg(target_os = "linux")] mut batch: Option<&mut batch::RecvBatch>,
    #[cfg(not(target_os = "linux"))] _batch: Option<()>,
    buf: &mut [u8],
    stats: &mut IoStats,
    budget: usize,
    total: &mut usize,
    deliver: &mut impl FnMut(SocketAddr, &mut [u8]) -> bool,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    let single_reads = match batch {
        Some(_) => SINGLE_READS.min(budget),
        None => budget,
    };
    #[cfg(not(target_os = "linux"))]
    let single_reads = budget;
    while *total < single_reads {
        // With GRO only a `recvmsg` with its control message tells a run
        // from one datagram: the batch's single read.
        #[cfg(target_os = "linux")]
        if let Some(b) = batch.as_deref_mut().filter(|b| b.gro()) {
            let connected = socket.connected;
            match socket.try_read(|raw| match count(stats, b.recv_one_held(raw, connected)) {
                Ok(None) => Err(io::ErrorKind::WouldBlock.into()),
                Ok(Some(kept)) => Ok(kept),
                Err(e) => Err(e),
            }) {
                Ok(false) => *total += 1,
                Ok(true) => {
                    if let Some(run) = b.take_held() {
                        *total += run.count();
                        if !run.for_each(&mut *deliver) {
                            return Ok(());
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if is_transient(&e) => {}
                Err(e) => return Err(e),
            }
            continue;
        }
        match count(stats, socket.try_recv_from(buf)) {
            Ok((n, from)) => {
                *total += 1;
                if !deliver(from, &mut buf[..n]) {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if is_transient(&e) => {}
            Err(e) => return Err(e),
        }
    }
    #[cfg(target_os = "linux")]
    if let Some(b) = batch {
        while *total < budget {
            let n = match socket.try_read(|raw| match count(stats, b.recv(raw)) {
                Ok(0) => Err(io::ErrorKind::WouldBlock.into()),
                other => other,
            }) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if is_transient(&e) => continue,
                Err(e) => return Err(e),
            };
            let mut read_on = true;
            for i in 0..n {
                match b.get(i) {
                    Some(run) => {
                        *total += run.count();
                        read_on &= run.for_each(&mut *deliver);
                    }
                    None => *total += 1,
                }
            }
            // A short batch: the socket was empty when the call returned
            // (Tokio's readiness stays set: the next read finds out).
            if !read_on || n < batch::RECV_BATCH {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    fn bound() -> AsyncUdp {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_nonblocking(true).expect("non-blocking");
        AsyncUdp::new(socket, None).expect("register")
    }

    async fn within<F: std::future::Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(5), f)
            .await
            .expect("ready within 5 s")
    }

    #[test]
    fn a_connected_socket_talks_to_its_peer_only() {
        runtime().block_on(async {
            let (server, stranger) = (bound(), bound());
            let server_addr = server.local_addr().unwrap();
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            socket.set_nonblocking(true).expect("non-blocking");
            socket.connect(server_addr).expect("connect");
            let client = AsyncUdp::new(socket, Some(server_addr)).expect("register");
            let client_addr = client.local_addr().unwrap();
            let mut buf = [0u8; 64];

            // To the peer: `send`, and it arrives from the client's address.
            assert_eq!(client.try_send_to(b"ping", server_addr).unwrap(), 4);
            within(server.readable()).await.expect("readable");
            assert_eq!(
                server.try_recv_from(&mut buf).expect("the ping"),
                (4, client_addr)
            );

            // A stranger's datagram is dropped by the kernel; the peer's
            // comes in, named by the peer's address.
            stranger.try_send_to(b"spoof", client_addr).unwrap();
            server.try_send_to(b"pong!", client_addr).unwrap();
            within(client.readable()).await.expect("readable");
            let (n, from) = client.try_recv_from(&mut buf).expect("the pong");
            assert_eq!((&buf[..n], from), (&b"pong!"[..], server_addr));
            let e = client.try_recv_from(&mut buf).expect_err("nothing else");
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        });
    }

    #[test]
    fn reads_what_arrives_and_waits_for_more() {
        runtime().block_on(async {
            let (a, b) = (bound(), bound());
            let mut buf = [0u8; 64];
            let e = b.try_recv_from(&mut buf).expect_err("nothing yet");
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
            for round in 0..3u8 {
                assert_eq!(
                    a.try_send_to(&[round; 5], b.local_addr().unwrap()).unwrap(),
                    5
                );
                within(b.readable()).await.expect("readable");
                let (n, from) = b.try_recv_from(&mut buf).expect("a datagram");
                assert_eq!(
                    (&buf[..n], from),
                    (&[round; 5][..], a.local_addr().unwrap())
                );
                let e = b.try_recv_from(&mut buf).expect_err("read everything");
                assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
            }
        });
    }

    /// One receive that stops after `stop_after` datagrams, checking their
    /// source; returns how many it handed over.
    fn receive_some(
        path: &mut UdpPath,
        socket: &AsyncUdp,
        from: SocketAddr,
        got: &mut Vec<Vec<u8>>,
        stop_after: usize,
    ) -> usize {
        let before = got.len();
        path.receive(socket, Instant::now(), 1024, |source, d| {
            assert_eq!(source, from);
            got.push(d.to_vec());
            got.len() - before < stop_after
        })
        .expect("receive");
        got.len() - before
    }

    /// A path for `socket` without link simulation, batched or not, for
    /// 1200-byte datagrams.
    fn plain_path(socket: &AsyncUdp, batching: bool) -> UdpPath {
        let config = SocketConfig {
            batching,
            ..SocketConfig::default()
        };
        UdpPath::new(socket, &LinkSimulation::default(), &config, 1200).expect("path")
    }

    /// A burst read through a [`UdpPath`], batched (`recvmmsg` after two
    /// single reads) or not: a receive told to stop early still hands over
    /// what its batch took, the next one reads on, nothing is lost or
    /// reordered, and the batched path needs fewer calls than datagrams.
    #[test]
    fn a_burst_is_read_in_order_across_a_stop() {
        for batching in [true, false] {
            runtime().block_on(async {
                let (tx, rx) = (bound(), bound());
                let to = rx.local_addr().unwrap();
                let mut path = plain_path(&rx, batching);
                let total = 40u8;
                for i in 0..total {
                    tx.try_send_to(&[i; 30], to).unwrap();
                }
                within(rx.readable()).await.expect("readable");
                let from = tx.local_addr().unwrap();
                let mut got = Vec::new();
                let first = receive_some(&mut path, &rx, from, &mut got, 4);
                if batching && cfg!(target_os = "linux") {
                    assert!(first > 4, "the batch taken is handed over whole: {first}");
                } else {
                    assert_eq!(first, 4, "one datagram per call stops where told");
                }
                while got.len() < usize::from(total) {
                    within(rx.readable()).await.expect("readable");
                    receive_some(&mut path, &rx, from, &mut got, usize::MAX);
                }
                let expected: Vec<Vec<u8>> = (0..total).map(|i| vec![i; 30]).collect();
                assert_eq!(got, expected);
                let stats = path.stats();
                assert_eq!(stats.datagrams_received, u64::from(total));
                if batching && cfg!(target_os = "linux") {
                    assert!(stats.recv_calls < 10, "batched: {stats:?}");
                }
            });
        }
    }

    /// Sends through a [`UdpPath`] to a receiver that reads only now and
    /// then, over a socket that refuses datagrams while it holds them (a Unix
    /// datagram pair posing as a connected UDP socket: UDP on loopback drops
    /// at the receiver instead). The path stops taking datagrams while the
    /// socket is full, and after the wait for writability sends what it kept
    /// first: every datagram arrives once, in order, batched or not.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_socket_holds_the_sender_back_and_loses_nothing() {
        for batching in [true, false] {
            runtime().block_on(async {
                let (tx, rx) = std::os::unix::net::UnixDatagram::pair().unwrap();
                rx.set_nonblocking(true).unwrap();
                tx.set_nonblocking(true).unwrap();
                socket2::SockRef::from(&tx).set_send_buffer_size(1).unwrap();
                let peer = SocketAddr::from(([127, 0, 0, 1], 9));
                let tx = std::net::UdpSocket::from(std::os::fd::OwnedFd::from(tx));
                let socket = AsyncUdp::new(tx, Some(peer)).expect("register");
                let mut path = plain_path(&socket, batching);
                let total = 200usize;
                let (mut next, mut got, mut blocked) = (0, Vec::new(), 0);
                let mut buf = [0u8; 2048];
                while got.len() < total {
                    let now = Instant::now();
                    if path.flush(&socket, now) {
                        while next < total {
                            let Some(slot) = path.send_slot(&socket) else {
                                break;
                            };
                            let len = 40 + next % 7;
                            slot[..len].fill(next as u8);
                            path.commit(&socket, now, peer, len);
                            next += 1;
                        }
                        path.flush(&socket, now);
                    }
                    if path.is_blocked() {
                        blocked += 1;
                        assert!(path.send_slot(&socket).is_none(), "held back");
                        // The receiver catches up; the path waits as the
                        // driver does.
                        while let Ok(n) = rx.recv(&mut buf) {
                            got.push(buf[..n].to_vec());
                        }
                        within(socket.writable()).await.expect("writable");
                    } else {
                        while let Ok(n) = rx.recv(&mut buf) {
                            got.push(buf[..n].to_vec());
                        }
                    }
                }
                assert!(blocked > 0, "the socket filled up (batching {batching})");
                let expected: Vec<Vec<u8>> =
                    (0..total).map(|i| vec![i as u8; 40 + i % 7]).collect();
                assert_eq!(
                    got, expected,
                    "every datagram once, in order (batching {batching})"
                );
                let stats = path.stats();
                assert_eq!(stats.datagrams_sent, total as u64);
                assert_eq!(stats.send_errors, 0);
            });
        }
    }

    /// Writability is not part of the socket's registration: each wait
    /// registers a duplicate descriptor, which reports a writable socket at
    /// once and is gone afterwards (so the next wait can register again).
    #[test]
    fn waits_for_writability_on_demand() {
        runtime().block_on(async {
            let (a, b) = (bound(), bound());
            for _ in 0..3 {
                within(a.writable()).await.expect("writable");
            }
            // The socket still works, and is still readable-driven.
            a.try_send_to(b"x", b.local_addr().unwrap()).unwrap();
            within(b.readable()).await.expect("readable");
            assert_eq!(b.try_recv_from(&mut [0u8; 8]).unwrap().0, 1);
        });
    }
}
