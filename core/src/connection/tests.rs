//! Invariants of the connection's caches under random operations: the cached
//! deadline is always the one computed from scratch, the running totals of
//! the send queues are always the channels' sums, the mask of channels with
//! something to send names exactly those channels, and `may_transmit` never
//! says no when `poll_transmit` would send.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::sim::session_keys_pair;

/// One step of a random run on a pair of connections.
#[derive(Clone, Debug)]
enum Op {
    /// The client (`true`) or the server sends `len` bytes on `channel`.
    Send {
        client: bool,
        channel: u8,
        len: usize,
    },
    /// Datagrams of one side go to the other; `drop_mask` bit `i` loses the
    /// `i`-th (mod 8).
    Deliver {
        client: bool,
        drop_mask: u8,
    },
    /// Time passes and both sides run their timers.
    Advance {
        ms: u64,
    },
    Ping {
        client: bool,
    },
    UpdateKeys {
        client: bool,
    },
    Read {
        client: bool,
    },
    Close {
        client: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<bool>(), 0u8..4, 0usize..3000)
            .prop_map(|(client, channel, len)| Op::Send { client, channel, len }),
        6 => (any::<bool>(), any::<u8>()).prop_map(|(client, drop_mask)| Op::Deliver { client, drop_mask }),
        4 => (0u64..400).prop_map(|ms| Op::Advance { ms }),
        1 => any::<bool>().prop_map(|client| Op::Ping { client }),
        1 => any::<bool>().prop_map(|client| Op::UpdateKeys { client }),
        2 => any::<bool>().prop_map(|client| Op::Read { client }),
        1 => any::<bool>().prop_map(|client| Op::Close { client }),
    ]
}

/// Checks both caches of `conn` against their definitions.
fn check(conn: &Connection) {
    let deadline = conn.compute_deadline();
    assert_eq!(conn.deadline, deadline, "cached deadline");
    let expected = (deadline != NEVER).then(|| conn.clock.instant(deadline));
    assert_eq!(conn.poll_timeout(), expected);
    let bytes: usize = conn
        .send_channels
        .iter()
        .map(SendChannel::queued_bytes)
        .sum();
    let messages: usize = conn
        .send_channels
        .iter()
        .map(SendChannel::queued_messages)
        .sum();
    assert_eq!(
        (conn.queued_bytes(), conn.queued_messages()),
        (bytes, messages)
    );
    for (c, channel) in conn.send_channels.iter().enumerate() {
        assert_eq!(
            conn.sendable & schedule::channel_bit(c) != 0,
            channel.has_pending(),
            "sendable bit of channel {c}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn caches_match_their_definitions(ops in proptest::collection::vec(op(), 1..120)) {
        let mut config = TransportConfig::default();
        // Short enough for the random runs to reach key updates and keep-alives.
        config.set_key_update_interval(Duration::from_millis(500));
        let config = Arc::new(config);
        let start = Instant::now();
        let mut now = start;
        let (ck, sk) = session_keys_pair(3);
        let mut client = Connection::new(config.clone(), ck, now).unwrap();
        let mut server = Connection::new(config, sk, now).unwrap();
        let mut buf = vec![0u8; 1500];
        let mut msg = Vec::new();
        for op in ops {
            match op {
                Op::Send { client: c, channel, len } => {
                    let conn = if c { &mut client } else { &mut server };
                    let _ = conn.send(channel, &vec![7u8; len]);
                }
                Op::Deliver { client: c, drop_mask } => {
                    let (from, to) = if c {
                        (&mut client, &mut server)
                    } else {
                        (&mut server, &mut client)
                    };
                    let mut i = 0;
                    loop {
                        // `poll_transmit` returns `None` when `may_transmit`
                        // says no: it must not withhold a datagram.
                        let may = from.may_transmit(now);
                        let Some(n) = from.poll_transmit_unguarded(now, &mut buf) else {
                            break;
                        };
                        assert!(may, "may_transmit said no, poll_transmit would have sent");
                        check(from);
                        if drop_mask & (1 << (i % 8)) == 0 {
                            let _ = to.handle_datagram(now, &mut buf[..n]);
                            check(to);
                        }
                        i += 1;
                    }
                }
                Op::Advance { ms } => {
                    now += Duration::from_millis(ms);
                    for conn in [&mut client, &mut server] {
                        if conn.poll_timeout().is_some_and(|t| t <= now) {
                            conn.handle_timeout(now);
                        }
                    }
                }
                Op::Ping { client: c } => if c { client.ping() } else { server.ping() },
                Op::UpdateKeys { client: c } => {
                    let _ = if c { client.update_keys(now) } else { server.update_keys(now) };
                }
                Op::Read { client: c } => {
                    let conn = if c { &mut client } else { &mut server };
                    while conn.recv_into(&mut msg).is_some() {}
                }
                Op::Close { client: c } => if c { client.close(300) } else { server.close(300) },
            }
            check(&client);
            check(&server);
        }
    }
}
