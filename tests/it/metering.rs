//! Metering against the running binary: the runbook's tests 3-5, exact counters under 64
//! concurrent clients, no lost detection after `kill -9`, meter-usage idempotency, rate
//! limits distinct from quota, and the billing actions log.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::support::{assert_error, get, post, send, service_key, start, start_with, Server};

struct Fixture {
    admin: String,
    org: String,
    org_key: String,
    service: String,
}

fn fixture(server: &Server, plan: &str) -> Fixture {
    let admin = server.admin_token();
    let (s, org) = post(
        server,
        "/v1/admin/orgs",
        Some(&admin),
        &json!({"name": "Metered", "plan": plan, "billing_email": "billing@metered.example"}),
    );
    assert_eq!(s, 201, "{org}");
    let org = org["id"].as_str().unwrap().to_string();
    let (_, key) = post(
        server,
        &format!("/v1/admin/orgs/{org}/keys"),
        Some(&admin),
        &json!({"name": "k"}),
    );
    let service = service_key(server, &admin);
    Fixture {
        org_key: key["secret"].as_str().unwrap().to_string(),
        service,
        admin,
        org,
    }
}

fn meter(server: &Server, f: &Fixture, anomaly: bool, count: u64) -> (u16, Value) {
    post(
        server,
        "/v1/meter-usage",
        Some(&f.service),
        &json!({"organization_id": f.org, "anomaly": anomaly, "count": count}),
    )
}

fn alerts(server: &Server, f: &Fixture) -> Vec<Value> {
    let (s, outbox) = get(server, "/v1/admin/outbox/email?limit=500", Some(&f.admin));
    assert_eq!(s, 200);
    outbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["organization_id"] == f.org.as_str() && e["kind"] == "usage_alert")
        .cloned()
        .collect()
}

/// (period start in epoch ms, detections counted) of every period the org has, newest first.
fn usage_by_period(server: &Server, f: &Fixture) -> Vec<(i64, u64)> {
    let (s, history) = get(server, "/v1/usage/history?limit=500", Some(&f.org_key));
    assert_eq!(s, 200, "{history}");
    history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let start = crate::test_clock::parse_instant(p["period_start"].as_str().unwrap());
            (start.unwrap() * 1000, p["total_calls"].as_u64().unwrap())
        })
        .collect()
}

/// Each period has exactly the alerts its own count crossed on the load-test plan (70%, 90%,
/// 100% of 20,000), once each.
fn assert_each_period_alerted_once(server: &Server, f: &Fixture, periods: &[(i64, u64)]) {
    let alerts = alerts(server, f);
    for (start_ms, total) in periods {
        let mut got: Vec<u64> = alerts
            .iter()
            .filter(|e| e["params"]["period_start_ms"].as_i64() == Some(*start_ms))
            .map(|e| e["params"]["threshold_percent"].as_u64().unwrap())
            .collect();
        got.sort();
        let want: Vec<u64> = [(70, 14_000), (90, 18_000), (100, 20_000)]
            .iter()
            .filter(|(_, at)| total >= at)
            .map(|(pct, _)| *pct)
            .collect();
        assert_eq!(
            got, want,
            "each alert exactly once in period {start_ms} ({total} used)"
        );
    }
    assert_eq!(
        alerts.len(),
        periods
            .iter()
            .map(|(_, t)| [14_000, 18_000, 20_000].iter().filter(|a| t >= a).count())
            .sum::<usize>(),
        "no alert outside a period"
    );
}

fn thresholds(server: &Server, f: &Fixture) -> Vec<u64> {
    let mut t: Vec<u64> = alerts(server, f)
        .iter()
        .map(|e| e["params"]["threshold_percent"].as_u64().unwrap())
        .collect();
    t.sort();
    t
}

#[test]
fn runbook_tests_3_4_5() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let f = fixture(&server, "standard");

    // Test 3: a call that found no anomaly changes nothing.
    let (s, b) = meter(&server, &f, false, 1_000);
    assert_eq!(
        (s, b["counted"].as_u64(), b["usage"]["total_calls"].as_u64()),
        (200, Some(0), Some(0)),
        "{b}"
    );

    // Test 4: 175,000 of 250,000 sends the 70% alert; 250,000 sends the 100% alert.
    let (s, b) = meter(&server, &f, true, 174_999);
    assert_eq!(s, 200, "{b}");
    assert!(alerts(&server, &f).is_empty());
    meter(&server, &f, true, 1);
    let sent = alerts(&server, &f);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["to"], "billing@metered.example");
    assert_eq!(sent[0]["status"], "pending");
    assert_eq!(sent[0]["params"]["threshold_percent"], 70);
    assert_eq!(sent[0]["params"]["used"], 175_000);
    meter(&server, &f, true, 75_000);
    assert_eq!(thresholds(&server, &f), vec![70, 100]);
    let (_, usage) = get(&server, "/v1/usage", Some(&f.org_key));
    assert_eq!(
        (
            usage["total_calls"].as_u64(),
            usage["percent_used"].as_f64()
        ),
        (Some(250_000), Some(100.0))
    );
    assert_eq!(usage["alerts_sent"], json!([70, 100]));

    // Test 5: at 121% a soft-capped org (cap 120%) gets 429 on detection calls.
    let (s, b) = meter(&server, &f, true, 52_500);
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["usage"]["total_calls"], 302_500);
    assert_eq!(b["usage"]["overage_calls"], 52_500);
    assert_eq!(
        b["usage"]["estimated_charges_cents"], 18_375,
        "52,500 x $0.0035"
    );
    let (s, b) = meter(&server, &f, true, 1);
    assert_eq!(
        (s, b["code"].as_str()),
        (429, Some("quota_exceeded")),
        "{b}"
    );
    let (s, b) = post(
        &server,
        "/v1/streams/s/events",
        Some(&f.org_key),
        &json!([{"a": 1}]),
    );
    assert_eq!(
        (s, b["code"].as_str()),
        (429, Some("quota_exceeded")),
        "{b}"
    );
    assert_eq!(thresholds(&server, &f), vec![70, 100, 120]);
    let (_, usage) = get(&server, "/v1/usage", Some(&f.org_key));
    assert_eq!(
        (usage["total_calls"].as_u64(), usage["over_limit"].as_bool()),
        (Some(302_500), Some(true))
    );
    // anomaly: false is still accepted and counts nothing.
    let (s, b) = meter(&server, &f, false, 1);
    assert_eq!((s, b["counted"].as_u64()), (200, Some(0)));
}

/// Runs `clients` threads that meter random counts until `stop` or the deadline; returns the
/// sum of acknowledged detections and the largest count a request can carry.
fn metering_load(
    server: &Server,
    f: &Fixture,
    clients: usize,
    duration: Duration,
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicU64>, Vec<std::thread::JoinHandle<()>>) {
    let acknowledged = Arc::new(AtomicU64::new(0));
    let handles = (0..clients)
        .map(|c| {
            let url = server.url("/v1/meter-usage");
            let (service, org) = (f.service.clone(), f.org.clone());
            let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(10))
                    .build();
                let deadline = Instant::now() + duration;
                let mut x = c as u64 + 1;
                for _ in 0..100_000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    x = x
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let count = 1 + (x >> 33) % 20;
                    let resp = agent
                        .post(&url)
                        .set("Authorization", &format!("Bearer {service}"))
                        .send_json(
                            json!({"organization_id": org, "anomaly": true, "count": count}),
                        );
                    match resp {
                        Ok(r) if r.status() == 200 => {
                            acknowledged.fetch_add(count, Ordering::SeqCst);
                        }
                        Ok(r) => panic!("unexpected status {}", r.status()),
                        Err(ureq::Error::Status(code, r)) => {
                            panic!("{code}: {}", r.into_string().unwrap())
                        }
                        Err(_) => break, // the server went away
                    }
                }
            })
        })
        .collect();
    (acknowledged, handles)
}

/// A small plan that sells overage, so the load crosses 70% and 100% and is never refused.
fn small_overage_plan(server: &Server, admin: &str, f: &Fixture) {
    let put = |path: &str, body: Value| {
        send(
            ureq::put(&server.url(path)).set("Authorization", &format!("Bearer {admin}")),
            Some(&body),
        )
    };
    let (s, b) = put(
        "/v1/admin/plans/load-test",
        json!({"name": "Load test", "monthly_price_cents": 100, "included_detections": 20_000, "overage_millicents": 100}),
    );
    assert_eq!(s, 200, "{b}");
    let (s, b) = put(
        &format!("/v1/admin/orgs/{}/plan", f.org),
        json!({"plan": "load-test"}),
    );
    assert_eq!(s, 200, "{b}");
    let (s, b) = put(
        &format!("/v1/admin/orgs/{}/quota-policy", f.org),
        json!({"behavior_on_exceed": "allow_overage", "cap_percent": 120, "invoice_threshold_cents": 50_000, "alert_at_90": true}),
    );
    assert_eq!(s, 200, "{b}");
}

#[test]
fn sixty_four_concurrent_clients_are_counted_exactly_and_alerted_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), &["--rate-limit-per-sec", "0"], &[]);
    let f = fixture(&server, "standard");
    small_overage_plan(&server, &f.admin, &f);

    // Driven by volume, not by time: the clients run until they are past 120% of the plan
    // (every alert crossed), at most 60 s, however loaded the machine is.
    let stop = Arc::new(AtomicBool::new(false));
    let (acknowledged, handles) =
        metering_load(&server, &f, 64, Duration::from_secs(60), stop.clone());
    let t0 = Instant::now();
    while acknowledged.load(Ordering::SeqCst) < 24_000 && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let acknowledged = acknowledged.load(Ordering::SeqCst);
    let elapsed = t0.elapsed();
    // The load may cross a month end (the dated runs start it seconds before one): the
    // counters of all periods add up to what was acknowledged, and each period has exactly
    // the alerts its own count crossed, once each.
    let periods = usage_by_period(&server, &f);
    assert_eq!(
        periods.iter().map(|(_, total)| total).sum::<u64>(),
        acknowledged,
        "counters equal the acknowledged sum: {periods:?}"
    );
    assert!(
        acknowledged >= 20_000,
        "the load ({acknowledged}) should pass 100% of 20,000"
    );
    assert_each_period_alerted_once(&server, &f, &periods);
    eprintln!(
        "metering load: {acknowledged} detections acknowledged by 64 clients in {:.1} s",
        elapsed.as_secs_f64()
    );
}

#[test]
fn kill_9_under_metering_load_loses_no_acknowledged_detection() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_with(dir.path(), &["--rate-limit-per-sec", "0"], &[]);
    let f = fixture(&server, "standard");
    small_overage_plan(&server, &f.admin, &f);

    let stop = Arc::new(AtomicBool::new(false));
    let (acknowledged, handles) =
        metering_load(&server, &f, 64, Duration::from_secs(20), stop.clone());
    let t0 = Instant::now();
    while acknowledged.load(Ordering::SeqCst) < 25_000 && t0.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.stop_with("KILL");
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let acknowledged = acknowledged.load(Ordering::SeqCst);

    let server = start_with(dir.path(), &["--rate-limit-per-sec", "0"], &[]);
    // All periods together (the load may cross a month end in the dated runs).
    let periods = usage_by_period(&server, &f);
    let total: u64 = periods.iter().map(|(_, t)| t).sum();
    // Requests in flight at the kill may have committed without being acknowledged: at most
    // one per client, 20 detections each.
    assert!(
        total >= acknowledged,
        "lost detections: stored {total} < acknowledged {acknowledged}"
    );
    assert!(
        total <= acknowledged + 64 * 20,
        "stored {total} far above acknowledged {acknowledged}"
    );
    assert_each_period_alerted_once(&server, &f, &periods);
}

#[test]
fn meter_usage_idempotency_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let f = fixture(&server, "standard");
    let body =
        json!({"organization_id": f.org, "anomaly": true, "count": 7, "idempotency_key": "job-42"});
    let (s, first) = post(&server, "/v1/meter-usage", Some(&f.service), &body);
    assert_eq!(
        (s, first["replayed"].as_bool()),
        (200, Some(false)),
        "{first}"
    );
    let (s, again) = post(&server, "/v1/meter-usage", Some(&f.service), &body);
    assert_eq!(
        (s, again["replayed"].as_bool(), again["counted"].as_u64()),
        (200, Some(true), Some(7))
    );
    assert_eq!(again["usage"]["total_calls"], 7, "counted once");
    let other =
        json!({"organization_id": f.org, "anomaly": true, "count": 8, "idempotency_key": "job-42"});
    let (s, b) = post(&server, "/v1/meter-usage", Some(&f.service), &other);
    assert_error(s, &b, 409, "idempotency_key_reused");

    // A call that reaches the quota limit is answered the same way when retried: the retry
    // is not refused with 429 as if nothing had been counted (developer plan, soft cap 120%).
    let capped = fixture(&server, "developer");
    let to_the_cap = json!({"organization_id": capped.org, "anomaly": true, "count": 12_000, "idempotency_key": "fill"});
    let (s, first) = post(&server, "/v1/meter-usage", Some(&f.service), &to_the_cap);
    assert_eq!((s, &first["replayed"]), (200, &json!(false)), "{first}");
    let (s, again) = post(&server, "/v1/meter-usage", Some(&f.service), &to_the_cap);
    assert_eq!(
        (s, &again["replayed"], &again["usage"]["total_calls"]),
        (200, &json!(true), &json!(12_000)),
        "{again}"
    );
    let fresh = json!({"organization_id": capped.org, "anomaly": true, "count": 1, "idempotency_key": "new"});
    let (s, b) = post(&server, "/v1/meter-usage", Some(&f.service), &fresh);
    assert_eq!((s, &b["code"]), (429, &json!("quota_exceeded")), "{b}");

    // Scopes and validation.
    let (s, b) = post(&server, "/v1/meter-usage", Some(&f.org_key), &body);
    assert_error(s, &b, 403, "forbidden");
    let zero = json!({"organization_id": f.org, "anomaly": true, "count": 0});
    let (s, b) = post(&server, "/v1/meter-usage", Some(&f.service), &zero);
    assert_error(s, &b, 422, "validation_failed");
    let missing = json!({"organization_id": "org_missing", "anomaly": true});
    let (s, b) = post(&server, "/v1/meter-usage", Some(&f.service), &missing);
    assert_error(s, &b, 404, "not_found");
}

#[test]
fn rate_limits_answer_429_rate_limited_per_organization() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(
        dir.path(),
        &["--rate-limit-per-sec", "1", "--rate-limit-burst", "2"],
        &[],
    );
    let f = fixture(&server, "standard");
    assert_eq!(meter(&server, &f, true, 1).0, 200);
    assert_eq!(meter(&server, &f, true, 1).0, 200);
    let resp = ureq::post(&server.url("/v1/meter-usage"))
        .set("Authorization", &format!("Bearer {}", f.service))
        .send_json(json!({"organization_id": f.org, "anomaly": true}));
    let Err(ureq::Error::Status(429, resp)) = resp else {
        panic!("expected 429")
    };
    assert_eq!(resp.header("Retry-After"), Some("1"));
    let body: Value = resp.into_json().unwrap();
    assert_error(429, &body, 429, "rate_limited");
    // The organization's own key shares its bucket; another organization has its own.
    let (s, _) = post(
        &server,
        "/v1/streams/s/events",
        Some(&f.org_key),
        &json!([{"a": 1}]),
    );
    assert_eq!(s, 429);
    let admin = server.admin_token();
    let (_, other_key, _) = crate::support::org_with_key(&server, &admin, "Other");
    let (s, _) = post(
        &server,
        "/v1/streams/s/events",
        Some(&other_key),
        &json!([{"a": 1}]),
    );
    assert_eq!(s, 200);
    let (_, usage) = get(&server, "/v1/usage", Some(&f.org_key));
    assert_eq!(usage["total_calls"], 2, "the refused calls counted nothing");
}

#[test]
fn plan_and_policy_changes_are_billing_actions_with_before_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let f = fixture(&server, "developer");
    meter(&server, &f, true, 9_000);
    let put = |path: String, body: Value| {
        send(
            ureq::put(&server.url(&path)).set("Authorization", &format!("Bearer {}", f.admin)),
            Some(&body),
        )
    };
    let (s, b) = put(
        format!("/v1/admin/orgs/{}/plan", f.org),
        json!({"plan": "standard"}),
    );
    assert_eq!((s, b["plan"].as_str()), (200, Some("standard")), "{b}");
    let (s, b) = put(
        format!("/v1/admin/orgs/{}/plan", f.org),
        json!({"plan": "platinum"}),
    );
    assert_error(s, &b, 404, "not_found");
    let policy = json!({"behavior_on_exceed": "hard_cap", "cap_percent": 150, "invoice_threshold_cents": 1000, "alert_at_90": true});
    let (s, b) = put(
        format!("/v1/admin/orgs/{}/quota-policy", f.org),
        policy.clone(),
    );
    assert_eq!(s, 200, "{b}");
    let (_, b) = get(
        &server,
        &format!("/v1/admin/orgs/{}/quota-policy", f.org),
        Some(&f.admin),
    );
    assert_eq!(b, policy);
    let (s, b) = put(
        format!("/v1/admin/orgs/{}/quota-policy", f.org),
        json!({"behavior_on_exceed": "soft_cap", "cap_percent": 50, "invoice_threshold_cents": 1000, "alert_at_90": true}),
    );
    assert_error(s, &b, 422, "validation_failed");

    let (_, usage) = get(&server, "/v1/usage", Some(&f.org_key));
    assert_eq!(
        (usage["total_calls"].as_u64(), usage["plan"].as_str()),
        (Some(9_000), Some("standard")),
        "usage kept"
    );

    let (_, actions) = get(
        &server,
        &format!("/v1/admin/billing-actions?org_id={}", f.org),
        Some(&f.admin),
    );
    let items = actions["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{actions}");
    assert_eq!(items[0]["action"], "quota_policy_changed");
    assert_eq!(items[0]["actor"], "admin");
    assert_eq!(
        items[0]["detail"]["before"]["behavior_on_exceed"],
        "soft_cap"
    );
    assert_eq!(
        items[0]["detail"]["after"]["behavior_on_exceed"],
        "hard_cap"
    );
    assert_eq!(items[1]["action"], "plan_changed");
    assert_eq!(
        (
            items[1]["detail"]["before"].as_str(),
            items[1]["detail"]["after"].as_str()
        ),
        (Some("developer"), Some("standard"))
    );

    let (_, plans) = get(&server, "/v1/admin/plans", Some(&f.admin));
    let ids: Vec<&str> = plans["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["developer", "standard", "growth"]);
}

/// A hard cap is hard on every path: a call whose detections would pass it is refused whole
/// (429, nothing kept), under concurrency too.
#[test]
fn a_hard_cap_is_never_passed_by_batches_concurrent_calls_or_large_counts() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), &["--rate-limit-per-sec", "0"], &[]);
    let f = fixture(&server, "developer");
    let (s, b) = send(
        ureq::put(&server.url(&format!("/v1/admin/orgs/{}/quota-policy", f.org)))
            .set("Authorization", &format!("Bearer {}", f.admin)),
        Some(
            &json!({"behavior_on_exceed": "hard_cap", "cap_percent": 120, "invoice_threshold_cents": 50_000, "alert_at_90": false}),
        ),
    );
    assert_eq!(s, 200, "{b}");
    let total = |server: &Server| {
        get(server, "/v1/usage", Some(&f.org_key)).1["total_calls"]
            .as_u64()
            .unwrap()
    };

    // One meter-usage call far past the cap: refused, nothing counted.
    assert_eq!(meter(&server, &f, true, 9_990).0, 200);
    let (s, b) = meter(&server, &f, true, 1_000_000);
    assert_eq!(
        (s, b["code"].as_str()),
        (429, Some("quota_exceeded")),
        "{b}"
    );
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("nothing of the call was kept"),
        "{b}"
    );
    assert_eq!(b["details"]["adding"], 1_000_000, "{b}");
    assert_eq!(total(&server), 9_990);

    // 16 concurrent calls of 5 at 9,990: exactly two fit.
    let results: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| scope.spawn(|| meter(&server, &f, true, 5).0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|s| **s == 200).count(),
        2,
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|s| **s == 429).count(),
        14,
        "{results:?}"
    );
    assert_eq!(total(&server), 10_000);

    // A stream batch whose anomalies would pass the cap is refused whole, its events unseen.
    let dir2 = tempfile::tempdir().unwrap();
    let server2 = start_with(dir2.path(), &["--rate-limit-per-sec", "0"], &[]);
    let f2 = fixture(&server2, "developer");
    send(
        ureq::put(&server2.url(&format!("/v1/admin/orgs/{}/quota-policy", f2.org)))
            .set("Authorization", &format!("Bearer {}", f2.admin)),
        Some(
            &json!({"behavior_on_exceed": "hard_cap", "cap_percent": 120, "invoice_threshold_cents": 50_000, "alert_at_90": false}),
        ),
    );
    assert_eq!(meter(&server2, &f2, true, 9_999).0, 200);
    let normal: Vec<Value> = (0..300)
        .map(|i| json!({"user": format!("u{}", i % 7), "status": 200, "ms": 20 + i % 11}))
        .collect();
    let (s, b) = post(
        &server2,
        "/v1/streams/api/events",
        Some(&f2.org_key),
        &json!(normal),
    );
    assert_eq!(s, 200, "{b}");
    let seen = get(&server2, "/v1/streams/api", Some(&f2.org_key)).1["events_seen"].clone();
    let odd: Vec<Value> = (0..20)
        .map(|i| json!({"user": format!("intruder{i}"), "status": 500 + i, "ms": 90_000 + i * 1_000, "path": format!("/admin/{i}")}))
        .collect();
    let (s, b) = post(
        &server2,
        "/v1/streams/api/events",
        Some(&f2.org_key),
        &json!(odd),
    );
    if s == 200 {
        // Only possible if at most one of them was an anomaly.
        assert!(b["detections_counted"].as_u64() <= Some(1), "{b}");
    } else {
        assert_eq!(
            (s, b["code"].as_str()),
            (429, Some("quota_exceeded")),
            "{b}"
        );
        let after = get(&server2, "/v1/streams/api", Some(&f2.org_key)).1["events_seen"].clone();
        assert_eq!(after, seen, "nothing of the refused batch was kept");
    }
    let used = get(&server2, "/v1/usage", Some(&f2.org_key)).1["total_calls"].as_u64();
    assert!(used <= Some(10_000), "{used:?}");
}
