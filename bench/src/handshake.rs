//! Connection set-up time on loopback, client here and server in a child
//! process. FastNet: `Client::connect` (TCP connect, TLS 1.3 with an ECDSA
//! P-256 certificate verified by pinning, parameter exchange, first UDP round
//! trip); the same through the Tokio driver; quinn: `Endpoint::connect` to an
//! established connection (TLS 1.3 inside QUIC, ECDSA P-256 certificate
//! verified against its root); ENet (no cryptography) for scale.

use std::time::{Duration, Instant};

use fastnet::net::Client;

use crate::rtt::{fastnet_client_config, tokio_driver_connect};
use crate::server::{Mode, ServerKind, ServerProcess};
use crate::stats::Summary;
use crate::{BenchResult, Harness};

/// Connects made and thrown away before measuring.
const WARMUP_CONNECTS: usize = 3;

/// Connect times of one implementation.
#[derive(Clone, Debug)]
pub struct HandshakeResult {
    /// What connected.
    pub label: &'static str,
    /// Whether the server's identity is checked.
    pub verified: bool,
    /// Summary of the connect times (microseconds).
    pub summary: Summary,
    /// Why it did not run, if it did not.
    pub skipped: Option<String>,
}

/// Every handshake row.
pub fn measure(h: &Harness) -> Vec<HandshakeResult> {
    type Measure = fn(&Harness) -> BenchResult<Vec<Duration>>;
    let cases: [(&'static str, bool, Measure); CASE_COUNT] = [
        (
            "FastNet `Client::connect` (TCP + TLS 1.3 + first UDP answer), server in `service_for(16 ms)`",
            true,
            fastnet_game_loop_sleeping,
        ),
        (
            "FastNet `Client::connect` (TCP + TLS 1.3 + first UDP answer), server spinning in `service()`",
            true,
            fastnet_game_loop_spinning,
        ),
        (
            "FastNet Tokio driver `SecureSocket::connect_with`",
            true,
            fastnet_tokio,
        ),
        (
            "quinn 0.11 `Endpoint::connect` (QUIC + TLS 1.3)",
            true,
            quinn,
        ),
        (
            "ENet 1.3 `enet_host_connect` to CONNECT event (no crypto)",
            false,
            enet,
        ),
    ];
    cases
        .into_iter()
        .map(|(label, verified, f)| {
            h.progress.set_message(format!("handshake: {label}"));
            let r = f(h);
            h.progress.inc(1);
            match r {
                Ok(times) => HandshakeResult {
                    label,
                    verified,
                    summary: Summary::of(&times),
                    skipped: None,
                },
                Err(e) => HandshakeResult {
                    label,
                    verified,
                    summary: Summary::default(),
                    skipped: Some(format!("failed: {e}")),
                },
            }
        })
        .collect()
}

/// Number of handshake rows.
pub const CASE_COUNT: usize = 5;

/// Against a game-loop server whose game thread sleeps in `service_for`
/// between frames, as most servers run.
fn fastnet_game_loop_sleeping(h: &Harness) -> BenchResult<Vec<Duration>> {
    fastnet_game_loop(h, ServerKind::FastnetBlock)
}

/// Against a game-loop server whose game thread spins in `service()`: it
/// keeps one CPU busy and leaves the rest of the machine to the client and
/// the server's handshake thread.
fn fastnet_game_loop_spinning(h: &Harness) -> BenchResult<Vec<Duration>> {
    fastnet_game_loop(h, ServerKind::FastnetSpin)
}

fn fastnet_game_loop(h: &Harness, kind: ServerKind) -> BenchResult<Vec<Duration>> {
    let server = ServerProcess::spawn(&h.exe, kind, Mode::Echo, &[])?;
    let port = server.port("tcp")?;
    let mut times = Vec::with_capacity(h.connects);
    for i in 0..WARMUP_CONNECTS + h.connects {
        let config = fastnet_client_config(&server, false)?;
        let t = Instant::now();
        let mut client = Client::connect("127.0.0.1", port, config)?;
        let d = t.elapsed();
        client.disconnect(0);
        if i >= WARMUP_CONNECTS {
            times.push(d);
        }
    }
    Ok(times)
}

fn fastnet_tokio(h: &Harness) -> BenchResult<Vec<Duration>> {
    let server = ServerProcess::spawn(&h.exe, ServerKind::FastnetTokio, Mode::Echo, &[])?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut times = Vec::with_capacity(h.connects);
        for i in 0..WARMUP_CONNECTS + h.connects {
            let t = Instant::now();
            let socket = tokio_driver_connect(&server, false).await?;
            let d = t.elapsed();
            socket.disconnect(1, 0);
            drop(socket);
            if i >= WARMUP_CONNECTS {
                times.push(d);
            }
        }
        Ok(times)
    })
}

fn quinn(h: &Harness) -> BenchResult<Vec<Duration>> {
    let server = ServerProcess::spawn(&h.exe, ServerKind::Quinn, Mode::Echo, &[])?;
    let port = server.port("udp")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let endpoint = crate::quic::client_endpoint(server.field("cert")?)?;
        let mut times = Vec::with_capacity(h.connects);
        for i in 0..WARMUP_CONNECTS + h.connects {
            let (conn, d) = crate::quic::connect(&endpoint, port).await?;
            conn.close(0u32.into(), b"done");
            if i >= WARMUP_CONNECTS {
                times.push(d);
            }
        }
        endpoint.wait_idle().await;
        Ok(times)
    })
}

#[cfg(has_enet)]
fn enet(h: &Harness) -> BenchResult<Vec<Duration>> {
    use crate::enet::{Event, Host};
    use std::net::Ipv4Addr;
    let server = ServerProcess::spawn(&h.exe, ServerKind::Enet, Mode::Echo, &[])?;
    let port = server.port("udp")?;
    let mut times = Vec::with_capacity(h.connects);
    let mut buf = Vec::new();
    for i in 0..WARMUP_CONNECTS + h.connects {
        let mut host = Host::client()?;
        let t = Instant::now();
        let peer = host.connect(Ipv4Addr::LOCALHOST, port)?;
        loop {
            if let Event::Connect(_) = host.service(&mut buf, 0)? {
                break;
            }
            if t.elapsed() > Duration::from_secs(5) {
                return Err(crate::fail("ENet: no connection"));
            }
        }
        let d = t.elapsed();
        host.disconnect_now(peer);
        if i >= WARMUP_CONNECTS {
            times.push(d);
        }
    }
    Ok(times)
}

#[cfg(not(has_enet))]
fn enet(_: &Harness) -> BenchResult<Vec<Duration>> {
    Err(crate::fail(crate::enet_missing().unwrap_or_default()))
}
