//! Sentences behind an event anomaly (issue 21): one [`Finding`] per signal that stood out,
//! naming the field and the numbers ("status 500: seen 0 times in the last 1,500 events
//! (0%)", "ms 98,765 is 13,300 spreads above the median 30"), and the compression figures of
//! the shared [`Explanation`]. Owns formatting only; it computes no model.

use super::super::compress::{compression_ratio, entropy_bits, ncd};
use super::super::explain::{num, pval, Explanation, Finding};
use super::evidence::Evidence;
use super::EventDetector;

/// Findings kept in an explanation, and named in its summary.
const FINDINGS: usize = 8;
const IN_SUMMARY: usize = 3;

fn pct(count: f64, total: f64) -> String {
    let x = 100.0 * count / total.max(1.0);
    if x == 0.0 {
        "0%".into()
    } else if x < 0.01 {
        "<0.01%".into()
    } else {
        format!("{}%", num((x * 100.0).round() / 100.0))
    }
}

fn times(x: f64) -> String {
    let r = if x >= 10.0 {
        x.round()
    } else {
        (x * 10.0).round() / 10.0
    };
    let s = grouped(r);
    if s == "1" {
        "once".into()
    } else {
        format!("{s} times")
    }
}

impl EventDetector {
    fn finding(&self, p: f64, e: &Evidence) -> Finding {
        let name = |f: usize| self.fields[f].name.clone();
        let (field, kind, summary) = match e {
            Evidence::Value {
                f,
                text,
                count,
                total,
            } => (
                name(*f),
                "categorical",
                format!(
                    "{} {text}: seen {} in the last {} events ({})",
                    name(*f),
                    times(*count),
                    grouped(total.round()),
                    pct(*count, *total)
                ),
            ),
            Evidence::Template {
                f,
                text,
                count,
                total,
            } => (
                name(*f),
                "template",
                format!(
                    "{} template `{text}`: seen {} in the last {} events ({})",
                    name(*f),
                    times(*count),
                    grouped(total.round()),
                    pct(*count, *total)
                ),
            ),
            Evidence::Burst {
                f,
                text,
                template,
                recent,
                usual,
            } => (
                name(*f),
                "burst",
                format!(
                    "{} {}`{text}` ×{} in the last {} events, usually {}",
                    name(*f),
                    if *template { "template " } else { "" },
                    num(recent.round()),
                    self.settings.window,
                    num((usual * 10.0).round() / 10.0)
                ),
            ),
            Evidence::Numeric {
                f,
                x,
                median,
                constant: true,
                ..
            } => (
                name(*f),
                "numeric",
                format!(
                    "{} {} where most of its last {} ordinary values were {}",
                    name(*f),
                    grouped(*x),
                    super::numeric::ROBUST_KEEP,
                    grouped(*median)
                ),
            ),
            Evidence::Numeric {
                f,
                x,
                median,
                spread,
                ..
            } => {
                let d = (x - median) / spread;
                let side = if d >= 0.0 { "above" } else { "below" };
                (
                    name(*f),
                    "numeric",
                    format!(
                        "{} {} is {} spreads {side} the median {} (spread {})",
                        name(*f),
                        grouped(*x),
                        grouped(d.abs().round().max(if d.abs() < 10.0 { 0.0 } else { 1.0 })),
                        grouped(*median),
                        num(*spread)
                    ),
                )
            }
            Evidence::NewKey { name } => (
                name.clone(),
                "structure",
                format!(
                    "key `{name}` is new: in none of the last {} events",
                    grouped(self.learned.round())
                ),
            ),
            Evidence::MissingKey { f } => (
                name(*f),
                "structure",
                format!(
                    "key `{}` is missing: present in {} of the last {} events",
                    name(*f),
                    pct(self.fields[*f].present, self.learned),
                    grouped(self.learned.round())
                ),
            ),
            Evidence::RareKey { f } => (
                name(*f),
                "structure",
                format!(
                    "key `{}` is rare: present in {} of the last {} events",
                    name(*f),
                    pct(self.fields[*f].present, self.learned),
                    grouped(self.learned.round())
                ),
            ),
            Evidence::Joint { t2, typical, z } => {
                let most: Vec<String> = z
                    .iter()
                    .map(|(f, z)| {
                        format!(
                            "{} {}{}σ",
                            name(*f),
                            if *z >= 0.0 { "+" } else { "" },
                            num(*z)
                        )
                    })
                    .collect();
                (
                    "(event)".into(),
                    "joint",
                    format!(
                        "the numeric fields together are at T² {} from their baseline, typically {} (most off: {})",
                        num(*t2),
                        num(*typical),
                        most.join(", ")
                    ),
                )
            }
            Evidence::StateHeld { median, typical } => (
                "(event)".into(),
                "state",
                format!(
                    "the last 9 events have not returned to the baseline since they were flagged: median T² {}, typically {} (flagged until it is below the upper quartile of ordinary states)",
                    num(*median),
                    num(*typical)
                ),
            ),
            Evidence::State { median, typical } => (
                "(event)".into(),
                "state",
                format!(
                    "the last 9 events stay away from the baseline: median T² {}, typically {}",
                    num(*median),
                    num(*typical)
                ),
            ),
        };
        Finding {
            field,
            kind: kind.into(),
            p_value: p,
            summary,
        }
    }

    /// The explanation of a flagged event; `evidence` is sorted by p-value, smallest first.
    pub(super) fn explain(
        &self,
        event: &[u8],
        bits: f64,
        score: f64,
        p: f64,
        evidence: &[(f64, Evidence)],
        state_held: bool,
    ) -> (Explanation, Vec<Finding>) {
        // A short text with nothing variable is its own template: say it once.
        let same_as_value = |e: &Evidence| match e {
            Evidence::Template { f, text, .. } => evidence.iter().any(
                |(_, v)| matches!(v, Evidence::Value { f: g, text: t, .. } if g == f && t == text),
            ),
            _ => false,
        };
        let findings: Vec<Finding> = evidence
            .iter()
            .filter(|(q, e)| {
                (*q < 0.05 || matches!(e, Evidence::StateHeld { .. })) && !same_as_value(e)
            })
            .take(FINDINGS)
            .map(|(q, e)| self.finding(*q, e))
            .collect();
        let held = self.history.total().min(self.history.capacity() as u64) as usize;
        let bytes = self.history.tail(held);
        let win_len = (self.lens.iter().skip(1).sum::<f64>() as usize + event.len())
            .min(bytes.len() / 2)
            .max(event.len().min(bytes.len()));
        let (base, win) = bytes.split_at(bytes.len() - win_len);
        let base_cost = 8.0 * base.len() as f64
            / (compression_ratio(base).max(1e-9) * base.len().max(1) as f64);
        let said: Vec<&str> = findings
            .iter()
            .take(IN_SUMMARY)
            .map(|f| f.summary.as_str())
            .collect();
        let summary = if state_held {
            format!(
                "Unusual state continues ({} for this event alone): {}.",
                pval(p),
                said.join("; ")
            )
        } else if said.is_empty() {
            format!("Unusual event ({}): no single field stands out; together they are unlikely under the stream's baseline.", pval(p))
        } else {
            format!("Unusual event ({}): {}.", pval(p), said.join("; "))
        };
        let numeric = evidence.iter().find_map(|(_, e)| match e {
            Evidence::Numeric {
                x,
                median,
                spread,
                constant: false,
                ..
            } => Some((*x, *median, *spread)),
            _ => None,
        });
        let explanation = Explanation {
            detector: "event".into(),
            score,
            p_value: p,
            confidence: 1.0 - p,
            baseline_compression_ratio: compression_ratio(base),
            window_compression_ratio: compression_ratio(win),
            ncd: ncd(win, base),
            conditional_cost_bits_per_symbol: bits / event.len().max(1) as f64,
            baseline_cost_bits_per_symbol: base_cost,
            observed_cost_bits: bits,
            entropy_delta: entropy_bits(win) - entropy_bits(base),
            baseline_len: base.len() as u32,
            window_len: win.len() as u32,
            observed: numeric.map(|n| n.0),
            expected_low: numeric.map(|n| n.1 - 3.0 * n.2),
            expected_high: numeric.map(|n| n.1 + 3.0 * n.2),
            summary,
        };
        (explanation, findings)
    }
}

/// An integer with thousands separators ("98,765"); other numbers as [`num`] writes them.
pub(crate) fn grouped(x: f64) -> String {
    if x.fract() != 0.0 || x.abs() >= 1e15 {
        return num(x);
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

pub(crate) fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
