//! The protocol's own CPU per 64-byte round trip, no sockets: two sans-IO
//! `Connection`s handing datagrams to each other in memory, the way the
//! game-loop drivers do it (send, poll_transmit, handle_datagram, recv_into).
//! `cargo run --release -p fastnet-bench --example cpu_path`

use std::sync::Arc;
use std::time::Instant;

use fastnet::sim::session_keys_pair;
use fastnet::{Connection, TransportConfig};

fn main() {
    for channel in [
        fastnet::channels::UNRELIABLE,
        fastnet::channels::RELIABLE_ORDERED,
    ] {
        let config = Arc::new(TransportConfig::default());
        let (ck, sk) = session_keys_pair(7);
        let t0 = Instant::now();
        let mut c = Connection::new(config.clone(), ck, t0).unwrap();
        let mut s = Connection::new(config, sk, t0).unwrap();
        let mut buf = vec![0u8; 1500];
        let mut msg = Vec::new();
        let payload = [7u8; 64];
        let rounds = 200_000;
        let mut round = |c: &mut Connection, s: &mut Connection, now: Instant| {
            c.send(channel, &payload).unwrap();
            while let Some(n) = c.poll_transmit(now, &mut buf) {
                let _ = s.handle_datagram(now, &mut buf[..n]);
            }
            while s.recv_into(&mut msg).is_some() {
                s.send(channel, &msg).unwrap();
            }
            while let Some(n) = s.poll_transmit(now, &mut buf) {
                let _ = c.handle_datagram(now, &mut buf[..n]);
            }
            while c.recv_into(&mut msg).is_some() {}
            let _ = c.poll_timeout();
            let _ = s.poll_timeout();
        };
        for _ in 0..10_000 {
            round(&mut c, &mut s, Instant::now());
        }
        let t = Instant::now();
        for _ in 0..rounds {
            let now = Instant::now();
            round(&mut c, &mut s, now);
        }
        let per = t.elapsed().as_nanos() as f64 / rounds as f64;
        println!("channel {channel}: {per:.0} ns of protocol work per round trip (both ends, 2 seals + 2 opens)");
    }
}
