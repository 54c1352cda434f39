//! Round-trip time estimation (PROTOCOL.md §6.2): smoothed RTT and variation as
//! in RFC 6298, with the peer's acknowledgement delay removed as in RFC 9002.

use std::time::Duration;

/// Smallest variation term used in timeouts, so a perfectly steady link still
/// tolerates a little scheduling noise (nanoseconds: 1 ms).
const MIN_RTT_VAR_TERM_NS: u64 = 1_000_000;
/// Shortest loss delay (nanoseconds: 1 ms).
const MIN_LOSS_DELAY_NS: u64 = 1_000_000;

/// `d` in nanoseconds, saturating (u64 nanoseconds span 584 years).
pub(crate) fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

/// The RTT estimate of one connection. Kept in integer nanoseconds: it is
/// updated on every acknowledgement and read on every packet, where
/// `Duration`'s checked second-and-nanosecond arithmetic costs several times
/// more.
#[derive(Clone, Copy, Debug)]
pub struct RttEstimator {
    smoothed: u64,
    var: u64,
    min: u64,
    latest: u64,
    has_sample: bool,
}

impl RttEstimator {
    /// An estimator that assumes `initial` until the first sample.
    pub fn new(initial: Duration) -> Self {
        let initial = nanos(initial);
        Self {
            smoothed: initial,
            var: initial / 2,
            min: initial,
            latest: initial,
            has_sample: false,
        }
    }

    /// Adds a sample: `rtt` measured from send to acknowledgement, `ack_delay`
    /// as reported by the peer (already capped at its `max_ack_delay`).
    pub fn update(&mut self, rtt: Duration, ack_delay: Duration) {
        self.update_nanos(nanos(rtt), nanos(ack_delay));
    }

    /// [`RttEstimator::update`] with both arguments in nanoseconds (the
    /// connection keeps its time as integers).
    pub(crate) fn update_nanos(&mut self, rtt: u64, ack_delay: u64) {
        self.latest = rtt;
        if !self.has_sample {
            self.has_sample = true;
            self.min = rtt;
            self.smoothed = rtt;
            self.var = rtt / 2;
            return;
        }
        self.min = self.min.min(rtt);
        // Remove the peer's delay unless that would go below the minimum seen.
        let adjusted = if rtt >= self.min.saturating_add(ack_delay) {
            rtt - ack_delay
        } else {
            rtt
        };
        let diff = self.smoothed.abs_diff(adjusted);
        self.var = self.var.saturating_mul(3).saturating_add(diff) / 4;
        self.smoothed = self.smoothed.saturating_mul(7).saturating_add(adjusted) / 8;
    }

    /// Smoothed RTT.
    pub fn smoothed(&self) -> Duration {
        Duration::from_nanos(self.smoothed)
    }

    /// RTT variation.
    pub fn var(&self) -> Duration {
        Duration::from_nanos(self.var)
    }

    /// Smallest sample seen (the initial RTT before any).
    pub fn min(&self) -> Duration {
        Duration::from_nanos(self.min)
    }

    /// Latest sample.
    pub fn latest(&self) -> Duration {
        Duration::from_nanos(self.latest)
    }

    /// Whether any sample was taken.
    pub fn has_sample(&self) -> bool {
        self.has_sample
    }

    /// The probe timeout before backoff: `srtt + max(4 rttvar, 1 ms) + max_ack_delay`.
    pub fn pto(&self, max_ack_delay: Duration) -> Duration {
        Duration::from_nanos(self.pto_nanos(nanos(max_ack_delay)))
    }

    /// [`RttEstimator::pto`] in nanoseconds, `max_ack_delay` too.
    pub(crate) fn pto_nanos(&self, max_ack_delay: u64) -> u64 {
        self.smoothed
            .saturating_add(self.var.saturating_mul(4).max(MIN_RTT_VAR_TERM_NS))
            .saturating_add(max_ack_delay)
    }

    /// How long after a later packet was acknowledged an earlier one counts as lost:
    /// `9/8 max(srtt, latest)`, at least 1 ms.
    pub fn loss_delay(&self) -> Duration {
        Duration::from_nanos(self.loss_delay_nanos())
    }

    /// [`RttEstimator::loss_delay`] in nanoseconds.
    pub fn loss_delay_nanos(&self) -> u64 {
        (self.smoothed.max(self.latest).saturating_mul(9) / 8).max(MIN_LOSS_DELAY_NS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn first_sample_sets_the_estimate() {
        let mut r = RttEstimator::new(ms(100));
        assert!(!r.has_sample());
        r.update(ms(40), ms(0));
        assert_eq!(r.smoothed(), ms(40));
        assert_eq!(r.var(), ms(20));
        assert_eq!(r.min(), ms(40));
    }

    #[test]
    fn converges_to_a_steady_rtt() {
        let mut r = RttEstimator::new(ms(100));
        for _ in 0..200 {
            r.update(ms(10), ms(0));
        }
        assert!(r.smoothed().abs_diff(ms(10)) < Duration::from_micros(10));
        assert!(r.var() < Duration::from_micros(10));
        assert_eq!(r.pto(ms(25)), r.smoothed() + ms(1) + ms(25));
    }

    #[test]
    fn ack_delay_is_removed_but_not_below_min() {
        let mut r = RttEstimator::new(ms(100));
        r.update(ms(10), ms(0));
        r.update(ms(30), ms(20));
        // 30 - 20 = 10 >= min 10: the delay is removed, sample 10.
        assert_eq!(r.smoothed(), ms(10));
        r.update(ms(12), ms(20));
        // 12 - 20 would go below min: the sample is used as is.
        assert!(r.smoothed() > ms(10));
    }
}
