//! The metric detector's discord signal (issue 20): how far the newest stretch of the series is
//! from its nearest earlier neighbour, a left matrix profile computed over a bounded history.
//!
//! Owns [`Discord`]. The series' period is found from the data (the highest local maximum of
//! the autocorrelation of the baseline, re-estimated every [`PERIOD_EVERY`] points); a
//! subsequence is one period long. To stay within the detector's time budget the series is
//! reduced by piecewise aggregate approximation (means of `factor` points, at most
//! [`PAA_LEN`] samples per subsequence) and the newest subsequence is compared, z-normalized,
//! with every earlier non-overlapping one of the last [`HISTORY`] reduced samples. The search
//! costs the length times the history, so it runs on a schedule that holds the cost per point
//! to [`SEARCH_BUDGET`] (every sample while the history is short, about every 40 points once
//! it is full); the distance is held in between. The raw signal is that nearest-neighbour
//! distance per sample (0 = an exact repeat, about 1.4 = no relation). Detector v7 (issue 20)
//! searches 8 times the history of v6 at twice the resolution (2,048 samples, up to 32 per
//! subsequence): on the UCR development series the distance alone puts its top within the
//! anomaly on 27 of 38, against 19 with v6's 256 samples of 16. Pure: a function of the
//! values it is fed; what it stores is what it needs to continue exactly after a restore. Must
//! not allocate per point.

use super::ring::F32Ring;
use super::state::{Reader, Writer};
use super::DetectError;

/// Reduced samples kept: the history a subsequence is compared with (8 KiB of state; at a
/// period of 100 points, 8,192 raw points or 80 periods).
pub(crate) const HISTORY: usize = 2048;
/// The history of state layouts up to 6 (metric detector v6), read only to migrate it.
const HISTORY_V6: usize = 256;
/// Most reduced samples per subsequence.
const PAA_LEN: usize = 32;
/// Multiply-adds of nearest-neighbour search per raw point, on average: a search over the
/// whole history runs every `history * length / (budget * factor)` reduced samples (at most
/// about every 40 raw points with a full history), so the detector keeps its throughput.
const SEARCH_BUDGET: usize = 1200;
/// Fewest raw points per reduced sample (so a comparison runs at most every other point).
const MIN_FACTOR: usize = 2;
/// Points between period estimates.
const PERIOD_EVERY: u64 = 2048;
/// Shortest and longest period considered (raw points).
const MIN_PERIOD: usize = 8;
const MAX_PERIOD: usize = 1024;
/// Period used until one is found (or when the series has none).
const DEFAULT_PERIOD: usize = 32;
/// Autocorrelation a local maximum needs to count as a period.
const MIN_ACF: f64 = 0.2;
/// A subsequence's standard deviation is floored at this fraction of the baseline's robust
/// spread, so flat stretches are compared by their shape at the noise level, not amplified.
const STD_FLOOR: f64 = 0.1;

/// Left-matrix-profile discord signal (see module doc).
#[derive(Debug, Clone)]
pub(crate) struct Discord {
    period: usize,
    factor: usize,
    /// Reduced samples (means of `factor` learned values).
    paa: F32Ring,
    /// Sum and count of the reduced sample being filled.
    acc: f64,
    acc_n: u32,
    /// Points fed so far (drives the period schedule).
    fed: u64,
    /// Whether `period` came from the data.
    found: bool,
    scratch: Vec<f64>,
    prefix: Vec<f64>,
    prefix2: Vec<f64>,
}

impl Discord {
    pub(crate) fn new() -> Self {
        let mut d = Discord {
            period: DEFAULT_PERIOD,
            factor: 1,
            paa: F32Ring::new(HISTORY),
            acc: 0.0,
            acc_n: 0,
            fed: 0,
            found: false,
            scratch: Vec::with_capacity(4096),
            prefix: Vec::with_capacity(HISTORY + 1),
            prefix2: Vec::with_capacity(HISTORY + 1),
        };
        d.factor = factor_of(d.period);
        d
    }

    /// Raw points per subsequence.
    pub(crate) fn span(&self) -> usize {
        self.len() * self.factor
    }

    /// The period currently assumed (raw points).
    pub(crate) fn period(&self) -> usize {
        self.period
    }

    /// True when the period was found in the data (not the default).
    pub(crate) fn has_period(&self) -> bool {
        self.found
    }

    fn len(&self) -> usize {
        self.period.div_ceil(self.factor).clamp(4, PAA_LEN)
    }

    /// True when the next fed value completes a reduced sample (a distance is computed then).
    pub(crate) fn completes(&self) -> bool {
        self.acc_n as usize + 1 >= self.factor
    }

    /// The distance of the subsequence ending with `x` (not yet fed) to its nearest earlier
    /// neighbour, when `x` completes a reduced sample and enough history is held.
    pub(crate) fn distance(&mut self, x: f64, scale: f64) -> Option<f64> {
        if !self.completes() {
            return None;
        }
        let m = self.len();
        let n = self.paa.len() + 1;
        if n < 3 * m + 1 {
            return None;
        }
        // A search costs about n * m multiply-adds; spreading searches over the reduced
        // samples keeps the cost per raw point within the budget. `(fed + 1) / factor` counts
        // completed samples (consecutive completions differ by one), so the schedule is a
        // function of the stored state and a restored detector searches at the same points.
        let stride = (n * m).div_ceil(SEARCH_BUDGET * self.factor).max(1) as u64;
        if !((self.fed + 1) / self.factor as u64).is_multiple_of(stride) {
            return None;
        }
        let newest = (self.acc + x) / (self.acc_n + 1) as f64;
        self.scratch.clear();
        self.scratch.extend(self.paa.iter().map(f64::from));
        self.scratch.push(newest);
        let s = &self.scratch;
        self.prefix.clear();
        self.prefix2.clear();
        let (mut a, mut b) = (0.0, 0.0);
        self.prefix.push(0.0);
        self.prefix2.push(0.0);
        for &v in s {
            a += v;
            b += v * v;
            self.prefix.push(a);
            self.prefix2.push(b);
        }
        let floor = (STD_FLOOR * scale).max(1e-12);
        let mf = m as f64;
        let stats = |i: usize| {
            let mean = (self.prefix[i + m] - self.prefix[i]) / mf;
            let var = ((self.prefix2[i + m] - self.prefix2[i]) / mf - mean * mean).max(0.0);
            (mean, var, var.sqrt().max(floor))
        };
        let q0 = n - m;
        let (qm, qv, qs) = stats(q0);
        let mut best = f64::INFINITY;
        // Candidates end at least one subsequence before the query starts (no trivial match).
        for c0 in 0..=(q0 - m) {
            let (cm, cv, cs) = stats(c0);
            let dot = dot(&s[q0..q0 + m], &s[c0..c0 + m]);
            let cross = (dot - mf * qm * cm) / (qs * cs);
            let d2 = mf * qv / (qs * qs) + mf * cv / (cs * cs) - 2.0 * cross;
            best = best.min(d2);
        }
        Some((best.max(0.0) / mf).sqrt())
    }

    /// Feeds the value the detector learned; re-estimates the period on schedule from the
    /// baseline `values` (oldest first), rebuilding the reduced history when it changes.
    pub(crate) fn feed(&mut self, x: f64, values: &F32Ring) {
        self.fed += 1;
        self.acc += x;
        self.acc_n += 1;
        if self.acc_n as usize >= self.factor {
            self.paa.push((self.acc / self.acc_n as f64) as f32);
            self.acc = 0.0;
            self.acc_n = 0;
        }
        // Early estimates at 256, 512 and 1024 points, then on schedule.
        let due = self.fed.is_multiple_of(PERIOD_EVERY)
            || (self.fed >= 256 && self.fed.is_power_of_two());
        if due && values.len() >= 4 * MIN_PERIOD * 4 {
            let found = estimate_period(values, &mut self.scratch);
            self.found = found.is_some();
            let p = found.unwrap_or(DEFAULT_PERIOD);
            if p != self.period {
                self.period = p;
                self.factor = factor_of(p);
                self.rebuild(values);
            }
        }
    }

    /// A fresh signal over an existing baseline (state written before the signal existed):
    /// the default period, the reduced history rebuilt from `values`, `fed` points counted so
    /// the period schedule runs as if it had always been there.
    pub(crate) fn over(values: &F32Ring, fed: u64) -> Self {
        let mut d = Discord::new();
        d.fed = fed;
        d.rebuild(values);
        d
    }

    /// Reduces the newest values again with the current factor, aligned so that the last
    /// complete sample ends at the newest value.
    fn rebuild(&mut self, values: &F32Ring) {
        self.paa = F32Ring::new(HISTORY);
        self.acc = 0.0;
        self.acc_n = 0;
        let f = self.factor;
        let n = values.len();
        let samples = (n / f).min(HISTORY);
        let start = n - samples * f;
        for j in 0..samples {
            let sum: f64 = (0..f).map(|k| values.get(start + j * f + k) as f64).sum();
            self.paa.push((sum / f as f64) as f32);
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        self.encode_head(w);
        self.paa.encode(w);
    }

    /// The layout up to 6 (its newest 256 samples), for the migration tests.
    pub(crate) fn encode_v6(&self, w: &mut Writer) {
        self.encode_head(w);
        let n = self.paa.len().min(HISTORY_V6);
        w.u32(HISTORY_V6 as u32);
        w.u32(n as u32);
        for x in self.paa.iter().skip(self.paa.len() - n) {
            w.u32(x.to_bits());
        }
    }

    fn encode_head(&self, w: &mut Writer) {
        w.u32(self.period as u32);
        w.f64(self.acc);
        w.u32(self.acc_n);
        w.u64(self.fed);
        w.u8(self.found as u8);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DetectError> {
        Self::decode_with(r, HISTORY)
    }

    /// Reads the signal of a layout up to 6 (a shorter history of coarser samples) and starts
    /// it again over the stored baseline `values`, keeping its period and schedule: the
    /// distances of the old resolution are not comparable with the new ones.
    pub(crate) fn decode_v6(r: &mut Reader<'_>, values: &F32Ring) -> Result<Self, DetectError> {
        let mut d = Self::decode_with(r, HISTORY_V6)?;
        d.rebuild(values);
        Ok(d)
    }

    fn decode_with(r: &mut Reader<'_>, history: usize) -> Result<Self, DetectError> {
        let mut d = Discord::new();
        let period = r.u32()? as usize;
        d.acc = r.f64()?;
        d.acc_n = r.u32()?;
        d.fed = r.u64()?;
        d.found = r.u8()? != 0;
        d.paa = F32Ring::decode(r, history)?;
        if !(MIN_PERIOD..=MAX_PERIOD).contains(&period) && period != DEFAULT_PERIOD
            || !d.acc.is_finite()
        {
            return Err(DetectError::CorruptState("bad discord fields".into()));
        }
        d.period = period;
        d.factor = factor_of(period);
        // (An old layout's accumulator was filled at its own, coarser factor; it is dropped.)
        if history == HISTORY && d.acc_n as usize >= d.factor {
            return Err(DetectError::CorruptState("bad discord accumulator".into()));
        }
        Ok(d)
    }
}

/// Dot product of two equally long slices, in four independent sums (so the loop pipelines).
#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

fn factor_of(period: usize) -> usize {
    period.div_ceil(PAA_LEN).max(MIN_FACTOR)
}

/// The lag of the highest local maximum of the autocorrelation of `values` (computed on
/// means of 4 points, lags `MIN_PERIOD..=MAX_PERIOD`), when it reaches [`MIN_ACF`].
fn estimate_period(values: &F32Ring, scratch: &mut Vec<f64>) -> Option<usize> {
    const R: usize = 4;
    scratch.clear();
    let n = values.len() / R;
    for j in 0..n {
        let s: f64 = (0..R).map(|k| values.get(j * R + k) as f64).sum();
        scratch.push(s / R as f64);
    }
    let mean = scratch.iter().sum::<f64>() / n as f64;
    scratch.iter_mut().for_each(|v| *v -= mean);
    let var: f64 = scratch.iter().map(|v| v * v).sum();
    if var <= 0.0 {
        return None;
    }
    let max_lag = (MAX_PERIOD / R).min(n / 3);
    let min_lag = MIN_PERIOD / R;
    let acf = |lag: usize| -> f64 {
        let mut s = 0.0;
        for i in lag..n {
            s += scratch[i] * scratch[i - lag];
        }
        s / var
    };
    let (mut prev2, mut prev) = (acf(min_lag), acf(min_lag + 1));
    let mut best: Option<(usize, f64)> = None;
    for lag in min_lag + 2..=max_lag {
        let cur = acf(lag);
        let peak = prev > prev2 && prev >= cur && prev >= MIN_ACF;
        if peak && best.is_none_or(|(_, b)| prev > b) {
            best = Some((lag - 1, prev));
        }
        prev2 = prev;
        prev = cur;
    }
    best.map(|(lag, _)| lag * R)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_period_and_scores_a_new_shape_above_repeats() {
        let mut values = F32Ring::new(4096);
        let mut d = Discord::new();
        let wave = |i: usize| ((i % 100) as f64 / 100.0 * std::f64::consts::TAU).sin();
        let mut last = 0.0;
        for i in 0..6000 {
            let x = wave(i);
            if let Some(v) = d.distance(x, 1.0) {
                last = v;
            }
            values.push(x as f32);
            d.feed(x, &values);
        }
        assert_eq!(d.period(), 100);
        // Periods that are not a multiple of the reduction factor leave a small phase error.
        assert!(last < 0.45, "{last}");
        // A distorted cycle is far from every earlier one.
        let mut worst: f64 = 0.0;
        for i in 6000..6100 {
            let x = if i % 100 < 50 { 0.2 } else { wave(i) };
            if let Some(v) = d.distance(x, 1.0) {
                worst = worst.max(v);
            }
            values.push(x as f32);
            d.feed(x, &values);
        }
        assert!(worst > last + 0.3, "{worst} vs {last}");
    }
}
