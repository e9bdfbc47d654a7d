//! Issue 22: feedback on stored anomalies, on the binary. A `false_positive` disputes the
//! billed detection (exactly one detection leaves the period's usage, with a billing action
//! naming the anomaly and the actor) and makes a rule that suppresses the same event until the
//! rule is deleted; disputes beyond the plan's share wait for an operator, who decides them
//! through the admin API; `expected` restarts a monitor's baseline; the org-wide list pages
//! over streams and monitors; 64 clients disputing and ingesting at once leave usage equal to
//! detections minus accepted disputes.

use serde_json::{json, Value};

use crate::anomaly_status::stream_with_an_intruder;
use crate::support::{
    assert_error, delete, get, org_with_key, points_with_a_spike, post, send, start, Server,
};

pub const INTRUDER: &str = r#"{"user": "intruder", "status": 500, "ms": 98765}"#;

fn intruder() -> Value {
    serde_json::from_str(INTRUDER).unwrap()
}

fn total_calls(server: &Server, key: &str) -> (u64, u64) {
    let (s, usage) = get(server, "/v1/usage", Some(key));
    assert_eq!(s, 200, "{usage}");
    (
        usage["total_calls"].as_u64().unwrap(),
        usage["disputed_detections"].as_u64().unwrap(),
    )
}

fn feedback(server: &Server, path: &str, key: &str, verdict: &str) -> (u16, Value) {
    post(
        server,
        &format!("{path}/feedback"),
        Some(key),
        &json!({"verdict": verdict, "note": "deploy noise"}),
    )
}

fn put_share(server: &Server, admin: &str, percent: u32) {
    let (s, b) = send(
        ureq::put(&server.url("/v1/admin/plans/developer"))
            .set("Authorization", &format!("Bearer {admin}")),
        Some(
            &json!({"name": "Developer", "monthly_price_cents": 0, "included_detections": 10000,
                     "dispute_share_percent": percent}),
        ),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["dispute_share_percent"], percent, "{b}");
}

fn billing_actions(server: &Server, admin: &str, action: &str) -> Vec<Value> {
    let (_, list) = get(server, "/v1/admin/billing-actions?limit=500", Some(admin));
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == action)
        .cloned()
        .collect()
}

/// Posts `events` to `stream` as one batch; answers the verdicts (200 expected).
pub fn send_events(server: &Server, key: &str, stream: &str, events: &[Value]) -> Value {
    let (s, b) = post(
        server,
        &format!("/v1/streams/{stream}/events"),
        Some(key),
        &json!(events),
    );
    assert_eq!(s, 200, "{b}");
    b
}

#[test]
fn a_disputed_stream_detection_leaves_usage_once_and_its_rule_suppresses_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let admin = server.admin_token();
    let (org, key, key_id) = org_with_key(&server, &admin, "Acme");
    let id = stream_with_an_intruder(&server, &key, "web");
    let path = format!("/v1/streams/web/anomalies/{id}");
    // A rule is numbered by its anomaly: sr_12 is the rule of sa_12.
    let rule_id = id.replace("sa_", "sr_");
    let (counted, _) = total_calls(&server, &key);
    assert!(counted >= 1);

    let (s, b) = feedback(&server, &path, &key, "false_positive");
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["verdict"], "false_positive", "{b}");
    assert_eq!(b["dispute"]["status"], "accepted", "{b}");
    assert_eq!(b["rule_id"], rule_id.as_str(), "{b}");
    assert_eq!(total_calls(&server, &key), (counted - 1, 1));
    let accepted = billing_actions(&server, &admin, "dispute_accepted");
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(accepted[0]["detail"]["anomaly_id"], id.as_str());
    assert_eq!(accepted[0]["actor"], format!("key:{key_id}").as_str());
    assert_eq!(accepted[0]["organization_id"], org.as_str());

    // The same verdict again, and a change to `expected`, credit nothing more.
    let (s, b) = feedback(&server, &path, &key, "false_positive");
    assert_eq!(s, 200, "{b}");
    let (s, b) = feedback(&server, &path, &key, "expected");
    assert_error(s, &b, 409, "dispute_settled");
    assert_eq!(total_calls(&server, &key), (counted - 1, 1));
    assert_eq!(
        billing_actions(&server, &admin, "dispute_accepted").len(),
        1
    );
    let (_, shown) = get(&server, &path, Some(&key));
    assert_eq!(
        (shown["verdict"].as_str(), shown["dispute_status"].as_str()),
        (Some("false_positive"), Some("accepted")),
        "{shown}"
    );

    // The rule is listed, says what it matches, and suppresses the same event.
    let (s, rules) = get(&server, "/v1/streams/web/rules", Some(&key));
    assert_eq!(s, 200, "{rules}");
    let rule = &rules["items"][0];
    assert_eq!(rule["id"], rule_id.as_str(), "{rules}");
    assert_eq!(rule["anomaly_id"], id.as_str(), "{rules}");
    assert!(
        !rule["conditions"].as_array().unwrap().is_empty(),
        "{rules}"
    );
    let again = send_events(&server, &key, "web", &[intruder()]);
    assert_eq!(again["results"][0]["anomaly"], false, "{again}");
    assert_eq!(
        again["results"][0]["suppressed_by"],
        rule_id.as_str(),
        "{again}"
    );
    assert_eq!(total_calls(&server, &key).0, counted - 1, "not counted");

    // Deleted, the rule suppresses nothing: the same event is flagged and counted again.
    let (s, b) = delete(
        &server,
        &format!("/v1/streams/web/rules/{rule_id}"),
        Some(&key),
    );
    assert_eq!(s, 200, "{b}");
    let (_, rules) = get(&server, "/v1/streams/web/rules", Some(&key));
    assert_eq!(rules["items"].as_array().unwrap().len(), 0, "{rules}");
    let (s, b) = delete(
        &server,
        &format!("/v1/streams/web/rules/{rule_id}"),
        Some(&key),
    );
    assert_error(s, &b, 404, "not_found");
    let flagged = send_events(&server, &key, "web", &[intruder()]);
    assert_eq!(flagged["results"][0]["anomaly"], true, "{flagged}");
    assert!(flagged["results"][0].get("suppressed_by").is_none());
    assert_eq!(total_calls(&server, &key).0, counted);

    // Bad input names the field; another org reaches nothing.
    let (s, b) = post(
        &server,
        &format!("{path}/feedback"),
        Some(&key),
        &json!({"verdict": "wrong"}),
    );
    assert_error(s, &b, 422, "validation_failed");
    assert!(b["message"].as_str().unwrap().contains("verdict"), "{b}");
    let (_, other, _) = org_with_key(&server, &admin, "Other");
    let (s, b) = feedback(&server, &path, &other, "false_positive");
    assert_error(s, &b, 404, "not_found");
    let (s, b) = get(&server, "/v1/streams/web/rules", Some(&other));
    assert_error(s, &b, 404, "not_found");
}

#[test]
fn disputes_beyond_the_share_wait_for_an_operator_who_decides_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let admin = server.admin_token();
    put_share(&server, &admin, 0);
    let (org, key, _) = org_with_key(&server, &admin, "Acme");
    let first = stream_with_an_intruder(&server, &key, "a");
    let second = stream_with_an_intruder(&server, &key, "b");
    let (counted, _) = total_calls(&server, &key);

    let (s, b) = feedback(
        &server,
        &format!("/v1/streams/a/anomalies/{first}"),
        &key,
        "false_positive",
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["dispute"]["status"], "awaiting_operator", "{b}");
    let dispute_a = b["dispute"]["id"].as_str().unwrap().to_string();
    let (_, b) = feedback(
        &server,
        &format!("/v1/streams/b/anomalies/{second}"),
        &key,
        "false_positive",
    );
    let dispute_b = b["dispute"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        total_calls(&server, &key),
        (counted, 0),
        "nothing credited yet"
    );
    assert_eq!(billing_actions(&server, &admin, "dispute_queued").len(), 2);

    // The queue, in the admin API and in the org's own list.
    let (s, queue) = get(
        &server,
        "/v1/admin/disputes?status=awaiting_operator",
        Some(&admin),
    );
    assert_eq!(s, 200, "{queue}");
    let ids: Vec<&str> = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![dispute_b.as_str(), dispute_a.as_str()],
        "newest first"
    );
    let (_, own) = get(&server, "/v1/disputes", Some(&key));
    assert_eq!(own["items"].as_array().unwrap().len(), 2, "{own}");
    let (s, b) = get(&server, "/v1/admin/disputes", Some(&key));
    assert_error(s, &b, 403, "forbidden");

    // Accepted: exactly one detection leaves the usage; rejected: it stays billed.
    let decide = |id: &str, decision: &str| {
        post(
            &server,
            &format!("/v1/admin/disputes/{id}/decision"),
            Some(&admin),
            &json!({"decision": decision, "reason": "checked the graphs"}),
        )
    };
    let (s, b) = decide(&dispute_a, "accept");
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["status"].as_str(), b["decided_by"].as_str()),
        (Some("accepted"), Some("admin"))
    );
    assert_eq!(total_calls(&server, &key), (counted - 1, 1));
    let (s, b) = decide(&dispute_a, "reject");
    assert_error(s, &b, 409, "dispute_not_waiting");
    let (s, b) = decide(&dispute_b, "reject");
    assert_eq!((s, b["status"].as_str()), (200, Some("rejected")), "{b}");
    assert_eq!(total_calls(&server, &key), (counted - 1, 1));
    let (_, shown) = get(
        &server,
        &format!("/v1/streams/b/anomalies/{second}"),
        Some(&key),
    );
    assert_eq!(shown["dispute_status"], "rejected", "{shown}");
    let (s, b) = decide("dp_999", "accept");
    assert_error(s, &b, 404, "not_found");
    let (s, b) = post(
        &server,
        &format!("/v1/admin/disputes/{dispute_b}/decision"),
        Some(&admin),
        &json!({"decision": "maybe"}),
    );
    assert_error(s, &b, 422, "validation_failed");

    let (s, figures) = get(
        &server,
        &format!("/v1/admin/orgs/{org}/disputes/summary"),
        Some(&admin),
    );
    assert_eq!(s, 200, "{figures}");
    assert_eq!(
        (
            figures["accepted"].as_u64(),
            figures["rejected"].as_u64(),
            figures["awaiting_operator"].as_u64()
        ),
        (Some(1), Some(1), Some(0)),
        "{figures}"
    );
    assert_eq!(
        billing_actions(&server, &admin, "dispute_rejected").len(),
        1
    );
}

#[test]
fn monitor_feedback_makes_a_range_rule_and_expected_restarts_the_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let (_, key, _) = org_with_key(&server, &server.admin_token(), "Acme");
    let (_, monitor) = post(&server, "/v1/monitors", Some(&key), &json!({"name": "cpu"}));
    let monitor = monitor["id"].as_str().unwrap().to_string();
    points_with_a_spike(&server, &key, &monitor, 900.0);
    let (_, list) = get(
        &server,
        &format!("/v1/monitors/{monitor}/anomalies"),
        Some(&key),
    );
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/v1/monitors/{monitor}/anomalies/{id}");

    let (s, b) = feedback(&server, &path, &key, "expected");
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["rebased"], true, "{b}");
    assert!(b.get("dispute").is_none(), "expected disputes nothing: {b}");
    let (_, rules) = get(
        &server,
        &format!("/v1/monitors/{monitor}/rules"),
        Some(&key),
    );
    let rule = &rules["items"][0];
    assert_eq!(rule["id"], id.replace("ma_", "mr_").as_str(), "{rules}");
    assert_eq!(rule["direction"], "above", "{rules}");
    assert!(
        rule["low"].as_f64().unwrap() < 900.0 && rule["high"].as_f64().unwrap() > 900.0,
        "{rules}"
    );
    let (_, shown) = get(&server, &format!("/v1/monitors/{monitor}"), Some(&key));
    assert!(
        shown["status"] == "warming_up" && shown["warming_up_remaining"] == 150,
        "the baseline restarts: {shown}"
    );
    // A batch whose only point is refused (out of order) says the same.
    let (s, b) = post(
        &server,
        &format!("/v1/monitors/{monitor}/points"),
        Some(&key),
        &json!({"points": [{"timestamp": 1_700_000_000, "value": 10.0}]}),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["results"][0]["accepted"], false, "{b}");
    assert_eq!(b["warming_up_remaining"], 150, "{b}");

    // Confirmed after all: the rule goes.
    let (s, b) = feedback(&server, &path, &key, "confirmed");
    assert_eq!(s, 200, "{b}");
    assert!(b.get("rule_id").is_none(), "{b}");
    let (_, rules) = get(
        &server,
        &format!("/v1/monitors/{monitor}/rules"),
        Some(&key),
    );
    assert_eq!(rules["items"].as_array().unwrap().len(), 0, "{rules}");
}

#[test]
fn the_org_wide_list_pages_over_streams_and_monitors_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let (_, key, _) = org_with_key(&server, &server.admin_token(), "Acme");
    let sa = stream_with_an_intruder(&server, &key, "web");
    let (_, monitor) = post(&server, "/v1/monitors", Some(&key), &json!({"name": "cpu"}));
    let monitor = monitor["id"].as_str().unwrap().to_string();
    points_with_a_spike(&server, &key, &monitor, 900.0);

    let (s, all) = get(&server, "/v1/anomalies?limit=500", Some(&key));
    assert_eq!(s, 200, "{all}");
    let items = all["items"].as_array().unwrap().clone();
    assert!(items
        .iter()
        .any(|a| a["id"] == sa.as_str() && a["source"] == "stream"));
    assert!(items
        .iter()
        .any(|a| a["source"] == "monitor" && a["parent_id"] == monitor.as_str()));
    let feed_ids: Vec<u64> = items
        .iter()
        .map(|a| a["feed_id"].as_u64().unwrap())
        .collect();
    assert!(
        feed_ids.windows(2).all(|w| w[0] > w[1]),
        "newest first: {feed_ids:?}"
    );

    // Paged one at a time, every anomaly once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..items.len() + 2 {
        let path = match &cursor {
            Some(c) => format!("/v1/anomalies?limit=1&cursor={c}"),
            None => "/v1/anomalies?limit=1".to_string(),
        };
        let (_, page) = get(&server, &path, Some(&key));
        seen.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, items);

    let (_, monitors) = get(
        &server,
        "/v1/anomalies?source=monitor&limit=500",
        Some(&key),
    );
    assert!(monitors["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["source"] == "monitor"));
    let (_, acked) = get(&server, "/v1/anomalies?status=acknowledged", Some(&key));
    assert_eq!(acked["items"].as_array().unwrap().len(), 0, "{acked}");
    let (_, future) = get(
        &server,
        "/v1/anomalies?from=2100-01-01T00:00:00Z",
        Some(&key),
    );
    assert_eq!(future["items"].as_array().unwrap().len(), 0, "{future}");
    let (s, b) = get(&server, "/v1/anomalies?source=logs", Some(&key));
    assert_error(s, &b, 400, "bad_request");
    assert!(b["message"].as_str().unwrap().contains("source"), "{b}");
    let (s, b) = get(&server, "/v1/anomalies?from=yesterday", Some(&key));
    assert_error(s, &b, 400, "bad_request");
    assert!(b["message"].as_str().unwrap().contains("from"), "{b}");
}

/// 64 clients at once, each ingesting intruders into its own stream and disputing each one
/// it gets flagged, with a share that accepts every dispute: the period's usage ends at
/// exactly the detections counted minus the disputes accepted.
#[test]
fn sixty_four_clients_disputing_and_ingesting_leave_usage_exact() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::start_with(
        dir.path(),
        &[
            "--rate-limit-per-sec",
            "0",
            "--org-concurrent-batches",
            "64",
        ],
        &[],
    );
    let admin = server.admin_token();
    put_share(&server, &admin, 100);
    let (_, key, _) = org_with_key(&server, &admin, "Acme");
    let clients = 64;
    let results: Vec<(u64, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (server, key) = (&server, key.as_str());
                scope.spawn(move || {
                    let stream = format!("s{c}");
                    let mut flagged = 0u64;
                    let mut accepted = 0u64;
                    let mut ordinary: Vec<Value> = (0..150)
                        .map(|i| {
                            let user = ["ana", "ben"][i % 2];
                            json!({"user": user, "status": 200, "ms": 20 + i % 7})
                        })
                        .collect();
                    for round in 0..3 {
                        ordinary.push(json!({"user": format!("intruder{round}"), "status": 500 + round, "ms": 90_000 + round}));
                        let b = send_events(server, key, &stream, &ordinary);
                        ordinary.clear();
                        flagged += b["results"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .filter(|r| r["anomaly"] == true)
                            .count() as u64;
                        let (_, list) = get(server, &format!("/v1/streams/{stream}/anomalies?limit=500"), Some(key));
                        for a in list["items"].as_array().unwrap() {
                            if a.get("verdict").is_some() {
                                continue;
                            }
                            let path = format!("/v1/streams/{stream}/anomalies/{}", a["id"].as_str().unwrap());
                            let (s, b) = feedback(server, &path, key, "false_positive");
                            assert_eq!(s, 200, "{b}");
                            if b["dispute"]["status"] == "accepted" {
                                accepted += 1;
                            }
                        }
                    }
                    (flagged, accepted)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let flagged: u64 = results.iter().map(|r| r.0).sum();
    let accepted: u64 = results.iter().map(|r| r.1).sum();
    assert!(
        flagged >= clients as u64,
        "every client had an anomaly: {flagged}"
    );
    assert_eq!(
        accepted, flagged,
        "with a 100% share every dispute is accepted"
    );
    assert_eq!(total_calls(&server, &key), (flagged - accepted, accepted));
    assert_eq!(
        billing_actions(&server, &admin, "dispute_accepted").len() as u64,
        accepted
    );
}

/// Lines of a live-feed connection made by curl, read as they arrive (curl stops by itself
/// after `max_secs`).
struct CurlFeed {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl CurlFeed {
    fn open(server: &Server, key: &str, headers: &[&str], max_secs: u32) -> CurlFeed {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sN", "--max-time", &max_secs.to_string()])
            .args(["-H", &format!("Authorization: Bearer {key}")]);
        for h in headers {
            cmd.args(["-H", h]);
        }
        let mut child = cmd
            .arg(server.url("/v1/anomalies/live?heartbeat_seconds=1"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("curl");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        CurlFeed { child, lines }
    }

    /// The next event as (type, id, data), within 15 s.
    fn next_event(&self) -> (String, Option<u64>, Value) {
        let (mut kind, mut id, mut data) = (String::new(), None, Value::Null);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.lines.recv_timeout(left).expect("an event within 15 s");
            if line.is_empty() {
                if !kind.is_empty() {
                    return (kind, id, data);
                }
                continue;
            }
            if let Some(k) = line.strip_prefix("event: ") {
                kind = k.to_string();
            } else if let Some(i) = line.strip_prefix("id: ") {
                id = i.parse().ok();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data = serde_json::from_str(d).unwrap();
            }
        }
    }

    fn next_anomaly(&self) -> (u64, Value) {
        for _ in 0..30 {
            if let (kind, Some(id), data) = self.next_event() {
                if kind == "anomaly" {
                    return (id, data);
                }
            }
        }
        panic!("no anomaly event");
    }
}

impl Drop for CurlFeed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The live feed through curl: a heartbeat on a quiet feed, each new anomaly as an `anomaly`
/// event whose id is its `feed_id`, and a reconnect with `Last-Event-ID` that replays what
/// came after that id first.
#[test]
fn the_live_feed_reaches_curl_with_heartbeats_and_resumes_from_last_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let (_, key, _) = org_with_key(&server, &server.admin_token(), "Acme");
    let feed = CurlFeed::open(&server, &key, &[], 30);
    let (kind, id, beat) = feed.next_event();
    assert_eq!((kind.as_str(), id), ("heartbeat", None), "{beat}");
    assert_eq!(beat["kind"], "heartbeat");

    let sa = stream_with_an_intruder(&server, &key, "web");
    let mut last = None;
    for _ in 0..20 {
        let (id, data) = feed.next_anomaly();
        assert_eq!(data["anomaly"]["feed_id"], id, "{data}");
        if data["anomaly"]["id"] == sa.as_str() {
            last = Some((id, data));
            break;
        }
    }
    let (id, data) = last.expect("the intruder's anomaly on the feed");
    assert_eq!(data["anomaly"]["source"], "stream");
    assert_eq!(data["anomaly"]["status"], "open");
    assert!(data["anomaly"]["summary"].as_str().is_some(), "{data}");
    drop(feed);

    // Resumed from the event before it: that anomaly comes again, first.
    let resumed = CurlFeed::open(&server, &key, &[&format!("Last-Event-ID: {}", id - 1)], 30);
    let (again, data) = resumed.next_anomaly();
    assert_eq!(again, id, "{data}");
    // A bad Last-Event-ID is refused, naming it.
    let (s, b) = send(
        ureq::get(&server.url("/v1/anomalies/live"))
            .set("Authorization", &format!("Bearer {key}"))
            .set("Last-Event-ID", "yesterday"),
        None,
    );
    assert_error(s, &b, 422, "validation_failed");
    assert!(
        b["message"].as_str().unwrap().contains("Last-Event-ID"),
        "{b}"
    );
    // Without a credential, or with a ticket that was never given, nothing opens.
    let (s, b) = get(&server, "/v1/anomalies/live", None);
    assert_error(s, &b, 401, "unauthorized");
    let (s, b) = get(&server, "/v1/anomalies/live?ticket=lt_nothing", None);
    assert_error(s, &b, 401, "unauthorized");
}
