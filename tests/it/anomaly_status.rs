//! Issue 22, first part: every stored anomaly has a stable id and a status that a person sets
//! (`open` -> `acknowledged` -> `resolved`, or back), with who, when and a note; on the binary,
//! for a stream and a monitor, and never across organizations.

use serde_json::{json, Value};

use crate::support::{assert_error, get, org_with_key, points_with_a_spike, post, start, Server};

fn patch(server: &Server, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let req =
        ureq::request("PATCH", &server.url(path)).set("Authorization", &format!("Bearer {token}"));
    crate::support::send(req, Some(body))
}

/// 100 ordinary request events, then one intruder (flagged): answers the intruder's anomaly id.
pub fn stream_with_an_intruder(server: &Server, key: &str, stream: &str) -> String {
    let mut events: Vec<Value> = (0..100)
        .map(|i| {
            let user = ["ana", "ben", "chen"][i % 3];
            json!({"user": user, "status": 200, "ms": 20 + i % 9})
        })
        .collect();
    events.push(json!({"user": "intruder", "status": 500, "ms": 98765}));
    let b = crate::feedback::send_events(server, key, stream, &events);
    assert_eq!(b["results"][100]["anomaly"], true, "{b}");
    let (_, list) = get(
        server,
        &format!("/v1/streams/{stream}/anomalies"),
        Some(key),
    );
    list["items"][0]["id"].as_str().unwrap().to_string()
}

#[test]
fn a_stream_anomaly_is_acknowledged_then_resolved_with_who_when_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let admin = server.admin_token();
    let (_, key, key_id) = org_with_key(&server, &admin, "Acme");
    let id = stream_with_an_intruder(&server, &key, "web");
    assert!(id.starts_with("sa_"), "{id}");
    let path = format!("/v1/streams/web/anomalies/{id}");
    let (s, fresh) = get(&server, &path, Some(&key));
    assert_eq!(s, 200, "{fresh}");
    assert_eq!(fresh["status"], "open");
    assert!(fresh.get("status_changed_at").is_none(), "{fresh}");

    let (s, acked) = patch(
        &server,
        &path,
        &key,
        &json!({"status": "acknowledged", "note": "looking"}),
    );
    assert_eq!(s, 200, "{acked}");
    assert_eq!(acked["status"], "acknowledged");
    assert_eq!(acked["status_note"], "looking");
    assert_eq!(acked["status_changed_by"], format!("key:{key_id}").as_str());
    let at = acked["status_changed_at"].as_str().unwrap().to_string();
    // A retry changes nothing, not even the time.
    let (_, again) = patch(&server, &path, &key, &json!({"status": "acknowledged"}));
    assert_eq!(again["status_changed_at"], at.as_str(), "{again}");
    let (_, resolved) = patch(&server, &path, &key, &json!({"status": "resolved"}));
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["status_note"], "looking", "the last note is kept");
    let (_, listed) = get(&server, "/v1/streams/web/anomalies", Some(&key));
    assert_eq!(listed["items"][0]["status"], "resolved", "{listed}");
    assert_eq!(listed["items"][0]["id"], id.as_str());

    // Bad input is refused with the field and the rule; nothing changes.
    let (s, b) = patch(&server, &path, &key, &json!({"status": "closed"}));
    assert_error(s, &b, 422, "validation_failed");
    assert!(
        b["message"].as_str().unwrap().starts_with("status: "),
        "{b}"
    );
    let (s, b) = patch(
        &server,
        &path,
        &key,
        &json!({"status": "open", "note": " "}),
    );
    assert_error(s, &b, 422, "validation_failed");
    let (s, b) = patch(
        &server,
        "/v1/streams/web/anomalies/sa_999",
        &key,
        &json!({"status": "open"}),
    );
    assert_error(s, &b, 404, "not_found");
    let (s, b) = get(&server, "/v1/streams/web/anomalies/ma_1", Some(&key));
    assert_error(s, &b, 422, "validation_failed");
    let (_, after) = get(&server, &path, Some(&key));
    assert_eq!(after["status"], "resolved", "{after}");

    // Another organization sees nothing and changes nothing.
    let (_, other, _) = org_with_key(&server, &admin, "Other");
    let (s, b) = patch(&server, &path, &other, &json!({"status": "open"}));
    assert_error(s, &b, 404, "not_found");
    let (_, after) = get(&server, &path, Some(&key));
    assert_eq!(after["status"], "resolved", "{after}");
}

#[test]
fn a_monitor_anomaly_has_an_id_and_a_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let (_, key, _) = org_with_key(&server, &server.admin_token(), "Acme");
    let (_, monitor) = post(&server, "/v1/monitors", Some(&key), &json!({"name": "cpu"}));
    let monitor = monitor["id"].as_str().unwrap();
    points_with_a_spike(&server, &key, monitor, 900.0);
    let (_, list) = get(
        &server,
        &format!("/v1/monitors/{monitor}/anomalies"),
        Some(&key),
    );
    let first = &list["items"][0];
    assert_eq!(first["status"], "open", "{list}");
    let id = first["id"].as_str().unwrap();
    assert!(id.starts_with("ma_"), "{id}");
    let path = format!("/v1/monitors/{monitor}/anomalies/{id}");
    let (s, b) = patch(
        &server,
        &path,
        &key,
        &json!({"status": "resolved", "note": "deploy"}),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "resolved");
    let (_, b) = get(&server, &path, Some(&key));
    assert_eq!(
        (b["status"].as_str(), b["status_note"].as_str()),
        (Some("resolved"), Some("deploy"))
    );
}
