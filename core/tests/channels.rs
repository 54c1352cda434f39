//! Delivery guarantees of the four channel kinds over a hostile simulated link
//! (30% loss, 10% duplication, reordering, 100 ms jitter), and fragmentation of
//! large messages.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{check_message, hostile_link, message};
use fastnet::sim::{Side, SimPair};
use fastnet::{channels, LinkConfig, SendError, TransportConfig};

/// Sends `count` reliable-ordered messages as fast as the send window allows and
/// checks that they arrive exactly once and in order.
#[test]
fn hundred_thousand_reliable_ordered_messages_arrive_once_in_order() {
    let mut pair = SimPair::new(TransportConfig::default(), hostile_link(), 42);
    let total = 100_000u32;
    let (mut sent, mut next) = (0u32, 0u32);
    let mut buf = Vec::new();
    let done = pair.run_until(Duration::from_secs(3600), |p| {
        while sent < total {
            match p.client.send(
                channels::RELIABLE_ORDERED,
                &message(sent, 8 + sent as usize % 24),
            ) {
                Ok(()) => sent += 1,
                Err(SendError::WouldBlock) => break,
                Err(e) => panic!("send failed: {e}"),
            }
        }
        while let Some(channel) = p.server.recv_into(&mut buf) {
            assert_eq!(channel, channels::RELIABLE_ORDERED);
            assert_eq!(check_message(&buf), next, "out of order or duplicated");
            next += 1;
        }
        (next == total).then_some(())
    });
    assert!(done.is_some(), "only {next} of {total} arrived");
    let stats = pair.client.stats();
    assert!(
        stats.packets_lost > 0 && stats.frames_retransmitted > 0,
        "the link did lose packets"
    );
    assert!(
        pair.server.stats().dropped.duplicate > 0,
        "the link did duplicate packets"
    );
}

/// What the receiver saw on each channel.
#[derive(Default)]
struct Seen {
    ordered_next: u32,
    unordered: HashSet<u32>,
    unreliable: HashSet<u32>,
    sequenced_last: Option<u32>,
    sequenced_count: u32,
}

/// All four channel kinds interleaved on one connection, with some fragmented
/// messages, both directions at once.
#[test]
fn four_channel_kinds_interleaved_keep_their_guarantees() {
    let mut pair = SimPair::new(TransportConfig::default(), hostile_link(), 7);
    let per_channel = 20_000u32;
    let mut sent = [[0u32; 4]; 2];
    let mut seen = [Seen::default(), Seen::default()];
    let mut buf = Vec::new();
    let size = |seq: u32| {
        if seq % 500 == 0 {
            3000
        } else {
            8 + (seq as usize * 7) % 40
        }
    };
    let done = pair.run_until(Duration::from_secs(3600), |p| {
        for (i, side) in [Side::Client, Side::Server].into_iter().enumerate() {
            let sent = &mut sent[i];
            let conn = p.connection(side);
            // Round-robin over the channels so their frames share packets.
            'fill: loop {
                let mut progressed = false;
                for ch in 0..4u8 {
                    let seq = sent[ch as usize];
                    if seq >= per_channel {
                        continue;
                    }
                    match conn.send(ch, &message(seq, size(seq))) {
                        Ok(()) => {
                            sent[ch as usize] += 1;
                            progressed = true;
                        }
                        Err(SendError::WouldBlock) => break 'fill,
                        Err(e) => panic!("send failed: {e}"),
                    }
                }
                if !progressed {
                    break;
                }
            }
        }
        for (i, side) in [Side::Server, Side::Client].into_iter().enumerate() {
            let s = &mut seen[i];
            while let Some(channel) = p.connection(side).recv_into(&mut buf) {
                let seq = check_message(&buf);
                match channel {
                    channels::RELIABLE_ORDERED => {
                        assert_eq!(seq, s.ordered_next, "reliable-ordered out of order");
                        s.ordered_next += 1;
                    }
                    channels::RELIABLE_UNORDERED => {
                        assert!(s.unordered.insert(seq), "reliable-unordered {seq} twice")
                    }
                    channels::UNRELIABLE => {
                        assert!(s.unreliable.insert(seq), "unreliable {seq} twice")
                    }
                    channels::SEQUENCED => {
                        assert!(
                            s.sequenced_last.is_none_or(|l| seq > l),
                            "sequenced went back"
                        );
                        s.sequenced_last = Some(seq);
                        s.sequenced_count += 1;
                    }
                    other => panic!("message on unexpected channel {other}"),
                }
            }
        }
        let reliable_done = seen
            .iter()
            .all(|s| s.ordered_next == per_channel && s.unordered.len() == per_channel as usize);
        (reliable_done && sent.iter().flatten().all(|&n| n == per_channel)).then_some(())
    });
    assert!(done.is_some(), "reliable channels incomplete");
    // Give stragglers on the unreliable channels time to arrive, then check
    // that they were lossy but not empty.
    pair.advance(Duration::from_secs(2));
    for s in &seen {
        let n = s.unreliable.len() as u32;
        assert!(
            n > per_channel / 4 && n < per_channel,
            "unreliable delivered {n}"
        );
        // Sequenced drops whatever jitter put behind a newer message: fewer arrive.
        let q = s.sequenced_count;
        assert!(
            q > per_channel / 20 && q < n,
            "sequenced delivered {q}, unreliable {n}"
        );
    }
}

/// Reliable messages of 1 MiB on both reliable kinds, through the hostile link.
#[test]
fn one_mebibyte_reliable_messages_survive_loss() {
    let mut pair = SimPair::new(TransportConfig::default(), hostile_link(), 3);
    let big = |seq: u32| message(seq, 1 << 20);
    for seq in 0..3 {
        pair.client
            .send(channels::RELIABLE_ORDERED, &big(seq))
            .unwrap();
        pair.client
            .send(channels::RELIABLE_UNORDERED, &big(100 + seq))
            .unwrap();
    }
    let mut got = Vec::new();
    pair.run_until(Duration::from_secs(600), |p| {
        while let Some(m) = p.server.recv() {
            got.push((m.channel, check_message(&m.data)));
        }
        (got.len() == 6).then_some(())
    })
    .expect("all six 1 MiB messages arrive");
    let ordered: Vec<u32> = got
        .iter()
        .filter(|(c, _)| *c == 0)
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(ordered, vec![0, 1, 2]);
    let mut unordered: Vec<u32> = got
        .iter()
        .filter(|(c, _)| *c == 2)
        .map(|(_, s)| *s)
        .collect();
    unordered.sort();
    assert_eq!(unordered, vec![100, 101, 102]);
    // Delivery precedes the last acknowledgement's arrival at the sender.
    pair.run_until(Duration::from_secs(60), |p| {
        (p.client.queued_bytes() == 0).then_some(())
    })
    .expect("everything acknowledged and released");
    assert_eq!(
        pair.server.reassembly_bytes(),
        0,
        "no reassembly left behind"
    );
}

/// 64 KiB unreliable messages: delivered whole or not at all. At 1% loss most
/// arrive; at 30% loss (a 60-fragment message then survives with probability
/// 0.7^60) they are dropped whole, never delivered partially or corrupted.
#[test]
fn sixty_four_kib_unreliable_messages_arrive_whole_or_not_at_all() {
    for (loss, seed) in [(0.01, 11u64), (0.30, 12)] {
        let link = LinkConfig {
            loss,
            ..hostile_link()
        };
        let mut pair = SimPair::new(TransportConfig::default(), link, seed);
        let mut delivered = HashSet::new();
        for seq in 0..40u32 {
            pair.client
                .send(channels::UNRELIABLE, &message(seq, 64 << 10))
                .unwrap();
            pair.client
                .send(channels::SEQUENCED, &message(1000 + seq, 64 << 10))
                .unwrap();
            pair.advance(Duration::from_millis(50));
            while let Some(m) = pair.server.recv() {
                assert!(delivered.insert(check_message(&m.data)), "delivered twice");
            }
        }
        pair.advance(Duration::from_secs(2));
        while let Some(m) = pair.server.recv() {
            assert!(delivered.insert(check_message(&m.data)), "delivered twice");
        }
        if loss < 0.1 {
            assert!(
                delivered.len() >= 20,
                "at 1% loss only {} of 80 arrived",
                delivered.len()
            );
        }
        assert!(delivered.len() < 80 || loss < 0.1);
        // Eight reassemblies, each rounded up to whole fragments.
        let bound = 8 * (64usize << 10).next_multiple_of(1200 - 13 - 16 - 64);
        assert!(
            pair.server.reassembly_bytes() <= bound,
            "reassembly bounded"
        );
    }
}

/// A reliable ping-pong costs exactly two datagrams per round trip: the reply
/// carries the acknowledgement of the request and the next request that of the
/// reply. Unreliable too.
#[test]
fn ping_pong_costs_two_datagrams_per_round_trip() {
    for channel in [channels::RELIABLE_ORDERED, channels::UNRELIABLE] {
        let link = LinkConfig {
            latency: Duration::from_millis(5),
            ..LinkConfig::default()
        };
        let mut pair = SimPair::new(TransportConfig::default(), link, 1);
        // The first packet of a connection is acknowledged at once (it ends
        // the client's connect); a real client's first packet is its connect
        // PING. Count from the second round trip.
        pair.client.ping();
        pair.advance(Duration::from_millis(50));
        let rounds = 500u64;
        let before = [
            pair.datagrams_sent(Side::Client),
            pair.datagrams_sent(Side::Server),
        ];
        for i in 0..rounds as u32 {
            pair.client.send(channel, &message(i, 64)).unwrap();
            let m = pair
                .run_until(Duration::from_secs(1), |p| p.server.recv())
                .unwrap();
            pair.server.send(channel, &m.data).unwrap();
            let m = pair
                .run_until(Duration::from_secs(1), |p| p.client.recv())
                .unwrap();
            assert_eq!(check_message(&m.data), i);
        }
        let client = pair.datagrams_sent(Side::Client) - before[0];
        let server = pair.datagrams_sent(Side::Server) - before[1];
        assert_eq!((client, server), (rounds, rounds), "channel {channel}");
        assert_eq!(pair.client.stats().ack_only_packets_sent, 0);
        assert_eq!(pair.client.queued_bytes(), 0);
    }
}

/// Small messages sent together share datagrams.
#[test]
fn small_messages_are_coalesced() {
    let mut pair = SimPair::new(TransportConfig::default(), LinkConfig::default(), 5);
    for i in 0..100 {
        pair.client
            .send(channels::UNRELIABLE, &message(i, 16))
            .unwrap();
    }
    pair.flush();
    let mut n = 0;
    while pair.server.recv().is_some() {
        n += 1;
    }
    assert_eq!(n, 100);
    let datagrams = pair.datagrams_sent(Side::Client);
    assert!(
        datagrams <= 3,
        "100 x 16-byte messages took {datagrams} datagrams"
    );
}

/// Oversized messages, unknown channels and a full queue are refused with a
/// clear error and never dropped silently.
#[test]
fn refusals_are_explicit() {
    let mut config = TransportConfig::default();
    config
        .set_send_queue_bytes(2 << 20)
        .set_send_queue_messages(100);
    let mut pair = SimPair::new(config, LinkConfig::default(), 9);
    let c = &mut pair.client;
    assert_eq!(
        c.send(channels::RELIABLE_ORDERED, &vec![0; (1 << 20) + 1]),
        Err(SendError::MessageTooLarge {
            size: (1 << 20) + 1,
            max: 1 << 20
        })
    );
    assert_eq!(
        c.send(channels::UNRELIABLE, &vec![0; (64 << 10) + 1]),
        Err(SendError::MessageTooLarge {
            size: (64 << 10) + 1,
            max: 64 << 10
        })
    );
    assert_eq!(c.send(4, b"x"), Err(SendError::UnknownChannel(4)));
    c.send(channels::RELIABLE_ORDERED, &vec![0; 1 << 20])
        .unwrap();
    c.send(channels::RELIABLE_ORDERED, &vec![0; 1 << 20])
        .unwrap();
    assert_eq!(
        c.send(channels::RELIABLE_ORDERED, b"x"),
        Err(SendError::WouldBlock)
    );
    // Once the peer acknowledges, room comes back.
    pair.run_until(Duration::from_secs(10), |p| {
        (p.client.queued_bytes() == 0).then_some(())
    })
    .expect("queue drains");
    for _ in 0..100 {
        pair.client
            .send(channels::RELIABLE_UNORDERED, b"x")
            .unwrap();
    }
    assert_eq!(
        pair.client.send(channels::RELIABLE_UNORDERED, b"x"),
        Err(SendError::WouldBlock)
    );
    // Zero-length messages are messages too.
    pair.run_until(Duration::from_secs(10), |p| {
        (p.client.queued_bytes() == 0).then_some(())
    });
    pair.client.send(channels::RELIABLE_ORDERED, b"").unwrap();
    while pair.server.recv().is_some() {}
    let m = pair
        .run_until(Duration::from_secs(1), |p| p.server.recv())
        .unwrap();
    assert!(m.data.is_empty());
}

/// Higher-priority channels go first when several have data.
#[test]
fn priority_channels_go_first() {
    let mut config = TransportConfig::default();
    let urgent = config
        .add_channel(
            fastnet::ChannelConfig::new(fastnet::ChannelKind::ReliableOrdered).with_priority(10),
        )
        .unwrap();
    let mut pair = SimPair::new(config, LinkConfig::default(), 2);
    for i in 0..200 {
        pair.client
            .send(channels::RELIABLE_ORDERED, &message(i, 1000))
            .unwrap();
    }
    pair.client.send(urgent, &message(9999, 100)).unwrap();
    pair.flush();
    let first = pair.server.recv().expect("something arrived");
    assert_eq!(
        first.channel, urgent,
        "the high-priority message went first"
    );
}
