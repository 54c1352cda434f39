//! Keep-alives, the idle timeout and graceful disconnects.

mod common;

use std::time::Duration;

use fastnet::sim::SimPair;
use fastnet::{channels, DisconnectReason, Event, LinkConfig, SendError, TransportConfig};

#[test]
fn keep_alives_hold_an_idle_connection_open() {
    let link = LinkConfig {
        loss: 0.2,
        latency: Duration::from_millis(30),
        ..LinkConfig::default()
    };
    let mut pair = SimPair::new(TransportConfig::default(), link, 1);
    pair.advance(Duration::from_secs(120));
    assert!(pair.client.is_established() && pair.server.is_established());
    assert_eq!(pair.client.poll_event(), None);
    assert_eq!(pair.server.poll_event(), None);
    // About one PING per second each way, not a flood.
    let sent = pair.client.stats().packets_sent;
    assert!(
        (100..400).contains(&sent),
        "{sent} packets in 120 s of silence"
    );
    // And the connection still carries data.
    pair.client
        .send(channels::RELIABLE_ORDERED, b"still here")
        .unwrap();
    let m = pair
        .run_until(Duration::from_secs(5), |p| p.server.recv())
        .unwrap();
    assert_eq!(m.data, b"still here");
}

#[test]
fn idle_timeout_fires_when_the_peer_vanishes() {
    let mut pair = SimPair::new(TransportConfig::default(), LinkConfig::default(), 2);
    pair.advance(Duration::from_secs(3));
    // The network goes dark both ways.
    let dark = LinkConfig {
        loss: 1.0,
        ..LinkConfig::default()
    };
    pair.to_server.set_config(dark.clone()).unwrap();
    pair.to_client.set_config(dark).unwrap();
    let start = pair.now();
    let event = pair
        .run_until(Duration::from_secs(30), |p| p.client.poll_event())
        .expect("the client notices");
    assert_eq!(event, Event::Disconnected(DisconnectReason::Timeout));
    let waited = pair.now() - start;
    // The last packet arrived just before the network went dark: the timeout
    // (10 s by default) counts from it.
    assert!(
        waited >= Duration::from_secs(9) && waited <= Duration::from_secs(10),
        "{waited:?}"
    );
    assert!(pair.client.is_closed());
    assert_eq!(pair.client.poll_timeout(), None);
    assert_eq!(pair.client.send(0, b"x"), Err(SendError::Closed));
    assert_eq!(
        pair.server.poll_event(),
        Some(Event::Disconnected(DisconnectReason::Timeout))
    );
}

#[test]
fn configured_idle_timeout_is_used() {
    let mut config = TransportConfig::default();
    config
        .set_idle_timeout(Duration::from_secs(3))
        .set_keep_alive_interval(Duration::from_millis(500));
    let mut pair = SimPair::new(
        config,
        LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        },
        3,
    );
    let start = pair.now();
    let event = pair.run_until(Duration::from_secs(10), |p| p.server.poll_event());
    assert_eq!(event, Some(Event::Disconnected(DisconnectReason::Timeout)));
    assert_eq!(pair.now() - start, Duration::from_secs(3));
}

#[test]
fn graceful_disconnect_reaches_the_peer_with_its_code() {
    let link = LinkConfig {
        loss: 0.3,
        latency: Duration::from_millis(10),
        ..LinkConfig::default()
    };
    let mut pair = SimPair::new(TransportConfig::default(), link, 4);
    pair.client
        .send(channels::RELIABLE_ORDERED, b"bye soon")
        .unwrap();
    pair.advance(Duration::from_secs(1));
    pair.client.close(fastnet::close_code::APPLICATION_MIN + 7);
    assert!(!pair.client.is_established());
    assert_eq!(pair.client.send(0, b"x"), Err(SendError::Closed));
    let event = pair.run_until(Duration::from_secs(2), |p| p.server.poll_event());
    assert_eq!(
        event,
        Some(Event::Disconnected(DisconnectReason::ClosedByPeer {
            code: 263
        })),
        "the close arrives well before the idle timeout"
    );
    assert!(
        pair.client.is_closed(),
        "the closing side finishes after its DISCONNECT packets"
    );
    assert!(pair.server.is_closed());
    assert_eq!(
        pair.client.poll_event(),
        None,
        "a local close raises no event"
    );
}
