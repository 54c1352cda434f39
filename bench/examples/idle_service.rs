//! What one empty `service()` costs the caller, beside an empty non-blocking
//! `recv` on a raw UDP socket: the length of one busy-poll iteration, which
//! sets how late a spinning loop notices a datagram. No traffic flows.
//! `cargo run --release -p fastnet-bench --example idle_service`
//! (`REPS` and `N` set the repetitions and calls per measurement; under
//! callgrind, `--toggle-collect='idle_service::time*'` counts instructions).

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fastnet::net::{Client, ClientConfig, Server, ServerConfig};
use fastnet::session::{DevCertificate, ServerCredentials, ServerTrust};

/// Prints the mean time of `f` over `n` calls, after `n / 10` warm-up calls.
#[inline(never)]
fn time(label: &str, n: usize, mut f: impl FnMut()) {
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    println!(
        "{label}: {:.0} ns",
        t.elapsed().as_nanos() as f64 / n as f64
    );
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let reps = env("REPS", 3);
    let n = env("N", 1_000_000);
    let dev = DevCertificate::generate(&["localhost", "127.0.0.1"]).expect("certificate");
    let creds = Arc::new(ServerCredentials::from_dev_certificate(&dev).expect("credentials"));
    let lo = "127.0.0.1:0".parse().expect("address");
    let mut server = Server::bind(lo, lo, ServerConfig::new(creds)).expect("bind");
    let port = server.tcp_addr().port();
    let pin = dev.sha256_hex();
    let connecting = std::thread::spawn(move || {
        let trust = ServerTrust::pinned_sha256_hex(&pin).expect("pin");
        Client::connect("127.0.0.1", port, ClientConfig::with_trust(trust)).expect("connect")
    });
    let start = Instant::now();
    while !connecting.is_finished() || start.elapsed() < Duration::from_millis(100) {
        server
            .service_for(Duration::from_millis(1))
            .expect("service");
    }
    let mut client = connecting.join().expect("client thread");
    let raw = UdpSocket::bind("127.0.0.1:0").expect("bind raw");
    raw.set_nonblocking(true).expect("non-blocking");
    raw.connect(server.udp_addr()).expect("connect raw");
    let mut buf = [0u8; 2048];
    for _ in 0..reps {
        time("raw UDP recv (empty, non-blocking)", n, || {
            let _ = raw.recv(&mut buf);
        });
        time("Instant::now", n, || {
            std::hint::black_box(Instant::now());
        });
        time("Client::service (nothing to do)", n, || {
            client.service().expect("service")
        });
        time("Server::service (nothing to do, 1 peer)", n, || {
            server.service().expect("service")
        });
    }
}
