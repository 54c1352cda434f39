//! An echo server a game could start from: it listens on UDP 7777 and TCP 7778
//! (IPv4 and IPv6), sends every message back on its channel, and logs peers.
//!
//! ```text
//! cargo run --release -p fastnet --example echo_server -- [--cert cert.pem --key key.pem]
//! ```
//!
//! Without `--cert`/`--key` it generates a development certificate, writes it
//! to `fastnet-dev-cert.pem` in the current directory and prints its
//! fingerprint, which `echo_client --pin` takes.

use std::sync::Arc;
use std::time::Duration;

use fastnet::net::{PeerEvent, Server, ServerConfig};
use fastnet::session::{format_sha256, DevCertificate, ServerCredentials};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let credentials = match (arg("--cert"), arg("--key")) {
        (Some(cert), Some(key)) => ServerCredentials::from_pem_files(cert, key)?,
        _ => {
            let dev = DevCertificate::generate(&["localhost", "127.0.0.1", "::1"])?;
            let files = dev.write_pem(".")?;
            println!(
                "development certificate written to {}",
                files.cert.display()
            );
            println!(
                "fingerprint (for echo_client --pin): {}",
                format_sha256(&dev.sha256)
            );
            ServerCredentials::from_dev_certificate(&dev)?
        }
    };
    let config = ServerConfig::new(Arc::new(credentials));
    let mut server = Server::bind("[::]:7777".parse()?, "[::]:7778".parse()?, config)?;
    println!(
        "echo server: UDP {}, TCP {}",
        server.udp_addr(),
        server.tcp_addr()
    );

    let mut buf = Vec::new();
    loop {
        // Wait up to 1 ms for traffic, then do all pending work.
        server.service_for(Duration::from_millis(16))?;
        while let Some(event) = server.poll_event() {
            match event {
                PeerEvent::Connected(peer) => {
                    println!("peer {peer} connected from {:?}", server.peer_addr(peer))
                }
                PeerEvent::Disconnected(peer, reason) => println!("peer {peer} left: {reason}"),
            }
        }
        while let Some((peer, channel)) = server.recv_into(&mut buf) {
            if let Err(e) = server.send(peer, channel, &buf) {
                println!("peer {peer}: echo refused: {e}");
            }
        }
    }
}
