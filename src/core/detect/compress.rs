//! Streaming LZ77 compressor cost model with the baseline as a live dictionary (issue 3).
//!
//! Owns [`LzHistory`]: a ring of the most recent bytes plus a hash table of 4-byte prefixes
//! that is updated as bytes arrive, so the cost of coding new bytes *given* the baseline is
//! O(new bytes), never O(baseline). Costs are the exact bit counts of a simple LZ77 code
//! (flag + literal byte, or flag + offset + Elias-gamma length), which is what a real
//! compressor emits minus entropy coding; we only need the sizes, never the output bytes.
//! Also owns the order-0 entropy helper and normalized compression distance used in
//! explanations. It must not allocate on the [`LzHistory::push_cost`] path.

const MIN_MATCH: usize = 4;
const HASH_BITS: u32 = 13;

/// Bits to code an integer `n >= 1` with Elias gamma.
#[inline]
pub(crate) fn gamma_bits(n: u64) -> u32 {
    2 * (63 - n.max(1).leading_zeros()) + 1
}

#[inline]
fn hash4(b: [u8; 4]) -> usize {
    (u32::from_le_bytes(b).wrapping_mul(2_654_435_761) >> (32 - HASH_BITS)) as usize
}

/// Recent bytes and an index of where each 4-byte prefix last occurred.
#[derive(Debug, Clone)]
pub(crate) struct LzHistory {
    ring: Vec<u8>,
    mask: u64,
    /// Bytes ever pushed.
    total: u64,
    /// All positions below this have been inserted into `table`.
    hashed_upto: u64,
    /// Last absolute position (+1; 0 = empty) per hash of a 4-byte prefix.
    table: Vec<u64>,
    offset_bits: u32,
}

impl LzHistory {
    /// `capacity` is rounded up to a power of two (at least 256).
    pub(crate) fn new(capacity: usize) -> Self {
        let cap = capacity.max(256).next_power_of_two();
        LzHistory {
            ring: vec![0; cap],
            mask: cap as u64 - 1,
            total: 0,
            hashed_upto: 0,
            table: vec![0; 1 << HASH_BITS],
            offset_bits: cap.trailing_zeros(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.ring.len()
    }

    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    #[inline]
    fn at(&self, abs: u64) -> u8 {
        self.ring[(abs & self.mask) as usize]
    }

    #[inline]
    fn key(&self, abs: u64) -> [u8; 4] {
        [
            self.at(abs),
            self.at(abs + 1),
            self.at(abs + 2),
            self.at(abs + 3),
        ]
    }

    /// Oldest absolute position still held.
    fn start(&self) -> u64 {
        self.total.saturating_sub(self.ring.len() as u64)
    }

    fn insert_pending(&mut self, limit: u64) {
        // Positions whose 4-byte prefix is complete and still in the ring.
        let from = self.hashed_upto.max(self.start());
        let mut p = from;
        while p + MIN_MATCH as u64 <= limit {
            let h = hash4(self.key(p));
            self.table[h] = p + 1;
            p += 1;
        }
        self.hashed_upto = self.hashed_upto.max(p);
    }

    /// Bits needed to code `x` after everything pushed so far; `x` then joins the history.
    /// Inputs longer than half the ring are costed on their last half only plus 9 bits per
    /// skipped byte (the ring cannot serve as a dictionary for them).
    pub(crate) fn push_cost(&mut self, x: &[u8]) -> u64 {
        let cap = self.ring.len();
        let (head, x) = if x.len() > cap / 2 {
            x.split_at(x.len() - cap / 2)
        } else {
            (&x[..0], x)
        };
        let mut bits = head.len() as u64 * 9;
        for &b in head {
            let i = (self.total & self.mask) as usize;
            self.ring[i] = b;
            self.total += 1;
        }
        let begin = self.total;
        for &b in x {
            let i = (self.total & self.mask) as usize;
            self.ring[i] = b;
            self.total += 1;
        }
        let end = self.total;
        // History positions whose prefix now spans into `x` become searchable first.
        self.insert_pending((begin + MIN_MATCH as u64 - 1).min(end));
        let start = self.start();
        let mut p = begin;
        while p < end {
            let mut len = 0u64;
            if p + MIN_MATCH as u64 <= end {
                let h = hash4(self.key(p));
                let cand = self.table[h];
                self.table[h] = p + 1;
                self.hashed_upto = self.hashed_upto.max(p + 1);
                if cand > 0 {
                    let c = cand - 1;
                    if c >= start && c < p {
                        while p + len < end && self.at(c + len) == self.at(p + len) {
                            len += 1;
                        }
                    }
                }
            }
            if len >= MIN_MATCH as u64 {
                bits += 1 + self.offset_bits as u64 + gamma_bits(len - MIN_MATCH as u64 + 1) as u64;
                // Index the matched positions so later bytes can refer to them.
                let stop = (p + len).min(end.saturating_sub(MIN_MATCH as u64 - 1));
                let mut q = p + 1;
                while q < stop {
                    let h = hash4(self.key(q));
                    self.table[h] = q + 1;
                    q += 1;
                }
                self.hashed_upto = self.hashed_upto.max(stop);
                p += len;
            } else {
                bits += 9;
                p += 1;
            }
        }
        bits
    }

    /// Rebuilds the hash index from the ring after a restore; identical to the streamed index
    /// for every position still in the ring, which are the only ones a lookup accepts.
    pub(crate) fn rebuild_index(&mut self) {
        self.table.iter_mut().for_each(|t| *t = 0);
        let upto = self.hashed_upto;
        self.hashed_upto = self.start();
        let mut p = self.start();
        while p < upto && p + MIN_MATCH as u64 <= self.total {
            let h = hash4(self.key(p));
            self.table[h] = p + 1;
            p += 1;
        }
        self.hashed_upto = upto;
    }

    /// The last `n` bytes (or fewer if not held), oldest first.
    pub(crate) fn tail(&self, n: usize) -> Vec<u8> {
        let n = n.min(self.total.min(self.ring.len() as u64) as usize);
        (self.total - n as u64..self.total)
            .map(|a| self.at(a))
            .collect()
    }

    pub(crate) fn encode(&self, w: &mut super::state::Writer) {
        w.u32(self.ring.len() as u32);
        w.u64(self.total);
        w.u64(self.hashed_upto);
        w.bytes(&self.tail(self.ring.len()));
    }

    pub(crate) fn decode(r: &mut super::state::Reader<'_>) -> Result<Self, super::DetectError> {
        let cap = r.u32()? as usize;
        if !(256..=1 << 20).contains(&cap) || !cap.is_power_of_two() {
            return Err(super::DetectError::CorruptState("bad history size".into()));
        }
        let mut h = LzHistory::new(cap);
        h.total = r.u64()?;
        h.hashed_upto = r.u64()?;
        let held = r.bytes(cap)?;
        if held.len() as u64 != h.total.min(cap as u64) || h.hashed_upto > h.total {
            return Err(super::DetectError::CorruptState("bad history bytes".into()));
        }
        for (k, &b) in held.iter().enumerate() {
            let a = h.total - held.len() as u64 + k as u64;
            let i = (a & h.mask) as usize;
            h.ring[i] = b;
        }
        h.rebuild_index();
        Ok(h)
    }
}

/// Bits to code `x` alone (no dictionary).
pub(crate) fn standalone_bits(x: &[u8]) -> u64 {
    let mut h = LzHistory::new(x.len().max(1) * 2);
    h.push_cost(x)
}

/// Normalized compression distance NCD(a, b) = (C(ab) - min(C(a), C(b))) / max(C(a), C(b)).
pub(crate) fn ncd(a: &[u8], b: &[u8]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let ca = standalone_bits(a) as f64;
    let cb = standalone_bits(b) as f64;
    let mut h = LzHistory::new((a.len() + b.len()) * 2);
    let cab = h.push_cost(a) as f64 + h.push_cost(b) as f64;
    ((cab - ca.min(cb)) / ca.max(cb)).clamp(0.0, 1.5)
}

/// Compression ratio: raw bits over compressed bits (higher = more repetitive).
pub(crate) fn compression_ratio(x: &[u8]) -> f64 {
    if x.is_empty() {
        return 1.0;
    }
    (x.len() as f64 * 8.0) / standalone_bits(x).max(1) as f64
}

/// Order-0 Shannon entropy of the bytes, in bits per byte.
pub(crate) fn entropy_bits(x: &[u8]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in x {
        counts[b as usize] += 1;
    }
    let n = x.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_bytes_cost_less_than_fresh_bytes() {
        let mut h = LzHistory::new(4096);
        let a = b"{\"user\":\"alice\",\"action\":\"login\",\"ok\":true}";
        let first = h.push_cost(a);
        let again = h.push_cost(a);
        assert!(again * 4 < first, "{again} vs {first}");
        let novel = h.push_cost(b"zq8#kd0!xv7&mw2@pl5^");
        assert!(novel > again);
    }

    #[test]
    fn restored_history_costs_the_same() {
        let mut h = LzHistory::new(256);
        for i in 0..200u32 {
            let s = format!("event-{}-{}", i % 7, i * 31 % 11);
            h.push_cost(s.as_bytes());
        }
        let mut w = crate::core::detect::state::Writer::new(b"TEST", 1);
        h.encode(&mut w);
        let bytes = w.finish();
        let (mut r, _) = crate::core::detect::state::Reader::open(&bytes, b"TEST").unwrap();
        let mut g = LzHistory::decode(&mut r).unwrap();
        for i in 0..100u32 {
            let s = format!("event-{}-{}", i % 5, i * 17 % 13);
            assert_eq!(h.push_cost(s.as_bytes()), g.push_cost(s.as_bytes()));
        }
    }

    #[test]
    fn ncd_is_small_for_similar_and_large_for_different() {
        let a = b"abcabcabcabcabcabcabcabcabcabc".repeat(4);
        let b = b"abcabcabcabcabcabcabcabcabcabd".repeat(4);
        let c: Vec<u8> = (0..120u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert!(ncd(&a, &b) < ncd(&a, &c));
        assert!(compression_ratio(&a) > compression_ratio(&c));
        assert!(entropy_bits(&a) < entropy_bits(&c));
    }
}
