//! Zero heap allocations per packet in steady state (issue #8, item 8): a
//! counting global allocator watches the send, transmit, receive and deliver
//! path of two established connections after a warm-up.

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
