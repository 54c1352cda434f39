//! The UDP side of the Tokio driver: [`AsyncUdp`], the socket registered with
//! Tokio; non-blocking receive and send (`try_recv_from` / `try_send_to`, so
//! Tokio's readiness tracking stays exact); the one datagram kept back when the
//! socket would block; and the optional link conditioners that simulate a bad
//! network on a real socket.
//!
//! [`UdpPath`] lives inside the driver's lock; the socket does not (awaiting its
//! readiness needs no lock), so every method takes the socket as an argument.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

#[cfg(unix)]
use tokio::io::{unix::AsyncFd, Interest};

use crate::net::io::{Conditioned as Simulated, LinkSimulation};
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
    /// A datagram the socket refused with "would block", sent before anything else.
    stalled: Option<(SocketAddr, usize)>,
    stalled_buf: Vec<u8>,
    /// Send errors other than "would block" (ICMP unreachable and the like).
    pub send_errors: u64,
}

impl UdpPath {
    /// A path with the given link simulation.
    pub fn new(sim: &LinkSimulation) -> io::Result<Self> {
        let mut path = Self {
            outgoing: None,
            incoming: None,
            stalled: None,
            stalled_buf: vec![0; MAX_DATAGRAM_BYTES],
            send_errors: 0,
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

    /// Whether a datagram waits for the socket to become writable.
    pub fn is_blocked(&self) -> bool {
        self.stalled.is_some()
    }

    /// Receives one datagram into `buf` without blocking (through the incoming
    /// conditioner, if any). `Ok(None)`: nothing more to read now.
    pub fn recv(
        &mut self,
        socket: &AsyncUdp,
        now: Instant,
        buf: &mut [u8],
    ) -> io::Result<Option<(SocketAddr, usize)>> {
        let mut reads = 0;
        loop {
            match socket.try_recv_from(buf) {
                Ok((n, from)) => match &mut self.incoming {
                    None => return Ok(Some((from, n))),
                    Some(sim) => {
                        sim.push(now, from, &buf[..n]);
                        reads += 1;
                        if reads >= MAX_CONDITIONED_READS_PER_CALL {
                            break;
                        }
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if is_transient(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(self.incoming.as_mut().and_then(|sim| sim.pop(now, buf)))
    }

    /// Sends one datagram (or hands it to the outgoing conditioner). Returns
    /// `false` when the socket would block: the datagram is kept and goes out
    /// first with the next [`UdpPath::flush`]; send nothing else until then.
    pub fn send(
        &mut self,
        socket: &AsyncUdp,
        now: Instant,
        to: SocketAddr,
        datagram: &[u8],
    ) -> bool {
        debug_assert!(self.stalled.is_none(), "send while blocked");
        if let Some(sim) = &mut self.outgoing {
            sim.push(now, to, datagram);
            return true;
        }
        self.send_now(socket, to, datagram)
    }

    fn send_now(&mut self, socket: &AsyncUdp, to: SocketAddr, datagram: &[u8]) -> bool {
        match socket.try_send_to(datagram, to) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.stalled_buf[..datagram.len()].copy_from_slice(datagram);
                self.stalled = Some((to, datagram.len()));
                false
            }
            Err(e) => {
                self.send_errors += 1;
                tracing::debug!(error = %e, %to, "UDP send failed");
                true
            }
        }
    }

    /// Sends the datagram kept back, then the conditioned datagrams whose time
    /// has come. `buf` is scratch space. Returns `false` while the socket would
    /// block.
    pub fn flush(&mut self, socket: &AsyncUdp, now: Instant, buf: &mut [u8]) -> bool {
        if let Some((to, n)) = self.stalled {
            match socket.try_send_to(&self.stalled_buf[..n], to) {
                Ok(_) => self.stalled = None,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) => {
                    self.send_errors += 1;
                    tracing::debug!(error = %e, %to, "UDP send failed");
                    self.stalled = None;
                }
            }
        }
        loop {
            let Some(sim) = &mut self.outgoing else {
                return true;
            };
            let Some((to, n)) = sim.pop(now, buf) else {
                return true;
            };
            if !self.send_now(socket, to, &buf[..n]) {
                return false;
            }
        }
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
