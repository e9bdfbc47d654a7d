//! Streaming metric detector over (timestamp, value) points (issue 3).
//!
//! Owns [`MetricDetector`]: values are quantized into symbols (bins of a fraction of the
//! baseline's robust spread) and coded by an order-2 context model of the rolling baseline
//! ([`super::context`]); the code length of each new point given the baseline is its
//! compression surprise. That surprise, fused with a robust distance from the baseline, is
//! calibrated against the detector's own recent raw scores ([`super::calibrate`]) into a
//! p-value. A second, level-shift member compares the median of the newest `shift_window`
//! points with the baseline median and is calibrated the same way on its own; the two are
//! combined by Bonferroni min-p (twice the smaller p-value), so a sustained shift that no
//! single point makes surprising still alarms. The p-value becomes a 0..1 score. A peak filter
//! then damps any score that is not above the highest of the last `suppression` points, and a
//! refractory span damps every score for `suppression` points after an alarm: one early alarm
//! per incident is what an operator (and NAB) wants. Alarms stay in both calibrations (on NAB
//! that scored better than excluding them). Pure: no I/O, clock, threads or randomness.
//!
//! Input rule: a non-finite value, or a timestamp not strictly after the last accepted one
//! (out of order or duplicate), is rejected (`accepted: false`, score 0) and leaves the state
//! untouched. Finite values beyond ±1e15 are clamped to ±1e15.

use serde::{Deserialize, Serialize};

use super::calibrate::Calibrator;
use super::context::ContextModel;
use super::explain::Explanation;
use super::ring::Ring;
use super::state::{Reader, Writer};
use super::DetectError;

const MAGIC: &[u8; 4] = b"DLMD";
const VERSION: u16 = 2;
/// Values are clamped to this magnitude (documented input rule).
pub const MAX_ABS_VALUE: f64 = 1e15;
const STATS_EVERY: u32 = 16;
const SUPPRESSED_DAMPING: f64 = 0.05;
/// A p-value of 10^-SCORE_DECADES maps to score 1.
const SCORE_DECADES: f64 = 12.0;
const MIN_POINTS_TO_QUANTIZE: usize = 16;
/// Largest `shift_window`.
const MAX_SHIFT_WINDOW: usize = 256;

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
    /// Recent raw scores kept to calibrate new ones into p-values.
    pub calibration: u32,
    /// Quantization bins per robust standard deviation of the baseline.
    pub resolution: f64,
    /// Horizon in points of the peak filter and the refractory span: a score not above the
    /// highest score of the last `suppression` points, or within `suppression` points after an
    /// alarm, is damped and cannot alarm.
    pub suppression: u32,
    /// Weight of the robust distance from the baseline median in the raw score (bits per sigma).
    pub distance_weight: f64,
    /// Pseudo-count with which each context order falls back on the next lower one.
    pub blend: f64,
    /// Cap, in robust standard deviations, of the distance term.
    pub distance_cap: f64,
    /// Points in the level-shift detector's recent window (0 turns it off): the distance of
    /// their median from the baseline median is calibrated on its own and combined with the
    /// point score by Bonferroni min-p, so sustained shifts alarm even when no single point
    /// is surprising.
    pub shift_window: u32,
}

impl Default for MetricSettings {
    fn default() -> Self {
        MetricSettings {
            sensitivity: 0.5,
            baseline: 4096,
            window: 16,
            warmup: 150,
            calibration: 3600,
            resolution: 1.0,
            suppression: 100,
            distance_weight: 0.3,
            blend: 2.0,
            distance_cap: 50.0,
            shift_window: 32,
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
        if !(32..=4096).contains(&self.baseline) {
            return bad(format!(
                "baseline must be 32..=4096 points, got {}",
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
        if !(16..=4096).contains(&self.calibration) {
            return bad(format!(
                "calibration must be 16..=4096 scores, got {}",
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
        if self.shift_window > 256 || self.shift_window > self.baseline / 2 {
            return bad(format!(
                "shift_window must be 0..={}, got {}",
                (self.baseline / 2).min(256),
                self.shift_window
            ));
        }
        Ok(())
    }

    /// Settings clamped into their valid ranges, so a detector never runs on nonsense.
    fn sanitized(mut self) -> Self {
        let d = MetricSettings::default();
        if !self.sensitivity.is_finite() {
            self.sensitivity = d.sensitivity;
        }
        self.sensitivity = self.sensitivity.clamp(0.0, 1.0);
        self.baseline = self.baseline.clamp(32, 4096);
        self.window = self.window.clamp(1, self.baseline / 2);
        self.warmup = self.warmup.clamp(MIN_POINTS_TO_QUANTIZE as u32, 100_000);
        self.calibration = self.calibration.clamp(16, 4096);
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
        self.shift_window = self.shift_window.min(256).min(self.baseline / 2);
        self
    }

    /// Score at or above which a point is an anomaly.
    pub fn alarm_threshold(&self) -> f64 {
        (0.205 - 0.2 * (self.sensitivity - 0.5)).clamp(0.05, 0.999)
    }
}

/// The detector's answer for one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricVerdict {
    /// Calibrated anomaly score in 0..=1.
    pub score: f64,
    pub anomaly: bool,
    /// Points still needed before verdicts are meaningful (0 when ready).
    pub warming_up_remaining: u32,
    /// Present exactly when `anomaly` is true.
    pub explanation: Option<Explanation>,
    /// False when the point was rejected by the input rule (see module doc).
    pub accepted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Quant {
    step: f64,
    anchor: f64,
    /// Robust scale when this quantization was chosen.
    scale: f64,
}

impl Quant {
    #[inline]
    fn symbol(&self, x: f64) -> i32 {
        ((x - self.anchor) / self.step).floor().clamp(-1e9, 1e9) as i32
    }
}

/// Streaming metric detector; see the module doc.
#[derive(Debug, Clone)]
pub struct MetricDetector {
    settings: MetricSettings,
    threshold: f64,
    last_ts: Option<i64>,
    accepted: u64,
    values: Ring,
    /// Symbols of `values` under `quant` (derived, never stored).
    syms: Vec<i32>,
    sym_head: usize,
    model: ContextModel,
    quant: Option<Quant>,
    median: f64,
    scale: f64,
    since_stats: u32,
    calib: Calibrator,
    /// Calibration of the level-shift statistic.
    shift_calib: Calibrator,
    window_costs: Ring,
    cost_avg: f64,
    peak: f64,
    peak_age: u32,
    /// Points since the last alarm (saturating; `u32::MAX` when none yet).
    since_alarm: u32,
    scratch: Vec<f64>,
}

impl MetricDetector {
    pub fn new(settings: MetricSettings) -> Self {
        let settings = settings.sanitized();
        let b = settings.baseline as usize;
        MetricDetector {
            threshold: settings.alarm_threshold(),
            last_ts: None,
            accepted: 0,
            values: Ring::new(b),
            syms: Vec::with_capacity(b),
            sym_head: 0,
            model: ContextModel::new(settings.blend),
            quant: None,
            median: 0.0,
            scale: 0.0,
            since_stats: 0,
            calib: Calibrator::new_compact(settings.calibration as usize, 0.05),
            shift_calib: Calibrator::new_compact(settings.calibration as usize, 0.05),
            window_costs: Ring::new(settings.window as usize),
            cost_avg: 0.0,
            peak: 0.0,
            peak_age: 0,
            since_alarm: u32::MAX,
            scratch: Vec::with_capacity(b),
            settings,
        }
    }

    pub fn settings(&self) -> &MetricSettings {
        &self.settings
    }

    /// Points accepted so far.
    pub fn points_accepted(&self) -> u64 {
        self.accepted
    }

    fn warming_remaining(&self) -> u32 {
        (self.settings.warmup as u64).saturating_sub(self.accepted) as u32
    }

    /// Symbol `k` back from the newest in the ring (0 = newest).
    #[inline]
    fn sym_back(&self, k: usize) -> Option<i32> {
        let n = self.syms.len();
        if k >= n {
            return None;
        }
        let i = (self.sym_head + n - 1 - k) % n;
        Some(self.syms[i])
    }

    /// Scores one point, then learns it. Never panics.
    pub fn observe(&mut self, timestamp_secs: i64, value: f64) -> MetricVerdict {
        if !value.is_finite() || self.last_ts.is_some_and(|t| timestamp_secs <= t) {
            return MetricVerdict {
                score: 0.0,
                anomaly: false,
                warming_up_remaining: self.warming_remaining(),
                explanation: None,
                accepted: false,
            };
        }
        let x = value.clamp(-MAX_ABS_VALUE, MAX_ABS_VALUE);
        self.last_ts = Some(timestamp_secs);
        self.accepted += 1;
        let warming = self.warming_remaining();

        let mut scored = None;
        if let Some(q) = self.quant {
            let s = q.symbol(x);
            let centre = q.symbol(self.median);
            let cost = self
                .model
                .cost(self.sym_back(1), self.sym_back(0), s, centre);
            let z = ((x - self.median).abs() / self.scale).min(self.settings.distance_cap);
            let raw = cost + self.settings.distance_weight * z;
            scored = Some((s, cost, raw));
        }
        let shift = match scored {
            Some(_) if self.settings.shift_window > 0 => Some(self.shift_distance(x)),
            _ => None,
        };

        let (mut score, mut p) = (0.0, 1.0);
        if let (Some((_, _, raw)), 0) = (scored, warming) {
            p = self.calib.p_value(raw);
            if let Some(d) = shift {
                // Bonferroni: two tests, so the smaller p-value counts twice.
                p = (2.0 * p.min(self.shift_calib.p_value(d))).min(1.0);
            }
            score = (-p.log10() / SCORE_DECADES).clamp(0.0, 1.0);
        }
        // Only a new peak within the suppression horizon keeps its score: later, smaller
        // surprises of the same incident are damped so one incident yields one early alarm.
        let recent_peak = if self.peak_age < self.settings.suppression {
            self.peak
        } else {
            0.0
        };
        let suppressed = score <= recent_peak;
        if suppressed {
            score *= SUPPRESSED_DAMPING;
            self.peak_age = self.peak_age.saturating_add(1);
        } else {
            self.peak = score;
            self.peak_age = 0;
        }
        // Refractory span: within `suppression` points of an alarm, the incident has been
        // reported; a climbing run of ever-slightly-higher scores is not a new incident.
        let refractory = self.since_alarm < self.settings.suppression;
        if refractory && !suppressed {
            score *= SUPPRESSED_DAMPING;
        }
        let anomaly = warming == 0 && !suppressed && !refractory && score >= self.threshold;
        self.since_alarm = if anomaly {
            0
        } else {
            self.since_alarm.saturating_add(1)
        };
        let explanation = match (anomaly, scored) {
            (true, Some((s, cost, _))) => Some(self.explain(x, s, cost, score, p)),
            _ => None,
        };
        if let Some((_, cost, raw)) = scored {
            // Alarms stay in the calibrations: on NAB this scored better than excluding them
            // (an incident's own peak raises the bar for its aftershocks; rechecked in v2).
            self.calib.push(raw);
            if let Some(d) = shift {
                self.shift_calib.push(d);
            }
            self.window_costs.push(cost);
            let a = 1.0 / self.settings.baseline as f64;
            self.cost_avg += a * (cost - self.cost_avg);
        }
        self.learn(x);
        MetricVerdict {
            score,
            anomaly,
            warming_up_remaining: warming.saturating_sub(1),
            explanation,
            accepted: true,
        }
    }

    /// Robust distance, in baseline sigmas, of the median of the newest `shift_window` points
    /// (`x` included) from the baseline median.
    fn shift_distance(&self, x: f64) -> f64 {
        let n = self.values.len();
        let k = (self.settings.shift_window as usize)
            .saturating_sub(1)
            .min(n);
        let mut buf = [0.0f64; MAX_SHIFT_WINDOW];
        buf[0] = x;
        for i in 0..k {
            buf[i + 1] = self.values.get(n - 1 - i);
        }
        let recent = &mut buf[..=k];
        let mid = recent.len() / 2;
        let m = *recent.select_nth_unstable_by(mid, f64::total_cmp).1;
        ((m - self.median).abs() / self.scale).min(self.settings.distance_cap)
    }

    fn learn(&mut self, x: f64) {
        let full = self.values.is_full();
        self.values.push(x);
        if let Some(q) = self.quant {
            let s = q.symbol(x);
            self.push_symbol(s, full);
        }
        self.since_stats += 1;
        let n = self.values.len();
        if self.since_stats >= STATS_EVERY || (self.quant.is_none() && n >= MIN_POINTS_TO_QUANTIZE)
        {
            self.since_stats = 0;
            self.refresh_stats();
            let requantize = match self.quant {
                None => n >= MIN_POINTS_TO_QUANTIZE,
                Some(q) => !(0.5..=2.0).contains(&(self.scale / q.scale)),
            };
            if requantize {
                self.quant = Some(Quant {
                    step: self.scale / self.settings.resolution,
                    anchor: self.median,
                    scale: self.scale,
                });
                self.rebuild_symbols();
            }
        }
    }

    fn push_symbol(&mut self, s: i32, was_full: bool) {
        let cap = self.settings.baseline as usize;
        if was_full {
            // Evict the oldest symbol with the n-grams that start at it.
            let old = self.syms[self.sym_head];
            let f1 = self.syms[(self.sym_head + 1) % cap];
            let f2 = self.syms[(self.sym_head + 2) % cap];
            self.model.remove(old, Some(f1), Some(f2));
            let (p1, p2) = (self.sym_back(0), self.sym_back(1));
            self.syms[self.sym_head] = s;
            self.sym_head = (self.sym_head + 1) % cap;
            self.model.add(p2, p1, s);
        } else {
            let (p1, p2) = (self.sym_back(0), self.sym_back(1));
            self.syms.push(s);
            self.model.add(p2, p1, s);
        }
    }

    /// Recomputes every symbol of the ring and the model from the values (pure function of
    /// values and quantization, which is why neither is stored).
    fn rebuild_symbols(&mut self) {
        self.syms.clear();
        self.sym_head = 0;
        self.model.clear();
        let Some(q) = self.quant else { return };
        for i in 0..self.values.len() {
            let s = q.symbol(self.values.get(i));
            let (p1, p2) = (self.sym_back(0), self.sym_back(1));
            self.syms.push(s);
            self.model.add(p2, p1, s);
        }
    }

    fn refresh_stats(&mut self) {
        self.scratch.clear();
        self.scratch.extend_from_slice(self.values.raw());
        let n = self.scratch.len();
        if n == 0 {
            return;
        }
        let med = *self.scratch.select_nth_unstable_by(n / 2, f64::total_cmp).1;
        for v in self.scratch.iter_mut() {
            *v = (*v - med).abs();
        }
        let mad = *self.scratch.select_nth_unstable_by(n / 2, f64::total_cmp).1;
        let mut scale = 1.4826 * mad;
        if scale <= 1e-12 * (1.0 + med.abs()) {
            let mean_abs = self.scratch.iter().sum::<f64>() / n as f64;
            scale = 1.2533 * mean_abs;
        }
        if scale <= 1e-12 * (1.0 + med.abs()) {
            scale = 1e-6 * (1.0 + med.abs());
        }
        self.median = med;
        self.scale = scale;
    }

    fn explain(&self, x: f64, s: i32, cost: f64, score: f64, p: f64) -> Explanation {
        super::explain_metric::build(self, x, s, cost, score, p)
    }

    // Accessors for the explanation builder.
    pub(crate) fn parts(&self) -> MetricParts<'_> {
        MetricParts {
            syms: &self.syms,
            sym_head: self.sym_head,
            model: &self.model,
            step: self.quant.map_or(1.0, |q| q.step),
            anchor: self.quant.map_or(0.0, |q| q.anchor),
            centre: self.quant.map_or(0, |q| q.symbol(self.median)),
            window_costs: &self.window_costs,
            cost_avg: self.cost_avg,
            window: self.settings.window as usize,
            p1: self.sym_back(0),
            p2: self.sym_back(1),
        }
    }

    /// Versioned bytes from which [`MetricDetector::decode_state`] resumes exactly.
    pub fn encode_state(&self) -> Vec<u8> {
        let mut w = Writer::new(MAGIC, VERSION);
        w.json(&self.settings);
        match self.last_ts {
            Some(t) => {
                w.u8(1);
                w.i64(t);
            }
            None => w.u8(0),
        }
        w.u64(self.accepted);
        match self.quant {
            Some(q) => {
                w.u8(1);
                w.f64(q.step);
                w.f64(q.anchor);
                w.f64(q.scale);
            }
            None => w.u8(0),
        }
        w.f64(self.median);
        w.f64(self.scale);
        w.u32(self.since_stats);
        w.f64(self.cost_avg);
        w.f64(self.peak);
        w.u32(self.peak_age);
        w.u32(self.since_alarm);
        self.values.encode(&mut w);
        self.window_costs.encode(&mut w);
        self.calib.encode(&mut w);
        self.shift_calib.encode(&mut w);
        w.finish()
    }

    pub fn decode_state(bytes: &[u8]) -> Result<Self, DetectError> {
        let (mut r, version) = Reader::open(bytes, MAGIC)?;
        if version != VERSION {
            return Err(DetectError::UnsupportedStateVersion {
                found: version,
                supported: VERSION,
            });
        }
        let settings: MetricSettings = r.json()?;
        let mut d = MetricDetector::new(settings);
        d.last_ts = match r.u8()? {
            0 => None,
            _ => Some(r.i64()?),
        };
        d.accepted = r.u64()?;
        d.quant = match r.u8()? {
            0 => None,
            _ => Some(Quant {
                step: r.f64()?,
                anchor: r.f64()?,
                scale: r.f64()?,
            }),
        };
        d.median = r.f64()?;
        d.scale = r.f64()?;
        d.since_stats = r.u32()?;
        d.cost_avg = r.f64()?;
        d.peak = r.f64()?;
        d.peak_age = r.u32()?;
        d.since_alarm = r.u32()?;
        d.values = Ring::decode(&mut r, d.settings.baseline as usize)?;
        d.window_costs = Ring::decode(&mut r, d.settings.window as usize)?;
        d.calib = Calibrator::decode_compact(&mut r)?;
        d.shift_calib = Calibrator::decode_compact(&mut r)?;
        if d.calib.capacity() != d.settings.calibration as usize
            || d.shift_calib.capacity() != d.settings.calibration as usize
        {
            return Err(DetectError::CorruptState(
                "calibration size differs from settings".into(),
            ));
        }
        r.finish()?;
        d.rebuild_symbols();
        Ok(d)
    }
}

/// Read-only view of the detector for [`super::explain_metric`].
pub(crate) struct MetricParts<'a> {
    pub syms: &'a [i32],
    pub sym_head: usize,
    pub model: &'a ContextModel,
    pub step: f64,
    pub anchor: f64,
    pub centre: i32,
    pub window_costs: &'a Ring,
    pub cost_avg: f64,
    pub window: usize,
    pub p1: Option<i32>,
    pub p2: Option<i32>,
}
