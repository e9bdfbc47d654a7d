//! Fixed-capacity rings used for every bounded history in the detectors.
//!
//! Owns only storage order: logical index 0 is the oldest element. Encoding writes oldest
//! first, so a restored ring behaves identically (sums are taken in logical order). [`Ring`]
//! holds `f64`; [`F32Ring`] holds `f32` live and in state (half the bytes), for the metric
//! detector's long histories.

use super::state::{Reader, Writer};
use super::DetectError;

#[derive(Debug, Clone)]
pub(crate) struct Ring {
    buf: Vec<f64>,
    cap: usize,
    head: usize,
}

impl Ring {
    pub(crate) fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Ring {
            buf: Vec::with_capacity(cap),
            cap,
            head: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Appends `x`, returning the evicted oldest element when full.
    #[inline]
    pub(crate) fn push(&mut self, x: f64) -> Option<f64> {
        if self.buf.len() < self.cap {
            self.buf.push(x);
            None
        } else {
            let old = std::mem::replace(&mut self.buf[self.head], x);
            self.head += 1;
            if self.head == self.cap {
                self.head = 0;
            }
            Some(old)
        }
    }

    /// Element `i` counted from the oldest.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> f64 {
        let j = self.head + i;
        self.buf[if j >= self.cap { j - self.cap } else { j }]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        (0..self.buf.len()).map(move |i| self.get(i))
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u32(self.cap as u32);
        w.u32(self.buf.len() as u32);
        for x in self.iter() {
            w.f64(x);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, expected_cap: usize) -> Result<Self, DetectError> {
        let cap = r.u32()? as usize;
        let n = r.u32()? as usize;
        if cap != expected_cap.max(1) || n > cap {
            return Err(DetectError::CorruptState("bad ring size".into()));
        }
        let mut ring = Ring::new(cap);
        for _ in 0..n {
            ring.buf.push(r.f64()?);
        }
        Ok(ring)
    }
}

/// Fixed-capacity ring of `f32`; logical index 0 is the oldest element.
#[derive(Debug, Clone)]
pub(crate) struct F32Ring {
    buf: Vec<f32>,
    cap: usize,
    head: usize,
}

impl F32Ring {
    pub(crate) fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        F32Ring {
            buf: Vec::with_capacity(cap),
            cap,
            head: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.buf.len() == self.cap
    }

    #[inline]
    pub(crate) fn push(&mut self, x: f32) {
        if self.buf.len() < self.cap {
            self.buf.push(x);
        } else {
            self.buf[self.head] = x;
            self.head += 1;
            if self.head == self.cap {
                self.head = 0;
            }
        }
    }

    /// Element `i` counted from the oldest.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> f32 {
        let j = self.head + i;
        self.buf[if j >= self.cap { j - self.cap } else { j }]
    }

    /// Element `k` back from the newest (0 = newest); `None` when not held.
    #[inline]
    pub(crate) fn back(&self, k: usize) -> Option<f32> {
        let n = self.buf.len();
        (k < n).then(|| self.get(n - 1 - k))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = f32> + '_ {
        (0..self.buf.len()).map(move |i| self.get(i))
    }

    /// Raw storage (any order): for order-independent scans.
    pub(crate) fn raw(&self) -> &[f32] {
        &self.buf
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u32(self.cap as u32);
        w.u32(self.buf.len() as u32);
        for x in self.iter() {
            w.u32(x.to_bits());
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, expected_cap: usize) -> Result<Self, DetectError> {
        let cap = r.u32()? as usize;
        let n = r.u32()? as usize;
        if cap != expected_cap.max(1) || n > cap {
            return Err(DetectError::CorruptState("bad ring size".into()));
        }
        let mut ring = F32Ring::new(cap);
        for _ in 0..n {
            ring.buf.push(f32::from_bits(r.u32()?));
        }
        Ok(ring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_in_order() {
        let mut r = Ring::new(3);
        assert_eq!(r.push(1.0), None);
        r.push(2.0);
        r.push(3.0);
        assert_eq!(r.push(4.0), Some(1.0));
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![2.0, 3.0, 4.0]);
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn f32_ring_keeps_the_newest_and_round_trips() {
        let mut ring = F32Ring::new(5);
        for i in 0..150 {
            ring.push(i as f32);
        }
        assert_eq!(ring.back(0), Some(149.0));
        assert_eq!(ring.back(4), Some(145.0));
        assert_eq!(ring.back(5), None);
        assert!(ring.is_full() && ring.raw().len() == 5);
        let mut w = Writer::new(b"TEST", 1);
        ring.encode(&mut w);
        let bytes = w.finish();
        let (mut r, _) = Reader::open(&bytes, b"TEST").unwrap();
        let back = F32Ring::decode(&mut r, 5).unwrap();
        r.finish().unwrap();
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            ring.iter().collect::<Vec<_>>()
        );
        let (mut r, _) = Reader::open(&bytes, b"TEST").unwrap();
        assert!(F32Ring::decode(&mut r, 6).is_err());
    }
}
