//! Calibration of raw detector scores into p-values and 0..1 scores (issue 3).
//!
//! Owns [`Calibrator`]: a ring of the most recent raw scores. A new raw score's p-value is its
//! empirical upper-tail frequency among them; beyond the largest one seen, the tail is
//! extrapolated with an exponential fitted to the excesses over the 90th percentile (the
//! peaks-over-threshold idea), so p-values keep shrinking smoothly for ever-larger surprises
//! instead of flooring at 1/(n+1). Must stay O(ring) per score with no allocation.

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
            scratch: Vec::with_capacity(cap),
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
        let count = self.ring.iter().filter(|&&h| h >= r).count();
        let n1 = (n + 1) as f64;
        if count > 0 {
            (count + 1) as f64 / n1
        } else {
            let excess = (r - self.max).max(0.0) / self.beta;
            ((-excess).exp() / n1).max(1e-300)
        }
    }

    /// Pushes a flagged event's score at most two tail scales above the largest held one
    /// (issue 21): leaving flagged scores out would cut the tail at the alarm threshold, so an
    /// ordinary but infrequent kind flagged once would be flagged for ever; pushing them whole
    /// would let an incident mask its repeat. Capped, the tail grows a step per alarm.
    pub(crate) fn push_capped(&mut self, r: f64) {
        let cap = if self.ring.is_empty() {
            r
        } else {
            self.max + 2.0 * self.beta
        };
        self.push(r.min(cap));
    }

    pub(crate) fn push(&mut self, r: f64) {
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
            w.f64(h);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DetectError> {
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
        for _ in 0..n {
            c.ring.push(r.f64()?);
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
    }
}
