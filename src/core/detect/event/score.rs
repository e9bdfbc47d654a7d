//! Scoring one event (issue 21): every field by its kind, then the three tests.
//!
//! Owns [`EventDetector::observe`] up to the verdict: each flattened leaf is looked up in its
//! field's value and template tables (rarity, bursts), numbers against their robust model and
//! the joint T², the last events' median T² as the state, the key set against how often each
//! key is present. Every signal becomes a p-value; the event's are combined (Fisher) and
//! calibrated, and the event, structure and state tests share the alarm threshold
//! (Bonferroni); a state the state test flagged stays flagged until it is back among the
//! ordinary ones or has collapsed ([`super::episode`]). What the event teaches the models
//! is handed to [`super::learn`]; this module changes no model itself except the recent T²
//! ring the state test reads and the state's episode.

use serde_json::Value;

use super::categorical::{poisson_sf, Table};
use super::evidence::{fisher_log10, Evidence};
use super::flatten::{flatten, template, value_hash, write_canonical, Leaf};
use super::learn::Scored;
use super::numeric::JOINT_DIMS;
use super::{
    EventDetector, EventVerdict, Keyed, Text, MIN_LEARNED, STATE_EVENTS, TEMPLATE_TEXT, VALUE_TEXT,
};

impl EventDetector {
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

        // The episode of the state test: held, collapsed, or recovering after a collapse.
        let c_state = &self.c_state;
        let call = self
            .episode
            .judge(raw_state, p_state, || c_state.mean_std().0);
        if call.recovering {
            evidence.retain(|(_, e)| !matches!(e, Evidence::State { .. }));
        }
        let p_state = call.p_state;
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
        // The hysteresis of the state (issue 21): a state the state test flagged stays
        // flagged until it is back among the ordinary ones, not merely below the threshold,
        // or until it has collapsed (see `episode`).
        let alarm_p = 10f64.powf(-5.0 * self.threshold);
        let hold = warming == 0 && call.hold;
        let held = hold && score < self.threshold;
        let anomaly = warming == 0 && (score >= self.threshold || held);
        self.episode
            .settle(anomaly && (hold || 3.0 * p_state <= alarm_p), raw_state);
        let score = if held { self.threshold } else { score };
        let (explanation, findings) = if anomaly {
            if held {
                let (median, typical) = (raw_state.unwrap_or(0.0), self.c_state.mean_std().0);
                evidence.retain(|(_, e)| !matches!(e, Evidence::State { .. }));
                evidence.push((p_state, Evidence::StateHeld { median, typical }));
            }
            evidence.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (e, f) = self.explain(&buf, bits, score, p, &evidence, held);
            (Some(e), f)
        } else {
            (None, Vec::new())
        };

        self.learn(Scored {
            records,
            present,
            numbers,
            joint: all_joint.then_some(jx),
            raw_numeric,
            raw_joint,
            raw_state,
            raw_event,
            anomaly,
            now,
            alpha,
        });
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
