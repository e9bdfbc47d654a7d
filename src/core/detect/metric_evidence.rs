//! The metric detector's evidence for one point (issues 3 and 20): each raw signal calibrated
//! into a p-value, and the two combinations, the alarm's and the score's.
//!
//! A child module of `metric`. Owns [`Signal`], [`Evidence`] (the numbers explanations are
//! written from) and `MetricDetector::evidence`. Pure arithmetic over the calibrations; it
//! neither learns nor allocates.

use super::super::alarm::fisher;
use super::signals::Raw;
use super::MetricDetector;

/// Bonferroni factor with which the residual signal can carry an alarm on its own: two tests
/// (the combination of the other signals and the residual), doubled like the score's
/// combination (see `evidence`).
const RESIDUAL_ALARM_FACTOR: f64 = 4.0;

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
    /// Distance of the value from the seasonal forecast, in typical forecast errors.
    pub residual_z: f64,
    /// The seasonal forecast of the value, and the typical forecast error (the residual's
    /// unit) at the time.
    pub forecast: f64,
    pub forecast_error: f64,
    /// The largest miss of the forecast held in the residual's calibration, in the series'
    /// units: the forecast plus or minus this is the residual's expected range.
    pub forecast_reach: f64,
    /// The alarm's and the score's combined p-values (see `MetricDetector::evidence`).
    pub p_alarm: f64,
    pub p_score: f64,
    /// `-log10` of the better of the score's two tests before doubling (>= 0, and 0 only
    /// when every signal is silent): what points that do not alarm are ranked by.
    pub score_decades: f64,
}

impl MetricDetector {
    /// Calibrates each signal of `r` (the raw signals of value `x`) and combines them twice
    /// (issue 20):
    /// - the alarm's p-value: the signals of detector v4 (point, sequence, level, seasonal)
    ///   by Fisher's method ([`fisher`]), or the residual signal alone at a Bonferroni cost
    ///   ([`RESIDUAL_ALARM_FACTOR`]), whichever is smaller; this keeps the decisions that
    ///   NAB's standard profile was tuned on while letting a clear departure from the
    ///   seasonal forecast alarm by itself;
    /// - the score's p-value: all six signals (with the discord and the residual), by the
    ///   smaller of Fisher's combination and Bonferroni's (k times the smallest p), doubled so
    ///   that the union of the two tests stays a valid bound. Fisher rewards agreement, the
    ///   Bonferroni arm keeps one very surprising signal from being diluted by five quiet ones.
    ///
    /// A signal that is off or not yet trusted has p = 1. The explanation names the most
    /// surprising signal.
    pub(super) fn evidence(&self, x: f64, r: &Raw) -> Evidence {
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
        let p_residual = self.residual_p(r.residual, r.recurs);
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
        let err = r.error.unwrap_or(0.0);
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
            forecast: x - err,
            forecast_error: self.residual_unit(),
            forecast_reach: self.residual_calib.max() * self.residual_unit(),
            p_alarm,
            p_score,
            score_decades: -best_test.log10(),
        }
    }
}
