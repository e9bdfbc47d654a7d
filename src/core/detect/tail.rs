//! Long-memory calibration of the metric detector's raw signals into p-values (issue 3).
//!
//! Owns [`TailCalibrator`]: an exponentially forgetting histogram of one signal's raw values
//! on a logarithmic grid (bin `k` holds `ln(1 + r)` in `[k, k + 1) / BINS_PER_NAT`), so its
//! memory spans tens of thousands of points in a few kilobytes of state. A new raw value's
//! p-value is the forgotten-weighted share of past values at least as large (the mass of the
//! higher bins plus the covered part of its own bin), with the "+1" of an empirical p-value;
//! beyond the largest value held, the tail is extrapolated with an exponential fitted to the
//! excesses over the 90th percentile (peaks over threshold), as in [`super::calibrate`], once
//! at least [`FIT_MIN_HELD`] values are held.
//! O(bins) per query, O(1) amortized per push, no allocation.

use super::state::{Reader, Writer};
use super::DetectError;

/// Bins per unit of `ln(1 + r)`: about 2.5% relative resolution.
const BINS_PER_NAT: f64 = 40.0;
/// Bins in all: raw values up to e^6.4 - 1 (about 600) are resolved, larger ones share the top bin.
pub(crate) const BINS: usize = 256;
const REFIT_EVERY: u32 = 16;
/// Weights are renormalized when the newest point's weight passes this.
const RESCALE_AT: f64 = 1e12;
/// Values a calibration must hold before it extrapolates beyond its largest value: the tail
/// fit is the mean excess over the 90th percentile, so this gives it ten excesses. Before
/// that, a value beyond all those held gets the empirical bound 1 / (n + 1), which keeps a
/// young calibration (the residual's right after warm-up, a time-of-day bucket's first
/// days) from claiming p-values it has no data for (issue 20).
const FIT_MIN_HELD: f64 = 100.0;

#[inline]
fn position(r: f64) -> f64 {
    ((1.0 + r.max(0.0)).ln() * BINS_PER_NAT).min(BINS as f64 - 1e-9)
}

#[inline]
fn value_at(pos: f64) -> f64 {
    (pos / BINS_PER_NAT).exp() - 1.0
}

/// Forgetting histogram of one signal's raw values (see module doc).
#[derive(Debug, Clone)]
pub(crate) struct TailCalibrator {
    counts: Vec<f64>,
    /// Sum of `counts`.
    total: f64,
    /// Weight the next value is added with; grows by `1 / decay` per push.
    weight: f64,
    decay: f64,
    /// Largest raw value pushed whose weight is still counted (never forgotten, only beaten).
    max: f64,
    beta: f64,
    min_beta: f64,
    since_refit: u32,
}

impl TailCalibrator {
    /// `memory` is the forgetting horizon in points (weight halves after ~0.69 * memory).
    pub(crate) fn new(memory: u32, min_beta: f64) -> Self {
        TailCalibrator {
            counts: vec![0.0; BINS],
            total: 0.0,
            weight: 1.0,
            decay: 1.0 - 1.0 / memory.max(2) as f64,
            max: 0.0,
            beta: min_beta,
            min_beta,
            since_refit: 0,
        }
    }

    /// Largest raw value held (0 when empty).
    pub(crate) fn max(&self) -> f64 {
        self.max
    }

    /// Effective number of points held (sum of weights in units of the newest weight).
    pub(crate) fn held(&self) -> f64 {
        self.total / self.weight
    }

    /// Upper-tail p-value of `r` among the held values, in (0, 1].
    pub(crate) fn p_value(&self, r: f64) -> f64 {
        if self.total <= 0.0 {
            return 1.0;
        }
        // One more "newest" weight, as in (count + 1) / (n + 1).
        let denom = self.total + self.weight;
        if r > self.max && self.held() < FIT_MIN_HELD {
            return self.weight / denom;
        }
        if r > self.max {
            let excess = (r - self.max) / self.beta;
            return (self.weight / denom * (-excess).exp()).max(1e-300);
        }
        let pos = position(r);
        let k = pos as usize;
        let frac = pos - k as f64;
        let above: f64 = self.counts[k + 1..].iter().sum::<f64>() + self.counts[k] * (1.0 - frac);
        ((above + self.weight) / denom).min(1.0)
    }

    pub(crate) fn push(&mut self, r: f64) {
        let k = position(r) as usize;
        self.counts[k] += self.weight;
        self.total += self.weight;
        self.max = self.max.max(r);
        self.weight /= self.decay;
        if self.weight > RESCALE_AT {
            let s = 1.0 / self.weight;
            self.counts.iter_mut().for_each(|c| *c *= s);
            self.total *= s;
            self.weight = 1.0;
        }
        self.since_refit += 1;
        if self.since_refit >= REFIT_EVERY || self.held() <= REFIT_EVERY as f64 {
            self.refit();
        }
    }

    /// Refits the tail: the largest value still carrying weight, and the mean excess over
    /// the 90th percentile.
    fn refit(&mut self) {
        self.since_refit = 0;
        if self.total <= 0.0 {
            return;
        }
        // A maximum whose bin has been forgotten (below a millionth of the newest weight) no
        // longer anchors the tail.
        let floor = self.weight * 1e-6;
        if let Some(top) = self.counts.iter().rposition(|&c| c > floor) {
            self.max = self.max.min(value_at(top as f64 + 1.0));
        }
        let target = 0.1 * self.total;
        let (mut acc, mut k) = (0.0, BINS);
        while k > 0 && acc < target {
            k -= 1;
            acc += self.counts[k];
        }
        let q = value_at(k as f64);
        let (mut sum, mut mass) = (0.0, 0.0);
        for (j, &c) in self.counts.iter().enumerate().skip(k) {
            let centre = value_at(j as f64 + 0.5).min(self.max);
            sum += c * (centre - q).max(0.0);
            mass += c;
        }
        self.beta = if mass > 0.0 { sum / mass } else { 0.0 }.max(self.min_beta);
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u32(self.since_refit);
        w.f64(self.total);
        w.f64(self.weight);
        w.f64(self.decay);
        w.f64(self.max);
        w.f64(self.beta);
        w.f64(self.min_beta);
        // Only the occupied range of bins.
        let first = self.counts.iter().position(|&c| c != 0.0).unwrap_or(BINS);
        let last = self
            .counts
            .iter()
            .rposition(|&c| c != 0.0)
            .map_or(first, |l| l + 1);
        w.u32(first as u32);
        w.u32(last as u32);
        for &c in &self.counts[first..last] {
            w.f64(c);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, memory: u32) -> Result<Self, DetectError> {
        let mut t = TailCalibrator::new(memory, 0.0);
        t.since_refit = r.u32()?;
        t.total = r.f64()?;
        t.weight = r.f64()?;
        let decay = r.f64()?;
        t.max = r.f64()?;
        t.beta = r.f64()?;
        t.min_beta = r.f64()?;
        let first = r.u32()? as usize;
        let last = r.u32()? as usize;
        let bad = |m: &str| Err(DetectError::CorruptState(m.into()));
        if decay.to_bits() != t.decay.to_bits() {
            return bad("calibration memory differs from settings");
        }
        if first > last || last > BINS || t.since_refit > REFIT_EVERY {
            return bad("bad calibration bins");
        }
        let ok = |x: f64| x.is_finite() && x >= 0.0;
        for k in first..last {
            t.counts[k] = r.f64()?;
            if !ok(t.counts[k]) {
                return bad("bad calibration count");
            }
        }
        let fields_ok = ok(t.total)
            && ok(t.max)
            && t.weight.is_finite()
            && t.weight >= 1.0
            && t.beta.is_finite()
            && t.beta > 0.0;
        if !fields_ok {
            return bad("bad calibration fields");
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_are_monotone_empirical_and_extrapolated() {
        let mut c = TailCalibrator::new(100_000, 0.01);
        for i in 0..1000 {
            c.push((i % 100) as f64 / 10.0);
        }
        let mut last = 1.0;
        for k in 0..60 {
            let p = c.p_value(k as f64 * 0.25);
            assert!(p <= last && p > 0.0, "{k}: {p} > {last}");
            last = p;
        }
        // About half the values are at least 5.0.
        assert!((c.p_value(5.0) - 0.5).abs() < 0.03, "{}", c.p_value(5.0));
        assert!(c.p_value(9.9) <= 0.02);
        assert!(c.p_value(40.0) < 1e-6);
    }

    #[test]
    fn old_values_are_forgotten() {
        let mut c = TailCalibrator::new(500, 0.01);
        for _ in 0..5000 {
            c.push(50.0);
        }
        for _ in 0..5000 {
            c.push(1.0);
        }
        assert!(c.held() < 600.0 && c.held() > 400.0, "{}", c.held());
        // The 50s are forgotten: 20 is about as rare as anything held can be.
        assert!(c.p_value(20.0) < 1.5 / c.held(), "{}", c.p_value(20.0));
        let mut long = TailCalibrator::new(1_000_000, 0.01);
        for x in [50.0, 1.0] {
            for _ in 0..5000 {
                long.push(x);
            }
        }
        assert!(
            (long.p_value(20.0) - 0.5).abs() < 0.01,
            "{}",
            long.p_value(20.0)
        );
    }

    #[test]
    fn round_trip_is_exact() {
        let mut c = TailCalibrator::new(3000, 0.05);
        for i in 0..20_000u32 {
            c.push((i.wrapping_mul(2_654_435_761) % 1000) as f64 / 37.0);
        }
        let mut w = Writer::new(b"TEST", 1);
        c.encode(&mut w);
        let bytes = w.finish();
        let (mut r, _) = Reader::open(&bytes, b"TEST").unwrap();
        let mut d = TailCalibrator::decode(&mut r, 3000).unwrap();
        r.finish().unwrap();
        for i in 0..500 {
            let x = (i * 13 % 29) as f64 / 3.0;
            assert_eq!(c.p_value(x).to_bits(), d.p_value(x).to_bits());
            c.push(x);
            d.push(x);
        }
        let (mut r2, _) = Reader::open(&bytes, b"TEST").unwrap();
        assert!(TailCalibrator::decode(&mut r2, 3001).is_err());
    }
}
