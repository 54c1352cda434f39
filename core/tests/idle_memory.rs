//! Memory per idle connection, server side (the "at most 4 KiB per idle
//! connection beyond the socket buffers" target): a counting global allocator
//! tracks the live heap of this thread while an `Endpoint` takes 200
//! connections, each answering its client's first packet, as the bench's
//! sans-IO memory row does (`bench/src/memory.rs`); and connections that
//! carried traffic must come back under the bound once idle. The clients' own
//! work is not counted. Byte counts, not timings: deterministic.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fastnet::net::Endpoint;
use fastnet::packet::MAX_DATAGRAM_BYTES;
use fastnet::sim::session_keys_pair;
use fastnet::{channels, Connection, TransportConfig};

/// The target: live heap bytes per idle connection, endpoint tables included.
const MAX_BYTES_PER_IDLE_CONNECTION: i64 = 4096;
const CONNECTIONS: usize = 200;

/// Counts the live heap bytes of the thread that switched counting on (the
/// test harness runs other threads whose allocations must not count).
struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
}

fn note(delta: i64) {
    // `try_with`: thread-locals may already be gone while a thread exits.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = LIVE_BYTES.try_with(|n| n.set(n.get() + delta));
        }
    });
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as i64));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as i64 - layout.size() as i64);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f` with this thread's allocations counted (or not).
fn counted<T>(on: bool, f: impl FnOnce() -> T) -> T {
    let was = COUNTING.with(|c| c.replace(on));
    let out = f();
    COUNTING.with(|c| c.set(was));
    out
}

fn live_bytes() -> i64 {
    LIVE_BYTES.with(Cell::get)
}

/// Server-side connections in an endpoint, with their clients (whose work is
/// never counted).
struct Net {
    endpoint: Endpoint,
    clients: Vec<Connection>,
    now: Instant,
    buf: Vec<u8>,
    /// Client-to-server datagrams so far, for the deterministic losses.
    uplink: u64,
}

fn client_addr(i: usize) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(127, 1, 0, i as u8), 40_000 + i as u16))
}

impl Net {
    /// `n` connections, each having answered its client's first packet, as
    /// the bench's sans-IO row makes them. Counts the server side only.
    fn new(n: usize) -> Self {
        let config = Arc::new(TransportConfig::default());
        let now = Instant::now();
        let mut clients = Vec::with_capacity(n);
        let mut server_keys = Vec::with_capacity(n);
        for i in 0..n {
            let (ck, sk) = session_keys_pair(i as u64 + 1);
            clients.push(Connection::new(config.clone(), ck, now).unwrap());
            server_keys.push(sk);
        }
        let mut net = Net {
            endpoint: counted(true, || Endpoint::new(config)),
            clients,
            now,
            buf: vec![0u8; MAX_DATAGRAM_BYTES],
            uplink: 0,
        };
        for (i, keys) in server_keys.into_iter().enumerate() {
            counted(true, || net.endpoint.insert(keys, None, now).unwrap());

            net.clients[i].ping();
            let len = net.clients[i].poll_transmit(now, &mut net.buf).unwrap();
            counted(true, || {
                let accepted =
                    net.endpoint
                        .handle_datagram(now, client_addr(i), &mut net.buf[..len]);
                assert!(accepted.is_some());
                while net.endpoint.poll_event().is_some() {}
            });
            assert!(net.downlink() > 0, "the first packet is answered at once");
        }
        assert_eq!(net.endpoint.peer_count(), n);
        net
    }

    /// Server datagrams to their clients; returns how many.
    fn downlink(&mut self) -> usize {
        let mut n = 0;
        while let Some((to, len)) = counted(true, || {
            self.endpoint.poll_transmit(self.now, &mut self.buf)
        }) {
            let i = usize::from(to.port() - 40_000);
            assert_eq!(to, client_addr(i));
            let _ = self.clients[i].handle_datagram(self.now, &mut self.buf[..len]);
            while self.clients[i].recv().is_some() {}
            n += 1;
        }
        n
    }

    /// Moves datagrams both ways until quiet, dropping every `loss`th one from
    /// the clients (0: none). The server echoes every message it receives.
    fn pump(&mut self, loss: u64) {
        loop {
            let mut moved = 0;
            for i in 0..self.clients.len() {
                while let Some(len) = self.clients[i].poll_transmit(self.now, &mut self.buf) {
                    self.uplink += 1;
                    moved += 1;
                    if loss > 0 && self.uplink % loss == 0 {
                        continue;
                    }
                    let (now, buf) = (self.now, &mut self.buf[..len]);
                    counted(true, || {
                        self.endpoint.handle_datagram(now, client_addr(i), buf)
                    });
                }
            }
            counted(true, || {
                let mut message = Vec::new();
                while let Some((peer, channel)) = self.endpoint.recv_into(&mut message) {
                    // A full send queue only drops the echo.
                    let _ = self.endpoint.send(peer, channel, &message);
                }
                while self.endpoint.poll_event().is_some() {}
            });
            moved += self.downlink();
            if moved == 0 {
                break;
            }
        }
    }

    /// Advances the clock by `dt`, runs the timers due on both sides, pumps.
    fn tick(&mut self, dt: Duration, loss: u64) {
        self.now += dt;
        let now = self.now;
        for c in &mut self.clients {
            if c.poll_timeout().is_some_and(|t| t <= now) {
                c.handle_timeout(now);
            }
        }
        counted(true, || self.endpoint.handle_timeout(now));
        self.pump(loss);
    }
}

fn per_connection(before: i64, n: usize) -> i64 {
    (live_bytes() - before) / n as i64
}

#[test]
fn idle_connection_holds_at_most_4_kib() {
    let before = live_bytes();
    let net = Net::new(CONNECTIONS);
    let bytes = per_connection(before, CONNECTIONS);
    eprintln!("live heap per idle connection: {bytes} B");
    assert!(
        bytes <= MAX_BYTES_PER_IDLE_CONNECTION,
        "{bytes} B per idle connection (target {MAX_BYTES_PER_IDLE_CONNECTION})"
    );
    drop(net);
}

#[test]
fn a_connection_gone_idle_after_traffic_gives_its_memory_back() {
    const N: usize = 20;
    let before = live_bytes();
    let mut net = Net::new(N);
    // Traffic on every channel, small and fragmented messages, over a lossy
    // uplink (the server's acknowledgements need more than a few ranges);
    // the server echoes everything.
    for round in 0..20 {
        for c in &mut net.clients {
            for k in 0..60u32 {
                let channel = [
                    channels::RELIABLE_ORDERED,
                    channels::UNRELIABLE,
                    channels::RELIABLE_UNORDERED,
                    channels::SEQUENCED,
                ][(k % 4) as usize];
                c.send(channel, &[k as u8; 300]).unwrap();
            }
            c.send(channels::RELIABLE_ORDERED, &[round as u8; 5000])
                .unwrap();
        }
        net.pump(7);
        net.tick(Duration::from_millis(30), 7);
    }
    // Let retransmissions finish.
    for _ in 0..40 {
        net.tick(Duration::from_millis(50), 0);
    }
    let busy = per_connection(before, N);
    eprintln!("live heap per connection right after traffic: {busy} B");
    // Idle: keep-alives only, for longer than the release delay.
    for _ in 0..8 {
        net.tick(Duration::from_secs(1), 0);
    }
    assert_eq!(net.endpoint.peer_count(), N);
    assert!(net.endpoint.peers().all(|p| net.endpoint.is_connected(p)));
    let idle = per_connection(before, N);
    eprintln!("live heap per connection once idle: {idle} B");
    assert!(idle < busy, "{idle} B idle, {busy} B busy");
    assert!(
        idle <= MAX_BYTES_PER_IDLE_CONNECTION,
        "{idle} B per idle connection (target {MAX_BYTES_PER_IDLE_CONNECTION})"
    );
}

#[test]
fn connection_inline_size_is_sensible() {
    let size = std::mem::size_of::<Connection>();
    // Two expanded packet keys (current send and receive, 560 bytes each with
    // ring), the 256-byte replay window and the counters: well under 4 KiB.
    assert!(size <= 3 * 1024, "size_of::<Connection>() = {size}");
}
