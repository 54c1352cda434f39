//! The Tokio driver (`SecureSocket`) over real sockets on 127.0.0.1 and [::1]:
//! echo on every channel kind with many clients, certificate checks,
//! sending while another task polls, disconnects and timeouts, and handshakes
//! that stall. Every test is bounded by a timeout, so a hang fails.

#![cfg(feature = "tokio")]

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fastnet::net::{
    ClientConfig, ConnectError, IoStats, LinkSimulation, SecureEvent, SecureSocket, ServerConfig,
    SocketConfig,
};
use fastnet::session::{DevCertificate, HandshakeError, ServerCredentials, ServerTrust};
use fastnet::{channels, DisconnectReason, LinkConfig, TransportConfig};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Bound on any one test.
const TEST_TIMEOUT_SECS: u64 = 20;
/// Clients of the echo tests.
const ECHO_CLIENTS: usize = 16;
/// Small messages each echo client sends per channel.
const ECHO_MESSAGES_PER_CHANNEL: u32 = 40;
/// Position of the large message among the reliable-ordered ones.
const LARGE_MESSAGE_SEQ: u32 = ECHO_MESSAGES_PER_CHANNEL / 2;
/// The large reliable message: 1 MiB, the default channel limit.
const LARGE_MESSAGE_BYTES: usize = 1 << 20;
/// Bytes of a small echo message.
const SMALL_MESSAGE_BYTES: usize = 64;

const LOCALHOST_V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const LOCALHOST_V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(TEST_TIMEOUT_SECS), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: timed out after {TEST_TIMEOUT_SECS} s"))
}

fn dev_certificate() -> DevCertificate {
    DevCertificate::generate(&["localhost", "127.0.0.1", "::1"]).expect("dev certificate")
}

fn any_port(ip: IpAddr) -> SocketAddr {
    SocketAddr::new(ip, 0)
}

/// Whether [::1] can be bound here (no IPv6 in some containers).
fn ipv6_available() -> bool {
    std::net::UdpSocket::bind("[::1]:0").is_ok() && std::net::TcpListener::bind("[::1]:0").is_ok()
}

fn trusting(dev: &DevCertificate) -> ClientConfig {
    ClientConfig::with_trust(ServerTrust::Ca(vec![dev.cert.clone()]))
}

/// 2 s idle timeout and 500 ms keep-alives: quick timeouts for tests.
fn short_timeouts() -> TransportConfig {
    let mut t = TransportConfig::default();
    t.set_idle_timeout(Duration::from_secs(2))
        .set_keep_alive_interval(Duration::from_millis(500));
    t
}

fn server_config(dev: &DevCertificate, transport: TransportConfig) -> ServerConfig {
    let credentials = ServerCredentials::from_dev_certificate(dev).expect("credentials");
    let mut config = ServerConfig::new(Arc::new(credentials));
    config.transport = transport;
    config
}

/// A client of `server` with the default configuration, trusting `dev`.
async fn connect_default(server: &SecureSocket, dev: &DevCertificate) -> SecureSocket {
    SecureSocket::connect_with(server.local_tcp_addr().expect("a TCP side"), trusting(dev))
        .await
        .expect("client connects")
}

/// A link that loses every datagram it receives (sending still works).
fn deaf() -> LinkSimulation {
    LinkSimulation {
        outgoing: None,
        incoming: Some(LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        }),
    }
}

/// A client of `server` with [`short_timeouts`], trusting `dev`.
async fn connect_short_timeouts(server: &SecureSocket, dev: &DevCertificate) -> SecureSocket {
    let config = ClientConfig {
        transport: short_timeouts(),
        ..trusting(dev)
    };
    SecureSocket::connect_with(server.local_tcp_addr().expect("a TCP side"), config)
        .await
        .expect("client connects")
}

/// A server echoing every message on its channel; non-data events go to the
/// returned receiver. It receives through `poll_into` (one event vector whose
/// message buffers are recycled), the clients through `poll`.
async fn echo_server(
    ip: IpAddr,
    config: ServerConfig,
) -> (
    SecureSocket,
    mpsc::UnboundedReceiver<SecureEvent>,
    tokio::task::JoinHandle<io::Result<()>>,
) {
    let server = SecureSocket::bind_server_with(any_port(ip), any_port(ip), config)
        .await
        .expect("server binds");
    let (tx, rx) = mpsc::unbounded_channel();
    let socket = server.clone();
    let task = tokio::spawn(async move {
        let mut events = Vec::new();
        loop {
            socket.poll_into(&mut events).await?;
            for event in &events {
                match event {
                    SecureEvent::Data(peer, channel, data) => {
                        // A client may be gone already; that is not the server's error.
                        let _ = socket.send(*peer, *channel, data).await;
                    }
                    other => {
                        let _ = tx.send(other.clone());
                    }
                }
            }
        }
    });
    (server, rx, task)
}

/// An echo message: client, channel, sequence number, then a pattern.
fn echo_message(client: u8, channel: u8, seq: u32, len: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(len);
    m.push(client);
    m.push(channel);
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend((6..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(seq) as u8 ^ client));
    m
}

/// Checks an echo message and returns its sequence number.
fn check_echo(client: u8, channel: u8, data: &[u8]) -> u32 {
    assert!(data.len() >= 6, "short message");
    assert_eq!((data[0], data[1]), (client, channel), "misrouted message");
    let seq = u32::from_le_bytes(data[2..6].try_into().unwrap());
    assert_eq!(
        data,
        echo_message(client, channel, seq, data.len()),
        "corrupted message {seq}"
    );
    seq
}

/// One echo client: interleaves small messages on the four channels with one
/// 1 MiB reliable message, checks every reliable echo (in order on channel 0),
/// then probes the unreliable channels until an echo comes back on each.
async fn echo_client(client: u8, tcp: SocketAddr, config: ClientConfig) {
    let socket = SecureSocket::connect_with(tcp, config)
        .await
        .expect("client connects");
    for seq in 0..ECHO_MESSAGES_PER_CHANNEL {
        for channel in 0..4u8 {
            let len = if channel == channels::RELIABLE_ORDERED && seq == LARGE_MESSAGE_SEQ {
                LARGE_MESSAGE_BYTES
            } else {
                SMALL_MESSAGE_BYTES
            };
            socket
                .send(1, channel, echo_message(client, channel, seq, len))
                .await
                .expect("send");
        }
    }
    let mut next_ordered = 0;
    let mut unordered = vec![false; ECHO_MESSAGES_PER_CHANNEL as usize];
    let mut last_sequenced = None;
    let mut unreliable_seen = [false; 2];
    let mut probe = ECHO_MESSAGES_PER_CHANNEL;
    let mut connected = false;
    loop {
        let reliable_done =
            next_ordered == ECHO_MESSAGES_PER_CHANNEL && unordered.iter().all(|&x| x);
        if reliable_done && unreliable_seen.iter().all(|&x| x) {
            break;
        }
        if reliable_done {
            // Small unreliable probes until one comes back on each channel.
            for channel in [channels::UNRELIABLE, channels::SEQUENCED] {
                socket
                    .send(
                        1,
                        channel,
                        echo_message(client, channel, probe, SMALL_MESSAGE_BYTES),
                    )
                    .await
                    .expect("probe");
            }
            probe += 1;
        }
        let events = tokio::select! {
            events = socket.poll() => events.expect("poll"),
            _ = tokio::time::sleep(Duration::from_millis(20)), if reliable_done => continue,
        };
        for event in events {
            match event {
                SecureEvent::Connected(peer) => {
                    assert_eq!(peer, 1, "the server is peer 1");
                    connected = true;
                }
                SecureEvent::Data(peer, channel, data) => {
                    assert!(connected, "data before Connected");
                    assert_eq!(peer, 1);
                    let seq = check_echo(client, channel, &data);
                    match channel {
                        channels::RELIABLE_ORDERED => {
                            assert_eq!(seq, next_ordered, "reliable-ordered out of order");
                            let expect = if seq == LARGE_MESSAGE_SEQ {
                                LARGE_MESSAGE_BYTES
                            } else {
                                SMALL_MESSAGE_BYTES
                            };
                            assert_eq!(data.len(), expect);
                            next_ordered += 1;
                        }
                        channels::RELIABLE_UNORDERED => {
                            assert!(!unordered[seq as usize], "duplicate {seq}");
                            unordered[seq as usize] = true;
                        }
                        channels::UNRELIABLE => unreliable_seen[0] = true,
                        channels::SEQUENCED => {
                            assert!(last_sequenced < Some(seq), "sequenced went back");
                            last_sequenced = Some(seq);
                            unreliable_seen[1] = true;
                        }
                        other => panic!("unexpected channel {other}"),
                    }
                }
                SecureEvent::Disconnected(peer, reason) => {
                    panic!("client {client}: {peer} left: {reason}")
                }
            }
        }
    }
    socket.disconnect(1, 0);
}

/// Sixteen echo clients against one server, with `socket` on every side
/// (the server turning GRO on once it runs if `gro_at_run_time`); returns
/// the server socket's system call counters.
async fn echo_many_clients(ip: IpAddr, socket: SocketConfig, gro_at_run_time: bool) -> IoStats {
    let dev_server = dev_certificate();
    let config = ClientConfig {
        trust: ServerTrust::Ca(vec![dev_server.cert.clone()]),
        socket: socket.clone(),
        ..ClientConfig::default()
    };
    let mut server_config = server_config(&dev_server, TransportConfig::default());
    server_config.socket = socket;
    let (server, _events, server_task) = echo_server(ip, server_config).await;
    if gro_at_run_time {
        assert!(!server.io_stats().gro);
        // While the server's task polls.
        let on = server.enable_gro();
        assert_eq!(on, cfg!(target_os = "linux"));
        assert_eq!(server.enable_gro(), on, "idempotent");
    }
    let tcp = server.local_tcp_addr().unwrap();
    let start = Instant::now();
    let mut clients = JoinSet::new();
    for client in 0..ECHO_CLIENTS {
        clients.spawn(echo_client(client as u8, tcp, config.clone()));
    }
    while let Some(result) = clients.join_next().await {
        result.expect("client task");
    }
    eprintln!(
        "{ECHO_CLIENTS} echo clients over {ip}: {:?}",
        start.elapsed()
    );
    assert!(
        !server_task.is_finished(),
        "server stopped: {:?}",
        server_task.await
    );
    assert_eq!(
        server.handshake_stats().unwrap().completed,
        ECHO_CLIENTS as u64
    );
    server.io_stats()
}

/// Over IPv4 with the Linux fast paths on (the default `recvmmsg`,
/// `sendmmsg` and GSO, and GRO on top): the server's counters show batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_clients_echo_every_channel_kind_over_ipv4() {
    let socket = SocketConfig {
        gro: true,
        ..SocketConfig::default()
    };
    let io = bounded("IPv4 echo", echo_many_clients(LOCALHOST_V4, socket, false)).await;
    eprintln!("server socket: {io:?}");
    if cfg!(target_os = "linux") {
        assert!(io.gso && io.gro, "GSO and GRO in use: {io:?}");
        // Sixteen 1 MiB echoes: runs of datagrams per call, both ways.
        assert!(
            io.datagrams_sent > 2 * io.send_calls,
            "batched sends: {io:?}"
        );
        assert!(
            io.datagrams_received > 2 * io.recv_calls,
            "batched receives: {io:?}"
        );
    }
}

/// GRO turned on while the server runs (`SecureSocket::enable_gro`): the
/// runs it then receives are split back into datagrams (every echo comes
/// back intact; the echo client checks each) and take fewer receives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gro_turned_on_at_run_time_splits_the_runs_it_receives() {
    let io = bounded(
        "IPv4 echo, GRO at run time",
        echo_many_clients(LOCALHOST_V4, SocketConfig::default(), true),
    )
    .await;
    eprintln!("server socket: {io:?}");
    assert_eq!(io.gro, cfg!(target_os = "linux"), "{io:?}");
    if cfg!(target_os = "linux") {
        assert!(
            io.datagrams_received > 2 * io.recv_calls,
            "batched receives: {io:?}"
        );
    }
}

/// Over IPv6 with batching off: one system call per datagram.
#[tokio::test(flavor = "current_thread")]
async fn sixteen_clients_echo_every_channel_kind_over_ipv6() {
    if !ipv6_available() {
        eprintln!("skipped: no IPv6 loopback");
        return;
    }
    let socket = SocketConfig {
        batching: false,
        ..SocketConfig::default()
    };
    let io = bounded("IPv6 echo", echo_many_clients(LOCALHOST_V6, socket, false)).await;
    eprintln!("server socket: {io:?}");
    assert!(!io.gso && !io.gro, "no offloads without batching: {io:?}");
    assert!(
        io.send_calls >= io.datagrams_sent + io.send_errors && io.datagrams_sent > 0,
        "a call per datagram sent: {io:?}"
    );
    assert!(
        io.recv_calls > io.datagrams_received && io.datagrams_received > 0,
        "a call per datagram received, and the empty ones: {io:?}"
    );
}

/// `poll_into` replaces what the vector held (recycling its message buffers,
/// whatever their size) and returns the number of new events, in order.
#[tokio::test(flavor = "current_thread")]
async fn poll_into_replaces_the_events_and_returns_their_count() {
    bounded("poll_into", async {
        let dev = dev_certificate();
        let server = SecureSocket::bind_server_with(
            any_port(LOCALHOST_V4),
            any_port(LOCALHOST_V4),
            server_config(&dev, TransportConfig::default()),
        )
        .await
        .unwrap();
        let client = connect_default(&server, &dev).await;
        // Buffers handed back: empty, small, and larger than the pools keep.
        let mut events = vec![
            SecureEvent::Data(9, 0, Vec::new()),
            SecureEvent::Data(9, 0, vec![1; 100]),
            SecureEvent::Connected(9),
            SecureEvent::Data(9, 0, vec![2; 100_000]),
        ];
        let sizes = [0usize, 1, 64, 1_500, 5_000, 70_000, 64];
        for (seq, &len) in sizes.iter().enumerate() {
            let message = echo_message(0, 0, seq as u32, len.max(6));
            client
                .send(1, channels::RELIABLE_ORDERED, &message)
                .await
                .unwrap();
        }
        let mut received = Vec::new();
        let mut connected = false;
        while received.len() < sizes.len() {
            let n = server.poll_into(&mut events).await.unwrap();
            assert!(n > 0);
            assert_eq!(n, events.len(), "the vector holds only the new events");
            for event in &events {
                match event {
                    SecureEvent::Connected(_) => {
                        assert!(!connected && received.is_empty(), "{events:?}");
                        connected = true;
                    }
                    SecureEvent::Data(_, channel, data) => {
                        assert!(connected);
                        assert_eq!(*channel, channels::RELIABLE_ORDERED);
                        received.push(data.clone());
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        for (seq, (data, &len)) in received.iter().zip(&sizes).enumerate() {
            assert_eq!(data, &echo_message(0, 0, seq as u32, len.max(6)));
        }
    })
    .await;
}

/// The `ConnectError` inside a connect's `io::Error`.
fn connect_error(e: &io::Error) -> &ConnectError {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<ConnectError>())
        .unwrap_or_else(|| panic!("not a ConnectError: {e:?}"))
}

#[tokio::test]
async fn default_connect_refuses_a_dev_certificate() {
    bounded("default trust", async {
        let dev = dev_certificate();
        let (server, _events, _task) = echo_server(
            LOCALHOST_V4,
            server_config(&dev, TransportConfig::default()),
        )
        .await;
        let err = SecureSocket::connect(server.local_tcp_addr().unwrap())
            .await
            .expect_err("a self-signed certificate is not trusted by default");
        let message = err.to_string();
        assert!(
            matches!(
                connect_error(&err),
                ConnectError::Handshake(HandshakeError::Certificate(_))
            ),
            "{err:?}"
        );
        assert!(message.contains("certificate was rejected"), "{message}");
        assert!(message.contains("UnknownIssuer"), "{message}");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    })
    .await;
}

#[tokio::test]
async fn pinned_sha256_connects_and_echoes() {
    bounded("pinned", async {
        let dev = dev_certificate();
        let (server, _events, _task) = echo_server(
            LOCALHOST_V4,
            server_config(&dev, TransportConfig::default()),
        )
        .await;
        let config = ClientConfig::with_trust(ServerTrust::PinnedSha256(dev.sha256));
        let client = SecureSocket::connect_with(server.local_tcp_addr().unwrap(), config)
            .await
            .expect("pinned certificate accepted");
        assert_eq!(client.server_certificate_sha256(), Some(dev.sha256));
        client.send(1, 0, b"Hello, server!".to_vec()).await.unwrap();
        let mut got = Vec::new();
        while got.is_empty() {
            for event in client.poll().await.unwrap() {
                if let SecureEvent::Data(1, 0, data) = event {
                    got = data;
                }
            }
        }
        assert_eq!(got, b"Hello, server!");
        assert_eq!(client.peer_count(), 1);
        assert!(client.peer_stats(1).is_some());
    })
    .await;
}

#[tokio::test]
async fn a_wrong_server_name_is_refused() {
    bounded("wrong name", async {
        let dev = dev_certificate();
        let (server, _events, _task) = echo_server(
            LOCALHOST_V4,
            server_config(&dev, TransportConfig::default()),
        )
        .await;
        let config = ClientConfig {
            server_name: Some("game.example".into()),
            ..trusting(&dev)
        };
        let err = SecureSocket::connect_with(server.local_tcp_addr().unwrap(), config)
            .await
            .expect_err("the certificate is not valid for that name");
        assert!(
            matches!(
                connect_error(&err),
                ConnectError::Handshake(HandshakeError::Certificate(_))
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("not valid for name"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn connect_host_resolves_a_name() {
    bounded("connect_host", async {
        let dev = dev_certificate();
        let (server, _events, _task) = echo_server(
            LOCALHOST_V4,
            server_config(&dev, TransportConfig::default()),
        )
        .await;
        // "localhost" may resolve to ::1 first, where nothing listens: the
        // next address is tried.
        let port = server.local_tcp_addr().unwrap().port();
        let client = SecureSocket::connect_host("localhost", port, trusting(&dev))
            .await
            .expect("connects by name");
        assert_eq!(
            client.poll().await.unwrap(),
            vec![SecureEvent::Connected(1)]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_works_while_another_task_polls() {
    const MESSAGES: u32 = 100;
    const SEND_INTERVAL_MS: u64 = 3;
    bounded("send while polling", async {
        let dev = dev_certificate();
        let (server, _events, _task) = echo_server(
            LOCALHOST_V4,
            server_config(&dev, TransportConfig::default()),
        )
        .await;
        let client = connect_default(&server, &dev).await;
        let start = Instant::now();
        let poller = client.clone();
        let receiver = tokio::spawn(async move {
            let mut latencies = Vec::new();
            while latencies.len() < MESSAGES as usize {
                for event in poller.poll().await.unwrap() {
                    if let SecureEvent::Data(1, channels::RELIABLE_ORDERED, data) = event {
                        let sent_ms = u64::from_le_bytes(data[4..12].try_into().unwrap());
                        let seq = u32::from_le_bytes(data[..4].try_into().unwrap());
                        assert_eq!(seq as usize, latencies.len());
                        latencies.push(start.elapsed().as_millis() as u64 - sent_ms);
                    }
                }
            }
            latencies
        });
        // Let the poller settle into its wait first.
        tokio::time::sleep(Duration::from_millis(20)).await;
        for seq in 0..MESSAGES {
            let mut m = seq.to_le_bytes().to_vec();
            m.extend_from_slice(&(start.elapsed().as_millis() as u64).to_le_bytes());
            client.send(1, channels::RELIABLE_ORDERED, m).await.unwrap();
            tokio::time::sleep(Duration::from_millis(SEND_INTERVAL_MS)).await;
        }
        let mut latencies = receiver.await.unwrap();
        latencies.sort_unstable();
        let median = latencies[latencies.len() / 2];
        eprintln!(
            "echo while polling: median {median} ms, max {} ms",
            latencies.last().unwrap()
        );
        assert!(median < 50, "echoes are slow: median {median} ms");
    })
    .await;
}

#[tokio::test]
async fn a_graceful_disconnect_reaches_the_server() {
    bounded("graceful disconnect", async {
        let dev = dev_certificate();
        let (server, mut events, _task) = echo_server(
            LOCALHOST_V4,
            server_config(&dev, TransportConfig::default()),
        )
        .await;
        let client = connect_default(&server, &dev).await;
        let Some(SecureEvent::Connected(peer)) = events.recv().await else {
            panic!("the server sees the client first");
        };
        client.disconnect(1, 300);
        assert_eq!(
            client.poll().await.unwrap(),
            vec![
                SecureEvent::Connected(1),
                SecureEvent::Disconnected(1, DisconnectReason::ClosedLocally { code: 300 })
            ]
        );
        assert_eq!(
            events.recv().await,
            Some(SecureEvent::Disconnected(
                peer,
                DisconnectReason::ClosedByPeer { code: 300 }
            ))
        );
        assert_eq!(server.peer_count(), 0);
        assert_eq!(client.peer_count(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_vanished_client_times_out_on_the_server() {
    bounded("vanished client", async {
        let dev = dev_certificate();
        let (server, mut events, _task) =
            echo_server(LOCALHOST_V4, server_config(&dev, short_timeouts())).await;
        let client = connect_short_timeouts(&server, &dev).await;
        let Some(SecureEvent::Connected(peer)) = events.recv().await else {
            panic!("the server sees the client first");
        };
        // Everything the client sends from now on is lost, its goodbye included.
        let dark = LinkSimulation {
            outgoing: Some(LinkConfig {
                loss: 1.0,
                ..LinkConfig::default()
            }),
            incoming: None,
        };
        client.set_link_simulation(&dark).unwrap();
        let start = Instant::now();
        assert_eq!(
            events.recv().await,
            Some(SecureEvent::Disconnected(peer, DisconnectReason::Timeout))
        );
        let waited = start.elapsed();
        assert!(
            waited > Duration::from_millis(1000) && waited < Duration::from_millis(3500),
            "timed out after {waited:?}"
        );
        drop(client);
    })
    .await;
}

/// Protocol timers wake every kind of poll: a poll cancelled while it waits
/// (its timer is kept for the next one), then two polls waiting at once (one
/// on the socket's kept timer, one on its own). Nothing but timers wakes them:
/// the client hears nothing, so only its keep-alives and its idle timeout run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_wake_cancelled_and_concurrent_polls() {
    bounded("timers", async {
        let dev = dev_certificate();
        let (server, _events, _task) =
            echo_server(LOCALHOST_V4, server_config(&dev, short_timeouts())).await;
        let client = connect_short_timeouts(&server, &dev).await;
        client.set_link_simulation(&deaf()).unwrap();
        let start = Instant::now();
        let mut events = Vec::new();
        let mut seen = Vec::new();
        // Polls cancelled after 10 ms each, for a while.
        while start.elapsed() < Duration::from_millis(300) {
            tokio::select! {
                r = client.poll_into(&mut events) => {
                    r.unwrap();
                    seen.append(&mut events);
                }
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
        // Then two polls at once, until one of them reports the timeout.
        let (tx, mut rx) = mpsc::unbounded_channel();
        let pollers: Vec<_> = (0..2)
            .map(|i| {
                let (client, tx) = (client.clone(), tx.clone());
                tokio::spawn(async move {
                    let mut events = Vec::new();
                    loop {
                        if i == 0 {
                            client.poll_into(&mut events).await.unwrap();
                        } else {
                            events = client.poll().await.unwrap();
                        }
                        for event in events.drain(..) {
                            let _ = tx.send(event);
                        }
                    }
                })
            })
            .collect();
        loop {
            let event = rx.recv().await.unwrap();
            if let SecureEvent::Disconnected(peer, reason) = event {
                assert_eq!((peer, reason), (1, DisconnectReason::Timeout));
                break;
            }
            seen.push(event);
        }
        let waited = start.elapsed();
        assert!(
            waited > Duration::from_millis(1500) && waited < Duration::from_millis(3500),
            "timed out after {waited:?}"
        );
        assert!(
            seen.iter().all(|e| matches!(e, SecureEvent::Connected(1))),
            "{seen:?}"
        );
        assert!(
            client.peer_stats(1).is_none() || client.peer_count() == 0,
            "the connection is gone"
        );
        for poller in pollers {
            poller.abort();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_stay_alive_while_nobody_polls() {
    bounded("background ticker", async {
        let dev = dev_certificate();
        let (server, mut events, _task) =
            echo_server(LOCALHOST_V4, server_config(&dev, short_timeouts())).await;
        let client = connect_short_timeouts(&server, &dev).await;
        // Longer than the 2 s idle timeout, without a single poll: the
        // background ticker keeps both ends alive.
        tokio::time::sleep(Duration::from_millis(3000)).await;
        client
            .send(1, channels::RELIABLE_ORDERED, b"still here")
            .await
            .unwrap();
        let mut echoed = false;
        while !echoed {
            for event in client.poll().await.unwrap() {
                match event {
                    SecureEvent::Data(1, _, data) => {
                        assert_eq!(data, b"still here");
                        echoed = true;
                    }
                    SecureEvent::Connected(1) => {}
                    other => panic!("{other:?}"),
                }
            }
        }
        assert!(matches!(events.try_recv(), Ok(SecureEvent::Connected(_))));
        assert!(events.try_recv().is_err(), "no disconnect on the server");
    })
    .await;
}

#[tokio::test]
async fn a_stalled_tcp_client_does_not_delay_another_connect() {
    bounded("stalled handshake", async {
        let dev = dev_certificate();
        let (server, _events, _task) = echo_server(
            LOCALHOST_V4,
            server_config(&dev, TransportConfig::default()),
        )
        .await;
        let tcp = server.local_tcp_addr().unwrap();
        let _staller = tokio::net::TcpStream::connect(tcp).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let start = Instant::now();
        let client = SecureSocket::connect_with(tcp, trusting(&dev))
            .await
            .unwrap();
        let took = start.elapsed();
        assert!(took < Duration::from_secs(1), "connect took {took:?}");
        client.send(1, 0, b"hi").await.unwrap();
        let stats = server.handshake_stats().unwrap();
        assert_eq!((stats.accepted, stats.completed), (2, 1), "{stats:?}");
    })
    .await;
}

#[tokio::test]
async fn a_full_handshake_table_drops_the_oldest() {
    bounded("handshake eviction", async {
        let dev = dev_certificate();
        let mut config = server_config(&dev, TransportConfig::default());
        config.max_pending_handshakes = 2;
        let (server, _events, _task) = echo_server(LOCALHOST_V4, config).await;
        let tcp = server.local_tcp_addr().unwrap();
        let mut stallers = Vec::new();
        for _ in 0..3 {
            stallers.push(tokio::net::TcpStream::connect(tcp).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let start = Instant::now();
        let _client = SecureSocket::connect_with(tcp, trusting(&dev))
            .await
            .unwrap();
        let took = start.elapsed();
        assert!(took < Duration::from_secs(1), "connect took {took:?}");
        let stats = server.handshake_stats().unwrap();
        assert_eq!(stats.completed, 1, "{stats:?}");
        assert_eq!(stats.evicted, 2, "{stats:?}");
    })
    .await;
}

/// The brief's Rust examples, as users will type them (with the imports and
/// certificate loading they need), compile against this API. Never run: the
/// brief's client trusts the public roots by default, which is the point.
#[allow(dead_code, unreachable_code, unused_variables, unused_mut)]
mod the_briefs_examples_compile {
    use fastnet::net::{SecureEvent, SecureSocket};
    use std::net::SocketAddr;

    fn load_certs(path: &str) -> std::io::Result<Vec<fastnet::session::CertificateDer<'static>>> {
        fastnet::session::load_certs(path)
    }

    fn load_key(path: &str) -> std::io::Result<fastnet::session::PrivateKeyDer<'static>> {
        fastnet::session::load_private_key(path)
    }

    async fn server() -> std::io::Result<()> {
        let certs = load_certs("cert.pem")?;
        let key = load_key("key.pem")?;
        let udp_addr: SocketAddr = "0.0.0.0:7777".parse().unwrap();
        let tcp_addr: SocketAddr = "0.0.0.0:7778".parse().unwrap();
        let mut socket = SecureSocket::bind_server(udp_addr, tcp_addr, certs, key).await?;
        println!("Server listening on {}", udp_addr);
        loop {
            for event in socket.poll().await? {
                match event {
                    SecureEvent::Connected(peer_id) => {
                        println!("Peer {} connected", peer_id);
                    }
                    SecureEvent::Data(peer_id, channel, data) => {
                        socket.send(peer_id, channel, data).await?;
                    }
                    SecureEvent::Disconnected(peer_id, _reason) => {
                        println!("Peer {} disconnected", peer_id);
                    }
                }
            }
        }
    }

    async fn client() -> std::io::Result<()> {
        let server_addr = "127.0.0.1:7778".parse().unwrap();
        let mut socket = SecureSocket::connect(server_addr).await?;
        socket.send(1, 0, b"Hello, server!".to_vec()).await?;
        for event in socket.poll().await? {
            if let SecureEvent::Data(_, _, data) = event {
                println!("Received: {:?}", data);
            }
        }
        Ok(())
    }
}

/// A poll that waits on a far deadline (an idle connection's keep-alive, a
/// second away) while another task sends: the send arms the retransmission
/// timer, and the waiting poll must wake for it (the send pokes it). The
/// server drops everything for the first 20 ms, so the message only arrives
/// by a retransmission, about 27 ms after the send here; without the wake it
/// would wait for the background ticker's takeover (250 ms after the poll's
/// last drive, about 200 ms after the send) or the keep-alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_wakes_a_waiting_poll_for_its_retransmission() {
    bounded("retransmission while polling", async {
        let dev = dev_certificate();
        let (server, _events, _task) = echo_server(
            LOCALHOST_V4,
            server_config(&dev, TransportConfig::default()),
        )
        .await;
        let client = connect_default(&server, &dev).await;
        let (tx, mut echoes) = mpsc::unbounded_channel();
        let poller = client.clone();
        let receiver = tokio::spawn(async move {
            let mut events = Vec::new();
            loop {
                poller.poll_into(&mut events).await.unwrap();
                for event in &events {
                    if let SecureEvent::Data(1, channels::RELIABLE_ORDERED, data) = event {
                        let _ = tx.send(data.clone());
                    }
                }
            }
        });
        // The connection goes idle and the poll settles into a long wait.
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.set_link_simulation(&deaf()).unwrap();
        let sent = Instant::now();
        client
            .send(1, channels::RELIABLE_ORDERED, b"lost once".to_vec())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        server
            .set_link_simulation(&LinkSimulation::default())
            .unwrap();
        let echo = echoes.recv().await.unwrap();
        let took = sent.elapsed();
        assert_eq!(echo, b"lost once");
        assert!(
            client.peer_stats(1).unwrap().frames_retransmitted > 0,
            "the message arrived by a retransmission"
        );
        assert!(
            took < Duration::from_millis(120),
            "the retransmission waited {took:?}: the poll slept through the send's new deadline"
        );
        receiver.abort();
    })
    .await;
}
