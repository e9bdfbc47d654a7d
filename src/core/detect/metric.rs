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
//!   plus the median move at this phase over the last three periods).
//!
//! Each signal is calibrated into a p-value by its upper-tail share among its own past raw
//! values, held in a forgetting histogram with a memory of `calibration` points
//! ([`super::tail`]). Two combinations follow (see `evidence`): the alarm's, Fisher's method
//! over the v4 signals or the residual alone at a Bonferroni cost; and the score's, over all
//! six signals. The alarm's p-value is mapped to a 0..1 score and gated ([`super::alarm`]); a
//! point that alarms keeps that score (at least the threshold), any other point is ranked by
//! the all-signal evidence strictly below the threshold, so the score is graded everywhere. A peak filter damps
//! any score that is not above the highest of the last `suppression` points, and after an
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

use serde::{Deserialize, Serialize};

use super::alarm::{fisher, AlarmGate};
use super::context::ContextModel;
use super::discord::Discord;
use super::explain::Explanation;
use super::metric_settings::MetricSettings;
use super::metric_settings::MIN_POINTS_TO_QUANTIZE;
use super::ring::{F32Ring, Ring};
use super::tail::TailCalibrator;

#[path = "metric_codec.rs"]
mod codec;

/// Values are clamped to this magnitude (documented input rule).
pub const MAX_ABS_VALUE: f64 = 1e15;
const STATS_EVERY: u32 = 16;
/// A p-value of 10^-SCORE_DECADES maps to score 1.
const SCORE_DECADES: f64 = 12.0;
/// Points that do not alarm score below this fraction of the alarm threshold (their
/// evidence, `d` decades, maps to `BELOW_THRESHOLD * threshold * d / (d + SCORE_DECADES)`:
/// strictly increasing, so ranks are kept and nothing saturates).
const BELOW_THRESHOLD: f64 = 0.999;

/// Score of a p-value: `-log10(p) / SCORE_DECADES`, clamped into 0..=1.
fn to_score(p: f64) -> f64 {
    (-p.log10() / SCORE_DECADES).clamp(0.0, 1.0)
}

const SECONDS_PER_DAY: i64 = 86_400;
/// Visits a time-of-day bucket needs before its level is trusted.
const BUCKET_WARMUP: u16 = 6;
/// Smallest weight of a new value in its bucket's running level and deviation.
const BUCKET_RATE: f64 = 0.1;
/// A bucket's deviation is floored at this fraction of the baseline's robust spread, so a
/// bucket that happened to be steady does not turn ordinary noise into large distances.
const SEASONAL_DEV_FLOOR: f64 = 0.25;
/// Points averaged for the residual signal's "where the series is now".
const RESIDUAL_MEAN: usize = 4;
/// Periods back over which the residual forecast takes its median move.
const RESIDUAL_PERIODS: usize = 3;
/// Bonferroni factor with which the residual signal can carry an alarm on its own: two tests
/// (the combination of the other signals and the residual), doubled like the score's
/// combination (see `evidence`).
const RESIDUAL_ALARM_FACTOR: f64 = 4.0;

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
pub(crate) struct Quant {
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

    /// Lower edge of symbol `s` (fractional `s` interpolates within the bin).
    pub(crate) fn value(&self, s: f64) -> f64 {
        self.anchor + s * self.step
    }
}

/// The ensemble signal that carried a verdict (the one with the smallest p-value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Coding cost of the point itself plus its distance from the baseline median.
    Point,
    /// Summed coding cost of the last `sequence` points given the baseline's contexts.
    Sequence,
    /// Mean of the last `level_window` points against the baseline median.
    Level,
    /// The value against the usual level at this time of day.
    Seasonal,
    /// The newest stretch of one period against its nearest earlier neighbour.
    Discord,
    /// The value against the seasonal forecast.
    Residual,
}

/// The numbers behind one scored point, for explanations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Evidence {
    pub signal: Signal,
    /// Calibrated p-value of each signal (1 when the signal is off).
    pub p_point: f64,
    pub p_sequence: f64,
    pub p_level: f64,
    /// Bits to code the last `sequence` points given the baseline, less the costliest.
    pub sequence_bits: f64,
    /// Mean of the last `level_window` points, and its distance from the baseline median in
    /// robust standard deviations.
    pub level_mean: f64,
    pub level_z: f64,
    pub p_seasonal: f64,
    /// Usual level at this time of day, and the mean distance of the last `seasonal_window`
    /// values from their buckets' levels, in bucket deviations (0 for untrusted buckets).
    pub seasonal_level: f64,
    pub seasonal_z: f64,
    pub p_discord: f64,
    /// Z-normalized distance (per reduced sample) of the newest stretch to its nearest
    /// earlier neighbour, and the stretch's length in points (0 when not computed).
    pub discord_dist: f64,
    pub discord_span: usize,
    pub p_residual: f64,
    /// Distance of the value from the seasonal forecast, in robust standard deviations.
    pub residual_z: f64,
    /// The alarm's and the score's combined p-values (see `MetricDetector::evidence`).
    pub p_alarm: f64,
    pub p_score: f64,
    /// `-log10` of the better of the score's two tests before doubling (>= 0, and 0 only
    /// when every signal is silent): what points that do not alarm are ranked by.
    pub score_decades: f64,
}

/// Raw (uncalibrated) signals of one point.
#[derive(Debug, Clone, Copy)]
struct Raw {
    sym: i32,
    cost: f64,
    point: f64,
    sequence: f64,
    level_mean: f64,
    level_z: f64,
    seasonal_level: f64,
    seasonal_z: Option<f64>,
    seasonal_avg: Option<f64>,
    discord: Option<f64>,
    residual: f64,
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

    /// The raw signals of `x` given the state before it.
    fn raw_signals(&self, q: Quant, ts: i64, x: f64) -> Raw {
        let sym = q.symbol(x);
        let centre = q.symbol(self.median);
        let cost = self
            .model
            .cost(self.sym_back(1), self.sym_back(0), sym, centre);
        let cap = self.settings.distance_cap;
        let z = ((x - self.median).abs() / self.scale).min(cap);
        let k = self.settings.sequence as usize;
        // The costliest of the last `sequence` points is left out: a lone spike is the point
        // signal's evidence, and counting it again here would make Fisher's combination see
        // two agreeing signals where there is one surprise. What remains measures sustained
        // novelty (a pattern change costs on several points).
        let (sum, max) = (0..k.saturating_sub(1))
            .map_while(|i| self.seq_costs.back(i))
            .map(f64::from)
            .fold((cost, cost), |(s, m), c| (s + c, m.max(c)));
        let sequence = sum - max;
        let m = self.settings.level_window as usize;
        let (mut sum, mut cnt) = (x, 1usize);
        for i in 0..m.saturating_sub(1) {
            let Some(v) = self.values.back(i) else { break };
            sum += v as f64;
            cnt += 1;
        }
        let level_mean = sum / cnt as f64;
        let level_z = ((level_mean - self.median).abs() / self.scale).min(cap);
        let bucket = self.bucket_of(ts);
        let (mut seasonal_level, mut seasonal_z) = (self.median, None);
        if let Some(b) = bucket.filter(|&b| self.bucket_visits[b] >= BUCKET_WARMUP) {
            seasonal_level = self.bucket_level[b] as f64;
            let dev = (self.bucket_dev[b] as f64).max(SEASONAL_DEV_FLOOR * self.scale);
            seasonal_z = Some(((x - seasonal_level).abs() / dev).min(cap));
        }
        let point = cost + self.settings.distance_weight * z;
        let sk = self.settings.seasonal_window.max(1) as usize;
        // The mean over the newest trusted points; absent while this point's bucket is new.
        let seasonal_avg = seasonal_z.map(|z| {
            let prev = (0..sk.saturating_sub(1)).map_while(|i| self.seasonal_zs.back(i));
            let (sum, n) = prev.fold((z, 1usize), |(s, n), v| (s + v as f64, n + 1));
            sum / n as f64
        });
        Raw {
            sym,
            cost,
            point,
            sequence,
            level_mean,
            level_z,
            seasonal_level,
            seasonal_z,
            seasonal_avg,
            discord: None,
            residual: self.residual(x),
        }
    }

    /// Forecast residual of `x` in robust standard deviations of the baseline. The forecast
    /// is the mean of the last [`RESIDUAL_MEAN`] values plus the median, over the last
    /// [`RESIDUAL_PERIODS`] periods (found from the data by [`Discord`]), of how the series
    /// moved from such a mean to the next value one period earlier: the series is expected to
    /// move now as it usually moved at this phase. The median keeps one past anomaly from
    /// casting a ghost one period later. Without a period the forecast is the recent mean.
    fn residual(&self, x: f64) -> f64 {
        let back = |k: usize| self.values.back(k).map(f64::from);
        let mean = |o: usize| -> Option<f64> {
            let mut s = 0.0;
            for i in 0..RESIDUAL_MEAN {
                s += back(o + i)?;
            }
            Some(s / RESIDUAL_MEAN as f64)
        };
        let Some(now) = mean(0) else { return 0.0 };
        let p = self.discord.period();
        let mut moves = [0.0f64; RESIDUAL_PERIODS];
        let mut n = 0;
        if self.discord.has_period() {
            for j in 1..=RESIDUAL_PERIODS {
                if let (Some(next), Some(before)) = (back(j * p - 1), mean(j * p)) {
                    moves[n] = next - before;
                    n += 1;
                }
            }
        }
        let moved = match n {
            0 => 0.0,
            1 => moves[0],
            2 => 0.5 * (moves[0] + moves[1]),
            _ => {
                moves.sort_by(f64::total_cmp);
                moves[1]
            }
        };
        ((x - now - moved).abs() / self.scale).min(self.settings.distance_cap)
    }

    /// Time-of-day bucket of a timestamp, when the seasonal signal is on.
    fn bucket_of(&self, ts: i64) -> Option<usize> {
        let b = self.settings.seasonal_buckets as i64;
        (b > 0).then(|| (ts.rem_euclid(SECONDS_PER_DAY) * b / SECONDS_PER_DAY) as usize)
    }

    /// Moves bucket `b`'s running level and deviation towards `x`.
    fn learn_bucket(&mut self, b: usize, x: f64) {
        let v = self.bucket_visits[b];
        let (level, dev) = (self.bucket_level[b] as f64, self.bucket_dev[b] as f64);
        let (level, dev) = if v == 0 {
            (x, 0.0)
        } else {
            let a = (1.0 / (v as f64 + 1.0)).max(BUCKET_RATE);
            (level + a * (x - level), dev + a * ((x - level).abs() - dev))
        };
        self.bucket_level[b] = level as f32;
        self.bucket_dev[b] = dev as f32;
        self.bucket_visits[b] = v.saturating_add(1);
    }

    /// Calibrates each signal and combines them twice (issue 20):
    /// - the alarm's p-value: the signals of detector v4 (point, sequence, level, seasonal)
    ///   by Fisher's method ([`super::alarm::fisher`]), or the residual signal alone at a
    ///   Bonferroni cost ([`RESIDUAL_ALARM_FACTOR`]), whichever is smaller; this keeps the
    ///   decisions that NAB's standard profile was tuned on while letting a clear departure
    ///   from the seasonal forecast alarm by itself;
    /// - the score's p-value: all six signals (with the discord and the residual), by the
    ///   smaller of Fisher's combination and Bonferroni's (k times the smallest p), doubled so
    ///   that the union of the two tests stays a valid bound. Fisher rewards agreement, the
    ///   Bonferroni arm keeps one very surprising signal from being diluted by five quiet ones.
    ///
    /// A signal that is off or not yet trusted has p = 1. The explanation names the most
    /// surprising signal.
    fn evidence(&self, r: &Raw) -> Evidence {
        let p_point = self.calib.p_value(r.point);
        let p_sequence = if self.settings.sequence > 0 {
            self.seq_calib.p_value(r.sequence)
        } else {
            1.0
        };
        let p_level = if self.settings.level_window > 0 {
            self.level_calib.p_value(r.level_z)
        } else {
            1.0
        };
        let p_seasonal = match r.seasonal_avg {
            Some(z) if self.settings.seasonal_buckets > 0 => self.seasonal_calib.p_value(z),
            _ => 1.0,
        };
        let p_discord = match r.discord {
            Some(d) => self.discord_calib.p_value(d),
            None => self.discord_p,
        };
        let p_residual = self.residual_calib.p_value(r.residual);
        let v4 = 1
            + (self.settings.sequence > 0) as u32
            + (self.settings.level_window > 0) as u32
            + (self.settings.seasonal_buckets > 0) as u32;
        let v4_surprisal = -(p_point.ln() + p_sequence.ln() + p_level.ln() + p_seasonal.ln());
        let p_alarm = fisher(v4, v4_surprisal).min(RESIDUAL_ALARM_FACTOR * p_residual);
        let all = [
            p_point, p_sequence, p_level, p_seasonal, p_discord, p_residual,
        ];
        let k = v4 + 2;
        let surprisal: f64 = all.iter().map(|p| -p.ln()).sum();
        let min_p = all.iter().copied().fold(1.0, f64::min);
        let best_test = fisher(k, surprisal).min(k as f64 * min_p).max(1e-300);
        let p_score = (2.0 * best_test).min(1.0);
        let named = [
            (Signal::Point, p_point),
            (Signal::Sequence, p_sequence),
            (Signal::Level, p_level),
            (Signal::Seasonal, p_seasonal),
            (Signal::Discord, p_discord),
            (Signal::Residual, p_residual),
        ];
        let (mut signal, mut best) = named[0];
        for &(s, p) in &named[1..] {
            if p < best {
                signal = s;
                best = p;
            }
        }
        Evidence {
            signal,
            p_point,
            p_sequence,
            p_level,
            sequence_bits: r.sequence,
            level_mean: r.level_mean,
            level_z: r.level_z,
            p_seasonal,
            seasonal_level: r.seasonal_level,
            seasonal_z: r.seasonal_avg.unwrap_or(0.0),
            p_discord,
            discord_dist: r.discord.unwrap_or(self.discord_dist),
            discord_span: self.discord.span(),
            p_residual,
            residual_z: r.residual,
            p_alarm,
            p_score,
            score_decades: -best_test.log10(),
        }
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
            (Some(r), 0) => Some(self.evidence(r)),
            _ => None,
        };
        let alarm_score = evidence.map_or(0.0, |e| to_score(e.p_alarm));
        let (gated, anomaly) = self.gate.judge(timestamp_secs, alarm_score, warming == 0);
        // The score is graded for every point (issue 20): an alarm keeps its alarm score (at
        // least the threshold), every other point gets the all-signal evidence squeezed below
        // the threshold, so `score >= threshold` exactly when `anomaly` and the ranking of
        // the points that did not alarm still follows their evidence.
        let threshold = self.settings.alarm_threshold();
        let score = if anomaly {
            gated.max(threshold)
        } else {
            let d = evidence.map_or(0.0, |e| e.score_decades);
            BELOW_THRESHOLD * threshold * d / (d + SCORE_DECADES)
        };
        let explanation = match (anomaly, raw, evidence) {
            (true, Some(r), Some(e)) => Some(self.explain(x, r.sym, r.cost, score, e.p_alarm, &e)),
            _ => None,
        };
        if let Some(r) = raw {
            // Alarms stay in the calibration: on NAB this scored better than excluding them
            // (an incident's own peak raises the bar for its aftershocks).
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
            // The residual is calibrated only after warm-up: its first values, taken while
            // the baseline's spread is still settling, would otherwise sit in the tail for the
            // whole calibration memory.
            if warming == 0 {
                self.residual_calib.push(r.residual);
            }
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

    fn learn(&mut self, x: f64) {
        let full = self.values.is_full();
        let stored = x as f32;
        self.values.push(stored);
        if let Some(q) = self.quant {
            let s = q.symbol(stored as f64);
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
            let s = q.symbol(self.values.get(i) as f64);
            let (p1, p2) = (self.sym_back(0), self.sym_back(1));
            self.syms.push(s);
            self.model.add(p2, p1, s);
        }
    }

    fn refresh_stats(&mut self) {
        self.scratch.clear();
        self.scratch
            .extend(self.values.raw().iter().map(|&v| v as f64));
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
