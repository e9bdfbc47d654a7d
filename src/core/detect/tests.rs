//! Cross-cutting tests of both detectors (issue 3): determinism, no look-ahead, exact resume
//! from state, explanations on every anomaly, the input rule, bounded state, and properties.

use proptest::prelude::*;
use serde_json::json;

use super::*;

/// A deterministic test series: daily-ish sine plus pseudo-noise, a spike and a level shift.
fn series(n: usize) -> Vec<(i64, f64)> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed % 1000) as f64 / 1000.0 - 0.5;
            let mut v =
                50.0 + 10.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin() + 2.0 * noise;
            if i == 900 {
                v += 80.0;
            }
            if i > 1500 {
                v += 30.0;
            }
            (1_400_000_000 + 300 * i as i64, v)
        })
        .collect()
}

fn run_metric(d: &mut MetricDetector, pts: &[(i64, f64)]) -> Vec<MetricVerdict> {
    pts.iter().map(|&(t, v)| d.observe(t, v)).collect()
}

fn event(i: usize) -> serde_json::Value {
    let anomalous = i == 700 || (1200..1210).contains(&i);
    if anomalous {
        json!({"user": format!("zz{}qq{}", i * 7919, i), "action": "DROP TABLE", "bytes": i * 104_729, "ok": false, "path": "/admin/../../etc/passwd"})
    } else {
        let action = ["login", "view", "logout"][i % 3];
        json!({"user": format!("user{}", i % 13), "action": action, "bytes": 100 + (i % 17), "ok": true, "path": "/app/home"})
    }
}

#[test]
fn metric_detector_finds_spike_and_shift_with_explanations() {
    let pts = series(2000);
    let out = run_metric(&mut MetricDetector::default(), &pts);
    let flagged: Vec<usize> = (0..out.len()).filter(|&i| out[i].anomaly).collect();
    assert!(flagged.contains(&900), "{flagged:?}");
    assert!(
        flagged.iter().any(|&i| (1501..1520).contains(&i)),
        "{flagged:?}"
    );
    for v in &out {
        assert_eq!(v.anomaly, v.explanation.is_some());
        assert!((0.0..=1.0).contains(&v.score));
        if let Some(e) = &v.explanation {
            assert!(!e.summary.is_empty() && e.summary.ends_with('.'));
            assert!(e.p_value > 0.0 && e.p_value <= 1.0);
            assert!(e.observed.is_some() && e.expected_low <= e.expected_high);
        }
    }
    let e = out[900].explanation.as_ref().unwrap();
    assert!(e.observed.unwrap() > e.expected_high.unwrap(), "{e:?}");
}

#[test]
fn metric_detector_is_deterministic_and_never_looks_ahead() {
    let pts = series(1800);
    let a = run_metric(&mut MetricDetector::default(), &pts);
    let b = run_metric(&mut MetricDetector::default(), &pts);
    assert_eq!(a, b);
    let prefix = run_metric(&mut MetricDetector::default(), &pts[..1000]);
    assert_eq!(&a[..1000], &prefix[..]);
}

#[test]
fn metric_detector_resumes_exactly_from_state() {
    let pts = series(2000);
    let whole = run_metric(&mut MetricDetector::default(), &pts);
    for cut in [0, 10, 149, 150, 700, 901, 1100, 1999] {
        let mut d = MetricDetector::default();
        let mut out = run_metric(&mut d, &pts[..cut]);
        let bytes = d.encode_state();
        let mut r = MetricDetector::decode_state(&bytes).unwrap();
        assert_eq!(r.encode_state(), bytes, "re-encoding is stable at {cut}");
        out.extend(run_metric(&mut r, &pts[cut..]));
        assert_eq!(out, whole, "cut at {cut}");
    }
}

#[test]
fn metric_input_rule_rejects_non_finite_and_stale_timestamps() {
    let mut d = MetricDetector::default();
    let pts = series(400);
    for &(t, v) in &pts[..300] {
        assert!(d.observe(t, v).accepted);
    }
    let before = d.encode_state();
    let t = pts[299].0;
    for (ts, v) in [
        (t + 1, f64::NAN),
        (t + 1, f64::INFINITY),
        (t + 1, f64::NEG_INFINITY),
        (t, 50.0),
        (t - 600, 50.0),
    ] {
        let v = d.observe(ts, v);
        assert!(!v.accepted && !v.anomaly && v.score == 0.0 && v.explanation.is_none());
    }
    assert_eq!(
        d.encode_state(),
        before,
        "rejected points leave the state untouched"
    );
    let huge = d.observe(t + 300, 1e300);
    assert!(huge.accepted && huge.anomaly && huge.score <= 1.0);
    assert_eq!(huge.explanation.unwrap().observed, Some(MAX_ABS_VALUE));
    assert!(d.observe(t + 600, -f64::MAX).accepted);
    assert!(d.observe(i64::MAX, 0.0).accepted);
    assert!(!d.observe(i64::MIN, 0.0).accepted);
}

#[test]
fn constant_and_tiny_series_do_not_panic_or_alarm_constantly() {
    let mut d = MetricDetector::default();
    let mut n = 0;
    for i in 0..3000 {
        n += d.observe(i, 7.0).anomaly as usize;
    }
    assert_eq!(n, 0);
    let mut d = MetricDetector::default();
    for i in 0..200 {
        d.observe(i, if i % 2 == 0 { 1e-300 } else { -1e-300 });
    }
}

#[test]
fn metric_state_is_bounded() {
    let mut d = MetricDetector::default();
    run_metric(&mut d, &series(6000));
    assert!(
        d.encode_state().len() <= 64 * 1024,
        "{}",
        d.encode_state().len()
    );
}

#[test]
fn metric_settings_validation_names_the_field() {
    assert!(MetricSettings::default().validate().is_ok());
    let s = MetricSettings {
        sensitivity: 2.0,
        ..MetricSettings::default()
    };
    assert!(s
        .validate()
        .unwrap_err()
        .to_string()
        .contains("sensitivity"));
    let s = MetricSettings {
        window: 0,
        ..MetricSettings::default()
    };
    assert!(s.validate().unwrap_err().to_string().contains("window"));
    let lo = MetricSettings {
        sensitivity: 0.0,
        ..MetricSettings::default()
    };
    let hi = MetricSettings {
        sensitivity: 1.0,
        ..MetricSettings::default()
    };
    assert!(lo.alarm_threshold() > hi.alarm_threshold());
}

#[test]
fn corrupt_or_foreign_state_is_an_error_not_a_panic() {
    let mut d = MetricDetector::default();
    run_metric(&mut d, &series(300));
    let bytes = d.encode_state();
    for cut in [0, 3, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(MetricDetector::decode_state(&bytes[..cut]).is_err());
    }
    assert!(EventDetector::decode_state(&bytes).is_err());
    assert!(MetricDetector::decode_state(&EventDetector::default().encode_state()).is_err());
}

#[test]
fn event_detector_flags_foreign_events_with_explanations() {
    let mut d = EventDetector::default();
    let out: Vec<EventVerdict> = (0..1500).map(|i| d.observe(&event(i))).collect();
    assert!(out[700].anomaly, "{:?}", out[700]);
    assert!(out[1200].anomaly);
    // The window test keeps flagging while the burst is inside the 32-event window.
    let false_alarms: Vec<usize> = (0..1500)
        .filter(|&i| out[i].anomaly && !(700..732).contains(&i) && !(1200..1242).contains(&i))
        .collect();
    assert!(false_alarms.len() <= 3, "{false_alarms:?}");
    for v in &out {
        assert_eq!(v.anomaly, v.explanation.is_some());
        assert!((0.0..=1.0).contains(&v.score));
    }
    let e = out[700].explanation.as_ref().unwrap();
    assert!(e.ncd >= 0.0 && e.p_value > 0.0);
    // Issue 21: the explanation names fields, not bits per byte.
    assert!(!out[700].findings.is_empty(), "{:?}", out[700]);
    assert!(
        e.summary.contains("user") || e.summary.contains("action"),
        "{}",
        e.summary
    );
}

#[test]
fn event_detector_resumes_exactly_and_is_deterministic() {
    let events: Vec<_> = (0..1300).map(event).collect();
    let whole: Vec<EventVerdict> = {
        let mut d = EventDetector::default();
        events.iter().map(|e| d.observe(e)).collect()
    };
    for cut in [0, 5, 64, 500, 701, 1205] {
        let mut d = EventDetector::default();
        let mut out: Vec<EventVerdict> = events[..cut].iter().map(|e| d.observe(e)).collect();
        let bytes = d.encode_state();
        assert!(bytes.len() <= 64 * 1024);
        let mut r = EventDetector::decode_state(&bytes).unwrap();
        out.extend(events[cut..].iter().map(|e| r.observe(e)));
        assert_eq!(out, whole, "cut at {cut}");
    }
}

#[test]
fn event_detector_accepts_any_json_value() {
    let mut d = EventDetector::default();
    let mut deep = json!(1);
    for _ in 0..500 {
        deep = json!([deep]);
    }
    let big = json!({"blob": "x".repeat(100_000)});
    for v in [
        json!(null),
        json!(3.5),
        json!("s"),
        json!([]),
        json!({}),
        deep,
        big,
    ] {
        for _ in 0..100 {
            let r = d.observe(&v);
            assert!((0.0..=1.0).contains(&r.score));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Any sequence of points, including non-finite and out-of-order ones, yields scores in
    /// 0..=1, an explanation exactly on anomalies, and the same outputs after a state round trip.
    #[test]
    fn metric_verdicts_are_sane_and_resumable(
        raw in proptest::collection::vec((-3i64..10, prop_oneof![
            8 => -1e6f64..1e6,
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
            1 => Just(1e300),
        ]), 0..600),
        cut in 0usize..600,
    ) {
        let settings = MetricSettings { warmup: 20, ..MetricSettings::default() };
        let mut t = 0i64;
        let pts: Vec<(i64, f64)> = raw.iter().map(|&(dt, v)| { t += dt; (t, v) }).collect();
        let mut a = MetricDetector::new(settings.clone());
        let whole: Vec<MetricVerdict> = pts.iter().map(|&(t, v)| a.observe(t, v)).collect();
        let cut = cut.min(pts.len());
        let mut b = MetricDetector::new(settings);
        let mut out: Vec<MetricVerdict> = pts[..cut].iter().map(|&(t, v)| b.observe(t, v)).collect();
        let mut c = MetricDetector::decode_state(&b.encode_state()).unwrap();
        out.extend(pts[cut..].iter().map(|&(t, v)| c.observe(t, v)));
        prop_assert_eq!(&out, &whole);
        for v in &whole {
            prop_assert!((0.0..=1.0).contains(&v.score));
            prop_assert_eq!(v.anomaly, v.explanation.is_some());
            prop_assert!(v.accepted || !v.anomaly);
        }
    }

    /// Any JSON objects give scores in 0..=1 and an explanation exactly on anomalies.
    #[test]
    fn event_verdicts_are_sane(keys in proptest::collection::vec(("[a-c]{1,3}", any::<i32>()), 1..300)) {
        let settings = EventSettings { warmup: 8, baseline: 64, window: 8, ..EventSettings::default() };
        let mut d = EventDetector::new(settings);
        for (k, v) in keys {
            let r = d.observe(&json!({ k: v, "n": v % 3 }));
            prop_assert!((0.0..=1.0).contains(&r.score));
            prop_assert_eq!(r.anomaly, r.explanation.is_some());
        }
    }
}

/// Five-minute points with a strong daily cycle and mild noise.
fn daily(n: usize) -> Vec<(i64, f64)> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed % 1000) as f64 / 1000.0 - 0.5;
            let v = 50.0 + 20.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin() + noise;
            (1_400_000_000 + 300 * i as i64, v)
        })
        .collect()
}

#[test]
fn seasonal_signal_flags_a_value_that_is_usual_overall_but_not_at_this_time_of_day() {
    let mut pts = daily(288 * 8);
    // On day 7, around the daily high, the series sits at its daily mean for two hours: a
    // value seen every day, but never at this time of day.
    let span = 288 * 7 + 48..288 * 7 + 72;
    for i in span.clone() {
        pts[i].1 = 50.0 + (pts[i].1 - pts[i].1.round()) * 0.5;
    }
    let out = run_metric(&mut MetricDetector::default(), &pts);
    let hits: Vec<&MetricVerdict> = span
        .clone()
        .map(|i| &out[i])
        .filter(|v| v.anomaly)
        .collect();
    assert!(!hits.is_empty(), "no alarm in {span:?}");
    let e = hits[0].explanation.as_ref().unwrap();
    assert!(e.summary.ends_with('.') && e.p_value < 0.01, "{e:?}");
    // Quiet days raise (almost) no alarms once the daily profile is learned.
    let quiet = (288 * 3..288 * 7).filter(|&i| out[i].anomaly).count();
    assert!(quiet <= 3, "{quiet} alarms on quiet days");
}

#[test]
fn seasonal_explanation_names_the_time_of_day() {
    let mut pts = daily(288 * 8);
    // A sustained, moderate departure from the usual level at this time of day.
    for p in pts.iter_mut().skip(288 * 7 + 100).take(40) {
        p.1 += 12.0;
    }
    let out = run_metric(&mut MetricDetector::default(), &pts);
    let sentences: Vec<&str> = out
        .iter()
        .filter_map(|v| v.explanation.as_ref().map(|e| e.summary.as_str()))
        .collect();
    assert!(
        sentences.iter().any(|s| s.contains("time of day")),
        "{sentences:?}"
    );
}

#[test]
fn hold_off_damps_aftershocks_but_not_a_larger_surprise() {
    let mut pts = daily(1400);
    pts[1000].1 += 15.0;
    pts[1018].1 += 15.0;
    pts[1026].1 += 400.0;
    let out = run_metric(&mut MetricDetector::default(), &pts);
    assert!(out[1000].anomaly, "{:?}", out[1000]);
    assert!(
        !out[1018].anomaly,
        "an equal aftershock inside the hold-off must not alarm"
    );
    assert!(
        out[1026].anomaly,
        "a much larger surprise must break through the hold-off"
    );
    let off = MetricSettings {
        holdoff: 0,
        ..MetricSettings::default()
    };
    let out = run_metric(&mut MetricDetector::new(off), &pts);
    assert!(out[1000].anomaly);
}

#[test]
fn every_signal_resumes_exactly_from_state() {
    let settings = MetricSettings {
        level_window: 16,
        seasonal_buckets: 24,
        seasonal_window: 3,
        sequence: 6,
        ..MetricSettings::default()
    };
    let mut pts = daily(1500);
    pts[1200].1 += 90.0;
    let whole = run_metric(&mut MetricDetector::new(settings.clone()), &pts);
    assert!(whole.iter().any(|v| v.anomaly));
    for cut in [0, 17, 150, 600, 1199, 1201, 1499] {
        let mut d = MetricDetector::new(settings.clone());
        let mut out = run_metric(&mut d, &pts[..cut]);
        let bytes = d.encode_state();
        let mut r = MetricDetector::decode_state(&bytes).unwrap();
        assert_eq!(r.encode_state(), bytes, "re-encoding is stable at {cut}");
        out.extend(run_metric(&mut r, &pts[cut..]));
        assert_eq!(out, whole, "cut at {cut}");
    }
}

#[test]
fn state_of_another_version_is_refused_by_version() {
    // 3 is an older layout (Bonferroni, hold-offs in points): refused, not misread; 4 to 6
    // are migrated (see metric_tests.rs), 8 is from the future.
    for v in [1, 2, 3, 8] {
        let w = super::state::Writer::new(b"DLMD", v);
        match MetricDetector::decode_state(&w.finish()) {
            Err(DetectError::UnsupportedStateVersion {
                found,
                supported: 7,
            }) if found == v => {}
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn signals_can_be_switched_off() {
    let settings = MetricSettings {
        sequence: 0,
        level_window: 0,
        seasonal_buckets: 0,
        ..MetricSettings::default()
    };
    assert!(settings.validate().is_ok());
    let out = run_metric(&mut MetricDetector::new(settings), &series(2000));
    assert!(
        out[900].anomaly,
        "the compression signal alone still finds the spike"
    );
    let bad = MetricSettings {
        seasonal_window: 0,
        ..MetricSettings::default()
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("seasonal_window"));
}

#[test]
fn metric_state_is_bounded_even_at_the_largest_settings() {
    let settings = MetricSettings {
        baseline: 4096,
        window: 2048,
        calibration: 1_000_000,
        sequence: 256,
        level_window: 256,
        seasonal_buckets: 288,
        seasonal_window: 64,
        ..MetricSettings::default()
    };
    assert!(settings.validate().is_ok());
    let mut d = MetricDetector::new(settings);
    let mut seed = 0x1234_5678_9abc_def1u64;
    for i in 0..30_000i64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Wide-ranging values fill every calibration bin and time-of-day bucket.
        let v = (seed % 1_000_000) as f64 * if i % 7 == 0 { 1e3 } else { 1.0 };
        d.observe(1_400_000_000 + 300 * i, v);
    }
    let n = d.encode_state().len();
    assert!(n <= 64 * 1024, "{n}");
}
