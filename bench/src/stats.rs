//! Summaries of samples: average and percentiles, and medians across runs.

use std::time::Duration;

/// Average and percentiles of a set of durations, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// Samples.
    pub count: usize,
    /// Mean.
    pub avg: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Summary {
    /// Summarises samples given in nanoseconds.
    pub fn of_nanos(samples: &[u64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let us = |ns: u64| ns as f64 / 1e3;
        let pct = |p: f64| {
            let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
            us(sorted[i])
        };
        Self {
            count: sorted.len(),
            avg: sorted.iter().map(|&n| n as f64).sum::<f64>() / sorted.len() as f64 / 1e3,
            p50: pct(0.50),
            p99: pct(0.99),
            p999: pct(0.999),
            max: us(*sorted.last().expect("not empty")),
        }
    }

    /// Summarises durations.
    pub fn of(samples: &[Duration]) -> Self {
        let ns: Vec<u64> = samples.iter().map(|d| d.as_nanos() as u64).collect();
        Self::of_nanos(&ns)
    }

    /// Field-by-field median of several summaries (interleaved runs).
    pub fn median_of(runs: &[Summary]) -> Self {
        let pick = |f: fn(&Summary) -> f64| median(runs.iter().map(f).collect());
        Self {
            count: runs.iter().map(|s| s.count).sum(),
            avg: pick(|s| s.avg),
            p50: pick(|s| s.p50),
            p99: pick(|s| s.p99),
            p999: pick(|s| s.p999),
            max: pick(|s| s.max),
        }
    }
}

/// Median of values (0 for none; the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let samples: Vec<u64> = (1..=1000).map(|i| i * 1000).collect();
        let s = Summary::of_nanos(&samples);
        assert_eq!(s.p50, 500.0);
        assert_eq!(s.p99, 990.0);
        assert_eq!(s.p999, 999.0);
        assert_eq!(s.max, 1000.0);
        assert!((s.avg - 500.5).abs() < 1e-9);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
