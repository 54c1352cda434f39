//! A connection fed *authenticated* packets whose frames come from the fuzzer:
//! the rogue-peer case, which reaches every frame handler, the channels, the
//! reassembly and the windows. Nothing panics, and the receive-side memory
//! stays within the documented bounds whatever the peer sends.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use fastnet::crypto::{derive_iv, AeadBackend, PacketKey, TAG_BYTES};
use fastnet::packet::{truncate_packet_number, Header, HEADER_BYTES};
use fastnet::sim::session_keys_pair;
use fastnet::{Connection, TransportConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (client_keys, server_keys) = session_keys_pair(2);
    let config = TransportConfig::default();
    let window = 4 << 20;
    let bound = window + 8 * (64 << 10) + 1024 * config.fragment_bytes();
    let now = Instant::now();
    let mut conn = Connection::new(Arc::new(config), server_keys, now).unwrap();
    let key = PacketKey::new(
        &client_keys.send_secret,
        derive_iv(&client_keys.send_secret),
        AeadBackend::Ring,
    );
    let mut out = vec![0u8; 1500];
    let mut inbox = Vec::new();
    let mut t = now;
    // Packets are separated by a length byte; packet numbers go up by the
    // first byte's low bits (so reordering and gaps happen too).
    let mut pn = 0u64;
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = (len as usize).min(tail.len());
        let frames = &tail[..n];
        rest = &tail[n..];
        if frames.is_empty() {
            continue;
        }
        pn += 1 + (len as u64 & 3);
        let header = Header {
            key_phase: false,
            destination: client_keys.peer_cid,
            packet_number_low: truncate_packet_number(pn),
        };
        let mut datagram = vec![0u8; HEADER_BYTES + frames.len() + TAG_BYTES];
        let (head, body) = datagram.split_at_mut(HEADER_BYTES);
        let head: &mut [u8; HEADER_BYTES] = head.try_into().unwrap();
        header.encode(head);
        body[..frames.len()].copy_from_slice(frames);
        let tag = key.seal_in_place(pn, head, &mut body[..frames.len()]);
        body[frames.len()..].copy_from_slice(&tag);
        let _ = conn.handle_datagram(t, &mut datagram);
        assert!(
            conn.reassembly_bytes() <= bound,
            "{} > {bound}",
            conn.reassembly_bytes()
        );
        t += Duration::from_micros(300);
        conn.handle_timeout(t);
        while conn.poll_transmit(t, &mut out).is_some() {}
        while conn.recv_into(&mut inbox).is_some() {}
        if conn.is_closed() {
            break;
        }
    }
});
