//! Per-packet AEAD cost: `fastnet::crypto::PacketKey` sealing then opening one
//! packet in place, with ring and (feature `rustcrypto`) RustCrypto's
//! `chacha20poly1305`, for 64-byte and 1200-byte payloads; and, for reference,
//! ring's AES-128-GCM (not FastNet's cipher) sealing and opening the same
//! packets, to price the cipher itself. A calibrated loop:
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

/// The name of FastNet's default backend's rows.
pub const RING: &str = "ring 0.17";

/// The backends compiled in.
pub fn backends() -> Vec<(&'static str, AeadBackend)> {
    let mut v = vec![(RING, AeadBackend::Ring)];
    #[cfg(feature = "rustcrypto")]
    v.push((
        "chacha20poly1305 0.10 (RustCrypto)",
        AeadBackend::RustCrypto,
    ));
    v
}

/// The reference row's name.
pub const AES_GCM_REFERENCE: &str = "AES-128-GCM, ring 0.17 (reference: not FastNet's cipher)";

/// Payload sizes measured.
pub const SIZES: [usize; 2] = [64, 1200];

/// Number of AEAD rows.
pub fn case_count() -> usize {
    SIZES.len() * (backends().len() + 1)
}

/// Every backend and size, then the AES-128-GCM reference.
pub fn measure(h: &Harness) -> Vec<CryptoResult> {
    let mut out = Vec::new();
    for (name, backend) in backends() {
        for size in SIZES {
            out.push(measure_one(
                h,
                name,
                size,
                seal_open(backend, size),
                seal_only(backend, size),
            ));
        }
    }
    for size in SIZES {
        out.push(measure_one(
            h,
            AES_GCM_REFERENCE,
            size,
            aes_gcm(size, true),
            aes_gcm(size, false),
        ));
    }
    out
}

/// One row: `seal_open` and `seal` timed per packet (see [`time_per_iteration`]).
fn measure_one(
    h: &Harness,
    backend: &'static str,
    payload_bytes: usize,
    seal_open: impl FnMut(u64),
    seal: impl FnMut(u64),
) -> CryptoResult {
    h.progress
        .set_message(format!("AEAD: {backend}, {payload_bytes} B"));
    let row = CryptoResult {
        backend,
        payload_bytes,
        seal_open_ns: time_per_iteration(h.crypto_sample, seal_open),
        seal_ns: time_per_iteration(h.crypto_sample, seal),
    };
    h.progress.inc(1);
    row
}

/// ring's AES-128-GCM on the same packet shape as [`seal_open`] (nonce from
/// the packet number, header authenticated): seal, then open if `open`.
fn aes_gcm(size: usize, open: bool) -> impl FnMut(u64) {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
    let key =
        || LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[0x42; 16]).expect("a 16-byte key"));
    let (tx, rx) = (key(), key());
    let header = [0x40u8; HEADER_BYTES];
    let mut packet = vec![0xA5u8; size + TAG_BYTES];
    let nonce = |pn: u64| {
        let mut n = [0x24u8; 12];
        n[4..].copy_from_slice(&pn.to_be_bytes());
        Nonce::assume_unique_for_key(n)
    };
    move |pn| {
        let tag = tx
            .seal_in_place_separate_tag(nonce(pn), Aad::from(&header), &mut packet[..size])
            .expect("within GCM's length limit");
        packet[size..].copy_from_slice(tag.as_ref());
        if open {
            let n = rx
                .open_in_place(nonce(pn), Aad::from(&header), &mut packet)
                .expect("a packet we just sealed opens")
                .len();
            black_box(n);
        }
    }
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
