//! The demo: a FastNet server and client on loopback, a freshly generated
//! development certificate that the client pins explicitly, messages on every
//! channel kind, and the round-trip times and connection statistics.
//!
//! ```text
//! cargo run --release -p fastnet --example demo [-- --rounds 10000]
//! ```
//!
//! Server and client each run in their own thread and poll their sockets
//! without sleeping (the lowest-latency way to drive FastNet); on a machine with
//! two cores or more that measures the protocol, not the scheduler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fastnet::net::{Client, ClientConfig, Server, ServerConfig};
use fastnet::session::{format_sha256, DevCertificate, ServerCredentials, ServerTrust};
use fastnet::{channels, ChannelId, ConnectionStats};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds = parse_rounds().unwrap_or(10_000);
    println!("FastNet demo: server and client on 127.0.0.1, {rounds} round trips per channel\n");

    // A development certificate, made for this run. The client trusts exactly
    // this certificate by pinning its fingerprint: an explicit, visible choice.
    let dev = DevCertificate::generate(&["localhost", "127.0.0.1"])?;
    println!(
        "development certificate SHA-256: {}",
        format_sha256(&dev.sha256)
    );

    let credentials = Arc::new(ServerCredentials::from_dev_certificate(&dev)?);
    let any = "127.0.0.1:0".parse()?;
    let mut server = Server::bind(any, any, ServerConfig::new(credentials))?;
    let (udp, tcp) = (server.udp_addr(), server.tcp_addr());
    println!("server: UDP {udp}, TCP (handshakes) {tcp}");

    let stop = Arc::new(AtomicBool::new(false));
    let server_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut buf = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                server.service()?;
                while let Some(event) = server.poll_event() {
                    println!("server: {event:?}");
                }
                while let Some((peer, channel)) = server.recv_into(&mut buf) {
                    let _ = server.send(peer, channel, &buf);
                }
            }
            Ok(())
        })
    };

    let started = Instant::now();
    let trust = ServerTrust::PinnedSha256(dev.sha256);
    let mut client = Client::connect("127.0.0.1", tcp.port(), ClientConfig::with_trust(trust))?;
    println!(
        "client: connected in {:.2} ms (TCP + TLS 1.3 + first UDP round trip)\n",
        started.elapsed().as_secs_f64() * 1e3
    );

    println!(
        "{:<20} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "channel (64 B)", "avg µs", "p50 µs", "p99 µs", "p99.9 µs", "max µs"
    );
    let before = client.stats();
    for (name, channel) in [
        ("unreliable", channels::UNRELIABLE),
        ("reliable-ordered", channels::RELIABLE_ORDERED),
        ("reliable-unordered", channels::RELIABLE_UNORDERED),
        ("sequenced", channels::SEQUENCED),
    ] {
        let mut rtts = ping_pong(&mut client, channel, 64, rounds / 10)?; // warm-up
        rtts.clear();
        rtts = ping_pong(&mut client, channel, 64, rounds)?;
        print_row(name, &mut rtts);
    }
    let after = client.stats();

    let big = vec![0xA5u8; 1 << 20];
    let t = Instant::now();
    let mut back = ping_pong_payload(&mut client, channels::RELIABLE_ORDERED, &big)?;
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(back.len(), big.len());
    back.clear();
    println!(
        "\n1 MiB reliable message echoed in {:.1} ms ({:.0} MB/s each way)",
        secs * 1e3,
        2.0 * big.len() as f64 / secs / 1e6
    );

    print_stats(&before, &after, 4 * (rounds as u64 + rounds as u64 / 10));
    client.disconnect(0);
    std::thread::sleep(Duration::from_millis(20));
    stop.store(true, Ordering::Relaxed);
    server_thread.join().expect("server thread")?;
    Ok(())
}

/// Sends `rounds` messages of `size` bytes one at a time and returns each
/// round-trip time.
fn ping_pong(
    client: &mut Client,
    channel: ChannelId,
    size: usize,
    rounds: usize,
) -> std::io::Result<Vec<Duration>> {
    let payload = vec![7u8; size];
    let mut rtts = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        ping_pong_payload(client, channel, &payload)?;
        rtts.push(t.elapsed());
    }
    Ok(rtts)
}

fn ping_pong_payload(
    client: &mut Client,
    channel: ChannelId,
    payload: &[u8],
) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    client
        .send_now(channel, payload)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        client.service()?;
        if client.recv_into(&mut buf).is_some() {
            return Ok(buf);
        }
        if Instant::now() > deadline {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no echo"));
        }
    }
}

fn print_row(name: &str, rtts: &mut [Duration]) {
    rtts.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let pct = |p: f64| us(rtts[((rtts.len() as f64 * p) as usize).min(rtts.len() - 1)]);
    let avg = rtts.iter().map(|&d| us(d)).sum::<f64>() / rtts.len() as f64;
    println!(
        "{name:<20} {avg:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        pct(0.50),
        pct(0.99),
        pct(0.999),
        us(*rtts.last().expect("samples"))
    );
}

fn print_stats(before: &ConnectionStats, after: &ConnectionStats, round_trips: u64) {
    let sent = after.packets_sent - before.packets_sent;
    let received = after.packets_received - before.packets_received;
    println!("\nclient connection during the round trips:");
    println!(
        "  datagrams sent {sent}, received {received}: {:.2} per round trip (2.00 is the minimum)",
        (sent + received) as f64 / round_trips as f64
    );
    println!(
        "  ACK-only datagrams {}, lost {}, retransmitted frames {}",
        after.ack_only_packets_sent - before.ack_only_packets_sent,
        after.packets_lost - before.packets_lost,
        after.frames_retransmitted - before.frames_retransmitted
    );
    println!(
        "  smoothed RTT {:.1} µs, min {:.1} µs; bytes sent {}, received {}",
        after.rtt.as_secs_f64() * 1e6,
        after.min_rtt.as_secs_f64() * 1e6,
        after.bytes_sent,
        after.bytes_received
    );
}

fn parse_rounds() -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == "--rounds")?;
    args.get(i + 1)?.parse().ok()
}
