//! Shared helpers of the integration tests: the hostile link of issue #8 and
//! message encodings that let the receiver check identity and order.

#![allow(dead_code)]

use std::time::Duration;

use fastnet::LinkConfig;

/// 30% loss, 10% duplication, reordering and 100 ms of jitter, each way.
pub fn hostile_link() -> LinkConfig {
    LinkConfig {
        loss: 0.30,
        duplicate: 0.10,
        reorder: 0.10,
        reorder_delay: Duration::from_millis(40),
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(100),
        ..LinkConfig::default()
    }
}

/// A message that carries its sequence number and a length-dependent pattern,
/// so the receiver can check both identity and integrity.
pub fn message(seq: u32, len: usize) -> Vec<u8> {
    let len = len.max(8);
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(&(len as u32).to_le_bytes());
    m.extend((8..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(seq) as u8));
    m
}

/// Checks a message made by [`message`] and returns its sequence number.
pub fn check_message(m: &[u8]) -> u32 {
    assert!(m.len() >= 8, "message too short: {}", m.len());
    let seq = u32::from_le_bytes(m[..4].try_into().unwrap());
    let len = u32::from_le_bytes(m[4..8].try_into().unwrap()) as usize;
    assert_eq!(m.len(), len, "message {seq} has the wrong length");
    assert_eq!(m, message(seq, len), "message {seq} is corrupted");
    seq
}
