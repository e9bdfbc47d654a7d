//! The explanation attached to every anomaly (issue 3): the numbers behind a decision and one
//! plain sentence. Owns [`Explanation`] and number formatting for sentences; it computes
//! nothing itself, the detectors fill it in.

use serde::{Deserialize, Serialize};

/// Why a point or event was flagged. Compression figures are in the units of the detector's
/// symbols: quantized values for the metric detector, bytes of canonical JSON for events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// `"metric"` or `"event"`.
    pub detector: String,
    /// Calibrated anomaly score in 0..=1 (the verdict's score).
    pub score: f64,
    /// Probability of a surprise at least this large under the recent baseline.
    pub p_value: f64,
    /// `1 - p_value`.
    pub confidence: f64,
    /// Raw bits over compressed bits of the baseline alone (higher = more regular).
    pub baseline_compression_ratio: f64,
    /// Raw bits over compressed bits of the recent window alone.
    pub window_compression_ratio: f64,
    /// Normalized compression distance between the window and the baseline (0 = same, ~1 = unrelated).
    pub ncd: f64,
    /// Bits per symbol to code the window given the baseline, C(window | baseline) / |window|.
    pub conditional_cost_bits_per_symbol: f64,
    /// Typical bits per symbol of baseline symbols given their own past.
    pub baseline_cost_bits_per_symbol: f64,
    /// Bits to code the flagged point or event itself given the baseline.
    pub observed_cost_bits: f64,
    /// Order-0 entropy of the window minus that of the baseline, bits per symbol.
    pub entropy_delta: f64,
    /// Symbols (points or events) in the baseline and window compared.
    pub baseline_len: u32,
    pub window_len: u32,
    /// Metric detector only: the value seen and the range the model expected.
    pub observed: Option<f64>,
    pub expected_low: Option<f64>,
    pub expected_high: Option<f64>,
    /// One plain sentence.
    pub summary: String,
}

/// One field's part in an event anomaly (issue 21): which field, which model, how unlikely,
/// and a sentence with the numbers a person can act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The field's path in the event (`a.b`, `a[0]`), or `(event)` for joint findings.
    pub field: String,
    /// `numeric`, `categorical`, `template`, `burst`, `structure`, `joint` or `state`.
    pub kind: String,
    /// The signal's own p-value before combination.
    pub p_value: f64,
    /// One plain sentence.
    pub summary: String,
}

/// Formats a number for a sentence: 4 significant digits, scientific when very large or small.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if a != 0.0 && !(1e-3..1e7).contains(&a) {
        format!("{x:.3e}")
    } else if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 1.0 {
        let s = format!("{x:.3}");
        trim(s)
    } else {
        trim(format!("{x:.4}"))
    }
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Formats a p-value ("p < 1e-12" style floor keeps sentences short).
pub(crate) fn pval(p: f64) -> String {
    if p < 1e-12 {
        "p < 1e-12".to_string()
    } else {
        format!("p = {p:.2e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(12.5), "12.5");
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(123456.0), "123456");
        assert_eq!(num(3e9), "3.000e9");
        assert_eq!(pval(1e-20), "p < 1e-12");
    }
}
