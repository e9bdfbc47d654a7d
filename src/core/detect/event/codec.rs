//! State bytes of the event detector (issue 21): layout version 4, and the upgrades from
//! versions 3, 2 and 1 (issue 3's compression-only detector).
//!
//! Version 4 is version 3 and three numbers after it: the state episode's peak, and while
//! recovering its trough and the events since its last low ([`super::episode`]). A version-3
//! state is read whole with neither (no recovery in progress; an alarm in progress takes its
//! peak from the next events, and a stream upgraded while its tail fades flags that tail as
//! before). Version 3 is version 2 and one byte after it: whether the state test's alarm is held
//! (the hysteresis of [`super::STATE_EXIT`]). A version-2 state is read whole with that flag
//! off, so an upgraded stream behaves as if it had never stopped except that a state alarm
//! in progress must be raised again by the state test itself (tested). A version-1 state
//! holds nothing the v2 models can use (a byte dictionary and a ring of costs), so it is read
//! for its settings only and the stream warms up again for `warmup` events, keeping its
//! settings; that is the documented upgrade path (tested). Owns the layout; must not change
//! the models' numbers: every float is stored by its bits.

use super::super::calibrate::Calibrator;
use super::super::compress::LzHistory;
use super::super::ring::Ring;
use super::super::state::{Reader, Writer};
use super::super::DetectError;
use super::categorical::Table;
use super::numeric::{Joint, Robust};
use super::{dictionary_bytes, EventDetector, EventSettings, Field, MAX_FIELDS, STATE_EVENTS};

const MAGIC: &[u8; 4] = b"DLED";
const VERSION: u16 = 4;

impl EventDetector {
    /// Versioned bytes from which [`EventDetector::decode_state`] resumes exactly.
    pub fn encode_state(&self) -> Vec<u8> {
        self.encode_layout(VERSION)
    }

    /// The state in layout `version` (2, 3 or 4); version 2 lacks the held state alarm,
    /// version 3 the episode's peak and recovery.
    pub(super) fn encode_layout(&self, version: u16) -> Vec<u8> {
        let mut w = Writer::new(MAGIC, version);
        w.json(&self.settings);
        w.u64(self.seen);
        w.f64(self.learned);
        w.u32(self.fields.len() as u32);
        for f in &self.fields {
            w.bytes(f.name.as_bytes());
            w.f64(f.present);
            w.u8(f.fractional as u8);
            match &f.robust {
                Some(r) => {
                    w.u8(1);
                    r.encode(&mut w);
                }
                None => w.u8(0),
            }
            f.values.encode(&mut w);
            f.templates.encode(&mut w);
        }
        w.u32(self.joint_fields.len() as u32);
        for &i in &self.joint_fields {
            w.u32(i as u32);
        }
        self.joint.encode(&mut w);
        self.recent_t2.encode(&mut w);
        for c in [&self.c_numeric, &self.c_joint, &self.c_state, &self.c_event] {
            c.encode(&mut w);
        }
        self.history.encode(&mut w);
        self.lens.encode(&mut w);
        if version >= 3 {
            w.u8(self.episode.alarm as u8);
        }
        if version >= 4 {
            w.f64(self.episode.peak);
            w.f64(self.episode.trough);
            w.u32(self.episode.since_low);
        }
        w.finish()
    }

    pub fn decode_state(bytes: &[u8]) -> Result<Self, DetectError> {
        let (mut r, version) = Reader::open(bytes, MAGIC)?;
        match version {
            1 => {
                // Issue 3's layout: settings, then a dictionary and costs v2 has no use for.
                let settings: EventSettings = r.json()?;
                Ok(EventDetector::new(settings))
            }
            2 => {
                let d = Self::decode_v2(&mut r)?;
                r.finish()?;
                Ok(d)
            }
            3 | VERSION => {
                let mut d = Self::decode_v2(&mut r)?;
                d.episode.alarm = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(DetectError::CorruptState("bad state alarm".into())),
                };
                if version == VERSION {
                    d.episode.peak = r.f64()?;
                    d.episode.trough = r.f64()?;
                    d.episode.since_low = r.u32()?;
                    let ok = |x: f64| x.is_finite() && x >= 0.0;
                    if !ok(d.episode.peak) || !ok(d.episode.trough) {
                        return Err(DetectError::CorruptState("bad state episode".into()));
                    }
                }
                r.finish()?;
                Ok(d)
            }
            found => Err(DetectError::UnsupportedStateVersion {
                found,
                supported: VERSION,
            }),
        }
    }

    /// The version-2 layout, which version 3 extends.
    fn decode_v2(r: &mut Reader<'_>) -> Result<Self, DetectError> {
        let settings: EventSettings = r.json()?;
        let mut d = EventDetector::new(settings);
        d.seen = r.u64()?;
        d.learned = r.f64()?;
        let n = r.u32()? as usize;
        if n > MAX_FIELDS {
            return Err(DetectError::CorruptState("too many fields".into()));
        }
        for _ in 0..n {
            let name = String::from_utf8(r.bytes(256)?.to_vec())
                .map_err(|_| DetectError::CorruptState("field name is not UTF-8".into()))?;
            let present = r.f64()?;
            let fractional = r.u8()? != 0;
            let robust = match r.u8()? {
                0 => None,
                1 => Some(Robust::decode(r)?),
                _ => return Err(DetectError::CorruptState("bad field kind".into())),
            };
            let values = Table::decode(r, 64)?;
            let templates = Table::decode(r, 64)?;
            d.fields.push(Field {
                name,
                present,
                fractional,
                robust,
                values,
                templates,
            });
        }
        let k = r.u32()? as usize;
        for _ in 0..k.min(MAX_FIELDS + 1) {
            let i = r.u32()? as usize;
            if i >= d.fields.len() {
                return Err(DetectError::CorruptState("joint field out of range".into()));
            }
            d.joint_fields.push(i);
        }
        d.joint = Joint::decode(r)?;
        if d.joint.dims != d.joint_fields.len() {
            return Err(DetectError::CorruptState("joint size differs".into()));
        }
        d.recent_t2 = Ring::decode(r, STATE_EVENTS)?;
        let cal = d.c_numeric.capacity();
        for c in [
            &mut d.c_numeric,
            &mut d.c_joint,
            &mut d.c_state,
            &mut d.c_event,
        ] {
            *c = Calibrator::decode(r)?;
            if c.capacity() != cal {
                return Err(DetectError::CorruptState(
                    "calibration size differs from settings".into(),
                ));
            }
        }
        d.history = LzHistory::decode(r)?;
        if d.history.capacity() != dictionary_bytes(&d.settings).max(256).next_power_of_two() {
            return Err(DetectError::CorruptState(
                "history size differs from settings".into(),
            ));
        }
        d.lens = Ring::decode(r, d.settings.window as usize)?;
        Ok(d)
    }
}
