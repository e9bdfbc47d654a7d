//! Settings of a stream's event detector (issues 3 and 21): part of the API, validated with
//! messages that name the field and its range. Owns [`EventSettings`] only.

use serde::{Deserialize, Serialize};

use super::super::DetectError;

/// Settings of an event detector (one per stream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    /// Recent events over which bursts (rates of a kind of value or template) are counted.
    pub window: u32,
    /// Memory of the baseline in events: the numeric covariance forgets with weight
    /// 1/baseline, and each signal calibrates against its last min(baseline, 256) normal values.
    pub baseline: u32,
    /// 0 (fewest alarms) ..= 1 (most alarms).
    pub sensitivity: f64,
    /// Events seen before any verdict other than "warming up".
    pub warmup: u32,
    /// Bytes of recent canonical events kept as the compression dictionary (power of two);
    /// since issue 21 the dictionary only feeds the compression figures of explanations and
    /// holds at most 8 KiB of it, to keep the state within 64 KiB.
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

    pub(crate) fn sanitized(mut self) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

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
