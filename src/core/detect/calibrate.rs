//! Calibration of raw detector scores into p-values and 0..1 scores (issue 3).
//!
//! Owns [`Calibrator`]: a ring of the most recent raw scores. A new raw score's p-value is its
//! empirical upper-tail frequency among them; beyond the largest one seen, the tail is
//! extrapolated with an exponential fitted to the excesses over the 90th percentile (the
//! peaks-over-threshold idea), so p-values keep shrinking smoothly for ever-larger surprises
//! instead of flooring at 1/(n+1). Must stay O(ring) per score with no allocation.
//!
//! A compact calibrator ([`Calibrator::new_compact`]) rounds every score to `f32` as it is
//! pushed and stores 4 bytes per score, halving its share of a detector's state; restoring
//! it is still exact because the held values are exactly representable in `f32`.

use super::state::{Reader, Writer};
use super::DetectError;

const REFIT_EVERY: u32 = 16;

/// Rolling empirical distribution of raw scores.
#[derive(Debug, Clone)]
pub(crate) struct Calibrator {
    ring: Vec<f64>,
    cap: usize,
    head: usize,
    since_refit: u32,
    max: f64,
    beta: f64,
    min_beta: f64,
    /// Scores rounded to `f32` on push and stored as 4 bytes each.
    compact: bool,
    scratch: Vec<f64>,
}

impl Calibrator {
    pub(crate) fn new(cap: usize, min_beta: f64) -> Self {
        let cap = cap.max(2);
        Calibrator {
            ring: Vec::with_capacity(cap),
            cap,
            head: 0,
            since_refit: 0,
            max: 0.0,
            beta: min_beta,
            min_beta,
            compact: false,
            scratch: Vec::with_capacity(cap),
        }
    }

    /// A calibrator whose scores are held at `f32` precision (see the module doc).
    pub(crate) fn new_compact(cap: usize, min_beta: f64) -> Self {
        Calibrator {
            compact: true,
            ..Calibrator::new(cap, min_beta)
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }

    /// Upper-tail p-value of `r` against the held scores, in (0, 1].
    pub(crate) fn p_value(&self, r: f64) -> f64 {
        let n = self.ring.len();
        if n == 0 {
            return 1.0;
        }
        // Compare like with like: a compact ring holds rounded scores.
        let r = self.rounded(r);
        let count = self.ring.iter().filter(|&&h| h >= r).count();
        let n1 = (n + 1) as f64;
        if count > 0 {
            (count + 1) as f64 / n1
        } else {
            let excess = (r - self.max).max(0.0) / self.beta;
            ((-excess).exp() / n1).max(1e-300)
        }
    }

    #[inline]
    fn rounded(&self, r: f64) -> f64 {
        if self.compact {
            r.clamp(-f32::MAX as f64, f32::MAX as f64) as f32 as f64
        } else {
            r
        }
    }

    pub(crate) fn push(&mut self, r: f64) {
        let r = self.rounded(r);
        if self.ring.len() < self.cap {
            self.ring.push(r);
        } else {
            self.ring[self.head] = r;
            self.head = (self.head + 1) % self.cap;
        }
        self.since_refit += 1;
        if self.since_refit >= REFIT_EVERY || self.ring.len() <= REFIT_EVERY as usize {
            self.refit();
        }
    }

    /// Mean of the last `k` scores pushed (all if fewer).
    pub(crate) fn mean_last(&self, k: usize) -> f64 {
        let n = self.ring.len();
        let k = k.min(n);
        if k == 0 {
            return 0.0;
        }
        let newest = if n < self.cap {
            n
        } else {
            self.head + self.cap
        };
        (newest - k..newest)
            .map(|i| self.ring[i % self.cap])
            .sum::<f64>()
            / k as f64
    }

    /// Mean and standard deviation of all held scores.
    pub(crate) fn mean_std(&self) -> (f64, f64) {
        let n = self.ring.len();
        if n == 0 {
            return (0.0, 0.0);
        }
        let m = self.oldest_first().sum::<f64>() / n as f64;
        let v = self.oldest_first().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
        (m, v.sqrt())
    }

    /// Held scores, oldest first: sums run in this order so a restored ring (stored oldest
    /// first) reproduces them bit for bit.
    fn oldest_first(&self) -> impl Iterator<Item = f64> + '_ {
        let n = self.ring.len();
        let start = if n < self.cap { 0 } else { self.head };
        (0..n).map(move |i| self.ring[(start + i) % n])
    }

    fn refit(&mut self) {
        self.since_refit = 0;
        let n = self.ring.len();
        if n == 0 {
            return;
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.ring);
        let k = (n * 9) / 10;
        let (_, q, _) = self
            .scratch
            .select_nth_unstable_by(k.min(n - 1), f64::total_cmp);
        let q = *q;
        let mut sum = 0.0;
        let mut cnt = 0usize;
        let mut max = f64::MIN;
        for h in self.oldest_first() {
            max = max.max(h);
            if h > q {
                sum += h - q;
                cnt += 1;
            }
        }
        self.max = max;
        self.beta = if cnt > 0 { sum / cnt as f64 } else { 0.0 }.max(self.min_beta);
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u32(self.cap as u32);
        w.u32(self.since_refit);
        w.f64(self.max);
        w.f64(self.beta);
        w.f64(self.min_beta);
        w.u32(self.ring.len() as u32);
        // Oldest first, so a restored ring has the same order.
        for h in self.oldest_first() {
            if self.compact {
                w.u32((h as f32).to_bits());
            } else {
                w.f64(h);
            }
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DetectError> {
        Calibrator::decode_with(r, false)
    }

    /// Decodes what a compact calibrator encoded.
    pub(crate) fn decode_compact(r: &mut Reader<'_>) -> Result<Self, DetectError> {
        Calibrator::decode_with(r, true)
    }

    fn decode_with(r: &mut Reader<'_>, compact: bool) -> Result<Self, DetectError> {
        let cap = r.u32()? as usize;
        if !(2..=1 << 16).contains(&cap) {
            return Err(DetectError::CorruptState("bad calibration size".into()));
        }
        let since_refit = r.u32()?;
        let max = r.f64()?;
        let beta = r.f64()?;
        let min_beta = r.f64()?;
        let n = r.u32()? as usize;
        if n > cap {
            return Err(DetectError::CorruptState("bad calibration length".into()));
        }
        let mut c = Calibrator::new(cap, min_beta);
        c.compact = compact;
        for _ in 0..n {
            let h = if compact {
                f32::from_bits(r.u32()?) as f64
            } else {
                r.f64()?
            };
            c.ring.push(h);
        }
        // A full ring restored oldest-first has its oldest element at index 0.
        c.head = 0;
        c.since_refit = since_refit;
        c.max = max;
        c.beta = beta;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_value_is_monotone_and_extrapolates_past_the_maximum() {
        let mut c = Calibrator::new(100, 0.01);
        for i in 0..100 {
            c.push((i % 10) as f64);
        }
        let mut last = 1.0;
        for k in 0..40 {
            let p = c.p_value(k as f64 * 0.5);
            assert!(p <= last && p > 0.0);
            last = p;
        }
        assert!(c.p_value(30.0) < 1e-6);
        assert!((c.mean_last(10) - 4.5).abs() < 1e-12);
    }

    #[test]
    fn compact_calibrator_rounds_to_f32_and_restores_exactly() {
        let mut c = Calibrator::new_compact(50, 0.05);
        for i in 0..80 {
            c.push(0.1 + i as f64 / 7.0);
        }
        let mut w = Writer::new(b"TEST", 1);
        c.encode(&mut w);
        let bytes = w.finish();
        let (mut r, _) = Reader::open(&bytes, b"TEST").unwrap();
        let d = Calibrator::decode_compact(&mut r).unwrap();
        for k in 0..40 {
            let x = k as f64 * 0.37;
            assert_eq!(c.p_value(x).to_bits(), d.p_value(x).to_bits());
        }
        // A score equal to a held one after rounding ties with it.
        let held = 0.1 + 79.0 / 7.0;
        assert_eq!(c.p_value(held), c.p_value(held as f32 as f64));
    }
}
