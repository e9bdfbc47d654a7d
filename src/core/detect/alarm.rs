//! From calibrated signal p-values to alarms: the metric detector's decision stage (issue 3).
//!
//! Owns two things the detector does after its signals are calibrated:
//! - [`fisher`]: Fisher's combination of the signals' p-values. The statistic is the summed
//!   surprisal `S = -ln p1 - ... - ln pk`; under the null each term is an exponential, so `S`
//!   is Gamma(k, 1) and its survival is `e^-S * sum_{j<k} S^j / j!`. Unlike the minimum
//!   p-value (Bonferroni), it lets signals that agree reinforce each other: on NAB a real
//!   incident usually moves the point and the sequence signals together, while a chance
//!   extreme usually moves one. The signals are not independent (the sequence cost contains
//!   the point cost), so the result is not an exact p-value; the alarm threshold absorbs that.
//! - [`AlarmGate`]: the peak filter and the hold-off, both measured in time. `suppression`
//!   and `holdoff` are given in points and turned into spans of seconds at the series'
//!   typical sampling interval (the median of the last [`INTERVALS`] gaps), so a gap in the
//!   data does not stretch a hold-off over hours or days of new points, and a burst of
//!   closely spaced points does not cut it short.

use super::ring::Ring;
use super::state::{Reader, Writer};
use super::DetectError;

/// Gaps between points that the typical sampling interval is the median of (odd: one middle).
const INTERVALS: usize = 31;
/// The typical interval is re-estimated after this many new gaps (a median per point would
/// cost throughput for no benefit: sampling rates change slowly).
const CADENCE_EVERY: u32 = 16;
/// Factor applied to the score of a point the peak filter or the hold-off damps.
const SUPPRESSED_DAMPING: f64 = 0.05;
/// Score margin, as a fraction of the alarm threshold, by which a point must beat the alarm
/// that started a hold-off to alarm again inside it. Relative to the threshold so that it
/// keeps its meaning when the score scale changes (half the threshold: a p-value about 80
/// times smaller at the default threshold of 0.32).
const ESCALATION: f64 = 0.5;

/// Fisher's combined p-value of `k` signals whose surprisals (`-ln p`) sum to `s` (see module
/// doc); `k == 1` returns `e^-s`, the single p-value. Computed in logs so that very
/// surprising points keep a finite, ordered p-value; floored at 1e-300 like the calibrators.
pub(crate) fn fisher(k: u32, s: f64) -> f64 {
    let s = s.max(0.0);
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for j in 1..k.max(1) {
        term *= s / j as f64;
        sum += term;
    }
    (sum.ln() - s).exp().clamp(1e-300, 1.0)
}

/// Peak filter and hold-off in time (see module doc).
#[derive(Debug, Clone)]
pub(crate) struct AlarmGate {
    suppression: u32,
    holdoff: u32,
    threshold: f64,
    /// Recent gaps between accepted points, in seconds.
    intervals: Ring,
    /// Median of `intervals` (seconds), refreshed every [`CADENCE_EVERY`] gaps.
    cadence: f64,
    since_cadence: u32,
    /// Highest score since the peak filter last expired, and the last timestamp it covers.
    peak: f64,
    peak_until: i64,
    /// Last timestamp covered by the hold-off of the latest alarm (none before any alarm).
    holdoff_until: Option<i64>,
    /// Score of the alarm that started the hold-off.
    alarm_score: f64,
    scratch: Vec<f64>,
}

impl AlarmGate {
    pub(crate) fn new(suppression: u32, holdoff: u32, threshold: f64) -> Self {
        AlarmGate {
            suppression,
            holdoff,
            threshold,
            intervals: Ring::new(INTERVALS),
            cadence: 0.0,
            since_cadence: 0,
            peak: 0.0,
            peak_until: i64::MIN,
            holdoff_until: None,
            alarm_score: 0.0,
            scratch: Vec::with_capacity(INTERVALS),
        }
    }

    /// Records the gap between two accepted points (`ts > prev`).
    pub(crate) fn note_gap(&mut self, prev: i64, ts: i64) {
        self.intervals.push(ts.saturating_sub(prev) as f64);
        self.since_cadence += 1;
        // Every gap counts while the ring fills, so the first spans are already sensible.
        if self.since_cadence >= CADENCE_EVERY || self.intervals.len() < INTERVALS {
            self.since_cadence = 0;
            self.scratch.clear();
            self.scratch.extend(self.intervals.iter());
            let n = self.scratch.len();
            self.cadence = *self.scratch.select_nth_unstable_by(n / 2, f64::total_cmp).1;
        }
    }

    /// Seconds spanned by `points` points at the typical interval (saturating).
    fn span(&self, points: u32) -> i64 {
        (points as f64 * self.cadence) as i64
    }

    /// Applies the peak filter and the hold-off to the score of the point at `ts`; returns the
    /// (possibly damped) score and whether the point alarms. `ready` is false while warming up.
    pub(crate) fn judge(&mut self, ts: i64, score: f64, ready: bool) -> (f64, bool) {
        let mut score = score;
        // Only a new peak within the suppression horizon keeps its score: later, smaller
        // surprises of the same incident are damped so one incident yields one early alarm.
        let recent_peak = if ts <= self.peak_until {
            self.peak
        } else {
            0.0
        };
        let suppressed = score <= recent_peak;
        if suppressed {
            score *= SUPPRESSED_DAMPING;
        } else {
            self.peak = score;
            self.peak_until = ts.saturating_add(self.span(self.suppression));
        }
        // During a hold-off only a clearly larger surprise than the incident's alarm counts.
        let holding = self.holdoff_until.is_some_and(|t| ts <= t);
        let held = holding && score < self.alarm_score + ESCALATION * self.threshold;
        if held && !suppressed {
            score *= SUPPRESSED_DAMPING;
        }
        let anomaly = ready && !suppressed && !held && score >= self.threshold;
        if anomaly {
            self.holdoff_until = Some(ts.saturating_add(self.span(self.holdoff)));
            self.alarm_score = score;
        }
        (score, anomaly)
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        self.intervals.encode(w);
        w.f64(self.cadence);
        w.u32(self.since_cadence);
        w.f64(self.peak);
        w.i64(self.peak_until);
        match self.holdoff_until {
            Some(t) => {
                w.u8(1);
                w.i64(t);
            }
            None => w.u8(0),
        }
        w.f64(self.alarm_score);
    }

    /// Reads a gate written by [`AlarmGate::encode`]; settings come from the detector's.
    pub(crate) fn decode(
        r: &mut Reader<'_>,
        suppression: u32,
        holdoff: u32,
        threshold: f64,
    ) -> Result<Self, DetectError> {
        let mut g = AlarmGate::new(suppression, holdoff, threshold);
        g.intervals = Ring::decode(r, INTERVALS)?;
        g.cadence = r.f64()?;
        g.since_cadence = r.u32()?;
        g.peak = r.f64()?;
        g.peak_until = r.i64()?;
        g.holdoff_until = match r.u8()? {
            0 => None,
            _ => Some(r.i64()?),
        };
        g.alarm_score = r.f64()?;
        let finite = [g.cadence, g.peak, g.alarm_score]
            .iter()
            .all(|x| x.is_finite() && *x >= 0.0);
        if !finite || g.since_cadence > CADENCE_EVERY || g.intervals.iter().any(|x| x < 0.0) {
            return Err(DetectError::CorruptState("bad alarm gate".into()));
        }
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fisher_is_the_single_p_for_one_signal_and_rewards_agreement() {
        let p = 1e-3f64;
        assert!((fisher(1, -p.ln()) - p).abs() < 1e-15);
        // Two signals at 1e-3 each beat one at 1e-3 and one silent.
        let both = fisher(2, -2.0 * p.ln());
        let one = fisher(2, -p.ln());
        assert!(both < one && one < 1.0, "{both} {one}");
        // Silent signals give p = 1; huge surprisals stay positive and ordered.
        assert_eq!(fisher(3, 0.0), 1.0);
        assert!(fisher(3, 700.0) >= 1e-300 && fisher(3, 50.0) > fisher(3, 60.0));
    }

    #[test]
    fn hold_off_is_measured_in_time() {
        let mut g = AlarmGate::new(0, 10, 0.2);
        for i in 1..40 {
            g.note_gap(60 * (i - 1), 60 * i);
        }
        assert_eq!(g.span(10), 600);
        assert!(g.judge(10_000, 0.5, true).1);
        // Inside the 10-minute hold-off an equal score is held; after it, it alarms again.
        assert!(!g.judge(10_300, 0.5, true).1);
        assert!(g.judge(10_601, 0.5, true).1);
        // A clearly larger surprise breaks through.
        assert!(g.judge(10_660, 0.7, true).1);
    }

    #[test]
    fn round_trip_is_exact() {
        let mut g = AlarmGate::new(100, 60, 0.3);
        for i in 1..50 {
            g.note_gap(300 * (i - 1), 300 * i + (i % 3));
        }
        g.judge(20_000, 0.6, true);
        let mut w = Writer::new(b"TEST", 1);
        g.encode(&mut w);
        let bytes = w.finish();
        let (mut r, _) = Reader::open(&bytes, b"TEST").unwrap();
        let mut h = AlarmGate::decode(&mut r, 100, 60, 0.3).unwrap();
        r.finish().unwrap();
        for i in 0..300 {
            let (ts, s) = (20_300 + 300 * i, (i % 7) as f64 / 10.0);
            g.note_gap(ts - 300, ts);
            h.note_gap(ts - 300, ts);
            assert_eq!(g.judge(ts, s, true), h.judge(ts, s, true));
        }
    }
}
