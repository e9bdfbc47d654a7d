//! `driftlock score-events`: runs the stream (event) detector over NDJSON events (issue 21).
//!
//! Owns NDJSON reading and verdict writing. Events are scored one at a time in file order by a
//! detector with exactly the settings it is given (the CLI passes a new stream's defaults), so
//! no event ever sees a later one; the verdicts are what `POST /v1/streams/{id}/events` would
//! answer for the same events sent in order. Uses only the `Read`/`Write` traits it is handed;
//! it opens no files itself.

use std::io::{BufRead, Write};

use serde_json::{json, Value};

use crate::core::detect::{DetectError, EventDetector, EventSettings};

/// Totals of one scoring run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScoreEventsSummary {
    pub events: u64,
    pub anomalies: u64,
}

/// Why scoring stopped.
#[derive(Debug)]
pub enum ScoreEventsError {
    Io(std::io::Error),
    /// A line is not JSON; `line` is 1-based.
    BadLine {
        line: u64,
        message: String,
    },
    Settings(DetectError),
}

impl std::fmt::Display for ScoreEventsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScoreEventsError::Io(e) => write!(f, "while reading or writing NDJSON: {e}"),
            ScoreEventsError::BadLine { line, message } => write!(f, "line {line}: {message}"),
            ScoreEventsError::Settings(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ScoreEventsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScoreEventsError::Io(e) => Some(e),
            ScoreEventsError::Settings(e) => Some(e),
            ScoreEventsError::BadLine { .. } => None,
        }
    }
}

impl From<std::io::Error> for ScoreEventsError {
    fn from(e: std::io::Error) -> Self {
        ScoreEventsError::Io(e)
    }
}

/// Scores `input` (one JSON value per line; blank lines are skipped) into `output`: one line
/// per event, `{"index", "anomaly", "score", "warming_up", "explanation"?}`.
pub fn score_ndjson<R: BufRead, W: Write>(
    mut input: R,
    mut output: W,
    settings: &EventSettings,
) -> Result<ScoreEventsSummary, ScoreEventsError> {
    settings.validate().map_err(ScoreEventsError::Settings)?;
    let mut detector = EventDetector::new(settings.clone());
    let mut summary = ScoreEventsSummary::default();
    let mut line = String::new();
    let mut lineno = 0u64;
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        lineno += 1;
        let text = line.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            continue;
        }
        let event: Value = serde_json::from_str(text).map_err(|e| ScoreEventsError::BadLine {
            line: lineno,
            message: format!("not a JSON value: {e}"),
        })?;
        let verdict = detector.observe(&event);
        let mut out = json!({
            "index": summary.events,
            "anomaly": verdict.anomaly,
            "score": verdict.score,
            "warming_up": verdict.warming_up_remaining > 0,
        });
        if let Some(e) = verdict.explanation.filter(|_| verdict.anomaly) {
            out["explanation"] = serde_json::to_value(e).unwrap_or(Value::Null);
        }
        serde_json::to_writer(&mut output, &out).map_err(std::io::Error::from)?;
        output.write_all(b"\n")?;
        summary.events += 1;
        summary.anomalies += verdict.anomaly as u64;
    }
    output.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_verdict_per_event_in_order_and_bad_lines_are_named() {
        let mut input = String::new();
        for i in 0..300 {
            input.push_str(&format!("{{\"a\": {}, \"b\": \"x\"}}\n", i % 5));
            if i == 10 {
                input.push('\n');
            }
        }
        let mut out = Vec::new();
        let s = score_ndjson(input.as_bytes(), &mut out, &EventSettings::default()).unwrap();
        assert_eq!(s.events, 300);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 300);
        assert_eq!(lines[299]["index"], 299);
        assert_eq!(lines[0]["warming_up"], true);
        for l in &lines {
            assert_eq!(l["anomaly"] == true, l.get("explanation").is_some());
        }
        let err = score_ndjson(
            "{}\n{oops\n".as_bytes(),
            Vec::new(),
            &EventSettings::default(),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("line 2:"), "{err}");
    }
}
