//! Versioned little-endian binary encoding of detector state (issue 3).
//!
//! Owns the byte layout shared by both detectors: a 4-byte magic, a `u16` version, the body,
//! and a trailing FNV-1a checksum. Floats are stored by their bit pattern so a restored
//! detector continues with exactly the numbers it had. It must not know detector internals:
//! each detector writes and reads its own fields through [`Writer`] and [`Reader`].

use super::DetectError;

/// Appends fields to a state buffer.
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(magic: &[u8; 4], version: u16) -> Self {
        let mut buf = Vec::with_capacity(1024);
        buf.extend_from_slice(magic);
        buf.extend_from_slice(&version.to_le_bytes());
        Writer { buf }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
    }

    /// Serde-encoded settings, stored as JSON so adding a defaulted field stays readable.
    pub(crate) fn json<T: serde::Serialize>(&mut self, v: &T) {
        let s = serde_json::to_vec(v).unwrap_or_default();
        self.bytes(&s);
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        let sum = fnv1a(&self.buf);
        self.buf.extend_from_slice(&sum.to_le_bytes());
        self.buf
    }
}

/// Reads fields back, failing with [`DetectError::CorruptState`] instead of panicking.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Checks magic and checksum; returns the reader positioned after the version, and the version.
    pub(crate) fn open(bytes: &'a [u8], magic: &[u8; 4]) -> Result<(Self, u16), DetectError> {
        if bytes.len() < 4 + 2 + 8 {
            return Err(DetectError::CorruptState("state is too short".into()));
        }
        if &bytes[..4] != magic {
            return Err(DetectError::CorruptState(
                "state was not written by this detector kind".into(),
            ));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 8);
        let mut s = [0u8; 8];
        s.copy_from_slice(sum);
        if u64::from_le_bytes(s) != fnv1a(body) {
            return Err(DetectError::CorruptState("state checksum mismatch".into()));
        }
        let version = u16::from_le_bytes([body[4], body[5]]);
        Ok((Reader { buf: body, pos: 6 }, version))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DetectError> {
        if self.buf.len() - self.pos < n {
            return Err(DetectError::CorruptState("state is truncated".into()));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DetectError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DetectError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DetectError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DetectError> {
        Ok(self.u64()? as i64)
    }

    pub(crate) fn f64(&mut self) -> Result<f64, DetectError> {
        Ok(f64::from_bits(self.u64()?))
    }

    pub(crate) fn bytes(&mut self, max: usize) -> Result<&'a [u8], DetectError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(DetectError::CorruptState("state field is too long".into()));
        }
        self.take(n)
    }

    pub(crate) fn json<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, DetectError> {
        let b = self.bytes(1 << 16)?;
        serde_json::from_slice(b)
            .map_err(|e| DetectError::CorruptState(format!("settings in state: {e}")))
    }

    pub(crate) fn finish(self) -> Result<(), DetectError> {
        if self.pos != self.buf.len() {
            return Err(DetectError::CorruptState("trailing bytes in state".into()));
        }
        Ok(())
    }
}

fn fnv1a(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_is_an_error() {
        let mut w = Writer::new(b"TEST", 3);
        w.u8(7);
        w.f64(-1.5);
        w.bytes(b"abc");
        let bytes = w.finish();
        let (mut r, v) = Reader::open(&bytes, b"TEST").unwrap();
        assert_eq!(v, 3);
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.f64().unwrap(), -1.5);
        assert_eq!(r.bytes(10).unwrap(), b"abc");
        r.finish().unwrap();
        let mut bad = bytes.clone();
        bad[7] ^= 1;
        assert!(Reader::open(&bad, b"TEST").is_err());
        assert!(Reader::open(&bytes[..5], b"TEST").is_err());
        assert!(Reader::open(&bytes, b"NOPE").is_err());
    }
}
