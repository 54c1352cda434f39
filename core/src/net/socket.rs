//! UDP socket set-up through socket2: buffer sizes, dual-stack binding, and the
//! low-latency options of [`SocketConfig::low_latency`] (DSCP EF, busy polling,
//! socket priority). Options the OS refuses are reported, never fatal: a game
//! must still start on a machine without `CAP_NET_ADMIN` or on Windows.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// Receive and send buffer size requested by default (4 MiB): absorbs bursts
/// of a few thousand datagrams, such as a server's tick to many clients.
pub const DEFAULT_SOCKET_BUFFER_BYTES: usize = 4 << 20;
/// Buffer size of [`SocketConfig::low_latency`] (8 MiB).
pub const LOW_LATENCY_SOCKET_BUFFER_BYTES: usize = 8 << 20;
/// DSCP "Expedited Forwarding" (RFC 3246) in the IP TOS byte: 46 << 2.
pub const DSCP_EF_TOS: u32 = 0xB8;

/// How to set up a UDP socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketConfig {
    /// `SO_RCVBUF` to request.
    pub recv_buffer_bytes: usize,
    /// `SO_SNDBUF` to request.
    pub send_buffer_bytes: usize,
    /// IP TOS / IPv6 traffic class byte (DSCP << 2), if any.
    pub tos: Option<u32>,
    /// `SO_BUSY_POLL` (Linux): how long the kernel spins on the device queue
    /// before sleeping in a blocking receive.
    pub busy_poll: Option<Duration>,
    /// `SO_PRIORITY` (Linux): queueing priority of outgoing packets (0-6
    /// without privileges).
    pub priority: Option<u32>,
    /// Linux (both drivers): receive bursts with `recvmmsg` (up to 32
    /// queued datagrams in one call) and send what a service pass (or a
    /// Tokio transmit) produced with one `sendmmsg`. Default on; elsewhere
    /// one call per datagram.
    pub batching: bool,
    /// Linux, with `batching`: UDP segmentation offload
    /// (`UDP_SEGMENT`) for runs of equal-sized datagrams to one address (the
    /// fragments of a large message), where the kernel has it. Default on;
    /// turned off by itself if the network device refuses it.
    pub gso: bool,
    /// Linux, with `batching`: UDP generic receive offload
    /// (`UDP_GRO`, Linux 5.0+), the receiving half of `gso`. A run of
    /// equal-sized datagrams from one sender (its GSO send, or datagrams the
    /// network card merged) stays one buffer in the kernel and is split
    /// here, so a bulk transfer costs the kernel one socket buffer per run
    /// instead of one per datagram; on loopback that also takes the
    /// splitting off the sender's processor. The price: every receive is a
    /// `recvmsg` with a control buffer, which costs more than the `recvfrom`
    /// used without it (on our benchmark VM: 0.2 µs more on an empty
    /// socket, 0.35 µs per datagram, 0.6-0.8 µs per busy-polled round trip
    /// in `BENCHMARKS.md`), and the receive slots grow from 32 datagrams to 32
    /// runs of 64 KiB (2 MiB of address space, resident as bulk traffic fills
    /// it). Default off: turn it on where bulk data arrives (an asset
    /// download, large reliable messages), not on a latency-critical socket.
    pub gro: bool,
    /// Game-loop drivers: how long `service_for` spins on the non-blocking
    /// socket before sleeping in the OS (bounded by its `max_wait` and the
    /// next protocol deadline). Spinning trades a processor for the OS's
    /// wake-up latency (tens of microseconds on virtual machines); zero, the
    /// default, sleeps at once. The spin yields the processor
    /// (`sched_yield`) every few turns, so a thread sharing it still runs.
    pub busy_wait: Duration,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            recv_buffer_bytes: DEFAULT_SOCKET_BUFFER_BYTES,
            send_buffer_bytes: DEFAULT_SOCKET_BUFFER_BYTES,
            tos: None,
            busy_poll: None,
            priority: None,
            batching: true,
            gso: true,
            gro: false,
            busy_wait: Duration::ZERO,
        }
    }
}

impl SocketConfig {
    /// Settings for latency-critical games: 8 MiB buffers, DSCP EF, 100 µs busy
    /// polling and priority 6, each applied where the OS allows. It does not
    /// spin in user space: set [`SocketConfig::busy_wait`] for that.
    pub fn low_latency() -> Self {
        Self {
            recv_buffer_bytes: LOW_LATENCY_SOCKET_BUFFER_BYTES,
            send_buffer_bytes: LOW_LATENCY_SOCKET_BUFFER_BYTES,
            tos: Some(DSCP_EF_TOS),
            busy_poll: Some(Duration::from_micros(100)),
            priority: Some(6),
            ..Self::default()
        }
    }

    /// Spins up to `budget` in `service_for` before sleeping (see
    /// [`SocketConfig::busy_wait`]).
    pub fn with_busy_wait(mut self, budget: Duration) -> Self {
        self.busy_wait = budget;
        self
    }
}

/// What [`bind_udp`] managed to apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SocketReport {
    /// `SO_RCVBUF` as the kernel reports it (Linux doubles the request and caps
    /// it at `net.core.rmem_max`).
    pub recv_buffer_bytes: usize,
    /// `SO_SNDBUF` as the kernel reports it.
    pub send_buffer_bytes: usize,
    /// Whether an IPv6 socket also accepts IPv4 (dual stack).
    pub dual_stack: bool,
    /// Options requested but refused, with the reason: `("busy_poll", "...")`.
    pub refused: Vec<(&'static str, String)>,
}

/// Binds a non-blocking UDP socket with `config`. An IPv6 wildcard address
/// (`[::]:port`) is bound dual-stack where the OS allows, so IPv4 clients
/// reach it too.
pub fn bind_udp(addr: SocketAddr, config: &SocketConfig) -> io::Result<(UdpSocket, SocketReport)> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let mut report = SocketReport::default();
    if addr.is_ipv6() {
        report.dual_stack = socket.set_only_v6(false).is_ok();
    }
    let mut refused = Vec::new();
    let mut refuse = |what: &'static str, r: io::Result<()>| {
        if let Err(e) = r {
            tracing::debug!(option = what, error = %e, "socket option refused");
            refused.push((what, e.to_string()));
        }
    };
    refuse(
        "recv_buffer",
        socket.set_recv_buffer_size(config.recv_buffer_bytes),
    );
    refuse(
        "send_buffer",
        socket.set_send_buffer_size(config.send_buffer_bytes),
    );
    if let Some(tos) = config.tos {
        let r = if addr.is_ipv6() {
            set_ipv6_tclass(&socket, tos)
        } else {
            set_ipv4_tos(&socket, tos)
        };
        refuse("tos", r);
    }
    if let Some(busy) = config.busy_poll {
        refuse("busy_poll", set_busy_poll(&socket, busy));
    }
    if let Some(priority) = config.priority {
        refuse("priority", set_priority(&socket, priority));
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    report.refused = refused;
    report.recv_buffer_bytes = socket.recv_buffer_size().unwrap_or(0);
    report.send_buffer_bytes = socket.send_buffer_size().unwrap_or(0);
    Ok((socket.into(), report))
}

#[cfg(not(any(
    target_os = "fuchsia",
    target_os = "redox",
    target_os = "solaris",
    target_os = "illumos"
)))]
fn set_ipv4_tos(socket: &Socket, tos: u32) -> io::Result<()> {
    socket.set_tos_v4(tos)
}

#[cfg(any(
    target_os = "fuchsia",
    target_os = "redox",
    target_os = "solaris",
    target_os = "illumos"
))]
fn set_ipv4_tos(_: &Socket, _: u32) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "IP_TOS not supported on this OS",
    ))
}

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd"
))]
fn set_ipv6_tclass(socket: &Socket, tos: u32) -> io::Result<()> {
    socket.set_tclass_v6(tos)
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd"
)))]
fn set_ipv6_tclass(_: &Socket, _: u32) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "IPV6_TCLASS not supported on this OS",
    ))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_busy_poll(socket: &Socket, busy: Duration) -> io::Result<()> {
    socket.set_busy_poll(busy.as_micros().min(u32::MAX as u128) as u32)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_busy_poll(_: &Socket, _: Duration) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_BUSY_POLL is Linux-only",
    ))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_priority(socket: &Socket, priority: u32) -> io::Result<()> {
    socket.set_priority(priority)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_priority(_: &Socket, _: u32) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_PRIORITY is Linux-only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_with_buffers_and_reports_refusals() {
        let (sock, report) =
            bind_udp("127.0.0.1:0".parse().unwrap(), &SocketConfig::low_latency()).unwrap();
        assert!(sock.local_addr().unwrap().port() != 0);
        assert!(report.recv_buffer_bytes > 0 && report.send_buffer_bytes > 0);
        // Whatever was refused says why.
        assert!(report.refused.iter().all(|(_, why)| !why.is_empty()));
    }

    #[test]
    fn ipv6_wildcard_is_dual_stack_where_possible() {
        let Ok((sock, report)) = bind_udp("[::]:0".parse().unwrap(), &SocketConfig::default())
        else {
            return; // no IPv6 on this machine
        };
        if report.dual_stack {
            let port = sock.local_addr().unwrap().port();
            let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
            v4.send_to(b"ping", ("127.0.0.1", port)).unwrap();
            let mut buf = [0u8; 8];
            sock.set_nonblocking(false).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let (n, from) = sock.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"ping");
            assert!(from.ip().to_canonical().is_ipv4());
        }
    }
}
