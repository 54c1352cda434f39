//! Round-trip time estimation (PROTOCOL.md §6.2): smoothed RTT and variation as
//! in RFC 6298, with the peer's acknowledgement delay removed as in RFC 9002.

use std::time::Duration;

/// Smallest variation term used in timeouts, so a perfectly steady link still
/// tolerates a little scheduling noise.
const MIN_RTT_VAR_TERM: Duration = Duration::from_millis(1);

/// The RTT estimate of one connection.
#[derive(Clone, Copy, Debug)]
pub struct RttEstimator {
    smoothed: Duration,
    var: Duration,
    min: Duration,
    latest: Duration,
    has_sample: bool,
}

impl RttEstimator {
    /// An estimator that assumes `initial` until the first sample.
    pub fn new(initial: Duration) -> Self {
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
        let adjusted = if rtt >= self.min + ack_delay {
            rtt - ack_delay
        } else {
            rtt
        };
        let diff = self.smoothed.abs_diff(adjusted);
        self.var = (self.var * 3 + diff) / 4;
        self.smoothed = (self.smoothed * 7 + adjusted) / 8;
    }

    /// Smoothed RTT.
    pub fn smoothed(&self) -> Duration {
        self.smoothed
    }

    /// RTT variation.
    pub fn var(&self) -> Duration {
        self.var
    }

    /// Smallest sample seen (the initial RTT before any).
    pub fn min(&self) -> Duration {
        self.min
    }

    /// Latest sample.
    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// Whether any sample was taken.
    pub fn has_sample(&self) -> bool {
        self.has_sample
    }

    /// The probe timeout before backoff: `srtt + max(4 rttvar, 1 ms) + max_ack_delay`.
    pub fn pto(&self, max_ack_delay: Duration) -> Duration {
        self.smoothed + (self.var * 4).max(MIN_RTT_VAR_TERM) + max_ack_delay
    }

    /// How long after a later packet was acknowledged an earlier one counts as lost:
    /// `9/8 max(srtt, latest)`, at least 1 ms.
    pub fn loss_delay(&self) -> Duration {
        (self.smoothed.max(self.latest) * 9 / 8).max(Duration::from_millis(1))
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
