//! Learning from one scored event (issue 21).
//!
//! Owns [`EventDetector::learn`]: the recent rates always (bursts must see repeats); the
//! value, template and key frequencies with a quarter weight when the event was flagged; the
//! numeric models (robust per field, joint covariance) and the calibrations only from events
//! that were not flagged, so a stream stuck in a bad state stays flagged until it returns
//! (a flagged score enters a calibration capped, see `Calibrator::push_capped`). Also halves
//! every count past [`HORIZON`] events so "in the last N events" stays true.

use super::numeric::JOINT_DIMS;
use super::{EventDetector, Text, FLAGGED_WEIGHT, HORIZON};

/// What [`EventDetector::observe`] found that the models learn from.
pub(super) struct Scored<'a> {
    /// (field, 0 value / 1 template, hash, text) of every categorical leaf.
    pub records: Vec<(usize, u8, u64, Text<'a>)>,
    /// Bit `f` set when field `f` was present.
    pub present: u64,
    /// (field, value) of the numbers with a robust model.
    pub numbers: Vec<(usize, f64)>,
    /// The joint model's input, when every joint field was present.
    pub joint: Option<[f64; JOINT_DIMS]>,
    pub raw_numeric: Option<f64>,
    pub raw_joint: Option<f64>,
    pub raw_state: Option<f64>,
    pub raw_event: f64,
    pub anomaly: bool,
    pub now: u64,
    pub alpha: f64,
}

impl EventDetector {
    pub(super) fn learn(&mut self, s: Scored<'_>) {
        let Scored {
            records,
            present,
            numbers,
            joint,
            raw_numeric,
            raw_joint,
            raw_state,
            raw_event,
            anomaly,
            now,
            alpha,
        } = s;
        let (vc, tc) = self.caps();
        // A flagged event counts a quarter in the frequencies (so a value seen 3 times with
        // anomalies is still rare, while a rare but ordinary kind that was flagged once is
        // learned eventually) and not at all in the numeric models.
        let weight = if anomaly { FLAGGED_WEIGHT } else { 1.0 };
        for (f, kind, hash, text) in records {
            let field = &mut self.fields[f];
            let (table, cap) = if kind == 0 {
                (&mut field.values, vc)
            } else {
                (&mut field.templates, tc)
            };
            table.record(hash, || text.render(), weight, now, alpha, cap);
        }
        self.learned += weight;
        for (f, field) in self.fields.iter_mut().enumerate() {
            if present & (1 << f) != 0 {
                field.present += weight;
            }
        }
        if anomaly {
            for (c, raw) in [
                (&mut self.c_numeric, raw_numeric),
                (&mut self.c_joint, raw_joint),
                (&mut self.c_event, Some(raw_event)),
            ] {
                if let Some(r) = raw {
                    c.push_capped(r);
                }
            }
        } else {
            for &(f, x) in &numbers {
                if let Some(r) = &mut self.fields[f].robust {
                    r.push(x);
                }
            }
            if let Some(jx) = joint.filter(|_| self.joint.dims >= 1) {
                let d = self.joint.dims;
                self.joint
                    .learn(&jx[..d], u64::from(self.settings.baseline));
            }
            // The state test's calibration is frozen once full: a fault that creeps in slowly
            // must not raise the tail it is measured against (the joint model itself keeps
            // adapting to ordinary events, so the T² it is compared with stays relative).
            let state_open = self.c_state.len() < self.c_state.capacity();
            for (c, raw) in [
                (&mut self.c_numeric, raw_numeric),
                (&mut self.c_joint, raw_joint),
                (&mut self.c_state, raw_state.filter(|_| state_open)),
                (&mut self.c_event, Some(raw_event)),
            ] {
                if let Some(r) = raw {
                    c.push(r);
                }
            }
        }
        if self.learned > HORIZON {
            self.learned *= 0.5;
            for field in &mut self.fields {
                field.present *= 0.5;
                field.values.halve();
                field.templates.halve();
            }
        }
    }
}
