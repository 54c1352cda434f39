//! A connection fed arbitrary datagrams (split from the input), as an attacker
//! on the network would: nothing panics, nothing unauthenticated is accepted,
//! and the connection stays established.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use fastnet::sim::session_keys_pair;
use fastnet::{Connection, TransportConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_, server_keys) = session_keys_pair(1);
    let now = Instant::now();
    let mut conn = Connection::new(Arc::new(TransportConfig::default()), server_keys, now).unwrap();
    let mut out = vec![0u8; 1500];
    // Datagrams are separated by a length byte.
    let mut rest = data;
    let mut t = now;
    while let Some((&len, tail)) = rest.split_first() {
        let n = (len as usize).min(tail.len());
        let mut datagram = tail[..n].to_vec();
        rest = &tail[n..];
        assert!(
            conn.handle_datagram(t, &mut datagram).is_err(),
            "forged datagram accepted"
        );
        t += Duration::from_millis(1);
        conn.handle_timeout(t);
        while conn.poll_transmit(t, &mut out).is_some() {}
    }
    assert!(conn.is_established());
    assert!(conn.recv().is_none());
});
