//! The UDP side of the game-loop drivers: non-blocking receive and send on one
//! socket, a bounded wait for the next datagram, and the optional link
//! conditioners that simulate a bad network on a real socket.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::conditioner::{LinkConditioner, LinkConfig};
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
/// counts whole milliseconds.
const PRECISE_WAIT_LIMIT: Duration = Duration::from_millis(1);
/// Sleep between two polls of a short wait.
const PRECISE_WAIT_STEP: Duration = Duration::from_micros(100);

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

/// Waits for a socket to become readable without polling it: an OS readiness
/// queue (epoll, kqueue, IOCP through mio) registered on a duplicate of the
/// socket's handle.
struct Readiness {
    poll: mio::Poll,
    events: mio::Events,
    /// Tokens other than the UDP socket's that fired (a server's TCP
    /// listener and handshakes), until the owner takes them.
    ready: Vec<mio::Token>,
    /// Keeps the registered duplicate open.
    _registered: mio::net::UdpSocket,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Readiness")
    }
}

impl Readiness {
    fn new(socket: &UdpSocket) -> io::Result<Self> {
        let poll = mio::Poll::new()?;
        let mut registered = mio::net::UdpSocket::from_std(socket.try_clone()?);
        poll.registry()
            .register(&mut registered, UDP_TOKEN, mio::Interest::READABLE)?;
        Ok(Self {
            poll,
            events: mio::Events::with_capacity(64),
            ready: Vec::new(),
            _registered: registered,
        })
    }

    /// Blocks until a registered source may be ready or `timeout` passes.
    /// Spurious wake-ups are possible (the caller then finds nothing to do).
    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            other => other?,
        }
        for event in self.events.iter() {
            if event.token() != UDP_TOKEN && !self.ready.contains(&event.token()) {
                self.ready.push(event.token());
            }
        }
        Ok(())
    }
}

/// The UDP socket's token in the readiness queue; owners registering more
/// sources (a server's TCP side) use other tokens.
pub(crate) const UDP_TOKEN: mio::Token = mio::Token(0);

/// A non-blocking UDP socket with optional link simulation.
#[derive(Debug)]
pub(crate) struct UdpIo {
    socket: UdpSocket,
    readiness: Readiness,
    outgoing: Option<Conditioned>,
    incoming: Option<Conditioned>,
    /// Send errors other than "would block" since the last check (ICMP
    /// unreachable and the like: UDP errors are reported, not fatal).
    pub send_errors: u64,
}

impl UdpIo {
    pub fn new(socket: UdpSocket, sim: &LinkSimulation) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let seed = fastrand::u64(..);
        Ok(Self {
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
            send_errors: 0,
        })
    }

    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends (or hands to the outgoing conditioner) one datagram.
    pub fn send(&mut self, now: Instant, to: SocketAddr, datagram: &[u8]) {
        if let Some(c) = &mut self.outgoing {
            c.push(now, to, datagram);
            return;
        }
        self.send_now(to, datagram);
    }

    fn send_now(&mut self, to: SocketAddr, datagram: &[u8]) {
        if let Err(e) = self.socket.send_to(datagram, to) {
            if e.kind() != io::ErrorKind::WouldBlock {
                self.send_errors += 1;
                tracing::debug!(error = %e, %to, "UDP send failed");
            }
        }
    }

    /// Sends the conditioned datagrams whose time has come.
    pub fn flush(&mut self, now: Instant, buf: &mut [u8]) {
        let Some(c) = &mut self.outgoing else {
            return;
        };
        while let Some((to, n)) = c.pop(now, buf) {
            if let Err(e) = self.socket.send_to(&buf[..n], to) {
                if e.kind() != io::ErrorKind::WouldBlock {
                    self.send_errors += 1;
                }
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

    /// Receives one datagram without blocking (through the incoming
    /// conditioner, if any). `Ok(None)`: nothing more to read now.
    pub fn recv(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> io::Result<Option<(SocketAddr, usize)>> {
        loop {
            match self.socket.recv_from(buf) {
                Ok((n, from)) => match &mut self.incoming {
                    None => return Ok(Some((from, n))),
                    Some(c) => c.push(now, from, &buf[..n]),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP errors from earlier sends surface here on some systems.
                Err(e) if is_transient(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(self.incoming.as_mut().and_then(|c| c.pop(now, buf)))
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

    /// The next datagram the incoming conditioner releases.
    pub fn pop_incoming(&mut self, now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        self.incoming.as_mut()?.pop(now, buf)
    }

    /// Blocks until a datagram is readable or `timeout` passes (about).
    ///
    /// Waits of a millisecond or more sleep in the OS readiness queue, which
    /// rounds up to whole milliseconds; shorter ones poll the socket between
    /// precise sleeps (they are rare: the first packet of a connect).
    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        if timeout.is_zero() || self.readable_now() {
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

    /// The readiness queue, to register more sources (tokens other than
    /// [`UDP_TOKEN`]).
    pub fn registry(&self) -> &mio::Registry {
        self.readiness.poll.registry()
    }

    /// Collects the sources that became ready, without waiting.
    pub fn poll_ready_now(&mut self) -> io::Result<()> {
        self.readiness.wait(Duration::ZERO)
    }

    /// Moves the tokens of the sources that fired (other than the UDP socket)
    /// into `out`.
    pub fn take_ready(&mut self, out: &mut Vec<mio::Token>) {
        out.append(&mut self.readiness.ready);
    }

    /// Whether a wait saw sources other than the UDP socket fire.
    pub fn has_ready(&self) -> bool {
        !self.readiness.ready.is_empty()
    }

    /// Whether a datagram (or an error to report) is waiting.
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
        let mut io = UdpIo::new(UdpSocket::bind("127.0.0.1:0").unwrap(), &sim).unwrap();
        let start = Instant::now();
        io.send(start, rx.local_addr().unwrap(), b"late");
        let mut buf = vec![0; 2048];
        io.flush(start, &mut buf);
        rx.set_nonblocking(true).unwrap();
        assert!(rx.recv_from(&mut buf).is_err(), "not before its time");
        let due = io.next_deadline().unwrap();
        assert_eq!(due, start + Duration::from_millis(30));
        io.flush(due, &mut buf);
        rx.set_nonblocking(false).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (n, _) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"late");
    }
}
