//! Soak test: many clients, for a long time, through a bad network, on every
//! channel kind, checking every message. Exits non-zero on any violation.
//!
//! ```text
//! cargo run --release -p fastnet --example soak -- [--clients 64] [--seconds 60] [--loss 0.1]
//! ```
//!
//! The server runs in a child process (so its memory and CPU are its own) and
//! echoes every message on its channel. Each client, through a link
//! conditioner on its socket (loss, reordering and duplication both ways),
//! sends on all four channels every tick, plus a 100-200 KiB reliable message
//! every few seconds, and checks what comes back: reliable-ordered exactly once
//! and in order, reliable-unordered exactly once, unreliable at most once,
//! sequenced never backwards. After the run every reliable message must have
//! come back. Longer runs: `--seconds 3600`.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fastnet::net::{Client, ClientConfig, LinkSimulation, Server, ServerConfig};
use fastnet::session::{
    format_sha256, parse_sha256, DevCertificate, ServerCredentials, ServerTrust,
};
use fastnet::{channels, LinkConfig};

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--serve") {
        serve();
        return;
    }
    let clients: usize = arg("--clients", 64);
    let seconds: u64 = arg("--seconds", 60);
    let loss: f64 = arg("--loss", 0.1);
    println!(
        "soak: {clients} clients, {seconds} s, {:.0}% loss each way, reordering, duplication",
        loss * 100.0
    );

    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server process");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("server line").expect("server line");
    let mut parts = first.split_whitespace();
    let port: u16 = parts.next().and_then(|p| p.parse().ok()).expect("port");
    let pin = parse_sha256(parts.next().expect("fingerprint")).expect("fingerprint");
    let server_report = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            println!("server: {line}");
        }
    });

    let link = LinkConfig {
        loss,
        duplicate: 0.02,
        reorder: 0.05,
        reorder_delay: Duration::from_millis(15),
        latency: Duration::from_millis(5),
        jitter: Duration::from_millis(5),
        ..LinkConfig::default()
    };
    let started = Instant::now();
    let run_for = Duration::from_secs(seconds);
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let mut config = ClientConfig::with_trust(ServerTrust::PinnedSha256(pin));
            config.link = LinkSimulation {
                outgoing: Some(link.clone()),
                incoming: Some(link.clone()),
            };
            config.connect_timeout = Duration::from_secs(30);
            std::thread::spawn(move || run_client(i as u32, port, config, run_for))
        })
        .collect();
    let mut failures = 0;
    let mut totals = [0u64; 4];
    for h in handles {
        match h.join() {
            Ok(Ok(counts)) => {
                for (t, c) in totals.iter_mut().zip(counts) {
                    *t += c;
                }
            }
            Ok(Err(e)) => {
                failures += 1;
                eprintln!("client failed: {e}");
            }
            Err(_) => {
                failures += 1;
                eprintln!("client panicked");
            }
        }
    }
    drop(child.stdin.take()); // tells the server to report and stop
    let _ = child.wait();
    let _ = server_report.join();
    println!(
        "echoed in {:.0} s: reliable-ordered {}, unreliable {}, reliable-unordered {}, sequenced {}",
        started.elapsed().as_secs_f64(),
        totals[0],
        totals[1],
        totals[2],
        totals[3]
    );
    if failures > 0 {
        eprintln!("soak FAILED: {failures} of {clients} clients");
        std::process::exit(1);
    }
    println!("soak passed: every message accounted for");
}

/// Sequence number and length, repeated to the message's length.
fn message(seq: u32, len: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(len.max(8));
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(&(len.max(8) as u32).to_le_bytes());
    m.extend((8..len.max(8)).map(|i| (i as u32 ^ seq) as u8));
    m
}

fn check(m: &[u8]) -> Result<u32, String> {
    if m.len() < 8 {
        return Err(format!("message of {} bytes", m.len()));
    }
    let seq = u32::from_le_bytes(m[..4].try_into().expect("4 bytes"));
    let len = u32::from_le_bytes(m[4..8].try_into().expect("4 bytes")) as usize;
    if m != message(seq, len).as_slice() {
        return Err(format!("message {seq} corrupted"));
    }
    Ok(seq)
}

/// Returns how many echoes came back on each channel.
fn run_client(
    id: u32,
    port: u16,
    config: ClientConfig,
    run_for: Duration,
) -> Result<[u64; 4], String> {
    let mut client =
        Client::connect("127.0.0.1", port, config).map_err(|e| format!("client {id}: {e}"))?;
    let tick = Duration::from_millis(20);
    let end = Instant::now() + run_for;
    let mut next_tick = Instant::now();
    let mut sent = [0u32; 4];
    let mut ordered_next = 0u32;
    let mut unordered = HashSet::new();
    let mut unreliable = HashSet::new();
    let mut sequenced_last: Option<u32> = None;
    let mut counts = [0u64; 4];
    let mut buf = Vec::new();
    let mut rng = fastrand::Rng::with_seed(id as u64);
    let drain_until = end + Duration::from_secs(30);
    loop {
        let now = Instant::now();
        if now < end && now >= next_tick {
            next_tick += tick;
            for ch in 0..4u8 {
                let big = ch % 2 == 0 && rng.u32(0..150) == 0; // every ~3 s per reliable channel
                let len = if big {
                    rng.usize(100 << 10..200 << 10)
                } else {
                    rng.usize(8..200)
                };
                match client.send(ch, &message(sent[ch as usize], len)) {
                    Ok(()) => sent[ch as usize] += 1,
                    Err(fastnet::SendError::WouldBlock) => {}
                    Err(e) => return Err(format!("client {id}: send: {e}")),
                }
            }
        }
        client
            .service_for(Duration::from_millis(2))
            .map_err(|e| e.to_string())?;
        if let Some(event) = client.poll_event() {
            return Err(format!("client {id}: {event:?}"));
        }
        while let Some(ch) = client.recv_into(&mut buf) {
            let seq = check(&buf).map_err(|e| format!("client {id}: {e}"))?;
            counts[ch as usize] += 1;
            match ch {
                channels::RELIABLE_ORDERED => {
                    if seq != ordered_next {
                        return Err(format!(
                            "client {id}: ordered got {seq}, expected {ordered_next}"
                        ));
                    }
                    ordered_next += 1;
                }
                channels::RELIABLE_UNORDERED => {
                    if !unordered.insert(seq) {
                        return Err(format!("client {id}: unordered {seq} twice"));
                    }
                }
                channels::UNRELIABLE => {
                    if !unreliable.insert(seq) {
                        return Err(format!("client {id}: unreliable {seq} twice"));
                    }
                }
                channels::SEQUENCED => {
                    if sequenced_last.is_some_and(|l| seq <= l) {
                        return Err(format!("client {id}: sequenced went back to {seq}"));
                    }
                    sequenced_last = Some(seq);
                }
                other => return Err(format!("client {id}: channel {other}")),
            }
        }
        let reliable_done = ordered_next == sent[0] && unordered.len() == sent[2] as usize;
        if Instant::now() >= end && reliable_done {
            break;
        }
        if Instant::now() >= drain_until {
            return Err(format!(
                "client {id}: reliable echoes missing: ordered {ordered_next}/{}, unordered {}/{}",
                sent[0],
                unordered.len(),
                sent[2]
            ));
        }
    }
    client.disconnect(0);
    Ok(counts)
}

/// The server process: echoes, and reports its memory and CPU at the start,
/// every 10 s and at the end (when its standard input closes).
fn serve() {
    let dev = DevCertificate::generate(&["localhost", "127.0.0.1"]).expect("certificate");
    let credentials = Arc::new(ServerCredentials::from_dev_certificate(&dev).expect("credentials"));
    let any = "127.0.0.1:0".parse().expect("address");
    let mut server = Server::bind(any, any, ServerConfig::new(credentials)).expect("bind");
    println!(
        "{} {}",
        server.tcp_addr().port(),
        format_sha256(&dev.sha256)
    );
    let _ = std::io::stdout().flush();
    let stdin_closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let flag = stdin_closed.clone();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    report("start", &server);
    let mut buf = Vec::new();
    let mut next_report = Instant::now() + Duration::from_secs(10);
    while !stdin_closed.load(std::sync::atomic::Ordering::Relaxed) {
        if server.service_for(Duration::from_millis(1)).is_err() {
            break;
        }
        while server.poll_event().is_some() {}
        while let Some((peer, channel)) = server.recv_into(&mut buf) {
            let _ = server.send(peer, channel, &buf);
        }
        if Instant::now() >= next_report {
            report("running", &server);
            next_report += Duration::from_secs(10);
        }
    }
    report("end", &server);
}

fn report(when: &str, server: &Server) {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let rss_pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let cpu_s = (ticks(11) + ticks(12)) as f64 / 100.0; // utime + stime, in clock ticks
    let e = server.endpoint_stats();
    println!(
        "{when}: RSS {:.1} MiB, CPU {cpu_s:.1} s, peers {}, datagrams accepted {}, dropped {}",
        rss_pages as f64 * 4096.0 / (1 << 20) as f64,
        server.peer_count(),
        e.accepted,
        e.malformed + e.unknown_connection + e.rejected
    );
}
