//! The Monitor API against the running binary: the same scores as `driftlock score` on a NAB
//! file, stored anomalies with explanations, signed webhooks retried until the receiver takes
//! them exactly once, one notification per episode, and state and pending deliveries kept
//! across a restart.

use std::path::Path;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::support::{
    assert_error, free_port, get, org_with_key, post, send, start, start_with, wait_for, Receiver,
    Server, BIN,
};

const NAB_FILE: &str = "artificialWithAnomaly/art_daily_jumpsup.csv";

fn nab_rows() -> Vec<(String, f64)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/nab-dev")
        .join(NAB_FILE);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .map(|l| {
            let (t, v) = l.split_once(',').unwrap();
            (t.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn create_monitor(server: &Server, key: &str, body: Value) -> Value {
    let (s, m) = post(server, "/v1/monitors", Some(key), &body);
    assert_eq!(s, 201, "{m}");
    m
}

fn send_points(server: &Server, key: &str, id: &str, points: &[Value]) -> Value {
    let (s, r) = post(
        server,
        &format!("/v1/monitors/{id}/points"),
        Some(key),
        &json!({"points": points}),
    );
    assert_eq!(s, 200, "{r}");
    r
}

/// A quiet daily-ish wave, then one huge spike at `spike` (epoch seconds, 5-minute steps).
fn wave_with_spikes(n: usize, spikes: &[usize]) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let base = 50.0
                + 10.0 * ((i as f64) * std::f64::consts::TAU / 288.0).sin()
                + ((i * 7919) % 13) as f64 * 0.1;
            let value = if spikes.contains(&i) { 5_000.0 } else { base };
            json!({"timestamp": 1_700_000_000 + 300 * i as i64, "value": value})
        })
        .collect()
}

#[test]
fn a_monitor_fed_a_nab_file_scores_like_driftlock_score() {
    let rows = nab_rows();
    let dir = tempfile::tempdir().unwrap();
    let input = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/nab-dev")
        .join(NAB_FILE);
    let output = dir.path().join("scored.csv");
    let ok = std::process::Command::new(BIN)
        .args(["score", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let scored: Vec<(String, String)> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[2].to_string(), f[3].to_string())
        })
        .collect();
    assert_eq!(scored.len(), rows.len());

    let server = start_with(
        &dir.path().join("data"),
        &["--rate-limit-per-sec", "0"],
        &[],
    );
    let admin = server.admin_token();
    let (org, key, _) = org_with_key(&server, &admin, "Acme");
    let (s, _) = send(
        ureq::put(&server.url(&format!("/v1/admin/orgs/{org}/plan")))
            .set("Authorization", &format!("Bearer {admin}")),
        Some(&json!({"plan": "growth"})),
    );
    assert_eq!(s, 200);
    let monitor = create_monitor(&server, &key, json!({"name": "jumps up"}));
    let id = monitor["id"].as_str().unwrap();
    let mut flagged = 0;
    for (chunk_no, chunk) in rows.chunks(1000).enumerate() {
        let points: Vec<Value> = chunk
            .iter()
            .map(|(t, v)| json!({"timestamp": t, "value": v}))
            .collect();
        let answer = send_points(&server, &key, id, &points);
        for (i, r) in answer["results"].as_array().unwrap().iter().enumerate() {
            let row = chunk_no * 1000 + i;
            // A detection shows the same score `driftlock score` gives; other points none.
            if r["anomaly"] == true {
                assert_eq!(
                    format!("{:.6}", r["score"].as_f64().unwrap()),
                    scored[row].0,
                    "score of row {row}"
                );
            } else {
                assert!(r.get("score").is_none(), "row {row}: {r}");
            }
            assert_eq!(
                if r["anomaly"] == true { "1" } else { "0" },
                scored[row].1,
                "flag of row {row}"
            );
            flagged += usize::from(r["anomaly"] == true);
        }
    }
    assert!(flagged > 0, "the jump should be flagged");
    let (_, anomalies) = get(
        &server,
        &format!("/v1/monitors/{id}/anomalies?limit=500"),
        Some(&key),
    );
    let items = anomalies["items"].as_array().unwrap();
    assert_eq!(items.len(), flagged);
    for a in items {
        assert!(
            a["explanation"]["summary"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{a}"
        );
        assert!(
            a["explanation"]["expected_low"].is_number()
                && a["explanation"]["observed"].is_number(),
            "{a}"
        );
    }
    let (_, m) = get(&server, &format!("/v1/monitors/{id}"), Some(&key));
    assert_eq!(
        (m["status"].as_str(), m["points_seen"].as_u64()),
        (Some("healthy"), Some(rows.len() as u64))
    );
    let (_, series) = get(
        &server,
        &format!("/v1/monitors/{id}/series?max_points=200"),
        Some(&key),
    );
    assert!(series["downsampled"] == true && series["points"].as_array().unwrap().len() <= 200);
    let (_, usage) = get(&server, "/v1/usage", Some(&key));
    assert_eq!(
        usage["total_calls"].as_u64(),
        Some(flagged as u64),
        "one detection per anomaly point"
    );
}

fn verify_signature(secret: &str, received: &crate::support::Received) {
    let header = received
        .header("Driftlock-Signature")
        .expect("signature header");
    let (t, v1) = header.split_once(",v1=").unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&received.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "signature must verify");
    let age = crate::test_clock::now() - t.parse::<i64>().unwrap();
    assert!((0..300).contains(&age));
}

#[test]
fn a_webhook_that_fails_twice_is_delivered_exactly_once_and_signed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(
        dir.path(),
        &[
            "--webhook-retry-base-ms",
            "100",
            "--webhook-poll-ms",
            "50",
            "--webhook-allow-cidr",
            "127.0.0.0/8",
        ],
        &[],
    );
    let admin = server.admin_token();
    let (_, key, _) = org_with_key(&server, &admin, "Acme");
    let receiver = Receiver::start(0, 2);
    let points = wave_with_spikes(600, &[500, 503]);
    let monitor = create_monitor(&server, &key, json!({"name": "latency"}));
    let id = monitor["id"].as_str().unwrap();
    // The baseline is learnt before anyone listens, so only the spikes can notify.
    send_points(&server, &key, id, &points[..400]);
    let (s, monitor) = send(
        ureq::patch(&server.url(&format!("/v1/monitors/{id}")))
            .set("Authorization", &format!("Bearer {key}")),
        Some(
            &json!({"notifications": {"webhooks": [format!("http://127.0.0.1:{}/hook", receiver.port)], "emails": ["oncall@acme.example"]}}),
        ),
    );
    assert_eq!(s, 200, "{monitor}");
    let secret = monitor["webhooks"][0]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(secret.starts_with("whsec_"));
    let (_, again) = get(&server, &format!("/v1/monitors/{id}"), Some(&key));
    assert!(
        again["webhooks"][0].get("secret").is_none(),
        "the secret is shown once"
    );

    // Two spikes three points apart are one episode: one notification.
    let answer = send_points(&server, &key, id, &points[400..]);
    let flagged: Vec<u64> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["anomaly"] == true)
        .map(|r| r["index"].as_u64().unwrap() + 400)
        .collect();
    assert!(flagged.contains(&500), "the spike is flagged: {flagged:?}");
    assert!(
        flagged.iter().all(|i| (500..534).contains(i)),
        "only the spike episode: {flagged:?}"
    );

    let delivered = wait_for(30, "a delivered webhook", || {
        let ok: Vec<_> = receiver
            .received()
            .into_iter()
            .filter(|r| r.answered == 200)
            .collect();
        (!ok.is_empty()).then_some(ok)
    });
    std::thread::sleep(std::time::Duration::from_millis(600));
    let all = receiver.received();
    assert_eq!(
        all.iter().filter(|r| r.answered == 200).count(),
        1,
        "exactly one successful delivery"
    );
    assert_eq!(all.len(), 3, "two failures, then the success");
    assert!(all
        .iter()
        .all(|r| r.header("Driftlock-Delivery") == all[0].header("Driftlock-Delivery")));
    verify_signature(&secret, &delivered[0]);
    let body: Value = serde_json::from_slice(&delivered[0].body).unwrap();
    assert_eq!(body["type"], "monitor.anomaly");
    assert_eq!(body["monitor"]["id"], id);
    assert!(body["explanation"]["summary"].is_string());
    // The notification names the stored anomaly, which a client can then acknowledge.
    let path = body["anomaly_path"].as_str().unwrap();
    let (s, stored) = get(&server, path, Some(&key));
    assert_eq!(s, 200, "{stored}");
    assert_eq!(stored["id"], body["anomaly_id"]);
    assert_eq!(stored["value"], body["value"]);
    assert_eq!(stored["status"], "open");
    // ... and give feedback on, at the path it names.
    let feedback = body["feedback_path"].as_str().unwrap();
    assert_eq!(feedback, format!("{path}/feedback"));
    let (s, given) = crate::support::post(
        &server,
        feedback,
        Some(&key),
        &json!({"verdict": "confirmed"}),
    );
    assert_eq!(
        (s, given["verdict"].as_str()),
        (200, Some("confirmed")),
        "{given}"
    );

    let (_, deliveries) = get(
        &server,
        &format!("/v1/monitors/{id}/deliveries"),
        Some(&key),
    );
    let items = deliveries["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0]["status"].as_str(), items[0]["attempts"].as_u64()),
        (Some("delivered"), Some(3))
    );
    let (_, outbox) = get(&server, "/v1/admin/outbox/email", Some(&admin));
    let mails: Vec<&Value> = outbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "monitor_anomaly")
        .collect();
    assert_eq!(mails.len(), 1, "one email per episode");
    assert_eq!(mails[0]["to"], "oncall@acme.example");
}

#[test]
fn restart_keeps_monitor_state_and_pending_deliveries() {
    let first = wave_with_spikes(500, &[450]);
    let second: Vec<Value> = wave_with_spikes(700, &[650]).split_off(500);
    let port = free_port();

    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--webhook-retry-base-ms",
        "100",
        "--webhook-poll-ms",
        "50",
        "--webhook-allow-cidr",
        "127.0.0.0/8",
    ];
    let mut server = start_with(dir.path(), &args, &[]);
    let admin = server.admin_token();
    let (_, key, _) = org_with_key(&server, &admin, "Acme");
    let monitor = create_monitor(
        &server,
        &key,
        json!({"name": "m", "notifications": {"webhooks": [format!("http://127.0.0.1:{port}/")]}}),
    );
    let id = monitor["id"].as_str().unwrap().to_string();
    send_points(&server, &key, &id, &first);
    wait_for(20, "a failed attempt", || {
        let (_, d) = get(
            &server,
            &format!("/v1/monitors/{id}/deliveries"),
            Some(&key),
        );
        (d["items"][0]["attempts"].as_u64() >= Some(1)).then_some(())
    });
    server.stop_with("TERM");

    let receiver = Receiver::start(port, 0);
    let server = start_with(dir.path(), &args, &[]);
    let restarted = send_points(&server, &key, &id, &second);
    wait_for(30, "the pending delivery after the restart", || {
        receiver
            .received()
            .iter()
            .any(|r| r.answered == 200)
            .then_some(())
    });

    // A server that never stopped gives the same verdicts.
    let dir2 = tempfile::tempdir().unwrap();
    let server2 = start(dir2.path());
    let (_, key2, _) = org_with_key(&server2, &server2.admin_token(), "Acme");
    let m2 = create_monitor(&server2, &key2, json!({"name": "m"}));
    let id2 = m2["id"].as_str().unwrap();
    send_points(&server2, &key2, id2, &first);
    let continuous = send_points(&server2, &key2, id2, &second);
    assert_eq!(restarted["results"], continuous["results"]);
}

#[test]
fn bad_points_and_paused_monitors() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let admin = server.admin_token();
    let (_, key, _) = org_with_key(&server, &admin, "Acme");
    let m = create_monitor(&server, &key, json!({"name": "m", "sensitivity": 0.7}));
    let id = m["id"].as_str().unwrap();
    assert_eq!(m["sensitivity"], 0.7);
    assert_eq!(m["status"], "warming_up");

    let (s, b) = post(
        &server,
        &format!("/v1/monitors/{id}/points"),
        Some(&key),
        &json!({"points": [{"timestamp": "yesterday", "value": 1}]}),
    );
    assert_error(s, &b, 422, "invalid_event");
    let (s, one) = post(
        &server,
        &format!("/v1/monitors/{id}/points"),
        Some(&key),
        &json!({"timestamp": "2026-01-01T00:00:00Z", "value": 1.5}),
    );
    assert_eq!((s, one["accepted"].as_u64()), (200, Some(1)), "{one}");
    let r = send_points(
        &server,
        &key,
        id,
        &[
            json!({"timestamp": "2025-12-31T23:00:00Z", "value": 2}),
            json!({"timestamp": 1_767_225_600, "value": 2}),
        ],
    );
    assert_eq!(r["results"][0]["accepted"], false, "out of order");
    assert_eq!(
        r["results"][1]["accepted"], false,
        "duplicate of the first point"
    );
    assert!(r["results"][0]["rejected_reason"]
        .as_str()
        .unwrap()
        .contains("out of order"));

    let (s, b) = post(
        &server,
        "/v1/monitors",
        Some(&key),
        &json!({"name": "x", "sensitivity": 2}),
    );
    assert_error(s, &b, 422, "validation_failed");
    let (s, b) = post(
        &server,
        "/v1/monitors",
        Some(&key),
        &json!({"name": "x", "detector": {"nonsense": 1}}),
    );
    assert_error(s, &b, 422, "validation_failed");
    let (s, b) = post(
        &server,
        "/v1/monitors",
        Some(&key),
        &json!({"name": "x", "notifications": {"webhooks": ["ftp://x"]}}),
    );
    assert_error(s, &b, 422, "validation_failed");

    let (s, p) = post(
        &server,
        &format!("/v1/monitors/{id}/pause"),
        Some(&key),
        &json!({}),
    );
    assert_eq!((s, p["status"].as_str()), (200, Some("paused")));
    let (s, b) = post(
        &server,
        &format!("/v1/monitors/{id}/points"),
        Some(&key),
        &json!({"timestamp": 1_900_000_000, "value": 1}),
    );
    assert_error(s, &b, 409, "conflict");
    let (s, _) = post(
        &server,
        &format!("/v1/monitors/{id}/resume"),
        Some(&key),
        &json!({}),
    );
    assert_eq!(s, 200);
    let (s, _) = post(
        &server,
        &format!("/v1/monitors/{id}/points"),
        Some(&key),
        &json!({"timestamp": 1_900_000_000, "value": 1}),
    );
    assert_eq!(s, 200);

    let (s, u) = send(
        ureq::patch(&server.url(&format!("/v1/monitors/{id}")))
            .set("Authorization", &format!("Bearer {key}")),
        Some(&json!({"name": "renamed"})),
    );
    assert_eq!(
        (s, u["name"].as_str(), u["points_seen"].as_u64()),
        (200, Some("renamed"), Some(2))
    );
    let (_, list) = get(&server, "/v1/monitors", Some(&key));
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (s, _) = crate::support::delete(&server, &format!("/v1/monitors/{id}"), Some(&key));
    assert_eq!(s, 200);
    let (s, b) = get(&server, &format!("/v1/monitors/{id}"), Some(&key));
    assert_error(s, &b, 404, "not_found");
}

/// Webhooks cannot reach inside the operator's network: internal addresses in any spelling
/// are refused when saved, a saved one is refused again at connect time once the operator's
/// allow-list no longer covers it, the tenant reads no socket error, and a redirect is a
/// failed delivery, not a delivered one.
#[test]
fn webhooks_cannot_reach_inside_the_network_and_a_redirect_is_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let quick = ["--webhook-retry-base-ms", "100", "--webhook-poll-ms", "50"];
    let server = start_with(dir.path(), &quick, &[]);
    let (_, key, _) = org_with_key(&server, &server.admin_token(), "Acme");
    for url in [
        "http://127.0.0.1:9/",
        "http://localhost:9/",
        "http://2130706433/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.8/",
        "http://192.168.0.1/",
        "http://[fd00::1]/",
        "http://0.0.0.0/",
    ] {
        let (s, b) = post(
            &server,
            "/v1/monitors",
            Some(&key),
            &json!({"name": "m", "notifications": {"webhooks": [url]}}),
        );
        assert_error(s, &b, 422, "validation_failed");
        assert!(
            b["message"]
                .as_str()
                .unwrap()
                .contains("notifications.webhooks"),
            "{url}: {b}"
        );
    }
    drop(server);

    // Allowed by the operator: saved. A receiver that redirects is not delivered to.
    let redirecting = Receiver::start_answering(0, 302);
    let allow = [&quick[..], &["--webhook-allow-cidr", "127.0.0.0/8"]].concat();
    let mut server = start_with(dir.path(), &allow, &[]);
    let spike = wave_with_spikes(500, &[450]);
    let monitor = create_monitor(
        &server,
        &key,
        json!({"name": "r", "notifications": {"webhooks": [format!("http://127.0.0.1:{}/", redirecting.port)]}}),
    );
    let id = monitor["id"].as_str().unwrap().to_string();
    send_points(&server, &key, &id, &spike);
    let deliveries = |server: &Server, id: &str| {
        get(server, &format!("/v1/monitors/{id}/deliveries"), Some(&key)).1["items"][0].clone()
    };
    let first = wait_for(20, "a failed attempt at the redirecting receiver", || {
        let d = deliveries(&server, &id);
        (d["attempts"].as_u64() >= Some(1)).then_some(d)
    });
    assert_ne!(first["status"], "delivered", "{first}");
    assert!(
        first["last_error"].as_str().unwrap().contains("302"),
        "{first}"
    );
    server.stop_with("TERM");

    // The allow-list is gone after a restart: the saved webhook is refused at connect time,
    // and the tenant reads the policy, not a socket error.
    let listening = Receiver::start(0, 0);
    let server = start_with(dir.path(), &allow, &[]);
    let m2 = create_monitor(
        &server,
        &key,
        json!({"name": "s", "notifications": {"webhooks": [format!("http://127.0.0.1:{}/", listening.port)]}}),
    );
    let id2 = m2["id"].as_str().unwrap().to_string();
    drop(server);
    let server = start_with(dir.path(), &quick, &[]);
    send_points(&server, &key, &id2, &spike);
    let refused = wait_for(20, "a refused attempt", || {
        let d = deliveries(&server, &id2);
        (d["attempts"].as_u64() >= Some(1)).then_some(d)
    });
    let error = refused["last_error"].as_str().unwrap();
    assert!(
        error.contains("destination refused") && error.contains("loopback"),
        "{refused}"
    );
    assert!(!error.contains("os error"), "{refused}");
    assert!(
        listening.received().is_empty(),
        "nothing reached the receiver"
    );
}

/// One organization's hanging receivers do not hold up another's deliveries: deliveries run
/// concurrently, at most two of one organization at a time.
#[test]
fn one_orgs_hanging_receivers_do_not_delay_another_orgs_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(
        dir.path(),
        &[
            "--webhook-poll-ms",
            "50",
            "--webhook-allow-cidr",
            "127.0.0.0/8",
        ],
        &[],
    );
    let admin = server.admin_token();
    // A receiver that accepts connections and never answers (the delivery times out).
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hanging_port = hanging.local_addr().unwrap().port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let held2 = held.clone();
    std::thread::spawn(move || {
        for conn in hanging.incoming().take(50).flatten() {
            held2.lock().unwrap().push(conn);
        }
    });
    let good = Receiver::start(0, 0);
    let spike = wave_with_spikes(500, &[450]);

    let (_, slow_key, _) = org_with_key(&server, &admin, "Slow");
    for i in 0..5 {
        let m = create_monitor(
            &server,
            &slow_key,
            json!({"name": format!("s{i}"), "notifications": {"webhooks": [format!("http://127.0.0.1:{hanging_port}/")]}}),
        );
        send_points(&server, &slow_key, m["id"].as_str().unwrap(), &spike);
    }
    let (_, key, _) = org_with_key(&server, &admin, "Acme");
    let m = create_monitor(
        &server,
        &key,
        json!({"name": "fast", "notifications": {"webhooks": [format!("http://127.0.0.1:{}/", good.port)]}}),
    );
    let started = std::time::Instant::now();
    send_points(&server, &key, m["id"].as_str().unwrap(), &spike);
    wait_for(8, "the other org's webhook", || {
        (!good.received().is_empty()).then_some(())
    });
    eprintln!(
        "figures: delivered {:?} after its anomaly, behind 5 hanging receivers of another org",
        started.elapsed()
    );
}
