//! Per-organization limits on detection and metering routes: a token bucket per organization
//! (it refills at `rate` tokens per second up to `burst`; a request takes one), and a cap on
//! the batches of one organization processed at once. Both are per organization, not per
//! key, so minting keys buys no more of the appliance, and one organization's flood cannot
//! take the workers from the others. Distinct from quota: they protect the appliance, not
//! the bill.

use std::{collections::HashMap, sync::Mutex, time::Instant};

use super::error::ApiError;
use crate::{clock, store::OrgLimit};

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

    /// (requests per second, burst); 0 requests per second when limiting is off.
    pub fn settings(&self) -> (u32, u32) {
        (self.rate_per_sec as u32, self.burst as u32)
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

/// At most `max` batches of one organization in flight; the next answers 429 at once (a
/// client backs off, rather than holding a connection and a worker while it waits).
pub struct InFlightLimiter {
    max: usize,
    counts: Mutex<HashMap<String, usize>>,
}

/// One batch in flight: it leaves the count when dropped (also when the request is dropped).
pub struct InFlight<'a> {
    limiter: &'a InFlightLimiter,
    org: String,
}

impl InFlightLimiter {
    pub fn new(max: usize) -> Self {
        InFlightLimiter {
            max: max.max(1),
            counts: Mutex::new(HashMap::new()),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn enter(&self, org: &str) -> Result<InFlight<'_>, ApiError> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(org.to_string()).or_insert(0);
        if *n >= self.max {
            return Err(ApiError::OrgLimit(OrgLimit {
                what: "detection batches in flight at once",
                limit: self.max as u64,
                setting: "--org-concurrent-batches",
                retry_after_secs: Some(1),
            }));
        }
        *n += 1;
        Ok(InFlight {
            limiter: self,
            org: org.to_string(),
        })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut counts = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.org) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.org);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_organization_has_at_most_its_share_of_batches_in_flight() {
        let limiter = InFlightLimiter::new(2);
        let a = limiter.enter("org_a").unwrap();
        let _b = limiter.enter("org_a").unwrap();
        assert!(matches!(limiter.enter("org_a"), Err(ApiError::OrgLimit(_))));
        assert!(limiter.enter("org_b").is_ok(), "others are not held up");
        drop(a);
        assert!(
            limiter.enter("org_a").is_ok(),
            "a finished batch frees its place"
        );
    }

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
            "organizations have their own buckets"
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
