//! The server side of one 64-byte echo, sans-IO: a client `Connection` and a
//! server `Endpoint` hand datagrams to each other in memory, and the server
//! makes the calls `Server::service` makes for one datagram (handle, timers,
//! transmit), then the application's echo and the next transmit. Prints the
//! server side's time per round trip; run it under callgrind to see where its
//! instructions go.
//! `cargo run --release -p fastnet-bench --example server_path [ROUNDS]`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use fastnet::net::Endpoint;
use fastnet::sim::session_keys_pair;
use fastnet::{Connection, TransportConfig};

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let warmup = 1_000;
    let channel = fastnet::channels::UNRELIABLE;
    let config = Arc::new(TransportConfig::default());
    let (ck, sk) = session_keys_pair(7);
    let t0 = Instant::now();
    let mut client = Connection::new(config.clone(), ck, t0).expect("client");
    let mut server = Endpoint::new(config);
    server.insert(sk, None, t0).expect("server peer");
    let from: SocketAddr = "127.0.0.1:5000".parse().expect("address");
    let mut to_server = vec![0u8; 1500];
    let mut to_client = vec![0u8; 1500];
    let mut msg = Vec::new();
    let payload = [7u8; 64];
    let mut server_ns = 0u128;
    for round in 0..rounds + warmup {
        let now = Instant::now();
        client.send(channel, &payload).expect("send");
        let n = client
            .poll_transmit(now, &mut to_server)
            .expect("a datagram");
        let t = Instant::now();
        server.handle_datagram(now, from, &mut to_server[..n]);
        if server.poll_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now);
        }
        while server.poll_transmit(now, &mut to_client).is_some() {}
        while let Some((peer, ch)) = server.recv_into(&mut msg) {
            server.send(peer, ch, &msg).expect("echo");
        }
        let (_, m) = server.poll_transmit(now, &mut to_client).expect("the echo");
        if round >= warmup {
            server_ns += t.elapsed().as_nanos();
        }
        let _ = client.handle_datagram(now, &mut to_client[..m]);
        while client.recv_into(&mut msg).is_some() {}
        let _ = client.poll_timeout();
    }
    println!(
        "server side of a 64-byte echo: {:.0} ns per round trip (sans-IO, one peer)",
        server_ns as f64 / rounds as f64
    );
}
