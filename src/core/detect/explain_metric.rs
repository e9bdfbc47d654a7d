//! Builds the explanation of a metric anomaly from the detector's state (issue 3).
//!
//! Runs only when a point is flagged, so it may allocate and recompress the baseline. Owns
//! the expected range (the values covering 95% of the model's predicted probability in the
//! point's context, or, when the residual carried the verdict, the forecast plus or minus the
//! largest miss its calibration holds) and the compression figures over the symbol strings.

use super::compress::{compression_ratio, entropy_bits, ncd};
use super::explain::{num, pval, Explanation};
use super::metric::{Evidence, MetricDetector, Signal};

/// A signal other than the leading one is named in the summary when its own p-value is at
/// most this.
const ALSO_SIGNIFICANT: f64 = 0.01;

pub(crate) fn build(
    d: &MetricDetector,
    x: f64,
    s: i32,
    cost: f64,
    score: f64,
    p: f64,
    e: &Evidence,
) -> Explanation {
    let v = d.parts();
    let n = v.syms.len();
    // Oldest-first symbols of the baseline, then the window (the newest points plus this one).
    let ordered: Vec<i32> = (0..n)
        .map(|i| v.syms[(v.sym_head + i) % n.max(1)])
        .collect();
    let w_prev = (v.window.saturating_sub(1)).min(n);
    let (base, recent) = ordered.split_at(n - w_prev);
    let to_byte = |s: i32| ((s as i64 - v.centre as i64).clamp(-127, 127) as i8) as u8;
    let base_b: Vec<u8> = base.iter().map(|&s| to_byte(s)).collect();
    let mut win_b: Vec<u8> = recent.iter().map(|&s| to_byte(s)).collect();
    win_b.push(to_byte(s));

    // Expected range: most probable symbols in this context until 95% of their mass.
    let mut cands: Vec<i32> = ordered.clone();
    cands.sort_unstable();
    cands.dedup();
    let mut probs: Vec<(f64, i32)> = cands
        .iter()
        .map(|&c| (v.model.prob(v.p2, v.p1, c, v.centre), c))
        .collect();
    probs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let total: f64 = probs.iter().map(|q| q.0).sum();
    let (mut lo, mut hi, mut acc) = (i32::MAX, i32::MIN, 0.0);
    for &(q, c) in &probs {
        lo = lo.min(c);
        hi = hi.max(c);
        acc += q;
        if acc >= 0.95 * total {
            break;
        }
    }
    if lo > hi {
        lo = s;
        hi = s;
    }
    // When the residual carried the verdict, the expected range is the forecast plus or minus
    // the largest miss its calibration holds (issue 20): the context model's range spans the
    // whole seasonal swing and would call a clear miss of the forecast "inside".
    let (expected_low, expected_high) = match v.quant {
        _ if e.signal == Signal::Residual && e.forecast_reach > 0.0 => {
            (e.forecast - e.forecast_reach, e.forecast + e.forecast_reach)
        }
        Some(q) => (q.value(lo as f64), q.value(hi as f64 + 1.0)),
        None => (x, x),
    };

    let window_cost =
        (v.window_costs.iter().sum::<f64>() + cost) / (v.window_costs.len() + 1) as f64;
    let where_ = if x > expected_high {
        "above"
    } else if x < expected_low {
        "below"
    } else {
        "inside"
    };
    let describe = |signal: Signal| {
        match signal {
        Signal::Point => format!(
            "it costs {} bits to encode versus {} bits typically",
            num(cost),
            num(v.cost_avg)
        ),
        // The sequence signal leaves out the costliest of its points (see `metric`).
        Signal::Sequence => format!(
            "its last {} points, leaving out the costliest, cost {} bits to encode versus {} bits typically",
            v.sequence,
            num(e.sequence_bits),
            num(v.cost_avg * v.sequence.saturating_sub(1) as f64)
        ),
        Signal::Seasonal => format!(
            "its last {} points sit {} typical deviations on average from their usual level at this time of day (now {})",
            v.seasonal_window,
            num(e.seasonal_z),
            num(e.seasonal_level)
        ),
        Signal::Discord => format!(
            "its last {} points (one period of the series) are {} z-normalized units per sample from the nearest earlier stretch of the same length",
            e.discord_span,
            num(e.discord_dist)
        ),
        // Plain numbers (issue 20): the forecast, the miss in the series' own units, and the
        // miss in typical forecast errors (the residual's unit), so the sentence can be
        // checked against a chart.
        Signal::Residual => format!(
            "it misses the forecast {} ({}) by {}, {} times the typical forecast error of {}",
            num(e.forecast),
            if v.period > 0 {
                format!("the recent level plus the usual move one period of {} points ago", v.period)
            } else {
                "the recent level; no period found".to_string()
            },
            num(x - e.forecast),
            num(e.residual_z),
            num(e.forecast_error)
        ),
        Signal::Level => format!(
            "its last {} points average {}, {} robust standard deviations from the usual {}",
            v.level_window,
            num(e.level_mean),
            num(e.level_z),
            num(v.median)
        ),
    }
    };
    // Fisher's combination lets several signals carry a verdict together, so every signal
    // that is itself significant is named, the most surprising first.
    let mut why = describe(e.signal);
    let others = [
        (Signal::Point, e.p_point),
        (Signal::Sequence, e.p_sequence),
        (Signal::Seasonal, e.p_seasonal),
        (Signal::Level, e.p_level),
        (Signal::Discord, e.p_discord),
        (Signal::Residual, e.p_residual),
    ];
    for (signal, p_signal) in others {
        if signal != e.signal && p_signal <= ALSO_SIGNIFICANT {
            why.push_str(", and ");
            why.push_str(&describe(signal));
        }
    }
    let summary = if where_ == "inside" {
        format!(
            "Value {} is inside the expected range {} to {} but breaks the recent pattern: given the last {} points {} ({}).",
            num(x), num(expected_low), num(expected_high), n, why, pval(p)
        )
    } else {
        format!(
            "Value {} is {} the expected range {} to {}: given the last {} points {} ({}).",
            num(x),
            where_,
            num(expected_low),
            num(expected_high),
            n,
            why,
            pval(p)
        )
    };
    Explanation {
        detector: "metric".into(),
        score,
        p_value: p,
        confidence: 1.0 - p,
        baseline_compression_ratio: compression_ratio(&base_b),
        window_compression_ratio: compression_ratio(&win_b),
        ncd: ncd(&win_b, &base_b),
        conditional_cost_bits_per_symbol: window_cost,
        baseline_cost_bits_per_symbol: v.cost_avg,
        observed_cost_bits: cost,
        entropy_delta: entropy_bits(&win_b) - entropy_bits(&base_b),
        baseline_len: base_b.len() as u32,
        window_len: win_b.len() as u32,
        observed: Some(x),
        expected_low: Some(expected_low),
        expected_high: Some(expected_high),
        summary,
    }
}
