//! The only place that reads the wall clock. Everything else is handed `now` (milliseconds
//! since the Unix epoch), so the core stays pure and tests can pick their own time.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::core::calendar::civil_from_days;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A monotonic instant, for measuring intervals (rate limits, latencies).
pub fn monotonic() -> Instant {
    Instant::now()
}

/// Formats epoch milliseconds as RFC 3339 in UTC with millisecond precision,
/// e.g. `2026-11-25T06:15:00.000Z`.
pub fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let secs_of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            format_rfc3339(1_795_590_900_000),
            "2026-11-25T07:15:00.000Z"
        );
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }
}
