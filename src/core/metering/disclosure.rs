//! What a verdict discloses to the tenant who asked for it.
//!
//! Only detections are billed, so only a detection carries the detector's judgement in
//! numbers: its score and its explanation. A verdict that is not a detection says "not an
//! anomaly" and nothing more. Otherwise a client could set its sensitivity so that nothing is
//! ever counted and threshold the scores itself, having the detector's whole judgement for
//! free. The offline commands an operator runs (`driftlock score`, `score-events`) are not
//! tenant answers and keep the graded score of every point.

/// The score an answer shows for a verdict: the detection's own, or none.
pub fn disclosed_score(anomaly: bool, score: f64) -> Option<f64> {
    // `+ 0.0` turns a negative zero into zero.
    anomaly.then_some(score + 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_detection_shows_its_score() {
        assert_eq!(disclosed_score(true, 0.97), Some(0.97));
        assert_eq!(disclosed_score(false, 0.97), None);
        assert!(disclosed_score(true, -0.0).unwrap().is_sign_positive());
    }
}
