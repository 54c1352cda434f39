//! Abuse of a live server on loopback (issue #12): floods of garbage, forged
//! and replayed datagrams while eight clients keep working, and a thousand TCP
//! connections that stall or speak garbage TLS while a real client connects.
//! Everything is bounded in time and talks to 127.0.0.1 only.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{check_message, message};
use fastnet::channels;
use fastnet::net::{Client, ClientConfig, Server, ServerConfig};
use fastnet::session::{DevCertificate, ServerCredentials, ServerTrust};

/// The two tests measure this process's memory and file descriptors: they
/// must not run at the same time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Resident memory of this process, from /proc (Linux only).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

fn server(dev: &DevCertificate, tweak: impl FnOnce(&mut ServerConfig)) -> Server {
    let mut config = ServerConfig::new(Arc::new(
        ServerCredentials::from_dev_certificate(dev).unwrap(),
    ));
    tweak(&mut config);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Server::bind(any, any, config).unwrap()
}

fn client_config(dev: &DevCertificate) -> ClientConfig {
    ClientConfig::with_trust(ServerTrust::PinnedSha256(dev.sha256))
}

/// A UDP relay in front of the server: clients reach the server through it
/// (the server advertises its address), and it keeps copies of the clients'
/// first datagrams for an attacker to replay. Runs until `stop`.
fn recording_relay(
    front: UdpSocket,
    server: SocketAddr,
    recorded: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        front.set_nonblocking(true).unwrap();
        // One upstream socket per client, so the server sees distinct peers.
        let mut upstream: Vec<(SocketAddr, UdpSocket)> = Vec::new();
        let mut buf = vec![0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let mut moved = false;
            while let Ok((n, client)) = front.recv_from(&mut buf) {
                moved = true;
                let i = match upstream.iter().position(|(c, _)| *c == client) {
                    Some(i) => i,
                    None => {
                        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                        s.set_nonblocking(true).unwrap();
                        upstream.push((client, s));
                        upstream.len() - 1
                    }
                };
                let mut r = recorded.lock().unwrap();
                if r.len() < 4096 {
                    r.push(buf[..n].to_vec());
                }
                drop(r);
                let _ = upstream[i].1.send_to(&buf[..n], server);
            }
            for (client, s) in &upstream {
                while let Ok((n, _)) = s.recv_from(&mut buf) {
                    moved = true;
                    let _ = front.send_to(&buf[..n], client);
                }
            }
            if !moved {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    })
}

/// A client thread that sends `count` reliable-ordered messages (paced) and
/// checks every echo arrives, exactly once and in order. It first reports the
/// connection ID the server knows it by (what an attacker on the path sees).
fn echo_client(
    port: u16,
    config: ClientConfig,
    count: u32,
    cids: std::sync::mpsc::Sender<u64>,
    keep_going: Arc<AtomicBool>,
) -> JoinHandle<u32> {
    std::thread::spawn(move || {
        let mut client = Client::connect("127.0.0.1", port, config).expect("connect");
        cids.send(client.with_connection(|c| c.peer_cid().0))
            .unwrap();
        let (mut sent, mut next) = (0u32, 0u32);
        let mut buf = Vec::new();
        let end = Instant::now() + Duration::from_secs(90);
        // At least `count` echoes, and on as long as `keep_going` says.
        while next < count || keep_going.load(Ordering::Relaxed) || next < sent {
            assert!(Instant::now() < end, "echoes stopped at {next}");
            let more = next < count || keep_going.load(Ordering::Relaxed);
            if more && sent < next + 64 {
                client
                    .send(channels::RELIABLE_ORDERED, &message(sent, 40))
                    .unwrap();
                sent += 1;
            }
            client.service_for(Duration::from_micros(200)).unwrap();
            while let Some(ch) = client.recv_into(&mut buf) {
                assert_eq!(ch, channels::RELIABLE_ORDERED);
                assert_eq!(check_message(&buf), next, "lost, duplicated or reordered");
                next += 1;
            }
        }
        client.disconnect(0);
        next
    })
}

/// Eight clients echo (through a relay that records their datagrams) while an
/// attacker floods the server's UDP port with a million datagrams from four
/// source addresses: garbage of any length, truncated and oversized
/// datagrams, forgeries carrying the clients' live connection IDs, and exact
/// replays of the clients' captured datagrams. All are dropped and counted,
/// memory stays flat, no peer's address moves, no client loses a message, and
/// the attacker never receives a single byte.
#[test]
fn a_million_hostile_datagrams_cost_nothing_but_their_own_traffic() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dev = DevCertificate::generate(&["localhost"]).unwrap();
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let relay_addr = front.local_addr().unwrap();
    let mut server = server(&dev, |c| c.advertised_udp_addr = Some(relay_addr));
    let (port, udp) = (server.tcp_addr().port(), server.udp_addr());
    let recorded = Arc::new(std::sync::Mutex::new(Vec::new()));
    let relay_stop = Arc::new(AtomicBool::new(false));
    let relay = recording_relay(front, udp, recorded.clone(), relay_stop.clone());
    let (cid_tx, cid_rx) = std::sync::mpsc::channel();
    let attack_running = Arc::new(AtomicBool::new(true));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let keep_going = attack_running.clone();
            echo_client(port, client_config(&dev), 3_000, cid_tx.clone(), keep_going)
        })
        .collect();

    let mut buf = Vec::new();
    let mut cids = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while cids.len() < 8 {
        assert!(Instant::now() < end, "clients did not connect");
        server.service_for(Duration::from_millis(1)).unwrap();
        while server.poll_event().is_some() {}
        while let Some((peer, ch)) = server.recv_into(&mut buf) {
            let _ = server.send(peer, ch, &buf);
        }
        cids.extend(cid_rx.try_iter());
    }

    // Let the relay capture some genuine traffic to replay.
    while recorded.lock().unwrap().len() < 200 {
        server.service_for(Duration::from_millis(1)).unwrap();
        while let Some((peer, ch)) = server.recv_into(&mut buf) {
            let _ = server.send(peer, ch, &buf);
        }
        assert!(Instant::now() < end, "no traffic to capture");
    }
    let captured: Vec<Vec<u8>> = recorded.lock().unwrap().clone();
    let attacker = {
        let running = attack_running.clone();
        std::thread::spawn(move || -> (u64, usize) {
            let sockets: Vec<UdpSocket> = (0..4)
                .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
                .collect();
            for s in &sockets {
                s.set_nonblocking(true).unwrap();
            }
            let mut rng = fastrand::Rng::with_seed(12);
            let mut datagram = vec![0u8; 2000];
            let mut sent = 0u64;
            while sent < 1_000_000 {
                let len = match sent % 5 {
                    0 => rng.usize(0..1500),
                    1 => rng.usize(0..30),
                    2 => 1500 + rng.usize(0..500),
                    3 => rng.usize(30..1200),
                    _ => {
                        // An exact replay of a genuine client datagram.
                        let real = &captured[rng.usize(0..captured.len())];
                        datagram[..real.len()].copy_from_slice(real);
                        real.len()
                    }
                };
                if sent % 5 < 4 {
                    rng.fill(&mut datagram[..len]);
                }
                if sent % 5 == 3 {
                    // A well-formed header with a live connection ID.
                    datagram[0] = 0x10 | (rng.u8(..) & 1);
                    datagram[1..9].copy_from_slice(&cids[rng.usize(0..cids.len())].to_be_bytes());
                }
                match sockets[(sent % 4) as usize].send_to(&datagram[..len], udp) {
                    Ok(_) => sent += 1,
                    Err(_) => std::thread::yield_now(), // socket buffer full: retry
                }
            }
            std::thread::sleep(Duration::from_millis(300));
            let mut answered = 0;
            let mut probe = [0u8; 2048];
            for s in &sockets {
                while s.recv_from(&mut probe).is_ok() {
                    answered += 1;
                }
            }
            running.store(false, Ordering::Relaxed);
            (sent, answered)
        })
    };

    let rss_start = rss_bytes();
    let mut rss_peak = rss_start;
    // Memory once a quarter of the flood has been dropped: from then on it
    // must not grow with the flood (it is flat), whatever the warm-up cost.
    let mut rss_quarter = None;
    let end = Instant::now() + Duration::from_secs(150);
    while !clients.iter().all(JoinHandle::is_finished) || !attacker.is_finished() {
        assert!(Instant::now() < end, "run did not finish");
        server.service_for(Duration::from_millis(1)).unwrap();
        while let Some((peer, ch)) = server.recv_into(&mut buf) {
            let _ = server.send(peer, ch, &buf);
        }
        while server.poll_event().is_some() {}
        rss_peak = rss_peak.max(rss_bytes());
        let e = server.endpoint_stats();
        if rss_quarter.is_none() && e.malformed + e.rejected + e.unknown_connection > 250_000 {
            rss_quarter = rss_bytes();
        }
    }
    let rss_end = rss_bytes();
    let (sent, answered) = attacker.join().unwrap();
    for c in clients {
        // Every echo was checked in order as it came; each client went on
        // until the attack was over.
        assert!(c.join().unwrap() >= 3_000, "a client stopped early");
    }
    assert_eq!(sent, 1_000_000);
    assert_eq!(answered, 0, "an unauthenticated source got an answer");
    let stats = server.endpoint_stats();
    println!(
        "endpoint stats: {stats:?}; memory start {rss_start:?} after a quarter {rss_quarter:?} \
         end {rss_end:?} peak {rss_peak:?}"
    );
    // The kernel drops what overflows the socket buffer; everything that
    // reached the server was dropped and counted, by its reason.
    assert!(stats.malformed > 50_000, "{stats:?}");
    assert!(stats.rejected > 50_000, "forgeries and replays: {stats:?}");
    assert_eq!(stats.address_changes, 0, "a replay moved a peer: {stats:?}");
    relay_stop.store(true, Ordering::Relaxed);
    relay.join().unwrap();
    if let (Some(start), Some(peak)) = (rss_start, rss_peak) {
        assert!(
            peak < start + (64 << 20),
            "memory grew from {start} to {peak}"
        );
    }
}

/// A thousand TCP connections that stall or send garbage instead of a TLS
/// ClientHello: each costs one bounded table slot until its timeout, file
/// descriptors are released, and a real client still connects within a second.
#[test]
fn a_thousand_bad_handshakes_do_not_lock_out_a_real_client() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dev = DevCertificate::generate(&["localhost"]).unwrap();
    let mut server = server(&dev, |c| {
        c.handshake_timeout = Duration::from_secs(2);
        c.max_pending_handshakes = 256;
    });
    let tcp = server.tcp_addr();
    let fds_start = open_fds();
    let rss_start = rss_bytes();

    // Attackers in another thread: 500 that stall, 500 that send garbage.
    let attackers = std::thread::spawn(move || {
        let mut held = Vec::new();
        for i in 0..1000 {
            let Ok(mut s) = TcpStream::connect(tcp) else {
                continue;
            };
            if i % 2 == 1 {
                let _ = s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0xde, 0xad, 0xbe, 0xef]);
                let _ = s.write_all(&vec![0x42u8; 300]);
            }
            held.push(s);
        }
        std::thread::sleep(Duration::from_secs(3));
        held.len()
    });
    // Meanwhile a real client connects.
    std::thread::sleep(Duration::from_millis(200));
    let config = client_config(&dev);
    let started = Instant::now();
    let legit = std::thread::spawn(move || {
        let c = Client::connect("127.0.0.1", tcp.port(), config);
        (c.map(|_| ()).map_err(|e| e.to_string()), started.elapsed())
    });
    let end = Instant::now() + Duration::from_secs(30);
    let mut peak_pending = 0;
    while !attackers.is_finished() || !legit.is_finished() {
        assert!(Instant::now() < end);
        server.service_for(Duration::from_millis(1)).unwrap();
        peak_pending = peak_pending.max(server.pending_handshakes());
        while server.poll_event().is_some() {}
    }
    let (result, took) = legit.join().unwrap();
    result.expect("the real client connects");
    assert!(
        took < Duration::from_secs(1),
        "the real client took {took:?}"
    );
    let held = attackers.join().unwrap();
    assert!(held >= 900, "only {held} attacking connections opened");
    assert!(peak_pending <= 256, "the table is bounded: {peak_pending}");
    // Let every timeout pass.
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end {
        server.service_for(Duration::from_millis(5)).unwrap();
    }
    assert_eq!(server.pending_handshakes(), 0);
    let stats = server.handshake_stats();
    assert!(stats.accepted >= 1000);
    assert_eq!(stats.completed, 1);
    assert!(
        stats.failed + stats.timed_out + stats.evicted >= 999,
        "{stats:?}"
    );
    if let (Some(start), Some(now)) = (fds_start, open_fds()) {
        assert!(
            now <= start + 8,
            "file descriptors leaked: {start} -> {now}"
        );
    }
    if let (Some(start), Some(now)) = (rss_start, rss_bytes()) {
        assert!(
            now < start + (64 << 20),
            "memory grew from {start} to {now}"
        );
    }
}
