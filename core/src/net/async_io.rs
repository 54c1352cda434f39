//! The UDP side of the Tokio driver: non-blocking receive and send on a
//! `tokio::net::UdpSocket` (`try_recv_from` / `try_send_to`, so Tokio's
//! readiness tracking stays exact), the one datagram kept back when the socket
//! would block, and the optional link conditioners that simulate a bad network
//! on a real socket.
//!
//! [`UdpPath`] lives inside the driver's lock; the socket does not (awaiting its
//! readiness needs no lock), so every method takes the socket as an argument.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;

use crate::net::io::{Conditioned as Simulated, LinkSimulation};
use crate::packet::MAX_DATAGRAM_BYTES;

/// Most datagrams moved from the socket into the incoming conditioner per
/// receive call, so a flood cannot keep one call busy forever.
const MAX_CONDITIONED_READS_PER_CALL: usize = 1024;

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
        socket: &UdpSocket,
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
        socket: &UdpSocket,
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

    fn send_now(&mut self, socket: &UdpSocket, to: SocketAddr, datagram: &[u8]) -> bool {
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
    pub fn flush(&mut self, socket: &UdpSocket, now: Instant, buf: &mut [u8]) -> bool {
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
