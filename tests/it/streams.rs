//! The Stream API against the running binary: verdicts with explanations for injected
//! anomalies, metering by anomalies only, idempotent retries, state kept across restarts,
//! whole-batch rejection of bad input, and the quota's 429.

use serde_json::{json, Value};

use crate::support::{
    assert_error, get, org_with_key, post, service_key, start, start_with, Server,
};

/// Deterministic "normal" traffic: a handful of users doing ordinary things.
fn normal_events(seed: u64, n: usize) -> Vec<Value> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut next = move |m: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % m
    };
    (0..n)
        .map(|_| {
            let action = ["login", "view", "view", "logout"][next(4) as usize];
            json!({
                "user": format!("u{}", next(20)),
                "action": action,
                "status": 200,
                "latency_ms": 5 + next(25),
            })
        })
        .collect()
}

fn injected() -> Vec<Value> {
    vec![
        json!({"error": "OutOfMemoryError: Java heap space", "trace": "at com.acme.Foo.bar(Foo.java:42) at com.acme.Baz.qux(Baz.java:7) at java.lang.Thread.run", "severity": "FATAL", "host": "db-7f3a9c"}),
        json!({"user": "root", "action": "DROP TABLE payments; --", "status": 500, "latency_ms": 98765, "payload": "ZXhmaWx0cmF0ZSBhbGwgdGhlIGRhdGEgbm93IHBsZWFzZQ=="}),
        json!({"kernel": "BUG: unable to handle page fault for address: ffffffffc0a1b2c3", "cpu": 7, "comm": "kworker/7:1H", "tainted": "G OE 6.1.0-18-amd64"}),
    ]
}

fn send_batch(
    server: &Server,
    key: &str,
    stream: &str,
    events: &[Value],
    idem: Option<&str>,
) -> (u16, Value) {
    let mut req = ureq::post(&server.url(&format!("/v1/streams/{stream}/events")))
        .set("Authorization", &format!("Bearer {key}"));
    if let Some(k) = idem {
        req = req.set("Idempotency-Key", k);
    }
    crate::support::send(req, Some(&Value::Array(events.to_vec())))
}

fn period_detections(server: &Server, key: &str) -> u64 {
    get(server, "/v1/usage", Some(key)).1["total_calls"]
        .as_u64()
        .unwrap()
}

#[test]
fn injected_anomalies_are_flagged_explained_and_metered_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let admin = server.admin_token();
    let (_, key, _) = org_with_key(&server, &admin, "Acme");

    let (s, warm) = send_batch(&server, &key, "web", &normal_events(1, 400), None);
    assert_eq!(s, 200, "{warm}");
    assert_eq!(warm["results"].as_array().unwrap().len(), 400);
    assert_eq!(
        warm["results"][0]["warming_up"], true,
        "the first events build the baseline"
    );
    assert_eq!(warm["status"], "ready");

    let mut batch = normal_events(2, 200);
    let positions = [50usize, 120, 180];
    for (p, e) in positions.iter().zip(injected()) {
        batch[*p] = e;
    }
    let before = period_detections(&server, &key);
    let (s, answer) = send_batch(&server, &key, "web", &batch, None);
    assert_eq!(s, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i);
        assert_eq!(
            r["anomaly"].as_bool().unwrap(),
            r.get("explanation").is_some(),
            "explanation iff anomaly: {r}"
        );
    }
    for p in positions {
        let r = &results[p];
        assert_eq!(r["anomaly"], true, "injected event {p} not flagged: {r}");
        let e = &r["explanation"];
        for field in [
            "ncd",
            "p_value",
            "confidence",
            "window_compression_ratio",
            "baseline_compression_ratio",
            "entropy_delta",
        ] {
            assert!(e[field].is_number(), "{field} missing: {e}");
        }
        assert!(e["summary"].as_str().is_some_and(|s| s.len() > 20), "{e}");
    }
    let flagged = results.iter().filter(|r| r["anomaly"] == true).count() as u64;
    assert!(flagged <= 3 + 6, "too many false alarms: {flagged} of 200");
    assert_eq!(answer["totals"]["anomalies"].as_u64(), Some(flagged));
    assert_eq!(answer["detections_counted"].as_u64(), Some(flagged));
    assert_eq!(
        period_detections(&server, &key),
        before + flagged,
        "usage rises by exactly the anomalies"
    );

    let (s, stored) = get(&server, "/v1/streams/web/anomalies?limit=100", Some(&key));
    assert_eq!(s, 200);
    let stored = stored["items"].as_array().unwrap();
    assert_eq!(stored.len() as u64, flagged);
    assert!(stored.iter().any(|a| a["event"] == injected()[0]));
}

#[test]
fn a_retry_with_the_same_idempotency_key_counts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let admin = server.admin_token();
    let (_, key, _) = org_with_key(&server, &admin, "Acme");
    send_batch(&server, &key, "s", &normal_events(3, 300), None);
    let mut batch = normal_events(4, 50);
    batch.extend(injected());

    let (s, first) = send_batch(&server, &key, "s", &batch, Some("batch-0001"));
    assert_eq!(s, 200, "{first}");
    let used = period_detections(&server, &key);
    let events_seen = get(&server, "/v1/streams/s", Some(&key)).1["events_seen"].clone();
    let (s, again) = send_batch(&server, &key, "s", &batch, Some("batch-0001"));
    assert_eq!(s, 200);
    assert_eq!(again, first, "the retry gets the first answer");
    assert_eq!(
        period_detections(&server, &key),
        used,
        "nothing counted twice"
    );
    assert_eq!(
        get(&server, "/v1/streams/s", Some(&key)).1["events_seen"],
        events_seen
    );

    let (s, b) = send_batch(&server, &key, "s", &normal_events(5, 3), Some("batch-0001"));
    assert_error(s, &b, 409, "idempotency_key_reused");
}

#[test]
fn stream_state_survives_a_restart_exactly() {
    let first = normal_events(10, 300);
    let mut second = normal_events(11, 120);
    second[60] = injected()[1].clone();

    // With a restart between the batches...
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let admin = server.admin_token();
    let (_, key, _) = org_with_key(&server, &admin, "Acme");
    assert_eq!(send_batch(&server, &key, "r", &first, None).0, 200);
    server.stop_with("TERM");
    let server = start(dir.path());
    let (_, restarted) = send_batch(&server, &key, "r", &second, None);

    // ...the verdicts equal those of a server that never stopped.
    let dir2 = tempfile::tempdir().unwrap();
    let server2 = start(dir2.path());
    let admin2 = server2.admin_token();
    let (_, key2, _) = org_with_key(&server2, &admin2, "Acme");
    send_batch(&server2, &key2, "r", &first, None);
    let (_, continuous) = send_batch(&server2, &key2, "r", &second, None);
    assert_eq!(restarted["results"], continuous["results"]);
}

#[test]
fn bad_batches_are_rejected_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), &["--max-batch-events", "100"], &[]);
    let admin = server.admin_token();
    let (_, key, _) = org_with_key(&server, &admin, "Acme");
    let ndjson = |body: &str| {
        let req = ureq::post(&server.url("/v1/streams/n/events"))
            .set("Authorization", &format!("Bearer {key}"))
            .set("Content-Type", "application/x-ndjson");
        match req.send_string(body) {
            Ok(r) | Err(ureq::Error::Status(_, r)) => (
                r.status(),
                serde_json::from_str::<Value>(&r.into_string().unwrap()).unwrap(),
            ),
            Err(e) => panic!("{e}"),
        }
    };
    let (s, b) = ndjson("{\"a\":1}\n{\"a\":2}\n{\"a\":\n{\"a\":4}\n");
    assert_error(s, &b, 400, "invalid_json");
    assert!(b["message"].as_str().unwrap().contains("line 3"), "{b}");
    let (s, b) = ndjson("{\"a\":1}\n[1,2]\n");
    assert_error(s, &b, 422, "invalid_event");
    assert!(b["message"].as_str().unwrap().contains("line 2"), "{b}");
    let (s, b) = send_batch(&server, &key, "n", &[json!({"a": 1}), json!("text")], None);
    assert_error(s, &b, 422, "invalid_event");
    assert!(b["message"].as_str().unwrap().contains("index 1"), "{b}");
    let (s, b) = send_batch(&server, &key, "n", &normal_events(1, 101), None);
    assert_eq!(s, 413, "{b}");
    assert_eq!(b["code"], "batch_too_large");
    let (s, b) = send_batch(&server, &key, "bad%20id!", &normal_events(1, 1), None);
    assert_error(s, &b, 422, "validation_failed");
    let (s, b) = send_batch(&server, &key, &"x".repeat(200), &normal_events(1, 1), None);
    assert_error(s, &b, 422, "validation_failed");
    // Nothing of the rejected batches was applied.
    let (s, b) = get(&server, "/v1/streams/n", Some(&key));
    assert_error(s, &b, 404, "not_found");

    let (s, ok) = ndjson("{\"a\":1}\n\n{\"a\":2}\n");
    assert_eq!((s, ok["totals"]["events"].as_u64()), (200, Some(2)), "{ok}");
}

#[test]
fn stream_settings_listing_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let admin = server.admin_token();
    let (_, key, _) = org_with_key(&server, &admin, "Acme");
    let put = |id: &str, body: Value| {
        crate::support::send(
            ureq::put(&server.url(&format!("/v1/streams/{id}")))
                .set("Authorization", &format!("Bearer {key}")),
            Some(&body),
        )
    };
    let (s, created) = put(
        "tuned",
        json!({"window": 16, "baseline": 256, "sensitivity": 0.7, "warmup": 32}),
    );
    assert_eq!(s, 200, "{created}");
    assert_eq!(
        (
            created["window"].as_u64(),
            created["warming_up_remaining"].as_u64()
        ),
        (Some(16), Some(32))
    );
    let (s, b) = put("tuned", json!({"sensitivity": 3.0}));
    assert_error(s, &b, 422, "validation_failed");
    let (s, b) = put("tuned", json!({"window": 0}));
    assert_error(s, &b, 422, "validation_failed");

    let (_, answer) = send_batch(&server, &key, "tuned", &normal_events(1, 10), None);
    assert_eq!(
        (
            answer["status"].as_str(),
            answer["warming_up_remaining"].as_u64()
        ),
        (Some("warming_up"), Some(22))
    );
    send_batch(&server, &key, "other", &normal_events(1, 5), None);
    let (_, list) = get(&server, "/v1/streams?limit=1", Some(&key));
    assert_eq!(list["items"][0]["id"], "other");
    let cursor = list["next_cursor"].as_str().unwrap();
    let (_, list) = get(
        &server,
        &format!("/v1/streams?limit=1&cursor={cursor}"),
        Some(&key),
    );
    assert_eq!(list["items"][0]["id"], "tuned");
    assert!(list["next_cursor"].is_null());

    let (s, _) = crate::support::delete(&server, "/v1/streams/tuned", Some(&key));
    assert_eq!(s, 200);
    let (s, b) = get(&server, "/v1/streams/tuned", Some(&key));
    assert_error(s, &b, 404, "not_found");
}

#[test]
fn past_the_soft_cap_detection_calls_get_429_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let admin = server.admin_token();
    let (org, key, _) = org_with_key(&server, &admin, "Acme");
    let service = service_key(&server, &admin);

    // Developer plan: 10,000 included, soft cap at 120% = 12,000.
    let meter = |anomaly: bool, count: u64| {
        post(
            &server,
            "/v1/meter-usage",
            Some(&service),
            &json!({"organization_id": org, "anomaly": anomaly, "count": count}),
        )
    };
    let (s, b) = meter(false, 5_000);
    assert_eq!((s, b["counted"].as_u64()), (200, Some(0)), "{b}");
    let (s, b) = meter(true, 11_999);
    assert_eq!(
        (s, b["usage"]["total_calls"].as_u64()),
        (200, Some(11_999)),
        "{b}"
    );
    send_batch(&server, &key, "q", &normal_events(1, 100), None);
    let (s, b) = meter(true, 1);
    assert_eq!(s, 200, "{b}");

    let resp = ureq::post(&server.url("/v1/streams/q/events"))
        .set("Authorization", &format!("Bearer {key}"))
        .send_json(json!([{"a": 1}]));
    let Err(ureq::Error::Status(429, resp)) = resp else {
        panic!("expected 429")
    };
    let retry_after: u64 = resp.header("Retry-After").unwrap().parse().unwrap();
    assert!(retry_after > 0 && retry_after <= 31 * 86_400);
    let body: Value = resp.into_json().unwrap();
    assert_eq!(body["code"], "quota_exceeded");
    assert_eq!(
        (
            body["details"]["used"].as_u64(),
            body["details"]["limit"].as_u64()
        ),
        (Some(12_000), Some(12_000))
    );
    assert_eq!(
        get(&server, "/v1/streams/q", Some(&key)).1["events_seen"],
        100,
        "no work was done"
    );
    let (s, b) = meter(true, 1);
    assert_error_with_details(s, &b);

    // Alerts at 70%, 100% and the cap were queued once each for the billing email.
    let (_, outbox) = get(&server, "/v1/admin/outbox/email", Some(&admin));
    let mut thresholds: Vec<u64> = outbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["params"]["threshold_percent"].as_u64().unwrap())
        .collect();
    thresholds.sort();
    assert_eq!(thresholds, vec![70, 100, 120]);

    // Raising the plan lifts the refusal and keeps the usage.
    let (s, _) = crate::support::send(
        ureq::put(&server.url(&format!("/v1/admin/orgs/{org}/plan")))
            .set("Authorization", &format!("Bearer {admin}")),
        Some(&json!({"plan": "standard"})),
    );
    assert_eq!(s, 200);
    let (s, usage) = get(&server, "/v1/usage", Some(&key));
    assert_eq!(
        (s, usage["total_calls"].as_u64(), usage["plan"].as_str()),
        (200, Some(12_000), Some("standard"))
    );
    let (s, _) = send_batch(&server, &key, "q", &normal_events(2, 10), None);
    assert_eq!(s, 200);
}

fn assert_error_with_details(status: u16, body: &Value) {
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "quota_exceeded");
    assert!(
        body["details"]["retry_after_secs"].as_u64().is_some(),
        "{body}"
    );
}

/// Issue 19, small surprises: a replayed answer says so (`Idempotent-Replayed: true`, as
/// Stripe does), and an empty batch does not create a stream.
#[test]
fn a_replay_says_so_and_an_empty_batch_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::start(dir.path());
    let admin = server.admin_token();
    let (_, key, _) = crate::support::org_with_key(&server, &admin, "Acme");
    let send = |path: &str, idem: Option<&str>, body: &serde_json::Value| {
        let mut req = ureq::post(&server.url(path)).set("Authorization", &format!("Bearer {key}"));
        if let Some(k) = idem {
            req = req.set("Idempotency-Key", k);
        }
        match req.send_json(body.clone()) {
            Ok(r) | Err(ureq::Error::Status(_, r)) => (
                r.status(),
                r.header("Idempotent-Replayed").map(str::to_string),
                r.into_json::<serde_json::Value>().unwrap(),
            ),
            Err(e) => panic!("{e}"),
        }
    };
    let (st, b) = crate::support::post(
        &server,
        "/v1/streams/empty/events",
        Some(&key),
        &serde_json::json!([]),
    );
    crate::support::assert_error(st, &b, 422, "validation_failed");
    assert!(b["message"].as_str().unwrap().contains("events"), "{b}");
    let (st, _) = crate::support::get(&server, "/v1/streams/empty", Some(&key));
    assert_eq!(st, 404, "the empty batch created nothing");

    let events = serde_json::json!([{"path": "/", "ms": 20}]);
    let (st, fresh, first) = send("/v1/streams/web/events", Some("once-1"), &events);
    assert_eq!((st, fresh), (200, None), "{first}");
    let (st, replayed, again) = send("/v1/streams/web/events", Some("once-1"), &events);
    assert_eq!((st, replayed.as_deref()), (200, Some("true")));
    assert_eq!(again, first);
    // An empty batch to a stream that exists is answered, and counts nothing.
    let (st, _, b) = send("/v1/streams/web/events", None, &serde_json::json!([]));
    assert_eq!((st, b["totals"]["events"].as_u64()), (200, Some(0)), "{b}");

    let m = crate::support::post(
        &server,
        "/v1/monitors",
        Some(&key),
        &serde_json::json!({"name": "m"}),
    )
    .1;
    let path = format!("/v1/monitors/{}/points", m["id"].as_str().unwrap());
    let points = serde_json::json!({"points": [{"timestamp": 1_700_000_000, "value": 1.0}]});
    let (_, fresh, _) = send(&path, Some("p-1"), &points);
    let (_, replayed, _) = send(&path, Some("p-1"), &points);
    assert_eq!((fresh, replayed.as_deref()), (None, Some("true")));
}
