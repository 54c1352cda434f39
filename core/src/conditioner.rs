//! Link conditioner: simulates a bad network for one direction of a link.
//!
//! A [`LinkConditioner`] sits between a sender and a receiver and decides, for
//! every datagram pushed into it, whether the datagram is lost, duplicated,
//! delayed (fixed latency plus uniform jitter), held back long enough to be
//! overtaken by later datagrams (reordering), or queued behind earlier
//! datagrams on a bandwidth-limited link (with tail drop when the queue is
//! full). The receiver side then polls datagrams whose delivery time has come.
//! It is used by the deterministic test network and by applications over real
//! sockets to rehearse bad networks, in the spirit of the fake loss and lag
//! settings of Valve's GameNetworkingSockets.
//!
//! The conditioner is sans-IO like the rest of the protocol core: it never
//! reads a clock, the caller passes the current [`Instant`] to every call, and
//! all randomness comes from a seeded generator, so the same seed, config and
//! sequence of calls always produce the same outcome. Memory is bounded: the
//! payload held at any time never exceeds [`LinkConfig::queue_limit_bytes`],
//! and datagram buffers are recycled, so there is no per-datagram allocation
//! in steady state.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::time::{Duration, Instant};

/// Default [`LinkConfig::queue_limit_bytes`]: 1 MiB of pending payload.
pub const DEFAULT_QUEUE_LIMIT_BYTES: usize = 1024 * 1024;

/// Largest accepted value of `latency + jitter + reorder_delay`, in seconds
/// (one hour). Anything longer is certainly a configuration mistake.
pub const MAX_TOTAL_DELAY_SECS: u64 = 3600;

/// Minimum number of bytes a pending datagram is charged against
/// [`LinkConfig::queue_limit_bytes`] (the size of an IPv4 + UDP header,
/// rounded up). This bounds the number of pending datagrams, and so the
/// bookkeeping memory, even for empty or tiny datagrams.
pub const MIN_QUEUE_CHARGE_BYTES: usize = 32;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Errors reported by the link conditioner.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConditionerError {
    /// A probability field is not a finite number in `0.0..=1.0`.
    #[error("link config `{field}` must be a probability in 0..=1, got {value}")]
    InvalidProbability {
        /// Name of the offending [`LinkConfig`] field.
        field: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// `bandwidth_bytes_per_sec` is `Some(0)`; use `None` for an unlimited link.
    #[error("link config `bandwidth_bytes_per_sec` must be non-zero (use None for unlimited)")]
    ZeroBandwidth,
    /// `latency + jitter + reorder_delay` exceeds [`MAX_TOTAL_DELAY_SECS`].
    #[error("link config total delay (latency + jitter + reorder_delay) exceeds {MAX_TOTAL_DELAY_SECS} s")]
    DelayTooLarge,
}

/// Impairments applied to one direction of a link.
///
/// The [`Default`] is a perfect link: no loss, no delay, no duplication, no
/// bandwidth cap, and a queue limit of [`DEFAULT_QUEUE_LIMIT_BYTES`].
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Probability (`0.0..=1.0`) that a pushed datagram is lost.
    pub loss: f64,
    /// Fixed one-way delay added to every datagram.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` for every datagram copy.
    /// Jitter larger than the spacing between datagrams reorders them.
    pub jitter: Duration,
    /// Probability (`0.0..=1.0`) that a datagram copy gets an extra delay of
    /// [`reorder_delay`](Self::reorder_delay), so later datagrams overtake it.
    pub reorder: f64,
    /// Extra delay applied to datagrams selected by [`reorder`](Self::reorder).
    pub reorder_delay: Duration,
    /// Probability (`0.0..=1.0`) that a datagram is delivered twice. The copy
    /// goes through the link on its own (own queueing, jitter and reorder
    /// decision).
    pub duplicate: f64,
    /// Serialization rate of the link in bytes per second (payload bytes
    /// only), or `None` for unlimited. With a cap, datagrams queue behind each
    /// other: a datagram of `n` bytes occupies the link for `n / rate`
    /// seconds, then incurs latency, jitter and reordering.
    pub bandwidth_bytes_per_sec: Option<u64>,
    /// Maximum payload, in bytes, held by the conditioner at any time (queued
    /// for serialization plus in flight). A datagram that would exceed it is
    /// dropped (tail drop) and counted in
    /// [`ConditionerStats::dropped_queue`]. Each datagram is charged at least
    /// [`MIN_QUEUE_CHARGE_BYTES`]. Applies with or without a bandwidth cap.
    pub queue_limit_bytes: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            loss: 0.0,
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            duplicate: 0.0,
            bandwidth_bytes_per_sec: None,
            queue_limit_bytes: DEFAULT_QUEUE_LIMIT_BYTES,
        }
    }
}

impl LinkConfig {
    /// A perfect link; same as [`LinkConfig::default`].
    pub fn perfect() -> Self {
        Self::default()
    }

    /// Wired LAN: 1 ms latency, 0.2 ms jitter, no loss, no reordering, no
    /// duplication, unlimited bandwidth, 1 MiB queue.
    pub fn lan() -> Self {
        Self {
            latency: Duration::from_millis(1),
            jitter: Duration::from_micros(200),
            ..Self::default()
        }
    }

    /// Home Wi-Fi to a nearby server: 15 ms latency, 10 ms jitter, 1% loss,
    /// 0.5% reordering by an extra 10 ms, no duplication, unlimited
    /// bandwidth, 1 MiB queue.
    pub fn wifi() -> Self {
        Self {
            loss: 0.01,
            latency: Duration::from_millis(15),
            jitter: Duration::from_millis(10),
            reorder: 0.005,
            reorder_delay: Duration::from_millis(10),
            ..Self::default()
        }
    }

    /// Mobile (4G-like) link: 80 ms latency, 30 ms jitter, 3% loss, 2%
    /// reordering by an extra 40 ms, 0.5% duplication, 1,000,000 B/s
    /// (8 Mbit/s) bandwidth, 256 KiB queue.
    pub fn mobile() -> Self {
        Self {
            loss: 0.03,
            latency: Duration::from_millis(80),
            jitter: Duration::from_millis(30),
            reorder: 0.02,
            reorder_delay: Duration::from_millis(40),
            duplicate: 0.005,
            bandwidth_bytes_per_sec: Some(1_000_000),
            queue_limit_bytes: 256 * 1024,
        }
    }

    /// A terrible link for stress tests: 250 ms latency, 100 ms jitter, 10%
    /// loss, 5% reordering by an extra 100 ms, 2% duplication, 32,000 B/s
    /// (256 kbit/s) bandwidth, 64 KiB queue.
    pub fn terrible() -> Self {
        Self {
            loss: 0.10,
            latency: Duration::from_millis(250),
            jitter: Duration::from_millis(100),
            reorder: 0.05,
            reorder_delay: Duration::from_millis(100),
            duplicate: 0.02,
            bandwidth_bytes_per_sec: Some(32_000),
            queue_limit_bytes: 64 * 1024,
        }
    }

    /// Checks that the config is usable: `loss`, `reorder` and `duplicate`
    /// are finite and in `0.0..=1.0`, the bandwidth is not `Some(0)`, and
    /// `latency + jitter + reorder_delay` is at most [`MAX_TOTAL_DELAY_SECS`].
    pub fn validate(&self) -> Result<(), ConditionerError> {
        for (field, value) in [
            ("loss", self.loss),
            ("reorder", self.reorder),
            ("duplicate", self.duplicate),
        ] {
            if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
                return Err(ConditionerError::InvalidProbability { field, value });
            }
        }
        if self.bandwidth_bytes_per_sec == Some(0) {
            return Err(ConditionerError::ZeroBandwidth);
        }
        let total = self
            .latency
            .checked_add(self.jitter)
            .and_then(|d| d.checked_add(self.reorder_delay));
        match total {
            Some(d) if d <= Duration::from_secs(MAX_TOTAL_DELAY_SECS) => Ok(()),
            _ => Err(ConditionerError::DelayTooLarge),
        }
    }
}

/// Counters kept by a [`LinkConditioner`] since it was created.
///
/// Every pushed datagram that is not lost yields one copy, or two when
/// duplicated; each copy is eventually dropped by the queue, delivered, or
/// still pending: `pushed - dropped_loss + duplicated == dropped_queue +
/// delivered + len()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConditionerStats {
    /// Datagrams passed to [`LinkConditioner::push`].
    pub pushed: u64,
    /// Datagrams dropped by random loss.
    pub dropped_loss: u64,
    /// Datagram copies dropped because the queue limit was reached (tail drop).
    pub dropped_queue: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Datagram copies that received the extra reorder delay.
    pub reordered: u64,
    /// Datagram copies handed out by [`LinkConditioner::poll`].
    pub delivered: u64,
}

/// A pending datagram copy, ordered so that the `BinaryHeap` (a max-heap)
/// yields the earliest delivery time first and, on ties, the lowest sequence
/// number (push order).
struct Pending {
    deliver_at: Instant,
    seq: u64,
    payload: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .deliver_at
            .cmp(&self.deliver_at)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Simulates one direction of an impaired link (loss, latency, jitter,
/// reordering, duplication, bandwidth cap with tail drop).
///
/// Push datagrams with [`push`](Self::push) as they are sent and collect them
/// with [`poll`](Self::poll) once their delivery time has come;
/// [`next_delivery`](Self::next_delivery) tells when to poll next. The outcome
/// is fully determined by the seed, the config and the sequence of calls.
pub struct LinkConditioner {
    config: LinkConfig,
    rng: fastrand::Rng,
    /// Pending datagram copies, earliest delivery first.
    queue: BinaryHeap<Pending>,
    /// Recycled payload buffers.
    pool: Vec<Vec<u8>>,
    /// Sum of the capacities of all buffers owned (pending and pooled).
    buffer_capacity_bytes: usize,
    /// Bytes charged against the queue limit by pending copies.
    charged_bytes: usize,
    /// Payload bytes of pending copies.
    payload_bytes: usize,
    /// When the bandwidth-limited link finishes serializing its backlog.
    link_free_at: Option<Instant>,
    next_seq: u64,
    stats: ConditionerStats,
}

impl fmt::Debug for LinkConditioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkConditioner")
            .field("config", &self.config)
            .field("pending", &self.queue.len())
            .field("queued_bytes", &self.payload_bytes)
            .field("next_delivery", &self.next_delivery())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl LinkConditioner {
    /// Creates a conditioner with the given impairments and random seed.
    ///
    /// Fails if [`LinkConfig::validate`] rejects the config.
    pub fn new(config: LinkConfig, seed: u64) -> Result<Self, ConditionerError> {
        config.validate()?;
        Ok(Self {
            config,
            rng: fastrand::Rng::with_seed(seed),
            queue: BinaryHeap::new(),
            pool: Vec::new(),
            buffer_capacity_bytes: 0,
            charged_bytes: 0,
            payload_bytes: 0,
            link_free_at: None,
            next_seq: 0,
            stats: ConditionerStats::default(),
        })
    }

    /// Replaces the impairments; fails (keeping the old config) if
    /// [`LinkConfig::validate`] rejects the new one.
    ///
    /// Datagrams already pending keep their delivery times, and a lowered
    /// queue limit only affects later pushes; the serialization backlog of a
    /// bandwidth-limited link is kept.
    pub fn set_config(&mut self, config: LinkConfig) -> Result<(), ConditionerError> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// The current impairments.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Counters since creation.
    pub fn stats(&self) -> &ConditionerStats {
        &self.stats
    }

    /// Number of pending datagram copies (including those already due).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no datagram is pending.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Payload bytes of all pending datagram copies.
    pub fn queued_bytes(&self) -> usize {
        self.payload_bytes
    }

    /// Delivery time of the earliest pending datagram, if any. It may be in
    /// the past, in which case [`poll`](Self::poll) returns it right away.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.queue.peek().map(|p| p.deliver_at)
    }

    /// Sends `datagram` through the simulated link at time `now`.
    ///
    /// Decides loss, duplication and, for each copy, queueing, delay and
    /// reordering, then stores the copies until [`poll`](Self::poll) hands
    /// them out. With the default config the datagram is available from
    /// `poll` at the same `now`.
    pub fn push(&mut self, now: Instant, datagram: &[u8]) {
        self.stats.pushed += 1;
        if self.rng.f64() < self.config.loss {
            self.stats.dropped_loss += 1;
            return;
        }
        let copies = if self.rng.f64() < self.config.duplicate {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            self.enqueue_copy(now, datagram);
        }
    }

    /// Hands out the next datagram whose delivery time is at or before `now`
    /// (earliest delivery time first, ties in push order), copying it into
    /// `out` and returning its length, or `None` if nothing is due.
    ///
    /// If `out` is shorter than the datagram, only the first `out.len()`
    /// bytes are copied, the returned length is `out.len()`, and the rest of
    /// the datagram is discarded (like a UDP receive into a short buffer).
    pub fn poll(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if self.queue.peek()?.deliver_at > now {
            return None;
        }
        let pending = self.queue.pop()?;
        let n = pending.payload.len().min(out.len());
        out[..n].copy_from_slice(&pending.payload[..n]);
        self.stats.delivered += 1;
        self.release(pending.payload);
        Some(n)
    }

    /// Queues one copy of `datagram`, or tail-drops it if the queue is full.
    fn enqueue_copy(&mut self, now: Instant, datagram: &[u8]) {
        let charge = datagram.len().max(MIN_QUEUE_CHARGE_BYTES);
        let fits = self
            .charged_bytes
            .checked_add(charge)
            .is_some_and(|total| total <= self.config.queue_limit_bytes);
        if !fits {
            self.stats.dropped_queue += 1;
            return;
        }

        // Serialization on a bandwidth-limited link: wait for the backlog,
        // then occupy the link for len / rate seconds.
        let (departs_at, link_free_at) = match self.config.bandwidth_bytes_per_sec {
            Some(rate) => {
                let start = match self.link_free_at {
                    Some(free) if free > now => free,
                    _ => now,
                };
                let tx_nanos = datagram.len() as u128 * NANOS_PER_SEC / u128::from(rate.max(1));
                let tx = Duration::from_nanos(u64::try_from(tx_nanos).unwrap_or(u64::MAX));
                match start.checked_add(tx) {
                    Some(done) => (done, Some(done)),
                    None => {
                        self.stats.dropped_queue += 1;
                        return;
                    }
                }
            }
            None => (now, self.link_free_at),
        };

        let mut delay = self.config.latency;
        if !self.config.jitter.is_zero() {
            let max_nanos = u64::try_from(self.config.jitter.as_nanos()).unwrap_or(u64::MAX);
            delay += Duration::from_nanos(self.rng.u64(0..=max_nanos));
        }
        if self.config.reorder > 0.0 && self.rng.f64() < self.config.reorder {
            self.stats.reordered += 1;
            delay += self.config.reorder_delay;
        }
        let Some(deliver_at) = departs_at.checked_add(delay) else {
            self.stats.dropped_queue += 1;
            return;
        };

        self.link_free_at = link_free_at;
        let payload = self.acquire(datagram);
        self.charged_bytes += charge;
        self.payload_bytes += datagram.len();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Pending {
            deliver_at,
            seq,
            payload,
        });
    }

    /// Takes a buffer from the pool (or allocates one) holding `datagram`.
    fn acquire(&mut self, datagram: &[u8]) -> Vec<u8> {
        let mut buf = self.pool.pop().unwrap_or_default();
        let old_capacity = buf.capacity();
        buf.clear();
        buf.reserve_exact(datagram.len());
        buf.extend_from_slice(datagram);
        self.buffer_capacity_bytes += buf.capacity() - old_capacity;
        buf
    }

    /// Returns a delivered copy's buffer to the pool, or frees it when the
    /// buffers owned exceed about twice the queue limit.
    fn release(&mut self, buf: Vec<u8>) {
        self.charged_bytes -= buf.len().max(MIN_QUEUE_CHARGE_BYTES);
        self.payload_bytes -= buf.len();
        let budget = self.config.queue_limit_bytes.saturating_mul(2);
        if self.buffer_capacity_bytes > budget {
            self.buffer_capacity_bytes -= buf.capacity();
        } else {
            self.pool.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    fn conditioner(config: LinkConfig, seed: u64) -> LinkConditioner {
        LinkConditioner::new(config, seed).expect("valid config")
    }

    fn payload(i: u32) -> [u8; 4] {
        i.to_le_bytes()
    }

    fn index(bytes: &[u8]) -> u32 {
        u32::from_le_bytes(bytes.try_into().expect("4-byte payload"))
    }

    /// Polls everything still pending, each at its exact delivery time.
    fn drain(c: &mut LinkConditioner) -> Vec<(Instant, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Some(at) = c.next_delivery() {
            let n = c.poll(at, &mut buf).expect("due at next_delivery");
            out.push((at, buf[..n].to_vec()));
        }
        out
    }

    /// Pushes `count` 4-byte datagrams spaced `spacing` apart from `t0`.
    fn push_spaced(c: &mut LinkConditioner, t0: Instant, count: u32, spacing: Duration) {
        for i in 0..count {
            c.push(t0 + spacing * i, &payload(i));
        }
    }

    fn inversions(delivered: &[(Instant, Vec<u8>)]) -> usize {
        delivered
            .windows(2)
            .filter(|w| index(&w[1].1) < index(&w[0].1))
            .count()
    }

    #[test]
    fn default_config_is_transparent_and_preserves_order() {
        let mut c = conditioner(LinkConfig::default(), 1);
        let now = Instant::now();
        let mut buf = [0u8; 16];
        // Immediately available at the same instant.
        c.push(now, b"hello");
        assert_eq!(c.next_delivery(), Some(now));
        assert_eq!(c.poll(now, &mut buf), Some(5));
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(c.poll(now, &mut buf), None);

        for i in 0..1000 {
            c.push(now, &payload(i));
        }
        assert_eq!(c.len(), 1000);
        for i in 0..1000 {
            assert_eq!(c.poll(now, &mut buf), Some(4));
            assert_eq!(index(&buf[..4]), i);
        }
        assert!(c.is_empty());
        let stats = *c.stats();
        assert_eq!(stats.pushed, 1001);
        assert_eq!(stats.delivered, 1001);
        assert_eq!(
            (stats.dropped_loss, stats.dropped_queue, stats.duplicated),
            (0, 0, 0)
        );
        assert_eq!(stats.reordered, 0);
    }

    #[test]
    fn empty_datagram_is_delivered() {
        let mut c = conditioner(LinkConfig::default(), 1);
        let now = Instant::now();
        c.push(now, &[]);
        assert_eq!(c.poll(now, &mut [0u8; 4]), Some(0));
    }

    #[test]
    fn full_loss_drops_everything() {
        let config = LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        };
        let mut c = conditioner(config, 7);
        let now = Instant::now();
        for i in 0..10_000 {
            c.push(now, &payload(i));
        }
        assert!(c.is_empty());
        assert_eq!(c.next_delivery(), None);
        assert_eq!(c.poll(now + Duration::from_secs(10), &mut [0u8; 4]), None);
        assert_eq!(c.stats().dropped_loss, 10_000);
        assert_eq!(c.stats().delivered, 0);
    }

    #[test]
    fn loss_rate_matches_probability() {
        let config = LinkConfig {
            loss: 0.3,
            ..LinkConfig::default()
        };
        let mut c = conditioner(config, 42);
        let now = Instant::now();
        let mut buf = [0u8; 4];
        let mut delivered = 0u64;
        for i in 0..100_000 {
            c.push(now, &payload(i));
            while c.poll(now, &mut buf).is_some() {
                delivered += 1;
            }
        }
        let dropped = c.stats().dropped_loss;
        assert_eq!(dropped + delivered, 100_000);
        let rate = dropped as f64 / 100_000.0;
        assert!((0.29..=0.31).contains(&rate), "loss rate {rate}");
    }

    fn impaired_config() -> LinkConfig {
        LinkConfig {
            loss: 0.1,
            latency: 20 * MS,
            jitter: 15 * MS,
            reorder: 0.05,
            reorder_delay: 30 * MS,
            duplicate: 0.05,
            ..LinkConfig::default()
        }
    }

    fn run(seed: u64) -> (Vec<(Duration, Vec<u8>)>, ConditionerStats) {
        let mut c = conditioner(impaired_config(), seed);
        let t0 = Instant::now();
        push_spaced(&mut c, t0, 2000, MS);
        let delivered = drain(&mut c)
            .into_iter()
            .map(|(at, data)| (at - t0, data))
            .collect();
        (delivered, *c.stats())
    }

    #[test]
    fn same_seed_gives_identical_outcome() {
        assert_eq!(run(1234), run(1234));
    }

    #[test]
    fn different_seed_gives_different_outcome() {
        let (a, stats_a) = run(1);
        let (b, stats_b) = run(2);
        assert_ne!(a, b);
        assert_ne!(stats_a, stats_b);
    }

    #[test]
    fn latency_delays_exactly() {
        let latency = 50 * MS;
        let config = LinkConfig {
            latency,
            ..LinkConfig::default()
        };
        let mut c = conditioner(config, 3);
        let t0 = Instant::now();
        let mut buf = [0u8; 16];
        c.push(t0, b"abc");
        assert_eq!(c.next_delivery(), Some(t0 + latency));
        assert_eq!(c.poll(t0, &mut buf), None);
        assert_eq!(
            c.poll(t0 + latency - Duration::from_nanos(1), &mut buf),
            None
        );
        assert_eq!(c.poll(t0 + latency, &mut buf), Some(3));
        assert_eq!(&buf[..3], b"abc");
        assert!(c.is_empty());
    }

    #[test]
    fn jitter_stays_within_bounds_and_reorders_when_large() {
        let latency = 10 * MS;
        let jitter = 20 * MS;
        let config = LinkConfig {
            latency,
            jitter,
            ..LinkConfig::default()
        };
        let mut c = conditioner(config, 5);
        let t0 = Instant::now();
        push_spaced(&mut c, t0, 1000, MS);
        let delivered = drain(&mut c);
        assert_eq!(delivered.len(), 1000);
        let mut min_delay = Duration::MAX;
        let mut max_delay = Duration::ZERO;
        for (at, data) in &delivered {
            let sent = t0 + MS * index(data);
            let delay = *at - sent;
            assert!(delay >= latency && delay <= latency + jitter, "{delay:?}");
            min_delay = min_delay.min(delay);
            max_delay = max_delay.max(delay);
        }
        // The jitter actually spreads over most of its range.
        assert!(min_delay < latency + 2 * MS);
        assert!(max_delay > latency + jitter - 2 * MS);
        assert!(inversions(&delivered) > 100);
    }

    #[test]
    fn small_jitter_does_not_reorder() {
        let config = LinkConfig {
            latency: 10 * MS,
            jitter: Duration::from_micros(500),
            ..LinkConfig::default()
        };
        let mut c = conditioner(config, 5);
        let t0 = Instant::now();
        push_spaced(&mut c, t0, 1000, MS);
        let delivered = drain(&mut c);
        assert_eq!(delivered.len(), 1000);
        assert_eq!(inversions(&delivered), 0);
    }

    #[test]
    fn reorder_delays_selected_datagrams() {
        let config = LinkConfig {
            reorder: 0.1,
            reorder_delay: 5 * MS,
            ..LinkConfig::default()
        };
        let mut c = conditioner(config, 11);
        let t0 = Instant::now();
        push_spaced(&mut c, t0, 10_000, MS);
        let delivered = drain(&mut c);
        let mut late = 0;
        for (at, data) in &delivered {
            let delay = *at - (t0 + MS * index(data));
            assert!(delay == Duration::ZERO || delay == 5 * MS);
            if delay == 5 * MS {
                late += 1;
            }
        }
        assert_eq!(late, c.stats().reordered);
        assert!((900..=1100).contains(&late), "{late}");
        assert!(inversions(&delivered) > 0);
    }

    #[test]
    fn duplicate_adds_about_ten_percent() {
        let config = LinkConfig {
            duplicate: 0.1,
            latency: MS,
            jitter: MS,
            ..LinkConfig::default()
        };
        let mut c = conditioner(config, 9);
        let t0 = Instant::now();
        let mut buf = [0u8; 4];
        let mut delivered = 0u64;
        for i in 0..100_000u32 {
            let now = t0 + MS * i;
            c.push(now, &payload(i));
            while c.poll(now, &mut buf).is_some() {
                delivered += 1;
            }
        }
        delivered += drain(&mut c).len() as u64;
        let extra = delivered - 100_000;
        assert_eq!(extra, c.stats().duplicated);
        let rate = extra as f64 / 100_000.0;
        assert!((0.09..=0.11).contains(&rate), "duplicate rate {rate}");
    }

    #[test]
    fn bandwidth_cap_serializes_datagrams() {
        let config = LinkConfig {
            bandwidth_bytes_per_sec: Some(1_000_000),
            ..LinkConfig::default()
        };
        let mut c = conditioner(config, 1);
        let t0 = Instant::now();
        let datagram = [0xabu8; 1000];
        for _ in 0..100 {
            c.push(t0, &datagram);
        }
        assert_eq!(c.stats().dropped_queue, 0);
        assert_eq!(c.next_delivery(), Some(t0 + MS));
        let mut buf = [0u8; 1000];
        assert_eq!(c.poll(t0, &mut buf), None);
        let delivered = drain(&mut c);
        assert_eq!(delivered.len(), 100);
        for (i, (at, _)) in delivered.iter().enumerate() {
            assert_eq!(*at, t0 + MS * (i as u32 + 1));
        }
        assert_eq!(delivered.last().map(|d| d.0), Some(t0 + 100 * MS));

        // After the link idles, a new datagram is not delayed by old backlog.
        let later = t0 + Duration::from_secs(1);
        c.push(later, &datagram);
        assert_eq!(c.next_delivery(), Some(later + MS));
    }

    #[test]
    fn bandwidth_cap_tail_drops_beyond_queue_limit() {
        let config = LinkConfig {
            bandwidth_bytes_per_sec: Some(1_000_000),
            queue_limit_bytes: 10_000,
            ..LinkConfig::default()
        };
        let mut c = conditioner(config, 1);
        let t0 = Instant::now();
        for i in 0..100u32 {
            let mut datagram = [0u8; 1000];
            datagram[..4].copy_from_slice(&payload(i));
            c.push(t0, &datagram);
        }
        assert_eq!(c.len(), 10);
        assert_eq!(c.queued_bytes(), 10_000);
        assert_eq!(c.stats().dropped_queue, 90);
        // The first ten (tail drop) get through, at link rate.
        let delivered = drain(&mut c);
        let firsts: Vec<u32> = delivered.iter().map(|(_, d)| index(&d[..4])).collect();
        assert_eq!(firsts, (0..10).collect::<Vec<_>>());
        assert_eq!(delivered.last().map(|d| d.0), Some(t0 + 10 * MS));
        // Room is freed once delivered.
        c.push(t0 + 10 * MS, &[0u8; 1000]);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn queue_limit_applies_without_bandwidth_cap() {
        let config = LinkConfig {
            latency: Duration::from_secs(1),
            queue_limit_bytes: 5_000,
            ..LinkConfig::default()
        };
        let mut c = conditioner(config, 1);
        let t0 = Instant::now();
        for _ in 0..10 {
            c.push(t0, &[1u8; 1000]);
        }
        assert_eq!(c.len(), 5);
        assert_eq!(c.stats().dropped_queue, 5);
        // Tiny datagrams are charged a minimum, so their count is bounded too.
        let config = LinkConfig {
            latency: Duration::from_secs(1),
            queue_limit_bytes: 10 * MIN_QUEUE_CHARGE_BYTES,
            ..LinkConfig::default()
        };
        let mut c = conditioner(config, 1);
        for _ in 0..100 {
            c.push(t0, &[]);
        }
        assert_eq!(c.len(), 10);
        assert_eq!(c.stats().dropped_queue, 90);
    }

    #[test]
    fn buffers_are_recycled() {
        let config = LinkConfig {
            latency: 5 * MS,
            jitter: 5 * MS,
            ..LinkConfig::default()
        };
        let mut c = conditioner(config, 1);
        let t0 = Instant::now();
        let mut buf = [0u8; 1200];
        for i in 0..10_000u32 {
            let now = t0 + MS * i;
            c.push(now, &[i as u8; 1200]);
            while c.poll(now, &mut buf).is_some() {}
        }
        // At most ~11 datagrams are in flight at once; the buffers owned
        // never exceed that, no matter how many datagrams went through.
        assert!(c.pool.len() + c.queue.len() <= 12);
        assert!(c.buffer_capacity_bytes <= 12 * 1200);
    }

    #[test]
    fn validate_rejects_bad_probabilities() {
        for bad in [1.5, -0.1, f64::NAN, f64::INFINITY] {
            let loss = LinkConfig {
                loss: bad,
                ..LinkConfig::default()
            };
            assert!(matches!(
                loss.validate(),
                Err(ConditionerError::InvalidProbability { field: "loss", .. })
            ));
            let reorder = LinkConfig {
                reorder: bad,
                ..LinkConfig::default()
            };
            assert!(reorder.validate().is_err());
            let duplicate = LinkConfig {
                duplicate: bad,
                ..LinkConfig::default()
            };
            assert!(LinkConditioner::new(duplicate, 0).is_err());
        }
        let zero_bw = LinkConfig {
            bandwidth_bytes_per_sec: Some(0),
            ..LinkConfig::default()
        };
        assert_eq!(zero_bw.validate(), Err(ConditionerError::ZeroBandwidth));
        let too_slow = LinkConfig {
            latency: Duration::from_secs(MAX_TOTAL_DELAY_SECS + 1),
            ..LinkConfig::default()
        };
        assert_eq!(too_slow.validate(), Err(ConditionerError::DelayTooLarge));

        let mut c = conditioner(LinkConfig::default(), 0);
        let bad = LinkConfig {
            loss: 1.5,
            ..LinkConfig::default()
        };
        assert!(c.set_config(bad).is_err());
        assert_eq!(c.config(), &LinkConfig::default());
    }

    #[test]
    fn presets_are_valid() {
        for preset in [
            LinkConfig::perfect(),
            LinkConfig::lan(),
            LinkConfig::wifi(),
            LinkConfig::mobile(),
            LinkConfig::terrible(),
        ] {
            preset.validate().expect("preset is valid");
        }
        assert_eq!(LinkConfig::wifi().loss, 0.01);
        assert_eq!(LinkConfig::mobile().latency, 80 * MS);
        assert_eq!(LinkConfig::mobile().jitter, 30 * MS);
        assert_eq!(LinkConfig::mobile().loss, 0.03);
    }

    #[test]
    fn set_config_applies_to_later_pushes() {
        let mut c = conditioner(LinkConfig::default(), 0);
        let t0 = Instant::now();
        c.push(t0, b"a");
        c.set_config(LinkConfig {
            latency: 10 * MS,
            ..LinkConfig::default()
        })
        .expect("valid");
        c.push(t0, b"b");
        let delivered = drain(&mut c);
        assert_eq!(delivered[0], (t0, b"a".to_vec()));
        assert_eq!(delivered[1], (t0 + 10 * MS, b"b".to_vec()));
    }

    #[test]
    fn poll_truncates_into_small_buffer() {
        let mut c = conditioner(LinkConfig::default(), 0);
        let now = Instant::now();
        let datagram: Vec<u8> = (0..100).collect();
        c.push(now, &datagram);
        c.push(now, b"next");
        let mut small = [0u8; 10];
        assert_eq!(c.poll(now, &mut small), Some(10));
        assert_eq!(&small[..], &datagram[..10]);
        // The rest of the truncated datagram is discarded.
        let mut buf = [0u8; 100];
        assert_eq!(c.poll(now, &mut buf), Some(4));
        assert_eq!(&buf[..4], b"next");
        assert!(c.is_empty());
    }

    proptest! {
        #[test]
        fn accounting_and_bounds_hold(
            seed in any::<u64>(),
            loss in 0.0..=1.0f64,
            duplicate in 0.0..=1.0f64,
            reorder in 0.0..=1.0f64,
            jitter_ms in 0u64..50,
            bandwidth in proptest::option::of(1_000u64..1_000_000),
            queue_limit_bytes in 0usize..20_000,
            ops in proptest::collection::vec((0u64..5, 0usize..1500, any::<bool>()), 1..300),
        ) {
            let config = LinkConfig {
                loss,
                latency: 3 * MS,
                jitter: Duration::from_millis(jitter_ms),
                reorder,
                reorder_delay: 7 * MS,
                duplicate,
                bandwidth_bytes_per_sec: bandwidth,
                queue_limit_bytes,
            };
            let mut c = conditioner(config, seed);
            let mut now = Instant::now();
            let mut last_delivery = None;
            let mut buf = [0u8; 1500];
            for (advance_ms, len, do_poll) in ops {
                now += Duration::from_millis(advance_ms);
                c.push(now, &vec![7u8; len]);
                prop_assert!(c.charged_bytes <= queue_limit_bytes);
                prop_assert!(c.queued_bytes() <= queue_limit_bytes);
                if do_poll {
                    while let Some(at) = c.next_delivery().filter(|at| *at <= now) {
                        if let Some(last) = last_delivery {
                            prop_assert!(last <= at);
                        }
                        last_delivery = Some(at);
                        prop_assert!(c.poll(now, &mut buf).is_some());
                    }
                    prop_assert_eq!(c.poll(now, &mut buf), None);
                }
                let s = *c.stats();
                prop_assert_eq!(
                    s.pushed - s.dropped_loss + s.duplicated,
                    s.dropped_queue + s.delivered + c.len() as u64
                );
            }
        }
    }
}
