//! The token bucket that caps how fast prewarm can make the origin work.
//!
//! Only requests that reach the origin should cost a token, but a client
//! learns whether nginx answered from cache (`X-Cache-Status: HIT`) only
//! after the response. So every request is charged *before* it is sent and
//! the token is refunded when the answer was a cache hit. The guarantee that
//! holds is therefore: requests that reached the origin in any interval `T`
//! ≤ `burst + rate × T`. HITs cost a token only while in flight, so a
//! mostly-hot plan still finishes quickly. Time is passed in so tests do
//! not sleep.

use std::time::{Duration, Instant};

/// A classic token bucket with an explicit clock.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `rate` tokens per second (> 0), at most `burst` (≥ 1) saved up; starts full.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        TokenBucket {
            rate: rate.max(f64::MIN_POSITIVE),
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = self.last.max(now);
    }

    /// Take one token, or say how long to wait until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            Err(Duration::from_secs_f64(missing / self.rate).max(Duration::from_millis(1)))
        }
    }

    /// Give back the token of a request that turned out to be a cache hit.
    pub fn refund(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens + 1.0).min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_full_then_paces_at_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(2.0, 1.0, t0);
        assert!(bucket.try_take(t0).is_ok());
        let wait = bucket.try_take(t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        assert!(bucket.try_take(t0 + Duration::from_millis(499)).is_err());
        assert!(bucket.try_take(t0 + Duration::from_millis(500)).is_ok());
    }

    #[test]
    fn never_more_than_burst_plus_rate_times_t() {
        // Simulate greedy callers over 10 s at 1 ms steps.
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(5.0, 2.0, t0);
        let mut taken = 0;
        for ms in 0..10_000u64 {
            let now = t0 + Duration::from_millis(ms);
            while bucket.try_take(now).is_ok() {
                taken += 1;
            }
        }
        // 2 saved + 5/s for 9.999 s.
        assert!((50..=52).contains(&taken), "{taken}");
    }

    #[test]
    fn a_refund_makes_a_hit_free_but_never_exceeds_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1.0, 1.0, t0);
        bucket.try_take(t0).unwrap();
        bucket.refund(t0);
        assert!(
            bucket.try_take(t0).is_ok(),
            "refunded token is usable at once"
        );
        bucket.refund(t0);
        bucket.refund(t0);
        bucket.try_take(t0).unwrap();
        assert!(bucket.try_take(t0).is_err(), "refunds are capped at burst");
    }

    #[test]
    fn a_clock_going_backwards_does_not_mint_tokens() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::new(1.0, 1.0, t0);
        bucket.try_take(t0).unwrap();
        assert!(bucket.try_take(t0 - Duration::from_secs(5)).is_err());
    }
}
