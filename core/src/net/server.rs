//! The game-loop server: accepts TCP connections and runs their TLS 1.3
//! handshakes without blocking (each with a timeout, in a bounded table), and
//! serves every established session on one UDP socket through an [`Endpoint`].
//! A stalled or malicious TCP client costs one table slot until its timeout and
//! never delays anybody's data.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{ChannelId, TransportConfig};
use crate::error::{close_code, SendError};
use crate::net::endpoint::{Endpoint, EndpointStats, PeerEvent, PeerId};
use crate::net::io::{IoStats, LinkSimulation, UdpIo};
use crate::net::service::{lock, service_for, DriverState, ReadPace, ServiceThread};
use crate::net::socket::{bind_udp, SocketConfig, SocketReport};
use crate::session::{ServerCredentials, ServerHandshake, SessionParams};
use crate::stats::ConnectionStats;

/// Default time a client has to complete its handshake (TCP + TLS + parameters).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on handshakes in progress. When full, the oldest connection
/// that has not sent a byte is dropped (else the oldest), so neither stalled
/// connections nor a stream of new ones can lock a progressing client out.
pub const DEFAULT_MAX_PENDING_HANDSHAKES: usize = 1024;
/// A server that services in a tight loop (without waiting) asks the
/// readiness queue about its TCP side at most this often: one system call,
/// whatever the number of connections (about 1 % of a spinning core).
const TCP_READINESS_INTERVAL: Duration = Duration::from_micros(100);
/// Datagrams for an unknown connection kept while handshakes are pending: a
/// client's first datagram can overtake the end of its handshake.
const EARLY_DATAGRAMS: usize = 4;
/// The TCP listener's token in the readiness queue; handshakes take the
/// tokens after it.
const LISTENER_TOKEN: mio::Token = mio::Token(1);
/// Bytes read from one TCP connection per pump.
const HANDSHAKE_READ_BYTES: usize = 16 << 10;

/// How a [`Server`] runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Channels, limits and timers (clients must use the same channel table).
    pub transport: TransportConfig,
    /// Certificate chain and key presented to clients.
    pub credentials: Arc<ServerCredentials>,
    /// The UDP address clients are told to use, when it differs from the bound
    /// one (behind NAT, port mapping or a proxy). Default: the bound address,
    /// with a wildcard IP replaced by the address the client reached over TCP.
    pub advertised_udp_addr: Option<SocketAddr>,
    /// Time a client has to finish its handshake.
    pub handshake_timeout: Duration,
    /// Handshakes in progress at most.
    pub max_pending_handshakes: usize,
    /// UDP socket options.
    pub socket: SocketConfig,
    /// Simulated network conditions on the server's socket (testing).
    pub link: LinkSimulation,
}

impl ServerConfig {
    /// Defaults around the given credentials.
    pub fn new(credentials: Arc<ServerCredentials>) -> Self {
        Self {
            transport: TransportConfig::default(),
            credentials,
            advertised_udp_addr: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_pending_handshakes: DEFAULT_MAX_PENDING_HANDSHAKES,
            socket: SocketConfig::default(),
            link: LinkSimulation::default(),
        }
    }
}

/// Counters of the TCP side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandshakeStats {
    /// TCP connections accepted.
    pub accepted: u64,
    /// Handshakes completed.
    pub completed: u64,
    /// Handshakes that failed (bad TLS, untrusted, incompatible, closed).
    pub failed: u64,
    /// Handshakes dropped at the timeout.
    pub timed_out: u64,
    /// Handshakes dropped because the table was full (oldest silent one first).
    pub evicted: u64,
}

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

#[derive(Debug)]
struct State {
    io: UdpIo,
    listener: mio::net::TcpListener,
    endpoint: Endpoint,
    pending: VecDeque<Pending>,
    next_token: usize,
    ready: Vec<mio::Token>,
    params: SessionParams,
    credentials: Arc<ServerCredentials>,
    handshake_timeout: Duration,
    max_pending: usize,
    last_readiness_check: Option<Instant>,
    handshake_stats: HandshakeStats,
    buf: Vec<u8>,
    tcp_buf: Vec<u8>,
    early: EarlyDatagrams,
    pace: ReadPace,
}

/// Datagrams addressed to no known connection while handshakes are pending,
/// retried once the handshakes have been pumped in the same service pass.
#[derive(Debug)]
struct EarlyDatagrams {
    /// `EARLY_DATAGRAMS` slots of the datagram limit each.
    storage: Box<[u8]>,
    slot_bytes: usize,
    kept: Vec<(SocketAddr, usize)>,
}

impl EarlyDatagrams {
    fn new(slot_bytes: usize) -> Self {
        Self {
            storage: vec![0; EARLY_DATAGRAMS * slot_bytes].into_boxed_slice(),
            slot_bytes,
            kept: Vec::with_capacity(EARLY_DATAGRAMS),
        }
    }

    /// Keeps a copy if there is room; returns whether it did.
    fn keep(&mut self, from: SocketAddr, datagram: &[u8]) -> bool {
        let i = self.kept.len();
        if i == EARLY_DATAGRAMS || datagram.len() > self.slot_bytes {
            return false;
        }
        let start = i * self.slot_bytes;
        self.storage[start..start + datagram.len()].copy_from_slice(datagram);
        self.kept.push((from, datagram.len()));
        true
    }
}

impl State {
    /// Accepts every waiting connection; their tokens go to `fresh`.
    fn accept(&mut self, now: Instant, fresh: &mut Vec<mio::Token>) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    self.handshake_stats.accepted += 1;
                    let _ = stream.set_nodelay(true);
                    if self.pending.len() >= self.max_pending {
                        let victim = self
                            .pending
                            .iter()
                            .position(|p| p.received == 0)
                            .unwrap_or(0);
                        if let Some(mut p) = self.pending.remove(victim) {
                            let _ = self.io.registry().deregister(&mut p.stream);
                        }
                        self.handshake_stats.evicted += 1;
                    }
                    let token = mio::Token(self.next_token);
                    self.next_token = self
                        .next_token
                        .checked_add(1)
                        .unwrap_or(LISTENER_TOKEN.0 + 1);
                    let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
                    if let Err(e) = self.io.registry().register(&mut stream, token, interest) {
                        tracing::debug!(error = %e, "cannot watch a TCP connection");
                        self.handshake_stats.failed += 1;
                        continue;
                    }
                    let mut params = self.params.clone();
                    if params.udp_address().is_none_or(|a| a.ip().is_unspecified()) {
                        // Tell the client the address it reached us at, with our UDP port.
                        if let (Ok(local), Some(udp)) =
                            (stream.local_addr(), self.params.udp_address())
                        {
                            // `to_canonical`: a dual-stack listener sees IPv4 clients
                            // as ::ffff:a.b.c.d; tell them the plain IPv4 address.
                            let ip = local.ip().to_canonical();
                            params = params.with_udp_address(SocketAddr::new(ip, udp.port()));
                        }
                    }
                    match ServerHandshake::new(self.credentials.clone(), params) {
                        Ok(handshake) => {
                            fresh.push(token);
                            self.pending.push_back(Pending {
                                stream,
                                token,
                                handshake,
                                started: now,
                                received: 0,
                                out: Vec::new(),
                                written: 0,
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, %peer, "cannot start handshake");
                            self.handshake_stats.failed += 1;
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

    /// Accepts new connections and advances the handshakes whose sockets
    /// fired; drops those past their timeout.
    fn pump_handshakes(&mut self, now: Instant) {
        let check = self
            .last_readiness_check
            .is_none_or(|t| now >= t + TCP_READINESS_INTERVAL);
        if !check && !self.io.has_ready() {
            return;
        }
        if check {
            self.last_readiness_check = Some(now);
            if let Err(e) = self.io.poll_ready_now() {
                tracing::debug!(error = %e, "readiness check failed");
            }
            self.expire_handshakes(now);
        }
        let mut ready = std::mem::take(&mut self.ready);
        self.io.take_ready(&mut ready);
        if let Some(at) = ready.iter().position(|&t| t == LISTENER_TOKEN) {
            ready.swap_remove(at);
            // New connections may hold their ClientHello already: `accept`
            // lists them for a first pump.
            self.accept(now, &mut ready);
        }
        for token in ready.drain(..) {
            if let Some(i) = self.pending.iter().position(|p| p.token == token) {
                self.pump_at(i, now);
            }
        }
        self.ready = ready;
    }

    /// Sends every datagram the endpoint has to send (batched where the OS
    /// allows).
    fn transmit(&mut self, now: Instant) {
        loop {
            let slot = self.io.send_slot();
            let Some((to, n)) = self.endpoint.poll_transmit(now, slot) else {
                break;
            };
            self.io.commit(now, to, n);
        }
        self.io.flush(now);
    }

    /// Drops handshakes past their timeout.
    fn expire_handshakes(&mut self, now: Instant) {
        let timeout = self.handshake_timeout;
        let registry = self.io.registry();
        let stats = &mut self.handshake_stats;
        self.pending.retain_mut(|p| {
            let alive = now < p.started + timeout;
            if !alive {
                let _ = registry.deregister(&mut p.stream);
                stats.timed_out += 1;
            }
            alive
        });
    }

    /// Advances handshake `i`; on completion its session joins the endpoint.
    fn pump_at(&mut self, i: usize, now: Instant) {
        let result = self.pending[i].pump(&mut self.tcp_buf);
        if matches!(result, PumpResult::Continue) {
            return;
        }
        let mut p = self.pending.remove(i).expect("index in range");
        let _ = self.io.registry().deregister(&mut p.stream);
        if matches!(result, PumpResult::Failed) {
            self.handshake_stats.failed += 1;
            return;
        }
        match p.handshake.take_outcome() {
            Some(outcome) => match self.endpoint.insert(outcome.keys, None, now) {
                Ok(_) => self.handshake_stats.completed += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "session rejected");
                    self.handshake_stats.failed += 1;
                }
            },
            None => self.handshake_stats.failed += 1,
        }
    }
}

impl DriverState for State {
    fn io(&mut self) -> &mut UdpIo {
        &mut self.io
    }

    fn pace(&mut self) -> &mut ReadPace {
        &mut self.pace
    }

    fn handle(&mut self, now: Instant, from: SocketAddr, datagram: &mut [u8]) {
        self.endpoint.handle_datagram(now, from, datagram);
    }

    fn service_io(&mut self, now: Instant, read: bool) -> io::Result<usize> {
        self.transmit(now);
        self.pump_handshakes(now);
        let mut received = 0;
        if read {
            let (endpoint, early) = (&mut self.endpoint, &mut self.early);
            let handshaking = !self.pending.is_empty();
            let may_stop = self.pace.may_stop_early();
            let r = self.io.receive(now, |from, datagram| {
                // Kept for a retry once the handshakes are pumped; handled (and
                // counted) by the endpoint once, then.
                let kept = handshaking
                    && endpoint.is_for_unknown_connection(datagram)
                    && early.keep(from, datagram);
                if !kept {
                    endpoint.handle_datagram(now, from, datagram);
                }
                !(may_stop && endpoint.has_pending())
            })?;
            self.pace.on_received(r);
            received = r.datagrams;
        }
        if !self.early.kept.is_empty() {
            // Perhaps a client whose handshake completed since the last look
            // at the TCP side: look now, then try these datagrams once more.
            self.last_readiness_check = None;
            self.pump_handshakes(now);
            let early = &mut self.early;
            for (i, &(from, len)) in early.kept.iter().enumerate() {
                let start = i * early.slot_bytes;
                self.endpoint
                    .handle_datagram(now, from, &mut early.storage[start..start + len]);
            }
            early.kept.clear();
        }
        while let Some((from, n)) = self.io.pop_incoming(now, &mut self.buf) {
            self.endpoint.handle_datagram(now, from, &mut self.buf[..n]);
        }
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
        }
        // An idle call (nothing read, due or accepted since the first
        // transmit) skips the second one.
        if self.endpoint.may_transmit() {
            self.transmit(now);
        }
        Ok(received)
    }

    fn has_pending(&self) -> bool {
        self.endpoint.has_pending()
    }

    fn deadline(&self) -> Option<Instant> {
        // TCP activity wakes a waiting server by itself; only timeouts need a timer.
        let handshakes = self
            .pending
            .iter()
            .map(|p| p.started + self.handshake_timeout)
            .min();
        [
            self.endpoint.poll_timeout(),
            self.io.next_deadline(),
            handshakes,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// A FastNet server driven by the game loop (see the module docs).
#[derive(Debug)]
pub struct Server {
    state: Arc<Mutex<State>>,
    service_thread: Option<ServiceThread>,
    /// `SocketConfig::busy_wait`.
    busy_wait: Duration,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    socket_report: SocketReport,
}

impl Server {
    /// Binds the UDP socket and the TCP listener. A wildcard IPv6 address
    /// (`[::]`) serves IPv4 clients too where the OS allows dual stack.
    pub fn bind(
        udp_addr: SocketAddr,
        tcp_addr: SocketAddr,
        config: ServerConfig,
    ) -> io::Result<Self> {
        config
            .transport
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (socket, socket_report) = bind_udp(udp_addr, &config.socket)?;
        let udp_addr = socket.local_addr()?;
        let mut listener = mio::net::TcpListener::from_std(bind_tcp(tcp_addr)?);
        let tcp_addr = listener.local_addr()?;
        let advertised = config.advertised_udp_addr.unwrap_or(udp_addr);
        let params = SessionParams::from_config(&config.transport).with_udp_address(advertised);
        let max_datagram = config.transport.max_datagram_bytes();
        let mut io = UdpIo::new(socket, &config.link, &config.socket, max_datagram)?;
        io.registry()
            .register(&mut listener, LISTENER_TOKEN, mio::Interest::READABLE)?;
        let state = State {
            io,
            listener,
            next_token: LISTENER_TOKEN.0 + 1,
            ready: Vec::new(),
            endpoint: Endpoint::new(Arc::new(config.transport)),
            pending: VecDeque::new(),
            params,
            credentials: config.credentials,
            handshake_timeout: config.handshake_timeout,
            max_pending: config.max_pending_handshakes.max(1),
            last_readiness_check: None,
            handshake_stats: HandshakeStats::default(),
            buf: vec![0; max_datagram],
            early: EarlyDatagrams::new(max_datagram),
            tcp_buf: vec![0; HANDSHAKE_READ_BYTES],
            pace: ReadPace::default(),
        };
        Ok(Self {
            state: Arc::new(Mutex::new(state)),
            service_thread: None,
            busy_wait: config.socket.busy_wait,
            udp_addr,
            tcp_addr,
            socket_report,
        })
    }

    /// The bound UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The bound TCP address (handshakes).
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// What the UDP socket set-up managed to apply.
    pub fn socket_report(&self) -> &SocketReport {
        &self.socket_report
    }

    /// Does all pending I/O without blocking: handshakes, datagrams, timers,
    /// transmissions. Call it every frame (or more often).
    ///
    /// Called in a tight loop (calls less than 200 µs apart), a call stops
    /// reading once a datagram has given it a message or an event, so you
    /// can answer at once; the next call sends the answer, then reads on.
    pub fn service(&mut self) -> io::Result<()> {
        let read = self.service_thread.is_none();
        let mut s = lock(&self.state);
        let now = Instant::now();
        s.pace.on_call(now);
        s.service_io(now, read)?;
        Ok(())
    }

    /// Sends what is queued, then, unless a message or event already waits,
    /// waits up to `max_wait` for a datagram, a TCP handshake's progress or
    /// the next deadline (whichever comes first) and services again. With
    /// `SocketConfig::busy_wait` it spins that long before sleeping.
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

    /// Sends what is queued now, without reading the socket or waiting: for a
    /// server that answers a message as soon as it has it.
    pub fn flush(&mut self) {
        let mut s = lock(&self.state);
        s.transmit(Instant::now());
    }

    /// Sets how long `service_for` spins on the socket before sleeping (see
    /// `SocketConfig::busy_wait`); zero sleeps at once.
    pub fn set_busy_wait(&mut self, budget: Duration) {
        self.busy_wait = budget;
    }

    /// Counters of the UDP socket's system calls.
    pub fn io_stats(&self) -> IoStats {
        lock(&self.state).io.stats()
    }

    /// Starts the background service thread (see `net::service`).
    pub fn start_service_thread(&mut self) -> io::Result<()> {
        if self.service_thread.is_some() {
            return Ok(());
        }
        self.service_thread = Some(ServiceThread::start(&self.state)?);
        Ok(())
    }

    /// Takes the next peer event.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        lock(&self.state).endpoint.poll_event()
    }

    /// Takes the next message from any peer, swapping it into `out`.
    pub fn recv_into(&mut self, out: &mut Vec<u8>) -> Option<(PeerId, ChannelId)> {
        lock(&self.state).endpoint.recv_into(out)
    }

    /// Queues a message for a peer.
    pub fn send(&mut self, peer: PeerId, channel: ChannelId, data: &[u8]) -> Result<(), SendError> {
        lock(&self.state).endpoint.send(peer, channel, data)
    }

    /// Queues a message for every connected peer; returns how many accepted it.
    pub fn broadcast(&mut self, channel: ChannelId, data: &[u8]) -> usize {
        let mut s = lock(&self.state);
        let peers: Vec<PeerId> = s.endpoint.peers().collect();
        peers
            .into_iter()
            .filter(|&p| s.endpoint.is_connected(p) && s.endpoint.send(p, channel, data).is_ok())
            .count()
    }

    /// Closes a peer's connection with `code`.
    pub fn disconnect(&mut self, peer: PeerId, code: u32) {
        let mut s = lock(&self.state);
        s.endpoint.disconnect(peer, code);
        let _ = s.service_io(Instant::now(), false);
    }

    /// Peers with an established connection.
    pub fn peer_count(&self) -> usize {
        let s = lock(&self.state);
        s.endpoint
            .peers()
            .filter(|&p| s.endpoint.is_connected(p))
            .count()
    }

    /// A peer's connection statistics.
    pub fn peer_stats(&self, peer: PeerId) -> Option<ConnectionStats> {
        lock(&self.state).endpoint.peer_stats(peer)
    }

    /// A peer's UDP address.
    pub fn peer_addr(&self, peer: PeerId) -> Option<SocketAddr> {
        lock(&self.state).endpoint.peer_addr(peer)
    }

    /// Datagrams dropped before reaching a connection.
    pub fn endpoint_stats(&self) -> EndpointStats {
        lock(&self.state).endpoint.stats()
    }

    /// Counters of the handshake side.
    pub fn handshake_stats(&self) -> HandshakeStats {
        lock(&self.state).handshake_stats
    }

    /// Handshakes in progress.
    pub fn pending_handshakes(&self) -> usize {
        lock(&self.state).pending.len()
    }

    /// The transport configuration.
    pub fn transport_config(&self) -> Arc<TransportConfig> {
        lock(&self.state).endpoint.config().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.service_thread = None;
        let mut s = lock(&self.state);
        let peers: Vec<PeerId> = s.endpoint.peers().collect();
        for p in peers {
            s.endpoint.disconnect(p, close_code::NORMAL);
        }
        let _ = s.service_io(Instant::now(), false);
    }
}

/// Binds a non-blocking TCP listener (dual stack for `[::]`).
fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(false);
    }
    #[cfg(not(windows))]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}
