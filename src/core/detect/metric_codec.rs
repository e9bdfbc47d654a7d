//! Versioned state bytes of the metric detector (issue 3): its layout, written and read field
//! by field through [`super::super::state`].
//!
//! A child module of `metric`, so it reads and writes the detector's private fields without
//! widening their visibility. What is derived (the symbol ring and the context model) is not
//! stored: [`MetricDetector::decode_state`] rebuilds it from the values, so a restored
//! detector continues bit for bit. Any change of layout bumps [`VERSION`]; older layouts are
//! refused by version rather than misread.

use super::super::alarm::AlarmGate;
use super::super::ring::{F32Ring, Ring};
use super::super::state::{Reader, Writer};
use super::super::tail::TailCalibrator;
use super::super::DetectError;
use super::{MetricDetector, MetricSettings, Quant};

const MAGIC: &[u8; 4] = b"DLMD";
/// 1: the original single-signal layout; 2 was used by a parallel change on main with a
/// different layout; 3 was the ensemble with a Bonferroni combination and hold-offs counted in
/// points; 4 adds the alarm gate's interval history and keeps its horizons as timestamps; 5
/// (issue 20) appends the discord and residual signals; 6 (issue 20) measures the residual in
/// typical forecast errors and appends that unit and the per-bucket memory of alarms; 7
/// (issue 20) holds the discord's longer, finer history (same fields).
/// Versions 4 and 5 are still read: their monitors keep every learned field, a version 4
/// state rebuilds the discord over the stored baseline, and both rebuild the residual's unit
/// and calibration by replaying the stored baseline (a version 5 residual calibration is in
/// baseline spreads, another unit, so it is read and dropped); the alarm memory starts empty.
/// Versions 5 and 6 keep the discord's period but restart its history over the stored
/// baseline and its calibration empty (distances at the old resolution are not comparable).
pub(super) const VERSION: u16 = 7;
pub(super) const V6: u16 = 6;
pub(super) const V4: u16 = 4;
pub(super) const V5: u16 = 5;

impl MetricDetector {
    /// Versioned bytes from which [`MetricDetector::decode_state`] resumes exactly.
    pub fn encode_state(&self) -> Vec<u8> {
        self.encode_layout(VERSION)
    }

    /// The state in layout `version` ([`VERSION`], or 4, 5 or 6 for the migration tests).
    pub(super) fn encode_layout(&self, version: u16) -> Vec<u8> {
        let mut w = Writer::new(MAGIC, version);
        w.json(&self.settings);
        match self.last_ts {
            Some(t) => {
                w.u8(1);
                w.i64(t);
            }
            None => w.u8(0),
        }
        w.u64(self.accepted);
        match self.quant {
            Some(q) => {
                w.u8(1);
                w.f64(q.step);
                w.f64(q.anchor);
                w.f64(q.scale);
            }
            None => w.u8(0),
        }
        w.f64(self.median);
        w.f64(self.scale);
        w.u32(self.since_stats);
        w.f64(self.cost_avg);
        self.gate.encode(&mut w);
        self.values.encode(&mut w);
        self.window_costs.encode(&mut w);
        self.seq_costs.encode(&mut w);
        self.calib.encode(&mut w);
        self.seq_calib.encode(&mut w);
        self.level_calib.encode(&mut w);
        self.seasonal_calib.encode(&mut w);
        self.seasonal_zs.encode(&mut w);
        for b in 0..self.bucket_visits.len() {
            w.u32(self.bucket_level[b].to_bits());
            w.u32(self.bucket_dev[b].to_bits());
            w.u32(self.bucket_visits[b] as u32);
        }
        if version == V4 {
            return w.finish();
        }
        if version == VERSION {
            self.discord.encode(&mut w);
        } else {
            self.discord.encode_v6(&mut w);
        }
        self.discord_calib.encode(&mut w);
        w.f64(self.discord_dist);
        w.f64(self.discord_p);
        self.residual_calib.encode(&mut w);
        if version == V5 {
            return w.finish();
        }
        w.f64(self.residual_scale);
        w.u32(self.residual_n);
        for &at in &self.bucket_alarm {
            w.u64(at);
        }
        w.finish()
    }

    pub fn decode_state(bytes: &[u8]) -> Result<Self, DetectError> {
        let (mut r, version) = Reader::open(bytes, MAGIC)?;
        if !(V4..=VERSION).contains(&version) {
            return Err(DetectError::UnsupportedStateVersion {
                found: version,
                supported: VERSION,
            });
        }
        let settings: MetricSettings = r.json()?;
        let mut d = MetricDetector::new(settings);
        d.last_ts = match r.u8()? {
            0 => None,
            _ => Some(r.i64()?),
        };
        d.accepted = r.u64()?;
        d.quant = match r.u8()? {
            0 => None,
            _ => Some(Quant {
                step: r.f64()?,
                anchor: r.f64()?,
                scale: r.f64()?,
            }),
        };
        d.median = r.f64()?;
        d.scale = r.f64()?;
        d.since_stats = r.u32()?;
        d.cost_avg = r.f64()?;
        let st = &d.settings;
        d.gate = AlarmGate::decode(&mut r, st.suppression, st.holdoff, st.alarm_threshold())?;
        d.values = F32Ring::decode(&mut r, d.settings.baseline as usize)?;
        d.window_costs = Ring::decode(&mut r, d.settings.window as usize)?;
        d.seq_costs = F32Ring::decode(&mut r, d.settings.sequence.max(1) as usize)?;
        let c = d.settings.calibration;
        d.calib = TailCalibrator::decode(&mut r, c)?;
        d.seq_calib = TailCalibrator::decode(&mut r, c)?;
        d.level_calib = TailCalibrator::decode(&mut r, c)?;
        d.seasonal_calib = TailCalibrator::decode(&mut r, c)?;
        d.seasonal_zs = F32Ring::decode(&mut r, d.settings.seasonal_window.max(1) as usize)?;
        for b in 0..d.bucket_visits.len() {
            d.bucket_level[b] = f32::from_bits(r.u32()?);
            d.bucket_dev[b] = f32::from_bits(r.u32()?);
            d.bucket_visits[b] = u16::try_from(r.u32()?)
                .map_err(|_| DetectError::CorruptState("bad bucket visits".into()))?;
        }
        if version == V4 {
            d.discord = super::Discord::over(&d.values, d.accepted);
        } else {
            let current = version == VERSION;
            d.discord = if current {
                super::Discord::decode(&mut r)?
            } else {
                super::Discord::decode_v6(&mut r, &d.values)?
            };
            let calib = TailCalibrator::decode(&mut r, c)?;
            let (dist, p) = (r.f64()?, r.f64()?);
            let ok = |x: f64| x.is_finite() && x >= 0.0;
            if !(ok(dist) && p > 0.0 && p <= 1.0) {
                return Err(DetectError::CorruptState("bad discord fields".into()));
            }
            if current {
                (d.discord_calib, d.discord_dist, d.discord_p) = (calib, dist, p);
            }
            d.residual_calib = TailCalibrator::decode(&mut r, c)?;
        }
        if version >= V6 {
            d.residual_scale = r.f64()?;
            d.residual_n = r.u32()?;
            for b in 0..d.bucket_alarm.len() {
                d.bucket_alarm[b] = r.u64()?;
            }
            let ok = d.residual_scale.is_finite() && d.residual_scale >= 0.0;
            if !ok || d.bucket_alarm.iter().any(|&at| at > d.accepted) {
                return Err(DetectError::CorruptState("bad residual fields".into()));
            }
        }
        r.finish()?;
        d.rebuild_symbols();
        if version < V6 {
            d.rewarm_residual();
        }
        Ok(d)
    }
}
