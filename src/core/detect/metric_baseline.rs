//! The metric detector's baseline (issue 3): the rolling values, their robust median and
//! spread, the quantization into symbols and the order-2 context model over them.
//!
//! A child module of `metric`. Owns learning a value into the baseline (`learn`), the
//! periodic refresh of the median and spread with requantization when the spread moves by
//! more than a factor of two, and `rebuild_symbols`, which derives the symbol ring and the
//! model from the values (why neither is stored in the state).

use super::super::metric_settings::MIN_POINTS_TO_QUANTIZE;
use super::{MetricDetector, Quant};

/// The median and spread are refreshed every this many points.
const STATS_EVERY: u32 = 16;

impl MetricDetector {
    pub(super) fn learn(&mut self, x: f64) {
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
    pub(super) fn rebuild_symbols(&mut self) {
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
}
