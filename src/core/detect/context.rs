//! Order-2 context model over quantized symbols: the compressor behind the metric detector.
//!
//! Owns [`ContextModel`], hashed counts of the 1-, 2- and 3-grams held in the metric
//! detector's baseline ring, kept exact under both arrival and eviction, so its code lengths
//! are "the cost of this symbol given the baseline" of an arithmetic coder using the model
//! (PPM-style blending: order 2 falls back on order 1, which falls back on order 0, and
//! symbols never seen are escaped and coded by their distance from the baseline's centre
//! with Elias gamma). Counts are a pure function of the ring, so a restored detector rebuilds
//! them instead of storing them. Must not allocate per symbol.

use super::compress::gamma_bits;

const BITS: u32 = 13;
const SIZE: usize = 1 << BITS;

#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[inline]
fn slot(seed: u64, a: i32, b: i32, c: i32) -> usize {
    let k =
        seed ^ (a as u32 as u64) ^ ((b as u32 as u64) << 21) ^ ((c as u32 as u64).rotate_left(42));
    (mix(k) >> (64 - BITS)) as usize
}

const S0: u64 = 0x1000_0000_0000_0001;
const S1: u64 = 0x2000_0000_0000_0003;
const C1: u64 = 0x3000_0000_0000_0005;
const S2: u64 = 0x4000_0000_0000_0007;
const C2: u64 = 0x5000_0000_0000_0009;

/// Hashed n-gram counts of the symbols in a ring (see module doc).
#[derive(Debug, Clone)]
pub(crate) struct ContextModel {
    n0: Vec<u16>,
    n1: Vec<u16>,
    c1: Vec<u16>,
    n2: Vec<u16>,
    c2: Vec<u16>,
    total: u32,
    distinct: u32,
    blend: f64,
}

impl ContextModel {
    pub(crate) fn new(blend: f64) -> Self {
        ContextModel {
            n0: vec![0; SIZE],
            n1: vec![0; SIZE],
            c1: vec![0; SIZE],
            n2: vec![0; SIZE],
            c2: vec![0; SIZE],
            total: 0,
            distinct: 0,
            blend,
        }
    }

    pub(crate) fn clear(&mut self) {
        for t in [
            &mut self.n0,
            &mut self.n1,
            &mut self.c1,
            &mut self.n2,
            &mut self.c2,
        ] {
            t.iter_mut().for_each(|x| *x = 0);
        }
        self.total = 0;
        self.distinct = 0;
    }

    /// Adds the n-grams that end at `s`; `p1`/`p2` are the one and two symbols before it,
    /// when they are in the ring.
    #[inline]
    pub(crate) fn add(&mut self, p2: Option<i32>, p1: Option<i32>, s: i32) {
        let i = slot(S0, s, 0, 0);
        if self.n0[i] == 0 {
            self.distinct += 1;
        }
        self.n0[i] = self.n0[i].saturating_add(1);
        self.total += 1;
        if let Some(a) = p1 {
            inc(&mut self.n1[slot(S1, a, s, 0)]);
            inc(&mut self.c1[slot(C1, a, 0, 0)]);
            if let Some(b) = p2 {
                inc(&mut self.n2[slot(S2, b, a, s)]);
                inc(&mut self.c2[slot(C2, b, a, 0)]);
            }
        }
    }

    /// Removes the n-grams that start at `s` (the oldest ring symbol); `f1`/`f2` are the one
    /// and two symbols after it.
    #[inline]
    pub(crate) fn remove(&mut self, s: i32, f1: Option<i32>, f2: Option<i32>) {
        let i = slot(S0, s, 0, 0);
        dec(&mut self.n0[i]);
        if self.n0[i] == 0 {
            self.distinct = self.distinct.saturating_sub(1);
        }
        self.total = self.total.saturating_sub(1);
        if let Some(a) = f1 {
            dec(&mut self.n1[slot(S1, s, a, 0)]);
            dec(&mut self.c1[slot(C1, s, 0, 0)]);
            if let Some(b) = f2 {
                dec(&mut self.n2[slot(S2, s, a, b)]);
                dec(&mut self.c2[slot(C2, s, a, 0)]);
            }
        }
    }

    /// Probability of `s` after `p2, p1` under the blended model; `centre` is the symbol
    /// novel symbols are coded relative to.
    #[inline]
    pub(crate) fn prob(&self, p2: Option<i32>, p1: Option<i32>, s: i32, centre: i32) -> f64 {
        let n = self.total as f64;
        let u = self.distinct.max(1) as f64;
        let c0 = self.n0[slot(S0, s, 0, 0)] as f64;
        let novel = |s: i32| {
            let d = (s as i64 - centre as i64).unsigned_abs() + 1;
            (-((gamma_bits(d) + 1) as f64)).exp2()
        };
        let p0 = if n == 0.0 {
            novel(s)
        } else if c0 > 0.0 {
            c0 / (n + u)
        } else {
            u / (n + u) * novel(s)
        };
        let beta = self.blend;
        let Some(a) = p1 else { return p0 };
        let p1v = (self.n1[slot(S1, a, s, 0)] as f64 + beta * p0)
            / (self.c1[slot(C1, a, 0, 0)] as f64 + beta);
        let Some(b) = p2 else { return p1v };
        (self.n2[slot(S2, b, a, s)] as f64 + beta * p1v)
            / (self.c2[slot(C2, b, a, 0)] as f64 + beta)
    }

    /// Code length in bits of `s` in its context.
    #[inline]
    pub(crate) fn cost(&self, p2: Option<i32>, p1: Option<i32>, s: i32, centre: i32) -> f64 {
        -self.prob(p2, p1, s, centre).max(1e-300).log2()
    }
}

#[inline]
fn inc(x: &mut u16) {
    *x = x.saturating_add(1);
}

#[inline]
fn dec(x: &mut u16) {
    *x = x.saturating_sub(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learned_patterns_are_cheap_and_novel_symbols_expensive() {
        let mut m = ContextModel::new(2.0);
        let seq: Vec<i32> = (0..300).map(|i| [0, 1, 2, 1][i % 4]).collect();
        for i in 0..seq.len() {
            let p1 = i.checked_sub(1).map(|j| seq[j]);
            let p2 = i.checked_sub(2).map(|j| seq[j]);
            m.add(p2, p1, seq[i]);
        }
        let expected = m.cost(Some(1), Some(2), 1, 1);
        let unexpected = m.cost(Some(1), Some(2), 0, 1);
        let novel = m.cost(Some(1), Some(2), 40, 1);
        assert!(expected < 0.5, "{expected}");
        assert!(unexpected > expected + 3.0);
        assert!(novel > unexpected);
        // Removing everything that was added leaves an empty model.
        for i in 0..seq.len() {
            m.remove(seq[i], seq.get(i + 1).copied(), seq.get(i + 2).copied());
        }
        assert_eq!(m.total, 0);
        assert!(m.n1.iter().chain(&m.n2).chain(&m.c2).all(|&c| c == 0));
    }
}
