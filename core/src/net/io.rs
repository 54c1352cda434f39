//! The UDP side of the game-loop drivers: non-blocking receive and send on one
//! socket, a bounded wait for the next datagram, and the optional link
//! conditioners that simulate a bad network on a real socket.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::conditioner::{LinkConditioner, LinkConfig};
#[cfg(target_os = "linux")]
use crate::net::batch;
use crate::net::socket::SocketConfig;
use crate::packet::MAX_DATAGRAM_BYTES;

/// Link conditioners for both directions of a socket (see [`LinkConfig`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkSimulation {
    /// Applied to every datagram sent.
    pub outgoing: Option<LinkConfig>,
    /// Applied to every datagram received.
    pub incoming: Option<LinkConfig>,
}

/// One conditioned direction of a socket (shared by both drivers). The
/// conditioner may reorder, so each datagram carries its destination or source
/// address in a short prefix.
#[derive(Debug)]
pub(crate) struct Conditioned {
    link: LinkConditioner,
    /// Prefix plus datagram, on the way in and out of `link`.
    scratch: Vec<u8>,
}

/// Waits shorter than this poll between precise sleeps: the readiness queue
/// counts whole milliseconds (not on Linux, which waits with `ppoll`).
#[cfg(not(target_os = "linux"))]
const PRECISE_WAIT_LIMIT: Duration = Duration::from_millis(1);
/// Sleep between two polls of a short wait.
#[cfg(not(target_os = "linux"))]
const PRECISE_WAIT_STEP: Duration = Duration::from_micros(100);

/// Longest blocking part of a wait, in kernel ticks: the kernel's timer wheel
/// fires timeouts of up to 63 ticks on the tick, longer ones up to an eighth
/// late.
#[cfg(target_os = "linux")]
const MAX_COARSE_WAIT_TICKS: u32 = 60;

/// Datagrams read one `recvfrom` at a time before switching to `recvmmsg`
/// (Linux): see [`UdpIo::receive`].
#[cfg(target_os = "linux")]
pub(crate) const SINGLE_READS: usize = 2;

/// Bytes prefixed to a conditioned datagram to carry its address.
const ADDRESS_PREFIX_BYTES: usize = 19;

fn encode_addr(addr: SocketAddr, out: &mut [u8; ADDRESS_PREFIX_BYTES]) {
    match addr {
        SocketAddr::V4(a) => {
            out[0] = 4;
            out[1..5].copy_from_slice(&a.ip().octets());
            out[17..19].copy_from_slice(&a.port().to_be_bytes());
        }
        SocketAddr::V6(a) => {
            out[0] = 6;
            out[1..17].copy_from_slice(&a.ip().octets());
            out[17..19].copy_from_slice(&a.port().to_be_bytes());
        }
    }
}

fn decode_addr(b: &[u8]) -> SocketAddr {
    let port = u16::from_be_bytes([b[17], b[18]]);
    if b[0] == 4 {
        SocketAddr::from(([b[1], b[2], b[3], b[4]], port))
    } else {
        let ip: [u8; 16] = b[1..17].try_into().expect("16 bytes");
        SocketAddr::from((ip, port))
    }
}

impl Conditioned {
    pub(crate) fn new(config: LinkConfig, seed: u64) -> io::Result<Self> {
        let link = LinkConditioner::new(config, seed)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Self {
            link,
            scratch: vec![0; ADDRESS_PREFIX_BYTES + MAX_DATAGRAM_BYTES],
        })
    }

    pub(crate) fn push(&mut self, now: Instant, addr: SocketAddr, datagram: &[u8]) {
        let mut prefix = [0u8; ADDRESS_PREFIX_BYTES];
        encode_addr(addr, &mut prefix);
        self.scratch[..ADDRESS_PREFIX_BYTES].copy_from_slice(&prefix);
        self.scratch[ADDRESS_PREFIX_BYTES..ADDRESS_PREFIX_BYTES + datagram.len()]
            .copy_from_slice(datagram);
        self.link
            .push(now, &self.scratch[..ADDRESS_PREFIX_BYTES + datagram.len()]);
    }

    /// Moves the next due datagram into `out`; returns its address and length.
    pub(crate) fn pop(&mut self, now: Instant, out: &mut [u8]) -> Option<(SocketAddr, usize)> {
        let n = self.link.poll(now, &mut self.scratch)?;
        let addr = decode_addr(&self.scratch);
        let len = n - ADDRESS_PREFIX_BYTES;
        out[..len].copy_from_slice(&self.scratch[ADDRESS_PREFIX_BYTES..n]);
        Some((addr, len))
    }

    /// When the next datagram is due.
    pub(crate) fn next_delivery(&self) -> Option<Instant> {
        self.link.next_delivery()
    }

    /// Applies a new configuration to `slot`, building or removing its
    /// conditioner as needed.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn reconfigure(
        slot: &mut Option<Self>,
        config: Option<LinkConfig>,
        seed: u64,
    ) -> io::Result<()> {
        match (slot.as_mut(), config) {
            (Some(s), Some(c)) => s
                .link
                .set_config(c)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e)),
            (None, Some(c)) => {
                *slot = Some(Self::new(c, seed)?);
                Ok(())
            }
            (_, None) => {
                *slot = None;
                Ok(())
            }
        }
    }
}

/// Waits for the UDP socket to become readable without polling it, through
/// an OS readiness queue (kqueue, IOCP through mio) where a duplicate of the
/// socket is registered; waits of under a millisecond poll between short
/// sleeps. On Linux the driver waits with `ppoll` or in the receive itself
/// instead (see [`UdpIo::wait`]).
#[cfg(not(target_os = "linux"))]
struct Readiness {
    poll: mio::Poll,
    events: mio::Events,
    /// Keeps the registered duplicate open.
    _registered: mio::net::UdpSocket,
}

#[cfg(not(target_os = "linux"))]
impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Readiness")
    }
}

#[cfg(not(target_os = "linux"))]
impl Readiness {
    fn new(socket: &UdpSocket) -> io::Result<Self> {
        let poll = mio::Poll::new()?;
        let mut registered = mio::net::UdpSocket::from_std(socket.try_clone()?);
        poll.registry()
            .register(&mut registered, UDP_TOKEN, mio::Interest::READABLE)?;
        Ok(Self {
            poll,
            events: mio::Events::with_capacity(64),
            _registered: registered,
        })
    }

    /// Waits up to `timeout` for the socket to become readable. Spurious
    /// wake-ups are possible (the caller then finds nothing to do).
    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            other => other,
        }
    }
}

/// The UDP socket's token in the readiness queue.
#[cfg(not(target_os = "linux"))]
const UDP_TOKEN: mio::Token = mio::Token(0);

/// Counters of the system calls a driver's socket made (for benchmarks and
/// diagnostics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Receive calls (`recvmmsg` or `recvfrom`), including empty ones.
    pub recv_calls: u64,
    /// Datagrams received.
    pub datagrams_received: u64,
    /// Send calls (`sendmmsg`, `sendto`).
    pub send_calls: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Datagrams the OS refused or dropped on sending (a full socket buffer,
    /// ICMP errors from earlier sends).
    pub send_errors: u64,
    /// Waits for readiness (`ppoll`, `epoll_wait`...).
    pub waits: u64,
    /// Whether sends use UDP segmentation offload (Linux `UDP_SEGMENT`).
    pub gso: bool,
    /// Whether receives take runs of datagrams as one buffer (Linux
    /// `UDP_GRO`).
    pub gro: bool,
}

/// A non-blocking UDP socket with optional link simulation and, on Linux,
/// batched system calls (see `net::batch`).
#[derive(Debug)]
pub(crate) struct UdpIo {
    socket: UdpSocket,
    #[cfg(not(target_os = "linux"))]
    readiness: Readiness,
    outgoing: Option<Conditioned>,
    incoming: Option<Conditioned>,
    /// Datagrams received in batches (Linux, unless turned off).
    #[cfg(target_os = "linux")]
    recv_batch: Option<batch::RecvBatch>,
    /// Datagrams queued for one `sendmmsg` (Linux, unless turned off).
    #[cfg(target_os = "linux")]
    send_batch: Option<batch::SendBatch>,
    /// One datagram in or out, where there is no batch.
    buf: Vec<u8>,
    /// The transport's datagram limit.
    max_datagram: usize,
    /// The only peer, when the socket is connected to it (a client).
    connected: Option<SocketAddr>,
    /// Waits start in a blocking receive (Linux client, see [`UdpIo::wait`]):
    /// the socket is in blocking mode and every other call passes
    /// `MSG_DONTWAIT`.
    #[cfg(target_os = "linux")]
    blocking_wait: bool,
    /// The receive timeout (`SO_RCVTIMEO`) last set on the socket.
    #[cfg(target_os = "linux")]
    recv_timeout: Option<Duration>,
    stats: IoStats,
}

impl UdpIo {
    /// Wraps a bound socket. `max_datagram` is the transport's datagram limit
    /// (longer datagrams are dropped on receipt).
    pub fn new(
        socket: UdpSocket,
        sim: &LinkSimulation,
        config: &SocketConfig,
        max_datagram: usize,
    ) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let seed = fastrand::u64(..);
        #[cfg(target_os = "linux")]
        let (recv_batch, send_batch) = if config.batching {
            let gso = config.gso && batch::gso_supported(&socket);
            let gro = config.gro && batch::enable_gro(&socket);
            (
                Some(batch::RecvBatch::new(max_datagram, gro)),
                Some(batch::SendBatch::new(max_datagram, gso)),
            )
        } else {
            (None, None)
        };
        #[cfg(not(target_os = "linux"))]
        let _ = config;
        Ok(Self {
            #[cfg(not(target_os = "linux"))]
            readiness: Readiness::new(&socket)?,
            socket,
            outgoing: sim
                .outgoing
                .clone()
                .map(|c| Conditioned::new(c, seed))
                .transpose()?,
            incoming: sim
                .incoming
                .clone()
                .map(|c| Conditioned::new(c, seed ^ 1))
                .transpose()?,
            #[cfg(target_os = "linux")]
            recv_batch,
            #[cfg(target_os = "linux")]
            send_batch,
            buf: vec![0; max_datagram],
            max_datagram,
            connected: None,
            #[cfg(target_os = "linux")]
            blocking_wait: false,
            #[cfg(target_os = "linux")]
            recv_timeout: None,
            stats: IoStats::default(),
        })
    }

    /// Connects the socket to its only peer (a client's server): the kernel
    /// then drops datagrams from other sources and sends skip the route
    /// lookup.
    pub fn connect(&mut self, peer: SocketAddr) -> io::Result<()> {
        self.socket.connect(peer)?;
        self.connected = Some(peer);
        #[cfg(target_os = "linux")]
        if let Some(b) = &mut self.send_batch {
            b.set_connected(peer);
        }
        self.wait_in_receive()
    }

    /// Lets waits sleep in the receive itself (Linux, batching on): the
    /// socket becomes blocking, every other call on it passes
    /// `MSG_DONTWAIT`, and a datagram that comes during a wait costs one
    /// system call, as with a blocking `recv`. Elsewhere waits keep their
    /// portable path.
    pub fn wait_in_receive(&mut self) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if self.send_batch.is_some() && self.recv_batch.is_some() {
            self.socket.set_nonblocking(false)?;
            self.blocking_wait = true;
        }
        Ok(())
    }

    /// Someone else (the service thread) set the socket's receive timeout:
    /// the next blocking wait sets its own again.
    pub fn forget_recv_timeout(&mut self) {
        #[cfg(target_os = "linux")]
        {
            self.recv_timeout = None;
        }
    }

    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// System call counters.
    pub fn stats(&self) -> IoStats {
        IoStats {
            gso: self.gso(),
            gro: self.gro(),
            ..self.stats
        }
    }

    /// The transport's datagram limit.
    #[cfg(target_os = "linux")]
    pub fn max_datagram(&self) -> usize {
        self.max_datagram
    }

    /// Turns GRO on for a socket made without it (see
    /// [`SocketConfig::gro`]): asks the kernel, then swaps in receive slots
    /// that hold a run each. Returns whether GRO is on afterwards (`false`
    /// without batching, off Linux, or when the kernel refuses). Call it
    /// between service calls, with no service thread running: the thread
    /// picks its way of reading when it starts.
    pub fn enable_gro(&mut self) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(b) = &mut self.recv_batch {
            return b.enable_gro(&self.socket);
        }
        false
    }

    /// Whether receives take runs of datagrams as one buffer (UDP GRO).
    pub fn gro(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(b) = &self.recv_batch {
            return b.gro();
        }
        false
    }

    /// Whether sends use UDP segmentation offload.
    pub fn gso(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(b) = &self.send_batch {
            return b.gso();
        }
        false
    }

    /// Where the next outgoing datagram is written: at least the datagram
    /// limit long. [`UdpIo::commit`] queues it.
    pub fn send_slot(&mut self) -> &mut [u8] {
        #[cfg(target_os = "linux")]
        if let Some(b) = &mut self.send_batch {
            if b.is_full() {
                let r = b.flush(&self.socket);
                account(&mut self.stats, r);
            }
            return b.slot();
        }
        &mut self.buf[..self.max_datagram]
    }

    /// Queues (or hands to the outgoing conditioner) the `len` bytes written
    /// at [`UdpIo::send_slot`] for `to`. They leave at the next
    /// [`UdpIo::flush`] at the latest.
    pub fn commit(&mut self, now: Instant, to: SocketAddr, len: usize) {
        #[cfg(target_os = "linux")]
        if let Some(b) = &mut self.send_batch {
            commit_to_batch(b, self.outgoing.as_mut(), now, to, len);
            return;
        }
        match &mut self.outgoing {
            Some(c) => c.push(now, to, &self.buf[..len]),
            None => {
                let r = send_one(&self.socket, self.connected, &self.buf[..len], to);
                account(&mut self.stats, r);
            }
        }
    }

    /// Sends what is queued and the conditioned datagrams whose time has come.
    #[inline]
    pub fn flush(&mut self, now: Instant) {
        // Inline, the common "nothing to send" case costs a few instructions
        // (a driver flushes after every transmit, most of which send nothing).
        if self.outgoing.is_none() && self.queue_is_empty() {
            return;
        }
        self.flush_queued(now);
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

    /// [`UdpIo::flush`] when something may be queued or conditioned.
    #[inline(never)]
    fn flush_queued(&mut self, now: Instant) {
        #[cfg(target_os = "linux")]
        if let Some(b) = &mut self.send_batch {
            flush_batch(
                b,
                self.outgoing.as_mut(),
                &self.socket,
                now,
                &mut self.stats,
            );
            return;
        }
        if let Some(c) = &mut self.outgoing {
            while let Some((to, n)) = c.pop(now, &mut self.buf) {
                let r = send_one(&self.socket, self.connected, &self.buf[..n], to);
                account(&mut self.stats, r);
            }
        }
    }

    /// The next instant a conditioned datagram is due, either way.
    pub fn next_deadline(&self) -> Option<Instant> {
        [&self.outgoing, &self.incoming]
            .into_iter()
            .flatten()
            .filter_map(Conditioned::next_delivery)
            .min()
    }

    /// Receives the datagrams queued on the socket without blocking, handing
    /// each to `deliver` (or to the incoming conditioner, which releases them
    /// through [`UdpIo::pop_incoming`]), until the socket is empty or
    /// `deliver` returns `false` ("stop reading"; the datagrams a batch
    /// already took are still all delivered). Returns how many were read and
    /// whether the socket was proven empty.
    pub fn receive(
        &mut self,
        now: Instant,
        mut deliver: impl FnMut(SocketAddr, &mut [u8]) -> bool,
    ) -> io::Result<Received> {
        let mut total = 0;
        // Hands a datagram over; whether to read on.
        let mut hand =
            |incoming: &mut Option<Conditioned>, from, datagram: &mut [u8]| match incoming {
                None => deliver(from, datagram),
                Some(c) => {
                    c.push(now, from, datagram);
                    true
                }
            };
        #[cfg(target_os = "linux")]
        if let Some(b) = &mut self.recv_batch {
            let mut read_on = true;
            // What the last wait received first.
            if let Some(run) = b.take_held() {
                total += run.count();
                read_on = run.for_each(|from, d| hand(&mut self.incoming, from, d));
            }
            // Single reads first: an empty socket (a spinning or freshly
            // woken receiver's usual case) and a lone datagram cost a plain
            // `recvfrom` each, about half a `recvmmsg`; a third datagram in a
            // row means a burst, which `recvmmsg` then takes in batches.
            while read_on && total < SINGLE_READS {
                self.stats.recv_calls += 1;
                match b.recv_one(&self.socket, self.connected) {
                    Ok(None) => {
                        self.stats.datagrams_received += total as u64;
                        return Ok(Received::drained(total));
                    }
                    // ICMP errors for earlier sends surface here.
                    Err(e) if is_transient(&e) => continue,
                    Err(e) => return Err(e),
                    Ok(Some(None)) => total += 1,
                    Ok(Some(Some(run))) => {
                        total += run.count();
                        read_on = run.for_each(|from, d| hand(&mut self.incoming, from, d));
                    }
                }
            }
            while read_on {
                self.stats.recv_calls += 1;
                let n = b.recv(&self.socket)?;
                for i in 0..n {
                    match b.get(i) {
                        Some(run) => {
                            total += run.count();
                            read_on &= run.for_each(|from, d| hand(&mut self.incoming, from, d));
                        }
                        None => total += 1,
                    }
                }
                // A short batch: the socket was empty when the call returned.
                if n < batch::RECV_BATCH {
                    self.stats.datagrams_received += total as u64;
                    return Ok(Received::drained(total));
                }
            }
            self.stats.datagrams_received += total as u64;
            return Ok(Received {
                datagrams: total,
                drained: false,
            });
        }
        loop {
            self.stats.recv_calls += 1;
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    total += 1;
                    if !hand(&mut self.incoming, from, &mut self.buf[..n]) {
                        self.stats.datagrams_received += total as u64;
                        return Ok(Received {
                            datagrams: total,
                            drained: false,
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP errors from earlier sends surface here on some systems.
                Err(e) if is_transient(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        self.stats.datagrams_received += total as u64;
        Ok(Received::drained(total))
    }

    /// A datagram read by someone else (the service thread). Returns whether it
    /// should be handled now; `false` means the incoming conditioner holds it
    /// until [`UdpIo::pop_incoming`] releases it.
    pub fn incoming(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) -> bool {
        match &mut self.incoming {
            None => true,
            Some(c) => {
                c.push(now, from, datagram);
                false
            }
        }
    }

    /// The next datagram the incoming conditioner releases, in `buf`.
    pub fn pop_incoming(&mut self, now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        self.incoming.as_mut()?.pop(now, buf)
    }

    /// Blocks until a datagram is readable or `timeout` passes (about:
    /// spurious wake-ups are possible).
    ///
    /// On Linux, once [`UdpIo::wait_in_receive`] allowed it (a client, and a
    /// server, whose handshakes run on a thread of their own), a wait first
    /// sleeps in a blocking `recvfrom` whose timeout (`SO_RCVTIMEO`, counted in
    /// kernel ticks) ends at least a tick before `timeout`: a datagram that
    /// comes then is received by the wait itself, one system call where
    /// `ppoll` and a receive take two (and `ppoll`'s high-resolution timer
    /// costs a reprogramming when the datagram cancels it). The rest of the
    /// wait, if the datagram has not come, is a precise `ppoll`, so the wait
    /// never ends late.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        if timeout.is_zero() {
            return Ok(());
        }
        self.stats.waits += 1;
        #[cfg(target_os = "linux")]
        {
            let mut timeout = timeout;
            if let Some(coarse) = self.coarse_wait(timeout) {
                let started = Instant::now();
                if self.recv_timeout != Some(coarse) {
                    self.socket.set_read_timeout(Some(coarse))?;
                    self.recv_timeout = Some(coarse);
                }
                let b = self
                    .recv_batch
                    .as_mut()
                    .expect("blocking waits receive in the batch");
                if b.recv_one_blocking(&self.socket, self.connected)? {
                    return Ok(());
                }
                timeout = timeout.saturating_sub(started.elapsed());
                if timeout.is_zero() {
                    return Ok(());
                }
            }
            batch::wait_readable(&self.socket, timeout)
        }
        #[cfg(not(target_os = "linux"))]
        {
            if self.readable_now() {
                return Ok(());
            }
            if timeout >= PRECISE_WAIT_LIMIT {
                return self.readiness.wait(timeout);
            }
            let end = Instant::now() + timeout;
            loop {
                let now = Instant::now();
                if now >= end {
                    return Ok(());
                }
                std::thread::sleep((end - now).min(PRECISE_WAIT_STEP));
                if self.readable_now() {
                    return Ok(());
                }
            }
        }
    }

    /// The blocking part of a wait of `timeout` (see [`UdpIo::wait`]): whole
    /// kernel ticks, one fewer than fit (the kernel's timer fires within a
    /// tick of the count it was given), at most [`MAX_COARSE_WAIT_TICKS`];
    /// `None` when blocking waits are off or not even one tick would fit.
    #[cfg(target_os = "linux")]
    fn coarse_wait(&self, timeout: Duration) -> Option<Duration> {
        if !self.blocking_wait {
            return None;
        }
        coarse_part(timeout, batch::kernel_tick()?)
    }

    /// Whether a datagram (or an error to report) is waiting.
    #[cfg(not(target_os = "linux"))]
    fn readable_now(&self) -> bool {
        let mut probe = [0u8; 1];
        match self.socket.peek_from(&mut probe) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            // Windows reports a datagram larger than the probe as an error.
            Err(_) => true,
        }
    }
}

/// The blocking part of a wait of `timeout` with kernel ticks of `tick`:
/// whole ticks, one fewer than fit (a receive timeout of `n` ticks fires
/// within the `n`th tick from now), at most [`MAX_COARSE_WAIT_TICKS`]; `None`
/// if not even one tick would fit.
#[cfg(target_os = "linux")]
fn coarse_part(timeout: Duration, tick: Duration) -> Option<Duration> {
    let fit = timeout.as_nanos() / tick.as_nanos().max(1);
    let ticks = u32::try_from(fit.checked_sub(1)?)
        .ok()?
        .min(MAX_COARSE_WAIT_TICKS);
    (ticks > 0).then(|| tick * ticks)
}

/// What a [`UdpIo::receive`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Received {
    /// Datagrams read.
    pub datagrams: usize,
    /// Whether the socket was found empty (reading did not stop early).
    pub drained: bool,
}

impl Received {
    fn drained(datagrams: usize) -> Self {
        Self {
            datagrams,
            drained: true,
        }
    }
}

/// What sending a batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FlushReport {
    /// Datagrams handed to the kernel.
    pub sent: usize,
    /// Datagrams dropped: the socket's buffer was full, or the kernel refused
    /// them (ICMP errors from earlier sends surface like this).
    pub failed: usize,
    /// System calls made.
    pub calls: usize,
    /// The socket's buffer was full and the rest of the batch is still
    /// queued (only with `SendBatch::keep_when_blocked`).
    pub blocked: bool,
}

/// Sends one datagram with `sendto` (`send` to the connected peer).
fn send_one(
    socket: &UdpSocket,
    connected: Option<SocketAddr>,
    datagram: &[u8],
    to: SocketAddr,
) -> FlushReport {
    let mut r = FlushReport {
        calls: 1,
        ..FlushReport::default()
    };
    let sent = if connected == Some(to) {
        socket.send(datagram)
    } else {
        socket.send_to(datagram, to)
    };
    match sent {
        Ok(_) => r.sent = 1,
        Err(e) => {
            r.failed = 1;
            if e.kind() != io::ErrorKind::WouldBlock {
                tracing::debug!(error = %e, %to, "UDP send failed");
            }
        }
    }
    r
}

/// Adds what a flush did to the counters.
pub(crate) fn account(stats: &mut IoStats, r: FlushReport) {
    stats.send_calls += r.calls as u64;
    stats.datagrams_sent += r.sent as u64;
    stats.send_errors += r.failed as u64;
}

/// Queues the `len` bytes written at `batch`'s slot for `to`, or hands them
/// to the outgoing conditioner when the link is simulated (both drivers).
/// Always inlined, like the copies it replaced: as calls, this and
/// [`flush_batch`] added about 100 instructions to a game-loop round trip
/// (callgrind, `fastnet-bench probe gameloop`).
#[cfg(target_os = "linux")]
#[inline(always)]
pub(crate) fn commit_to_batch(
    batch: &mut batch::SendBatch,
    outgoing: Option<&mut Conditioned>,
    now: Instant,
    to: SocketAddr,
    len: usize,
) {
    match outgoing {
        Some(c) => c.push(now, to, &batch.slot()[..len]),
        None => batch.commit(to, len),
    }
}

/// Moves the conditioned datagrams due by `now` into `batch` (flushing it
/// whenever it fills), then sends everything it holds, counting into
/// `stats` (both drivers). Returns `false` when a flush found the socket
/// full and the batch kept the rest (`SendBatch::keep_when_blocked`).
#[cfg(target_os = "linux")]
#[inline(always)]
pub(crate) fn flush_batch(
    batch: &mut batch::SendBatch,
    outgoing: Option<&mut Conditioned>,
    socket: &UdpSocket,
    now: Instant,
    stats: &mut IoStats,
) -> bool {
    if let Some(c) = outgoing {
        loop {
            if batch.is_full() {
                let r = batch.flush(socket);
                account(stats, r);
                if r.blocked {
                    return false;
                }
            }
            let Some((to, n)) = c.pop(now, batch.slot()) else {
                break;
            };
            batch.commit(to, n);
        }
    }
    let r = batch.flush(socket);
    account(stats, r);
    !r.blocked
}

/// Errors a UDP socket reports for earlier datagrams (ICMP port unreachable,
/// a reset on Windows), or for one datagram it drops (Windows: a datagram
/// longer than the buffer, `WSAEMSGSIZE`; elsewhere it is truncated and then
/// fails authentication), which say nothing about the socket itself.
fn is_transient(e: &io::Error) -> bool {
    /// `WSAEMSGSIZE`.
    const MESSAGE_TOO_LONG: i32 = 10040;
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    ) || (cfg!(windows) && e.raw_os_error() == Some(MESSAGE_TOO_LONG))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_survive_the_prefix() {
        for a in [
            "127.0.0.1:7777",
            "[::1]:1",
            "[2001:db8::5]:65535",
            "[::ffff:10.0.0.1]:9",
        ] {
            let addr: SocketAddr = a.parse().unwrap();
            let mut b = [0u8; ADDRESS_PREFIX_BYTES];
            encode_addr(addr, &mut b);
            assert_eq!(decode_addr(&b), addr);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_blocking_part_of_a_wait_ends_a_tick_early_at_least() {
        let ms = Duration::from_millis;
        let tick = ms(4);
        assert_eq!(coarse_part(ms(16), tick), Some(ms(12)));
        assert_eq!(coarse_part(ms(11), tick), Some(ms(4)));
        assert_eq!(coarse_part(ms(8), tick), Some(ms(4)));
        assert_eq!(coarse_part(Duration::from_micros(7_999), tick), None);
        assert_eq!(coarse_part(ms(1), tick), None);
        assert_eq!(coarse_part(ms(10_000), tick), Some(ms(240)), "capped");
        for t in (0..2_000).map(|i| Duration::from_micros(i * 137)) {
            if let Some(c) = coarse_part(t, tick) {
                // Fires by the end of its last tick: never after the wait.
                assert!(c + tick <= t && c.as_nanos() % tick.as_nanos() == 0);
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_connected_client_waits_in_the_receive_and_gets_the_datagram() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client_addr = socket.local_addr().unwrap();
        let mut io = UdpIo::new(
            socket,
            &LinkSimulation::default(),
            &SocketConfig::default(),
            1200,
        )
        .unwrap();
        io.connect(server.local_addr().unwrap()).unwrap();
        assert!(
            io.blocking_wait,
            "a connected batching client blocks in its receive"
        );
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            server.send_to(b"pong", client_addr).unwrap();
            server
        });
        let t = Instant::now();
        io.wait(Duration::from_secs(5)).unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "woken by the datagram"
        );
        let server = sender.join().unwrap();
        let mut got = Vec::new();
        let n = io
            .receive(Instant::now(), |from, d| {
                got.push((from, d.to_vec()));
                true
            })
            .unwrap();
        assert_eq!(n, Received::drained(1));
        assert_eq!(got, vec![(server.local_addr().unwrap(), b"pong".to_vec())]);
        // Nothing more: a wait with nothing coming ends by its timeout.
        let t = Instant::now();
        io.wait(Duration::from_millis(20)).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(15));
        assert_eq!(
            io.receive(Instant::now(), |_, _| true).unwrap(),
            Received::drained(0)
        );
        // Sends still go, on the now blocking socket.
        io.send_slot()[..3].copy_from_slice(b"abc");
        io.commit(Instant::now(), server.local_addr().unwrap(), 3);
        io.flush(Instant::now());
        let mut buf = [0u8; 16];
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        assert_eq!(server.recv_from(&mut buf).unwrap().0, 3);
    }

    #[test]
    fn a_receive_stops_where_told_and_says_the_socket_is_not_proven_empty() {
        for batching in [true, false] {
            let config = SocketConfig {
                batching,
                ..SocketConfig::default()
            };
            let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let to = socket.local_addr().unwrap();
            let mut io = UdpIo::new(socket, &LinkSimulation::default(), &config, 1200).unwrap();
            for i in 0..5u8 {
                tx.send_to(&[i; 8], to).unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
            let mut seen = Vec::new();
            let r = io
                .receive(Instant::now(), |_, d| {
                    seen.push(d[0]);
                    d[0] != 1
                })
                .unwrap();
            assert_eq!((r.drained, seen.as_slice()), (false, &[0u8, 1][..]));
            let r = io
                .receive(Instant::now(), |_, d| {
                    seen.push(d[0]);
                    true
                })
                .unwrap();
            assert_eq!(r, Received::drained(3));
            assert_eq!(seen, [0, 1, 2, 3, 4], "batching {batching}: none lost");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_gro_run_is_handed_over_datagram_by_datagram_even_past_a_stop() {
        let tx_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx_socket.local_addr().unwrap();
        let sim = LinkSimulation::default();
        let mut tx = UdpIo::new(tx_socket, &sim, &SocketConfig::default(), 1200).unwrap();
        let gro = SocketConfig {
            gro: true,
            ..SocketConfig::default()
        };
        let mut rx = UdpIo::new(rx_socket, &sim, &gro, 1200).unwrap();
        if !tx.gso() || !rx.gro() {
            eprintln!("UDP GSO or GRO not supported by this kernel: skipped");
            return;
        }
        assert!(rx.stats().gro);
        // Ten equal datagrams and a shorter last one: one GSO run.
        let now = Instant::now();
        for i in 0..11u8 {
            let len = if i == 10 { 40 } else { 100 };
            tx.send_slot()[..len].fill(i);
            tx.commit(now, to, len);
        }
        tx.flush(now);
        assert_eq!(tx.stats().send_calls, 1, "one GSO send");
        std::thread::sleep(Duration::from_millis(20));
        let mut seen = Vec::new();
        let r = rx
            .receive(Instant::now(), |_, d| {
                assert!(d.iter().all(|&x| x == d[0]));
                seen.push((d[0], d.len()));
                d[0] != 1
            })
            .unwrap();
        // Stopping at the second datagram still hands over the whole run
        // the one receive took.
        let want: Vec<(u8, usize)> = (0..11u8)
            .map(|i| (i, if i == 10 { 40 } else { 100 }))
            .collect();
        assert_eq!(seen, want);
        assert_eq!(
            r,
            Received {
                datagrams: 11,
                drained: false
            }
        );
        assert_eq!(rx.stats().datagrams_received, 11);
        assert_eq!(rx.stats().recv_calls, 1, "the run came in one receive");
        assert_eq!(
            rx.receive(Instant::now(), |_, _| true).unwrap(),
            Received::drained(0)
        );
    }

    #[test]
    fn conditioned_sends_arrive_late_and_in_full() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sim = LinkSimulation {
            outgoing: Some(LinkConfig {
                latency: Duration::from_millis(30),
                ..LinkConfig::default()
            }),
            incoming: None,
        };
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut io = UdpIo::new(socket, &sim, &SocketConfig::default(), 1200).unwrap();
        let start = Instant::now();
        io.send_slot()[..4].copy_from_slice(b"late");
        io.commit(start, rx.local_addr().unwrap(), 4);
        let mut buf = vec![0; 2048];
        io.flush(start);
        rx.set_nonblocking(true).unwrap();
        assert!(rx.recv_from(&mut buf).is_err(), "not before its time");
        let due = io.next_deadline().unwrap();
        assert_eq!(due, start + Duration::from_millis(30));
        io.flush(due);
        rx.set_nonblocking(false).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (n, _) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"late");
    }
}
