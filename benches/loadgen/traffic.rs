//! What the clients send: NDJSON batches of ordinary web events with an occasional odd one
//! injected, and monitor point batches on a quiet daily wave with an occasional spike. The
//! injections are random, not scripted, so how many the detectors flag is a measurement.

use std::f64::consts::TAU;

use rand::{rngs::StdRng, RngExt};
use serde_json::{json, Value};

/// Points are five minutes apart, like the monitor tests' series.
const POINT_STEP_SECS: i64 = 300;
/// First point time of every monitor (2023-11-14, UTC).
const FIRST_POINT_SECS: i64 = 1_700_000_000;

/// A batch and how many odd items were injected into it.
pub struct Batch<T> {
    pub body: T,
    pub injected: u64,
}

/// `n` NDJSON events; each is odd with probability `odd_per_mille` / 1000.
pub fn event_batch(rng: &mut StdRng, n: usize, odd_per_mille: u32) -> Batch<String> {
    let mut body = String::with_capacity(n * 110);
    let mut injected = 0;
    for _ in 0..n {
        let event = if rng.random_ratio(odd_per_mille, 1000) {
            injected += 1;
            odd_event(rng)
        } else {
            ordinary_event(rng)
        };
        body.push_str(&event.to_string());
        body.push('\n');
    }
    Batch { body, injected }
}

fn ordinary_event(rng: &mut StdRng) -> Value {
    let action = ["login", "view", "view", "view", "update", "logout"][rng.random_range(0..6)];
    json!({
        "user": format!("u{}", rng.random_range(0..40)),
        "action": action,
        "path": format!("/api/v1/items/{}", rng.random_range(0..200)),
        "status": if rng.random_ratio(1, 50) { 404 } else { 200 },
        "latency_ms": 5 + rng.random_range(0..40),
        "region": format!("eu-west-{}", rng.random_range(1..4)),
    })
}

fn odd_event(rng: &mut StdRng) -> Value {
    let tag: u64 = rng.random();
    match rng.random_range(0..4) {
        0 => json!({
            "error": "OutOfMemoryError: Java heap space",
            "trace": format!("at com.acme.Foo.bar(Foo.java:{}) at java.lang.Thread.run", tag % 900),
            "severity": "FATAL",
            "host": format!("db-{tag:x}"),
        }),
        1 => json!({
            "user": "root",
            "action": "DROP TABLE payments; --",
            "status": 500,
            "latency_ms": 90_000 + tag % 10_000,
            "payload": format!("{tag:032x}{:032x}", tag.rotate_left(17)),
        }),
        2 => json!({
            "kernel": format!("BUG: unable to handle page fault for address: {tag:016x}"),
            "cpu": tag % 64,
            "comm": "kworker/7:1H",
        }),
        _ => json!({
            "user": format!("u{}", tag % 40),
            "action": "export",
            "path": format!("/admin/dump?table=users&token={tag:x}"),
            "status": 200,
            "latency_ms": 40_000 + tag % 5_000,
            "bytes": 1_000_000_000 + tag % 1_000_000,
        }),
    }
}

/// `n` points of one monitor from its `first`-th point on; each is a spike with probability
/// `spike_per_mille` / 1000. Point `i` is always at the same time, so a monitor's points stay
/// in time order as long as each batch starts where the previous one ended.
pub fn point_batch(rng: &mut StdRng, first: u64, n: usize, spike_per_mille: u32) -> Batch<Value> {
    let mut injected = 0;
    let points: Vec<Value> = (first..first + n as u64)
        .map(|i| {
            let wave = 50.0 + 10.0 * (i as f64 * TAU / 288.0).sin() + rng.random_range(0.0..1.5);
            let value = if rng.random_ratio(spike_per_mille, 1000) {
                injected += 1;
                rng.random_range(2_000.0..8_000.0)
            } else {
                wave
            };
            json!({"timestamp": FIRST_POINT_SECS + POINT_STEP_SECS * i as i64, "value": value})
        })
        .collect();
    Batch {
        body: json!({ "points": points }),
        injected,
    }
}
