//! Settings of the metric detector (issue 3): the public, persisted knobs and their ranges.
//!
//! Owns [`MetricSettings`]: `Default` (what `driftlock score` and new monitors use), range
//! validation with messages that name the field, clamping into range for detectors built from
//! unchecked settings, and the alarm threshold derived from `sensitivity`. Settings are stored
//! with monitors and inside detector state as JSON, so fields may be added (with a default)
//! but never renamed or removed.

use serde::{Deserialize, Serialize};

use super::DetectError;

/// Fewest points before the baseline is quantized (and the compression signals start).
pub(crate) const MIN_POINTS_TO_QUANTIZE: usize = 16;
/// Largest baseline (points); values are stored as `f32` so this fits the 64 KiB state.
const MAX_BASELINE: u32 = 4096;
/// Most time-of-day buckets (one per 5 minutes).
const MAX_BUCKETS: u32 = 288;
/// Longest calibration memory (points).
const MAX_CALIBRATION: u32 = 1_000_000;

/// Settings of a metric detector. `Default` is what `driftlock score` and new monitors use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricSettings {
    /// 0 (fewest alarms) ..= 1 (most alarms); moves the alarm threshold on the score.
    pub sensitivity: f64,
    /// Points in the rolling baseline the model learns from.
    pub baseline: u32,
    /// Points in the recent window that explanations compare with the baseline.
    pub window: u32,
    /// Points seen before any verdict other than "warming up".
    pub warmup: u32,
    /// Memory, in points, of each signal's calibration (the forgetting horizon of the
    /// histogram of its past raw values that turns new ones into p-values).
    pub calibration: u32,
    /// Quantization bins per robust standard deviation of the baseline.
    pub resolution: f64,
    /// Horizon in points of the peak filter: a score not above the highest score of the last
    /// `suppression` points is damped and cannot alarm. Applied as a span of time: this many
    /// points at the series' typical sampling interval.
    pub suppression: u32,
    /// Weight of the robust distance from the baseline median in the raw score (bits per sigma).
    pub distance_weight: f64,
    /// Pseudo-count with which each context order falls back on the next lower one.
    pub blend: f64,
    /// Cap, in robust standard deviations, of the distance term.
    pub distance_cap: f64,
    /// Points whose summed coding cost, less the costliest one, forms the sequence-novelty
    /// signal (0 = signal off): the conditional cost of the recent symbol sequence given the
    /// baseline's contexts, beyond the single surprise the point signal reports.
    pub sequence: u32,
    /// Points whose mean, against the baseline median in robust standard deviations, forms
    /// the level-shift signal (0 = signal off).
    pub level_window: u32,
    /// Points after an alarm during which scores are damped and cannot alarm: an incident
    /// (the alarm and its aftershocks) yields one alarm. Applied as a span of time: this many
    /// points at the series' typical sampling interval.
    pub holdoff: u32,
    /// Time-of-day buckets of the seasonal signal (0 = signal off): each bucket keeps a
    /// running level and deviation of the values seen at that time of day, and the signal is
    /// the new value's distance from its bucket's level in bucket deviations.
    pub seasonal_buckets: u32,
    /// Points whose mean seasonal distance forms the seasonal signal (sustained departures
    /// from the time-of-day norm outrank single noisy points).
    pub seasonal_window: u32,
}

impl Default for MetricSettings {
    fn default() -> Self {
        MetricSettings {
            sensitivity: 0.5,
            baseline: 4096,
            window: 16,
            warmup: 150,
            calibration: 20_000,
            resolution: 1.0,
            suppression: 100,
            distance_weight: 0.3,
            blend: 2.0,
            distance_cap: 50.0,
            sequence: 4,
            level_window: 0,
            holdoff: 60,
            seasonal_buckets: 96,
            seasonal_window: 8,
        }
    }
}

impl MetricSettings {
    /// Checks ranges; the message names the field and the allowed range.
    pub fn validate(&self) -> Result<(), DetectError> {
        let bad = |m: String| Err(DetectError::InvalidSettings(m));
        if !(0.0..=1.0).contains(&self.sensitivity) {
            return bad(format!(
                "sensitivity must be between 0 and 1, got {}",
                self.sensitivity
            ));
        }
        if !(32..=MAX_BASELINE).contains(&self.baseline) {
            return bad(format!(
                "baseline must be 32..={MAX_BASELINE} points, got {}",
                self.baseline
            ));
        }
        if self.window == 0 || self.window > self.baseline / 2 {
            return bad(format!(
                "window must be 1..={} (half the baseline), got {}",
                self.baseline / 2,
                self.window
            ));
        }
        if self.warmup < MIN_POINTS_TO_QUANTIZE as u32 || self.warmup > 100_000 {
            return bad(format!(
                "warmup must be 16..=100000 points, got {}",
                self.warmup
            ));
        }
        if !(16..=MAX_CALIBRATION).contains(&self.calibration) {
            return bad(format!(
                "calibration must be 16..={MAX_CALIBRATION} points, got {}",
                self.calibration
            ));
        }
        if !(self.resolution.is_finite() && (0.05..=64.0).contains(&self.resolution)) {
            return bad(format!(
                "resolution must be 0.05..=64, got {}",
                self.resolution
            ));
        }
        if self.suppression > 100_000 {
            return bad(format!(
                "suppression must be at most 100000, got {}",
                self.suppression
            ));
        }
        if !(self.distance_weight.is_finite() && (0.0..=100.0).contains(&self.distance_weight)) {
            return bad(format!(
                "distance_weight must be 0..=100, got {}",
                self.distance_weight
            ));
        }
        if !(self.blend.is_finite() && (0.01..=1000.0).contains(&self.blend)) {
            return bad(format!("blend must be 0.01..=1000, got {}", self.blend));
        }
        if !(self.distance_cap.is_finite() && (1.0..=1e6).contains(&self.distance_cap)) {
            return bad(format!(
                "distance_cap must be 1..=1e6, got {}",
                self.distance_cap
            ));
        }
        if self.seasonal_buckets > MAX_BUCKETS {
            return bad(format!(
                "seasonal_buckets must be 0..={MAX_BUCKETS}, got {}",
                self.seasonal_buckets
            ));
        }
        if !(1..=64).contains(&self.seasonal_window) {
            return bad(format!(
                "seasonal_window must be 1..=64 points, got {}",
                self.seasonal_window
            ));
        }
        if self.holdoff > 100_000 {
            return bad(format!(
                "holdoff must be at most 100000, got {}",
                self.holdoff
            ));
        }
        if self.sequence > 256 {
            return bad(format!(
                "sequence must be 0..=256 points, got {}",
                self.sequence
            ));
        }
        if self.level_window > 256 || self.level_window > self.baseline / 2 {
            return bad(format!(
                "level_window must be 0..={} points, got {}",
                (self.baseline / 2).min(256),
                self.level_window
            ));
        }
        Ok(())
    }

    /// Settings clamped into their valid ranges, so a detector never runs on nonsense.
    pub(crate) fn sanitized(mut self) -> Self {
        let d = MetricSettings::default();
        if !self.sensitivity.is_finite() {
            self.sensitivity = d.sensitivity;
        }
        self.sensitivity = self.sensitivity.clamp(0.0, 1.0);
        self.baseline = self.baseline.clamp(32, MAX_BASELINE);
        self.window = self.window.clamp(1, self.baseline / 2);
        self.warmup = self.warmup.clamp(MIN_POINTS_TO_QUANTIZE as u32, 100_000);
        self.calibration = self.calibration.clamp(16, MAX_CALIBRATION);
        if !self.resolution.is_finite() {
            self.resolution = d.resolution;
        }
        self.resolution = self.resolution.clamp(0.05, 64.0);
        self.suppression = self.suppression.min(100_000);
        if !self.distance_weight.is_finite() {
            self.distance_weight = d.distance_weight;
        }
        self.distance_weight = self.distance_weight.clamp(0.0, 100.0);
        if !self.blend.is_finite() {
            self.blend = d.blend;
        }
        self.blend = self.blend.clamp(0.01, 1000.0);
        if !self.distance_cap.is_finite() {
            self.distance_cap = d.distance_cap;
        }
        self.distance_cap = self.distance_cap.clamp(1.0, 1e6);
        self.sequence = self.sequence.min(256);
        self.holdoff = self.holdoff.min(100_000);
        self.seasonal_buckets = self.seasonal_buckets.min(MAX_BUCKETS);
        self.seasonal_window = self.seasonal_window.clamp(1, 64);
        self.level_window = self.level_window.min(256).min(self.baseline / 2);
        self
    }

    /// Score at or above which a point is an anomaly. The score is `-log10(p) / 12` of the
    /// Fisher-combined p-value; 0.32 at the default sensitivity (p about 1.5e-4) is where
    /// NAB's standard profile peaked on the labelled development files.
    pub fn alarm_threshold(&self) -> f64 {
        (0.32 - 0.2 * (self.sensitivity - 0.5)).clamp(0.05, 0.999)
    }
}
