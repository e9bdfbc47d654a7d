//! Load bench for the Stream API (issue 4): starts the release binary on loopback, pushes
//! 1,000-event NDJSON batches from several client threads to several streams, and prints
//! events/s through HTTP with the p50/p99 batch latency. Bounded: a fixed number of batches
//! per thread and a wall-clock cap. Run: `cargo bench --bench stream_load`.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const THREADS: usize = 4;
const BATCHES_PER_THREAD: usize = 60;
const EVENTS_PER_BATCH: usize = 1_000;
const WALL_CAP: Duration = Duration::from_secs(120);

fn ndjson_batch(seed: usize) -> String {
    let mut x = seed as u64 * 2_654_435_761 + 1;
    let mut out = String::with_capacity(EVENTS_PER_BATCH * 200);
    for i in 0..EVENTS_PER_BATCH {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let r = x >> 33;
        out.push_str(&format!(
            "{{\"ts\":{},\"user\":\"user-{}\",\"action\":\"{}\",\"path\":\"/api/v1/items/{}\",\"status\":{},\"latency_ms\":{},\"region\":\"eu-west-{}\"}}\n",
            1_700_000_000 + i,
            r % 50,
            ["login", "view", "update", "logout"][(r % 4) as usize],
            r % 1000,
            if r.is_multiple_of(97) { 500 } else { 200 },
            5 + r % 40,
            r % 3
        ));
    }
    out
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_driftlock");
    let data = std::env::temp_dir().join(format!("driftlock-load-{}", std::process::id()));
    let mut child = Command::new(bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rate-limit-per-sec",
            "0",
            "--log-level",
            "warn",
        ])
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start driftlock");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let base = first
        .trim()
        .trim_start_matches("driftlock listening on ")
        .to_string();
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let auth = format!("Bearer {admin}");
    let org: serde_json::Value = ureq::post(&format!("{base}/v1/admin/orgs"))
        .set("Authorization", &auth)
        .send_json(serde_json::json!({"name": "load", "plan": "growth"}))
        .unwrap()
        .into_json()
        .unwrap();
    // Growth plan with overage allowed: the bench measures throughput, not the quota.
    ureq::put(&format!("{base}/v1/admin/orgs/{}/quota-policy", org["id"].as_str().unwrap()))
        .set("Authorization", &auth)
        .send_json(serde_json::json!({"behavior_on_exceed": "allow_overage", "cap_percent": 120, "invoice_threshold_cents": 50000, "alert_at_90": false}))
        .unwrap();
    let key: serde_json::Value = ureq::post(&format!(
        "{base}/v1/admin/orgs/{}/keys",
        org["id"].as_str().unwrap()
    ))
    .set("Authorization", &auth)
    .send_json(serde_json::json!({"name": "load"}))
    .unwrap()
    .into_json()
    .unwrap();
    let key = format!("Bearer {}", key["secret"].as_str().unwrap());
    let batches: Vec<String> = (0..8).map(ndjson_batch).collect();

    let started = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (base, key, batches) = (base.clone(), key.clone(), batches.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(30))
                    .build();
                let mut latencies = Vec::with_capacity(BATCHES_PER_THREAD);
                for i in 0..BATCHES_PER_THREAD {
                    if started.elapsed() > WALL_CAP {
                        break;
                    }
                    let t0 = Instant::now();
                    let resp = agent
                        .post(&format!("{base}/v1/streams/load-{t}/events"))
                        .set("Authorization", &key)
                        .set("Content-Type", "application/x-ndjson")
                        .send_string(&batches[(i + t) % batches.len()])
                        .expect("batch accepted");
                    let _ = resp.into_string().unwrap();
                    latencies.push(t0.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let events = latencies.len() * EVENTS_PER_BATCH;
    println!("stream_load: {THREADS} client threads, {} batches of {EVENTS_PER_BATCH} NDJSON events ({} events) in {:.2} s", latencies.len(), events, elapsed.as_secs_f64());
    println!(
        "stream_load: {:.0} events/s through HTTP",
        events as f64 / elapsed.as_secs_f64()
    );
    println!(
        "stream_load: batch latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);
}
