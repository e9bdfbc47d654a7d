//! Streaming metric detector over (timestamp, value) points (issue 3).
//!
//! Owns [`MetricDetector`]: an explainable ensemble of calibrated signals.
//! - Point (compression): values are quantized into symbols (bins of a fraction of the
//!   baseline's robust spread) and coded by an order-2 context model of the rolling baseline
//!   ([`super::context`]); the code length of the new point given the baseline, plus a small
//!   robust distance from the baseline median, is its compression surprise.
//! - Sequence (compression): the summed code length of the last `sequence` points other than
//!   the costliest, i.e. the conditional cost of the recent symbol sequence given the
//!   baseline's contexts, minus the single surprise the point signal already reports.
//! - Seasonal: the mean distance of the last `seasonal_window` values from the usual level of
//!   their time-of-day bucket, in that bucket's typical deviations.
//! - Level (off by default): the mean of the last `level_window` values against the median.
//! - Discord (issue 20): the z-normalized distance of the newest stretch of one period (found
//!   from the data by autocorrelation) to its nearest earlier neighbour ([`super::discord`]).
//! - Residual (issue 20): the distance of the value from a seasonal forecast (the recent mean
//!   plus the median move at this phase over the last three periods), in typical forecast
//!   errors; alarms are kept out of its calibration unless they recur at their time of day,
//!   so a recurring anomaly stays visible ([`residual`]).
//!
//! Each signal is calibrated into a p-value by its upper-tail share among its own past raw
//! values, held in a forgetting histogram with a memory of `calibration` points
//! ([`super::tail`]; beyond the largest value held, a tail fitted once the calibration holds
//! enough values). Two combinations follow (see `evidence`): the alarm's, Fisher's method
//! over the v4 signals or the residual alone at a Bonferroni cost; and the score's, over all
//! six signals. The alarm's p-value is mapped to a 0..1 score and gated ([`super::alarm`]); a
//! point that alarms keeps that score (at least the threshold), any other point is ranked by
//! the all-signal evidence strictly below the threshold, so the score is graded everywhere. A
//! peak filter damps any score that is not above the highest of the last `suppression` points, and after an
//! alarm a hold-off of `holdoff` points damps aftershocks unless they beat the alarm by a clear
//! margin: one early alarm per incident is what an operator (and NAB) wants. The damping
//! decides alarms only; it no longer zeroes the score of the points it holds back. Both
//! horizons are kept in time (points at the series' typical sampling interval), so gaps in the data do not
//! stretch them. Pure: no I/O, clock, threads or randomness; timestamps place a point in its
//! time-of-day bucket and measure the horizons.
//!
//! Input rule: a non-finite value, or a timestamp not strictly after the last accepted one
//! (out of order or duplicate), is rejected (`accepted: false`, score 0) and leaves the state
//! untouched. Finite values beyond ±1e15 are clamped to ±1e15.

//!
//! Layout: this file holds the detector's fields and `observe`; its child modules hold the
//! rest: `signals` (raw signals, quantization, time-of-day buckets), `residual` (forecast,
//! unit, recurrence memory), `evidence` (calibration and combinations), `baseline` (values,
//! median and spread, symbols) and `codec` (state bytes).

use serde::{Deserialize, Serialize};

use super::alarm::AlarmGate;
use super::context::ContextModel;
use super::discord::Discord;
use super::explain::Explanation;
use super::metric_settings::MetricSettings;
use super::ring::{F32Ring, Ring};
use super::tail::TailCalibrator;

#[path = "metric_baseline.rs"]
mod baseline;
#[path = "metric_codec.rs"]
mod codec;
#[path = "metric_evidence.rs"]
mod evidence;
#[path = "metric_residual.rs"]
mod residual;
#[path = "metric_signals.rs"]
mod signals;

pub(crate) use evidence::{Evidence, Signal};
pub(crate) use signals::Quant;

/// Values are clamped to this magnitude (documented input rule).
pub const MAX_ABS_VALUE: f64 = 1e15;
/// A p-value of 10^-SCORE_DECADES maps to score 1.
const SCORE_DECADES: f64 = 12.0;
/// Points that do not alarm score below this fraction of the alarm threshold (their
/// evidence, `d` decades, maps to `BELOW_THRESHOLD * threshold * d / (d + SCORE_DECADES)`:
/// strictly increasing, so ranks are kept and nothing saturates).
const BELOW_THRESHOLD: f64 = 0.999;

/// Evidence of a p-value in units of the score: `-log10(p) / SCORE_DECADES`, at least 0 and
/// not clamped at 1. The alarm gate compares these (issue 20): a residual far outside its
/// typical forecast error reaches p < 1e-12 on its own, and a clamped score would then let
/// no larger surprise break through the hold-off. Scores handed out are clamped to 1.
fn to_score(p: f64) -> f64 {
    (-p.log10() / SCORE_DECADES).max(0.0)
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

/// Streaming metric detector; see the module doc.
#[derive(Debug, Clone)]
pub struct MetricDetector {
    settings: MetricSettings,
    last_ts: Option<i64>,
    accepted: u64,
    /// Baseline values, stored as `f32` (live and in state) to keep the state small.
    values: F32Ring,
    /// Symbols of `values` under `quant` (derived, never stored).
    syms: Vec<i32>,
    sym_head: usize,
    model: ContextModel,
    quant: Option<Quant>,
    median: f64,
    scale: f64,
    since_stats: u32,
    calib: TailCalibrator,
    seq_calib: TailCalibrator,
    level_calib: TailCalibrator,
    seasonal_calib: TailCalibrator,
    /// Running level, deviation and visits of each time-of-day bucket.
    bucket_level: Vec<f32>,
    bucket_dev: Vec<f32>,
    bucket_visits: Vec<u16>,
    seasonal_zs: F32Ring,
    /// Coding costs of the newest points, for the sequence signal.
    seq_costs: F32Ring,
    window_costs: Ring,
    cost_avg: f64,
    /// Peak filter and hold-off (in time).
    gate: AlarmGate,
    scratch: Vec<f64>,
    discord: Discord,
    discord_calib: TailCalibrator,
    /// Latest discord distance and its p-value (held between computations).
    discord_dist: f64,
    discord_p: f64,
    residual_calib: TailCalibrator,
    /// The residual's unit: the running mean of absolute forecast errors, and how many
    /// errors it holds (see [`residual`]).
    residual_scale: f64,
    residual_n: u32,
    /// Per time-of-day bucket, the point count at its latest alarm (0 = none): the memory
    /// of the residual's time-of-day exemption.
    bucket_alarm: Vec<u64>,
}

impl MetricDetector {
    pub fn new(settings: MetricSettings) -> Self {
        let settings = settings.sanitized();
        let b = settings.baseline as usize;
        let c = settings.calibration;
        MetricDetector {
            gate: AlarmGate::new(
                settings.suppression,
                settings.holdoff,
                settings.alarm_threshold(),
            ),
            last_ts: None,
            accepted: 0,
            values: F32Ring::new(b),
            syms: Vec::with_capacity(b),
            sym_head: 0,
            model: ContextModel::new(settings.blend),
            quant: None,
            median: 0.0,
            scale: 0.0,
            since_stats: 0,
            calib: TailCalibrator::new(c, 0.05),
            seq_calib: TailCalibrator::new(c, 0.05),
            level_calib: TailCalibrator::new(c, 0.05),
            seasonal_calib: TailCalibrator::new(c, 0.05),
            bucket_level: vec![0.0; settings.seasonal_buckets as usize],
            bucket_dev: vec![0.0; settings.seasonal_buckets as usize],
            bucket_visits: vec![0; settings.seasonal_buckets as usize],
            seasonal_zs: F32Ring::new(settings.seasonal_window.max(1) as usize),
            seq_costs: F32Ring::new(settings.sequence.max(1) as usize),
            window_costs: Ring::new(settings.window as usize),
            cost_avg: 0.0,
            scratch: Vec::with_capacity(b),
            discord: Discord::new(),
            discord_calib: TailCalibrator::new(c, 0.01),
            discord_dist: 0.0,
            discord_p: 1.0,
            residual_calib: TailCalibrator::new(c, 0.05),
            residual_scale: 0.0,
            residual_n: 0,
            bucket_alarm: vec![0; settings.seasonal_buckets as usize],
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

    /// The same detector, refusing points not after `last_ts` (a monitor whose detector
    /// starts again, after an `expected` verdict, keeps its points in time order).
    pub fn after(mut self, last_ts: Option<i64>) -> Self {
        self.last_ts = last_ts;
        self
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
        if let Some(prev) = self.last_ts {
            self.gate.note_gap(prev, timestamp_secs);
        }
        self.last_ts = Some(timestamp_secs);
        self.accepted += 1;
        let warming = self.warming_remaining();

        let mut raw = self.quant.map(|q| self.raw_signals(q, timestamp_secs, x));
        if let Some(r) = raw.as_mut() {
            r.discord = self.discord.distance(x as f32 as f64, self.scale);
        }
        let evidence = match (raw.as_ref(), warming) {
            (Some(r), 0) => Some(self.evidence(x, r)),
            _ => None,
        };
        let alarm_score = evidence.map_or(0.0, |e| to_score(e.p_alarm));
        let (gated, anomaly) = self.gate.judge(timestamp_secs, alarm_score, warming == 0);
        // The score is graded for every point (issue 20): an alarm scores the larger of its
        // alarm score and the all-signal evidence (at least the threshold), every other point
        // gets the all-signal evidence squeezed below the threshold, so `score >= threshold`
        // exactly when `anomaly` and the ranking of the other points follows their evidence.
        let threshold = self.settings.alarm_threshold();
        let score = if anomaly {
            let all = evidence.map_or(0.0, |e| e.score_decades / SCORE_DECADES);
            gated.max(all).clamp(threshold, 1.0)
        } else {
            let d = evidence.map_or(0.0, |e| e.score_decades);
            BELOW_THRESHOLD * threshold * d / (d + SCORE_DECADES)
        };
        let explanation = match (anomaly, raw, evidence) {
            (true, Some(r), Some(e)) => Some(self.explain(x, r.sym, r.cost, score, e.p_alarm, &e)),
            _ => None,
        };
        if let Some(r) = raw {
            // Alarms stay in these calibrations: on NAB this scored better than excluding
            // them (an incident's own peak raises the bar for its aftershocks).
            self.calib.push(r.point);
            if self.settings.sequence > 0 {
                self.seq_calib.push(r.sequence);
                self.seq_costs.push(r.cost as f32);
            }
            if self.settings.level_window > 0 {
                self.level_calib.push(r.level_z);
            }
            if let (Some(z), Some(avg)) = (r.seasonal_z, r.seasonal_avg) {
                self.seasonal_calib.push(avg);
                self.seasonal_zs.push(z as f32);
            }
            // Unlike the others, the residual keeps alarms out (issue 20; see `residual`).
            self.learn_residual(r.bucket, r.error, r.residual, anomaly, warming == 0);
            if let Some(d) = r.discord {
                self.discord_dist = d;
                self.discord_p = self.discord_calib.p_value(d);
                self.discord_calib.push(d);
            }
            self.window_costs.push(r.cost);
            let a = 1.0 / self.settings.baseline as f64;
            self.cost_avg += a * (r.cost - self.cost_avg);
        }
        if let Some(b) = self.bucket_of(timestamp_secs) {
            self.learn_bucket(b, x);
        }
        self.learn(x);
        self.discord.feed(x as f32 as f64, &self.values);
        MetricVerdict {
            score,
            anomaly,
            warming_up_remaining: warming.saturating_sub(1),
            explanation,
            accepted: true,
        }
    }

    fn explain(&self, x: f64, s: i32, cost: f64, score: f64, p: f64, e: &Evidence) -> Explanation {
        super::explain_metric::build(self, x, s, cost, score, p, e)
    }

    // Accessors for the explanation builder.
    pub(crate) fn parts(&self) -> MetricParts<'_> {
        MetricParts {
            syms: &self.syms,
            sym_head: self.sym_head,
            model: &self.model,
            quant: self.quant,
            centre: self.quant.map_or(0, |q| q.symbol(self.median)),
            window_costs: &self.window_costs,
            cost_avg: self.cost_avg,
            window: self.settings.window as usize,
            p1: self.sym_back(0),
            p2: self.sym_back(1),
            median: self.median,
            sequence: self.settings.sequence,
            level_window: self.settings.level_window,
            seasonal_window: self.settings.seasonal_window,
            period: self.discord.period(),
        }
    }
}

/// Read-only view of the detector for [`super::explain_metric`].
pub(crate) struct MetricParts<'a> {
    pub syms: &'a [i32],
    pub sym_head: usize,
    pub model: &'a ContextModel,
    pub quant: Option<Quant>,
    pub centre: i32,
    pub window_costs: &'a Ring,
    pub cost_avg: f64,
    pub window: usize,
    pub p1: Option<i32>,
    pub p2: Option<i32>,
    pub median: f64,
    pub sequence: u32,
    pub level_window: u32,
    pub seasonal_window: u32,
    /// Period of the series assumed by the discord and residual signals (points).
    pub period: usize,
}

#[cfg(test)]
#[path = "metric_tests.rs"]
mod tests;
