//! The game-loop client: connects with a TLS 1.3 handshake over TCP, then runs
//! one [`Connection`] on a non-blocking UDP socket. Each `service` call does all
//! pending I/O without blocking; `service_for` may wait a bounded time. No
//! thread is needed, and an opt-in service thread keeps the connection alive
//! while the game thread is busy.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{ChannelId, TransportConfig};
use crate::connection::{Connection, Event};
use crate::error::{close_code, DisconnectReason, SendError};
use crate::net::io::{IoStats, LinkSimulation, UdpIo};
use crate::net::service::{lock, service_for, DriverState, ReadPace, ServiceThread};
use crate::net::socket::{bind_udp, SocketConfig};
use crate::session::{ClientHandshake, HandshakeError, ServerTrust, SessionParams};
use crate::stats::ConnectionStats;

/// How long `connect` may take by default: TCP, TLS and the first UDP round trip.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The first UDP packet is repeated until the server answers, first after
/// 250 µs (it can overtake the end of the handshake on the server, which takes
/// a few hundred microseconds), then twice as late each time, up to 200 ms apart.
const FIRST_PACKET_RETRY_MIN: Duration = Duration::from_micros(250);
/// Longest interval between two first packets.
const FIRST_PACKET_RETRY_MAX: Duration = Duration::from_millis(200);
/// Bytes read from TCP at a time during the handshake.
const HANDSHAKE_READ_BYTES: usize = 16 << 10;

/// How a [`Client`] connects.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Channels, limits and timers; must match the server's channel table.
    pub transport: TransportConfig,
    /// How the server's certificate is checked (default: the Mozilla roots and
    /// the server name, like a browser).
    pub trust: ServerTrust,
    /// The name the certificate must carry; default: the host passed to `connect`.
    pub server_name: Option<String>,
    /// Bound on the whole connect: resolution, TCP, TLS, first UDP answer.
    pub connect_timeout: Duration,
    /// UDP socket options.
    pub socket: SocketConfig,
    /// Simulated network conditions on this client's socket (testing).
    pub link: LinkSimulation,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            transport: TransportConfig::default(),
            trust: ServerTrust::default(),
            server_name: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            socket: SocketConfig::default(),
            link: LinkSimulation::default(),
        }
    }
}

impl ClientConfig {
    /// The default configuration with the given trust.
    pub fn with_trust(trust: ServerTrust) -> Self {
        Self {
            trust,
            ..Self::default()
        }
    }
}

/// Why a connect failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The name.
        host: String,
        /// What the resolver said.
        source: io::Error,
    },
    /// No address of the host accepted a TCP connection.
    #[error("cannot reach {host} over TCP: {source}")]
    Tcp {
        /// The name.
        host: String,
        /// The error of the last address tried.
        source: io::Error,
    },
    /// The TLS handshake or the parameter exchange failed (certificate not
    /// trusted, name mismatch, incompatible configuration...).
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The server closed the TCP connection during the handshake.
    #[error("the server closed the connection during the handshake")]
    HandshakeClosed,
    /// TCP I/O failed during the handshake.
    #[error("handshake I/O: {0}")]
    HandshakeIo(io::Error),
    /// The UDP socket could not be set up.
    #[error("UDP socket: {0}")]
    Udp(io::Error),
    /// The server never answered over UDP (a firewall blocking UDP?).
    #[error("no UDP answer from {0}")]
    NoUdpAnswer(SocketAddr),
    /// The whole connect took longer than `connect_timeout`.
    #[error("connect timed out")]
    Timeout,
    /// The transport configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
}

/// Something that happened to a [`Client`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// The connection ended.
    Disconnected(DisconnectReason),
}

/// Driver state, shared with the service thread when it runs.
#[derive(Debug)]
struct State {
    io: UdpIo,
    conn: Connection,
    server: SocketAddr,
    events: VecDeque<ClientEvent>,
    buf: Vec<u8>,
    /// Where the first authenticated datagram came from.
    answered_from: Option<SocketAddr>,
    pace: ReadPace,
}

impl State {
    /// Sends every datagram the connection has to send (batched where the OS
    /// allows).
    fn transmit(&mut self, now: Instant) {
        // `poll_transmit` begins with `may_transmit`; asked here first, it
        // also spares fetching a batch slot for the call that finds nothing.
        while self.conn.may_transmit(now) {
            let slot = self.io.send_slot();
            let Some(n) = self.conn.poll_transmit_unguarded(now, slot) else {
                break;
            };
            self.io.commit(now, self.server, n);
        }
        self.io.flush(now);
    }
}

impl DriverState for State {
    fn io(&mut self) -> &mut UdpIo {
        &mut self.io
    }

    fn pace(&mut self) -> &mut ReadPace {
        &mut self.pace
    }

    fn handle(&mut self, now: Instant, _from: SocketAddr, datagram: &mut [u8]) {
        let _ = self.conn.handle_datagram(now, datagram);
    }

    fn service_io(&mut self, now: Instant, read: bool) -> io::Result<usize> {
        self.transmit(now);
        let mut received = 0;
        if read {
            let (conn, answered_from) = (&mut self.conn, &mut self.answered_from);
            let may_stop = self.pace.may_stop_early();
            let r = self.io.receive(now, |from, datagram| {
                if conn.handle_datagram(now, datagram).is_ok() && answered_from.is_none() {
                    *answered_from = Some(from);
                }
                !(may_stop && conn.pending_messages() > 0)
            })?;
            self.pace.on_received(r);
            received = r.datagrams;
        }
        // Only what arrived or fired since the first transmit can have made
        // something new to send: an idle call skips the second look.
        let mut changed = received > 0;
        while let Some((_, n)) = self.io.pop_incoming(now, &mut self.buf) {
            let _ = self.conn.handle_datagram(now, &mut self.buf[..n]);
            changed = true;
        }
        if self.conn.poll_timeout().is_some_and(|t| t <= now) {
            self.conn.handle_timeout(now);
            changed = true;
        }
        if changed {
            self.transmit(now);
        }
        while let Some(Event::Disconnected(reason)) = self.conn.poll_event() {
            self.events.push_back(ClientEvent::Disconnected(reason));
        }
        Ok(received)
    }

    fn has_pending(&self) -> bool {
        self.conn.pending_messages() > 0 || !self.events.is_empty()
    }

    fn deadline(&self) -> Option<Instant> {
        [self.conn.poll_timeout(), self.io.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }
}

/// A connected FastNet client driven by the game loop.
///
/// ```no_run
/// use fastnet::net::{Client, ClientConfig};
/// use fastnet::session::ServerTrust;
///
/// let trust = ServerTrust::ca_pem_file("dev-cert.pem")?;
/// let mut client = Client::connect("localhost", 7778, ClientConfig::with_trust(trust))?;
/// client.send(fastnet::channels::RELIABLE_ORDERED, b"hello")?;
/// let mut buf = Vec::new();
/// loop {
///     client.service()?; // once per frame
///     while let Some(channel) = client.recv_into(&mut buf) {
///         println!("{} bytes on channel {channel}", buf.len());
///     }
/// #   break;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Client {
    state: Arc<Mutex<State>>,
    service_thread: Option<ServiceThread>,
    /// `SocketConfig::busy_wait`.
    busy_wait: Duration,
}

impl Client {
    /// Connects to `host` (a name or an IPv4/IPv6 address) on TCP `port`,
    /// blocking up to `config.connect_timeout`. Returns once the server has
    /// answered over UDP.
    pub fn connect(host: &str, port: u16, config: ClientConfig) -> Result<Self, ConnectError> {
        let deadline = Instant::now() + config.connect_timeout;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|source| ConnectError::Resolve {
                host: host.to_string(),
                source,
            })?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in addrs {
            let Some(left) = remaining(deadline) else {
                return Err(ConnectError::Timeout);
            };
            match TcpStream::connect_timeout(&addr, left) {
                Ok(stream) => {
                    let name = config
                        .server_name
                        .clone()
                        .unwrap_or_else(|| host.to_string());
                    return Self::connect_stream(stream, &name, config, deadline);
                }
                Err(e) => last = e,
            }
        }
        Err(ConnectError::Tcp {
            host: host.to_string(),
            source: last,
        })
    }

    /// Runs the handshake on an open TCP stream, then the first UDP exchange.
    fn connect_stream(
        mut stream: TcpStream,
        server_name: &str,
        config: ClientConfig,
        deadline: Instant,
    ) -> Result<Self, ConnectError> {
        config.transport.validate()?;
        stream
            .set_nodelay(true)
            .map_err(ConnectError::HandshakeIo)?;
        let params = SessionParams::from_config(&config.transport);
        let mut hs = ClientHandshake::new(server_name, config.trust.clone(), params)?;
        let mut out = Vec::new();
        let mut inbuf = vec![0u8; HANDSHAKE_READ_BYTES];
        loop {
            hs.write_tls(&mut out);
            if !out.is_empty() {
                stream.write_all(&out).map_err(ConnectError::HandshakeIo)?;
                out.clear();
            }
            if hs.is_done() {
                break;
            }
            let left = remaining(deadline).ok_or(ConnectError::Timeout)?;
            stream
                .set_read_timeout(Some(left))
                .map_err(ConnectError::HandshakeIo)?;
            let n = match stream.read(&mut inbuf) {
                Ok(0) => return Err(ConnectError::HandshakeClosed),
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ConnectError::Timeout)
                }
                Err(e) => return Err(ConnectError::HandshakeIo(e)),
            };
            hs.read_tls(&inbuf[..n])?;
        }
        let outcome = hs.take_outcome().ok_or(ConnectError::HandshakeClosed)?;
        let tcp_peer = stream.peer_addr().map_err(ConnectError::HandshakeIo)?;
        let server = outcome
            .peer_params
            .udp_target(tcp_peer.ip())
            .ok_or(ConnectError::NoUdpAnswer(tcp_peer))?;
        drop(stream);

        let local: SocketAddr = if server.is_ipv6() {
            "[::]:0".parse().expect("valid")
        } else {
            "0.0.0.0:0".parse().expect("valid")
        };
        let (socket, report) = bind_udp(local, &config.socket).map_err(ConnectError::Udp)?;
        if !report.refused.is_empty() {
            tracing::debug!(refused = ?report.refused, "some socket options were refused");
        }
        let max_datagram = config.transport.max_datagram_bytes();
        let io = UdpIo::new(socket, &config.link, &config.socket, max_datagram)
            .map_err(ConnectError::Udp)?;
        let busy_wait = config.socket.busy_wait;
        let now = Instant::now();
        let conn = Connection::new(Arc::new(config.transport), outcome.keys, now)?;
        let mut state = State {
            io,
            conn,
            server,
            events: VecDeque::new(),
            buf: vec![0; max_datagram],
            answered_from: None,
            pace: ReadPace::default(),
        };
        // The first packet proves our keys to the server and binds our address;
        // repeat it until the server answers.
        let mut next_ping = now;
        let mut retry = FIRST_PACKET_RETRY_MIN;
        while state.conn.largest_received().is_none() {
            let now = Instant::now();
            if now >= deadline {
                return Err(ConnectError::NoUdpAnswer(server));
            }
            if now >= next_ping {
                state.conn.ping();
                next_ping = now + retry;
                retry = (retry * 2).min(FIRST_PACKET_RETRY_MAX);
            }
            state.service_io(now, true).map_err(ConnectError::Udp)?;
            if state.conn.largest_received().is_some() {
                break;
            }
            let wait = next_ping
                .min(deadline)
                .saturating_duration_since(Instant::now());
            state.io.wait(wait).map_err(ConnectError::Udp)?;
        }
        // A server that answers from the address we sent to (the usual case:
        // not a multi-homed host answering from another address) gets a
        // connected socket: the kernel drops other sources and sends skip
        // the route lookup.
        if state.answered_from == Some(server) {
            state.io.connect(server).map_err(ConnectError::Udp)?;
        }
        Ok(Self {
            state: Arc::new(Mutex::new(state)),
            service_thread: None,
            busy_wait,
        })
    }

    /// Does all pending I/O without blocking: receives, runs timers, sends.
    /// Call it once per frame (or more often).
    ///
    /// Called in a tight loop (calls less than 200 µs apart), a call stops
    /// reading once a datagram has given it a message, so you get it at once;
    /// the next call reads on.
    pub fn service(&mut self) -> io::Result<()> {
        let read = self.service_thread.is_none();
        let mut s = lock(&self.state);
        let now = Instant::now();
        s.pace.on_call(now);
        s.service_io(now, read)?;
        Ok(())
    }

    /// Sends what is queued, then, unless a message already waits, waits up
    /// to `max_wait` for a datagram or the next protocol deadline (whichever
    /// comes first) and services again. With `SocketConfig::busy_wait` it
    /// spins that long before sleeping.
    ///
    /// A `max_wait` of a frame (say 16 ms) costs nothing when traffic flows: the
    /// wait ends with the first datagram. Waits shorter than the kernel tick
    /// (1 to 10 ms) arm a high-resolution timer, which on virtual machines
    /// costs a hypervisor exit per wait.
    pub fn service_for(&mut self, max_wait: Duration) -> io::Result<()> {
        service_for(
            &self.state,
            self.service_thread.is_some(),
            max_wait,
            self.busy_wait,
        )
    }

    /// Sets how long `service_for` spins on the socket before sleeping (see
    /// `SocketConfig::busy_wait`); zero sleeps at once.
    pub fn set_busy_wait(&mut self, budget: Duration) {
        self.busy_wait = budget;
    }

    /// Turns on UDP generic receive offload ([`SocketConfig::gro`]) for a
    /// socket bound without it, for when bulk data starts to arrive (an
    /// asset download). A running service thread is stopped and started
    /// again around the switch, so it reads runs too. Returns whether GRO is
    /// on: `false` without batching, off Linux, or where the kernel (before
    /// 5.0) refuses it, and receives then stay as they were.
    pub fn enable_gro(&mut self) -> io::Result<bool> {
        ServiceThread::paused_around(&mut self.service_thread, &self.state, UdpIo::enable_gro)
    }

    /// Counters of the socket's system calls.
    pub fn io_stats(&self) -> IoStats {
        lock(&self.state).io.stats()
    }

    /// Starts the background service thread (see the module docs of
    /// `net::service`): from now on it reads the socket and keeps the
    /// connection alive even when `service` is not called for a long time.
    pub fn start_service_thread(&mut self) -> io::Result<()> {
        if self.service_thread.is_some() {
            return Ok(());
        }
        self.service_thread = Some(ServiceThread::start(&self.state)?);
        Ok(())
    }

    /// Whether the background service thread runs.
    pub fn has_service_thread(&self) -> bool {
        self.service_thread.is_some()
    }

    /// Queues a message; it goes out with the next `service`.
    pub fn send(&mut self, channel: ChannelId, data: &[u8]) -> Result<(), SendError> {
        lock(&self.state).conn.send(channel, data)
    }

    /// Queues a message and sends it at once (one fewer frame of latency).
    pub fn send_now(&mut self, channel: ChannelId, data: &[u8]) -> Result<(), SendError> {
        let mut s = lock(&self.state);
        s.conn.send(channel, data)?;
        s.transmit(Instant::now());
        Ok(())
    }

    /// Sends what is queued now, without reading the socket or waiting (a
    /// cheaper `service` for a loop that answers each message as it takes it).
    pub fn flush(&mut self) {
        lock(&self.state).transmit(Instant::now());
    }

    /// Takes the next message, swapping its bytes into `out`; returns its channel.
    pub fn recv_into(&mut self, out: &mut Vec<u8>) -> Option<ChannelId> {
        lock(&self.state).conn.recv_into(out)
    }

    /// Takes the next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        lock(&self.state).events.pop_front()
    }

    /// Whether the connection is up.
    pub fn is_connected(&self) -> bool {
        lock(&self.state).conn.is_established()
    }

    /// Smoothed round-trip time.
    pub fn rtt(&self) -> Duration {
        lock(&self.state).conn.rtt()
    }

    /// Connection statistics.
    pub fn stats(&self) -> ConnectionStats {
        lock(&self.state).conn.stats()
    }

    /// The server's UDP address.
    pub fn server_addr(&self) -> SocketAddr {
        lock(&self.state).server
    }

    /// This client's UDP address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        lock(&self.state).io.local_addr()
    }

    /// Runs `f` on the underlying connection (advanced use: key updates,
    /// queue sizes).
    pub fn with_connection<R>(&mut self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(&mut lock(&self.state).conn)
    }

    /// Closes the connection with `code`, telling the server at once.
    pub fn disconnect(&mut self, code: u32) {
        let mut s = lock(&self.state);
        s.conn.close(code);
        let _ = s.service_io(Instant::now(), false);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.service_thread = None;
        let mut s = lock(&self.state);
        if s.conn.is_established() {
            s.conn.close(close_code::NORMAL);
            let _ = s.service_io(Instant::now(), false);
        }
    }
}

fn remaining(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then_some(left)
}
