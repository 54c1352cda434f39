//! Per-packet AEAD cost: `fastnet::crypto::PacketKey` sealing then opening one
//! packet in place, with ring and (feature `rustcrypto`) RustCrypto's
//! `chacha20poly1305`, for 64-byte and 1200-byte payloads. A calibrated loop:
//! the iteration count is doubled until one sample takes `crypto_sample`, then
//! several samples are taken and the median reported.

use std::hint::black_box;
use std::time::{Duration, Instant};

use fastnet::crypto::{AeadBackend, PacketKey, TAG_BYTES};

use crate::stats::median;
use crate::Harness;

/// Samples per measurement (the median is reported).
const SAMPLES: usize = 7;
/// Bytes of header authenticated with each packet (FastNet's short header is
/// in this range).
const HEADER_BYTES: usize = 12;

/// One AEAD measurement.
#[derive(Clone, Debug)]
pub struct CryptoResult {
    /// The implementation.
    pub backend: &'static str,
    /// Payload bytes.
    pub payload_bytes: usize,
    /// Nanoseconds per seal + open of one packet.
    pub seal_open_ns: f64,
    /// Nanoseconds per seal alone.
    pub seal_ns: f64,
}

/// The backends compiled in.
pub fn backends() -> Vec<(&'static str, AeadBackend)> {
    let mut v = vec![("ring 0.17", AeadBackend::Ring)];
    #[cfg(feature = "rustcrypto")]
    v.push((
        "chacha20poly1305 0.10 (RustCrypto)",
        AeadBackend::RustCrypto,
    ));
    v
}

/// Every backend and size.
pub fn measure(h: &Harness) -> Vec<CryptoResult> {
    let mut out = Vec::new();
    for (name, backend) in backends() {
        for size in [64usize, 1200] {
            h.progress.set_message(format!("AEAD: {name}, {size} B"));
            out.push(CryptoResult {
                backend: name,
                payload_bytes: size,
                seal_open_ns: time_per_iteration(h.crypto_sample, seal_open(backend, size)),
                seal_ns: time_per_iteration(h.crypto_sample, seal_only(backend, size)),
            });
            h.progress.inc(1);
        }
    }
    out
}

fn key(backend: AeadBackend) -> PacketKey {
    PacketKey::from_raw([0x42; 32], [0x24; 12], backend)
}

/// Seals a packet and opens it again (what one datagram costs its two ends).
fn seal_open(backend: AeadBackend, size: usize) -> impl FnMut(u64) {
    let (tx, rx) = (key(backend), key(backend));
    let header = [0x40u8; HEADER_BYTES];
    let mut packet = vec![0xA5u8; size + TAG_BYTES];
    move |pn| {
        let tag = tx.seal_in_place(pn, &header, &mut packet[..size]);
        packet[size..].copy_from_slice(&tag);
        let n = rx
            .open_in_place(pn, &header, &mut packet)
            .expect("a packet we just sealed opens");
        black_box(n);
    }
}

fn seal_only(backend: AeadBackend, size: usize) -> impl FnMut(u64) {
    let tx = key(backend);
    let header = [0x40u8; HEADER_BYTES];
    let mut payload = vec![0xA5u8; size];
    move |pn| {
        black_box(tx.seal_in_place(pn, &header, &mut payload));
    }
}

/// Median nanoseconds per call of `f` (given a fresh packet number each time).
pub fn time_per_iteration(target: Duration, mut f: impl FnMut(u64)) -> f64 {
    let mut pn = 0u64;
    let mut run = |iterations: u64| {
        let t = Instant::now();
        for _ in 0..iterations {
            f(pn);
            pn += 1;
        }
        t.elapsed()
    };
    let mut iterations = 1u64;
    while run(iterations) < target / 4 && iterations < 1 << 40 {
        iterations *= 2;
    }
    iterations *= 4;
    let samples: Vec<f64> = (0..SAMPLES)
        .map(|_| run(iterations).as_nanos() as f64 / iterations as f64)
        .collect();
    median(samples)
}
