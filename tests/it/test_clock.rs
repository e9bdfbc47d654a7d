//! The wall clock the suite runs on. No test reads today's date: every server (and every fake
//! peer that keeps time, such as the fake Stripe) is started under libfaketime with its wall
//! clock pinned, and the test computes its expectations from that same clock ([`now`]).
//!
//! Each test starts at the pinned instant: the offset from the real clock is fixed the first
//! time a test thread asks for it, so a test that starts several processes runs them all on
//! one clock. The instant is `DRIFTLOCK_TEST_NOW` (RFC 3339 UTC, `YYYY-MM-DDTHH:MM:SSZ`, or
//! epoch seconds) when set, else [`DEFAULT_START`], the middle of a month, far from every
//! period boundary. `scripts/test-dated.sh` reruns the period tests at month and year ends and
//! on a leap day. Monotonic clocks stay real (`DONT_FAKE_MONOTONIC`), so timeouts behave.

use std::{cell::Cell, path::Path};

/// 2027-06-15T12:00:00Z.
pub const DEFAULT_START: i64 = 1_813_060_800;

thread_local! {
    static OFFSET: Cell<Option<i64>> = const { Cell::new(None) };
}

/// The real wall clock, in epoch seconds (only for computing the offset).
pub fn real_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The instant every test starts at.
pub fn start() -> i64 {
    match std::env::var("DRIFTLOCK_TEST_NOW") {
        Ok(v) if !v.trim().is_empty() => parse_instant(v.trim()).unwrap_or_else(|| {
            panic!("DRIFTLOCK_TEST_NOW={v:?}: want YYYY-MM-DDTHH:MM:SSZ or epoch seconds")
        }),
        _ => DEFAULT_START,
    }
}

/// Seconds the pinned clock is ahead of the real one, for this test.
pub fn offset() -> i64 {
    OFFSET.with(|o| match o.get() {
        Some(v) => v,
        None => {
            let v = start() - real_now();
            o.set(Some(v));
            v
        }
    })
}

/// The servers' wall clock now, in epoch seconds.
pub fn now() -> i64 {
    real_now() + offset()
}

/// Path of Debian's libfaketime.
pub fn library() -> String {
    ["x86_64-linux-gnu", "aarch64-linux-gnu"]
        .iter()
        .map(|arch| format!("/usr/lib/{arch}/faketime/libfaketime.so.1"))
        .find(|p| Path::new(p).exists())
        .expect("libfaketime is missing: scripts/test.sh installs it (apt-get install libfaketime)")
}

/// Environment that runs a process on this test's pinned clock.
pub fn env() -> Vec<(&'static str, String)> {
    vec![
        ("LD_PRELOAD", library()),
        ("FAKETIME", format!("{:+}", offset())),
        ("DONT_FAKE_MONOTONIC", "1".into()),
    ]
}

/// A wall clock a test moves while its processes run: a libfaketime offset file, read on
/// every call (the clock-jump and reconciliation tests).
pub struct MovableClock {
    file: std::path::PathBuf,
}

impl MovableClock {
    /// A clock in `dir` that reads `epoch_secs` now.
    pub fn new(dir: &Path, epoch_secs: i64) -> MovableClock {
        let clock = MovableClock {
            file: dir.join("faketime"),
        };
        clock.set(epoch_secs);
        clock
    }

    /// Makes the clock read `epoch_secs` now (and run on from there).
    pub fn set(&self, epoch_secs: i64) {
        let offset = epoch_secs - real_now();
        std::fs::write(&self.file, format!("{offset:+}\n")).unwrap();
    }

    /// What the clock reads now.
    pub fn now(&self) -> i64 {
        let text = std::fs::read_to_string(&self.file).unwrap();
        real_now() + text.trim().parse::<i64>().unwrap()
    }

    /// Environment that runs a process on this clock.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LD_PRELOAD", library()),
            ("FAKETIME_TIMESTAMP_FILE", self.file.display().to_string()),
            ("FAKETIME_NO_CACHE", "1".into()),
            ("DONT_FAKE_MONOTONIC", "1".into()),
        ]
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.mmm]Z` (or epoch seconds) to epoch seconds (fractions dropped).
pub fn parse_instant(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<i64>() {
        return Some(secs);
    }
    let s = s.strip_suffix('Z')?;
    let s = s.split_once('.').map_or(s, |(whole, _millis)| whole);
    let (date, time) = s.split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    Some(days_from_civil(d[0], d[1], d[2]) * 86_400 + t[0] * 3600 + t[1] * 60 + t[2])
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-01T00:00:00.000Z` of the calendar month (UTC) holding `epoch_secs`, as the API
/// writes period starts.
pub fn month_start(epoch_secs: i64) -> String {
    let days = epoch_secs.div_euclid(86_400);
    // Civil from days (Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-01T00:00:00.000Z")
}

#[test]
fn the_pinned_instants_read_back() {
    assert_eq!(parse_instant("2027-06-15T12:00:00Z"), Some(DEFAULT_START));
    assert_eq!(parse_instant("2028-02-29T12:00:00Z"), Some(1_835_438_400));
    assert_eq!(month_start(1_835_438_400), "2028-02-01T00:00:00.000Z");
    assert_eq!(
        parse_instant("2028-02-01T00:00:00.000Z"),
        Some(1_835_438_400 - 28 * 86_400 - 12 * 3600)
    );
    assert_eq!(month_start(DEFAULT_START), "2027-06-01T00:00:00.000Z");
    assert_eq!(
        month_start(parse_instant("2026-12-31T23:59:59Z").unwrap()),
        "2026-12-01T00:00:00.000Z"
    );
}

/// The server really runs on the pinned clock: its current period is the pinned month.
#[test]
fn servers_run_on_the_pinned_clock() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::start(dir.path());
    let admin = server.admin_token();
    let (_, key, _) = crate::support::org_with_key(&server, &admin, "Clock");
    let (status, usage) = crate::support::get(&server, "/v1/usage", Some(&key));
    assert_eq!(status, 200, "{usage}");
    // A test pinned a few seconds before a month end may already be in the next month.
    let (before, after) = (month_start(start()), month_start(now()));
    let period = usage["period_start"].as_str().unwrap();
    assert!(
        period == before || period == after,
        "{period} vs {before}..{after}"
    );
}
