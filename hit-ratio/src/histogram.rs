//! A fixed-size log-linear histogram of durations in milliseconds, for
//! latency percentiles in bounded memory.
//!
//! Exact below 64 ms; above, 32 buckets per power of two (≤ 3 % relative
//! error), up to 2^40 ms. 1 184 counters whatever the log size, and two
//! histograms merge by adding counters, so parallel chunks combine exactly.

const LINEAR: u64 = 64;
const SUB_BITS: u32 = 5; // 32 buckets per power of two
const SUB: usize = 1 << SUB_BITS;
const MAX_EXPONENT: u32 = 40;
/// Number of counters.
pub const BUCKETS: usize = LINEAR as usize + (MAX_EXPONENT as usize - 6 + 1) * SUB;

/// Counts of durations (ms) in log-linear buckets.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
        }
    }
}

fn index(ms: u64) -> usize {
    if ms < LINEAR {
        return ms as usize;
    }
    let ms = ms.min((1 << (MAX_EXPONENT + 1)) - 1);
    let exponent = 63 - ms.leading_zeros(); // ≥ 6
    let mantissa = (ms >> (exponent - SUB_BITS)) as usize; // 32..=63
    LINEAR as usize + (exponent as usize - 6) * SUB + (mantissa - SUB)
}

/// The range of values bucket `index` holds: `[low, high)`.
fn bounds(index: usize) -> (u64, u64) {
    if index < LINEAR as usize {
        return (index as u64, index as u64 + 1);
    }
    let offset = index - LINEAR as usize;
    let exponent = (offset / SUB) as u32 + 6;
    let mantissa = (offset % SUB + SUB) as u64;
    let shift = exponent - SUB_BITS;
    (mantissa << shift, (mantissa + 1) << shift)
}

impl Histogram {
    /// Count one duration.
    #[inline]
    pub fn record(&mut self, ms: u64) {
        self.counts[index(ms)] += 1;
        self.total += 1;
    }

    /// Durations counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Add another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
    }

    /// The `q` quantile (0 < q ≤ 1) in milliseconds: exact below 64 ms,
    /// otherwise the middle of the bucket holding it. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, high) = bounds(index);
                return Some(if high - low == 1 {
                    low
                } else {
                    (low + high) / 2
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for ms in [
            0u64,
            1,
            63,
            64,
            65,
            127,
            128,
            1000,
            5_000,
            123_456,
            1 << 40,
            u64::MAX,
        ] {
            let i = index(ms);
            assert!(i < BUCKETS);
            assert!(i >= last);
            last = i;
            let (low, high) = bounds(i);
            if ms < 1 << 41 {
                assert!(low <= ms && ms < high, "{ms}: [{low}, {high})");
                assert!((high - low) as f64 <= (low as f64 / 32.0).max(1.0));
            }
        }
    }

    #[test]
    fn quantiles_are_exact_for_small_values_and_close_for_large() {
        let mut histogram = Histogram::default();
        for ms in 1..=100u64 {
            histogram.record(ms);
        }
        assert_eq!(histogram.quantile(0.50), Some(50));
        let p95 = histogram.quantile(0.95).unwrap();
        assert!((93..=97).contains(&p95), "{p95}");
        let mut slow = Histogram::default();
        slow.record(2_000);
        let p = slow.quantile(0.99).unwrap();
        assert!((1_950..=2_050).contains(&p), "{p}");
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn merging_adds_counts() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        a.record(1);
        b.record(3);
        b.record(3);
        a.merge(&b);
        assert_eq!(a.total(), 3);
        assert_eq!(a.quantile(0.5), Some(3));
    }
}
