//! Tests of the metric detector's v2 behaviour (issue 20): recurring anomalies stay visible,
//! the score is graded for every point, and state written by the previous layout still runs.

use super::*;

/// Five-minute points: a daily cycle (amplitude 10) plus noise of standard deviation about 1.
fn seasonal(n: usize) -> Vec<(i64, f64)> {
    let mut seed = 0x51_7cc1_b727_220au64;
    (0..n)
        .map(|i| {
            // Sum of three uniforms: roughly normal, sd 1.
            let mut noise = 0.0;
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                noise += (seed % 10_000) as f64 / 10_000.0 - 0.5;
            }
            let v = 100.0 + 10.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin() + 2.0 * noise;
            (1_500_000_000 + 300 * i as i64, v)
        })
        .collect()
}

/// Issue 20's recurring anomaly. Not yet met (see the README's detector section): the first
/// spike is flagged, and the graded score ranks every recurrence among the highest points,
/// but the later ones stay below the alarm threshold. Run with `--ignored` to measure.
///
/// Why, measured: the baseline's robust spread includes the daily cycle, so the +8 spike is
/// about one spread; only the residual signal sees it clearly (p 4e-6 on the first), and once
/// the first spike is in the residual's tail a repeat sits at p ~2/N (6e-4 to 9e-4). Recording
/// an alarmed point at the tail's maximum in every calibration flags 2 of 5 (the later
/// residuals, 0.72 to 0.93 spreads for the same spike, vary with the forecast's noise) and
/// raises NAB dev's false-positive rows from 79 to 94 (85 to 89 when a recurrence at the
/// series' own period is exempt). A heavy-tailed parametric floor cannot help: the spike is
/// about 4.5 to 6 residual deviations (estimated), where a Student-t with 3 degrees of
/// freedom gives p ~1e-2.
///
/// Measured in the metric-v6 session (not merged; NAB figures are dev, as shipped):
/// - Residual in units of its own typical size (a running mean of |forecast error|, clipped
///   at 4x, horizon 4096, alarmed points left out) instead of baseline spreads, plus alarmed
///   points kept out of the residual's calibration: all 5 flagged (p_residual 3e-8 to 3e-6,
///   normal tail max about 4.3 units), but FP rows 79 -> 89 (NAB 70.68): daily single-point
///   jobs (e.g. `ec2_cpu_utilization_24ae8d`, a spike every 288 points +-3) alarm every day.
/// - Adding an exemption at the time of day (an alarm within the calibration horizon in the
///   same or a neighbouring 15-minute bucket enters the calibration, and any later point
///   there gets +1/(n+1) on its residual p-value): all 5 flagged, NAB 71.25 / 71.25, windows
///   58, UCR 0.421, WSD VUS-PR 0.349, but FP rows 81 (the second occurrence of each daily
///   pattern still alarms, plus early alarms right after warm-up on `ambient_temperature`).
/// - Without the normalization (baseline spreads) the exclusion alone flags 3 of 5 (FP 87), 4
///   of 5 with a trimmed mean of the moves over 8 periods (FP 92).
/// - A less noisy forecast alone (trimmed mean of the moves over 5, 8, 12 periods; 8- or
///   16-point means) leaves FP rows at 78-79 but cannot lift a repeat: while the first spike
///   is in the tail a repeat sits at p >= ~1/n. Stricter residual Bonferroni factors (6 to
///   16) leave FP rows at 81-83 (alarms move between incidents rather than disappear).
#[test]
#[ignore = "issue 20: recurring spikes after the first are not yet flagged"]
fn every_recurrence_of_a_clear_spike_is_flagged() {
    let mut pts = seasonal(6000);
    let spikes: Vec<usize> = (0..5).map(|k| 2500 + 600 * k).collect();
    for &i in &spikes {
        pts[i].1 += 8.0;
    }
    let mut d = MetricDetector::default();
    let out: Vec<MetricVerdict> = pts.iter().map(|&(t, v)| d.observe(t, v)).collect();
    let flagged: Vec<usize> = spikes
        .iter()
        .copied()
        .filter(|&i| (i..i + 3).any(|j| out[j].anomaly))
        .collect();
    assert_eq!(flagged, spikes, "recurring spikes flagged");
    // And no alarms elsewhere after warm-up (a day of the cycle).
    let elsewhere = (288..pts.len())
        .filter(|&j| out[j].anomaly && !spikes.iter().any(|&i| (i..i + 3).contains(&j)))
        .count();
    assert!(elsewhere <= 2, "{elsewhere} false alarms");
}

#[test]
fn score_is_graded_and_crosses_the_threshold_exactly_at_alarms() {
    let mut pts = seasonal(4000);
    pts[3000].1 += 40.0;
    let mut d = MetricDetector::default();
    let t = d.settings().alarm_threshold();
    let out: Vec<MetricVerdict> = pts.iter().map(|&(t, v)| d.observe(t, v)).collect();
    let ready = &out[200..];
    assert!(ready.iter().all(|v| (v.score >= t) == v.anomaly));
    assert!(out[3000].anomaly);
    // Most points carry a distinct, non-zero score (rank-meaningful), not a damped zero.
    let mut scores: Vec<u64> = ready.iter().map(|v| v.score.to_bits()).collect();
    let nonzero = scores.iter().filter(|&&s| f64::from_bits(s) > 1e-4).count();
    scores.sort_unstable();
    scores.dedup();
    assert!(nonzero > ready.len() * 9 / 10, "{nonzero}");
    assert!(scores.len() > ready.len() / 2, "{}", scores.len());
}

#[test]
fn state_of_the_previous_layout_keeps_running_after_an_upgrade() {
    let pts = seasonal(5000);
    let mut d = MetricDetector::default();
    for &(t, v) in &pts[..3000] {
        d.observe(t, v);
    }
    let old = d.encode_layout(codec::V4);
    assert!(old.len() < d.encode_state().len());
    let mut m = MetricDetector::decode_state(&old).expect("version 4 state is read");
    assert_eq!(m.points_accepted(), 3000);
    // Everything v4 stored is kept: the decision path continues exactly.
    let (mut alarms, mut same) = (0, 0);
    for &(t, v) in &pts[3000..] {
        let (a, b) = (d.observe(t, v), m.observe(t, v));
        assert!(b.accepted && (0.0..=1.0).contains(&b.score));
        alarms += b.anomaly as u32;
        same += (a.anomaly == b.anomaly) as u32;
    }
    assert!(alarms <= 3, "{alarms}");
    assert!(same >= 1995, "{same}");
    // And the migrated detector writes the current layout, which reads back.
    assert!(MetricDetector::decode_state(&m.encode_state()).is_ok());
}
