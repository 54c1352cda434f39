//! End to end through the exported functions: a server and clients on
//! loopback, messages on every channel, events, statistics, trust failures.

mod common;

use std::ffi::CString;
use std::time::{Duration, Instant};

use common::*;
use fastnet::FastNetDisconnectReason::*;
use fastnet::FastNetError::*;
use fastnet::FastNetEventType::*;
use fastnet::*;

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn echo_on_every_channel_with_events_in_order() {
    let server = TestServer::start();
    let client = server.connect(|_| {});
    assert_eq!(
        fastnet_client_state(client),
        FastNetClientState::FASTNET_CLIENT_CONNECTED as i32
    );

    // The first poll after a blocking connect says CONNECTED, with the server's peer ID.
    let first = poll_client(client).expect("an event");
    assert_eq!(first.kind, FASTNET_EVENT_CONNECTED);
    assert_eq!(first.peer, FASTNET_SERVER_PEER_ID);

    // Both sides spin briefly before sleeping in their service calls.
    assert_eq!(fastnet_client_set_busy_wait_us(client, 50), 0);
    assert_eq!(fastnet_server_set_busy_wait_us(server.handle, 50), 0);

    let messages: Vec<(u8, Vec<u8>)> = (0..4u8)
        .map(|ch| (ch, format!("hello on channel {ch}").into_bytes()))
        .chain([(0, Vec::new()), (0, vec![7u8; 5000])])
        .collect();
    for (ch, m) in &messages {
        assert_eq!(send(client, *ch, m), 0, "{}", last_error());
    }

    let mut server_connected = None;
    let mut echoed = Vec::new();
    server
        .run_until(client, WAIT, true, |side, ev| {
            match (side, ev.kind) {
                (Side::Server, FASTNET_EVENT_CONNECTED) => {
                    assert!(echoed.is_empty());
                    server_connected = Some(ev.peer);
                }
                (Side::Server, FASTNET_EVENT_DATA) => {
                    assert_eq!(Some(ev.peer), server_connected, "CONNECTED comes first");
                }
                (Side::Client, FASTNET_EVENT_DATA) => {
                    assert_eq!(ev.peer, FASTNET_SERVER_PEER_ID);
                    echoed.push((ev.channel, ev.data.clone()));
                }
                other => panic!("unexpected {other:?}: {ev:?}"),
            }
            (echoed.len() == messages.len()).then_some(())
        })
        .expect("every message echoed");
    let mut sorted = messages.clone();
    sorted.sort();
    echoed.sort();
    assert_eq!(echoed, sorted);

    let peer = server_connected.unwrap();
    assert_eq!(fastnet_server_peer_count(server.handle), 1);
    let mut stats = FastNetStats::default();
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { fastnet_client_stats(client, &mut stats) }, 0);
    assert!(
        stats.packets_sent > 0 && stats.packets_received > 0,
        "{stats:?}"
    );
    assert_eq!(stats.messages_sent, messages.len() as u64);
    assert!(stats.rtt_us > 0);
    assert!(fastnet_client_rtt_us(client) > 0);
    // SAFETY: valid out-pointer.
    assert_eq!(
        unsafe { fastnet_server_peer_stats(server.handle, peer, &mut stats) },
        0
    );
    assert_eq!(stats.messages_received, messages.len() as u64);
    // SAFETY: valid out-pointer.
    let unknown = unsafe { fastnet_server_peer_stats(server.handle, 999, &mut stats) };
    assert_eq!(unknown, FASTNET_ERROR_UNKNOWN_PEER as i32);

    // The client leaves with an application code; the server hears it.
    assert_eq!(fastnet_client_disconnect_with_code(client, 4242), 0);
    let left = server
        .run_until(std::ptr::null_mut(), WAIT, false, |_, ev| {
            (ev.kind == FASTNET_EVENT_DISCONNECTED).then(|| ev.clone())
        })
        .expect("DISCONNECTED on the server");
    assert_eq!(left.peer, peer);
    assert_eq!(left.reason, FASTNET_DISCONNECT_CLOSED_BY_PEER);
    assert_eq!(left.code, 4242);
    assert!(left.message.contains("4242"), "{}", left.message);
    assert_eq!(fastnet_server_peer_count(server.handle), 0);
    // The handle is gone.
    assert_eq!(
        fastnet_client_disconnect(client),
        FASTNET_ERROR_INVALID_HANDLE as i32
    );
}

#[test]
fn server_kicks_a_peer_and_broadcasts() {
    let server = TestServer::start();
    let a = server.connect(|_| {});
    let b = server.connect(|c| c.service_thread = true);
    for c in [a, b] {
        assert_eq!(send(c, 0, b"hi"), 0);
    }
    let mut peers = Vec::new();
    server.run_until(std::ptr::null_mut(), WAIT, false, |_, ev| {
        if ev.kind == FASTNET_EVENT_CONNECTED {
            peers.push(ev.peer);
        }
        (peers.len() == 2).then_some(())
    });
    assert_eq!(peers.len(), 2);
    // SAFETY: valid bytes.
    let n = unsafe { fastnet_server_broadcast(server.handle, 0, b"all".as_ptr().cast(), 3) };
    assert_eq!(n, 2);
    for c in [a, b] {
        let got = server.run_until(c, WAIT, false, |side, ev| {
            (side == Side::Client && ev.kind == FASTNET_EVENT_DATA && ev.data == b"all")
                .then_some(())
        });
        assert!(got.is_some(), "broadcast reached every client");
    }
    // Kick the first peer: the server reports it at once, the client soon.
    let kicked = peers[0];
    assert_eq!(
        fastnet_server_disconnect_peer(server.handle, kicked, 300),
        0
    );
    assert_eq!(
        fastnet_server_disconnect_peer(server.handle, 12345, 0),
        FASTNET_ERROR_UNKNOWN_PEER as i32
    );
    let local = server
        .run_until(std::ptr::null_mut(), WAIT, false, |_, ev| {
            (ev.kind == FASTNET_EVENT_DISCONNECTED).then(|| ev.clone())
        })
        .unwrap();
    assert_eq!(
        (local.peer, local.reason, local.code),
        (kicked, FASTNET_DISCONNECT_CLOSED_LOCALLY, 300)
    );
    // Which client was kicked depends on which connected first: both are polled.
    let end = Instant::now() + WAIT;
    let mut told = None;
    while told.is_none() && Instant::now() < end {
        for c in [a, b] {
            while let Some(ev) = poll_client(c) {
                if ev.kind == FASTNET_EVENT_DISCONNECTED {
                    told = Some((c, ev));
                }
            }
        }
        let _ = fastnet_server_service(server.handle, 1);
    }
    let (c, ev) = told.expect("the kicked client hears it");
    assert_eq!(
        (ev.reason, ev.code),
        (FASTNET_DISCONNECT_CLOSED_BY_PEER, 300)
    );
    assert_eq!(
        fastnet_client_state(c),
        FastNetClientState::FASTNET_CLIENT_DISCONNECTED as i32
    );
    assert_eq!(send(c, 0, b"late"), FASTNET_ERROR_CLOSED as i32);
    assert!(poll_client(c).is_none(), "nothing after DISCONNECTED");
    // Statistics stay readable after the end.
    let mut stats = FastNetStats::default();
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { fastnet_client_stats(c, &mut stats) }, 0);
    assert_eq!(fastnet_client_destroy(a), 0);
    assert_eq!(fastnet_client_destroy(b), 0);
}

#[test]
fn nonblocking_connect_reports_connected_then_data() {
    let server = TestServer::start();
    let client = server.connect(|c| c.nonblocking = true);
    // Set while connecting, it applies once connected.
    assert_eq!(fastnet_client_set_busy_wait_us(client, 20), 0);
    // Until connected, sends are refused with NOT_CONNECTED (or it is already up).
    let rc = send(client, 0, b"early");
    assert!(rc == FASTNET_ERROR_NOT_CONNECTED as i32 || rc == 0, "{rc}");
    let connected = server.run_until(client, WAIT, true, |side, ev| {
        (side == Side::Client && ev.kind == FASTNET_EVENT_CONNECTED).then_some(())
    });
    assert!(connected.is_some());
    assert_eq!(send(client, 2, b"after"), 0);
    let echoed = server.run_until(client, WAIT, true, |side, ev| {
        (side == Side::Client && ev.kind == FASTNET_EVENT_DATA && ev.data == b"after").then_some(())
    });
    assert!(echoed.is_some());
    assert_eq!(fastnet_client_disconnect(client), 0);
}

#[test]
fn a_wrong_pin_is_refused_blocking_and_nonblocking() {
    let server = TestServer::start();
    let wrong = CString::new("00".repeat(32)).unwrap();
    let mut cfg = server.client_config();
    cfg.pinned_sha256 = wrong.as_ptr();
    let server_thread = {
        // The server must run its side of the handshake meanwhile.
        let handle = server.handle as usize;
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end {
                let _ = fastnet_server_service(std::ptr::without_provenance_mut(handle), 5);
            }
        })
    };
    // SAFETY: `cfg` is initialized; its strings outlive the call.
    let c = unsafe { fastnet_client_connect_with(&cfg) };
    assert!(c.is_null());
    assert_eq!(
        fastnet_last_error_code(),
        FASTNET_ERROR_UNTRUSTED_SERVER as i32
    );
    assert!(last_error().contains("certificate"), "{}", last_error());

    cfg.nonblocking = true;
    // SAFETY: as above.
    let c = unsafe { fastnet_client_connect_with(&cfg) };
    assert!(!c.is_null(), "{}", last_error());
    let end = Instant::now() + WAIT;
    let failed = loop {
        if let Some(ev) = poll_client(c) {
            break ev;
        }
        assert!(Instant::now() < end, "CONNECT_FAILED in time");
        assert_eq!(fastnet_client_service(c, 5), 0);
    };
    assert_eq!(failed.kind, FASTNET_EVENT_CONNECT_FAILED);
    assert_eq!(failed.error_code, FASTNET_ERROR_UNTRUSTED_SERVER as i32);
    assert!(failed.message.contains("pinned"), "{}", failed.message);
    assert_eq!(
        fastnet_client_state(c),
        FastNetClientState::FASTNET_CLIENT_FAILED as i32
    );
    assert_eq!(send(c, 0, b"x"), FASTNET_ERROR_CLOSED as i32);
    assert!(poll_client(c).is_none());
    assert_eq!(fastnet_client_destroy(c), 0);
    server_thread.join().unwrap();
}

#[test]
fn nothing_listening_fails_quickly_with_a_connect_error() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = Instant::now();
    // SAFETY: static C string.
    let c = unsafe { fastnet_client_connect(c"127.0.0.1".as_ptr(), port) };
    assert!(c.is_null());
    assert_eq!(
        fastnet_last_error_code(),
        FASTNET_ERROR_CONNECT as i32,
        "{}",
        last_error()
    );
    assert!(start.elapsed() < Duration::from_secs(6));
}

#[test]
fn default_trust_refuses_a_self_signed_server() {
    let server = TestServer::start();
    let handle = server.handle as usize;
    let pump = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            let _ = fastnet_server_service(std::ptr::without_provenance_mut(handle), 5);
        }
    });
    let mut cfg = server.client_config();
    cfg.pinned_sha256 = std::ptr::null();
    // SAFETY: initialized config.
    let c = unsafe { fastnet_client_connect_with(&cfg) };
    assert!(
        c.is_null(),
        "public roots do not trust a development certificate"
    );
    assert_eq!(
        fastnet_last_error_code(),
        FASTNET_ERROR_UNTRUSTED_SERVER as i32,
        "{}",
        last_error()
    );
    pump.join().unwrap();
}

#[test]
fn pem_text_credentials_and_ca_trust() {
    let dev = fastnet_core::session::DevCertificate::generate(&["localhost"]).unwrap();
    let server = TestServer::start_with(|cfg| {
        cfg.dev_certificate = false;
        cfg.cert_pem = dev.cert_pem.as_ptr();
        cfg.cert_pem_len = dev.cert_pem.len();
        cfg.key_pem = dev.key_pem.as_ptr();
        cfg.key_pem_len = dev.key_pem.len();
    });
    assert_eq!(server.fingerprint.to_str().unwrap(), dev.sha256_hex());
    let client = server.connect(|c| {
        c.pinned_sha256 = std::ptr::null();
        c.host = c"localhost".as_ptr();
        c.ca_pem = dev.cert_pem.as_ptr();
        c.ca_pem_len = dev.cert_pem.len();
    });
    assert_eq!(poll_client(client).unwrap().kind, FASTNET_EVENT_CONNECTED);
    assert_eq!(fastnet_client_disconnect(client), 0);
}

#[test]
fn link_conditioner_settings_are_applied_and_checked() {
    let server = TestServer::start();
    let client = server.connect(|c| {
        c.link_outgoing.enabled = true;
        c.link_outgoing.latency_ms = 30;
    });
    let _ = poll_client(client);
    let sent = Instant::now();
    assert_eq!(send(client, 0, b"slow"), 0);
    let got = server.run_until(client, WAIT, true, |side, ev| {
        (side == Side::Client && ev.kind == FASTNET_EVENT_DATA).then_some(())
    });
    assert!(got.is_some());
    assert!(
        sent.elapsed() >= Duration::from_millis(30),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(fastnet_client_disconnect(client), 0);

    let mut cfg = server.client_config();
    cfg.link_incoming.enabled = true;
    cfg.link_incoming.loss = 2.0;
    // SAFETY: initialized config.
    let c = unsafe { fastnet_client_connect_with(&cfg) };
    assert!(c.is_null());
    assert_eq!(
        fastnet_last_error_code(),
        FASTNET_ERROR_INVALID_ARGUMENT as i32
    );
    assert!(last_error().contains("loss"), "{}", last_error());
}

#[test]
fn event_data_lives_in_the_handle_until_the_next_poll() {
    let server = TestServer::start();
    let client = server.connect(|_| {});
    let _ = poll_client(client);
    for m in [&b"first message"[..], b"second"] {
        assert_eq!(send(client, 0, m), 0);
    }
    // Collect the raw events (not copies) to check what the pointers show.
    let end = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while seen.len() < 2 && Instant::now() < end {
        while let Some(ev) = poll_server(server.handle) {
            if ev.kind == FASTNET_EVENT_DATA {
                // SAFETY: owned bytes.
                unsafe {
                    fastnet_server_send(
                        server.handle,
                        ev.peer,
                        0,
                        ev.data.as_ptr().cast(),
                        ev.data.len(),
                    )
                };
            }
        }
        let mut ev = empty_event();
        // SAFETY: writable event.
        while unsafe { fastnet_client_poll(client, &mut ev) } {
            if ev.r#type == FASTNET_EVENT_DATA {
                // Valid now, and until the next poll: read it twice, with a
                // library call on another handle in between.
                // SAFETY: documented lifetime.
                let a = unsafe { std::slice::from_raw_parts(ev.data, ev.data_len) }.to_vec();
                let _ = fastnet_server_peer_count(server.handle);
                // SAFETY: documented lifetime.
                let b = unsafe { std::slice::from_raw_parts(ev.data, ev.data_len) }.to_vec();
                assert_eq!(a, b);
                seen.push(a);
            }
        }
        // A false poll writes an empty event.
        assert_eq!(ev.r#type, FASTNET_EVENT_NONE);
        assert_eq!(ev.data_len, 0);
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(seen, [b"first message".to_vec(), b"second".to_vec()]);
    assert_eq!(fastnet_client_disconnect(client), 0);
}

#[test]
fn the_same_client_from_several_threads_and_a_destroy_in_the_middle() {
    let server = TestServer::start();
    let client = server.connect(|_| {}) as usize;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let c: FastNetClient = std::ptr::without_provenance_mut(client);
                let mut ok = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let rc = if i == 0 {
                        send(c, 1, b"spam")
                    } else {
                        poll_client(c);
                        fastnet_last_error_code()
                    };
                    match rc {
                        0 => ok += 1,
                        rc if rc == FASTNET_ERROR_INVALID_HANDLE as i32 => return ok,
                        rc if rc == FASTNET_ERROR_WOULD_BLOCK as i32 => {}
                        rc => panic!("thread {i}: unexpected {rc}: {}", last_error()),
                    }
                }
                ok
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let c: FastNetClient = std::ptr::without_provenance_mut(client);
    assert_eq!(fastnet_client_destroy(c), 0);
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        assert!(w.join().unwrap() > 0, "each thread got some calls through");
    }
    assert_eq!(
        fastnet_client_destroy(c),
        FASTNET_ERROR_INVALID_HANDLE as i32
    );
}

#[test]
fn a_silent_server_times_out_and_a_pending_connect_can_be_destroyed() {
    // Accepts TCP but never speaks TLS.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let config = |nonblocking: bool| {
        // SAFETY: zeroed, then filled by config_default.
        let mut cfg: FastNetClientConfig = unsafe { std::mem::zeroed() };
        // SAFETY: writable.
        unsafe { fastnet_client_config_default(&mut cfg) };
        cfg.host = c"127.0.0.1".as_ptr();
        cfg.port = port;
        cfg.pinned_sha256 = c"AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89".as_ptr();
        cfg.connect_timeout_ms = 300;
        cfg.nonblocking = nonblocking;
        cfg
    };
    // Blocking: NULL with TIMEOUT, within the bound.
    let start = Instant::now();
    // SAFETY: initialized config with static strings.
    let c = unsafe { fastnet_client_connect_with(&config(false)) };
    assert!(c.is_null());
    assert_eq!(
        fastnet_last_error_code(),
        FASTNET_ERROR_TIMEOUT as i32,
        "{}",
        last_error()
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );

    // Non-blocking: CONNECT_FAILED with TIMEOUT.
    // SAFETY: as above.
    let c = unsafe { fastnet_client_connect_with(&config(true)) };
    assert!(!c.is_null());
    assert_eq!(
        fastnet_client_state(c),
        FastNetClientState::FASTNET_CLIENT_CONNECTING as i32
    );
    let end = Instant::now() + WAIT;
    let failed = loop {
        assert_eq!(fastnet_client_service(c, 20), 0);
        if let Some(ev) = poll_client(c) {
            break ev;
        }
        assert!(Instant::now() < end);
    };
    assert_eq!(failed.kind, FASTNET_EVENT_CONNECT_FAILED);
    assert_eq!(failed.error_code, FASTNET_ERROR_TIMEOUT as i32);
    assert_eq!(fastnet_client_service(c, 0), FASTNET_ERROR_CLOSED as i32);
    assert_eq!(fastnet_client_destroy(c), 0);

    // Destroyed while connecting: returns at once; the helper thread ends alone.
    // SAFETY: as above.
    let c = unsafe { fastnet_client_connect_with(&config(true)) };
    let start = Instant::now();
    assert_eq!(fastnet_client_disconnect(c), 0);
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(fastnet_client_state(c), FASTNET_ERROR_INVALID_HANDLE as i32);
    drop(silent);
}

#[test]
fn a_message_sent_mid_drain_leaves_with_the_next_poll_sharing_a_datagram() {
    let server = TestServer::start();
    let client = server.connect(|_| {});
    assert_eq!(
        poll_client(client).expect("CONNECTED").kind,
        FASTNET_EVENT_CONNECTED
    );

    // The client sends, the server echoes; the client polls until the echo and
    // stops there, in the middle of a drain (its last poll returned an event).
    assert_eq!(send(client, FASTNET_CHANNEL_UNRELIABLE, b"ping"), 0);
    server
        .run_until(client, WAIT, true, |side, ev| {
            (side == Side::Client && ev.kind == FASTNET_EVENT_DATA).then_some(())
        })
        .expect("the echo");

    // Three messages, then exactly one poll: it services the connection, so
    // they leave now (not with the next drain), together.
    let mut before = FastNetStats::default();
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { fastnet_client_stats(client, &mut before) }, 0);
    for m in [&b"one"[..], b"two", b"three"] {
        assert_eq!(send(client, FASTNET_CHANNEL_RELIABLE_ORDERED, m), 0);
    }
    assert_eq!(poll_client(client), None);
    let mut after = FastNetStats::default();
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { fastnet_client_stats(client, &mut after) }, 0);
    let datagrams = after.packets_sent - before.packets_sent;
    // One datagram for the three (a second one only if an acknowledgement
    // timer happened to be due in that service).
    assert!((1..=2).contains(&datagrams), "{datagrams} datagrams");

    // The server gets them without the client polling again.
    let mut got = Vec::new();
    server
        .run_until(std::ptr::null_mut(), WAIT, false, |side, ev| {
            assert_eq!(side, Side::Server);
            if ev.kind == FASTNET_EVENT_DATA && ev.channel == FASTNET_CHANNEL_RELIABLE_ORDERED {
                got.push(ev.data.clone());
            }
            (got.len() == 3).then_some(())
        })
        .expect("the three messages, sent by the single poll");
    assert_eq!(got, [&b"one"[..], b"two", b"three"]);
    assert_eq!(fastnet_client_disconnect(client), 0);
}

#[test]
fn a_send_mid_drain_sends_without_reading_the_socket_again() {
    let server = TestServer::start();
    let client = server.connect(|_| {});
    server
        .run_until(client, WAIT, false, |side, ev| {
            (side == Side::Server && ev.kind == FASTNET_EVENT_CONNECTED).then_some(())
        })
        .expect("the server sees the client");
    let received = || {
        let mut s = FastNetStats::default();
        // SAFETY: valid out-pointer.
        assert_eq!(unsafe { fastnet_client_stats(client, &mut s) }, 0);
        s.packets_received
    };
    let broadcast = |m: &[u8]| {
        // SAFETY: valid bytes.
        let n = unsafe { fastnet_server_broadcast(server.handle, 0, m.as_ptr().cast(), m.len()) };
        assert_eq!(n, 1);
        // The server's service thread sends; loopback delivers well within this.
        std::thread::sleep(Duration::from_millis(100));
    };
    // Drain whatever the connect left, then two messages wait in the socket.
    while poll_client(client).is_some() {}
    broadcast(b"a1");
    broadcast(b"a2");
    // The first poll of the drain reads both.
    assert_eq!(poll_client(client).expect("a1").data, b"a1");
    let after_read = received();
    // Mid-drain: a third message arrives, and the client answers the first.
    broadcast(b"b1");
    assert_eq!(send(client, 0, b"re: a1"), 0);
    // The answer leaves with this poll, which does not read the socket: the
    // drain ends with what its first poll read.
    assert_eq!(poll_client(client).expect("a2").data, b"a2");
    assert_eq!(poll_client(client), None);
    assert_eq!(received(), after_read, "no read in the middle of a drain");
    server
        .run_until(std::ptr::null_mut(), WAIT, false, |_, ev| {
            (ev.kind == FASTNET_EVENT_DATA && ev.data == b"re: a1").then_some(())
        })
        .expect("the answer left without a service");
    // The next drain reads the socket again.
    assert_eq!(poll_client(client).expect("b1").data, b"b1");
    assert_eq!(fastnet_client_disconnect(client), 0);
}

#[test]
fn a_server_answer_given_mid_drain_leaves_with_the_next_poll() {
    // A server without a service thread, driven only by its polls.
    let server = TestServer::start_with(|c| c.service_thread = false);
    let client = server.connect(|c| c.nonblocking = true);
    let (mut peer, mut connected) = (None, false);
    let end = Instant::now() + WAIT;
    while !(peer.is_some() && connected) && Instant::now() < end {
        while let Some(ev) = poll_server(server.handle) {
            if ev.kind == FASTNET_EVENT_CONNECTED {
                peer = Some(ev.peer);
            }
        }
        while let Some(ev) = poll_client(client) {
            connected |= ev.kind == FASTNET_EVENT_CONNECTED;
        }
    }
    let peer = peer.expect("the server accepts the client");
    assert!(connected, "the client connects");
    // Two messages from the client, read by the same service.
    for m in [&b"q1"[..], b"q2"] {
        assert_eq!(send(client, 0, m), 0);
        while poll_client(client).is_some() {}
    }
    std::thread::sleep(Duration::from_millis(100));
    let first = poll_server(server.handle).expect("q1");
    assert_eq!(first.data, b"q1");
    // The server answers the first while the second still waits in its drain.
    // SAFETY: valid bytes.
    let rc = unsafe { fastnet_server_send(server.handle, peer, 0, b"a1".as_ptr().cast(), 2) };
    assert_eq!(rc, 0);
    assert_eq!(poll_server(server.handle).expect("q2").data, b"q2");
    // No more polls of the server: the answer is already on its way.
    let end = Instant::now() + WAIT;
    let mut got = None;
    while got.is_none() && Instant::now() < end {
        got = poll_client(client).filter(|ev| ev.kind == FASTNET_EVENT_DATA);
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(got.expect("the answer arrives").data, b"a1");
    assert_eq!(fastnet_client_disconnect(client), 0);
}

/// GRO turned on through the C ABI on both sides, the server's with its
/// service thread running (restarted around the switch), the client's while
/// it connects (applied once connected): large messages, sent as GSO runs
/// and received as GRO runs, echo intact; calling it again changes nothing.
#[test]
fn gro_enabled_at_run_time_carries_large_messages_both_ways() {
    let server = TestServer::start();
    assert_eq!(
        fastnet_server_enable_gro(server.handle),
        0,
        "{}",
        last_error()
    );
    let client = server.connect(|c| c.nonblocking = true);
    assert_eq!(fastnet_client_enable_gro(client), 0, "{}", last_error());
    let connected = server.run_until(client, WAIT, true, |side, ev| {
        (side == Side::Client && ev.kind == FASTNET_EVENT_CONNECTED).then_some(())
    });
    assert!(connected.is_some());
    assert_eq!(fastnet_client_enable_gro(client), 0, "{}", last_error());
    assert_eq!(
        fastnet_server_enable_gro(server.handle),
        0,
        "{}",
        last_error()
    );
    for i in 0..3u8 {
        let big: Vec<u8> = (0..300_000u32).map(|k| (k as u8) ^ i).collect();
        assert_eq!(send(client, 0, &big), 0, "{}", last_error());
        let echoed = server.run_until(client, WAIT, true, |side, ev| {
            (side == Side::Client && ev.kind == FASTNET_EVENT_DATA).then(|| ev.data.clone())
        });
        assert!(echoed == Some(big), "message {i} echoed intact");
    }
    assert_eq!(fastnet_client_disconnect(client), 0);
    assert_eq!(
        fastnet_client_enable_gro(null_client()),
        FASTNET_ERROR_INVALID_HANDLE as i32
    );
}
