//! Value and template frequencies of one field, bounded (issue 21).
//!
//! Owns [`Table`]: the most frequent values (or message templates) of a field with a count
//! learned from normal-looking events only, so a value seen 3 times in 10,000 events is still
//! rare the third time it comes with an anomaly, and a short-horizon occurrence rate (updated
//! by every event) for bursts. Bounded: at most the cap it is given; when full, the entry with
//! the smallest count goes (ties: the least recently seen, then the lowest slot), which is
//! deterministic. Counts are halved together with the detector's event total (see
//! `HORIZON` in the parent), so "in the last N events" stays true. No allocation on lookups.

use super::super::state::{Reader, Writer};
use super::super::DetectError;

/// One tracked value or template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub hash: u64,
    /// Learned occurrences (normal-looking events only), halved with the horizon.
    pub count: f64,
    /// Exponentially weighted occurrences over the recent window, as of event `last`.
    pub recent: f64,
    pub last: u64,
    /// The value or template as a person reads it (cut).
    pub text: String,
}

/// Bounded frequency table of one field.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Table {
    pub entries: Vec<Entry>,
    /// Sum of all learned counts, tracked or since evicted (the field's learned events).
    pub total: f64,
    /// Sum of the tracked entries' counts.
    pub tracked: f64,
}

impl Table {
    pub(crate) fn find(&self, hash: u64) -> Option<usize> {
        self.entries.iter().position(|e| e.hash == hash)
    }

    /// P(a value at most as frequent as this one): the learned mass of tracked values with a
    /// count at most `count`, plus the mass of values no longer tracked, plus one for this
    /// event, over the field's learned events plus one. A value never learned gets
    /// `(untracked + 1) / (total + 1)`.
    pub(crate) fn p_rare(&self, count: f64) -> f64 {
        let mut mass = (self.total - self.tracked).max(0.0);
        for e in &self.entries {
            if e.count <= count {
                mass += e.count;
            }
        }
        ((mass + 1.0) / (self.total + 1.0)).min(1.0)
    }

    /// The entry's recent occurrences as of event `now` (lazy exponential decay).
    pub(crate) fn recent_at(e: &Entry, now: u64, alpha: f64) -> f64 {
        let dt = now.saturating_sub(e.last).min(1 << 20) as i32;
        e.recent * (1.0 - alpha).powi(dt)
    }

    /// Records one occurrence at event `now`: fully in the recent rate, with `weight` in the
    /// count. Inserts (evicting when `cap` is reached) if the value is not tracked.
    pub(crate) fn record(
        &mut self,
        hash: u64,
        text: impl FnOnce() -> String,
        weight: f64,
        now: u64,
        alpha: f64,
        cap: usize,
    ) {
        let i = match self.find(hash) {
            Some(i) => i,
            None => {
                self.trim(cap.saturating_sub(1));
                self.entries.push(Entry {
                    hash,
                    count: 0.0,
                    recent: 0.0,
                    last: now,
                    text: text(),
                });
                self.entries.len() - 1
            }
        };
        let e = &mut self.entries[i];
        e.recent = Table::recent_at(e, now, alpha) + 1.0;
        e.last = now;
        e.count += weight;
        self.tracked += weight;
        self.total += weight;
    }

    /// Evicts until at most `cap` entries remain (smallest count, then least recent, first).
    pub(crate) fn trim(&mut self, cap: usize) {
        while self.entries.len() > cap {
            let mut worst = 0;
            for (i, e) in self.entries.iter().enumerate() {
                let w = &self.entries[worst];
                if e.count < w.count || (e.count == w.count && e.last < w.last) {
                    worst = i;
                }
            }
            let e = self.entries.swap_remove(worst);
            self.tracked -= e.count;
        }
    }

    pub(crate) fn halve(&mut self) {
        self.total *= 0.5;
        self.tracked *= 0.5;
        for e in &mut self.entries {
            e.count *= 0.5;
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.f64(self.total);
        w.f64(self.tracked);
        w.u32(self.entries.len() as u32);
        for e in &self.entries {
            w.u64(e.hash);
            w.f64(e.count);
            w.f64(e.recent);
            w.u64(e.last);
            w.bytes(e.text.as_bytes());
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, cap: usize) -> Result<Self, DetectError> {
        let total = r.f64()?;
        let tracked = r.f64()?;
        let n = r.u32()? as usize;
        if n > cap {
            return Err(DetectError::CorruptState("value table too long".into()));
        }
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let hash = r.u64()?;
            let count = r.f64()?;
            let recent = r.f64()?;
            let last = r.u64()?;
            let text = String::from_utf8(r.bytes(256)?.to_vec())
                .map_err(|_| DetectError::CorruptState("value text is not UTF-8".into()))?;
            entries.push(Entry {
                hash,
                count,
                recent,
                last,
                text,
            });
        }
        Ok(Table {
            entries,
            total,
            tracked,
        })
    }
}

/// Upper tail of a Poisson count, P(X >= k) for mean `lambda` (exact sum, k <= 10,000).
pub(crate) fn poisson_sf(k: f64, lambda: f64) -> f64 {
    let k = k.floor();
    if k <= 0.0 {
        return 1.0;
    }
    let lambda = lambda.max(1e-12);
    // P(X >= k) = 1 - sum_{j<k} e^-l l^j / j!, summed in logs from the mode outwards would be
    // exact; for the small k of a window a direct tail sum from k upwards is stable enough.
    let mut log_term = -lambda + k * lambda.ln() - ln_factorial(k);
    let mut sum = 0.0;
    let mut j = k;
    for _ in 0..10_000 {
        let t = log_term.exp();
        sum += t;
        if t < sum * 1e-12 {
            break;
        }
        j += 1.0;
        log_term += lambda.ln() - j.ln();
    }
    sum.clamp(1e-300, 1.0)
}

fn ln_factorial(k: f64) -> f64 {
    if k < 20.0 {
        (2..=k as u64).map(|i| (i as f64).ln()).sum()
    } else {
        // Stirling with the 1/12k correction: error below 1e-8 for k >= 20.
        k * k.ln() - k + 0.5 * (std::f64::consts::TAU * k).ln() + 1.0 / (12.0 * k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_values_stay_rare_when_not_learned() {
        let mut t = Table::default();
        for i in 0..10_000u64 {
            t.record(1, || "200".into(), 1.0, i, 1.0 / 32.0, 16);
        }
        let p_new = t.p_rare(0.0);
        assert!(p_new < 2e-4, "{p_new}");
        // Three anomalous occurrences are tracked for bursts and learned a quarter each.
        for i in 0..3 {
            t.record(2, || "500".into(), 0.25, 10_000 + i, 1.0 / 32.0, 16);
        }
        let e = &t.entries[t.find(2).unwrap()];
        assert_eq!(e.count, 0.75);
        assert!(t.p_rare(e.count) < 2e-4);
        assert!(Table::recent_at(e, 10_003, 1.0 / 32.0) > 2.5);
    }

    #[test]
    fn eviction_is_bounded_and_takes_the_rarest() {
        let mut t = Table::default();
        for i in 0..1000u64 {
            let h = if i % 2 == 0 { 7 } else { 100 + i };
            t.record(h, || "v".into(), 1.0, i, 0.1, 8);
            assert!(t.entries.len() <= 8);
        }
        assert!(t.find(7).is_some());
        assert!((t.total - 1000.0).abs() < 1e-9);
        // The many values seen once are mostly untracked mass: each is not rare.
        assert!(t.p_rare(1.0) > 0.4);
    }

    #[test]
    fn poisson_tail_matches_known_values() {
        assert!((poisson_sf(1.0, 1.0) - (1.0 - (-1.0f64).exp())).abs() < 1e-9);
        assert!((poisson_sf(3.0, 2.0) - 0.323_323_6).abs() < 1e-6);
        assert!(poisson_sf(60.0, 0.4) < 1e-60);
        assert_eq!(poisson_sf(0.0, 5.0), 1.0);
    }
}
