//! The explanation object of the API: the detector's numbers behind an anomaly and one plain
//! sentence, as documented in the OpenAPI spec.

use poem_openapi::Object;
use serde::{Deserialize, Serialize};

use crate::core::detect::{Explanation, Finding};

/// Why an event or point was flagged.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(skip_serializing_if_is_none)]
pub struct ExplanationView {
    /// `metric` or `event`.
    pub detector: String,
    /// Calibrated anomaly score, 0..1.
    pub score: f64,
    /// Probability of a surprise at least this large under the recent baseline.
    pub p_value: f64,
    /// 1 - p_value.
    pub confidence: f64,
    /// Raw over compressed size of the baseline alone (higher = more regular).
    pub baseline_compression_ratio: f64,
    /// Raw over compressed size of the recent window alone.
    pub window_compression_ratio: f64,
    /// Normalized compression distance between window and baseline (0 same .. ~1 unrelated).
    pub ncd: f64,
    /// Bits per symbol to code the window given the baseline: C(window | baseline) / |window|.
    pub conditional_cost_bits_per_symbol: f64,
    /// Typical bits per symbol of the baseline given its own past.
    pub baseline_cost_bits_per_symbol: f64,
    /// Bits to code the flagged event or point itself given the baseline.
    pub observed_cost_bits: f64,
    /// Order-0 entropy of the window minus the baseline's, bits per symbol.
    pub entropy_delta: f64,
    pub baseline_len: u32,
    pub window_len: u32,
    /// Metrics only: the value seen and the range the model expected.
    pub observed: Option<f64>,
    pub expected_low: Option<f64>,
    pub expected_high: Option<f64>,
    /// One plain sentence.
    pub summary: String,
    /// Events only (issue 21): the fields behind the anomaly, most significant first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FindingView>>,
}

/// One field's part in an event anomaly.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct FindingView {
    /// The field's path in the event (`a.b`, `a[0]`), or `(event)` for the numeric fields together.
    pub field: String,
    /// `numeric`, `categorical`, `template`, `burst`, `structure`, `joint` or `state`.
    pub kind: String,
    /// The signal's own p-value before combination.
    pub p_value: f64,
    /// One plain sentence with the numbers, e.g. `status 500: seen 3 times in the last 10,000 events (0.03%)`.
    pub summary: String,
}

impl ExplanationView {
    /// Adds an event detector's per-field findings (none: the field stays absent).
    pub fn with_findings(mut self, findings: &[Finding]) -> Self {
        if !findings.is_empty() {
            self.fields = Some(
                findings
                    .iter()
                    .map(|f| FindingView {
                        field: f.field.clone(),
                        kind: f.kind.clone(),
                        p_value: f.p_value,
                        summary: f.summary.clone(),
                    })
                    .collect(),
            );
        }
        self
    }
}

impl From<Explanation> for ExplanationView {
    fn from(e: Explanation) -> Self {
        ExplanationView {
            detector: e.detector,
            score: e.score,
            p_value: e.p_value,
            confidence: e.confidence,
            baseline_compression_ratio: e.baseline_compression_ratio,
            window_compression_ratio: e.window_compression_ratio,
            ncd: e.ncd,
            conditional_cost_bits_per_symbol: e.conditional_cost_bits_per_symbol,
            baseline_cost_bits_per_symbol: e.baseline_cost_bits_per_symbol,
            observed_cost_bits: e.observed_cost_bits,
            entropy_delta: e.entropy_delta,
            baseline_len: e.baseline_len,
            window_len: e.window_len,
            observed: e.observed,
            expected_low: e.expected_low,
            expected_high: e.expected_high,
            summary: e.summary,
            fields: None,
        }
    }
}
