//! The reference loops under the FastNet latency rows. They split FastNet's
//! round trip into what encryption costs, what the protocol costs and what its
//! drivers cost:
//!
//! * **sealed UDP** (`udp-aead-*` rows): the raw UDP loops, where each side
//!   seals every datagram it sends and opens every datagram it receives with
//!   FastNet's own [`PacketKey`] (ChaCha20-Poly1305 with ring) behind FastNet's
//!   13-byte header, authenticated as associated data. Four AEAD calls per
//!   round trip and nothing else: the floor of any ChaCha20-Poly1305 transport
//!   on this machine, whatever its protocol.
//! * **sans-IO FastNet** (`fastnet-sansio-*` rows, diagnostics): FastNet's
//!   protocol state machines, a client [`Connection`](fastnet::Connection) and a server [`Endpoint`],
//!   driven by the raw UDP loops instead of FastNet's drivers. Keys come from
//!   [`fastnet::sim::session_keys_pair`] (no handshake: both processes derive
//!   them from [`SANS_IO_SEED`]). Client and server also time their own
//!   protocol work per round trip (about two clock reads more than the other
//!   rows on each side), which shows what sleeping between datagrams costs
//!   the same code.
//!
//! The server halves run in the server process (`serve udp-aead-*` and
//! `serve fastnet-sansio-*`); the client halves are in `rtt`.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use fastnet::crypto::{AeadBackend, PacketKey, TAG_BYTES};
use fastnet::net::Endpoint;
use fastnet::packet::{ConnectionId, Header, HEADER_BYTES};
use fastnet::TransportConfig;

use crate::server::{note_work, raw_udp_socket, ready, Mode};
use crate::BenchResult;

/// Seed of the sans-IO rows' session keys (both processes use it).
pub const SANS_IO_SEED: u64 = 0x5eed;

/// Bytes of a receive buffer: any datagram of the rows.
const BUF_BYTES: usize = 2048;

/// One side of a sealed UDP exchange: its sending and receiving keys and
/// packet numbers, as a FastNet connection would hold them.
pub struct Sealer {
    send: PacketKey,
    recv: PacketKey,
    next_pn: u64,
    /// The destination connection ID written in every header.
    peer_cid: ConnectionId,
}

impl Sealer {
    /// Fixed bench keys (one per direction; nothing secret is protected).
    fn keys() -> (PacketKey, PacketKey) {
        let c2s = PacketKey::from_raw([0xc2; 32], [0x1c; 12], AeadBackend::Ring);
        let s2c = PacketKey::from_raw([0x2c; 32], [0xc1; 12], AeadBackend::Ring);
        (c2s, s2c)
    }

    /// The client side.
    pub fn client() -> Self {
        let (c2s, s2c) = Self::keys();
        Self {
            send: c2s,
            recv: s2c,
            next_pn: 0,
            peer_cid: ConnectionId(2),
        }
    }

    /// The server side.
    pub fn server() -> Self {
        let (c2s, s2c) = Self::keys();
        Self {
            send: s2c,
            recv: c2s,
            next_pn: 0,
            peer_cid: ConnectionId(1),
        }
    }

    /// Writes `payload` into `out` as one packet (header, ciphertext, tag)
    /// under the next packet number; returns the datagram's length.
    pub fn seal(&mut self, payload: &[u8], out: &mut [u8]) -> usize {
        let pn = self.next_pn;
        self.next_pn += 1;
        let (head, rest) = out.split_at_mut(HEADER_BYTES);
        let head: &mut [u8; HEADER_BYTES] = head.try_into().expect("split at HEADER_BYTES");
        Header {
            key_phase: false,
            destination: self.peer_cid,
            packet_number_low: pn as u32,
        }
        .encode(head);
        rest[..payload.len()].copy_from_slice(payload);
        let tag = self
            .send
            .seal_in_place(pn, head, &mut rest[..payload.len()]);
        rest[payload.len()..payload.len() + TAG_BYTES].copy_from_slice(&tag);
        HEADER_BYTES + payload.len() + TAG_BYTES
    }

    /// Opens a datagram in place; returns its payload, or `None` if it does
    /// not authenticate. (Packet numbers stay below 2^32 in a run, so the
    /// header's low 32 bits are the whole number.)
    pub fn open<'a>(&self, datagram: &'a mut [u8]) -> Option<&'a [u8]> {
        let header = Header::decode(datagram).ok()?;
        let (head, body) = datagram.split_at_mut(HEADER_BYTES);
        let len = self
            .recv
            .open_in_place(u64::from(header.packet_number_low), head, body)
            .ok()?;
        Some(&body[..len])
    }
}

/// `serve udp-aead-spin|udp-aead-block`: the sealed echo on a std socket.
pub fn serve_sealed_udp(mode: Mode, spin: bool) -> BenchResult<()> {
    let socket = raw_udp_socket(!spin)?;
    ready(&[("udp", socket.local_addr()?.port().to_string())]);
    let mut sealer = Sealer::server();
    let mut buf = [0u8; BUF_BYTES];
    let mut out = [0u8; BUF_BYTES];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let Some(payload) = sealer.open(&mut buf[..n]) else {
                    continue;
                };
                if mode == Mode::Echo {
                    let len = sealer.seal(payload, &mut out);
                    socket.send_to(&out[..len], from)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `serve udp-aead-tokio`: the sealed echo on a tokio socket.
pub fn serve_sealed_tokio(mode: Mode) -> BenchResult<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let socket = tokio::net::UdpSocket::from_std(raw_udp_socket(false)?)?;
        ready(&[("udp", socket.local_addr()?.port().to_string())]);
        let mut sealer = Sealer::server();
        let mut buf = [0u8; BUF_BYTES];
        let mut out = [0u8; BUF_BYTES];
        loop {
            match socket.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    let Some(payload) = sealer.open(&mut buf[..n]) else {
                        continue;
                    };
                    if mode == Mode::Echo {
                        let len = sealer.seal(payload, &mut out);
                        socket.send_to(&out[..len], from).await?;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e.into()),
            }
        }
    })
}

/// `serve fastnet-sansio-spin|fastnet-sansio-block`: a FastNet [`Endpoint`]
/// with one peer (the sans-IO client's keys), echoing every message on its
/// channel, driven by a std socket: each datagram is handled, the messages
/// answered and everything the endpoint then has to send goes out at once;
/// timers run when due.
pub fn serve_sans_io(spin: bool) -> BenchResult<()> {
    let socket = raw_udp_socket(!spin)?;
    if !spin {
        // Wake for the timers (acknowledgements, keep-alives) now and then.
        socket.set_read_timeout(Some(std::time::Duration::from_millis(5)))?;
    }
    ready(&[("udp", socket.local_addr()?.port().to_string())]);
    let (_, server_keys) = fastnet::sim::session_keys_pair(SANS_IO_SEED);
    let mut endpoint = Endpoint::new(Arc::new(TransportConfig::default()));
    endpoint.insert(server_keys, None, Instant::now())?;
    let mut buf = [0u8; BUF_BYTES];
    let mut out = [0u8; BUF_BYTES];
    let mut message = Vec::new();
    loop {
        let received = match socket.recv_from(&mut buf) {
            Ok((n, from)) => Some((n, from)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                None
            }
            Err(e) => return Err(e.into()),
        };
        let now = Instant::now();
        if let Some((n, from)) = received {
            endpoint.handle_datagram(now, from, &mut buf[..n]);
            while let Some((peer, channel)) = endpoint.recv_into(&mut message) {
                let _ = endpoint.send(peer, channel, &message);
            }
            // The answer's datagram is built and sealed as work; its send is
            // not timed.
            let first = endpoint.poll_transmit(now, &mut out);
            note_work(now.elapsed());
            if let Some((to, len)) = first {
                send_to(&socket, &out[..len], to)?;
            }
        } else if endpoint.poll_timeout().is_some_and(|t| t <= now) {
            endpoint.handle_timeout(now);
        } else {
            std::hint::spin_loop();
            continue;
        }
        transmit_endpoint(&socket, &mut endpoint, now, &mut out)?;
    }
}

/// `serve fastnet-sansio-tokio`: [`serve_sans_io`] on a tokio socket
/// (current-thread runtime): each datagram is awaited (or the endpoint's next
/// deadline), handled, its messages answered, and everything the endpoint then
/// has to send goes out.
pub fn serve_sans_io_tokio() -> BenchResult<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let socket = tokio::net::UdpSocket::from_std(raw_udp_socket(false)?)?;
        ready(&[("udp", socket.local_addr()?.port().to_string())]);
        let (_, server_keys) = fastnet::sim::session_keys_pair(SANS_IO_SEED);
        let mut endpoint = Endpoint::new(Arc::new(TransportConfig::default()));
        endpoint.insert(server_keys, None, Instant::now())?;
        let mut buf = [0u8; BUF_BYTES];
        let mut out = [0u8; BUF_BYTES];
        let mut message = Vec::new();
        loop {
            let received = match endpoint.poll_timeout() {
                Some(t) => tokio::time::timeout_at(t.into(), socket.recv_from(&mut buf))
                    .await
                    .ok(),
                None => Some(socket.recv_from(&mut buf).await),
            };
            let now = Instant::now();
            match received {
                Some(Ok((n, from))) => {
                    endpoint.handle_datagram(now, from, &mut buf[..n]);
                    while let Some((peer, channel)) = endpoint.recv_into(&mut message) {
                        let _ = endpoint.send(peer, channel, &message);
                    }
                    // As in `serve_sans_io`: building and sealing the answer
                    // is timed, sending it is not.
                    let first = endpoint.poll_transmit(now, &mut out);
                    note_work(now.elapsed());
                    if let Some((to, len)) = first {
                        socket.send_to(&out[..len], to).await?;
                    }
                }
                Some(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Some(Err(e)) => return Err(e.into()),
                None => endpoint.handle_timeout(now),
            }
            while let Some((to, len)) = endpoint.poll_transmit(now, &mut out) {
                socket.send_to(&out[..len], to).await?;
            }
        }
    })
}

/// Sends everything `endpoint` has to send.
fn transmit_endpoint(
    socket: &UdpSocket,
    endpoint: &mut Endpoint,
    now: Instant,
    out: &mut [u8],
) -> BenchResult<()> {
    while let Some((to, len)) = endpoint.poll_transmit(now, out) {
        send_to(socket, &out[..len], to)?;
    }
    Ok(())
}

fn send_to(socket: &UdpSocket, datagram: &[u8], to: SocketAddr) -> BenchResult<()> {
    match socket.send_to(datagram, to) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e.into()),
    }
}
