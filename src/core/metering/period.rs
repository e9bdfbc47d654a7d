//! Billing periods: calendar months in UTC, `[start, end)` in epoch milliseconds. Local
//! metering uses these; a Stripe subscription's own period can replace them per org later.

use serde::{Deserialize, Serialize};

use crate::core::calendar::{civil_from_days, days_from_civil, MS_PER_DAY};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Period {
    /// The calendar month (UTC) that contains `now_ms`.
    pub fn containing(now_ms: i64) -> Period {
        let (year, month, _) = civil_from_days(now_ms.div_euclid(MS_PER_DAY));
        let start = days_from_civil(year, month, 1) * MS_PER_DAY;
        let (next_year, next_month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let end = days_from_civil(next_year, next_month, 1) * MS_PER_DAY;
        Period {
            start_ms: start,
            end_ms: end,
        }
    }

    pub fn contains(&self, t_ms: i64) -> bool {
        self.start_ms <= t_ms && t_ms < self.end_ms
    }

    /// Whole seconds from `now_ms` until the period ends, at least 1.
    pub fn seconds_left(&self, now_ms: i64) -> u64 {
        let ms = (self.end_ms - now_ms).max(0) as u64;
        ms.div_ceil(1000).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_25_2026: i64 = 1_795_590_900_000;

    #[test]
    fn a_period_is_the_calendar_month() {
        let p = Period::containing(NOV_25_2026);
        assert_eq!(
            crate::clock::format_rfc3339(p.start_ms),
            "2026-11-01T00:00:00.000Z"
        );
        assert_eq!(
            crate::clock::format_rfc3339(p.end_ms),
            "2026-12-01T00:00:00.000Z"
        );
        let dec = Period::containing(p.end_ms);
        assert_eq!(
            crate::clock::format_rfc3339(dec.end_ms),
            "2027-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Period::containing(p.end_ms - 1),
            p,
            "the last millisecond belongs to it"
        );
        assert!(p.contains(p.start_ms) && !p.contains(p.end_ms));
    }

    #[test]
    fn seconds_left_rounds_up_and_never_reaches_zero() {
        let p = Period::containing(NOV_25_2026);
        assert_eq!(p.seconds_left(p.end_ms - 1), 1);
        assert_eq!(p.seconds_left(p.end_ms + 5_000), 1);
        assert_eq!(p.seconds_left(p.end_ms - 86_400_000), 86_400);
    }
}
