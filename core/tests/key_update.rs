//! Key updates (PROTOCOL.md §4) started by either side, by both at once, by
//! packet count and on demand, under loss and reordering: nothing is lost and
//! both sides keep agreeing on the keys.

mod common;

use std::time::Duration;

use common::{check_message, hostile_link, message};
use fastnet::sim::{Side, SimPair};
use fastnet::{channels, LinkConfig, SendError, TransportConfig};

fn config(update_every: Option<u64>) -> TransportConfig {
    let mut c = TransportConfig::default();
    if let Some(packets) = update_every {
        c.set_key_update_packets(packets);
    }
    c
}

/// Both directions send `per_side` reliable-ordered messages; checks they all
/// arrive in order.
fn exchange(pair: &mut SimPair, per_side: u32) {
    let mut sent = [0u32; 2];
    let mut next = [0u32; 2];
    let mut buf = Vec::new();
    pair.run_until(Duration::from_secs(3600), |p| {
        for (i, side) in [Side::Client, Side::Server].into_iter().enumerate() {
            while sent[i] < per_side {
                match p
                    .connection(side)
                    .send(channels::RELIABLE_ORDERED, &message(sent[i], 40))
                {
                    Ok(()) => sent[i] += 1,
                    Err(SendError::WouldBlock) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        for (i, side) in [Side::Server, Side::Client].into_iter().enumerate() {
            while p.connection(side).recv_into(&mut buf).is_some() {
                assert_eq!(check_message(&buf), next[i]);
                next[i] += 1;
            }
        }
        (next == [per_side; 2]).then_some(())
    })
    .unwrap_or_else(|| panic!("incomplete: {next:?}"));
    assert!(pair.client.is_established() && pair.server.is_established());
}

#[test]
fn client_initiated_updates_under_loss_lose_nothing() {
    let mut pair = SimPair::with_links(
        config(Some(64)),
        config(None),
        hostile_link(),
        hostile_link(),
        21,
    );
    exchange(&mut pair, 20_000);
    let generation = pair.client.key_generation();
    assert!(generation >= 5, "only {generation} updates");
    assert!(pair.server.stats().key_updates >= 5);
    assert!(pair.server.key_generation() + 1 >= generation);
}

#[test]
fn server_initiated_updates_under_loss_lose_nothing() {
    let mut pair = SimPair::with_links(
        config(None),
        config(Some(64)),
        hostile_link(),
        hostile_link(),
        22,
    );
    exchange(&mut pair, 20_000);
    assert!(pair.server.key_generation() >= 5);
    assert!(pair.client.stats().key_updates >= 5);
}

#[test]
fn simultaneous_updates_from_both_sides_lose_nothing() {
    let mut pair = SimPair::new(config(Some(50)), hostile_link(), 23);
    exchange(&mut pair, 20_000);
    assert!(pair.client.key_generation() >= 5 && pair.server.key_generation() >= 5);
    // Quiet down, then the two sides agree on the generation.
    pair.advance(Duration::from_secs(5));
    assert_eq!(pair.client.key_generation(), pair.server.key_generation());
}

#[test]
fn on_demand_update_at_the_same_instant_on_both_sides() {
    let link = LinkConfig {
        latency: Duration::from_millis(10),
        jitter: Duration::from_millis(30),
        ..LinkConfig::default()
    };
    let mut pair = SimPair::new(config(None), link, 24);
    exchange(&mut pair, 100);
    for round in 1..=5u64 {
        // An update may start once the peer has acknowledged a packet sent with
        // the current keys (and the previous keys are erased): let ACKs flow.
        pair.advance(Duration::from_secs(1));
        let now = pair.now();
        assert!(
            pair.client.update_keys(now),
            "round {round}: client may update"
        );
        assert!(
            pair.server.update_keys(now),
            "round {round}: server may update"
        );
        assert!(!pair.client.update_keys(now), "never two updates in flight");
        exchange(&mut pair, 100);
        pair.advance(Duration::from_secs(2));
        assert_eq!(pair.client.key_generation(), round);
        assert_eq!(pair.server.key_generation(), round);
    }
}

#[test]
fn updates_by_time_happen_on_an_idle_connection() {
    let mut c = TransportConfig::default();
    c.set_key_update_interval(Duration::from_secs(5));
    let mut pair = SimPair::new(c, LinkConfig::default(), 25);
    pair.advance(Duration::from_secs(60));
    assert!(
        pair.client.key_generation() >= 5,
        "keep-alives carry the updates"
    );
    assert!(pair.client.is_established());
    exchange(&mut pair, 10);
}
