//! Adversarial tests: what an attacker on the path (replays, forgeries,
//! truncations, garbage) or an authenticated but hostile peer (a "rogue peer"
//! holding the real client keys) can make a connection do.
//!
//! Every test is deterministic (fixed seeds, virtual clock) and asserts exact
//! counters from `ConnectionStats::dropped`, exact `Violation`s and exact
//! deliveries. Comments marked `// Regression:` describe a bug these tests
//! found and that was fixed.

use std::time::Duration;

use fastnet::crypto::{derive_iv, AeadBackend, PacketKey, TAG_BYTES};
use fastnet::frame::{frame_type, FrameError};
use fastnet::packet::{
    truncate_packet_number, ConnectionId, Header, HEADER_BYTES, MAX_DATAGRAM_BYTES,
    MIN_DATAGRAM_BYTES,
};
use fastnet::sim::{session_keys_pair, Side, SimPair};
use fastnet::stats::{ConnectionStats, DropCounters};
use fastnet::varint::Writer;
use fastnet::{
    channels, ChannelConfig, ChannelKind, Connection, DisconnectReason, DropReason, Event,
    LinkConfig, Message, TransportConfig, Violation,
};

const SEED: u64 = 0x5eed_ad5e;

/// Packet numbers a rogue peer starts at: far above anything the real client
/// sends in these tests, so the two never collide.
const ROGUE_PN: u64 = 1_000_000;

/// `fragment_bytes` with the default 1200-byte datagrams (PROTOCOL.md §3.2).
const FRAG: usize = 1107;

// ----- helpers ----------------------------------------------------------------

/// An authenticated but hostile client: it holds the client's real keys (from
/// the same seed as the `SimPair`) and seals whatever frames it likes.
struct Rogue {
    key: PacketKey,
    key_phase: bool,
    destination: ConnectionId,
    next_pn: u64,
}

impl Rogue {
    /// A rogue with the client's generation-0 keys.
    fn new(seed: u64, first_pn: u64) -> Self {
        let (client, _) = session_keys_pair(seed);
        let iv = derive_iv(&client.send_secret);
        Rogue {
            key: PacketKey::new(&client.send_secret, iv, AeadBackend::Ring),
            key_phase: false,
            destination: client.peer_cid,
            next_pn: first_pn,
        }
    }

    /// A rogue with the client's generation-1 keys (key phase 1), as after a
    /// key update it initiated.
    fn next_generation(seed: u64, first_pn: u64) -> Self {
        let (client, _) = session_keys_pair(seed);
        let iv = derive_iv(&client.send_secret);
        Rogue {
            key: PacketKey::new(&client.send_secret.next(), iv, AeadBackend::Ring),
            key_phase: true,
            destination: client.peer_cid,
            next_pn: first_pn,
        }
    }

    /// Seals `frames` (the plaintext payload) into a datagram with the next
    /// packet number.
    fn seal(&mut self, frames: &[u8]) -> Vec<u8> {
        let pn = self.next_pn;
        self.next_pn += 1;
        let mut head = [0u8; HEADER_BYTES];
        Header {
            key_phase: self.key_phase,
            destination: self.destination,
            packet_number_low: truncate_packet_number(pn),
        }
        .encode(&mut head);
        let mut datagram = head.to_vec();
        let mut body = frames.to_vec();
        let tag = self.key.seal_in_place(pn, &head, &mut body);
        datagram.extend_from_slice(&body);
        datagram.extend_from_slice(&tag);
        datagram
    }
}

/// Encodes frames with a `Writer` into an owned buffer.
fn frames(build: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_DATAGRAM_BYTES];
    let mut w = Writer::new(&mut buf);
    build(&mut w);
    let n = w.position();
    buf.truncate(n);
    buf
}

/// A DATA frame (whole message), written field by field so that invalid
/// frames can be built too.
fn put_data(w: &mut Writer<'_>, channel: u8, id: u64, payload: &[u8]) {
    w.put_u8(frame_type::DATA).unwrap();
    w.put_u8(channel).unwrap();
    w.put_varint(id).unwrap();
    w.put_varint(payload.len() as u64).unwrap();
    w.put_bytes(payload).unwrap();
}

/// A DATA_FRAGMENT frame, written field by field (no validity check).
fn put_fragment(w: &mut Writer<'_>, channel: u8, id: u64, index: u64, count: u64, payload: &[u8]) {
    w.put_u8(frame_type::DATA_FRAGMENT).unwrap();
    w.put_u8(channel).unwrap();
    w.put_varint(id).unwrap();
    w.put_varint(index).unwrap();
    w.put_varint(count).unwrap();
    w.put_varint(payload.len() as u64).unwrap();
    w.put_bytes(payload).unwrap();
}

fn data(channel: u8, id: u64, payload: &[u8]) -> Vec<u8> {
    frames(|w| put_data(w, channel, id, payload))
}

fn fragment(channel: u8, id: u64, index: u64, count: u64, payload: &[u8]) -> Vec<u8> {
    frames(|w| put_fragment(w, channel, id, index, count, payload))
}

/// An ACK frame with raw fields: largest, delay, no extra ranges, first range.
fn ack(largest: u64, first_range: u64) -> Vec<u8> {
    frames(|w| {
        w.put_u8(frame_type::ACK).unwrap();
        w.put_varint(largest).unwrap();
        w.put_varint(0).unwrap();
        w.put_varint(0).unwrap();
        w.put_varint(first_range).unwrap();
    })
}

/// A perfect link (no loss, no delay): everything sent is delivered within
/// the same `flush`.
fn perfect_pair(config: TransportConfig) -> SimPair {
    SimPair::new(config, LinkConfig::perfect(), SEED)
}

fn drain(conn: &mut Connection) -> Vec<Message> {
    std::iter::from_fn(|| conn.recv()).collect()
}

fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// Drop counters added between two snapshots.
fn dropped_delta(before: &ConnectionStats, after: &ConnectionStats) -> DropCounters {
    let (b, a) = (before.dropped, after.dropped);
    DropCounters {
        bad_length: a.bad_length - b.bad_length,
        bad_header: a.bad_header - b.bad_header,
        wrong_connection: a.wrong_connection - b.wrong_connection,
        duplicate: a.duplicate - b.duplicate,
        too_old: a.too_old - b.too_old,
        keys_discarded: a.keys_discarded - b.keys_discarded,
        authentication_failed: a.authentication_failed - b.authentication_failed,
        receive_queue_full: a.receive_queue_full - b.receive_queue_full,
        closed: a.closed - b.closed,
    }
}

/// Adds one drop of `reason` to `counters` (the expected side of a comparison).
fn count(counters: &mut DropCounters, reason: DropReason) {
    *match reason {
        DropReason::BadLength => &mut counters.bad_length,
        DropReason::BadHeader => &mut counters.bad_header,
        DropReason::WrongConnection => &mut counters.wrong_connection,
        DropReason::Duplicate => &mut counters.duplicate,
        DropReason::TooOld => &mut counters.too_old,
        DropReason::KeysDiscarded => &mut counters.keys_discarded,
        DropReason::AuthenticationFailed => &mut counters.authentication_failed,
        DropReason::ReceiveQueueFull => &mut counters.receive_queue_full,
        DropReason::Closed => &mut counters.closed,
    } += 1;
}

/// Low 32 bits of the packet number in a datagram's header.
fn packet_number_low(datagram: &[u8]) -> u32 {
    Header::decode(datagram).unwrap().packet_number_low
}

/// The next datagram `side` would send, taken straight from the connection so
/// that it never reaches the link: the peer has not received its number yet.
fn take_datagram(pair: &mut SimPair, side: Side) -> Vec<u8> {
    let now = pair.now();
    let mut buf = vec![0u8; MAX_DATAGRAM_BYTES];
    let n = pair
        .connection(side)
        .poll_transmit(now, &mut buf)
        .expect("something to send");
    buf.truncate(n);
    buf
}

/// Proof that a connection has nothing to send, taken before an attack and
/// checked after it: the attack made it want to send nothing (no datagram now,
/// no new deadline).
struct Silence(Option<std::time::Instant>);

impl Silence {
    fn check(conn: &mut Connection, now: std::time::Instant) -> Self {
        let mut buf = vec![0u8; MAX_DATAGRAM_BYTES];
        assert_eq!(
            conn.poll_transmit(now, &mut buf),
            None,
            "nothing due before the attack"
        );
        Silence(conn.poll_timeout())
    }

    fn still(&self, conn: &mut Connection, now: std::time::Instant) {
        let mut buf = vec![0u8; MAX_DATAGRAM_BYTES];
        assert_eq!(
            conn.poll_transmit(now, &mut buf),
            None,
            "the attack got an answer"
        );
        assert_eq!(conn.poll_timeout(), self.0, "the attack moved a timer");
    }
}

/// Messages `0..n` as 4-byte little-endian counters padded to `len` bytes.
fn numbered(i: u32, len: usize) -> Vec<u8> {
    let mut m = i.to_le_bytes().to_vec();
    m.resize(len.max(4), (i % 251) as u8);
    m
}

// ----- 1. replays ---------------------------------------------------------------

/// A link that delays, jitters, reorders and duplicates but never loses, so
/// every captured datagram is known to have reached its destination.
fn lossless_jittery_link() -> LinkConfig {
    LinkConfig {
        latency: Duration::from_millis(10),
        jitter: Duration::from_millis(8),
        reorder: 0.05,
        reorder_delay: Duration::from_millis(15),
        duplicate: 0.05,
        ..LinkConfig::default()
    }
}

/// Runs an exchange on every channel in both directions, capturing every
/// datagram, until everything is delivered and both links are empty.
/// Returns the pair, the captures and the messages each side received.
/// A finished exchange: the pair, every datagram captured, and the messages
/// the server and the client received.
type Exchange = (SimPair, Vec<(Side, Vec<u8>)>, Vec<Message>, Vec<Message>);

fn captured_exchange(seed: u64) -> Exchange {
    let mut pair = SimPair::new(TransportConfig::default(), lossless_jittery_link(), seed);
    pair.set_capture(true);
    let mut to_server = Vec::new();
    let mut to_client = Vec::new();
    for i in 0..40u32 {
        // Reliable-ordered, unreliable and reliable-unordered in turn; a few
        // large (fragmented) messages among small ones.
        let ch = (i % 3) as u8;
        let len = if i % 13 == 0 { 3000 } else { 20 + i as usize };
        pair.client.send(ch, &numbered(i, len)).unwrap();
        pair.server.send(ch, &numbered(1000 + i, len)).unwrap();
        pair.advance(Duration::from_millis(3));
        to_server.extend(drain(&mut pair.server));
        to_client.extend(drain(&mut pair.client));
    }
    // Sequenced messages far enough apart that the link cannot reorder them
    // (a reordered older one would rightly be dropped).
    for i in 40..45u32 {
        pair.client
            .send(channels::SEQUENCED, &numbered(i, 30))
            .unwrap();
        pair.server
            .send(channels::SEQUENCED, &numbered(1000 + i, 30))
            .unwrap();
        pair.advance(Duration::from_millis(50));
        to_server.extend(drain(&mut pair.server));
        to_client.extend(drain(&mut pair.client));
    }
    pair.run_until(Duration::from_secs(5), |p| {
        to_server.extend(drain(&mut p.server));
        to_client.extend(drain(&mut p.client));
        (to_server.len() == 45
            && to_client.len() == 45
            && p.to_server.is_empty()
            && p.to_client.is_empty())
        .then_some(())
    })
    .expect("exchange completes on a lossless link");
    assert_eq!(
        pair.to_server.stats().dropped_loss + pair.to_server.stats().dropped_queue,
        0
    );
    assert_eq!(
        pair.to_client.stats().dropped_loss + pair.to_client.stats().dropped_queue,
        0
    );
    let captured = pair.take_captured();
    pair.set_capture(false);
    (pair, captured, to_server, to_client)
}

#[test]
fn replayed_datagrams_are_all_dropped_as_duplicates() {
    let (mut pair, captured, to_server, to_client) = captured_exchange(SEED);
    // Every message arrived exactly once during the exchange (all channels are
    // lossless here, so unreliable ones too).
    let mut ids: Vec<u32> = to_server
        .iter()
        .map(|m| u32::from_le_bytes(m.data[..4].try_into().unwrap()))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..45).collect::<Vec<_>>());
    assert_eq!(to_client.len(), 45);

    let from_client: Vec<&Vec<u8>> = captured
        .iter()
        .filter(|(s, _)| *s == Side::Client)
        .map(|(_, d)| d)
        .collect();
    let from_server: Vec<&Vec<u8>> = captured
        .iter()
        .filter(|(s, _)| *s == Side::Server)
        .map(|(_, d)| d)
        .collect();
    assert_eq!(from_client.len() as u64, pair.datagrams_sent(Side::Client));
    assert_eq!(from_server.len() as u64, pair.datagrams_sent(Side::Server));
    assert!(from_client.len() > 20 && from_client.len() < 2048);

    let server_before = pair.server.stats();
    let client_before = pair.client.stats();
    let sent_before = (
        pair.datagrams_sent(Side::Client),
        pair.datagrams_sent(Side::Server),
    );
    // Replay every datagram, twice, to the end it was meant for.
    for _ in 0..2 {
        for d in &from_client {
            assert_eq!(pair.inject(Side::Server, d), Err(DropReason::Duplicate));
        }
        for d in &from_server {
            assert_eq!(pair.inject(Side::Client, d), Err(DropReason::Duplicate));
        }
    }
    let server_after = pair.server.stats();
    let client_after = pair.client.stats();
    assert_eq!(
        dropped_delta(&server_before, &server_after),
        DropCounters {
            duplicate: 2 * from_client.len() as u64,
            ..DropCounters::default()
        }
    );
    assert_eq!(
        dropped_delta(&client_before, &client_after),
        DropCounters {
            duplicate: 2 * from_server.len() as u64,
            ..DropCounters::default()
        }
    );
    // Nothing delivered twice, nothing accepted, nothing to answer.
    assert!(pair.server.recv().is_none());
    assert!(pair.client.recv().is_none());
    assert_eq!(
        server_after.packets_received,
        server_before.packets_received
    );
    assert_eq!(server_after.messages_received, 45);
    assert_eq!(client_after.messages_received, 45);
    pair.flush();
    assert_eq!(
        (
            pair.datagrams_sent(Side::Client),
            pair.datagrams_sent(Side::Server)
        ),
        sent_before,
        "replays must not make either side send anything"
    );

    // The connection still works, both ways (channels 0-2: a burst on the
    // sequenced channel may rightly lose reordered messages).
    for i in 45..65u32 {
        pair.client.send((i % 3) as u8, &numbered(i, 50)).unwrap();
        pair.server
            .send((i % 3) as u8, &numbered(1000 + i, 50))
            .unwrap();
    }
    let mut got_server = Vec::new();
    let mut got_client = Vec::new();
    pair.run_until(Duration::from_secs(5), |p| {
        got_server.extend(drain(&mut p.server));
        got_client.extend(drain(&mut p.client));
        (got_server.len() == 20 && got_client.len() == 20).then_some(())
    })
    .expect("the connection still works after the replays");
    assert!(pair.server.is_established() && pair.client.is_established());
    assert!(events(&mut pair.server).is_empty());
}

#[test]
fn replays_older_than_the_window_are_too_old() {
    let mut pair = perfect_pair(TransportConfig::default());
    pair.set_capture(true);
    // 2100 client packets, one message each.
    for i in 0..2100u32 {
        pair.client
            .send(channels::UNRELIABLE, &i.to_le_bytes())
            .unwrap();
        pair.advance(Duration::from_millis(1));
    }
    let captured: Vec<Vec<u8>> = pair
        .take_captured()
        .into_iter()
        .filter(|(s, _)| *s == Side::Client)
        .map(|(_, d)| d)
        .collect();
    let n = captured.len() as u64;
    assert!(n >= 2100);
    assert_eq!(pair.server.stats().packets_received, n);
    assert_eq!(drain(&mut pair.server).len(), 2100);
    let before = pair.server.stats();
    let mut expected = DropCounters::default();
    for (pn, d) in captured.iter().enumerate() {
        assert_eq!(u64::from(packet_number_low(d)), pn as u64);
        // The largest received is n - 1: numbers 2048 or more below it are too old.
        let reason = if (n - 1) - pn as u64 >= 2048 {
            DropReason::TooOld
        } else {
            DropReason::Duplicate
        };
        assert_eq!(pair.inject(Side::Server, d), Err(reason), "packet {pn}");
        count(&mut expected, reason);
    }
    assert_eq!(dropped_delta(&before, &pair.server.stats()), expected);
    assert_eq!(expected.too_old, n - 2048);
    assert!(pair.server.recv().is_none());
}

// ----- 2. forgery -------------------------------------------------------------

/// Flips every bit of `original` (addressed to `side`, packet number `pn` not
/// yet received, every lower number received) and checks each forgery is
/// dropped for the reason of PROTOCOL.md §2.2, changes nothing and makes the
/// receiver send nothing; then the genuine datagram is accepted.
fn check_every_bit_flip(pair: &mut SimPair, side: Side, original: &[u8]) -> DropCounters {
    let pn = packet_number_low(original);
    let receiver_before = pair.connection(side).stats();
    assert_eq!(
        receiver_before.packets_received,
        u64::from(pn),
        "every number below the datagram's was received"
    );
    let silent = {
        let now = pair.now();
        Silence::check(pair.connection(side), now)
    };
    let mut expected = DropCounters::default();
    for bit in 0..original.len() * 8 {
        let (byte, shift) = (bit / 8, bit % 8);
        let mut forged = original.to_vec();
        forged[byte] ^= 1 << shift;
        let reason = match byte {
            // Key phase: chooses the next generation's key, which fails.
            0 if shift == 0 => DropReason::AuthenticationFailed,
            // Type (bits 1-3) or version (bits 4-7).
            0 => DropReason::BadHeader,
            1..=8 => DropReason::WrongConnection,
            9..=12 => {
                // Big-endian packet number: byte 12 holds bits 0-7.
                let pn_bit = (12 - byte) * 8 + shift;
                if pn & (1 << pn_bit) != 0 {
                    // A lower number, already received.
                    DropReason::Duplicate
                } else {
                    DropReason::AuthenticationFailed
                }
            }
            _ => DropReason::AuthenticationFailed,
        };
        assert_eq!(
            pair.inject(side, &forged),
            Err(reason),
            "bit {bit} (byte {byte})"
        );
        count(&mut expected, reason);
    }
    let receiver_after = pair.connection(side).stats();
    assert_eq!(dropped_delta(&receiver_before, &receiver_after), expected);
    assert_eq!(
        expected.total(),
        original.len() as u64 * 8,
        "every forgery was counted"
    );
    assert_eq!(expected.bad_header, 7);
    assert_eq!(expected.wrong_connection, 64);
    assert_eq!(
        receiver_after.packets_received,
        receiver_before.packets_received
    );
    assert_eq!(
        receiver_after.messages_received,
        receiver_before.messages_received
    );
    assert!(pair.connection(side).recv().is_none());
    assert!(pair.connection(side).is_established());
    let now = pair.now();
    silent.still(pair.connection(side), now);

    // The genuine datagram still opens: its number was not consumed.
    assert_eq!(pair.inject(side, original), Ok(()));
    assert_eq!(
        pair.connection(side).stats().packets_received,
        u64::from(pn) + 1
    );
    expected
}

#[test]
fn every_bit_flip_of_a_first_packet_is_rejected() {
    let mut pair = perfect_pair(TransportConfig::default());
    pair.client
        .send(channels::RELIABLE_ORDERED, b"first words")
        .unwrap();
    let original = take_datagram(&mut pair, Side::Client);
    assert_eq!(packet_number_low(&original), 0);
    let drops = check_every_bit_flip(&mut pair, Side::Server, &original);
    assert_eq!(
        drops.duplicate,
        u64::from(packet_number_low(&original).count_ones())
    );
    let got = drain(&mut pair.server);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, b"first words");
}

#[test]
fn every_bit_flip_mid_connection_is_rejected() {
    let mut pair = perfect_pair(TransportConfig::default());
    // An exchange that leaves the packet number at a value with many set bits.
    for i in 0..23u32 {
        pair.client
            .send(channels::RELIABLE_ORDERED, &numbered(i, 10))
            .unwrap();
        pair.advance(Duration::from_millis(5));
    }
    pair.advance(Duration::from_millis(100));
    assert_eq!(drain(&mut pair.server).len(), 23);
    // A datagram with an ACK and a two-fragment message.
    pair.server
        .send(channels::RELIABLE_ORDERED, b"ack me")
        .unwrap();
    pair.flush();
    assert_eq!(drain(&mut pair.client)[0].data, b"ack me");
    let msg = numbered(99, 2000);
    pair.client
        .send(channels::RELIABLE_UNORDERED, &msg)
        .unwrap();
    let first = take_datagram(&mut pair, Side::Client);
    assert!(first.len() > 1100, "a full fragment datagram");
    let drops = check_every_bit_flip(&mut pair, Side::Server, &first);
    // Packet number flips to set bits give lower, already received numbers.
    let pn = packet_number_low(&first);
    assert!(pn.count_ones() >= 2, "packet number {pn}");
    assert_eq!(drops.duplicate, u64::from(pn.count_ones()));
    let second = take_datagram(&mut pair, Side::Client);
    check_every_bit_flip(&mut pair, Side::Server, &second);
    let got = drain(&mut pair.server);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, msg);
    // And the other direction.
    pair.server
        .send(channels::UNRELIABLE, b"to the client")
        .unwrap();
    let to_client = take_datagram(&mut pair, Side::Server);
    let drops = check_every_bit_flip(&mut pair, Side::Client, &to_client);
    assert_eq!(
        drops.duplicate,
        u64::from(packet_number_low(&to_client).count_ones())
    );
    let got: Vec<Vec<u8>> = drain(&mut pair.client)
        .into_iter()
        .map(|m| m.data)
        .collect();
    assert_eq!(got, vec![b"to the client".to_vec()]);
}

#[test]
fn every_bit_flip_after_a_key_update_is_rejected() {
    let mut pair = perfect_pair(TransportConfig::default());
    pair.client
        .send(channels::RELIABLE_ORDERED, b"before")
        .unwrap();
    pair.advance(Duration::from_millis(100));
    assert!(pair.client.update_keys(pair.now()));
    pair.client
        .send(channels::RELIABLE_ORDERED, b"during")
        .unwrap();
    pair.advance(Duration::from_secs(2));
    assert_eq!(pair.client.key_generation(), 1);
    assert_eq!(pair.server.key_generation(), 1);
    assert_eq!(drain(&mut pair.server).len(), 2);
    pair.client
        .send(channels::RELIABLE_ORDERED, b"after")
        .unwrap();
    let original = take_datagram(&mut pair, Side::Client);
    assert_eq!(original[0] & 1, 1, "key phase 1");
    let drops = check_every_bit_flip(&mut pair, Side::Server, &original);
    assert_eq!(
        drops.duplicate,
        u64::from(packet_number_low(&original).count_ones())
    );
    assert_eq!(
        pair.server.key_generation(),
        1,
        "forged key phases changed no key"
    );
    assert_eq!(drain(&mut pair.server)[0].data, b"after");
}

// ----- 3. truncation ------------------------------------------------------------

#[test]
fn truncated_and_extended_datagrams_are_rejected() {
    let mut pair = perfect_pair(TransportConfig::default());
    pair.client
        .send(channels::RELIABLE_ORDERED, b"warm up")
        .unwrap();
    pair.advance(Duration::from_millis(100));
    assert_eq!(drain(&mut pair.server).len(), 1);
    let msg = numbered(7, 1000);
    pair.client.send(channels::RELIABLE_ORDERED, &msg).unwrap();
    let original = take_datagram(&mut pair, Side::Client);
    let before = pair.server.stats();
    let silent = {
        let now = pair.now();
        Silence::check(&mut pair.server, now)
    };
    let mut expected = DropCounters::default();
    for len in 0..original.len() {
        let reason = if len < MIN_DATAGRAM_BYTES {
            DropReason::BadLength
        } else {
            DropReason::AuthenticationFailed
        };
        assert_eq!(
            pair.inject(Side::Server, &original[..len]),
            Err(reason),
            "prefix {len}"
        );
        count(&mut expected, reason);
    }
    let mut rng = fastrand::Rng::with_seed(SEED);
    let tag = &original[original.len() - TAG_BYTES..];
    let extensions: Vec<Vec<u8>> = vec![
        vec![0],
        vec![0; 15],
        tag.to_vec(),
        std::iter::repeat_with(|| rng.u8(..)).take(100).collect(),
        vec![0; MAX_DATAGRAM_BYTES - original.len()],
        vec![0; MAX_DATAGRAM_BYTES - original.len() + 1],
        vec![0; 70_000],
    ];
    for ext in &extensions {
        let mut d = original.clone();
        d.extend_from_slice(ext);
        let reason = if d.len() > MAX_DATAGRAM_BYTES {
            DropReason::BadLength
        } else {
            DropReason::AuthenticationFailed
        };
        assert_eq!(
            pair.inject(Side::Server, &d),
            Err(reason),
            "extended to {}",
            d.len()
        );
        count(&mut expected, reason);
    }
    // A datagram with its tag moved: the last 16 bytes are the tag, always.
    let mut moved = original[..original.len() - TAG_BYTES].to_vec();
    moved.insert(HEADER_BYTES, 0);
    moved.extend_from_slice(tag);
    assert_eq!(
        pair.inject(Side::Server, &moved),
        Err(DropReason::AuthenticationFailed)
    );
    count(&mut expected, DropReason::AuthenticationFailed);

    assert_eq!(expected.bad_length, MIN_DATAGRAM_BYTES as u64 + 2);
    assert_eq!(dropped_delta(&before, &pair.server.stats()), expected);
    assert!(pair.server.recv().is_none());
    let now = pair.now();
    silent.still(&mut pair.server, now);
    assert_eq!(pair.inject(Side::Server, &original), Ok(()));
    let got = drain(&mut pair.server);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, msg);
}

// ----- 4. garbage and wrong connection IDs -------------------------------------

/// What the receiver must do with an arbitrary datagram (PROTOCOL.md §2.2
/// steps 1-3; anything passing them here carries a fresh packet number and
/// fails authentication).
fn classify(datagram: &[u8], cid: ConnectionId) -> DropReason {
    if datagram.len() < MIN_DATAGRAM_BYTES || datagram.len() > MAX_DATAGRAM_BYTES {
        return DropReason::BadLength;
    }
    if datagram[0] >> 4 != 1 || (datagram[0] >> 1) & 7 != 0 {
        return DropReason::BadHeader;
    }
    if datagram[1..9] != cid.0.to_be_bytes() {
        return DropReason::WrongConnection;
    }
    DropReason::AuthenticationFailed
}

/// One seeded garbage datagram for the connection `cid`.
fn garbage(rng: &mut fastrand::Rng, cid: ConnectionId) -> Vec<u8> {
    let kind = rng.u8(..10);
    let len = match kind {
        // Random bytes of a random length.
        0..=1 => rng.usize(..1500),
        // Too short.
        2 => rng.usize(..MIN_DATAGRAM_BYTES),
        // Too long.
        3 => rng.usize(MAX_DATAGRAM_BYTES + 1..MAX_DATAGRAM_BYTES + 2000),
        _ => rng.usize(MIN_DATAGRAM_BYTES..1300),
    };
    // Random bytes (only the first 2000 of the oversized ones: they are
    // rejected on their length alone, and filling 64 KiB is slow in debug).
    let mut d = vec![0u8; len];
    rng.fill(&mut d[..len.min(2000)]);
    match kind {
        // A valid flags byte, a random connection ID.
        4 | 5 => d[0] = 0x10 | (d[0] & 1),
        // The right connection ID, a random flags byte.
        6 => d[1..9].copy_from_slice(&cid.0.to_be_bytes()),
        // A well-formed header for this connection (either key phase), a
        // packet number far above anything sent, and random "ciphertext".
        7.. => {
            d[0] = 0x10 | (d[0] & 1);
            d[1..9].copy_from_slice(&cid.0.to_be_bytes());
            d[9..13].copy_from_slice(&rng.u32(1 << 24..).to_be_bytes());
        }
        _ => {}
    }
    d
}

/// A light two-way exchange over a jittery link for `steps` × 5 ms; with
/// `garbage_per_step > 0`, that many garbage datagrams hit the server at every
/// step. Returns the pair, the messages each side received and the expected
/// drop counters.
fn run_with_garbage(
    garbage_per_step: usize,
) -> (SimPair, Vec<Message>, Vec<Message>, DropCounters) {
    let mut pair = SimPair::new(TransportConfig::default(), LinkConfig::wifi(), SEED);
    let cid = pair.server.local_cid();
    let mut rng = fastrand::Rng::with_seed(SEED ^ 0xbad);
    let mut expected = DropCounters::default();
    let mut to_server = Vec::new();
    let mut to_client = Vec::new();
    for step in 0..400u32 {
        if step % 10 == 0 {
            pair.client
                .send(channels::RELIABLE_ORDERED, &numbered(step, 40))
                .unwrap();
            pair.server
                .send(channels::SEQUENCED, &numbered(step, 40))
                .unwrap();
        }
        for _ in 0..garbage_per_step {
            let d = garbage(&mut rng, cid);
            let reason = classify(&d, cid);
            assert_eq!(
                pair.inject(Side::Server, &d),
                Err(reason),
                "step {step}, {} bytes",
                d.len()
            );
            count(&mut expected, reason);
        }
        pair.advance(Duration::from_millis(5));
        to_server.extend(drain(&mut pair.server));
        to_client.extend(drain(&mut pair.client));
    }
    (pair, to_server, to_client, expected)
}

#[test]
fn garbage_is_dropped_counted_and_never_answered() {
    let (mut control, c_server, c_client, none) = run_with_garbage(0);
    assert_eq!(none, DropCounters::default());
    let (mut attacked, a_server, a_client, expected) = run_with_garbage(10);
    // Every kind of drop happened.
    assert!(expected.bad_length > 500, "{expected:?}");
    assert!(expected.bad_header > 500, "{expected:?}");
    assert!(expected.wrong_connection > 500, "{expected:?}");
    assert!(expected.authentication_failed > 1000, "{expected:?}");
    assert_eq!(expected.total(), 4000);

    let control_stats = control.server.stats();
    let attacked_stats = attacked.server.stats();
    assert_eq!(
        dropped_delta(&control_stats, &attacked_stats),
        expected,
        "each garbage datagram counted once, for its reason"
    );
    // Apart from the drop counters, the attack changed nothing at all: same
    // datagrams sent by both ends, same statistics, same deliveries.
    let without_drops = |mut s: ConnectionStats| {
        s.dropped = DropCounters::default();
        s
    };
    assert_eq!(without_drops(attacked_stats), without_drops(control_stats));
    assert_eq!(attacked.client.stats(), control.client.stats());
    assert_eq!(
        attacked.datagrams_sent(Side::Server),
        control.datagrams_sent(Side::Server)
    );
    assert_eq!(
        attacked.datagrams_sent(Side::Client),
        control.datagrams_sent(Side::Client)
    );
    assert_eq!(a_server, c_server);
    assert_eq!(a_client, c_client);
    assert_eq!(a_server.len(), 40);
    assert!(attacked.server.is_established());
    assert!(events(&mut attacked.server).is_empty());
    assert!(events(&mut control.server).is_empty());
}

#[test]
fn a_valid_packet_for_another_connection_is_dropped() {
    // Genuinely sealed by the client of another session, and the same packet
    // redirected to our connection ID: neither gets past the receiver.
    let mut pair = perfect_pair(TransportConfig::default());
    let mut other = SimPair::new(TransportConfig::default(), LinkConfig::perfect(), SEED + 1);
    other
        .client
        .send(channels::RELIABLE_ORDERED, b"elsewhere")
        .unwrap();
    let foreign = take_datagram(&mut other, Side::Client);
    assert_eq!(
        pair.inject(Side::Server, &foreign),
        Err(DropReason::WrongConnection)
    );
    let mut redirected = foreign.clone();
    redirected[1..9].copy_from_slice(&pair.server.local_cid().0.to_be_bytes());
    assert_eq!(
        pair.inject(Side::Server, &redirected),
        Err(DropReason::AuthenticationFailed)
    );
    assert_eq!(
        pair.server.stats().dropped,
        DropCounters {
            wrong_connection: 1,
            authentication_failed: 1,
            ..DropCounters::default()
        }
    );
    assert!(pair.server.recv().is_none());
    assert_eq!(other.inject(Side::Server, &foreign), Ok(()));
}

// ----- 5. rogue peer: protocol violations ---------------------------------------

/// Runs a rogue-peer scenario on a fresh pair: `accepted` payloads must be
/// processed without complaint, then `violating` must disconnect the server
/// with `violation`; the server then sends exactly three DISCONNECT packets
/// (code 1) that the real client reports as `ClosedByPeer { code: 1 }`, and
/// stays silent afterwards. Returns the pair for further checks.
fn expect_violation(
    config: TransportConfig,
    rogue: &mut Rogue,
    accepted: &[Vec<u8>],
    violating: &[u8],
    violation: Violation,
) -> SimPair {
    let mut pair = perfect_pair(config);
    for (i, payload) in accepted.iter().enumerate() {
        let d = rogue.seal(payload);
        assert_eq!(
            pair.inject(Side::Server, &d),
            Ok(()),
            "accepted payload {i}"
        );
        assert!(
            pair.server.is_established(),
            "payload {i}: {:?}",
            events(&mut pair.server)
        );
    }
    finish_violation(&mut pair, rogue, violating, violation);
    pair
}

fn finish_violation(pair: &mut SimPair, rogue: &mut Rogue, violating: &[u8], violation: Violation) {
    let received_before = pair.server.stats().packets_received;
    let d = rogue.seal(violating);
    // The packet authenticated: it is not a drop but a violation.
    assert_eq!(pair.inject(Side::Server, &d), Ok(()));
    assert_eq!(pair.server.stats().packets_received, received_before + 1);
    assert_eq!(
        events(&mut pair.server),
        vec![Event::Disconnected(DisconnectReason::ProtocolViolation(
            violation
        ))]
    );
    assert!(!pair.server.is_established());
    assert!(!pair.server.is_closed(), "closing: DISCONNECT not sent yet");
    let server_sent = pair.datagrams_sent(Side::Server);
    let client_sent = pair.datagrams_sent(Side::Client);
    pair.flush();
    assert_eq!(
        pair.datagrams_sent(Side::Server),
        server_sent + 3,
        "three DISCONNECT packets"
    );
    assert!(pair.server.is_closed());
    assert_eq!(
        events(&mut pair.client),
        vec![Event::Disconnected(DisconnectReason::ClosedByPeer {
            code: 1
        })]
    );
    assert!(pair.client.is_closed());
    // The two other copies of the DISCONNECT reach a closed client.
    assert_eq!(pair.client.stats().dropped.closed, 2);
    // Nobody says anything more, and the rogue's packets are ignored.
    pair.advance(Duration::from_secs(15));
    assert_eq!(pair.datagrams_sent(Side::Server), server_sent + 3);
    assert_eq!(pair.datagrams_sent(Side::Client), client_sent);
    let closed_before = pair.server.stats().dropped.closed;
    let d = rogue.seal(&[frame_type::PING]);
    assert_eq!(pair.inject(Side::Server, &d), Err(DropReason::Closed));
    assert_eq!(pair.server.stats().dropped.closed, closed_before + 1);
    assert!(pair.server.poll_timeout().is_none());
}

fn rogue_peer() -> Rogue {
    Rogue::new(SEED, ROGUE_PN)
}

#[test]
fn rogue_unknown_frame_types() {
    for t in [0x05u8, 0x0f, 0x12, 0x42, 0xff] {
        let pair = expect_violation(
            TransportConfig::default(),
            &mut rogue_peer(),
            &[vec![frame_type::PING], vec![frame_type::PADDING]],
            &[frame_type::PING, t],
            Violation::MalformedFrame(FrameError::UnknownType(t)),
        );
        // Only the rogue's PING after the close was dropped.
        assert_eq!(
            pair.server.stats().dropped,
            DropCounters {
                closed: 1,
                ..DropCounters::default()
            }
        );
    }
}

#[test]
fn rogue_malformed_frames() {
    let cases: Vec<(Vec<u8>, FrameError)> = vec![
        // Truncated DATA header.
        (vec![frame_type::DATA, 0], FrameError::UnexpectedEnd),
        // Length past the end of the payload.
        (
            frames(|w| {
                w.put_u8(frame_type::DATA).unwrap();
                w.put_u8(0).unwrap();
                w.put_varint(0).unwrap();
                w.put_varint(10).unwrap();
                w.put_bytes(b"short").unwrap();
            }),
            FrameError::LengthOverrun,
        ),
        // Fragment count 1, index not below count, empty fragment.
        (
            fragment(0, 0, 0, 1, &[1; FRAG]),
            FrameError::InvalidFragment,
        ),
        (fragment(0, 0, 3, 3, &[1; 10]), FrameError::InvalidFragment),
        (fragment(0, 0, 1, 2, &[]), FrameError::InvalidFragment),
        // Fragment count beyond 32 bits.
        (
            fragment(0, 0, 0, 1 << 32, &[1; FRAG]),
            FrameError::ValueTooLarge,
        ),
        // DISCONNECT code beyond 32 bits.
        (
            frames(|w| {
                w.put_u8(frame_type::DISCONNECT).unwrap();
                w.put_varint(1 << 32).unwrap();
            }),
            FrameError::ValueTooLarge,
        ),
        // ACK whose first range goes below zero.
        (ack(3, 4), FrameError::InvalidAck),
        // ACK announcing more ranges than its bytes can hold.
        (
            frames(|w| {
                w.put_u8(frame_type::ACK).unwrap();
                w.put_varint(0).unwrap();
                w.put_varint(0).unwrap();
                w.put_varint(1000).unwrap();
                w.put_varint(0).unwrap();
            }),
            FrameError::InvalidAck,
        ),
    ];
    for (payload, error) in cases {
        expect_violation(
            TransportConfig::default(),
            &mut rogue_peer(),
            &[],
            &payload,
            Violation::MalformedFrame(error),
        );
    }
}

#[test]
fn rogue_data_on_unknown_channels() {
    for channel in [4u8, 63, 64, 255] {
        let pair = expect_violation(
            TransportConfig::default(),
            &mut rogue_peer(),
            &[data(3, 0, b"sequenced is channel 3")],
            &data(channel, 0, b"x"),
            Violation::UnknownChannel(channel),
        );
        assert_eq!(drain(&mut { pair }.server).len(), 1);
    }
    expect_violation(
        TransportConfig::default(),
        &mut rogue_peer(),
        &[],
        &fragment(4, 0, 0, 2, &[0; FRAG]),
        Violation::UnknownChannel(4),
    );
}

#[test]
fn rogue_reliable_message_beyond_the_window() {
    for channel in [channels::RELIABLE_ORDERED, channels::RELIABLE_UNORDERED] {
        // Message 1023 is the last of the window while 0 is missing.
        let mut pair = expect_violation(
            TransportConfig::default(),
            &mut rogue_peer(),
            &[data(channel, 1023, b"last in window")],
            &data(channel, 1024, b"one too far"),
            Violation::WindowExceeded,
        );
        let got = drain(&mut pair.server);
        if channel == channels::RELIABLE_ORDERED {
            assert!(got.is_empty(), "1023 waits for 0..1023");
        } else {
            assert_eq!(got.len(), 1);
        }
        // Once message 0 is delivered the window moves: 1024 is allowed.
        let mut rogue = rogue_peer();
        let mut pair = perfect_pair(TransportConfig::default());
        for (id, text) in [(0u64, &b"zero"[..]), (1024, b"now in window")] {
            assert_eq!(
                pair.inject(Side::Server, &rogue.seal(&data(channel, id, text))),
                Ok(())
            );
        }
        assert!(pair.server.is_established());
        assert_eq!(
            drain(&mut pair.server).len(),
            if channel == 0 { 1 } else { 2 }
        );
        finish_violation(
            &mut pair,
            &mut rogue,
            &data(channel, 1025, b"beyond again"),
            Violation::WindowExceeded,
        );
    }
}

#[test]
fn rogue_fragment_counts_beyond_the_channel_maximum() {
    // Reliable channel 0, 1 MiB: 948 fragments may hold a message of at most
    // 947 * 1107 + 1107 bytes, at least 947 * 1107 + 1 <= 1 MiB: allowed;
    // 949 fragments are at least 948 * 1107 + 1 > 1 MiB.
    const { assert!(947 * FRAG < 1 << 20 && 948 * FRAG >= 1 << 20) };
    expect_violation(
        TransportConfig::default(),
        &mut rogue_peer(),
        &[fragment(0, 0, 0, 948, &[1; FRAG])],
        &fragment(0, 1, 0, 949, &[1; FRAG]),
        Violation::MessageTooLarge,
    );
    // Unreliable channel 1, 64 KiB: 60 fragments allowed, 61 not.
    const { assert!(59 * FRAG < 64 << 10 && 60 * FRAG >= 64 << 10) };
    expect_violation(
        TransportConfig::default(),
        &mut rogue_peer(),
        &[fragment(1, 0, 59, 60, &[1; 10])],
        &fragment(1, 1, 0, 61, &[1; FRAG]),
        Violation::MessageTooLarge,
    );
    // A later fragment announcing the huge count is refused just the same.
    expect_violation(
        TransportConfig::default(),
        &mut rogue_peer(),
        &[],
        &fragment(3, 0, 70_000, 70_001, &[1; 3]),
        Violation::MessageTooLarge,
    );
    // An unfragmented message larger than its channel's maximum.
    let mut config = TransportConfig::default();
    let small = config
        .add_channel(ChannelConfig::new(ChannelKind::Unreliable).with_max_message_bytes(100))
        .unwrap();
    expect_violation(
        config,
        &mut rogue_peer(),
        &[data(small, 0, &[7; 100])],
        &data(small, 1, &[7; 101]),
        Violation::MessageTooLarge,
    );
}

#[test]
fn rogue_inconsistent_fragment_counts() {
    for channel in [
        channels::RELIABLE_ORDERED,
        channels::UNRELIABLE,
        channels::RELIABLE_UNORDERED,
        channels::SEQUENCED,
    ] {
        let mut pair = expect_violation(
            TransportConfig::default(),
            &mut rogue_peer(),
            &[fragment(channel, 5, 0, 3, &[1; FRAG])],
            &fragment(channel, 5, 1, 4, &[2; FRAG]),
            Violation::BadFragment,
        );
        assert!(drain(&mut pair.server).is_empty());
    }
    // A whole DATA frame for a message being reassembled (reliable).
    expect_violation(
        TransportConfig::default(),
        &mut rogue_peer(),
        &[fragment(0, 0, 1, 3, &[1; FRAG])],
        &data(0, 0, b"not a fragment"),
        Violation::BadFragment,
    );
    // Both inconsistent fragments in one packet.
    let mut both = fragment(2, 0, 0, 2, &[1; FRAG]);
    both.extend(fragment(2, 0, 1, 3, &[1; 10]));
    expect_violation(
        TransportConfig::default(),
        &mut rogue_peer(),
        &[],
        &both,
        Violation::BadFragment,
    );
}

#[test]
fn rogue_fragments_of_the_wrong_length() {
    let cases = [
        // A non-last fragment one byte short, one byte long.
        fragment(0, 0, 0, 2, &[1; FRAG - 1]),
        fragment(1, 0, 0, 2, &[1; FRAG + 1]),
        fragment(2, 0, 3, 9, &[1; 1]),
        // A last fragment longer than a fragment.
        fragment(3, 0, 1, 2, &[1; FRAG + 1]),
    ];
    for payload in cases {
        expect_violation(
            TransportConfig::default(),
            &mut rogue_peer(),
            &[fragment(0, 0, 1, 2, &[1; FRAG])],
            &payload,
            Violation::BadFragment,
        );
    }
}

#[test]
fn rogue_ack_of_a_packet_never_sent() {
    // The server sends packet 0 (to the real client); an ACK of 0 is fine, of
    // 1 is a violation, as is a range reaching it.
    for (bad_largest, bad_first_range) in [(1u64, 0u64), (1, 1), (1 << 40, 0)] {
        let mut pair = perfect_pair(TransportConfig::default());
        pair.server
            .send(channels::RELIABLE_ORDERED, b"hello")
            .unwrap();
        pair.flush();
        assert_eq!(pair.server.stats().packets_sent, 1);
        assert_eq!(drain(&mut pair.client).len(), 1);
        let mut rogue = rogue_peer();
        assert_eq!(pair.inject(Side::Server, &rogue.seal(&ack(0, 0))), Ok(()));
        assert!(pair.server.is_established());
        assert_eq!(pair.server.queued_messages(), 0, "the ACK was applied");
        finish_violation(
            &mut pair,
            &mut rogue,
            &ack(bad_largest, bad_first_range),
            Violation::AckOfUnsentPacket,
        );
    }
    // Before the server has sent anything, any ACK is a violation.
    expect_violation(
        TransportConfig::default(),
        &mut rogue_peer(),
        &[],
        &ack(0, 0),
        Violation::AckOfUnsentPacket,
    );
}

#[test]
fn rogue_key_update_with_the_wrong_generation() {
    let key_update = |generation: u64| {
        frames(|w| {
            w.put_u8(frame_type::KEY_UPDATE).unwrap();
            w.put_varint(generation).unwrap();
        })
    };
    // Generation-0 packets: KEY_UPDATE 0 is consistent, 1 or 2 is not.
    for wrong in [1u64, 2, 1 << 40] {
        expect_violation(
            TransportConfig::default(),
            &mut rogue_peer(),
            &[key_update(0)],
            &key_update(wrong),
            Violation::KeyUpdateGeneration,
        );
    }
    // A genuine update to generation 1 announcing generation 0 (or 2).
    for wrong in [0u64, 2] {
        let mut pair = perfect_pair(TransportConfig::default());
        let mut old = rogue_peer();
        assert_eq!(
            pair.inject(Side::Server, &old.seal(&[frame_type::PING])),
            Ok(())
        );
        let mut next = Rogue::next_generation(SEED, old.next_pn);
        assert_eq!(
            pair.inject(Side::Server, &next.seal(&key_update(1))),
            Ok(())
        );
        assert_eq!(pair.server.key_generation(), 1, "the server followed");
        assert!(pair.server.is_established());
        finish_violation(
            &mut pair,
            &mut next,
            &key_update(wrong),
            Violation::KeyUpdateGeneration,
        );
    }
    // The first packet of the update itself carrying the wrong generation.
    let mut pair = perfect_pair(TransportConfig::default());
    let mut next = Rogue::next_generation(SEED, ROGUE_PN);
    finish_violation(
        &mut pair,
        &mut next,
        &key_update(0),
        Violation::KeyUpdateGeneration,
    );
}

#[test]
fn rogue_empty_packet_cannot_exist() {
    // A packet with no frame would be 29 bytes: below the 30-byte minimum
    // (PROTOCOL.md §1), so it is dropped as a bad length before authentication
    // and the connection survives (Violation::EmptyPacket cannot be reached
    // from the wire). One PADDING byte is the smallest valid packet.
    let mut pair = perfect_pair(TransportConfig::default());
    let mut rogue = rogue_peer();
    let empty = rogue.seal(&[]);
    assert_eq!(empty.len(), MIN_DATAGRAM_BYTES - 1);
    assert_eq!(
        pair.inject(Side::Server, &empty),
        Err(DropReason::BadLength)
    );
    assert_eq!(
        pair.server.stats().dropped,
        DropCounters {
            bad_length: 1,
            ..DropCounters::default()
        }
    );
    assert!(pair.server.is_established());
    let padding = rogue.seal(&[frame_type::PADDING]);
    assert_eq!(padding.len(), MIN_DATAGRAM_BYTES);
    assert_eq!(pair.inject(Side::Server, &padding), Ok(()));
    assert!(pair.server.is_established());
    assert!(events(&mut pair.server).is_empty());
}

// ----- 6. fragment floods ------------------------------------------------------

#[test]
fn reliable_fragment_flood_stays_within_the_byte_window() {
    let config = TransportConfig::default();
    // PROTOCOL.md §6.4 / channel::recv: a reliable channel holds at most
    // max(reliable_window_bytes, channel max) = max(4 MiB, 1 MiB), counting a
    // partial message at the least it can be: (count - 1) * 1107 + 1.
    let reliable_window_bytes = 4usize << 20;
    let budget = reliable_window_bytes.max(config.channels()[0].max_message_bytes);
    assert_eq!(budget, 4 << 20);
    let min_bytes = |count: usize| (count - 1) * FRAG + 1;

    for channel in [channels::RELIABLE_ORDERED, channels::RELIABLE_UNORDERED] {
        // Count 5: 947 first fragments fit, the 948th does not.
        let per_message = min_bytes(5);
        let fit = budget / per_message;
        assert_eq!(fit, 947);
        let mut pair = perfect_pair(config.clone());
        let mut rogue = rogue_peer();
        for id in 1..=fit as u64 {
            let d = rogue.seal(&fragment(channel, id, 0, 5, &[id as u8; FRAG]));
            assert_eq!(pair.inject(Side::Server, &d), Ok(()));
            assert!(pair.server.is_established(), "message {id}");
            assert_eq!(pair.server.reassembly_bytes(), id as usize * per_message);
            assert!(pair.server.reassembly_bytes() <= budget);
        }
        // Duplicates of held fragments cost nothing.
        let d = rogue.seal(&fragment(channel, 1, 0, 5, &[1; FRAG]));
        assert_eq!(pair.inject(Side::Server, &d), Ok(()));
        assert_eq!(pair.server.reassembly_bytes(), fit * per_message);
        assert!(drain(&mut pair.server).is_empty());
        finish_violation(
            &mut pair,
            &mut rogue,
            &fragment(channel, fit as u64 + 1, 0, 5, &[0; FRAG]),
            Violation::ByteWindowExceeded,
        );
        assert_eq!(pair.server.reassembly_bytes(), 0, "released on close");
    }

    // The largest messages: four 1 MiB partial messages fit, not five.
    let mut pair = perfect_pair(config.clone());
    let mut rogue = rogue_peer();
    for id in 0..4u64 {
        let d = rogue.seal(&fragment(0, id, 0, 948, &[0; FRAG]));
        assert_eq!(pair.inject(Side::Server, &d), Ok(()));
    }
    assert_eq!(pair.server.reassembly_bytes(), 4 * min_bytes(948));
    finish_violation(
        &mut pair,
        &mut rogue,
        &fragment(0, 4, 0, 948, &[0; FRAG]),
        Violation::ByteWindowExceeded,
    );

    // Small first fragments: the message-ID window (1024) runs out first.
    let mut pair = perfect_pair(config);
    let mut rogue = rogue_peer();
    for id in 0..1024u64 {
        let d = rogue.seal(&fragment(0, id, 0, 2, &[0; FRAG]));
        assert_eq!(pair.inject(Side::Server, &d), Ok(()));
    }
    assert_eq!(pair.server.reassembly_bytes(), 1024 * min_bytes(2));
    finish_violation(
        &mut pair,
        &mut rogue,
        &fragment(0, 1024, 0, 2, &[0; FRAG]),
        Violation::WindowExceeded,
    );
}

// Regression (fixed): the reliable byte window is charged the *smallest* size a partial
// message can have, (count - 1) * fragment_bytes + 1 (ReliableRecv::on_frame,
// arm `(Slot::Empty, Some(f))`), but when the message completes on an ordered
// channel behind a gap, `self.held_bytes += complete.len()` adds its real size
// (up to count * fragment_bytes) with no budget check. A peer that first sends
// the first fragment of messages 1..=947, 5 fragments each (947 * 4429 =
// 4,194,263 bytes charged, just within max(reliable_window_bytes, channel max)
// = 4 MiB) while message 0 is missing, then completes each of them with
// full-length last fragments (5 * 1107 = 5535 bytes each), makes the server
// hold 947 * 5535 = 5,241,645 bytes, 25% above the window, without any
// violation. (Reassembly::new already allocates count * fragment_bytes for each
// partial message, so that memory is committed even before completion.)
// Fails at the first completion: `assert!(pair.server.reassembly_bytes() <=
// budget)` for message 1 fragment 4, 4,195,369 > 4,194,304; carrying on, the
// peak reached is 5,241,645 with the connection still established (the
// over-full buffer then even makes message 0 itself, the one that would drain
// it, a ByteWindowExceeded violation). Fix: check the budget when a completed
// message is parked (held - min + len), or charge partial messages
// count * fragment_bytes.
#[test]
fn reliable_fragment_flood_completed_behind_a_gap_stays_within_the_window() {
    let budget = 4usize << 20;
    let mut pair = perfect_pair(TransportConfig::default());
    let mut rogue = rogue_peer();
    let ids = 1..=947u64;
    for id in ids.clone() {
        let d = rogue.seal(&fragment(0, id, 0, 5, &[0; FRAG]));
        assert_eq!(pair.inject(Side::Server, &d), Ok(()));
    }
    assert!(pair.server.reassembly_bytes() <= budget);
    for id in ids {
        for index in 1..5 {
            let d = rogue.seal(&fragment(0, id, index, 5, &[0; FRAG]));
            assert_eq!(pair.inject(Side::Server, &d), Ok(()));
            if !pair.server.is_established() {
                // Refusing the excess as a violation is a correct outcome too.
                assert_eq!(
                    events(&mut pair.server),
                    vec![Event::Disconnected(DisconnectReason::ProtocolViolation(
                        Violation::ByteWindowExceeded
                    ))]
                );
                return;
            }
            assert!(
                pair.server.reassembly_bytes() <= budget,
                "message {id} fragment {index}: {} bytes held, window {budget}",
                pair.server.reassembly_bytes()
            );
        }
    }
}

#[test]
fn unreliable_fragment_flood_only_evicts() {
    let config = TransportConfig::default();
    let max_reassemblies = 8;
    // A reassembly buffer is count * fragment_bytes, capped at the channel's
    // maximum message (64 KiB).
    let bound = max_reassemblies * (64 << 10);
    let mut rng = fastrand::Rng::with_seed(SEED);
    let counts: Vec<u64> = (0..3000u64)
        .map(|id| if id % 50 == 0 { 60 } else { rng.u64(2..8) })
        .collect();
    let channel_of = |id: u64| {
        if id % 3 == 0 {
            channels::SEQUENCED
        } else {
            channels::UNRELIABLE
        }
    };
    let mut pair = perfect_pair(config);
    let mut rogue = rogue_peer();
    let mut peak = 0;
    // Thousands of first fragments of different messages, both unreliable
    // channels, assorted counts.
    for (id, &count) in counts.iter().enumerate() {
        let id = id as u64;
        let d = rogue.seal(&fragment(channel_of(id), id, 0, count, &[0; FRAG]));
        assert_eq!(pair.inject(Side::Server, &d), Ok(()));
        peak = peak.max(pair.server.reassembly_bytes());
        assert!(pair.server.reassembly_bytes() <= bound, "message {id}");
        // Exactly the newest 8 partial messages are held.
        let first_kept = (id + 1).saturating_sub(max_reassemblies as u64) as usize;
        // Each buffer is count * fragment_bytes, capped at the channel's 64 KiB.
        let kept: usize = counts[first_kept..=id as usize]
            .iter()
            .map(|&c| (c as usize * FRAG).min(64 << 10))
            .sum();
        assert_eq!(pair.server.reassembly_bytes(), kept, "message {id}");
    }
    assert!(peak > (64 << 10) + 7 * 2 * FRAG);
    assert!(pair.server.is_established());
    assert!(events(&mut pair.server).is_empty());
    assert_eq!(pair.server.stats().dropped, DropCounters::default());
    assert!(drain(&mut pair.server).is_empty());
    // Only the 8 newest are kept: completing the newest delivers it, completing
    // an evicted one does not (its remaining fragments start a new, incomplete
    // reassembly).
    let newest = 2999u64;
    let mut complete = |pair: &mut SimPair, channel: u8, id: u64| {
        let count = counts[id as usize];
        for index in 1..count {
            let len = if index == count - 1 { 5 } else { FRAG };
            let d = rogue.seal(&fragment(channel, id, index, count, &vec![0; len]));
            assert_eq!(pair.inject(Side::Server, &d), Ok(()));
        }
    };
    complete(&mut pair, channel_of(10), 10);
    assert!(drain(&mut pair.server).is_empty(), "message 10 was evicted");
    complete(&mut pair, channel_of(newest), newest);
    let got = drain(&mut pair.server);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].channel, channel_of(newest));
    assert_eq!(
        got[0].data.len(),
        (counts[newest as usize] as usize - 1) * FRAG + 5
    );
    assert!(pair.server.is_established());
}

// Regression (fixed): the unreliable reassembly table is meant to hold at most
// max_unreliable_reassemblies messages of at most the channel's maximum, i.e.
// 8 * 64 KiB = 524,288 bytes, but Reassembly::new allocates (and
// RecvChannels::held_bytes reports) count * fragment_bytes, rounded up to whole
// fragments: a maximum-size 64 KiB message has 60 fragments and takes 60 * 1107
// = 66,420 bytes, so 8 of them hold 531,360 bytes. Reassembly::validate only
// checks the *minimum* size against the channel maximum. Fails at:
// `assert!(pair.server.reassembly_bytes() <= bound)` after message 7 (the 8th
// reassembly): 531,360 > 524,288. Low severity (at most fragment_bytes - 1
// extra per reassembly), but the documented bound does not hold; fix by
// sizing the buffer min(count * fragment_bytes, max_message_bytes) or
// documenting the rounded-up bound.
#[test]
fn unreliable_reassembly_bytes_within_reassemblies_times_channel_max() {
    let bound = 8 * (64 << 10);
    let mut pair = perfect_pair(TransportConfig::default());
    let mut rogue = rogue_peer();
    for id in 0..100u64 {
        let d = rogue.seal(&fragment(channels::UNRELIABLE, id, 0, 60, &[0; FRAG]));
        assert_eq!(pair.inject(Side::Server, &d), Ok(()));
        assert!(
            pair.server.reassembly_bytes() <= bound,
            "{} bytes held after message {id}, bound {bound}",
            pair.server.reassembly_bytes()
        );
    }
}

// ----- 7. receive queue bound --------------------------------------------------

/// One reliable-ordered channel of small messages and small queues, so the
/// receive-queue limit is reached quickly.
fn small_queue_config() -> TransportConfig {
    let mut config = TransportConfig::default();
    config
        .set_channels(vec![
            ChannelConfig::new(ChannelKind::ReliableOrdered).with_max_message_bytes(1000)
        ])
        .set_recv_queue_bytes(4000)
        .set_reliable_window_bytes(2000);
    config
}

const QUEUE_MESSAGES: u32 = 300;
const QUEUE_MESSAGE_BYTES: usize = 100;

/// The client sends `QUEUE_MESSAGES` messages while the server application does
/// not read for `pause`; returns the pair and the most unread bytes the
/// server held (delivered, unread messages plus the reorder buffer).
fn stalled_reader(pause: Duration, seed: u64) -> (SimPair, usize) {
    let link = LinkConfig {
        latency: Duration::from_millis(10),
        jitter: Duration::from_millis(5),
        loss: 0.05,
        ..LinkConfig::default()
    };
    let mut pair = SimPair::new(small_queue_config(), link, seed);
    for i in 0..QUEUE_MESSAGES {
        pair.client
            .send(0, &numbered(i, QUEUE_MESSAGE_BYTES))
            .unwrap();
    }
    let mut peak = 0;
    pair.run_until(pause, |p| {
        let unread = p.server.stats().messages_received as usize * QUEUE_MESSAGE_BYTES;
        peak = peak.max(unread + p.server.reassembly_bytes());
        None::<()>
    });
    (pair, peak)
}

#[test]
fn receive_queue_is_bounded_and_loses_nothing() {
    let (mut pair, peak) = stalled_reader(Duration::from_secs(3), SEED);
    let config = small_queue_config();
    let stats = pair.server.stats();
    assert!(stats.dropped.receive_queue_full > 0, "{stats:?}");
    // Refusal starts once 4000 unread bytes are queued; the packet accepted
    // just below it adds at most one packet of data, and the reorder buffer is
    // bounded by the reliable window.
    let limit = 4000 + config.max_payload_bytes() + 2000;
    assert!(peak <= limit, "held {peak} unread bytes, limit {limit}");
    assert!(peak >= 4000);
    assert!(pair.server.is_established() && pair.client.is_established());

    // The application reads: everything arrives exactly once, in order.
    let mut next = 0u32;
    pair.run_until(Duration::from_secs(30), |p| {
        while let Some(m) = p.server.recv() {
            assert_eq!(
                m.data,
                numbered(next, QUEUE_MESSAGE_BYTES),
                "message {next}"
            );
            next += 1;
        }
        (next == QUEUE_MESSAGES).then_some(())
    })
    .expect("all messages arrive once the application reads");
    pair.advance(Duration::from_secs(2));
    assert!(pair.server.recv().is_none(), "nothing delivered twice");
    assert_eq!(
        pair.server.stats().messages_received,
        u64::from(QUEUE_MESSAGES)
    );
    assert_eq!(pair.client.queued_messages(), 0, "everything acknowledged");
    assert!(pair.server.is_established() && pair.client.is_established());
}

#[test]
fn stalled_reader_longer_than_the_idle_timeout_survives() {
    // Refused packets do not count as signs of life, but the peer's ACK-only
    // packets (answering our keep-alives) do: a reader that stalls for longer
    // than the idle timeout keeps its connection and loses nothing.
    let idle = TransportConfig::default().idle_timeout();
    let (mut pair, peak) = stalled_reader(idle + Duration::from_secs(5), SEED);
    assert!(pair.server.stats().dropped.receive_queue_full > 0);
    assert!(peak <= 4000 + small_queue_config().max_payload_bytes() + 2000);
    assert!(events(&mut pair.server).is_empty());
    assert!(events(&mut pair.client).is_empty());
    assert!(pair.server.is_established() && pair.client.is_established());
    let mut next = 0u32;
    pair.run_until(Duration::from_secs(60), |p| {
        while let Some(m) = p.server.recv() {
            assert_eq!(
                m.data,
                numbered(next, QUEUE_MESSAGE_BYTES),
                "message {next}"
            );
            next += 1;
        }
        (next == QUEUE_MESSAGES).then_some(())
    })
    .expect("all messages arrive once the application reads");
}

// ----- 8. closing ----------------------------------------------------------------

#[test]
fn close_reaches_the_peer_through_heavy_loss() {
    let link = LinkConfig {
        loss: 0.3,
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(5),
        ..LinkConfig::default()
    };
    let (mut closed_by_peer, mut timed_out) = (0, 0);
    for seed in 0..80u64 {
        let mut pair = SimPair::new(TransportConfig::default(), link.clone(), seed);
        pair.client
            .send(channels::RELIABLE_ORDERED, b"hello")
            .unwrap();
        pair.run_until(Duration::from_secs(10), |p| p.server.recv())
            .expect("delivered");
        pair.advance(Duration::from_millis(200));
        // Nothing of the client's in flight, so every later arrival is a close packet.
        pair.run_until(Duration::from_secs(2), |p| {
            p.to_server.is_empty().then_some(())
        })
        .unwrap();
        let code = 4242 + seed as u32;
        let client_sent = pair.datagrams_sent(Side::Client);
        let lost_before = pair.to_server.stats().dropped_loss;
        pair.client.close(code);
        assert!(!pair.client.is_established());
        assert_eq!(
            pair.client.send(0, b"too late"),
            Err(fastnet::SendError::Closed)
        );
        // The closing side drops what arrives.
        let mut stray = Rogue::new(seed, ROGUE_PN).seal(&[frame_type::PING]);
        stray[1..9].copy_from_slice(&pair.client.local_cid().0.to_be_bytes());
        assert_eq!(pair.inject(Side::Client, &stray), Err(DropReason::Closed));
        pair.flush();
        assert_eq!(
            pair.datagrams_sent(Side::Client),
            client_sent + 3,
            "seed {seed}"
        );
        assert!(pair.client.is_closed());
        assert!(pair.client.poll_timeout().is_none());
        let lost = pair.to_server.stats().dropped_loss - lost_before;
        pair.advance(Duration::from_millis(500));
        let server_events = events(&mut pair.server);
        let server_sent = pair.datagrams_sent(Side::Server);
        if lost < 3 {
            closed_by_peer += 1;
            assert_eq!(
                server_events,
                vec![Event::Disconnected(DisconnectReason::ClosedByPeer { code })],
                "seed {seed}"
            );
            assert!(pair.server.is_closed());
            // The close packets after the first reached a closed connection.
            assert_eq!(
                pair.server.stats().dropped.closed,
                3 - lost - 1,
                "seed {seed}"
            );
            // Datagrams arriving now are dropped and counted, whatever they are.
            let closed = pair.server.stats().dropped.closed;
            let mut rogue = Rogue::new(seed, ROGUE_PN);
            assert_eq!(
                pair.inject(Side::Server, &rogue.seal(&[frame_type::PING])),
                Err(DropReason::Closed)
            );
            assert_eq!(
                pair.inject(Side::Server, &[0u8; 3]),
                Err(DropReason::Closed)
            );
            assert_eq!(pair.server.stats().dropped.closed, closed + 2);
            // Neither side ever sends again.
            pair.advance(Duration::from_secs(15));
            assert_eq!(pair.datagrams_sent(Side::Server), server_sent);
        } else {
            timed_out += 1;
            // All three lost: the server learns nothing and times out later.
            assert!(server_events.is_empty(), "seed {seed}");
            pair.advance(Duration::from_secs(15));
            assert_eq!(
                events(&mut pair.server),
                vec![Event::Disconnected(DisconnectReason::Timeout)]
            );
            assert!(pair.server.is_closed());
        }
        assert_eq!(pair.datagrams_sent(Side::Client), client_sent + 3);
        assert!(pair.server.recv().is_none());
    }
    // 30% loss of each of 3 packets loses all of them 2.7% of the time: about
    // 2 of 80 (with these seeds, one: seed 76, which covers the timeout branch).
    assert_eq!(closed_by_peer + timed_out, 80);
    assert!(closed_by_peer >= 75, "{closed_by_peer} of 80");
    assert!(timed_out >= 1, "the all-lost case is exercised");
}

#[test]
fn close_codes_reach_the_peer_on_a_perfect_link() {
    for code in [0, 1, 255, 256, 70_000, u32::MAX] {
        let mut pair = perfect_pair(TransportConfig::default());
        pair.server.close(code);
        pair.flush();
        assert_eq!(pair.datagrams_sent(Side::Server), 3);
        assert_eq!(
            events(&mut pair.client),
            vec![Event::Disconnected(DisconnectReason::ClosedByPeer { code })]
        );
        assert_eq!(pair.client.stats().dropped.closed, 2);
        assert_eq!(
            pair.datagrams_sent(Side::Client),
            0,
            "the peer answers nothing"
        );
        assert!(pair.client.is_closed() && pair.server.is_closed());
    }
}
