//! FastNet's benchmark harness (issue #11): ping-pong latency against raw UDP,
//! ENet and QUIC (quinn) with client and server in two processes, one-way
//! throughput, handshake time, per-packet AEAD cost, heap allocations per
//! packet, memory per idle connection, and instructions per round trip
//! (callgrind). `main.rs` is the command line;
//! every measurement is a function here so the smoke test can run it with tiny
//! sample counts.
//!
//! Two-process runs: the bench binary re-executes itself as
//! `fastnet-bench serve <kind> <mode>`; the server prints one `READY` line with
//! its ports (and certificate) on stdout, answers `report` on stdin with its
//! counters, and exits when its stdin closes (see [`server`]).

pub mod alloc;
pub mod capi_client;
pub mod charts;
pub mod crypto;
#[cfg(has_enet)]
pub mod enet;
pub mod floor;
pub mod handshake;
pub mod instructions;
pub mod memory;
pub mod quic;
pub mod report;
pub mod rtt;
pub mod server;
pub mod stats;
pub mod sys;
pub mod throughput;

use indicatif::ProgressBar;
use std::path::PathBuf;

/// Whether ENet was found at build time (`libenet-dev`).
pub const HAS_ENET: bool = cfg!(has_enet);

include!("../enet_libraries.rs");

/// Why this binary has no ENet rows, if it has none: ENet was not installed
/// when it was built, or was installed since (a stale build: the report would
/// leave out rows it could have).
pub fn enet_missing() -> Option<&'static str> {
    if HAS_ENET {
        None
    } else if ENET_LIBRARIES
        .iter()
        .any(|l| std::path::Path::new(l).exists())
    {
        Some(
            "not available: libenet-dev was installed after this binary was built \
             (rebuild with ./ci/bench.sh)",
        )
    } else {
        Some("not available: libenet-dev not installed at build time")
    }
}

/// What every measurement needs to know.
#[derive(Clone, Debug)]
pub struct Harness {
    /// The bench binary, re-executed as the server process.
    pub exe: PathBuf,
    /// Round trips before measuring.
    pub warmup: usize,
    /// Round trips measured per run.
    pub rounds: usize,
    /// Interleaved runs of every latency row (the report gives medians).
    pub runs: usize,
    /// Messages per one-way throughput measurement (64-byte case; 1200-byte
    /// messages use a quarter).
    pub throughput_messages: usize,
    /// 1 MiB reliable messages per throughput measurement.
    pub big_messages: usize,
    /// Connects per handshake measurement.
    pub connects: usize,
    /// Idle clients for the memory measurement, in increasing order.
    pub idle_clients: Vec<usize>,
    /// Minimum time per AEAD timing sample.
    pub crypto_sample: std::time::Duration,
    /// Where progress goes (hidden in tests).
    pub progress: ProgressBar,
}

impl Harness {
    /// The full measurement of the issue: 1,000 warm-up then 10,000 measured
    /// round trips, 5 interleaved runs (as `shared/ANCHORS.md` measured).
    pub fn full(exe: PathBuf) -> Self {
        Self {
            exe,
            warmup: 1_000,
            rounds: 10_000,
            runs: 5,
            throughput_messages: 200_000,
            big_messages: 32,
            connects: 200,
            idle_clients: vec![1_000, 5_000],
            crypto_sample: std::time::Duration::from_millis(200),
            progress: ProgressBar::hidden(),
        }
    }

    /// A CI smoke run: same code, few samples.
    pub fn quick(exe: PathBuf) -> Self {
        Self {
            warmup: 100,
            rounds: 1_000,
            runs: 1,
            throughput_messages: 20_000,
            big_messages: 4,
            connects: 20,
            idle_clients: vec![100, 300],
            crypto_sample: std::time::Duration::from_millis(20),
            ..Self::full(exe)
        }
    }

    /// Tiny counts for the test suite: proves the code paths work.
    pub fn tiny(exe: PathBuf) -> Self {
        Self {
            warmup: 10,
            rounds: 50,
            runs: 1,
            throughput_messages: 500,
            big_messages: 1,
            connects: 3,
            idle_clients: vec![5, 10],
            crypto_sample: std::time::Duration::from_millis(1),
            ..Self::full(exe)
        }
    }
}

/// Errors of the harness: anything, with context.
pub type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// An error from a message.
pub fn fail(msg: impl Into<String>) -> Box<dyn std::error::Error + Send + Sync> {
    msg.into().into()
}
