//! Retry schedule for outbox deliveries: exponential backoff from a base delay, capped, with
//! jitter so that many rows failing together do not retry in lockstep. Pure: the caller passes
//! the random draw.

/// When to try again after `attempts` failed attempts (1 = the first failure), or `None` when
/// `max_attempts` are used up. `jitter` in [0, 1) spreads the delay over ±20%.
pub fn next_attempt_at(
    now_ms: i64,
    attempts: u32,
    max_attempts: u32,
    base_ms: u64,
    cap_ms: u64,
    jitter: f64,
) -> Option<i64> {
    if attempts >= max_attempts {
        return None;
    }
    let exponent = attempts.saturating_sub(1).min(30);
    let delay = base_ms.saturating_mul(1u64 << exponent).min(cap_ms) as f64;
    let spread = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    Some(now_ms + (delay * spread).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_base_up_to_the_cap_then_gives_up() {
        let at = |n| next_attempt_at(0, n, 5, 1_000, 5_000, 0.5);
        assert_eq!(at(1), Some(1_000));
        assert_eq!(at(2), Some(2_000));
        assert_eq!(at(3), Some(4_000));
        assert_eq!(at(4), Some(5_000));
        assert_eq!(at(5), None);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        assert_eq!(next_attempt_at(0, 1, 9, 1_000, 60_000, 0.0), Some(800));
        assert_eq!(
            next_attempt_at(0, 1, 9, 1_000, 60_000, 0.999_999),
            Some(1_200)
        );
    }
}
