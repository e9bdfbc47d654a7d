//! Throughput and state-size benchmark of the detection engine (issue 3); `harness = false`.
//!
//! Prints metric points/s on one core, event events/s on ~200-byte JSON events, and the
//! encoded state bytes of each detector after a long run. Run with
//! `cargo bench --bench detect` (release profile, single thread).

use std::hint::black_box;
use std::time::Instant;

use driftlock::core::detect::{EventDetector, MetricDetector};
use serde_json::json;

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn main() {
    let n = 1_000_000usize;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let points: Vec<(i64, f64)> = (0..n)
        .map(|i| {
            let noise = (xorshift(&mut seed) % 10_000) as f64 / 10_000.0;
            let spike = if xorshift(&mut seed).is_multiple_of(5000) {
                50.0
            } else {
                0.0
            };
            let v = 40.0
                + 10.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin()
                + 3.0 * noise
                + spike;
            (1_400_000_000 + 60 * i as i64, v)
        })
        .collect();
    let mut d = MetricDetector::default();
    let t = Instant::now();
    let mut alarms = 0usize;
    for &(ts, v) in &points {
        alarms += black_box(d.observe(ts, v)).anomaly as usize;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "metric: {:.0} points/s/core ({n} points in {secs:.3}s, {alarms} anomalies), state {} bytes",
        n as f64 / secs,
        d.encode_state().len()
    );

    // The discord signal's costliest case (issue 20): a short period (24 points) means the
    // least reduction, so the nearest-neighbour search runs every other point.
    let short: Vec<(i64, f64)> = points
        .iter()
        .enumerate()
        .map(|(i, &(ts, v))| {
            (
                ts,
                v + 10.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin(),
            )
        })
        .collect();
    let mut d = MetricDetector::default();
    let t = Instant::now();
    for &(ts, v) in &short {
        black_box(d.observe(ts, v));
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "metric, 24-point period: {:.0} points/s/core, state {} bytes",
        n as f64 / secs,
        d.encode_state().len()
    );

    let m = 200_000usize;
    let actions = ["login", "view", "search", "checkout", "logout"];
    let events: Vec<serde_json::Value> = (0..m)
        .map(|i| {
            let r = xorshift(&mut seed);
            json!({
                "ts": 1_700_000_000 + i as u64,
                "user": format!("user-{:05}", r % 5000),
                "action": actions[(r >> 20) as usize % actions.len()],
                "path": format!("/api/v1/items/{}", (r >> 8) % 100_000),
                "status": if r.is_multiple_of(97) { 500 } else { 200 },
                "latency_ms": (r >> 32) % 900,
                "region": "eu-west-1",
                "agent": "Mozilla/5.0 (X11; Linux x86_64)"
            })
        })
        .collect();
    let bytes: usize = events
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap().len())
        .sum();
    let mut d = EventDetector::default();
    let t = Instant::now();
    let mut alarms = 0usize;
    for e in &events {
        alarms += black_box(d.observe(e)).anomaly as usize;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "event: {:.0} events/s/core ({m} events of {} bytes on average in {secs:.3}s, {alarms} anomalies), state {} bytes",
        m as f64 / secs,
        bytes / m,
        d.encode_state().len()
    );
}
