//! Streaming event detector over arbitrary JSON values (issue 3).
//!
//! Owns [`EventDetector`]: each event is serialized canonically (object keys sorted, no
//! whitespace) and costed by the LZ77 model of [`super::compress`] with the stream's recent
//! bytes as its dictionary: C(event | baseline) in bits per byte, O(event size). Two tests are
//! calibrated against the rolling distribution of recent costs: the event's own cost (empirical
//! tail, extrapolated past the maximum) and the mean cost of the recent window (a z-test of
//! the window against the baseline), combined with a Bonferroni correction. Explanations add
//! NCD, compression ratios and entropy change of window against baseline. Pure: no I/O.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::calibrate::Calibrator;
use super::compress::{compression_ratio, entropy_bits, ncd, LzHistory};
use super::explain::{num, pval, Explanation};
use super::ring::Ring;
use super::state::{Reader, Writer};
use super::DetectError;

const MAGIC: &[u8; 4] = b"DLED";
const VERSION: u16 = 1;
const MAX_DEPTH: usize = 128;

/// Settings of an event detector (one per stream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    /// Recent events compared as a window against the baseline.
    pub window: u32,
    /// Recent event costs the calibration keeps (the baseline distribution).
    pub baseline: u32,
    /// 0 (fewest alarms) ..= 1 (most alarms).
    pub sensitivity: f64,
    /// Events seen before any verdict other than "warming up".
    pub warmup: u32,
    /// Bytes of recent canonical events kept as the compression dictionary (power of two).
    pub history_bytes: u32,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            window: 32,
            baseline: 512,
            sensitivity: 0.5,
            warmup: 64,
            history_bytes: 16 * 1024,
        }
    }
}

impl EventSettings {
    /// Checks ranges; the message names the field and the allowed range.
    pub fn validate(&self) -> Result<(), DetectError> {
        let bad = |m: String| Err(DetectError::InvalidSettings(m));
        if !(self.sensitivity.is_finite() && (0.0..=1.0).contains(&self.sensitivity)) {
            return bad(format!(
                "sensitivity must be between 0 and 1, got {}",
                self.sensitivity
            ));
        }
        if !(16..=4096).contains(&self.baseline) {
            return bad(format!(
                "baseline must be 16..=4096 events, got {}",
                self.baseline
            ));
        }
        if self.window == 0 || self.window > self.baseline / 2 {
            return bad(format!(
                "window must be 1..={} (half the baseline), got {}",
                self.baseline / 2,
                self.window
            ));
        }
        if self.warmup < 8 || self.warmup > self.baseline.max(8) * 4 {
            return bad(format!(
                "warmup must be 8..={} events, got {}",
                self.baseline.max(8) * 4,
                self.warmup
            ));
        }
        if !(1024..=32 * 1024).contains(&self.history_bytes)
            || !self.history_bytes.is_power_of_two()
        {
            return bad(format!(
                "history_bytes must be a power of two in 1024..=32768, got {}",
                self.history_bytes
            ));
        }
        Ok(())
    }

    fn sanitized(mut self) -> Self {
        if !self.sensitivity.is_finite() {
            self.sensitivity = 0.5;
        }
        self.sensitivity = self.sensitivity.clamp(0.0, 1.0);
        self.baseline = self.baseline.clamp(16, 4096);
        self.window = self.window.clamp(1, self.baseline / 2);
        self.warmup = self.warmup.clamp(8, self.baseline * 4);
        self.history_bytes = self
            .history_bytes
            .clamp(1024, 32 * 1024)
            .next_power_of_two();
        self
    }

    /// Score at or above which an event is an anomaly.
    pub fn alarm_threshold(&self) -> f64 {
        (0.5 - 0.4 * (self.sensitivity - 0.5)).clamp(0.05, 0.999)
    }
}

/// The detector's answer for one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventVerdict {
    pub score: f64,
    pub anomaly: bool,
    pub warming_up_remaining: u32,
    /// Present exactly when `anomaly` is true.
    pub explanation: Option<Explanation>,
}

/// Streaming event detector; see the module doc.
#[derive(Debug, Clone)]
pub struct EventDetector {
    settings: EventSettings,
    threshold: f64,
    seen: u64,
    history: LzHistory,
    calib: Calibrator,
    lens: Ring,
    buf: Vec<u8>,
}

impl EventDetector {
    pub fn new(settings: EventSettings) -> Self {
        let settings = settings.sanitized();
        EventDetector {
            threshold: settings.alarm_threshold(),
            seen: 0,
            history: LzHistory::new(settings.history_bytes as usize),
            calib: Calibrator::new(settings.baseline as usize, 0.05),
            lens: Ring::new(settings.window as usize),
            buf: Vec::with_capacity(512),
            settings,
        }
    }

    pub fn settings(&self) -> &EventSettings {
        &self.settings
    }

    /// Scores one event, then learns it. Never panics.
    pub fn observe(&mut self, event: &Value) -> EventVerdict {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        write_canonical(event, &mut buf, 0);
        let bits = self.history.push_cost(&buf) as f64;
        let cost = bits / buf.len().max(1) as f64;
        self.seen += 1;
        let warming = (self.settings.warmup as u64).saturating_sub(self.seen - 1) as u32;

        let (mut score, mut p, mut window_cost) = (0.0, 1.0, cost);
        if warming == 0 {
            let p_event = self.calib.p_value(cost);
            let w = self.settings.window as usize;
            window_cost = (self.calib.mean_last(w - 1) * (w - 1).min(self.calib.len()) as f64
                + cost)
                / ((w - 1).min(self.calib.len()) + 1) as f64;
            let (m, sd) = self.calib.mean_std();
            let k = ((w - 1).min(self.calib.len()) + 1) as f64;
            let z = (window_cost - m) / (sd.max(0.05) / k.sqrt());
            let p_window = normal_upper_tail(z);
            p = (2.0 * p_event.min(p_window)).min(1.0);
            score = (-p.log10() / 8.0).clamp(0.0, 1.0);
        }
        let anomaly = warming == 0 && score >= self.threshold;
        let explanation = anomaly.then(|| self.explain(&buf, bits, cost, window_cost, score, p));
        // Alarms stay out of the calibration so one incident cannot mask the next, and so do
        // the costs of the first half of the warm-up: they are measured against a dictionary
        // that is still nearly empty, and would make every later surprise look ordinary.
        let dictionary_settled = self.seen > u64::from(self.settings.warmup / 2);
        if !anomaly && dictionary_settled {
            self.calib.push(cost);
        }
        self.lens.push(buf.len() as f64);
        self.buf = buf;
        EventVerdict {
            score,
            anomaly,
            warming_up_remaining: warming.saturating_sub(1),
            explanation,
        }
    }

    fn explain(
        &self,
        event: &[u8],
        bits: f64,
        cost: f64,
        window_cost: f64,
        score: f64,
        p: f64,
    ) -> Explanation {
        let held = self.history.total().min(self.history.capacity() as u64) as usize;
        let bytes = self.history.tail(held);
        let win_len = (self.lens.iter().skip(1).sum::<f64>() as usize + event.len())
            .min(bytes.len() / 2)
            .max(event.len().min(bytes.len()));
        let (base, win) = bytes.split_at(bytes.len() - win_len);
        let (m, _) = self.calib.mean_std();
        let d = ncd(win, base);
        let summary = format!(
            "This event costs {} bits per byte to encode given the stream's last {} bytes, versus {} typically; the last {} events sit at compression distance {} from the baseline ({}).",
            num(cost),
            base.len(),
            num(m),
            self.lens.len().min(self.settings.window as usize),
            num(d),
            pval(p)
        );
        Explanation {
            detector: "event".into(),
            score,
            p_value: p,
            confidence: 1.0 - p,
            baseline_compression_ratio: compression_ratio(base),
            window_compression_ratio: compression_ratio(win),
            ncd: d,
            conditional_cost_bits_per_symbol: window_cost,
            baseline_cost_bits_per_symbol: m,
            observed_cost_bits: bits,
            entropy_delta: entropy_bits(win) - entropy_bits(base),
            baseline_len: base.len() as u32,
            window_len: win.len() as u32,
            observed: None,
            expected_low: None,
            expected_high: None,
            summary,
        }
    }

    /// Versioned bytes from which [`EventDetector::decode_state`] resumes exactly.
    pub fn encode_state(&self) -> Vec<u8> {
        let mut w = Writer::new(MAGIC, VERSION);
        w.json(&self.settings);
        w.u64(self.seen);
        self.history.encode(&mut w);
        self.calib.encode(&mut w);
        self.lens.encode(&mut w);
        w.finish()
    }

    pub fn decode_state(bytes: &[u8]) -> Result<Self, DetectError> {
        let (mut r, version) = Reader::open(bytes, MAGIC)?;
        if version != VERSION {
            return Err(DetectError::UnsupportedStateVersion {
                found: version,
                supported: VERSION,
            });
        }
        let settings: EventSettings = r.json()?;
        let mut d = EventDetector::new(settings);
        d.seen = r.u64()?;
        d.history = LzHistory::decode(&mut r)?;
        if d.history.capacity() != d.settings.history_bytes as usize {
            return Err(DetectError::CorruptState(
                "history size differs from settings".into(),
            ));
        }
        d.calib = Calibrator::decode(&mut r)?;
        if d.calib.capacity() != d.settings.baseline as usize {
            return Err(DetectError::CorruptState(
                "baseline size differs from settings".into(),
            ));
        }
        d.lens = Ring::decode(&mut r, d.settings.window as usize)?;
        r.finish()?;
        Ok(d)
    }
}

/// Upper tail of the standard normal, P(Z >= z) (erfc approximation, relative error < 1.2e-7).
fn normal_upper_tail(z: f64) -> f64 {
    if !z.is_finite() {
        return if z > 0.0 { 0.0 } else { 1.0 };
    }
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let y = t
        * (-x * x - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    let erfc = if x >= 0.0 { y } else { 2.0 - y };
    (0.5 * erfc).clamp(0.0, 1.0)
}

/// Canonical JSON: keys sorted, no whitespace, numbers and strings as serde_json writes them.
pub(crate) fn write_canonical(v: &Value, out: &mut Vec<u8>, depth: usize) {
    if depth > MAX_DEPTH {
        out.extend_from_slice(b"\"...\"");
        return;
    }
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let _ = serde_json::to_writer(&mut *out, n);
        }
        Value::String(s) => {
            let _ = serde_json::to_writer(&mut *out, s);
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out, depth + 1);
            }
            out.push(b']');
        }
        Value::Object(m) => {
            out.push(b'{');
            let sorted = m.keys().zip(m.keys().skip(1)).all(|(a, b)| a <= b);
            let write = |i: usize, k: &String, x: &Value, out: &mut Vec<u8>| {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut *out, k);
                out.push(b':');
                write_canonical(x, out, depth + 1);
            };
            if sorted {
                for (i, (k, x)) in m.iter().enumerate() {
                    write(i, k, x, out);
                }
            } else {
                // Only maps that keep insertion order get here; sorting them allocates.
                let mut entries: Vec<(&String, &Value)> = m.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (i, (k, x)) in entries.into_iter().enumerate() {
                    write(i, k, x, out);
                }
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_matches_known_values() {
        assert!((normal_upper_tail(0.0) - 0.5).abs() < 1e-6);
        assert!((normal_upper_tail(1.959_964) - 0.025).abs() < 1e-5);
        assert!((normal_upper_tail(-1.959_964) - 0.975).abs() < 1e-5);
        assert_eq!(normal_upper_tail(f64::INFINITY), 0.0);
    }

    #[test]
    fn canonical_form_sorts_keys_and_drops_whitespace() {
        let v: Value =
            serde_json::from_str(r#"{ "b": [1, 2.5, "x"], "a": {"d": null, "c": true} }"#).unwrap();
        let mut out = Vec::new();
        write_canonical(&v, &mut out, 0);
        assert_eq!(out, br#"{"a":{"c":true,"d":null},"b":[1,2.5,"x"]}"#);
    }

    #[test]
    fn settings_validation_names_the_field() {
        let s = EventSettings {
            window: 0,
            ..EventSettings::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("window"));
        let s = EventSettings {
            sensitivity: f64::NAN,
            ..EventSettings::default()
        };
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("sensitivity"));
        let s = EventSettings {
            history_bytes: 3000,
            ..EventSettings::default()
        };
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("history_bytes"));
        assert!(EventSettings::default().validate().is_ok());
    }
}
