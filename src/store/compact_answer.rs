//! The compact form an idempotency record keeps of a batch answer.
//!
//! A batch answer lists one result per event or point, and almost all of them say the same
//! thing ("not an anomaly", no score): kept whole, a 10,000-event answer is hundreds of
//! kilobytes held for a day. The compact form keeps the answer without its `results` and,
//! in their place, runs: consecutive results that differ only in their `index` (their
//! position) and in a `timestamp` advancing by a fixed step are one entry and a count.
//! Detections, each with its explanation, stay whole. [`compact`] keeps the compact form
//! only when [`expand`] gives back exactly the answer, so a replay is byte for byte the first
//! answer.

use serde_json::{json, Map, Value};

/// The key under which the runs replace `results` (never a key of an answer).
const RUNS: &str = "results_runs";

/// One run of alike results.
struct Run {
    template: Map<String, Value>,
    count: u64,
    /// First timestamp and step (epoch milliseconds), for results that have one.
    clock: Option<(i64, i64)>,
}

/// The compact form of `answer`, or `answer` itself when it has no results to fold or the
/// compact form would not expand back to it exactly.
pub fn compact(answer: &Value) -> Value {
    let Some(results) = answer.get("results").and_then(Value::as_array) else {
        return answer.clone();
    };
    let mut runs: Vec<Run> = Vec::new();
    for (position, result) in results.iter().enumerate() {
        let Some(entry) = result.as_object() else {
            return answer.clone();
        };
        if entry.get("index").and_then(Value::as_u64) != Some(position as u64) {
            return answer.clone();
        }
        let mut template = entry.clone();
        template.remove("index");
        let ms = match template.remove("timestamp") {
            None => None,
            Some(Value::String(s)) => match parse_ms(&s) {
                Some(ms) => Some(ms),
                None => return answer.clone(),
            },
            Some(_) => return answer.clone(),
        };
        if let Some(run) = runs.last_mut() {
            if run.template == template && extends(run, ms) {
                if let (Some((first, 0)), Some(ms), 1) = (run.clock, ms, run.count) {
                    run.clock = Some((first, ms - first));
                }
                run.count += 1;
                continue;
            }
        }
        runs.push(Run {
            template,
            count: 1,
            clock: ms.map(|ms| (ms, 0)),
        });
    }
    let mut out = answer.as_object().cloned().unwrap_or_default();
    out.remove("results");
    let runs: Vec<Value> = runs
        .into_iter()
        .map(|r| match r.clock {
            Some((first, step)) => {
                json!({"n": r.count, "entry": r.template, "from_ms": first, "step_ms": step})
            }
            None => json!({"n": r.count, "entry": r.template}),
        })
        .collect();
    out.insert(RUNS.into(), Value::Array(runs));
    let compacted = Value::Object(out);
    if expand(&compacted) == *answer {
        compacted
    } else {
        answer.clone()
    }
}

/// A result with time `ms` continues `run`: both without time, or on the run's step.
fn extends(run: &Run, ms: Option<i64>) -> bool {
    match (run.clock, ms) {
        (None, None) => true,
        (Some((first, 0)), Some(ms)) => run.count == 1 && ms > first,
        (Some((first, step)), Some(ms)) => first + step * run.count as i64 == ms,
        _ => false,
    }
}

/// The answer a stored record stands for: compact records are expanded, whole ones (and
/// records kept before compaction) are returned as they are.
pub fn expand(stored: &Value) -> Value {
    let Some(runs) = stored.get(RUNS).and_then(Value::as_array) else {
        return stored.clone();
    };
    let mut results = Vec::new();
    for run in runs {
        let template = run["entry"].as_object().cloned().unwrap_or_default();
        let from_ms = run["from_ms"].as_i64();
        let step_ms = run["step_ms"].as_i64().unwrap_or(0);
        for k in 0..run["n"].as_u64().unwrap_or(0) {
            let mut entry = Map::new();
            entry.insert("index".into(), json!(results.len()));
            entry.extend(template.clone());
            if let Some(first) = from_ms {
                let ms = first + step_ms * k as i64;
                entry.insert(
                    "timestamp".into(),
                    Value::String(crate::clock::format_rfc3339(ms)),
                );
            }
            results.push(Value::Object(entry));
        }
    }
    let mut out = stored.as_object().cloned().unwrap_or_default();
    out.remove(RUNS);
    out.insert("results".into(), Value::Array(results));
    Value::Object(out)
}

/// Epoch milliseconds of a timestamp as answers write it (`clock::format_rfc3339`); None
/// for any other form (the exactness check in [`compact`] refuses what does not round-trip).
fn parse_ms(s: &str) -> Option<i64> {
    let millis: i64 = s.get(20..23)?.parse().ok()?;
    let ms = crate::score::parse_timestamp(s)?.checked_mul(1000)? + millis;
    (crate::clock::format_rfc3339(ms) == s).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(n: usize, anomaly_at: usize) -> Value {
        let results: Vec<Value> = (0..n)
            .map(|i| {
                let ts = crate::clock::format_rfc3339(1_800_000_000_000 + 60_000 * i as i64);
                if i == anomaly_at {
                    json!({"index": i, "timestamp": ts, "accepted": true, "anomaly": true,
                           "score": 0.99, "warming_up": false, "explanation": {"summary": "x"}})
                } else {
                    json!({"index": i, "timestamp": ts, "accepted": true, "anomaly": false,
                           "warming_up": i < 10})
                }
            })
            .collect();
        json!({"monitor_id": "m", "results": results, "anomalies": 1})
    }

    #[test]
    fn a_batch_answer_folds_into_runs_and_expands_back_exactly() {
        let answer = points(10_000, 5_000);
        let stored = compact(&answer);
        assert!(stored.get("results").is_none());
        assert_eq!(stored[RUNS].as_array().unwrap().len(), 4);
        assert_eq!(expand(&stored), answer);
        let whole = serde_json::to_vec(&answer).unwrap().len();
        let kept = serde_json::to_vec(&stored).unwrap().len();
        assert!(kept * 500 < whole, "{kept} of {whole} bytes");
    }

    #[test]
    fn results_without_a_clock_or_with_irregular_times_still_round_trip() {
        let events = json!({"results": [
            {"index": 0, "anomaly": false, "warming_up": false},
            {"index": 1, "anomaly": false, "warming_up": false},
            {"index": 2, "anomaly": true, "score": 0.5, "warming_up": false}]});
        assert_eq!(expand(&compact(&events)), events);
        let mut irregular = points(5, 9);
        irregular["results"][3]["timestamp"] = json!("2027-01-01T00:00:00.000Z");
        assert_eq!(expand(&compact(&irregular)), irregular);
        let odd = json!({"results": [{"index": 0, "timestamp": "yesterday"}]});
        assert_eq!(compact(&odd), odd);
        let answer_without_results = json!({"used": 3});
        assert_eq!(
            expand(&compact(&answer_without_results)),
            answer_without_results
        );
    }
}
