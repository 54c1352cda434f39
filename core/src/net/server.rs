//! The game-loop server: serves every established session on one UDP socket
//! through an [`Endpoint`], driven by the game loop's `service` calls. TCP
//! connections and their TLS 1.3 handshakes run on a thread of their own
//! (`net::handshaker`: a bounded table, each under a timeout), so a stalled,
//! slow or malicious TCP client costs one table slot until its timeout and
//! never delays anybody's data, and the game thread spends no time on TLS.
//! The game thread's only source is the UDP socket, in which it sleeps.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{ChannelId, TransportConfig};
use crate::error::{close_code, SendError};
use crate::net::endpoint::{Endpoint, EndpointStats, PeerEvent, PeerId};
pub use crate::net::handshaker::HandshakeStats;
use crate::net::handshaker::{HandshakeSetup, Handshaker};
use crate::net::io::{IoStats, LinkSimulation, UdpIo};
use crate::net::service::{lock, service_for, DriverState, ReadPace, ServiceThread};
use crate::net::socket::{bind_udp, SocketConfig, SocketReport};
use crate::session::{ServerCredentials, SessionParams};
use crate::stats::ConnectionStats;

/// Default time a client has to complete its handshake (TCP + TLS + parameters).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on handshakes in progress. When full, the oldest connection
/// that has not sent a byte is dropped (else the oldest), so neither stalled
/// connections nor a stream of new ones can lock a progressing client out.
pub const DEFAULT_MAX_PENDING_HANDSHAKES: usize = 1024;
/// Datagrams for an unknown connection kept while handshakes are in flight:
/// a client's first datagram usually overtakes the end of its handshake.
const EARLY_DATAGRAMS: usize = 4;

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

#[derive(Debug)]
struct State {
    io: UdpIo,
    endpoint: Endpoint,
    handshakes: Handshaker,
    buf: Vec<u8>,
    early: EarlyDatagrams,
    pace: ReadPace,
}

/// Datagrams addressed to no known connection while handshakes are in
/// flight, retried when sessions come in from the handshake thread.
#[derive(Debug)]
struct EarlyDatagrams {
    /// `EARLY_DATAGRAMS` slots of the datagram limit each.
    storage: Box<[u8]>,
    slot_bytes: usize,
    /// Source, length and slot of each kept datagram, oldest first.
    kept: Vec<(SocketAddr, usize, usize)>,
}

impl EarlyDatagrams {
    fn new(slot_bytes: usize) -> Self {
        Self {
            storage: vec![0; EARLY_DATAGRAMS * slot_bytes].into_boxed_slice(),
            slot_bytes,
            kept: Vec::with_capacity(EARLY_DATAGRAMS),
        }
    }

    /// Keeps a copy, in place of the oldest when full (a stale datagram of a
    /// handshake that never ends cannot lock newer ones out); returns whether
    /// it kept it.
    fn keep(&mut self, from: SocketAddr, datagram: &[u8]) -> bool {
        if datagram.len() > self.slot_bytes {
            return false;
        }
        let slot = if self.kept.len() == EARLY_DATAGRAMS {
            self.kept.remove(0).2
        } else {
            (0..EARLY_DATAGRAMS)
                .find(|s| self.kept.iter().all(|k| k.2 != *s))
                .expect("a free slot")
        };
        let start = slot * self.slot_bytes;
        self.storage[start..start + datagram.len()].copy_from_slice(datagram);
        self.kept.push((from, datagram.len(), slot));
        true
    }
}

impl State {
    /// Sends every datagram the endpoint has to send (batched where the OS
    /// allows).
    fn transmit(&mut self, now: Instant) {
        // `poll_transmit` answers `None` inline when no peer may send;
        // asked here first, that also spares fetching a batch slot.
        while self.endpoint.may_transmit() {
            let slot = self.io.send_slot();
            let Some((to, n)) = self.endpoint.poll_transmit(now, slot) else {
                break;
            };
            self.io.commit(now, to, n);
        }
        self.io.flush(now);
    }
}

/// Takes in the sessions the handshake thread finished, then retries the
/// datagrams kept for unknown connections: each is handled if its session
/// is in now, kept again while handshakes are still in flight, else handled
/// (and counted as unknown) by the endpoint.
fn admit_sessions(
    endpoint: &mut Endpoint,
    handshakes: &Handshaker,
    early: &mut EarlyDatagrams,
    now: Instant,
) {
    let admitted =
        handshakes.take_finished(|outcome| match endpoint.insert(outcome.keys, None, now) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "session rejected");
                false
            }
        });
    if early.kept.is_empty() {
        return;
    }
    let in_flight = handshakes.in_flight();
    if admitted == 0 && in_flight {
        return;
    }
    let mut i = 0;
    while i < early.kept.len() {
        let (from, len, slot) = early.kept[i];
        let start = slot * early.slot_bytes;
        let datagram = &mut early.storage[start..start + len];
        if in_flight && endpoint.is_for_unknown_connection(datagram) {
            i += 1;
            continue;
        }
        endpoint.handle_datagram(now, from, datagram);
        early.kept.remove(i);
    }
}

/// Hands a received datagram to the endpoint, or keeps it while its session
/// may still be on its way; an empty one is the handshake thread's doorbell.
fn on_datagram(
    endpoint: &mut Endpoint,
    handshakes: &Handshaker,
    early: &mut EarlyDatagrams,
    now: Instant,
    from: SocketAddr,
    datagram: &mut [u8],
) {
    if datagram.is_empty() {
        admit_sessions(endpoint, handshakes, early, now);
        return;
    }
    // Two atomic loads first: the lookup only while handshakes are in flight.
    let kept = handshakes.in_flight()
        && endpoint.is_for_unknown_connection(datagram)
        && early.keep(from, datagram);
    if !kept {
        endpoint.handle_datagram(now, from, datagram);
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
        on_datagram(
            &mut self.endpoint,
            &self.handshakes,
            &mut self.early,
            now,
            from,
            datagram,
        );
    }

    fn service_io(&mut self, now: Instant, read: bool) -> io::Result<usize> {
        self.transmit(now);
        admit_sessions(&mut self.endpoint, &self.handshakes, &mut self.early, now);
        let mut received = 0;
        if read {
            let may_stop = self.pace.may_stop_early();
            let Self {
                io,
                endpoint,
                handshakes,
                early,
                ..
            } = self;
            let r = io.receive(now, |from, datagram| {
                on_datagram(endpoint, handshakes, early, now, from, datagram);
                !(may_stop && endpoint.has_pending())
            })?;
            self.pace.on_received(r);
            received = r.datagrams;
        }
        while let Some((from, n)) = self.io.pop_incoming(now, &mut self.buf) {
            on_datagram(
                &mut self.endpoint,
                &self.handshakes,
                &mut self.early,
                now,
                from,
                &mut self.buf[..n],
            );
        }
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
        }
        // An idle call (nothing read, due or admitted since the first
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
        // The handshake thread wakes a waiting server itself (the doorbell);
        // only the sessions' timers and the link simulation need a timer.
        [self.endpoint.poll_timeout(), self.io.next_deadline()]
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
        let listener = bind_tcp(tcp_addr)?;
        let tcp_addr = listener.local_addr()?;
        let advertised = config.advertised_udp_addr.unwrap_or(udp_addr);
        let params = SessionParams::from_config(&config.transport).with_udp_address(advertised);
        let max_datagram = config.transport.max_datagram_bytes();
        let mut io = UdpIo::new(socket, &config.link, &config.socket, max_datagram)?;
        // The UDP socket is the game thread's only source: it sleeps in the
        // receive.
        io.wait_in_receive()?;
        let setup = HandshakeSetup {
            credentials: config.credentials,
            params,
            timeout: config.handshake_timeout,
            max_pending: config.max_pending_handshakes.max(1),
        };
        let handshakes = Handshaker::start(listener, setup, udp_addr)?;
        let state = State {
            io,
            endpoint: Endpoint::new(Arc::new(config.transport)),
            handshakes,
            buf: vec![0; max_datagram],
            early: EarlyDatagrams::new(max_datagram),
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

    /// Turns on UDP generic receive offload ([`SocketConfig::gro`]) for a
    /// socket bound without it, for when bulk data starts to arrive (an
    /// asset download). A running service thread is stopped and started
    /// again around the switch, so it reads runs too. Returns whether GRO is
    /// on: `false` without batching, off Linux, or where the kernel (before
    /// 5.0) refuses it, and receives then stay as they were.
    pub fn enable_gro(&mut self) -> io::Result<bool> {
        ServiceThread::paused_around(&mut self.service_thread, &self.state, UdpIo::enable_gro)
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
        lock(&self.state).handshakes.stats()
    }

    /// Handshakes in progress.
    pub fn pending_handshakes(&self) -> usize {
        lock(&self.state).handshakes.pending()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(early: &EarlyDatagrams) -> Vec<Vec<u8>> {
        early
            .kept
            .iter()
            .map(|&(_, len, slot)| {
                let start = slot * early.slot_bytes;
                early.storage[start..start + len].to_vec()
            })
            .collect()
    }

    #[test]
    fn early_datagrams_keep_the_newest_within_their_bound() {
        let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut early = EarlyDatagrams::new(8);
        assert!(!early.keep(from, &[0; 9]), "longer than a slot");
        for i in 0..EARLY_DATAGRAMS as u8 + 2 {
            assert!(early.keep(from, &[i; 3]));
        }
        // The two oldest made room; order and bytes are kept.
        let expected: Vec<Vec<u8>> = (2..EARLY_DATAGRAMS as u8 + 2).map(|i| vec![i; 3]).collect();
        assert_eq!(kept(&early), expected);
        early.kept.remove(1);
        assert!(early.keep(from, &[42; 5]));
        assert_eq!(kept(&early).last().unwrap(), &vec![42; 5]);
        assert_eq!(kept(&early).len(), EARLY_DATAGRAMS);
    }
}
