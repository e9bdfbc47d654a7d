//! Fixed-capacity ring of `f64` used for every bounded history in the detectors.
//!
//! Owns only storage order: logical index 0 is the oldest element. Encoding writes oldest
//! first, so a restored ring behaves identically (sums are taken in logical order).

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

    pub(crate) fn is_full(&self) -> bool {
        self.buf.len() == self.cap
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

    /// Raw storage (any order): for order-independent scans such as counting or selection.
    pub(crate) fn raw(&self) -> &[f64] {
        &self.buf
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
        assert!(r.is_full());
    }
}
