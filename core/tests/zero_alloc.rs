//! Zero heap allocations per packet in steady state (issue #8, item 8): a
//! counting global allocator watches the send, transmit, receive and deliver
//! path of two established connections after a warm-up, in the sans-IO core
//! and through the Tokio driver's `SecureSocket::poll_into`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fastnet::sim::session_keys_pair;
use fastnet::{channels, ChannelId, Connection, TransportConfig};

/// Counts allocations made by the thread that switched counting on (the test
/// harness runs other threads whose allocations must not count).
struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: thread-locals may already be gone while a thread exits.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations made by `f` on this thread.
fn allocations_in(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(|n| n.get())
}

/// Two connected endpoints passing datagrams directly, with a manual clock.
struct Link {
    a: Connection,
    b: Connection,
    now: Instant,
    wire: Vec<u8>,
    inbox: Vec<u8>,
    datagrams: u64,
}

impl Link {
    fn new() -> Self {
        let (ka, kb) = session_keys_pair(99);
        let config = Arc::new(TransportConfig::default());
        let now = Instant::now();
        Self {
            a: Connection::new(config.clone(), ka, now).unwrap(),
            b: Connection::new(config, kb, now).unwrap(),
            now,
            wire: vec![0; 1500],
            inbox: Vec::with_capacity(1500),
            datagrams: 0,
        }
    }

    /// Moves every pending datagram across, both ways, until quiet.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(n) = self.a.poll_transmit(self.now, &mut self.wire) {
                self.b
                    .handle_datagram(self.now, &mut self.wire[..n])
                    .unwrap();
                self.datagrams += 1;
                moved = true;
            }
            while let Some(n) = self.b.poll_transmit(self.now, &mut self.wire) {
                self.a
                    .handle_datagram(self.now, &mut self.wire[..n])
                    .unwrap();
                self.datagrams += 1;
                moved = true;
            }
            if !moved {
                break;
            }
        }
    }

    fn tick(&mut self, dt: Duration) {
        self.now += dt;
        for c in [&mut self.a, &mut self.b] {
            if c.poll_timeout().is_some_and(|t| t <= self.now) {
                c.handle_timeout(self.now);
            }
        }
    }

    /// One echo round trip on `channel`.
    fn echo(&mut self, channel: ChannelId, payload: &[u8]) {
        self.a.send(channel, payload).unwrap();
        self.pump();
        assert_eq!(self.b.recv_into(&mut self.inbox), Some(channel));
        self.b.send(channel, &self.inbox).unwrap();
        self.pump();
        assert_eq!(self.a.recv_into(&mut self.inbox), Some(channel));
        assert_eq!(self.inbox, payload);
        self.tick(Duration::from_micros(50));
    }

    /// A one-way burst of small messages, acknowledged by ACK-only packets.
    fn burst(&mut self, channel: ChannelId, payload: &[u8]) {
        for _ in 0..20 {
            self.a.send(channel, payload).unwrap();
        }
        self.pump();
        for _ in 0..20 {
            assert_eq!(self.b.recv_into(&mut self.inbox), Some(channel));
        }
        self.tick(Duration::from_millis(30)); // past the ACK delay
        self.pump();
    }
}

#[test]
fn echo_round_trips_allocate_nothing_in_steady_state() {
    let payload = [7u8; 64];
    for channel in [
        channels::RELIABLE_ORDERED,
        channels::UNRELIABLE,
        channels::RELIABLE_UNORDERED,
        channels::SEQUENCED,
    ] {
        let mut link = Link::new();
        for _ in 0..2_000 {
            link.echo(channel, &payload);
        }
        let before = link.datagrams;
        let n = allocations_in(|| {
            for _ in 0..10_000 {
                link.echo(channel, &payload);
            }
        });
        assert_eq!(
            link.datagrams - before,
            20_000,
            "two datagrams per round trip"
        );
        assert_eq!(
            n, 0,
            "channel {channel}: {n} allocations in 10,000 round trips"
        );
    }
}

#[test]
fn one_way_bursts_with_ack_only_packets_allocate_nothing() {
    let payload = [3u8; 200];
    let mut link = Link::new();
    for _ in 0..500 {
        link.burst(channels::RELIABLE_ORDERED, &payload);
        link.burst(channels::UNRELIABLE, &payload);
    }
    let n = allocations_in(|| {
        for _ in 0..2_000 {
            link.burst(channels::RELIABLE_ORDERED, &payload);
            link.burst(channels::UNRELIABLE, &payload);
        }
    });
    assert!(link.b.stats().ack_only_packets_sent > 2_000);
    assert_eq!(n, 0, "{n} allocations in 4,000 bursts");
}

#[test]
fn key_updates_allocate_nothing() {
    let payload = [1u8; 64];
    let mut link = Link::new();
    let rounds = |link: &mut Link, count: usize| {
        for round in 0..count {
            if round % 20 == 0 {
                // Previous keys are erased 3 PTO after an update: let time pass.
                link.tick(Duration::from_secs(1));
                assert!(link.a.update_keys(link.now));
            }
            link.echo(channels::RELIABLE_ORDERED, &payload);
        }
    };
    for _ in 0..100 {
        link.echo(channels::RELIABLE_ORDERED, &payload); // confirms the first keys
    }
    rounds(&mut link, 2_000); // warm-up, 100 updates
    let n = allocations_in(|| rounds(&mut link, 200));
    assert_eq!(link.a.key_generation(), 110);
    assert_eq!(link.b.key_generation(), 110);
    assert_eq!(n, 0, "{n} allocations across 10 key updates");
}

/// The Tokio driver (`SecureSocket`) on a current-thread runtime: a server and
/// a client on loopback, an echo task on the server, ping-pongs through
/// `poll_into` and `send`. The runtime, its I/O and timer drivers and both
/// ends all run on the test's thread, so every allocation of the loop counts.
#[cfg(feature = "tokio")]
mod tokio_driver {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::Arc;
    use std::time::Duration;

    use fastnet::net::{
        ClientConfig, LinkSimulation, PeerId, SecureEvent, SecureSocket, ServerConfig,
    };
    use fastnet::session::{DevCertificate, ServerCredentials, ServerTrust};
    use fastnet::{channels, ChannelId, LinkConfig};

    use super::{ALLOCATIONS, COUNTING};

    /// Round trips measured per channel.
    const ROUND_TRIPS: usize = 3_000;
    /// Round trips before measuring (pools, vectors and the runtime warm up).
    const WARM_UP_ROUND_TRIPS: usize = 500;
    /// The client's only peer.
    const SERVER: PeerId = 1;
    /// Packets each end loses (and recovers from) during the warm-up.
    const LOSSES: u64 = 10;

    fn loopback() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    }

    /// How the client receives.
    #[derive(Clone, Copy, PartialEq)]
    enum Api {
        /// `poll_into` with one vector throughout.
        PollInto,
        /// `poll`, a new vector each call (the control: it must allocate).
        Poll,
    }

    /// `count` echo round trips of `payload` on `channel`; `events` is the
    /// client's event vector.
    async fn round_trips(
        client: &SecureSocket,
        api: Api,
        events: &mut Vec<SecureEvent>,
        channel: ChannelId,
        payload: &[u8],
        count: usize,
    ) {
        for _ in 0..count {
            client.send(SERVER, channel, payload).await.expect("send");
            'echo: loop {
                let within = Duration::from_secs(5);
                if api == Api::PollInto {
                    let poll = tokio::time::timeout(within, client.poll_into(events));
                    poll.await.expect("an echo within 5 s").expect("poll");
                } else {
                    let poll = tokio::time::timeout(within, client.poll());
                    *events = poll.await.expect("an echo within 5 s").expect("poll");
                }
                for event in events.iter() {
                    if let SecureEvent::Data(peer, ch, data) = event {
                        assert_eq!((*peer, *ch), (SERVER, channel));
                        assert_eq!(data.as_slice(), payload);
                        break 'echo;
                    }
                }
            }
        }
    }

    #[test]
    fn ping_pong_through_poll_into_allocates_nothing_in_steady_state() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let dev = DevCertificate::generate(&["localhost", "127.0.0.1"]).expect("certificate");
            let credentials = ServerCredentials::from_dev_certificate(&dev).expect("credentials");
            let server = SecureSocket::bind_server_with(
                loopback(),
                loopback(),
                ServerConfig::new(Arc::new(credentials)),
            )
            .await
            .expect("server binds");
            let tcp = server.local_tcp_addr().expect("TCP address");
            let echo = server.clone();
            let echo_task = tokio::spawn(async move {
                let mut events = Vec::new();
                loop {
                    echo.poll_into(&mut events).await?;
                    for event in &events {
                        if let SecureEvent::Data(peer, channel, data) = event {
                            echo.send(*peer, *channel, data).await?;
                        }
                    }
                }
                #[allow(unreachable_code)]
                std::io::Result::Ok(())
            });
            let trust = ServerTrust::PinnedSha256(dev.sha256);
            let client = SecureSocket::connect_with(tcp, ClientConfig::with_trust(trust))
                .await
                .expect("client connects");
            let mut events = Vec::new();
            // The first losses grow a channel's retransmission queue and its
            // pool of message buffers past what loss-free round trips need;
            // that is a high-water mark, not a cost per packet. On a loaded
            // machine a stall longer than the probe timeout makes the measured
            // window declare a packet lost, so warm loss recovery up too: 15 %
            // loss each way until both ends lost and resent packets, then a
            // clean link again.
            let lossy = LinkConfig {
                loss: 0.15,
                ..LinkConfig::default()
            };
            client
                .set_link_simulation(&LinkSimulation {
                    outgoing: Some(lossy.clone()),
                    incoming: Some(lossy),
                })
                .expect("lossy link");
            let client_peer = server.peers()[0];
            let payload = [1u8; 64];
            while client.peer_stats(SERVER).expect("server peer").packets_lost < LOSSES
                || server
                    .peer_stats(client_peer)
                    .expect("client peer")
                    .packets_lost
                    < LOSSES
            {
                let channel = channels::RELIABLE_ORDERED;
                round_trips(&client, Api::PollInto, &mut events, channel, &payload, 10).await;
            }
            client
                .set_link_simulation(&LinkSimulation::default())
                .expect("clean link");
            // Allocations and datagrams of `count` round trips after a warm-up.
            let mut measure = async |api: Api, channel: ChannelId, count: usize| {
                let payload = [channel.wrapping_add(7); 64];
                let events = &mut events;
                round_trips(&client, api, events, channel, &payload, WARM_UP_ROUND_TRIPS).await;
                let before = client.peer_stats(SERVER).expect("server peer");
                ALLOCATIONS.with(|n| n.set(0));
                COUNTING.with(|c| c.set(true));
                round_trips(&client, api, events, channel, &payload, count).await;
                COUNTING.with(|c| c.set(false));
                let after = client.peer_stats(SERVER).expect("server peer");
                let datagrams = (after.packets_sent + after.packets_received)
                    - (before.packets_sent + before.packets_received);
                assert!(
                    datagrams >= 2 * count as u64,
                    "channel {channel}: {datagrams} datagrams"
                );
                (ALLOCATIONS.with(|n| n.get()), datagrams)
            };
            for channel in [channels::UNRELIABLE, channels::RELIABLE_ORDERED] {
                let (allocations, datagrams) = measure(Api::PollInto, channel, ROUND_TRIPS).await;
                assert_eq!(
                    allocations, 0,
                    "channel {channel}: {allocations} allocations in {ROUND_TRIPS} round trips \
                     ({datagrams} datagrams)"
                );
            }
            // The control: the counter sees the loop. `poll` allocates its
            // vector and each message's buffer.
            let control = 200;
            let (allocations, _) = measure(Api::Poll, channels::UNRELIABLE, control).await;
            assert!(
                allocations >= 2 * control as u64,
                "poll(): only {allocations} allocations in {control} round trips"
            );
            echo_task.abort();
        });
    }
}
