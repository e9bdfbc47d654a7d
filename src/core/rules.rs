//! Suppression rules made from feedback (issue 22): a `false_positive` or `expected` verdict
//! turns the anomaly's explanation into a rule that later verdicts are checked against, so
//! the same thing is not flagged (nor billed) again while the rule exists. Rules are visible
//! (each says in a sentence what it covers), and deleting one brings the detections back.
//! Pure: the store keeps the rules, the ingest paths apply them after the detector.
//!
//! A stream rule holds one condition per field that made the event odd (its findings): the
//! same value for a categorical value or a key that appeared, the same message template for
//! a template, and for a number a value within a factor of [`NUMBER_FACTOR`] of the one
//! disputed (same sign). Findings about the event as a whole (its joint T², the stream's
//! state) become a number condition on each numeric field. A later flagged event is
//! suppressed by a rule when every condition holds and every field it was flagged for is one
//! the rule covers, so new evidence on another field is still flagged.
//!
//! A monitor rule holds a direction and a range: above (or below) the expected range, by up
//! to [`NUMBER_FACTOR`] times the excess that was disputed. An alarm on the same side whose
//! value is within the range is suppressed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::detect::{Explanation, Finding};

/// How far a number may be from the disputed one and still be covered: between the disputed
/// value divided and multiplied by this (a monitor: up to this times the disputed excess).
pub const NUMBER_FACTOR: f64 = 2.0;
/// The joint (whole-event) findings' field name.
const WHOLE_EVENT: &str = "(event)";
/// Conditions one rule holds at most.
const MAX_CONDITIONS: usize = 16;

/// One condition of a stream rule on a field of the event (a flattened path, `a.b`, `a[0]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Condition {
    /// The field holds this JSON value.
    Equals { field: String, value: Value },
    /// The field is a number within `[low, high]`.
    Between { field: String, low: f64, high: f64 },
    /// The field is text whose template (variable tokens masked) is this one.
    Template { field: String, template: String },
}

impl Condition {
    pub fn field(&self) -> &str {
        match self {
            Condition::Equals { field, .. }
            | Condition::Between { field, .. }
            | Condition::Template { field, .. } => field,
        }
    }

    fn holds(&self, fields: &[(String, Value)]) -> bool {
        let Some((_, v)) = fields.iter().find(|(f, _)| f == self.field()) else {
            return false;
        };
        match self {
            Condition::Equals { value, .. } => v == value,
            Condition::Between { low, high, .. } => {
                v.as_f64().is_some_and(|x| (*low..=*high).contains(&x))
            }
            Condition::Template { template, .. } => v
                .as_str()
                .is_some_and(|s| crate::core::detect::text_template(s) == *template),
        }
    }

    fn describe(&self) -> String {
        match self {
            Condition::Equals { field, value } => format!("{field} is {value}"),
            Condition::Between { field, low, high } => {
                format!("{field} is between {} and {}", num(*low), num(*high))
            }
            Condition::Template { field, template } => {
                format!("{field} matches the template `{template}`")
            }
        }
    }
}

/// What a stream rule covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamMatch {
    pub conditions: Vec<Condition>,
    /// The fields a flagged event may be flagged for and still be suppressed (the disputed
    /// anomaly's finding fields, `(event)` for its whole-event findings).
    pub covers: Vec<String>,
}

/// The band of numbers a rule accepts around `x`.
fn band(x: f64) -> (f64, f64) {
    if x >= 0.0 {
        (x / NUMBER_FACTOR, x * NUMBER_FACTOR)
    } else {
        (x * NUMBER_FACTOR, x / NUMBER_FACTOR)
    }
}

fn condition_for(field: &str, kind: &str, value: &Value) -> Condition {
    let field = field.to_string();
    match (kind, value) {
        ("numeric", Value::Number(n)) => {
            let (low, high) = band(n.as_f64().unwrap_or(0.0));
            Condition::Between { field, low, high }
        }
        ("template", Value::String(s)) => Condition::Template {
            field,
            template: crate::core::detect::text_template(s),
        },
        _ => Condition::Equals {
            field,
            value: value.clone(),
        },
    }
}

impl StreamMatch {
    /// The rule an event's findings make. `fields` are the event's flattened fields.
    pub fn from_findings(findings: &[Finding], fields: &[(String, Value)]) -> StreamMatch {
        let mut conditions: Vec<Condition> = Vec::new();
        let mut covers: Vec<String> = Vec::new();
        let mut whole_event = false;
        for f in findings {
            if !covers.contains(&f.field) {
                covers.push(f.field.clone());
            }
            if f.field == WHOLE_EVENT {
                whole_event = true;
                continue;
            }
            if conditions.iter().any(|c| c.field() == f.field) {
                continue;
            }
            let value = fields
                .iter()
                .find(|(name, _)| *name == f.field)
                .map(|(_, v)| v);
            // A key that vanished has nothing to hold it to: the coverage is enough.
            if let Some(v) = value {
                conditions.push(condition_for(&f.field, &f.kind, v));
            }
        }
        if whole_event {
            for (name, v) in fields {
                if v.is_number() && !conditions.iter().any(|c| c.field() == name) {
                    conditions.push(condition_for(name, "numeric", v));
                }
            }
        }
        conditions.truncate(MAX_CONDITIONS);
        StreamMatch { conditions, covers }
    }

    /// Whether a flagged event (its fields and findings) is covered by this rule.
    pub fn suppresses(&self, findings: &[Finding], fields: &[(String, Value)]) -> bool {
        !self.conditions.is_empty()
            && self.conditions.iter().all(|c| c.holds(fields))
            && findings.iter().all(|f| self.covers.contains(&f.field))
    }

    pub fn describe(&self) -> String {
        let parts: Vec<String> = self.conditions.iter().map(Condition::describe).collect();
        format!(
            "An event is not flagged for {} when {}.",
            self.covers.join(", "),
            parts.join(" and ")
        )
    }
}

/// The side of the expected range a monitor rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Above,
    Below,
}

/// What a monitor rule covers: values on one side of the expected range, within a range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorMatch {
    pub direction: Direction,
    pub low: f64,
    pub high: f64,
}

impl MonitorMatch {
    /// The rule a monitor anomaly's explanation makes; None when it names no expected range
    /// to be outside of.
    pub fn from_explanation(e: &Explanation) -> Option<MonitorMatch> {
        let observed = e.observed?;
        let (lo, hi) = (e.expected_low?, e.expected_high?);
        if observed > hi {
            Some(MonitorMatch {
                direction: Direction::Above,
                low: hi,
                high: hi + (observed - hi) * NUMBER_FACTOR,
            })
        } else if observed < lo {
            Some(MonitorMatch {
                direction: Direction::Below,
                low: lo - (lo - observed) * NUMBER_FACTOR,
                high: lo,
            })
        } else {
            None
        }
    }

    /// Whether an alarm on `value`, with its own explanation, is covered.
    pub fn suppresses(&self, value: f64, e: &Explanation) -> bool {
        let side = match (e.expected_low, e.expected_high) {
            (_, Some(hi)) if value > hi => Some(Direction::Above),
            (Some(lo), _) if value < lo => Some(Direction::Below),
            _ => None,
        };
        side == Some(self.direction) && (self.low..=self.high).contains(&value)
    }

    pub fn describe(&self) -> String {
        let side = match self.direction {
            Direction::Above => "above",
            Direction::Below => "below",
        };
        format!(
            "A value {side} the expected range is not flagged when it is between {} and {}.",
            num(self.low),
            num(self.high)
        )
    }
}

/// A stored rule: what it covers, which anomaly and verdict made it, who and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule<M> {
    /// Its number under its stream or monitor (`sr_<n>`, `mr_<n>` in answers).
    pub number: u64,
    /// The number of the anomaly whose feedback made it.
    pub anomaly_seq: u64,
    pub verdict: crate::core::feedback::Verdict,
    pub matcher: M,
    pub created_by: String,
    pub created_at_ms: i64,
}

fn num(x: f64) -> String {
    crate::core::detect::format_number(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn finding(field: &str, kind: &str) -> Finding {
        Finding {
            field: field.into(),
            kind: kind.into(),
            p_value: 1e-6,
            summary: String::new(),
        }
    }

    fn fields(v: &[(&str, Value)]) -> Vec<(String, Value)> {
        v.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn a_stream_rule_covers_the_same_event_and_not_new_evidence() {
        let event = fields(&[
            ("user", json!("intruder")),
            ("ms", json!(98765)),
            ("status", json!(500)),
        ]);
        let found = [finding("user", "categorical"), finding("ms", "numeric")];
        let rule = StreamMatch::from_findings(&found, &event);
        assert_eq!(rule.conditions.len(), 2);
        assert!(rule.suppresses(&found, &event));
        // A slower request by the same user is still within the band.
        let slower = fields(&[("user", json!("intruder")), ("ms", json!(150000))]);
        assert!(rule.suppresses(&found, &slower));
        // Another user, or a far slower request, is not covered.
        let other = fields(&[("user", json!("mallory")), ("ms", json!(98765))]);
        assert!(!rule.suppresses(&found, &other));
        let far = fields(&[("user", json!("intruder")), ("ms", json!(500000))]);
        assert!(!rule.suppresses(&found, &far));
        // Flagged for a field the rule does not cover: new evidence, still flagged.
        let more = [found[0].clone(), finding("status", "categorical")];
        assert!(!rule.suppresses(&more, &event));
        assert!(
            rule.describe().contains("user is \"intruder\""),
            "{}",
            rule.describe()
        );
    }

    #[test]
    fn whole_event_findings_hold_every_number_and_templates_match_by_template() {
        let event = fields(&[("a", json!(10.0)), ("b", json!(-4.0)), ("msg", json!("x"))]);
        let rule = StreamMatch::from_findings(&[finding("(event)", "joint")], &event);
        assert_eq!(rule.conditions.len(), 2, "{:?}", rule.conditions);
        assert!(rule.suppresses(&[finding("(event)", "state")], &event));
        let moved = fields(&[("a", json!(30.0)), ("b", json!(-4.0))]);
        assert!(!rule.suppresses(&[finding("(event)", "state")], &moved));

        let line = fields(&[("message", json!("disk 12 failed after 300 ms"))]);
        let rule = StreamMatch::from_findings(&[finding("message", "template")], &line);
        let again = fields(&[("message", json!("disk 7 failed after 41 ms"))]);
        assert!(rule.suppresses(&[finding("message", "template")], &again));
    }

    #[test]
    fn a_monitor_rule_covers_its_side_up_to_twice_the_excess() {
        let mut e = Explanation {
            observed: Some(114.0),
            expected_low: Some(100.0),
            expected_high: Some(110.0),
            ..Explanation::default()
        };
        let rule = MonitorMatch::from_explanation(&e).unwrap();
        assert_eq!(
            (rule.direction, rule.low, rule.high),
            (Direction::Above, 110.0, 118.0)
        );
        assert!(rule.suppresses(114.0, &e));
        assert!(rule.suppresses(117.0, &e));
        assert!(!rule.suppresses(119.0, &e));
        e.expected_low = Some(95.0);
        e.expected_high = Some(99.0);
        assert!(!rule.suppresses(90.0, &e), "below is the other side");
        e.observed = Some(105.0);
        e.expected_low = Some(100.0);
        e.expected_high = Some(110.0);
        assert_eq!(MonitorMatch::from_explanation(&e), None);
    }
}
