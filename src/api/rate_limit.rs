//! Per-key token buckets for detection and metering routes. Each key refills at `rate` tokens
//! per second up to `burst`; a request takes one. Distinct from quota: it protects the
//! appliance from bursts, not the bill.

use std::{collections::HashMap, sync::Mutex, time::Instant};

use super::error::ApiError;
use crate::clock;

pub struct RateLimiter {
    rate_per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets idle long enough to be full again are forgotten past this many keys.
const SWEEP_ABOVE: usize = 10_000;

impl RateLimiter {
    /// `rate_per_sec == 0` turns limiting off.
    pub fn new(rate_per_sec: u32, burst: u32) -> Self {
        RateLimiter {
            rate_per_sec: f64::from(rate_per_sec),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        self.check_at(key, clock::monotonic())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), ApiError> {
        if self.rate_per_sec <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > SWEEP_ABOVE {
            let full_after = self.burst / self.rate_per_sec;
            buckets.retain(|_, b| now.duration_since(b.at).as_secs_f64() < full_after);
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.rate_per_sec;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.rate_per_sec;
            Err(ApiError::RateLimited {
                retry_after_secs: wait.ceil().max(1.0) as u64,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(2, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at("k", t0).is_ok());
        }
        assert!(matches!(
            limiter.check_at("k", t0),
            Err(ApiError::RateLimited {
                retry_after_secs: 1
            })
        ));
        assert!(
            limiter.check_at("other", t0).is_ok(),
            "keys have their own buckets"
        );
        assert!(limiter
            .check_at("k", t0 + Duration::from_millis(500))
            .is_ok());
        assert!(limiter
            .check_at("k", t0 + Duration::from_millis(500))
            .is_err());
    }

    #[test]
    fn zero_rate_means_unlimited() {
        let limiter = RateLimiter::new(0, 0);
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert!(limiter.check_at("k", t0).is_ok());
        }
    }
}
