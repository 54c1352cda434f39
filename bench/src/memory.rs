//! Memory per idle connected client, two ways:
//!
//! * **Real sockets**: a FastNet server process (`service()` spin) and, here,
//!   1,000 then 5,000 game-loop `Client`s connected to it over TCP + TLS + UDP
//!   and left idle (serviced now and then so none times out); the server's
//!   resident memory (`/proc/<pid>/statm`) grows by this much per client.
//! * **Sans-IO**: the server side alone, in this process: an `Endpoint` with
//!   N connections inserted from `fastnet::sim::session_keys_pair` keys, each
//!   having answered its client's first packet; the counting allocator gives
//!   the live heap bytes per connection exactly (the clients' work excluded).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fastnet::crypto::PacketKey;
use fastnet::net::{Client, Endpoint};
use fastnet::packet::MAX_DATAGRAM_BYTES;
use fastnet::sim::session_keys_pair;
use fastnet::{Connection, TransportConfig};

use crate::rtt::fastnet_client_config;
use crate::server::{Mode, ServerKind, ServerProcess};
use crate::sys::rss_bytes;
use crate::{BenchResult, Harness};

/// One memory measurement.
#[derive(Clone, Debug)]
pub struct MemoryResult {
    /// How the clients were made.
    pub method: &'static str,
    /// Idle connections.
    pub clients: usize,
    /// Server resident memory growth per client (bytes; real sockets only).
    pub rss_per_client: Option<f64>,
    /// Live server heap bytes per client (sans-IO only).
    pub heap_per_client: Option<f64>,
    /// Why it did not run, if it did not.
    pub skipped: Option<String>,
}

/// Both methods at every client count of the harness.
pub fn measure(h: &Harness) -> Vec<MemoryResult> {
    let mut out = Vec::new();
    h.progress.set_message("memory: real sockets");
    match real_sockets(h) {
        Ok(mut r) => out.append(&mut r),
        Err(e) => out.push(MemoryResult {
            method: REAL,
            clients: 0,
            rss_per_client: None,
            heap_per_client: None,
            skipped: Some(format!("failed: {e}")),
        }),
    }
    h.progress.inc(1);
    for &n in &h.idle_clients {
        h.progress
            .set_message(format!("memory: sans-IO, {n} connections"));
        out.push(sans_io(n));
        h.progress.inc(1);
    }
    out.extend(one_connection());
    out
}

/// Where one connection's memory goes: its inline size (boxed in the
/// endpoint's peer table), one `PacketKey` of it (ring's expanded key; a
/// connection holds two), and the heap that `Connection::new` allocates.
pub fn one_connection() -> Vec<MemoryResult> {
    let config = Arc::new(TransportConfig::default());
    let (_, keys) = session_keys_pair(7);
    let mut conn = None;
    let heap = allocation_counter::measure(|| {
        conn = Connection::new(config.clone(), keys, Instant::now()).ok();
    });
    drop(conn);
    [
        (
            "`size_of::<Connection>()` (inline, boxed in the endpoint's table)",
            std::mem::size_of::<Connection>() as f64,
        ),
        (
            "`size_of::<PacketKey>()` (one direction, one key phase)",
            std::mem::size_of::<PacketKey>() as f64,
        ),
        (
            "heap allocated by `Connection::new`",
            heap.bytes_current.max(0) as f64,
        ),
    ]
    .into_iter()
    .map(|(what, bytes)| MemoryResult {
        method: what,
        clients: 1,
        rss_per_client: None,
        heap_per_client: Some(bytes),
        skipped: None,
    })
    .collect()
}

const REAL: &str = "real sockets: `Client::connect` ×N to a server process";
const SANS_IO: &str = "sans-IO: `Endpoint::insert` + first packet answered, in process";

fn real_sockets(h: &Harness) -> BenchResult<Vec<MemoryResult>> {
    let server = ServerProcess::spawn(&h.exe, ServerKind::FastnetSpin, Mode::Echo, &[])?;
    let port = server.port("tcp")?;
    // One connect first, so the TLS code and tables are warm in the baseline.
    let mut warm = Client::connect("127.0.0.1", port, fastnet_client_config(&server, false)?)?;
    warm.disconnect(0);
    drop(warm);
    std::thread::sleep(Duration::from_millis(200));
    let baseline = rss_bytes(Some(server.pid()));
    let mut clients: Vec<Client> = Vec::new();
    let mut out = Vec::new();
    let mut last_service = Instant::now();
    for &n in &h.idle_clients {
        while clients.len() < n {
            clients.push(Client::connect(
                "127.0.0.1",
                port,
                fastnet_client_config(&server, false)?,
            )?);
            if last_service.elapsed() > Duration::from_millis(500) {
                for c in clients.iter_mut() {
                    c.service()?;
                }
                last_service = Instant::now();
            }
        }
        for c in clients.iter_mut() {
            c.service()?;
        }
        std::thread::sleep(Duration::from_millis(300));
        let rss = rss_bytes(Some(server.pid()));
        out.push(MemoryResult {
            method: REAL,
            clients: n,
            rss_per_client: Some(rss.saturating_sub(baseline) as f64 / n as f64),
            heap_per_client: None,
            skipped: None,
        });
    }
    for c in clients.iter_mut() {
        c.disconnect(0);
    }
    Ok(out)
}

/// The server side of `n` idle connections, in this process.
pub fn sans_io(n: usize) -> MemoryResult {
    let config = Arc::new(TransportConfig::default());
    let now = Instant::now();
    let mut clients = Vec::with_capacity(n);
    let mut server_keys = Vec::with_capacity(n);
    let mut addrs = Vec::with_capacity(n);
    for i in 0..n {
        let (ck, sk) = session_keys_pair(i as u64 + 1);
        clients.push(Connection::new(config.clone(), ck, now).expect("valid configuration"));
        server_keys.push(sk);
        let ip = Ipv4Addr::new(127, 1, (i >> 8) as u8, i as u8);
        addrs.push(SocketAddr::from((ip, 40_000 + (i % 20_000) as u16)));
    }
    let mut buf = vec![0u8; MAX_DATAGRAM_BYTES];
    let mut endpoint = Endpoint::new(config);
    let info = allocation_counter::measure(|| {
        for ((client, keys), addr) in clients.iter_mut().zip(server_keys).zip(&addrs) {
            let Ok(_) = endpoint.insert(keys, None, now) else {
                continue;
            };
            let mut first = 0;
            allocation_counter::opt_out(|| {
                client.ping();
                first = client.poll_transmit(now, &mut buf).unwrap_or(0);
            });
            endpoint.handle_datagram(now, *addr, &mut buf[..first]);
            while endpoint.poll_event().is_some() {}
            while let Some((_, len)) = endpoint.poll_transmit(now, &mut buf) {
                allocation_counter::opt_out(|| {
                    let _ = client.handle_datagram(now, &mut buf[..len]);
                });
            }
        }
    });
    let connected = endpoint.peer_count().max(1);
    drop(endpoint);
    MemoryResult {
        method: SANS_IO,
        clients: n,
        rss_per_client: None,
        heap_per_client: Some(info.bytes_current.max(0) as f64 / connected as f64),
        skipped: None,
    }
}
