//! An echo client: connects to `echo_server`, sends a message on each channel
//! kind once a second and prints what comes back with the round-trip time.
//!
//! ```text
//! cargo run --release -p fastnet --example echo_client -- [--host localhost] [--port 7778]
//!     (--pin AB:CD:... | --ca fastnet-dev-cert.pem)
//! ```
//!
//! The server's certificate is always verified: against the public roots by
//! default, against a CA or self-signed certificate with `--ca`, or by its
//! SHA-256 fingerprint with `--pin`.

use std::time::{Duration, Instant};

use fastnet::net::{Client, ClientConfig, ClientEvent};
use fastnet::session::ServerTrust;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let host = arg("--host").unwrap_or_else(|| "localhost".into());
    let port: u16 = arg("--port").map_or(Ok(7778), |p| p.parse())?;
    let trust = match (arg("--pin"), arg("--ca")) {
        (Some(pin), _) => ServerTrust::pinned_sha256_hex(&pin)?,
        (None, Some(ca)) => ServerTrust::ca_pem_file(ca)?,
        (None, None) => ServerTrust::WebPkiRoots,
    };
    let mut client = Client::connect(&host, port, ClientConfig::with_trust(trust))?;
    println!("connected to {host}:{port} (UDP {})", client.server_addr());

    let names = [
        "reliable-ordered",
        "unreliable",
        "reliable-unordered",
        "sequenced",
    ];
    let mut buf = Vec::new();
    for round in 0u32.. {
        let channel = (round % 4) as u8;
        let text = format!("hello #{round} on {}", names[channel as usize]);
        let sent = Instant::now();
        client.send_now(channel, text.as_bytes())?;
        let deadline = sent + Duration::from_secs(1);
        while Instant::now() < deadline {
            client.service_for(Duration::from_millis(16))?;
            if let Some(ClientEvent::Disconnected(reason)) = client.poll_event() {
                println!("disconnected: {reason}");
                return Ok(());
            }
            if let Some(ch) = client.recv_into(&mut buf) {
                println!(
                    "channel {ch}: {:?} in {:.1} µs",
                    String::from_utf8_lossy(&buf),
                    sent.elapsed().as_secs_f64() * 1e6
                );
                break;
            }
        }
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    }
    Ok(())
}
