//! Time inside a connection: integer nanoseconds since the connection's
//! creation (its *epoch*). The public API takes and returns [`Instant`]s; each
//! call converts its `now` once, and everything inside (send times, timers,
//! deadlines) is a `u64`, where adding and comparing cost one instruction
//! instead of `Instant`'s checked second-and-nanosecond arithmetic.

use std::time::{Duration, Instant};

/// A point in time: nanoseconds since the connection's epoch.
pub(super) type Nanos = u64;

/// "No deadline": later than every real time.
pub(super) const NEVER: Nanos = u64::MAX;

/// Longest span a connection schedules ahead, in nanoseconds (100 years):
/// configured durations are capped to it, so a deadline computed from them
/// never overflows and always converts back into an `Instant`.
const MAX_SPAN_NS: u64 = 100 * 365 * 24 * 3600 * 1_000_000_000;

/// `d` in nanoseconds, capped at [`MAX_SPAN_NS`].
pub(super) fn span(d: Duration) -> Nanos {
    crate::rtt::nanos(d).min(MAX_SPAN_NS)
}

/// Converts between the caller's `Instant`s and the connection's [`Nanos`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    epoch: Instant,
    /// The last `Instant` converted and its value: drivers pass the same `now`
    /// to the several calls of one service pass.
    last: Instant,
    last_ns: Nanos,
}

impl Clock {
    /// A clock whose epoch is `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            epoch: now,
            last: now,
            last_ns: 0,
        }
    }

    /// `now` in nanoseconds since the epoch (0 for an `Instant` before it).
    #[inline]
    pub fn ticks(&mut self, now: Instant) -> Nanos {
        if now != self.last {
            self.convert(now);
        }
        self.last_ns
    }

    /// Converts and caches `now` (out of line: the cached case is inline).
    #[inline(never)]
    fn convert(&mut self, now: Instant) {
        self.last = now;
        self.last_ns = self.ticks_of(now);
    }

    /// `t` in nanoseconds since the epoch, without the cache (0 before it).
    pub fn ticks_of(&self, t: Instant) -> Nanos {
        span(t.saturating_duration_since(self.epoch))
    }

    /// The `Instant` of `t` (`t` below [`NEVER`]).
    pub fn instant(&self, t: Nanos) -> Instant {
        self.epoch + Duration::from_nanos(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_both_ways() {
        let epoch = Instant::now();
        let mut clock = Clock::new(epoch);
        assert_eq!(clock.ticks(epoch), 0);
        let later = epoch + Duration::from_millis(1500);
        assert_eq!(clock.ticks(later), 1_500_000_000);
        assert_eq!(clock.ticks(later), 1_500_000_000, "cached");
        assert_eq!(clock.instant(1_500_000_000), later);
        assert_eq!(clock.ticks(epoch), 0, "the cache follows the argument");
    }

    #[test]
    fn spans_are_capped_so_deadlines_never_overflow() {
        assert_eq!(span(Duration::MAX), MAX_SPAN_NS);
        let clock = Clock::new(Instant::now());
        let far = MAX_SPAN_NS * 2; // two capped spans added
        assert!(far < NEVER);
        let _ = clock.instant(far);
    }
}
