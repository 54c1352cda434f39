//! The game-loop drivers (`net::Client`, `net::Server`) on real loopback
//! sockets, IPv4 and IPv6: echo on every channel kind, certificate checks, a
//! stalled TCP client, handshakes on the server's own thread, disconnect
//! reasons, the service thread, and attacks with real datagrams from other
//! sources.

mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{check_message, message};
use fastnet::net::{
    Client, ClientConfig, ClientEvent, ConnectError, PeerEvent, PeerId, Server, ServerConfig,
    SocketConfig,
};
use fastnet::session::{
    ClientHandshake, DevCertificate, ServerCredentials, ServerTrust, SessionParams,
};
use fastnet::{channels, DisconnectReason, TransportConfig};

/// Upper bound on any test's wait: a hang fails instead of hanging CI.
const TEST_DEADLINE: Duration = Duration::from_secs(60);

fn dev_cert() -> DevCertificate {
    DevCertificate::generate(&["localhost", "127.0.0.1", "::1"]).unwrap()
}

fn server_on(ip: &str, dev: &DevCertificate, transport: TransportConfig) -> Server {
    let mut config = ServerConfig::new(Arc::new(
        ServerCredentials::from_dev_certificate(dev).unwrap(),
    ));
    config.transport = transport;
    let any: SocketAddr = format!("{ip}:0").parse().unwrap();
    Server::bind(any, any, config).unwrap()
}

fn trusting(dev: &DevCertificate) -> ClientConfig {
    ClientConfig::with_trust(ServerTrust::Ca(vec![dev.cert.clone()]))
}

fn ipv6_available() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

/// Services `server` (echoing every message back on its channel) until every
/// thread in `clients` has finished, then returns the events seen.
fn echo_until_done<T>(server: &mut Server, clients: &[JoinHandle<T>]) -> Vec<PeerEvent> {
    let mut events = Vec::new();
    let mut buf = Vec::new();
    let end = Instant::now() + TEST_DEADLINE;
    while !clients.iter().all(JoinHandle::is_finished) {
        assert!(Instant::now() < end, "clients did not finish in time");
        server.service_for(Duration::from_millis(1)).unwrap();
        while let Some(e) = server.poll_event() {
            events.push(e);
        }
        while let Some((peer, channel)) = server.recv_into(&mut buf) {
            let _ = server.send(peer, channel, &buf);
        }
    }
    events
}

/// Services a client until `done` returns `Some`, or panics at the deadline.
fn client_until<T>(client: &mut Client, mut done: impl FnMut(&mut Client) -> Option<T>) -> T {
    let end = Instant::now() + TEST_DEADLINE;
    loop {
        client.service_for(Duration::from_millis(1)).unwrap();
        if let Some(v) = done(client) {
            return v;
        }
        assert!(Instant::now() < end, "client timed out");
    }
}

/// One client's echo session: messages on all four channels, interleaved,
/// plus a 1 MiB reliable message; checks what comes back.
fn echo_session(host: &str, port: u16, config: ClientConfig, seed: u32) {
    let mut client = Client::connect(host, port, config).expect("connect");
    let per_channel = 100u32;
    let big = message(seed, 1 << 20);
    client.send(channels::RELIABLE_ORDERED, &big).unwrap();
    for i in 0..per_channel {
        for ch in 0..4u8 {
            client
                .send(ch, &message(i, 16 + (i as usize * 13) % 300))
                .unwrap();
        }
        if i % 20 == 0 {
            client.service().unwrap();
        }
    }
    let mut ordered = Vec::new();
    let mut unordered = HashSet::new();
    let mut unreliable = 0u32;
    let mut sequenced_last = None;
    let mut buf = Vec::new();
    client_until(&mut client, |c| {
        while let Some(ch) = c.recv_into(&mut buf) {
            let seq = check_message(&buf);
            match ch {
                channels::RELIABLE_ORDERED => ordered.push(seq),
                channels::RELIABLE_UNORDERED => assert!(unordered.insert(seq)),
                channels::UNRELIABLE => unreliable += 1,
                channels::SEQUENCED => {
                    assert!(
                        sequenced_last.is_none_or(|l| seq > l),
                        "sequenced went back"
                    );
                    sequenced_last = Some(seq);
                }
                other => panic!("unexpected channel {other}"),
            }
        }
        (ordered.len() == per_channel as usize + 1 && unordered.len() == per_channel as usize)
            .then_some(())
    });
    let mut expected = vec![seed];
    expected.extend(0..per_channel);
    assert_eq!(ordered, expected, "reliable-ordered, big message first");
    assert!(unreliable <= per_channel);
    client.disconnect(0);
}

/// The sixteen-client runs share the machine badly with each other: one at a time.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Sixteen clients echo on every channel; `batching` sets
/// `SocketConfig::batching`, `gso` and `gro` on both sides (the portable path
/// of one system call per datagram when off).
fn sixteen_clients_echo(ip: &'static str, host: &'static str, batching: bool) {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let dev = dev_cert();
    // A short idle timeout: under this load the server's receive buffer can
    // overflow and swallow all three of a client's close packets, and the
    // departure must then still be reported, as a timeout.
    let mut transport = TransportConfig::default();
    transport
        .set_idle_timeout(Duration::from_secs(5))
        .set_keep_alive_interval(Duration::from_millis(500));
    let socket = SocketConfig {
        batching,
        gso: batching,
        gro: batching,
        ..SocketConfig::default()
    };
    let mut config = ServerConfig::new(Arc::new(
        ServerCredentials::from_dev_certificate(&dev).unwrap(),
    ));
    config.transport = transport.clone();
    config.socket = socket.clone();
    let any: SocketAddr = format!("{ip}:0").parse().unwrap();
    let mut server = Server::bind(any, any, config).unwrap();
    let port = server.tcp_addr().port();
    let clients: Vec<JoinHandle<()>> = (0..16)
        .map(|i| {
            let mut config = trusting(&dev);
            config.transport = transport.clone();
            config.socket = socket.clone();
            std::thread::spawn(move || echo_session(host, port, config, 1_000_000 + i))
        })
        .collect();
    let mut events = echo_until_done(&mut server, &clients);
    for c in clients {
        c.join().expect("client thread");
    }
    let end = Instant::now() + Duration::from_secs(10);
    let departed = |events: &[PeerEvent]| {
        events
            .iter()
            .filter(|e| matches!(e, PeerEvent::Disconnected(..)))
            .count()
    };
    while departed(&events) < 16 && Instant::now() < end {
        server.service_for(Duration::from_millis(1)).unwrap();
        while let Some(e) = server.poll_event() {
            events.push(e);
        }
    }
    let mut connected = HashSet::new();
    let mut gone = HashSet::new();
    for e in &events {
        match *e {
            PeerEvent::Connected(p) => assert!(connected.insert(p), "connected twice"),
            PeerEvent::Disconnected(p, reason) => {
                assert!(connected.contains(&p), "disconnected before connected");
                assert!(gone.insert(p), "disconnected twice");
                assert!(
                    matches!(
                        reason,
                        DisconnectReason::ClosedByPeer { code: 0 } | DisconnectReason::Timeout
                    ),
                    "{reason}"
                );
            }
        }
    }
    assert_eq!((connected.len(), gone.len()), (16, 16), "{events:?}");
    // Linux (5.0 and later) takes the request for GRO: the runs above went
    // through it.
    if cfg!(target_os = "linux") {
        assert_eq!(server.io_stats().gro, batching);
    }
    assert_eq!(server.handshake_stats().completed, 16);
    assert_eq!(server.peer_count(), 0);
}

#[test]
fn sixteen_clients_echo_on_all_channels_ipv4() {
    sixteen_clients_echo("127.0.0.1", "127.0.0.1", true);
}

#[test]
fn sixteen_clients_echo_on_all_channels_ipv6_one_system_call_per_datagram() {
    if !ipv6_available() {
        eprintln!("no IPv6 loopback: skipped");
        return;
    }
    sixteen_clients_echo("[::1]", "::1", false);
}

#[test]
fn clients_connect_by_host_name() {
    let dev = dev_cert();
    let mut server = server_on("127.0.0.1", &dev, TransportConfig::default());
    let port = server.tcp_addr().port();
    let config = trusting(&dev);
    let c = std::thread::spawn(move || echo_session("localhost", port, config, 7));
    echo_until_done(&mut server, std::slice::from_ref(&c));
    c.join().unwrap();
}

/// Connects in a thread while the server is serviced; returns the result.
fn try_connect(
    server: &mut Server,
    host: &'static str,
    config: ClientConfig,
) -> Result<Client, ConnectError> {
    let port = server.tcp_addr().port();
    let t = std::thread::spawn(move || Client::connect(host, port, config));
    let end = Instant::now() + TEST_DEADLINE;
    while !t.is_finished() {
        assert!(Instant::now() < end);
        server.service_for(Duration::from_millis(1)).unwrap();
    }
    t.join().unwrap()
}

#[test]
fn certificates_are_verified() {
    let dev = dev_cert();
    let mut server = server_on("127.0.0.1", &dev, TransportConfig::default());
    // Default trust (public roots): a self-signed development certificate is refused.
    let err = try_connect(&mut server, "127.0.0.1", ClientConfig::default()).unwrap_err();
    assert!(matches!(err, ConnectError::Handshake(_)), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // Trusting the certificate, but expecting another name: refused.
    let mut wrong_name = trusting(&dev);
    wrong_name.server_name = Some("game.example.com".into());
    let err = try_connect(&mut server, "127.0.0.1", wrong_name).unwrap_err();
    assert!(matches!(err, ConnectError::Handshake(_)), "{err}");
    // A certificate we were not told to trust: refused.
    let other = dev_cert();
    let err = try_connect(&mut server, "127.0.0.1", trusting(&other)).unwrap_err();
    assert!(matches!(err, ConnectError::Handshake(_)), "{err}");
    // Pinning the server's fingerprint works whatever the name...
    let pinned = ClientConfig::with_trust(ServerTrust::PinnedSha256(dev.sha256));
    let mut ok =
        try_connect(&mut server, "127.0.0.1", pinned).expect("pinned certificate accepted");
    assert!(ok.is_connected());
    ok.disconnect(0);
    // ...and a wrong pin is refused.
    let wrong_pin = ClientConfig::with_trust(ServerTrust::PinnedSha256(other.sha256));
    assert!(try_connect(&mut server, "127.0.0.1", wrong_pin).is_err());
    assert_eq!(server.handshake_stats().completed, 1);
    assert_eq!(server.peer_count(), 0);
}

#[test]
fn a_stalled_tcp_client_does_not_delay_others() {
    let dev = dev_cert();
    let mut server = server_on("127.0.0.1", &dev, TransportConfig::default());
    let tcp = server.tcp_addr();
    // Twenty connections that open TCP and say nothing.
    let stallers: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(tcp).unwrap()).collect();
    for _ in 0..10 {
        server.service_for(Duration::from_millis(1)).unwrap();
    }
    let start = Instant::now();
    let mut client = try_connect(&mut server, "127.0.0.1", trusting(&dev)).expect("connect");
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "connect took {took:?} next to stalled clients"
    );
    assert!(server.pending_handshakes() >= 20);
    client.disconnect(0);
    drop(stallers);
}

/// A client's TLS handshake with the server at `tcp`, and nothing else (no
/// UDP): whether it completed within 10 seconds.
fn tls_only(tcp: SocketAddr, dev: &DevCertificate) -> bool {
    let trust = ServerTrust::Ca(vec![dev.cert.clone()]);
    tls_only_trusting(tcp, trust)
}

/// [`tls_only`] with a given trust.
fn tls_only_trusting(tcp: SocketAddr, trust: ServerTrust) -> bool {
    use std::io::{Read, Write};
    let params = SessionParams::from_config(&TransportConfig::default());
    let mut hs = ClientHandshake::new("127.0.0.1", trust, params).unwrap();
    let mut stream = TcpStream::connect(tcp).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut out, mut buf) = (Vec::new(), vec![0u8; 16 << 10]);
    loop {
        hs.write_tls(&mut out);
        stream.write_all(&out).unwrap();
        out.clear();
        if hs.is_done() {
            return hs.take_outcome().is_some();
        }
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => hs.read_tls(&buf[..n]).unwrap(),
            _ => return false,
        }
    }
}

#[test]
fn handshakes_run_while_the_game_thread_does_not_service() {
    let dev = dev_cert();
    let mut server = server_on("127.0.0.1", &dev, TransportConfig::default());
    let tcp = server.tcp_addr();
    let trust = ServerTrust::Ca(vec![dev.cert.clone()]);
    let client = std::thread::spawn(move || tls_only_trusting(tcp, trust));
    // The game thread does not service: the TLS handshake still completes.
    assert!(client.join().unwrap(), "the handshake completed unserviced");
    assert_eq!(server.handshake_stats().accepted, 1);
    assert_eq!(
        server.handshake_stats().completed,
        0,
        "only service takes sessions in"
    );
    // The server thread may still be reading the client's last TLS message.
    let end = Instant::now() + TEST_DEADLINE;
    while server.handshake_stats().completed == 0 {
        assert!(Instant::now() < end, "the session was never taken in");
        server.service().unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(server.handshake_stats().completed, 1);
    assert_eq!(server.pending_handshakes(), 0);
}

#[test]
fn a_first_datagram_that_overtakes_its_handshake_is_kept_for_its_session() {
    use std::io::{Read, Write};
    let dev = dev_cert();
    let mut server = server_on("127.0.0.1", &dev, TransportConfig::default());
    let trust = ServerTrust::Ca(vec![dev.cert.clone()]);
    let params = SessionParams::from_config(&TransportConfig::default());
    let mut hs = ClientHandshake::new("127.0.0.1", trust, params).unwrap();
    let mut stream = TcpStream::connect(server.tcp_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut out, mut buf) = (Vec::new(), vec![0u8; 16 << 10]);
    // The TLS handshake up to the client's last flight, which is held back:
    // the client has its keys, the server cannot finish yet.
    loop {
        hs.write_tls(&mut out);
        if hs.is_done() {
            break;
        }
        stream.write_all(&out).unwrap();
        out.clear();
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the server answers without being serviced");
        hs.read_tls(&buf[..n]).unwrap();
    }
    let keys = hs.take_outcome().unwrap().keys;
    let now = Instant::now();
    let mut conn =
        fastnet::Connection::new(Arc::new(TransportConfig::default()), keys, now).unwrap();
    conn.ping();
    let mut datagram = vec![0u8; 2048];
    let n = conn
        .poll_transmit(now, &mut datagram)
        .expect("a first datagram");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(&datagram[..n], server.udp_addr()).unwrap();
    // It arrives before the session: the server keeps it.
    for _ in 0..5 {
        server.service_for(Duration::from_millis(2)).unwrap();
    }
    assert_eq!(server.poll_event(), None, "no session yet");
    // The last flight: the session is finished, taken in, and the kept
    // datagram (never sent again) makes the peer reachable.
    stream.write_all(&out).unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < end, "the kept datagram was not delivered");
        server.service_for(Duration::from_millis(10)).unwrap();
        match server.poll_event() {
            Some(PeerEvent::Connected(_)) => break,
            None => {}
            Some(other) => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn a_server_asleep_in_its_wait_is_woken_to_take_a_session_in() {
    let dev = dev_cert();
    let mut server = server_on("127.0.0.1", &dev, TransportConfig::default());
    let tcp = server.tcp_addr();
    let long = Duration::from_secs(60);
    let sleeper = std::thread::spawn(move || {
        let t = Instant::now();
        server.service_for(long).unwrap();
        (server, t.elapsed())
    });
    // Time for the server to fall asleep in its wait (a session taken in
    // before it sleeps would leave it asleep for the whole wait).
    std::thread::sleep(Duration::from_millis(200));
    // Only TCP: no datagram of the client's can wake the server.
    assert!(tls_only(tcp, &dev));
    let (server, slept) = sleeper.join().unwrap();
    assert!(slept < long / 2, "woken by the doorbell, not the timeout");
    assert_eq!(server.handshake_stats().completed, 1);
}

#[test]
fn stalled_handshakes_are_dropped_at_the_timeout() {
    let dev = dev_cert();
    let mut config = ServerConfig::new(Arc::new(
        ServerCredentials::from_dev_certificate(&dev).unwrap(),
    ));
    config.handshake_timeout = Duration::from_millis(300);
    config.max_pending_handshakes = 8;
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut server = Server::bind(any, any, config).unwrap();
    let _stallers: Vec<TcpStream> = (0..12)
        .map(|_| TcpStream::connect(server.tcp_addr()).unwrap())
        .collect();
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        server.service_for(Duration::from_millis(5)).unwrap();
    }
    let stats = server.handshake_stats();
    assert_eq!(stats.accepted, 12);
    assert_eq!(stats.evicted, 4, "the table holds 8");
    assert_eq!(stats.timed_out, 8);
    assert_eq!(server.pending_handshakes(), 0);
}

#[test]
fn disconnect_reasons_reach_the_other_side() {
    let dev = dev_cert();
    let mut transport = TransportConfig::default();
    transport
        .set_idle_timeout(Duration::from_secs(2))
        .set_keep_alive_interval(Duration::from_millis(300));
    let mut server = server_on("127.0.0.1", &dev, transport.clone());
    let mut config = trusting(&dev);
    config.transport = transport;

    // A client that closes with a code.
    let mut a = try_connect(&mut server, "127.0.0.1", config.clone()).unwrap();
    let peer_a = wait_event(&mut server, |e| match e {
        PeerEvent::Connected(p) => Some(p),
        _ => None,
    });
    a.disconnect(300);
    let reason = wait_event(&mut server, |e| match e {
        PeerEvent::Disconnected(p, r) if p == peer_a => Some(r),
        _ => None,
    });
    assert_eq!(reason, DisconnectReason::ClosedByPeer { code: 300 });

    // The server closes a client with a code.
    let mut b = try_connect(&mut server, "127.0.0.1", config.clone()).unwrap();
    let peer_b = wait_event(&mut server, |e| match e {
        PeerEvent::Connected(p) => Some(p),
        _ => None,
    });
    server.disconnect(peer_b, 301);
    let event = client_until(&mut b, |c| c.poll_event());
    assert_eq!(
        event,
        ClientEvent::Disconnected(DisconnectReason::ClosedByPeer { code: 301 })
    );

    // A client that vanishes (never serviced again): the server times it out.
    let mut c = try_connect(&mut server, "127.0.0.1", config).unwrap();
    let peer_c = wait_event(&mut server, |e| match e {
        PeerEvent::Connected(p) => Some(p),
        _ => None,
    });
    let start = Instant::now();
    let reason = wait_event(&mut server, |e| match e {
        PeerEvent::Disconnected(p, r) if p == peer_c => Some(r),
        _ => None,
    });
    assert_eq!(reason, DisconnectReason::Timeout);
    assert!(start.elapsed() >= Duration::from_millis(1500));
    // The client, once it looks again, first reads the keep-alives queued in
    // its socket, then hears nothing more: it times out too.
    let event = client_until(&mut c, |c| c.poll_event());
    assert_eq!(event, ClientEvent::Disconnected(DisconnectReason::Timeout));
}

fn wait_event<T>(server: &mut Server, mut want: impl FnMut(PeerEvent) -> Option<T>) -> T {
    let end = Instant::now() + TEST_DEADLINE;
    loop {
        server.service_for(Duration::from_millis(1)).unwrap();
        while let Some(e) = server.poll_event() {
            if let Some(v) = want(e) {
                return v;
            }
        }
        assert!(Instant::now() < end, "event did not come");
    }
}

/// A game loop that stalls for 15 s (a scene load) keeps its connection when
/// the service thread is on: the idle timeout is 10 s.
#[test]
fn service_thread_keeps_a_sleeping_game_connected() {
    let dev = dev_cert();
    let mut server = server_on("127.0.0.1", &dev, TransportConfig::default());
    let port = server.tcp_addr().port();
    let config = trusting(&dev);
    let t = std::thread::spawn(move || {
        let mut client = Client::connect("127.0.0.1", port, config).unwrap();
        client.start_service_thread().unwrap();
        std::thread::sleep(Duration::from_secs(15));
        assert!(
            client.is_connected(),
            "still connected after 15 s without service"
        );
        assert_eq!(client.poll_event(), None);
        client
            .send(channels::RELIABLE_ORDERED, &message(42, 100))
            .unwrap();
        let mut buf = Vec::new();
        let ch = client_until(&mut client, |c| c.recv_into(&mut buf));
        assert_eq!((ch, check_message(&buf)), (channels::RELIABLE_ORDERED, 42));
        client.disconnect(0);
    });
    let events = echo_until_done(&mut server, std::slice::from_ref(&t));
    t.join().unwrap();
    assert!(!events
        .iter()
        .any(|e| matches!(e, PeerEvent::Disconnected(_, DisconnectReason::Timeout))));
}

/// A server whose service thread owns the reads takes the runs of a GRO
/// socket apart like the game thread does: 1 MiB messages sent with GSO
/// arrive intact, and no datagram fails authentication (a run read as one
/// datagram would). GRO comes from the configuration, or is turned on while
/// the thread runs (which restarts it).
#[test]
fn a_service_thread_splits_gro_runs() {
    for at_run_time in [false, true] {
        service_thread_with_gro(at_run_time);
    }
}

fn service_thread_with_gro(at_run_time: bool) {
    let dev = dev_cert();
    let mut config = ServerConfig::new(Arc::new(
        ServerCredentials::from_dev_certificate(&dev).unwrap(),
    ));
    config.socket.gro = !at_run_time;
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut server = Server::bind(any, any, config).unwrap();
    server.start_service_thread().unwrap();
    if at_run_time {
        assert!(!server.io_stats().gro);
        let on = server.enable_gro().unwrap();
        assert_eq!(on, cfg!(target_os = "linux"));
        assert_eq!(server.enable_gro().unwrap(), on, "idempotent");
    }
    let port = server.tcp_addr().port();
    let config = trusting(&dev);
    const MESSAGES: u32 = 4;
    let t = std::thread::spawn(move || {
        let mut client = Client::connect("127.0.0.1", port, config).unwrap();
        for i in 0..MESSAGES {
            let m = message(i, 1 << 20);
            client_until(&mut client, |c| c.send(channels::RELIABLE_ORDERED, &m).ok());
        }
        let mut buf = Vec::new();
        for i in 0..MESSAGES {
            client_until(&mut client, |c| c.recv_into(&mut buf));
            assert_eq!(check_message(&buf), i);
            assert_eq!(buf.len(), 1 << 20);
        }
        let stats = client.stats();
        client.disconnect(0);
        stats
    });
    let events = echo_until_done(&mut server, std::slice::from_ref(&t));
    let client_stats = t.join().unwrap();
    let peer = events
        .iter()
        .find_map(|e| match e {
            PeerEvent::Connected(p) => Some(*p),
            _ => None,
        })
        .expect("the client connected");
    let io = server.io_stats();
    assert_eq!(io.gro, cfg!(target_os = "linux"), "{io:?}");
    if let Some(stats) = server.peer_stats(peer) {
        assert_eq!(stats.dropped.authentication_failed, 0, "{stats:?}");
    }
    assert_eq!(
        client_stats.dropped.authentication_failed, 0,
        "{client_stats:?}"
    );
}

/// Datagrams from another source carrying a peer's connection ID (forged, or
/// replays of that peer's own first packet) change nothing for that peer. The
/// client reaches the server through a recording relay, which the server
/// advertises as its UDP address.
#[test]
fn foreign_sources_cannot_take_over_a_session() {
    let dev = dev_cert();
    let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let mut config = ServerConfig::new(Arc::new(
        ServerCredentials::from_dev_certificate(&dev).unwrap(),
    ));
    config.advertised_udp_addr = Some(relay_addr);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut server = Server::bind(any, any, config).unwrap();
    let server_udp = server.udp_addr();

    // The relay forwards both ways and keeps the client's datagrams.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let recorded = Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
    let relay_thread = {
        let (stop, recorded) = (stop.clone(), recorded.clone());
        std::thread::spawn(move || {
            relay
                .set_read_timeout(Some(Duration::from_millis(5)))
                .unwrap();
            let mut client = None;
            let mut buf = vec![0u8; 2048];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, from)) = relay.recv_from(&mut buf) else {
                    continue;
                };
                if from == server_udp {
                    if let Some(c) = client {
                        relay.send_to(&buf[..n], c).unwrap();
                    }
                } else {
                    client = Some(from);
                    recorded.lock().unwrap().push(buf[..n].to_vec());
                    relay.send_to(&buf[..n], server_udp).unwrap();
                }
            }
        })
    };

    let mut client = try_connect(&mut server, "127.0.0.1", trusting(&dev)).unwrap();
    let peer: PeerId = wait_event(&mut server, |e| match e {
        PeerEvent::Connected(p) => Some(p),
        _ => None,
    });
    assert_eq!(server.peer_addr(peer), Some(relay_addr));
    assert_eq!(
        client.server_addr(),
        relay_addr,
        "the client used the advertised address"
    );

    // An attacker replays every datagram the client sent, from its own socket,
    // and sends forgeries with the client's connection ID.
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let first = recorded.lock().unwrap().clone();
    assert!(!first.is_empty());
    for d in &first {
        attacker.send_to(d, server_udp).unwrap();
        let mut forged = d.clone();
        let last = forged.len() - 1;
        forged[last] ^= 0x80;
        attacker.send_to(&forged, server_udp).unwrap();
    }
    let end = Instant::now() + Duration::from_millis(200);
    while Instant::now() < end {
        server.service_for(Duration::from_millis(1)).unwrap();
    }
    assert!(server.endpoint_stats().rejected >= 2 * first.len() as u64);
    assert_eq!(
        server.peer_addr(peer),
        Some(relay_addr),
        "the session did not move"
    );
    assert!(server.peer_stats(peer).unwrap().dropped.duplicate >= first.len() as u64);

    // The session still works.
    client
        .send(channels::RELIABLE_ORDERED, &message(5, 50))
        .unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let ch = client_until(&mut client, |c| c.recv_into(&mut buf));
        assert_eq!((ch, check_message(&buf)), (channels::RELIABLE_ORDERED, 5));
        client.disconnect(0);
    });
    echo_until_done(&mut server, std::slice::from_ref(&t));
    t.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    relay_thread.join().unwrap();
}

/// Junk and datagrams longer than the datagram limit (up to the largest UDP
/// payload) are dropped without failing `service`, with batching on and off.
#[test]
fn oversized_and_junk_datagrams_are_dropped_not_fatal() {
    for batching in [true, false] {
        let dev = dev_cert();
        let mut config = ServerConfig::new(Arc::new(
            ServerCredentials::from_dev_certificate(&dev).unwrap(),
        ));
        config.socket.batching = batching;
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::bind(any, any, config).unwrap();
        let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
        for len in [65_000usize, 3000, 1201, 20, 0] {
            junk.send_to(&vec![0xA5; len], server.udp_addr()).unwrap();
        }
        for _ in 0..5 {
            server.service_for(Duration::from_millis(1)).unwrap();
        }
        let port = server.tcp_addr().port();
        let client_config = trusting(&dev);
        let client = std::thread::spawn(move || {
            let mut client = Client::connect("127.0.0.1", port, client_config).unwrap();
            client
                .send(channels::RELIABLE_ORDERED, b"still here")
                .unwrap();
            let mut buf = Vec::new();
            client_until(&mut client, |c| c.recv_into(&mut buf));
            assert_eq!(buf, b"still here");
        });
        let clients = [client];
        echo_until_done(&mut server, &clients);
        let [client] = clients;
        client.join().expect("client thread");
        assert_eq!(server.handshake_stats().completed, 1, "batching {batching}");
    }
}
