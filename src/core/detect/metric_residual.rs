//! The residual signal of the metric detector (issue 20): the seasonal forecast, the size of
//! its typical error, and the memory of alarms that keeps a recurring anomaly visible.
//!
//! A child module of `metric`, so it works on the detector's private fields. Owns:
//! - the forecast (the mean of the last [`RESIDUAL_MEAN`] values plus the median move at this
//!   phase over the last [`RESIDUAL_PERIODS`] periods) and its signed error;
//! - the residual's unit: a running mean of the absolute forecast error (the series' own
//!   typical error, not the baseline's spread, which includes the seasonal swing), with
//!   alarmed points left out;
//! - which alarms stay out of the residual's calibration, and the time-of-day exemption.
//!
//! Why the exclusion: the calibration turns a residual into the share of past residuals at
//! least as large, so once one spike is in it, an identical repeat sits at p ~ 2/n and can no
//! longer alarm. An alarmed point is therefore kept out of the residual's calibration and of
//! its unit, so every recurrence of a clear anomaly is judged against normal behaviour.
//! Why the exemption: a pattern that recurs at the same time of day (a nightly job) is the
//! series' normal, and keeping each occurrence out would let it alarm every day. So an alarm
//! in a time-of-day bucket where an alarm was already held out recently (same or a
//! neighbouring bucket, within the calibration's memory) enters the calibration, and any
//! later point there is charged the held-out alarm as one more value in its tail (its p-value
//! gains one newest weight), which decides the exemption before the second occurrence alarms.
//! Must not read the clock or allocate per point.

use super::{MetricDetector, TailCalibrator};

/// Points averaged for the forecast's "where the series is now".
const RESIDUAL_MEAN: usize = 4;
/// Periods back over which the forecast takes its median move.
const RESIDUAL_PERIODS: usize = 3;
/// Horizon, in points, of the running mean of absolute forecast errors (the residual's unit).
const ERROR_HORIZON: f64 = 4096.0;
/// Absolute errors enter the unit clipped at this multiple of it, so a burst of large errors
/// that did not alarm (inside a hold-off) cannot inflate it.
const ERROR_CLIP: f64 = 4.0;
/// Errors the unit holds before the clip applies.
const ERROR_CLIP_AFTER: u32 = 8;
/// The unit is floored at this fraction of the baseline's robust spread, so a perfectly
/// predictable stretch does not turn rounding noise into large residuals.
const UNIT_FLOOR: f64 = 0.02;
/// Neighbouring time-of-day buckets on each side that share an alarm's exemption.
const EXEMPT_NEIGHBOURS: usize = 1;

impl MetricDetector {
    /// Signed forecast error of `x` as the next value after the newest `offset` values are
    /// skipped (0 in normal use; the migration replays the stored baseline with larger
    /// offsets). The forecast is the mean of the last [`RESIDUAL_MEAN`] values plus the
    /// median, over the last [`RESIDUAL_PERIODS`] periods (found from the data by
    /// [`super::Discord`]), of how the series moved from such a mean to the next value one
    /// period earlier: the series is expected to move now as it usually moved at this phase.
    /// The median keeps one past anomaly from casting a ghost one period later. Without a
    /// period the forecast is the recent mean; `None` until the mean has its values.
    pub(super) fn forecast_error(&self, offset: usize, x: f64) -> Option<f64> {
        let back = |k: usize| self.values.back(offset + k).map(f64::from);
        let mean = |o: usize| -> Option<f64> {
            let mut s = 0.0;
            for i in 0..RESIDUAL_MEAN {
                s += back(o + i)?;
            }
            Some(s / RESIDUAL_MEAN as f64)
        };
        let now = mean(0)?;
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
        Some(x - now - moved)
    }

    /// The residual's unit: the typical absolute forecast error (see the module doc).
    pub(super) fn residual_unit(&self) -> f64 {
        self.residual_scale.max(UNIT_FLOOR * self.scale)
    }

    /// The residual signal of a forecast error: its size in typical forecast errors.
    pub(super) fn residual_of(&self, err: f64) -> f64 {
        (err.abs() / self.residual_unit()).min(self.settings.distance_cap)
    }

    /// Whether an alarm was held out of the residual's calibration within its memory at
    /// bucket `b` or a neighbour.
    pub(super) fn alarm_recurs_at(&self, b: usize) -> bool {
        let nb = self.bucket_alarm.len();
        let horizon = self.settings.calibration as u64;
        (0..=2 * EXEMPT_NEIGHBOURS).any(|o| {
            let at = self.bucket_alarm[(b + 2 * nb + o - EXEMPT_NEIGHBOURS) % nb];
            at > 0 && self.accepted - at <= horizon
        })
    }

    /// The residual's p-value; at a time of day with a held-out alarm the alarm counts
    /// against the point as one more value in the tail (see the module doc).
    pub(super) fn residual_p(&self, residual: f64, recurs: bool) -> f64 {
        let p = self.residual_calib.p_value(residual);
        if recurs {
            (p + 1.0 / (self.residual_calib.held() + 1.0)).min(1.0)
        } else {
            p
        }
    }

    /// Learns one point's residual after its verdict: an alarm is held out of the unit and
    /// the calibration unless it recurs at its time of day, and is remembered at its bucket.
    pub(super) fn learn_residual(
        &mut self,
        bucket: Option<usize>,
        err: Option<f64>,
        residual: f64,
        anomaly: bool,
        warm: bool,
    ) {
        let mut held_out = anomaly;
        if anomaly {
            if let Some(b) = bucket {
                held_out = !self.alarm_recurs_at(b);
                self.bucket_alarm[b] = self.accepted;
            }
        }
        if held_out {
            return;
        }
        if let Some(e) = err {
            self.learn_error(e);
        }
        // Calibrated only after warm-up: the first residuals, taken while the unit and the
        // baseline's spread are still settling, would otherwise sit in the tail for the whole
        // calibration memory.
        if warm {
            self.residual_calib.push(residual);
        }
    }

    /// Moves the unit towards `|err|` (a running mean, clipped; see the constants).
    fn learn_error(&mut self, err: f64) {
        self.residual_n = self.residual_n.saturating_add(1);
        let a = (1.0 / self.residual_n as f64).max(1.0 / ERROR_HORIZON);
        let mut e = err.abs();
        if self.residual_n > ERROR_CLIP_AFTER {
            e = e.min(ERROR_CLIP * self.residual_scale);
        }
        self.residual_scale += a * (e - self.residual_scale);
    }

    /// Rebuilds the residual's unit and calibration by replaying the stored baseline, for
    /// state written before they existed in these units (layouts 4 and 5): the monitor keeps
    /// running with a calibration of up to `baseline` points instead of warming up again. As
    /// in a live run, the first `warmup` errors only settle the unit. Past alarms are not
    /// known here, so none is held out.
    pub(super) fn rewarm_residual(&mut self) {
        self.residual_scale = 0.0;
        self.residual_n = 0;
        self.residual_calib = TailCalibrator::new(self.settings.calibration, 0.05);
        for j in (0..self.values.len()).rev() {
            let x = self.values.back(j).map_or(0.0, f64::from);
            let Some(e) = self.forecast_error(j + 1, x) else {
                continue;
            };
            if self.residual_n >= self.settings.warmup {
                self.residual_calib.push(self.residual_of(e));
            }
            self.learn_error(e);
        }
    }
}
