//! The transport parameters of a session: what each side tells the other inside
//! TLS once the handshake has authenticated the server ([`SessionParams`] for our
//! side, [`PeerParams`] for what the peer said), the channel-table digest, and
//! the exact byte layout of the parameters message (`docs/HANDSHAKE.md`
//! "Parameters message"). Both sides refuse a peer whose datagram size, reliable
//! window or channel table differs from theirs ([`ParameterMismatch`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ring::digest;
use thiserror::Error;

use crate::config::{ChannelConfig, ChannelKind, TransportConfig};
use crate::varint::{Reader, Writer, MAX_VARINT};

/// The parameters message's magic/version byte: high nibble `0xF` marks a
/// FastNet message, low nibble `1` is the version of its layout.
pub const PARAMS_MAGIC_VERSION: u8 = 0xF1;
/// Bytes of the channel-table digest (SHA-256).
pub const CHANNEL_DIGEST_BYTES: usize = 32;
/// Largest body of a parameters message: its length prefix is one byte (255).
pub const MAX_PARAMS_BODY_BYTES: usize = u8::MAX as usize;
/// Domain-separation prefix of the channel-table digest input.
const CHANNEL_DIGEST_DOMAIN: &[u8] = b"fastnet channel table v1";
/// Address family byte of an IPv4 UDP address.
const FAMILY_IPV4: u8 = 4;
/// Address family byte of an IPv6 UDP address.
const FAMILY_IPV6: u8 = 6;

/// What this side announces in the handshake: taken from its
/// [`TransportConfig`] ([`SessionParams::from_config`]), plus, for a server, the
/// UDP address clients must send to ([`SessionParams::with_udp_address`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionParams {
    max_datagram_bytes: u64,
    reliable_window_bytes: u64,
    idle_timeout: Duration,
    channel_digest: [u8; CHANNEL_DIGEST_BYTES],
    udp_address: Option<SocketAddr>,
}

impl SessionParams {
    /// The parameters of `config`: its `max_datagram_bytes`, reliable window
    /// bytes, idle timeout and the digest of its channel table. The config is
    /// not validated here; [`Connection::new`](crate::Connection::new) does.
    pub fn from_config(config: &TransportConfig) -> Self {
        Self {
            max_datagram_bytes: clamp_varint(config.max_datagram_bytes() as u64),
            reliable_window_bytes: clamp_varint(config.reliable_window_bytes as u64),
            idle_timeout: config.idle_timeout(),
            channel_digest: channel_table_digest(config.channels()),
            udp_address: None,
        }
    }

    /// Sets the UDP address a server advertises: where its clients send
    /// datagrams. It may differ from the address the server binds (a public
    /// address behind NAT, or `0.0.0.0:port` / `[::]:port`, which clients read
    /// as "the IP I reached over TCP", see [`PeerParams::udp_target`]). Required
    /// by [`ServerHandshake::new`](super::ServerHandshake::new); ignored on clients.
    pub fn with_udp_address(mut self, address: SocketAddr) -> Self {
        self.udp_address = Some(address);
        self
    }

    /// The largest UDP payload this side sends and accepts.
    pub fn max_datagram_bytes(&self) -> u64 {
        self.max_datagram_bytes
    }

    /// The idle timeout this side announces.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The digest of this side's channel table ([`channel_table_digest`]).
    pub fn channel_digest(&self) -> [u8; CHANNEL_DIGEST_BYTES] {
        self.channel_digest
    }

    /// The UDP address a server advertises, if set.
    pub fn udp_address(&self) -> Option<SocketAddr> {
        self.udp_address
    }
}

/// What the peer announced, after the handshake checked that it is compatible
/// with us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerParams {
    /// The peer's `max_datagram_bytes` (equal to ours, or the handshake fails).
    pub max_datagram_bytes: usize,
    /// The peer's idle timeout. Each side closes after its own timeout; a
    /// driver may use the smaller of the two for both.
    pub idle_timeout: Duration,
    /// On the client: the UDP address the server told it to send to. `None` on
    /// the server (clients have no address to advertise: the server learns it
    /// from their first authenticated datagram).
    pub udp_address: Option<SocketAddr>,
}

impl PeerParams {
    /// Where the client sends its datagrams: the server's advertised address,
    /// with an unspecified IP (`0.0.0.0` or `::`) replaced by `tcp_peer_ip`, the
    /// IP the client reached over TCP. `None` on the server side.
    pub fn udp_target(&self, tcp_peer_ip: IpAddr) -> Option<SocketAddr> {
        let address = self.udp_address?;
        if address.ip().is_unspecified() {
            Some(SocketAddr::new(tcp_peer_ip, address.port()))
        } else {
            Some(address)
        }
    }
}

/// The peer's parameters differ from ours in a way that would break the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ParameterMismatch {
    /// Both sides must use the same datagram size (fragment sizes derive from it).
    #[error("max_datagram_bytes differ: ours is {local}, the peer's is {peer}")]
    MaxDatagramBytes {
        /// Ours.
        local: u64,
        /// The peer's.
        peer: u64,
    },
    /// Both sides enforce the same reliable window (PROTOCOL.md §6.4).
    #[error("reliable_window_bytes differ: ours is {local}, the peer's is {peer}")]
    ReliableWindowBytes {
        /// Ours.
        local: u64,
        /// The peer's.
        peer: u64,
    },
    /// The channel tables differ (number, kinds, priorities or message limits).
    #[error(
        "the channel tables differ (kind, priority or max_message_bytes of some channel, or \
         their number): our digest is {}, the peer's is {}",
        Hex(local),
        Hex(peer)
    )]
    ChannelTable {
        /// Digest of our table.
        local: [u8; CHANNEL_DIGEST_BYTES],
        /// Digest of the peer's table.
        peer: [u8; CHANNEL_DIGEST_BYTES],
    },
}

/// A parameters message that does not follow `docs/HANDSHAKE.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum MalformedParams {
    /// The first byte of the body is not [`PARAMS_MAGIC_VERSION`].
    #[error(
        "unknown parameters message version byte {0:#04x} (expected {PARAMS_MAGIC_VERSION:#04x})"
    )]
    UnsupportedVersion(u8),
    /// The body ended before its last field.
    #[error("the parameters message body ends before its last field")]
    Truncated,
    /// Bytes follow the last field of the body, or follow the message.
    #[error("{0} unexpected bytes after the parameters message's last field")]
    TrailingBytes(usize),
    /// The server's UDP address has an address family other than 4 or 6.
    #[error("unknown address family {0} in the server's UDP address (expected 4 or 6)")]
    AddressFamily(u8),
    /// The server advertised a UDP address with port 0.
    #[error("the server advertised the UDP address {0}, whose port 0 cannot be sent to")]
    PortZero(SocketAddr),
    /// An idle timeout of 0 ms.
    #[error("the peer announced an idle timeout of 0 ms")]
    ZeroIdleTimeout,
}

/// SHA-256 over the canonical encoding of a channel table: the ASCII prefix
/// `"fastnet channel table v1"`, the channel count (u32, big-endian), then per
/// channel its kind (u8: 0 reliable-ordered, 1 unreliable, 2
/// reliable-unordered, 3 sequenced), priority (u8) and `max_message_bytes`
/// (u64, big-endian).
pub fn channel_table_digest(channels: &[ChannelConfig]) -> [u8; CHANNEL_DIGEST_BYTES] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(CHANNEL_DIGEST_DOMAIN);
    ctx.update(&(channels.len() as u32).to_be_bytes());
    for channel in channels {
        let kind: u8 = match channel.kind {
            ChannelKind::ReliableOrdered => 0,
            ChannelKind::Unreliable => 1,
            ChannelKind::ReliableUnordered => 2,
            ChannelKind::Sequenced => 3,
        };
        ctx.update(&[kind, channel.priority]);
        ctx.update(&(channel.max_message_bytes as u64).to_be_bytes());
    }
    let mut out = [0u8; CHANNEL_DIGEST_BYTES];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A decoded parameters message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WireParams {
    pub(crate) max_datagram_bytes: u64,
    pub(crate) reliable_window_bytes: u64,
    pub(crate) idle_timeout_ms: u64,
    pub(crate) channel_digest: [u8; CHANNEL_DIGEST_BYTES],
    /// Present exactly in messages from the server.
    pub(crate) udp_address: Option<SocketAddr>,
}

impl WireParams {
    /// Checks the peer's parameters against ours and returns what the
    /// application learns from them.
    pub(crate) fn check_against(
        &self,
        local: &SessionParams,
    ) -> Result<PeerParams, ParameterMismatch> {
        if self.max_datagram_bytes != local.max_datagram_bytes {
            return Err(ParameterMismatch::MaxDatagramBytes {
                local: local.max_datagram_bytes,
                peer: self.max_datagram_bytes,
            });
        }
        if self.reliable_window_bytes != local.reliable_window_bytes {
            return Err(ParameterMismatch::ReliableWindowBytes {
                local: local.reliable_window_bytes,
                peer: self.reliable_window_bytes,
            });
        }
        if self.channel_digest != local.channel_digest {
            return Err(ParameterMismatch::ChannelTable {
                local: local.channel_digest,
                peer: self.channel_digest,
            });
        }
        Ok(PeerParams {
            // Equal to ours, which came from a usize.
            max_datagram_bytes: self.max_datagram_bytes as usize,
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            udp_address: self.udp_address,
        })
    }
}

/// Encodes our parameters message; the server passes its UDP address, the
/// client `None`.
pub(crate) fn encode(params: &SessionParams, server_udp_address: Option<SocketAddr>) -> Vec<u8> {
    let mut buf = [0u8; 1 + MAX_PARAMS_BODY_BYTES];
    let mut w = Writer::new(&mut buf[1..]);
    // The largest body is 1 + 3 * 8 + 32 + 1 + 16 + 2 = 76 bytes, far below the
    // 255 the buffer holds, so these writes cannot fail.
    let fits = "parameters message fits in 255 bytes";
    w.put_u8(PARAMS_MAGIC_VERSION).expect(fits);
    w.put_varint(params.max_datagram_bytes).expect(fits);
    w.put_varint(params.reliable_window_bytes).expect(fits);
    let idle_ms = clamp_varint(u64::try_from(params.idle_timeout.as_millis()).unwrap_or(u64::MAX));
    w.put_varint(idle_ms).expect(fits);
    w.put_bytes(&params.channel_digest).expect(fits);
    match server_udp_address {
        Some(SocketAddr::V4(a)) => {
            w.put_u8(FAMILY_IPV4).expect(fits);
            w.put_bytes(&a.ip().octets()).expect(fits);
            w.put_bytes(&a.port().to_be_bytes()).expect(fits);
        }
        Some(SocketAddr::V6(a)) => {
            w.put_u8(FAMILY_IPV6).expect(fits);
            w.put_bytes(&a.ip().octets()).expect(fits);
            w.put_bytes(&a.port().to_be_bytes()).expect(fits);
        }
        None => {}
    }
    let body_len = w.position();
    // body_len <= 76, see above.
    buf[0] = body_len as u8;
    buf[..1 + body_len].to_vec()
}

/// Decodes a parameters message from the bytes received so far: `Ok(None)`
/// while it is incomplete. `from_server` says whether it carries the UDP address.
pub(crate) fn decode(
    received: &[u8],
    from_server: bool,
) -> Result<Option<WireParams>, MalformedParams> {
    let Some((&body_len, rest)) = received.split_first() else {
        return Ok(None);
    };
    let body_len = usize::from(body_len);
    if rest.len() < body_len {
        return Ok(None);
    }
    if rest.len() > body_len {
        return Err(MalformedParams::TrailingBytes(rest.len() - body_len));
    }
    let mut r = Reader::new(rest);
    let truncated = |_| MalformedParams::Truncated;
    let version = r.get_u8().map_err(truncated)?;
    if version != PARAMS_MAGIC_VERSION {
        return Err(MalformedParams::UnsupportedVersion(version));
    }
    let max_datagram_bytes = r.get_varint().map_err(truncated)?;
    let reliable_window_bytes = r.get_varint().map_err(truncated)?;
    let idle_timeout_ms = r.get_varint().map_err(truncated)?;
    if idle_timeout_ms == 0 {
        return Err(MalformedParams::ZeroIdleTimeout);
    }
    let mut channel_digest = [0u8; CHANNEL_DIGEST_BYTES];
    channel_digest.copy_from_slice(r.get_bytes(CHANNEL_DIGEST_BYTES).map_err(truncated)?);
    let udp_address = if from_server {
        let ip = match r.get_u8().map_err(truncated)? {
            FAMILY_IPV4 => {
                let mut octets = [0u8; 4];
                octets.copy_from_slice(r.get_bytes(4).map_err(truncated)?);
                IpAddr::V4(Ipv4Addr::from(octets))
            }
            FAMILY_IPV6 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(r.get_bytes(16).map_err(truncated)?);
                IpAddr::V6(Ipv6Addr::from(octets))
            }
            other => return Err(MalformedParams::AddressFamily(other)),
        };
        let port_bytes = r.get_bytes(2).map_err(truncated)?;
        let address = SocketAddr::new(ip, u16::from_be_bytes([port_bytes[0], port_bytes[1]]));
        if address.port() == 0 {
            return Err(MalformedParams::PortZero(address));
        }
        Some(address)
    } else {
        None
    };
    if !r.is_empty() {
        return Err(MalformedParams::TrailingBytes(r.remaining()));
    }
    Ok(Some(WireParams {
        max_datagram_bytes,
        reliable_window_bytes,
        idle_timeout_ms,
        channel_digest,
        udp_address,
    }))
}

/// `v`, or [`MAX_VARINT`] if larger (only absurd configurations get there, and
/// they fail validation anyway).
fn clamp_varint(v: u64) -> u64 {
    v.min(MAX_VARINT)
}

/// Lower-case hex of a byte string, for error messages.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_params(address: &str) -> SessionParams {
        SessionParams::from_config(&TransportConfig::default())
            .with_udp_address(address.parse().unwrap())
    }

    #[test]
    fn round_trip_client_and_server_v4_v6() {
        let client = SessionParams::from_config(&TransportConfig::default());
        let bytes = encode(&client, None);
        assert_eq!(bytes.len(), 1 + usize::from(bytes[0]));
        let wire = decode(&bytes, false).unwrap().unwrap();
        assert_eq!(wire.max_datagram_bytes, 1200);
        assert_eq!(wire.idle_timeout_ms, 10_000);
        assert_eq!(wire.udp_address, None);
        let peer = wire.check_against(&client).unwrap();
        assert_eq!(peer.idle_timeout, Duration::from_secs(10));

        for address in ["203.0.113.7:4000", "[2001:db8::1]:65535"] {
            let server = server_params(address);
            let bytes = encode(&server, server.udp_address());
            let wire = decode(&bytes, true).unwrap().unwrap();
            assert_eq!(wire.udp_address, Some(address.parse().unwrap()));
            // Every proper prefix is incomplete, never an error.
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut], true), Ok(None), "cut at {cut}");
            }
        }
    }

    #[test]
    fn exact_layout_of_the_default_client_message() {
        let client = SessionParams::from_config(&TransportConfig::default());
        let bytes = encode(&client, None);
        // 0xf1, varint 1200 (2 bytes), varint 4 MiB (4 bytes), varint 10000 (2 bytes), digest.
        assert_eq!(bytes[0] as usize, 1 + 2 + 4 + 2 + 32);
        assert_eq!(
            &bytes[1..10],
            &[0xf1, 0x44, 0xb0, 0x80, 0x40, 0x00, 0x00, 0x67, 0x10]
        );
        assert_eq!(&bytes[10..], &client.channel_digest());
    }

    #[test]
    fn malformed_messages_are_named() {
        let server = server_params("192.0.2.1:4000");
        let good = encode(&server, server.udp_address());
        let mut bad = good.clone();
        bad[1] = 0xf2;
        assert_eq!(
            decode(&bad, true),
            Err(MalformedParams::UnsupportedVersion(0xf2))
        );
        let mut extra = good.clone();
        extra.push(0);
        assert_eq!(decode(&extra, true), Err(MalformedParams::TrailingBytes(1)));
        // A server message read as a client message has 7 bytes left over.
        assert_eq!(decode(&good, false), Err(MalformedParams::TrailingBytes(7)));
        // A client message read as a server message lacks the address.
        let client = encode(&server, None);
        assert_eq!(decode(&client, true), Err(MalformedParams::Truncated));
        let family_at = good.len() - 7;
        let mut family = good.clone();
        family[family_at] = 5;
        assert_eq!(
            decode(&family, true),
            Err(MalformedParams::AddressFamily(5))
        );
        let zero = server_params("192.0.2.1:0");
        let port_zero = encode(&zero, zero.udp_address());
        assert!(matches!(
            decode(&port_zero, true),
            Err(MalformedParams::PortZero(_))
        ));
    }

    #[test]
    fn mismatches_are_detected() {
        let ours = SessionParams::from_config(&TransportConfig::default());
        let mut config = TransportConfig::default();
        config.set_max_datagram_bytes(1400);
        let wire = decode(&encode(&SessionParams::from_config(&config), None), false)
            .unwrap()
            .unwrap();
        assert_eq!(
            wire.check_against(&ours),
            Err(ParameterMismatch::MaxDatagramBytes {
                local: 1200,
                peer: 1400
            })
        );
        let mut config = TransportConfig::default();
        config.set_reliable_window_bytes(1 << 20);
        let wire = decode(&encode(&SessionParams::from_config(&config), None), false)
            .unwrap()
            .unwrap();
        assert!(matches!(
            wire.check_against(&ours),
            Err(ParameterMismatch::ReliableWindowBytes { .. })
        ));
    }

    #[test]
    fn channel_digest_covers_kind_priority_size_and_count() {
        let base = TransportConfig::default();
        let digest = channel_table_digest(base.channels());
        assert_eq!(
            digest,
            channel_table_digest(TransportConfig::default().channels())
        );
        let mut changed = base.channels().to_vec();
        changed[1].kind = ChannelKind::Sequenced;
        assert_ne!(channel_table_digest(&changed), digest);
        let mut changed = base.channels().to_vec();
        changed[0].priority = 1;
        assert_ne!(channel_table_digest(&changed), digest);
        let mut changed = base.channels().to_vec();
        changed[2].max_message_bytes -= 1;
        assert_ne!(channel_table_digest(&changed), digest);
        assert_ne!(channel_table_digest(&base.channels()[..3]), digest);
    }

    #[test]
    fn udp_target_fills_in_an_unspecified_ip() {
        let peer = PeerParams {
            max_datagram_bytes: 1200,
            idle_timeout: Duration::from_secs(10),
            udp_address: Some("0.0.0.0:4000".parse().unwrap()),
        };
        let tcp_ip: IpAddr = "198.51.100.9".parse().unwrap();
        assert_eq!(
            peer.udp_target(tcp_ip),
            Some("198.51.100.9:4000".parse().unwrap())
        );
        let peer = PeerParams {
            udp_address: Some("203.0.113.1:5000".parse().unwrap()),
            ..peer
        };
        assert_eq!(
            peer.udp_target(tcp_ip),
            Some("203.0.113.1:5000".parse().unwrap())
        );
        let peer = PeerParams {
            udp_address: None,
            ..peer
        };
        assert_eq!(peer.udp_target(tcp_ip), None);
    }
}
