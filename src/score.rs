//! `driftlock score`: runs the metric detector over a `timestamp,value` CSV (issue 3).
//!
//! Owns the CSV reading and writing and a small timestamp parser (NAB's
//! `YYYY-MM-DD HH:MM:SS`, RFC 3339, or epoch seconds). Rows are scored one at a time in file
//! order by a detector with exactly the settings it is given (the CLI passes the defaults of a
//! new monitor), so no row ever sees a later one. Uses only the `Read`/`Write` traits it is
//! handed; it opens no files itself.

use std::io::{BufRead, Write};

use crate::core::detect::{DetectError, MetricDetector, MetricSettings};

/// Totals of one scoring run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScoreSummary {
    pub rows: u64,
    pub accepted: u64,
    /// Rows the detector rejected (non-finite value, timestamp not after the previous one).
    pub rejected: u64,
    pub anomalies: u64,
}

/// Why scoring stopped.
#[derive(Debug)]
pub enum ScoreError {
    Io(std::io::Error),
    /// The input has no header line.
    Empty,
    /// The header lacks a required column.
    MissingColumn(&'static str),
    /// A data row could not be read; `line` is 1-based and counts the header.
    BadRow {
        line: u64,
        message: String,
    },
    Settings(DetectError),
}

impl std::fmt::Display for ScoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScoreError::Io(e) => write!(f, "while reading or writing CSV: {e}"),
            ScoreError::Empty => write!(f, "input is empty: expected a header `timestamp,value`"),
            ScoreError::MissingColumn(c) => write!(f, "header has no `{c}` column"),
            ScoreError::BadRow { line, message } => write!(f, "line {line}: {message}"),
            ScoreError::Settings(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ScoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScoreError::Io(e) => Some(e),
            ScoreError::Settings(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for ScoreError {
    fn from(e: std::io::Error) -> Self {
        ScoreError::Io(e)
    }
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
}

/// Scores `input` into `output`: `timestamp,value,anomaly_score,is_anomaly` per input row.
pub fn score_csv<R: BufRead, W: Write>(
    mut input: R,
    mut output: W,
    settings: &MetricSettings,
) -> Result<ScoreSummary, ScoreError> {
    settings.validate().map_err(ScoreError::Settings)?;
    let mut detector = MetricDetector::new(settings.clone());
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Err(ScoreError::Empty);
    }
    let header: Vec<String> = line
        .trim_start_matches('\u{feff}')
        .trim_end()
        .split(',')
        .map(|h| unquote(h).to_ascii_lowercase())
        .collect();
    let ti = header
        .iter()
        .position(|h| h == "timestamp")
        .ok_or(ScoreError::MissingColumn("timestamp"))?;
    let vi = header
        .iter()
        .position(|h| h == "value")
        .ok_or(ScoreError::MissingColumn("value"))?;
    writeln!(output, "timestamp,value,anomaly_score,is_anomaly")?;
    let mut summary = ScoreSummary::default();
    let mut lineno = 1u64;
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        lineno += 1;
        let row = line.trim_end_matches(['\r', '\n']);
        if row.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = row.split(',').collect();
        let bad = |message: String| ScoreError::BadRow {
            line: lineno,
            message,
        };
        let (Some(t), Some(v)) = (fields.get(ti), fields.get(vi)) else {
            return Err(bad(format!(
                "expected {} columns, found {}",
                header.len(),
                fields.len()
            )));
        };
        let (t, v) = (unquote(t), unquote(v));
        let ts = parse_timestamp(t).ok_or_else(|| {
            bad(format!(
                "cannot read timestamp {t:?} (expected `YYYY-MM-DD HH:MM:SS`, RFC 3339 or epoch seconds)"
            ))
        })?;
        let value: f64 = v
            .parse()
            .map_err(|_| bad(format!("cannot read value {v:?} as a number")))?;
        let verdict = detector.observe(ts, value);
        summary.rows += 1;
        if verdict.accepted {
            summary.accepted += 1;
        } else {
            summary.rejected += 1;
        }
        summary.anomalies += verdict.anomaly as u64;
        writeln!(
            output,
            "{t},{v},{:.6},{}",
            verdict.score, verdict.anomaly as u8
        )?;
    }
    output.flush()?;
    Ok(summary)
}

/// Seconds since the Unix epoch from `YYYY-MM-DD[ T]HH:MM[:SS[.frac]][Z|±HH[:]MM]`, a bare
/// date, or (possibly fractional, negative) epoch seconds. Fractions are truncated.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    if s.len() < 10 || b[4] != b'-' {
        // Epoch seconds.
        if let Ok(n) = s.parse::<i64>() {
            return Some(n);
        }
        let f: f64 = s.parse().ok()?;
        return (f.is_finite() && f.abs() < 1e17).then(|| f.floor() as i64);
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[7] != b'-' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    if s.len() == 10 {
        return Some(days * 86_400);
    }
    if !(b[10] == b' ' || b[10] == b'T' || b[10] == b't') || s.len() < 16 || b[13] != b':' {
        return None;
    }
    let (h, mi) = (num(11..13)?, num(14..16)?);
    let mut i = 16;
    let mut sec = 0;
    if b.get(i) == Some(&b':') {
        sec = num(17..19)?;
        i = 19;
    }
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let mut offset = 0;
    match b.get(i) {
        None => {}
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => {}
        Some(&sign @ (b'+' | b'-')) => {
            let rest = &s[i + 1..];
            let (oh, om) = match rest.len() {
                5 if rest.as_bytes()[2] == b':' => (num(i + 1..i + 3)?, num(i + 4..i + 6)?),
                4 => (num(i + 1..i + 3)?, num(i + 3..i + 5)?),
                2 => (num(i + 1..i + 3)?, 0),
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            offset = (oh * 3600 + om * 60) * if sign == b'+' { 1 } else { -1 };
        }
        _ => return None,
    }
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_all_accepted_forms() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_timestamp("2014-04-01 00:00:00"), Some(1_396_310_400));
        assert_eq!(parse_timestamp("2014-04-01T00:00:00Z"), Some(1_396_310_400));
        assert_eq!(
            parse_timestamp("2014-04-01T02:00:00+02:00"),
            Some(1_396_310_400)
        );
        assert_eq!(
            parse_timestamp("2014-04-01 00:00:00.000000"),
            Some(1_396_310_400)
        );
        assert_eq!(parse_timestamp("2014-04-01"), Some(1_396_310_400));
        assert_eq!(parse_timestamp("1396310400"), Some(1_396_310_400));
        assert_eq!(parse_timestamp("1396310400.9"), Some(1_396_310_400));
        assert_eq!(parse_timestamp("2000-03-01 00:00"), Some(951_868_800));
        for bad in [
            "",
            "yesterday",
            "2014-13-01 00:00:00",
            "2014-04-01 25:00:00",
            "2014-04-01X00:00",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn scores_every_row_in_order_and_names_bad_lines() {
        let mut csv = String::from("timestamp,value\n");
        for i in 0..400 {
            let v = if i == 300 { 500.0 } else { (i % 7) as f64 };
            csv.push_str(&format!("2014-04-01 00:{:02}:{:02},{v}\n", i / 60, i % 60));
        }
        let mut out = Vec::new();
        let s = score_csv(csv.as_bytes(), &mut out, &MetricSettings::default()).unwrap();
        assert_eq!(s.rows, 400);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "timestamp,value,anomaly_score,is_anomaly");
        assert_eq!(lines.len(), 401);
        assert!(lines[301].ends_with(",1"), "{}", lines[301]);

        let bad = "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,abc\n";
        let err = score_csv(bad.as_bytes(), Vec::new(), &MetricSettings::default()).unwrap_err();
        assert!(err.to_string().starts_with("line 3:"), "{err}");
        let err = score_csv(
            "time,v\n".as_bytes(),
            Vec::new(),
            &MetricSettings::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ScoreError::MissingColumn("timestamp")));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any bytes as a CSV give rows or a line-numbered error, never a panic.
            #[test]
            fn csv_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                let mut input = b"timestamp,value\n".to_vec();
                input.extend(bytes);
                let _ = score_csv(input.as_slice(), Vec::new(), &MetricSettings::default());
            }

            /// Any text as a timestamp parses or is refused, never a panic.
            #[test]
            fn timestamp_parsing_never_panics(s in ".{0,40}") {
                let _ = parse_timestamp(&s);
            }
        }
    }
}
