//! Per-call cost of the C ABI's hot functions, in this process, against the
//! game-loop `Client` they wrap: an empty `fastnet_client_poll` (nothing
//! arrives) against `Client::service` + `recv_into`, a send followed by an
//! empty poll against `Client::send_now` + `service` + `recv_into`, and the
//! bare boundary (`fastnet_client_state`: handle lookup, lock, `catch_unwind`).
//! Also counts heap allocations per call (there must be none).
//!
//! ```sh
//! cargo run --release -p fastnet-capi --example call_cost
//! ```
//!
//! Absolute times depend on the machine; compare the rows of one run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use fastnet::*;
use fastnet_core::net::{Client, ClientConfig, Server, ServerConfig};
use fastnet_core::session::{DevCertificate, ServerCredentials, ServerTrust};

/// The system allocator, counting allocations.
struct Counting;

thread_local! {
    /// Allocations made by this thread (the server thread's are not counted).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn allocations() -> u64 {
    ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
}

fn count_allocation() {
    let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
}

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` `n` times (after a tenth as warm-up); prints ns and allocations per call.
fn time(label: &str, n: u32, mut f: impl FnMut()) {
    for _ in 0..n / 10 {
        f();
    }
    let allocs = allocations();
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    let per_call = (allocations() - allocs) as f64 / f64::from(n);
    println!("{label:<58} {ns:>8.0} ns  {per_call:.3} allocations");
}

fn last_error() -> String {
    // SAFETY: a NUL-terminated thread-local string.
    unsafe { CStr::from_ptr(fastnet_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Percentiles (p50, p90) of `samples` in µs.
fn percentiles(samples: &mut [u64]) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    (at(0.5), at(0.9))
}

/// One round trip through the game-loop client: `send_now`, then
/// `service` + `recv_into` until the echo; in ns.
fn rust_ping(rust: &mut Client, payload: &[u8], buf: &mut Vec<u8>) -> u64 {
    let t = Instant::now();
    rust.send_now(FASTNET_CHANNEL_UNRELIABLE, payload).unwrap();
    loop {
        rust.service().unwrap();
        if rust.recv_into(buf).is_some() {
            return t.elapsed().as_nanos() as u64;
        }
    }
}

/// One round trip through the C ABI: `fastnet_client_send`, then
/// `fastnet_client_poll` until the echo; in ns.
fn capi_ping(client: FastNetClient, payload: &[u8], ev: &mut FastNetEvent) -> u64 {
    let t = Instant::now();
    // SAFETY: `payload` is readable for its length.
    let r = unsafe {
        fastnet_client_send(
            client,
            FASTNET_CHANNEL_UNRELIABLE,
            payload.as_ptr().cast(),
            payload.len(),
        )
    };
    assert_eq!(r, 0, "{}", last_error());
    loop {
        // SAFETY: `ev` is writable.
        if unsafe { fastnet_client_poll(client, ev) } {
            assert_eq!(ev.r#type, FastNetEventType::FASTNET_EVENT_DATA);
            return t.elapsed().as_nanos() as u64;
        }
    }
}

fn main() {
    // A game-loop server on loopback, spinning on its own thread and echoing.
    let dev = DevCertificate::generate(&["localhost", "127.0.0.1"]).unwrap();
    let credentials = Arc::new(ServerCredentials::from_dev_certificate(&dev).unwrap());
    let lo = "127.0.0.1:0".parse().unwrap();
    let mut server = Server::bind(lo, lo, ServerConfig::new(credentials)).unwrap();
    let tcp = server.tcp_addr().port();
    let stop = Arc::new(AtomicBool::new(false));
    let server_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            while !stop.load(Relaxed) {
                server.service().unwrap();
                while let Some((peer, channel)) = server.recv_into(&mut buf) {
                    let _ = server.send(peer, channel, &buf);
                }
            }
        })
    };
    let pin = CString::new(dev.sha256_hex()).unwrap();

    // SAFETY: zeroed, then filled by config_default.
    let mut ccfg: FastNetClientConfig = unsafe { std::mem::zeroed() };
    // SAFETY: `ccfg` is writable.
    assert_eq!(unsafe { fastnet_client_config_default(&mut ccfg) }, 0);
    ccfg.host = c"127.0.0.1".as_ptr();
    ccfg.port = tcp;
    ccfg.pinned_sha256 = pin.as_ptr();
    for _ in 0..3 {
        let t = Instant::now();
        // SAFETY: `ccfg` is initialized and its strings outlive the call.
        let c = unsafe { fastnet_client_connect_with(&ccfg) };
        let capi = t.elapsed();
        assert!(!c.is_null(), "connect: {}", last_error());
        assert_eq!(fastnet_client_disconnect(c), 0);
        let trust = ServerTrust::pinned_sha256_hex(&dev.sha256_hex()).unwrap();
        let t = Instant::now();
        let c = Client::connect("127.0.0.1", tcp, ClientConfig::with_trust(trust)).unwrap();
        println!(
            "blocking connect: fastnet_client_connect_with {capi:.2?}, Client::connect {:.2?}",
            t.elapsed()
        );
        drop(c);
    }
    // SAFETY: `ccfg` is initialized and its strings outlive the call.
    let client = unsafe { fastnet_client_connect_with(&ccfg) };
    assert!(!client.is_null(), "connect: {}", last_error());

    let trust = ServerTrust::pinned_sha256_hex(&dev.sha256_hex()).unwrap();
    let mut rust = Client::connect("127.0.0.1", tcp, ClientConfig::with_trust(trust)).unwrap();
    let mut buf = Vec::with_capacity(64);

    // SAFETY: an all-zero event is valid (NONE, null pointers).
    let mut ev: FastNetEvent = unsafe { std::mem::zeroed() };
    // Drain CONNECTED.
    // SAFETY: `ev` is writable.
    while unsafe { fastnet_client_poll(client, &mut ev) } {}

    let payload = [7u8; 32];
    for round in 1..=3 {
        println!("round {round}");
        time("Instant::now", 1_000_000, || {
            std::hint::black_box(Instant::now());
        });
        time(
            "fastnet_client_state (boundary + lookup + lock)",
            1_000_000,
            || {
                std::hint::black_box(fastnet_client_state(client));
            },
        );
        time("Rust Client::service + recv_into (empty)", 200_000, || {
            rust.service().unwrap();
            std::hint::black_box(rust.recv_into(&mut buf));
        });
        time("fastnet_client_poll (empty)", 200_000, || {
            // SAFETY: `ev` is writable.
            std::hint::black_box(unsafe { fastnet_client_poll(client, &mut ev) });
        });
        // The same two, interleaved in blocks: the median difference per call.
        let mut diffs = Vec::new();
        for _ in 0..40 {
            let t = Instant::now();
            for _ in 0..5_000 {
                rust.service().unwrap();
                std::hint::black_box(rust.recv_into(&mut buf));
            }
            let rust_ns = t.elapsed().as_nanos() as f64;
            let t = Instant::now();
            for _ in 0..5_000 {
                // SAFETY: `ev` is writable.
                std::hint::black_box(unsafe { fastnet_client_poll(client, &mut ev) });
            }
            diffs.push((t.elapsed().as_nanos() as f64 - rust_ns) / 5_000.0);
        }
        diffs.sort_by(f64::total_cmp);
        println!(
            "empty fastnet_client_poll - (service + recv_into), median of 40 blocks: {:+.0} ns",
            diffs[diffs.len() / 2]
        );
        time(
            "ping-pong: Rust send_now, service + recv_into spin",
            5_000,
            || {
                std::hint::black_box(rust_ping(&mut rust, &payload, &mut buf));
            },
        );
        time(
            "ping-pong: fastnet_client_send, fastnet_client_poll spin",
            5_000,
            || {
                std::hint::black_box(capi_ping(client, &payload, &mut ev));
            },
        );
        // Interleaved blocks, for percentiles under the same conditions.
        let (mut r, mut c, mut diffs) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..40 {
            let mut rb: Vec<u64> = (0..250)
                .map(|_| rust_ping(&mut rust, &payload, &mut buf))
                .collect();
            let mut cb: Vec<u64> = (0..250)
                .map(|_| capi_ping(client, &payload, &mut ev))
                .collect();
            diffs.push((percentiles(&mut cb).0 - percentiles(&mut rb).0) * 1000.0);
            r.extend(rb);
            c.extend(cb);
        }
        let ((r50, r90), (c50, c90)) = (percentiles(&mut r), percentiles(&mut c));
        diffs.sort_by(f64::total_cmp);
        println!(
            "ping-pong p50/p90 µs: Rust {r50:.2}/{r90:.2}, C ABI {c50:.2}/{c90:.2}; \
             C ABI - Rust p50, median of 40 blocks: {:+.0} ns",
            diffs[diffs.len() / 2]
        );
    }
    drop(rust);
    assert_eq!(fastnet_client_disconnect(client), 0);
    stop.store(true, Relaxed);
    server_thread.join().unwrap();
}
