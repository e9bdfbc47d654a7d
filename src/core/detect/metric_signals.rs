//! The metric detector's raw (uncalibrated) signals of one point, and the time-of-day
//! buckets they use (issues 3 and 20).
//!
//! A child module of `metric`. Owns [`Quant`] (values to symbols), [`Raw`] and
//! `MetricDetector::raw_signals`, which reads the state before the point and never changes it,
//! and the seasonal buckets' running level and deviation (`bucket_of`, `learn_bucket`).

use super::MetricDetector;

const SECONDS_PER_DAY: i64 = 86_400;
/// Visits a time-of-day bucket needs before its level is trusted.
const BUCKET_WARMUP: u16 = 6;
/// Smallest weight of a new value in its bucket's running level and deviation.
const BUCKET_RATE: f64 = 0.1;
/// A bucket's deviation is floored at this fraction of the baseline's robust spread, so a
/// bucket that happened to be steady does not turn ordinary noise into large distances.
const SEASONAL_DEV_FLOOR: f64 = 0.25;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Quant {
    pub(super) step: f64,
    pub(super) anchor: f64,
    /// Robust scale when this quantization was chosen.
    pub(super) scale: f64,
}

impl Quant {
    #[inline]
    pub(super) fn symbol(&self, x: f64) -> i32 {
        ((x - self.anchor) / self.step).floor().clamp(-1e9, 1e9) as i32
    }

    /// Lower edge of symbol `s` (fractional `s` interpolates within the bin).
    pub(crate) fn value(&self, s: f64) -> f64 {
        self.anchor + s * self.step
    }
}

/// Raw (uncalibrated) signals of one point.
#[derive(Debug, Clone, Copy)]
pub(super) struct Raw {
    pub sym: i32,
    pub cost: f64,
    pub point: f64,
    pub sequence: f64,
    pub level_mean: f64,
    pub level_z: f64,
    pub seasonal_level: f64,
    pub seasonal_z: Option<f64>,
    pub seasonal_avg: Option<f64>,
    pub discord: Option<f64>,
    /// Time-of-day bucket of the point (when the seasonal signal is on).
    pub bucket: Option<usize>,
    /// Signed forecast error, and its size in typical forecast errors (the residual signal).
    pub error: Option<f64>,
    pub residual: f64,
    /// An alarm was recently held out of the residual's calibration at this time of day.
    pub recurs: bool,
}

impl MetricDetector {
    /// Symbol `k` back from the newest in the ring (0 = newest).
    #[inline]
    pub(super) fn sym_back(&self, k: usize) -> Option<i32> {
        let n = self.syms.len();
        if k >= n {
            return None;
        }
        let i = (self.sym_head + n - 1 - k) % n;
        Some(self.syms[i])
    }

    /// The raw signals of `x` given the state before it.
    pub(super) fn raw_signals(&self, q: Quant, ts: i64, x: f64) -> Raw {
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
        let error = self.forecast_error(0, x);
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
            bucket,
            error,
            residual: error.map_or(0.0, |e| self.residual_of(e)),
            recurs: bucket.is_some_and(|b| self.alarm_recurs_at(b)),
        }
    }

    /// Time-of-day bucket of a timestamp, when the seasonal signal is on.
    pub(super) fn bucket_of(&self, ts: i64) -> Option<usize> {
        let b = self.settings.seasonal_buckets as i64;
        (b > 0).then(|| (ts.rem_euclid(SECONDS_PER_DAY) * b / SECONDS_PER_DAY) as usize)
    }

    /// Moves bucket `b`'s running level and deviation towards `x`.
    pub(super) fn learn_bucket(&mut self, b: usize, x: f64) {
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
}
