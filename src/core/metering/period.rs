//! Billing periods: calendar months in UTC, `[start, end)` in epoch milliseconds. Local
//! metering uses these; a Stripe subscription's own period can replace them per org later.
//!
//! The wall clock can step (NTP corrections, a VM resumed, an operator's mistake), so two rules
//! keep a billing period closed once it has ended: detections count into the newest period an
//! org has already started even when the clock reads a little earlier
//! ([`Period::for_counting`]), and usage is reported to Stripe with a time inside its own
//! period ([`Period::report_time_ms`]).

use serde::{Deserialize, Serialize};

use crate::core::calendar::{civil_from_days, days_from_civil, MS_PER_DAY};

/// How far the clock may step back behind a started period and still count into it: clock
/// corrections (NTP, a resumed VM) are seconds to hours; a clock days behind is taken as right.
pub const STEP_BACK_TOLERANCE_MS: i64 = 86_400_000;

/// Stripe accepts a meter event stamped at most 35 days in the past (and 5 minutes ahead).
pub const STRIPE_EVENT_MAX_AGE_MS: i64 = 35 * MS_PER_DAY;
/// Kept inside that window, for the time a delivery takes and clocks that differ.
const STRIPE_EVENT_AGE_MARGIN_MS: i64 = 3_600_000;

/// The time to send a meter event stamped `stamped_ms` with, when sending at `now_ms`: its own
/// stamp while Stripe still accepts it, else the oldest time Stripe accepts (usage that waited
/// over 35 days, offline or for its customer, then lands on the invoice open at that time
/// rather than being refused); never later than now.
pub fn stripe_event_time_ms(stamped_ms: i64, now_ms: i64) -> i64 {
    stamped_ms
        .max(now_ms - STRIPE_EVENT_MAX_AGE_MS + STRIPE_EVENT_AGE_MARGIN_MS)
        .min(now_ms)
}

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

    /// The period detections made at `now_ms` count into, given the start of the newest period
    /// the org has counted in (if any): the one containing `now_ms`, unless the clock has
    /// stepped back (by at most [`STEP_BACK_TOLERANCE_MS`]) behind a period already started,
    /// which then stays the current one, so an ended period is not reopened by a clock
    /// correction. A clock further behind wins: the later period came from a clock that was
    /// wrong, and a year of detections must not pile up in it.
    pub fn for_counting(now_ms: i64, newest_started_ms: Option<i64>) -> Period {
        let by_clock = Period::containing(now_ms);
        match newest_started_ms {
            Some(start)
                if start > by_clock.start_ms && start - now_ms <= STEP_BACK_TOLERANCE_MS =>
            {
                Period::containing(start)
            }
            _ => by_clock,
        }
    }

    /// The time (epoch ms) to report this period's usage at, when reporting at `now_ms`: now
    /// while the period runs, its last second once it has ended (so the usage lands on the
    /// period's invoice however late it is sent), and `None` before it has begun by the clock
    /// (usage counted into it after the clock stepped back waits until the clock catches up;
    /// Stripe refuses event times in the future).
    pub fn report_time_ms(&self, now_ms: i64) -> Option<i64> {
        if now_ms < self.start_ms {
            None
        } else if now_ms < self.end_ms {
            Some(now_ms)
        } else {
            Some(self.end_ms - 1_000)
        }
    }

    /// The start of the next period (epoch seconds): Stripe subscriptions are anchored there,
    /// so Stripe's invoice periods are Driftlock's calendar months.
    pub fn next_start_secs(&self) -> i64 {
        self.end_ms / 1000
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

    #[test]
    fn a_clock_stepping_back_does_not_reopen_an_ended_period() {
        let nov = Period::containing(NOV_25_2026);
        let dec = Period::containing(nov.end_ms);
        assert_eq!(Period::for_counting(NOV_25_2026, None), nov);
        assert_eq!(Period::for_counting(NOV_25_2026, Some(nov.start_ms)), nov);
        // The clock moved forward past older periods: the clock's period wins.
        assert_eq!(Period::for_counting(nov.end_ms, Some(nov.start_ms)), dec);
        // December was started, then the clock stepped back into November.
        assert_eq!(
            Period::for_counting(nov.end_ms - 60_000, Some(dec.start_ms)),
            dec
        );
        let a_day_back = dec.start_ms - STEP_BACK_TOLERANCE_MS;
        assert_eq!(Period::for_counting(a_day_back, Some(dec.start_ms)), dec);
        // Further back, the later period came from a wrong clock: the clock wins.
        assert_eq!(
            Period::for_counting(a_day_back - 1, Some(dec.start_ms)),
            nov
        );
        let next_year = Period::containing(dec.start_ms + 365 * 86_400_000);
        assert_eq!(
            Period::for_counting(NOV_25_2026, Some(next_year.start_ms)),
            nov
        );
    }

    #[test]
    fn usage_is_reported_inside_its_own_period() {
        let nov = Period::containing(NOV_25_2026);
        assert_eq!(nov.report_time_ms(NOV_25_2026), Some(NOV_25_2026));
        let late = nov.end_ms + 3 * 86_400_000;
        let at = nov.report_time_ms(late).unwrap();
        assert!(nov.contains(at) && at == nov.end_ms - 1_000);
        assert_eq!(Period::containing(at), nov);
        assert_eq!(nov.report_time_ms(nov.start_ms - 1), None, "not begun yet");
        assert_eq!(nov.report_time_ms(nov.start_ms), Some(nov.start_ms));
    }

    #[test]
    fn meter_events_are_sent_inside_stripes_window() {
        let now = 2_000_000_000_000;
        assert_eq!(stripe_event_time_ms(now - 1_000, now), now - 1_000);
        assert_eq!(stripe_event_time_ms(now + 60_000, now), now);
        let old = now - 40 * MS_PER_DAY;
        let sent = stripe_event_time_ms(old, now);
        assert!(now - sent < STRIPE_EVENT_MAX_AGE_MS && sent > old, "{sent}");
        assert_eq!(
            stripe_event_time_ms(now - 30 * MS_PER_DAY, now),
            now - 30 * MS_PER_DAY
        );
    }
}
