//! Numeric fields of a stream: each one's robust location and spread, and their joint
//! behaviour (issue 21).
//!
//! Owns [`Robust`] (median and MAD of a field's last [`ROBUST_KEEP`] normal-looking values)
//! and [`Joint`] (a streaming mean and covariance of up to [`JOINT_DIMS`] numeric fields, and
//! the Hotelling T² of an event against it, computed on the correlation matrix with a small
//! ridge so constant or collinear fields cannot make it singular). Both learn only from events
//! the detector did not flag, so an anomalous state stays anomalous. The covariance grows
//! until `memory` events and then forgets exponentially with weight `1 / memory`. Pure and
//! deterministic: sums run in a fixed order and nothing is cached between events.

use super::super::ring::Ring;
use super::super::state::{Reader, Writer};
use super::super::DetectError;

/// Normal-looking values kept per numeric field for its median and spread.
pub(crate) const ROBUST_KEEP: usize = 48;
/// Numeric fields that take part in the joint (T²) model.
pub(crate) const JOINT_DIMS: usize = 12;
const RIDGE: f64 = 1e-3;

/// Recomputing the median and MAD every this many pushes (once the ring is full) keeps the
/// sorting off most events.
const REFIT_EVERY: u32 = 8;

/// Median and median absolute deviation of a field's recent normal values.
#[derive(Debug, Clone)]
pub(crate) struct Robust {
    values: Ring,
    /// `(median, spread, constant)` as of the last refit.
    fit: (f64, f64, bool),
    since_fit: u32,
}

impl Robust {
    pub(crate) fn new() -> Self {
        Robust {
            values: Ring::new(ROBUST_KEEP),
            fit: (0.0, 1.0, true),
            since_fit: 0,
        }
    }

    /// The current `(median, spread, constant)`; see [`Robust::location_spread`].
    pub(crate) fn fit(&self) -> (f64, f64, bool) {
        self.fit
    }

    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    pub(crate) fn push(&mut self, x: f64) {
        self.values.push(x);
        self.since_fit += 1;
        if self.since_fit >= REFIT_EVERY || self.values.len() < ROBUST_KEEP {
            self.since_fit = 0;
            self.fit = self.location_spread();
        }
    }

    /// `(median, spread, constant)`: spread is 1.4826 MAD (the standard deviation for normal
    /// data). A quantized field (a sensor read in steps, most readings on one step) has a MAD
    /// of 0 although it varies; its spread is then 1.2533 times the mean absolute deviation
    /// from the median (also the standard deviation for normal data). Floored so a constant
    /// field still gives a finite distance; `constant` says the floor was used (every kept
    /// value equals the median).
    pub(crate) fn location_spread(&self) -> (f64, f64, bool) {
        let mut v: Vec<f64> = self.values.iter().collect();
        if v.is_empty() {
            return (0.0, 1.0, true);
        }
        v.sort_by(f64::total_cmp);
        let med = median_sorted(&v);
        for x in v.iter_mut() {
            *x = (*x - med).abs();
        }
        v.sort_by(f64::total_cmp);
        let mad = median_sorted(&v);
        // Issue 21: with MAD alone, SKAB's flow rate (78% of readings at 32.00, the rest one
        // step away) had a spread of 1e-9 and every reading off the step was "30,000 spreads
        // away", which drowned the numeric signal's calibration.
        let spread = if mad > 0.0 {
            1.4826 * mad
        } else {
            1.2533 * v.iter().sum::<f64>() / v.len() as f64
        };
        let floor = 1e-9_f64.max(med.abs() * 1e-6);
        (med, spread.max(floor), spread < floor)
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        self.values.encode(w);
        w.f64(self.fit.0);
        w.f64(self.fit.1);
        w.u8(self.fit.2 as u8);
        w.u32(self.since_fit);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DetectError> {
        let values = Ring::decode(r, ROBUST_KEEP)?;
        let fit = (r.f64()?, r.f64()?, r.u8()? != 0);
        let since_fit = r.u32()?;
        Ok(Robust {
            values,
            fit,
            since_fit,
        })
    }
}

fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Streaming mean and covariance of the joint numeric fields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Joint {
    pub dims: usize,
    /// Updates learned (not capped; the weight of a new one is `1 / min(n, memory)`).
    pub n: u64,
    mean: Vec<f64>,
    /// Covariance (not co-moment), row-major `dims x dims`.
    cov: Vec<f64>,
}

impl Joint {
    pub(crate) fn new(dims: usize) -> Self {
        let dims = dims.min(JOINT_DIMS);
        Joint {
            dims,
            n: 0,
            mean: vec![0.0; dims],
            cov: vec![0.0; dims * dims],
        }
    }

    /// Events needed before T² is trusted: 50 per dimension (a covariance of d fields needs
    /// many more events than d to be stable), at most `memory`.
    pub(crate) fn settled_after(&self, memory: u64) -> u64 {
        (50 * self.dims as u64).clamp(32, memory.max(32))
    }

    pub(crate) fn learn(&mut self, x: &[f64], memory: u64) {
        let d = self.dims;
        self.n += 1;
        let w = 1.0 / (self.n.min(memory.max(2))) as f64;
        let mut delta = [0.0; JOINT_DIMS];
        for i in 0..d {
            delta[i] = x[i] - self.mean[i];
            self.mean[i] += w * delta[i];
        }
        // Exponentially weighted covariance; with w = 1/n this is Welford's population form.
        for i in 0..d {
            for j in 0..d {
                let c = &mut self.cov[i * d + j];
                *c = (1.0 - w) * (*c + w * delta[i] * delta[j]);
            }
        }
    }

    /// Hotelling T² of `x` on the correlation scale, and each field's standardized offset.
    pub(crate) fn t2(&self, x: &[f64], z: &mut [f64; JOINT_DIMS]) -> f64 {
        let d = self.dims;
        if d == 0 || self.n < 2 {
            return 0.0;
        }
        let mut sd = [0.0; JOINT_DIMS];
        for i in 0..d {
            let floor = 1e-9_f64.max(self.mean[i].abs() * 1e-6);
            sd[i] = self.cov[i * d + i].max(0.0).sqrt().max(floor);
            z[i] = (x[i] - self.mean[i]) / sd[i];
        }
        // Correlation + ridge, then Cholesky (L L^T) in place.
        let mut l = [0.0; JOINT_DIMS * JOINT_DIMS];
        for i in 0..d {
            for j in 0..=i {
                let r = self.cov[i * d + j] / (sd[i] * sd[j]);
                l[i * JOINT_DIMS + j] = if i == j {
                    1.0 + RIDGE
                } else {
                    r.clamp(-1.0, 1.0)
                };
            }
        }
        for j in 0..d {
            let mut s = l[j * JOINT_DIMS + j];
            for k in 0..j {
                s -= l[j * JOINT_DIMS + k] * l[j * JOINT_DIMS + k];
            }
            let diag = s.max(RIDGE).sqrt();
            l[j * JOINT_DIMS + j] = diag;
            for i in j + 1..d {
                let mut s = l[i * JOINT_DIMS + j];
                for k in 0..j {
                    s -= l[i * JOINT_DIMS + k] * l[j * JOINT_DIMS + k];
                }
                l[i * JOINT_DIMS + j] = s / diag;
            }
        }
        // Solve L y = z; T² = |y|².
        let mut y = [0.0; JOINT_DIMS];
        let mut t2 = 0.0;
        for i in 0..d {
            let mut s = z[i];
            for k in 0..i {
                s -= l[i * JOINT_DIMS + k] * y[k];
            }
            y[i] = s / l[i * JOINT_DIMS + i];
            t2 += y[i] * y[i];
        }
        if t2.is_finite() {
            t2.min(1e300)
        } else {
            1e300
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u32(self.dims as u32);
        w.u64(self.n);
        for &m in &self.mean {
            w.f64(m);
        }
        for &c in &self.cov {
            w.f64(c);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DetectError> {
        let dims = r.u32()? as usize;
        if dims > JOINT_DIMS {
            return Err(DetectError::CorruptState("too many joint fields".into()));
        }
        let mut j = Joint::new(dims);
        j.n = r.u64()?;
        for m in j.mean.iter_mut() {
            *m = r.f64()?;
        }
        for c in j.cov.iter_mut() {
            *c = r.f64()?;
        }
        Ok(j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robust_spread_ignores_one_outlier() {
        let mut r = Robust::new();
        for i in 0..47 {
            r.push(20.0 + (i % 21) as f64);
        }
        r.push(98_765.0);
        let (m, s, c) = r.location_spread();
        assert!(!c);
        assert!((25.0..=35.0).contains(&m), "{m}");
        assert!((5.0..=12.0).contains(&s), "{s}");
    }

    #[test]
    fn a_quantized_field_keeps_a_spread() {
        // Readings on a 0.96 step, most on the middle one: MAD 0, yet the field varies.
        let mut r = Robust::new();
        for i in 0..48 {
            r.push(match i % 8 {
                0 => 31.04,
                1 | 2 => 32.96,
                _ => 32.0,
            });
        }
        let (m, s, c) = r.location_spread();
        assert!(!c && m == 32.0);
        assert!((0.3..=0.6).contains(&s), "{s}");
        let mut k = Robust::new();
        for _ in 0..48 {
            k.push(200.0);
        }
        assert!(k.location_spread().2, "a constant field stays constant");
    }

    #[test]
    fn t2_sees_a_broken_correlation_that_each_field_alone_does_not() {
        let mut j = Joint::new(2);
        let mut seed = 7u64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let a = (seed % 1000) as f64 / 100.0;
            let b = a + ((seed >> 20) % 100) as f64 / 1000.0;
            j.learn(&[a, b], 512);
        }
        let mut z = [0.0; JOINT_DIMS];
        let usual = j.t2(&[5.0, 5.05], &mut z);
        let broken = j.t2(&[2.0, 8.0], &mut z);
        assert!(usual < 10.0, "{usual}");
        assert!(broken > 100.0 * usual.max(1.0), "{broken}");
        assert!(z[0].abs() < 2.0 && z[1].abs() < 2.0);
    }
}
