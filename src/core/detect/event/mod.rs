//! Streaming event detector over JSON events, v2 (issues 3 and 21).
//!
//! Owns [`EventDetector`]: each event is flattened into fields ([`flatten`]) and every field is
//! modelled by its kind, the way a person reads a log line or a record:
//! - numbers: robust location and spread per field ([`numeric::Robust`]), and their joint
//!   behaviour, a streaming covariance and Hotelling T² ([`numeric::Joint`]), both for the
//!   event itself and for the state of the last [`STATE_EVENTS`] events (their median T²);
//! - categorical values (strings, booleans, integers) and message templates (text with its
//!   variable tokens masked): learned frequencies with bounded eviction ([`categorical`]),
//!   and bursts, the recent rate of one kind against its usual rate (Poisson);
//! - structure: keys that appear or vanish against how often each is present.
//!
//! Each signal becomes a p-value: frequencies analytically, the numeric distances against
//! their own last normal values (the peaks-over-threshold [`Calibrator`]). The event's
//! p-values are combined with Fisher's method and that statistic is calibrated the same way;
//! the state test stands beside it (two tests, Bonferroni). Models and calibrations learn
//! only from events not flagged, so a rare value stays rare on repeat and a stream stuck in a
//! bad state stays flagged until it returns to its baseline. Explanations name the fields and
//! the numbers ([`explain`]). Pure: no I/O, no clock, no randomness; state layout in
//! [`codec`].

mod categorical;
mod codec;
mod explain;
mod flatten;
mod numeric;
mod settings;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::settings::EventSettings;
pub(crate) use flatten::write_canonical;

use self::categorical::{poisson_sf, Table};
use self::flatten::{flatten, template, value_hash, Leaf};
use self::numeric::{Joint, Robust, JOINT_DIMS};
use super::calibrate::Calibrator;
use super::compress::LzHistory;
use super::explain::{Explanation, Finding};

use super::ring::Ring;

/// Fields tracked per stream; keys beyond are scored as new keys and not learned.
pub(crate) const MAX_FIELDS: usize = 32;
/// Numeric fields with a robust model of their own.
const MAX_ROBUST: usize = 16;
/// Tracked values over all fields (each field holds `VALUES / fields`, 8..=64).
const VALUES: usize = 256;
/// Tracked templates over all fields (each field holds `TEMPLATES / fields`, 8..=64).
const TEMPLATES: usize = 160;
/// Learned events after which every count is halved, so "in the last N events" stays true.
const HORIZON: f64 = 10_000.0;
/// Events whose median T² is the state test.
const STATE_EVENTS: usize = 9;
/// Normal values each calibration keeps (at most; fewer when `baseline` is smaller).
const CALIBRATION: usize = 256;
/// Compression dictionary kept (explanations only), at most.
const DICTIONARY: usize = 8 * 1024;
/// Text values longer than this are modelled by their template only.
const VALUE_TEXT: usize = 32;
const TEMPLATE_TEXT: usize = 48;
/// Weight of a flagged event in the frequencies (values, templates, keys).
const FLAGGED_WEIGHT: f64 = 0.25;
/// Learned events before a frequency or calibration is trusted.
const MIN_LEARNED: f64 = 16.0;

/// The detector's answer for one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventVerdict {
    pub score: f64,
    pub anomaly: bool,
    pub warming_up_remaining: u32,
    /// Present exactly when `anomaly` is true.
    pub explanation: Option<Explanation>,
    /// Per-field findings behind an anomaly, most significant first (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
}

/// A value's or template's hash and text, if the leaf has one.
type Keyed<'a> = Option<(u64, Text<'a>)>;

/// The text of a value or template, written out only when a person will read it (an entry
/// is inserted, or a finding is explained): most events need neither.
#[derive(Debug, Clone)]
pub(crate) enum Text<'a> {
    Int(f64),
    Bool(bool),
    Null,
    Str(&'a str),
    Owned(String),
}

impl Text<'_> {
    fn render(&self) -> String {
        match self {
            Text::Int(x) => grouped(*x),
            Text::Bool(b) => b.to_string(),
            Text::Null => "null".into(),
            Text::Str(s) => cut(s, VALUE_TEXT),
            Text::Owned(s) => s.clone(),
        }
    }
}

/// One field the detector tracks.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    name: String,
    /// Learned events that had this key.
    present: f64,
    /// A number with a fraction was seen: its integers are not categories.
    fractional: bool,
    robust: Option<Robust>,
    values: Table,
    templates: Table,
}

/// Streaming event detector; see the module doc.
#[derive(Debug, Clone)]
pub struct EventDetector {
    settings: EventSettings,
    threshold: f64,
    seen: u64,
    /// Events learned (not flagged), halved with the counts at [`HORIZON`].
    learned: f64,
    fields: Vec<Field>,
    /// Field indices of the joint model's dimensions, in order.
    joint_fields: Vec<usize>,
    joint: Joint,
    recent_t2: Ring,
    c_numeric: Calibrator,
    c_joint: Calibrator,
    c_state: Calibrator,
    c_event: Calibrator,
    history: LzHistory,
    lens: Ring,
    buf: Vec<u8>,
}

/// What one signal found in the event being scored (formatted only when it is flagged).
#[derive(Debug, Clone)]
pub(crate) enum Evidence {
    Value {
        f: usize,
        text: String,
        count: f64,
        total: f64,
    },
    Template {
        f: usize,
        text: String,
        count: f64,
        total: f64,
    },
    Burst {
        f: usize,
        text: String,
        template: bool,
        recent: f64,
        usual: f64,
    },
    Numeric {
        f: usize,
        x: f64,
        median: f64,
        spread: f64,
        constant: bool,
    },
    NewKey {
        name: String,
    },
    MissingKey {
        f: usize,
    },
    RareKey {
        f: usize,
    },
    Joint {
        t2: f64,
        typical: f64,
        z: Vec<(usize, f64)>,
    },
    State {
        median: f64,
        typical: f64,
    },
}

impl EventDetector {
    pub fn new(settings: EventSettings) -> Self {
        let settings = settings.sanitized();
        let cal = (settings.baseline as usize).min(CALIBRATION);
        EventDetector {
            threshold: settings.alarm_threshold(),
            seen: 0,
            learned: 0.0,
            fields: Vec::new(),
            joint_fields: Vec::new(),
            joint: Joint::new(0),
            recent_t2: Ring::new(STATE_EVENTS),
            // Floors of the tail scale, in each signal's units (spreads, T², log10 p): a short
            // calibration must not extrapolate a steep tail from a few excesses.
            c_numeric: Calibrator::new(cal, 1.0),
            c_joint: Calibrator::new(cal, 1.0),
            c_state: Calibrator::new(cal, 1.0),
            c_event: Calibrator::new(cal, 0.5),
            history: LzHistory::new(dictionary_bytes(&settings)),
            lens: Ring::new(settings.window as usize),
            buf: Vec::with_capacity(512),
            settings,
        }
    }

    pub fn settings(&self) -> &EventSettings {
        &self.settings
    }

    fn field_index(&mut self, name: &str, numeric: bool) -> Option<usize> {
        if let Some(i) = self.fields.iter().position(|f| f.name == name) {
            if numeric && self.fields[i].robust.is_none() && self.robust_count() < MAX_ROBUST {
                self.fields[i].robust = Some(Robust::new());
                self.add_joint(i);
            }
            return Some(i);
        }
        if self.fields.len() >= MAX_FIELDS {
            return None;
        }
        let robust = (numeric && self.robust_count() < MAX_ROBUST).then(Robust::new);
        let has_robust = robust.is_some();
        self.fields.push(Field {
            name: name.to_string(),
            present: 0.0,
            fractional: false,
            robust,
            values: Table::default(),
            templates: Table::default(),
        });
        // A new field shrinks every field's share of the value and template budgets.
        let (vc, tc) = self.caps();
        for f in &mut self.fields {
            f.values.trim(vc);
            f.templates.trim(tc);
        }
        let i = self.fields.len() - 1;
        if has_robust {
            self.add_joint(i);
        }
        Some(i)
    }

    fn robust_count(&self) -> usize {
        self.fields.iter().filter(|f| f.robust.is_some()).count()
    }

    /// A new numeric field joins the joint model, which starts over with one more dimension.
    fn add_joint(&mut self, i: usize) {
        if self.joint_fields.len() < JOINT_DIMS {
            self.joint_fields.push(i);
            self.joint = Joint::new(self.joint_fields.len());
            self.recent_t2 = Ring::new(STATE_EVENTS);
        }
    }

    fn caps(&self) -> (usize, usize) {
        let n = self.fields.len().max(1);
        ((VALUES / n).clamp(8, 64), (TEMPLATES / n).clamp(8, 64))
    }

    /// Scores one event, then learns it if it is not flagged. Never panics.
    pub fn observe(&mut self, event: &Value) -> EventVerdict {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        write_canonical(event, &mut buf, 0);
        let bits = self.history.push_cost(&buf) as f64;
        self.seen += 1;
        let now = self.seen;
        let warming = (self.settings.warmup as u64).saturating_sub(self.seen - 1) as u32;
        let alpha = 1.0 / self.settings.window.max(1) as f64;
        let window = self.settings.window.max(1) as f64;

        let mut leaves = Vec::with_capacity(16);
        let dropped = flatten(event, &mut leaves);
        let mut present: u64 = 0;
        let mut evidence: Vec<(f64, Evidence)> = Vec::new();
        let mut fisher: Vec<f64> = Vec::with_capacity(leaves.len() + 4);
        let mut key_p: Vec<(f64, Evidence)> = Vec::new();
        // (field, kind 0 value / 1 template, hash, text) to record after the verdict.
        let mut records: Vec<(usize, u8, u64, Text)> = Vec::with_capacity(leaves.len() + 2);
        let mut numbers: Vec<(usize, f64)> = Vec::with_capacity(leaves.len());
        let mut zs: Vec<(f64, Evidence)> = Vec::new();
        let trusted = self.learned >= MIN_LEARNED;
        let new_key_p = 1.0 / (self.learned + 1.0);
        let mut untracked = dropped;

        for (name, leaf) in &leaves {
            let numeric = matches!(leaf, Leaf::Number(_));
            let Some(f) = self.field_index(name, numeric) else {
                untracked += 1;
                continue;
            };
            if present & (1 << f) != 0 {
                continue;
            }
            present |= 1 << f;
            if let Leaf::Number(x) = leaf {
                if x.fract() != 0.0 {
                    self.fields[f].fractional = true;
                }
            }
            let field = &self.fields[f];
            if trusted && field.present == 0.0 {
                key_p.push((new_key_p, Evidence::NewKey { name: name.clone() }));
            }
            // Categorical identity of the leaf, and its template for text.
            let (value, tpl): (Keyed, Keyed) = match leaf {
                Leaf::Number(x) => {
                    if let Some(r) = &field.robust {
                        numbers.push((f, *x));
                        if r.len() >= 16 {
                            let (median, spread, constant) = r.fit();
                            let z = ((x - median) / spread).abs().min(1e300);
                            zs.push((
                                z,
                                Evidence::Numeric {
                                    f,
                                    x: *x,
                                    median,
                                    spread,
                                    constant,
                                },
                            ));
                        }
                    }
                    let int = !field.fractional && x.abs() < 1e9;
                    (
                        int.then(|| (value_hash(0, &x.to_bits().to_le_bytes()), Text::Int(*x))),
                        None,
                    )
                }
                Leaf::Bool(b) => (Some((value_hash(1, &[*b as u8]), Text::Bool(*b))), None),
                Leaf::Null => (Some((value_hash(2, b"null"), Text::Null)), None),
                Leaf::Text(s) => {
                    let (t, th) = template(s, TEMPLATE_TEXT);
                    let short = s.len() <= VALUE_TEXT;
                    let value = short.then(|| (value_hash(3, s.as_bytes()), Text::Str(s)));
                    // Every text has a template (the text itself when nothing varies): a
                    // field of ever-new values can still have a few usual shapes.
                    (value, Some((th, Text::Owned(t))))
                }
            };
            for (kind, item) in [(0u8, value), (1u8, tpl)] {
                let Some((hash, text)) = item else { continue };
                let table = if kind == 0 {
                    &field.values
                } else {
                    &field.templates
                };
                let entry = table.find(hash).map(|i| &table.entries[i]);
                let count = entry.map_or(0.0, |e| e.count);
                if table.total >= MIN_LEARNED {
                    let p = table.p_rare(count);
                    fisher.push(p);
                    if p < 0.05 {
                        let ev = if kind == 0 {
                            Evidence::Value {
                                f,
                                text: text.render(),
                                count,
                                total: table.total,
                            }
                        } else {
                            Evidence::Template {
                                f,
                                text: text.render(),
                                count,
                                total: table.total,
                            }
                        };
                        evidence.push((p, ev));
                    }
                    // A burst: this kind's occurrences in the recent window (this one
                    // included) against its usual rate.
                    let recent = entry.map_or(0.0, |e| Table::recent_at(e, now, alpha)) + 1.0;
                    let usual = window * (count + 0.5) / (table.total + 1.0);
                    if recent >= 3.0 && recent > 2.0 * usual {
                        let pb = poisson_sf(recent, usual);
                        key_p.push((
                            pb,
                            Evidence::Burst {
                                f,
                                text: text.render(),
                                template: kind == 1,
                                recent,
                                usual,
                            },
                        ));
                    }
                }
                records.push((f, kind, hash, text));
            }
        }

        // Structure: keys that vanish or are rarely there.
        if trusted {
            for (f, field) in self.fields.iter().enumerate() {
                let share = field.present / self.learned;
                if present & (1 << f) == 0 && share > 0.5 {
                    let p = ((self.learned - field.present + 1.0) / (self.learned + 1.0)).min(1.0);
                    key_p.push((p, Evidence::MissingKey { f }));
                } else if present & (1 << f) != 0 && field.present > 0.0 && share < 0.05 {
                    key_p.push((
                        (field.present + 1.0) / (self.learned + 1.0),
                        Evidence::RareKey { f },
                    ));
                }
            }
            if untracked > 0 {
                key_p.push((
                    new_key_p,
                    Evidence::NewKey {
                        name: format!("{untracked} more keys"),
                    },
                ));
            }
        }
        // Bursts enter Fisher as one p-value (their minimum, Bonferroni); structure is a test
        // of its own.
        let (bursts, keys): (Vec<_>, Vec<_>) = key_p
            .into_iter()
            .partition(|(_, e)| matches!(e, Evidence::Burst { .. }));
        if let Some(min) = bursts.iter().map(|(p, _)| *p).min_by(f64::total_cmp) {
            fisher.push((min * bursts.len() as f64).min(1.0));
        }
        // Every key that is new or gone adds evidence (Fisher): one new key is as rare as the
        // events before it make it, a key set with nothing in common far rarer.
        let key_ps: Vec<f64> = keys.iter().map(|(p, _)| *p).collect();
        let p_structure = 10f64.powf(-fisher_log10(&key_ps));
        evidence.extend(bursts);
        evidence.extend(keys);

        // Numbers: the farthest field from its median is the signal (calibrated); every far
        // field is named.
        let raw_numeric = zs.iter().map(|(z, _)| *z).max_by(f64::total_cmp);
        if let Some(raw) = raw_numeric {
            if self.c_numeric.len() >= MIN_LEARNED as usize {
                fisher.push(self.c_numeric.p_value(raw));
                for (z, ev) in zs {
                    let p = self.c_numeric.p_value(z);
                    if p < 0.05 {
                        evidence.push((p, ev));
                    }
                }
            }
        }
        // Joint: T² of the event, and the median T² of the last events (the state).
        let mut raw_joint = None;
        let mut raw_state = None;
        let mut p_state = 1.0;
        let mut jx = [0.0; JOINT_DIMS];
        let joint_ready = self.joint.dims >= 2
            && self.joint.n >= self.joint.settled_after(u64::from(self.settings.baseline));
        let all_joint = self.joint_fields.iter().enumerate().all(|(k, &f)| {
            numbers
                .iter()
                .find(|(g, _)| *g == f)
                .map(|&(_, x)| jx[k] = x)
                .is_some()
        });
        if joint_ready && all_joint {
            let mut z = [0.0; JOINT_DIMS];
            let t2 = self.joint.t2(&jx[..self.joint.dims], &mut z);
            raw_joint = Some(t2);
            self.recent_t2.push(t2);
            if self.c_joint.len() >= MIN_LEARNED as usize {
                let p = self.c_joint.p_value(t2);
                fisher.push(p);
                let mut zs: Vec<(usize, f64)> = (0..self.joint.dims)
                    .map(|k| (self.joint_fields[k], z[k]))
                    .collect();
                zs.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
                zs.truncate(3);
                let typical = self.c_joint.mean_std().0;
                evidence.push((p, Evidence::Joint { t2, typical, z: zs }));
            }
            if self.recent_t2.len() == STATE_EVENTS {
                let mut v: Vec<f64> = self.recent_t2.iter().collect();
                v.sort_by(f64::total_cmp);
                let median = v[STATE_EVENTS / 2];
                raw_state = Some(median);
                if self.c_state.len() >= MIN_LEARNED as usize {
                    p_state = self.c_state.p_value(median);
                    let typical = self.c_state.mean_std().0;
                    evidence.push((p_state, Evidence::State { median, typical }));
                }
            }
        }

        // Fisher's combination of the event's p-values, then calibrated on normal events.
        // A p-value of 1 (a constant field, or novelty in a field where novelty is the rule)
        // carries no evidence and would only dilute the combination.
        fisher.retain(|&p| p < 1.0);
        let raw_event = fisher_log10(&fisher);
        let p_event = if self.c_event.len() >= MIN_LEARNED as usize {
            self.c_event.p_value(raw_event)
        } else {
            1.0
        };
        // Three tests (the event's fields, its key set, the state of the last events),
        // Bonferroni; at the default sensitivity an alarm needs p <= 3.2e-3 (about 1e-3 each).
        let p = (3.0 * p_event.min(p_state).min(p_structure)).min(1.0);
        let score = if warming == 0 {
            // `+ 0.0` turns the -0 of log10(1) into 0.
            (-p.max(1e-300).log10() / 5.0).clamp(0.0, 1.0) + 0.0
        } else {
            0.0
        };
        let anomaly = warming == 0 && score >= self.threshold;
        let (explanation, findings) = if anomaly {
            evidence.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (e, f) = self.explain(&buf, bits, score, p, &evidence);
            (Some(e), f)
        } else {
            (None, Vec::new())
        };

        // Learning: the recent rates always (bursts must see repeats), everything else only
        // from events that were not flagged.
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
            if all_joint && self.joint.dims >= 1 {
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
        self.lens.push(buf.len() as f64);
        self.buf = buf;
        EventVerdict {
            score,
            anomaly,
            warming_up_remaining: warming.saturating_sub(1),
            explanation,
            findings,
        }
    }
}

fn dictionary_bytes(s: &EventSettings) -> usize {
    (s.history_bytes as usize).min(DICTIONARY)
}

/// -log10 of Fisher's combined p-value: X = -2 sum ln p_i is chi-squared with 2k degrees of
/// freedom, whose upper tail has the closed form e^(-X/2) sum_{j<k} (X/2)^j / j!.
fn fisher_log10(ps: &[f64]) -> f64 {
    if ps.is_empty() {
        return 0.0;
    }
    let half: f64 = ps.iter().map(|p| -p.clamp(1e-300, 1.0).ln()).sum();
    // log of sum_{j<k} half^j / j!, accumulated stably in logs.
    let mut log_term = 0.0f64;
    let mut log_sum = 0.0f64;
    for j in 1..ps.len() {
        log_term += half.max(1e-300).ln() - (j as f64).ln();
        let (a, b) = if log_sum > log_term {
            (log_sum, log_term)
        } else {
            (log_term, log_sum)
        };
        log_sum = a + (b - a).exp().ln_1p();
    }
    let ln_p = (-half + log_sum).min(0.0);
    -ln_p / std::f64::consts::LN_10
}

/// An integer with thousands separators ("98,765"); other numbers as [`num`] writes them.
pub(crate) fn grouped(x: f64) -> String {
    if x.fract() != 0.0 || x.abs() >= 1e15 {
        return super::explain::num(x);
    }
    let digits = format!("{}", x.abs() as u64);
    let mut out = String::with_capacity(digits.len() + 4);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 {
        out.insert(0, '-');
    }
    out
}

fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests;
