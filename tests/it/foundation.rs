//! The foundation against the running binary: first start, admin token, orgs and keys,
//! authentication failures, tenant isolation on every org route, JSON errors, configuration
//! layers and graceful shutdown.

use std::{io::Write, process::Command};

use serde_json::{json, Value};

use crate::support::{self, assert_error, delete, get, org_with_key, post, start, start_with};

#[test]
fn a_fresh_start_with_no_flags_serves_on_the_embedded_defaults() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(support::BIN);
    cmd.current_dir(cwd.path())
        .env_remove("DRIFTLOCK_ADMIN_TOKEN");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("DRIFTLOCK_")) {
        cmd.env_remove(k);
    }
    let data_dir = cwd.path().join("driftlock-data");
    let server = support::launch(cmd, &data_dir);
    assert_eq!(
        server.base, "http://127.0.0.1:8080",
        "default listen address"
    );

    let (status, health) = get(&server, "/healthz", None);
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data_dir.join("admin.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "admin.token must be private");
    let dir_mode = std::fs::metadata(&data_dir).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700, "a new data dir is private");

    let admin = server.admin_token();
    let (org_id, key, _) = org_with_key(&server, &admin, "Acme");
    let (status, org) = get(&server, "/v1/org", Some(&key));
    assert_eq!(status, 200, "{org}");
    assert_eq!(org["id"], org_id.as_str());
    assert_eq!(org["plan"], "developer");
}

#[test]
fn the_token_never_appears_in_logs_and_keys_are_stored_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let admin = server.admin_token();
    let (_, key, _) = org_with_key(&server, &admin, "Acme");
    let (_, log) = server.stop_with("TERM");
    assert!(
        log.contains("admin.token"),
        "the log names the token's path"
    );
    assert!(!log.contains(&admin), "the admin token leaked into the log");
    assert!(!log.contains(&key), "an API key leaked into the log");
    let raw = std::fs::read(dir.path().join("driftlock.redb")).unwrap();
    let needle = key.as_bytes();
    assert!(
        !raw.windows(needle.len()).any(|w| w == needle),
        "the key is stored in clear"
    );
}

#[test]
fn wrong_revoked_and_foreign_credentials_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let admin = server.admin_token();
    let (org_a, key_a, key_a_id) = org_with_key(&server, &admin, "A");
    let (org_b, key_b, _) = org_with_key(&server, &admin, "B");

    let (s, b) = get(&server, "/v1/org", None);
    assert_error(s, &b, 401, "unauthorized");
    let (s, b) = get(
        &server,
        "/v1/org",
        Some("dl_aaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    );
    assert_error(s, &b, 401, "unauthorized");
    let tampered = format!("{}X", &key_a[..key_a.len() - 1]);
    let (s, b) = get(&server, "/v1/org", Some(&tampered));
    assert_error(s, &b, 401, "unauthorized");
    let (s, b) = get(&server, "/v1/org", Some("not-a-key"));
    assert_error(s, &b, 401, "unauthorized");

    // Scopes: an org key on an admin route, the admin token on an org route.
    let (s, b) = get(&server, "/v1/admin/orgs", Some(&key_a));
    assert_error(s, &b, 403, "forbidden");
    let (s, b) = get(&server, "/v1/org", Some(&admin));
    assert_error(s, &b, 403, "forbidden");

    // Another org's id answers 404, as if it did not exist.
    let (s, b) = get(&server, &format!("/v1/orgs/{org_b}"), Some(&key_a));
    assert_error(s, &b, 404, "not_found");
    let (s, b) = get(&server, &format!("/v1/orgs/{org_a}"), Some(&key_a));
    assert_eq!(s, 200, "{b}");

    // Revocation takes effect on the very next request.
    let (s, _) = get(&server, "/v1/org", Some(&key_a));
    assert_eq!(s, 200);
    let (s, revoked) = delete(&server, &format!("/v1/admin/keys/{key_a_id}"), Some(&admin));
    assert_eq!(s, 200, "{revoked}");
    assert_eq!(revoked["active"], false);
    let (s, b) = get(&server, "/v1/org", Some(&key_a));
    assert_error(s, &b, 401, "unauthorized");
    let (s, _) = get(&server, "/v1/org", Some(&key_b));
    assert_eq!(s, 200, "other keys keep working");

    // Admin- and service-scoped keys.
    let (s, created) = post(
        &server,
        "/v1/admin/keys",
        Some(&admin),
        &json!({"name": "ops", "scope": "admin"}),
    );
    assert_eq!(s, 201, "{created}");
    let admin_key = created["secret"].as_str().unwrap();
    let (s, _) = get(&server, "/v1/admin/orgs", Some(admin_key));
    assert_eq!(s, 200);
    let (s, created) = post(
        &server,
        "/v1/admin/keys",
        Some(&admin),
        &json!({"name": "meter", "scope": "service"}),
    );
    assert_eq!(s, 201, "{created}");
    let (s, b) = get(&server, "/v1/admin/orgs", created["secret"].as_str());
    assert_error(s, &b, 403, "forbidden");
    let (s, list) = get(&server, "/v1/admin/keys", Some(&admin));
    assert_eq!((s, list["items"].as_array().unwrap().len()), (200, 2));
    let (s, audit) = get(&server, "/v1/admin/audit", Some(&admin));
    assert_eq!(s, 200);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"key.revoked") && actions.contains(&"org.created"),
        "{actions:?}"
    );
}

/// Every org-scoped route with a path parameter, called with another org's id, answers 404.
/// Names that live in each org's own namespace (stream ids) are created on use instead: then
/// the other org's object must come out untouched. Routes are read from the served spec, so a
/// new route without a fixture fails this test.
#[test]
fn every_org_route_hides_other_orgs_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let admin = server.admin_token();
    let (_org_a, key_a, _) = org_with_key(&server, &admin, "A");
    let (org_b, key_b, key_b_id) = org_with_key(&server, &admin, "B");
    let stream_anomaly_b =
        crate::anomaly_status::stream_with_an_intruder(&server, &key_b, "b-stream");
    let (s, monitor_b) = post(&server, "/v1/monitors", Some(&key_b), &json!({"name": "b"}));
    assert_eq!(s, 201);
    let monitor_b = monitor_b["id"].as_str().unwrap().to_string();
    support::points_with_a_spike(&server, &key_b, &monitor_b, 900.0);
    let (_, listed) = get(
        &server,
        &format!("/v1/monitors/{monitor_b}/anomalies"),
        Some(&key_b),
    );
    let monitor_anomaly_b = listed["items"][0]["id"].as_str().unwrap().to_string();
    // Org B's own rules, from its own verdicts.
    for path in [
        format!("/v1/streams/b-stream/anomalies/{stream_anomaly_b}/feedback"),
        format!("/v1/monitors/{monitor_b}/anomalies/{monitor_anomaly_b}/feedback"),
    ] {
        let (s, b) = post(
            &server,
            &path,
            Some(&key_b),
            &json!({"verdict": "false_positive"}),
        );
        assert_eq!(s, 200, "{b}");
    }
    let snapshot_b = |server: &support::Server| {
        (
            get(server, "/v1/streams/b-stream", Some(&key_b)).1,
            get(server, &format!("/v1/monitors/{monitor_b}"), Some(&key_b)).1,
        )
    };
    let before = snapshot_b(&server);
    let foreign = |param: &str, op_id: &str| match param {
        "anomaly_id" if op_id.contains("Stream") => stream_anomaly_b.clone(),
        "anomaly_id" => monitor_anomaly_b.clone(),
        "org_id" => org_b.clone(),
        "key_id" => key_b_id.clone(),
        "stream_id" => "b-stream".to_string(),
        "monitor_id" => monitor_b.clone(),
        "rule_id" if op_id.contains("Stream") => stream_anomaly_b.replace("sa_", "sr_"),
        "rule_id" => monitor_anomaly_b.replace("ma_", "mr_"),
        other => panic!("no foreign fixture for path parameter {other}; add one to this test"),
    };
    // Operations that create the named object in the caller's own namespace on first use.
    let created_on_use = [
        "putStream",
        "ingestStreamEvents",
        "ingestStreamEventsNdjson",
    ];

    let (_, spec) = get(&server, "/openapi.json", None);
    let mut routes: Vec<(&String, &String, &Value)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .iter()
                .map(move |(m, op)| (path, m, op))
        })
        .filter(|(path, _, op)| {
            path.contains('{')
                && op["security"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|r| r.get("OrgKey").is_some()))
        })
        .collect();
    // Routes that create in the caller's namespace go last, so they cannot mask a 404.
    routes.sort_by_key(|(_, _, op)| created_on_use.contains(&op["operationId"].as_str().unwrap()));
    let mut checked = 0;
    for (path, method, op) in routes {
        {
            let mut url = path.clone();
            let op_id = op["operationId"].as_str().unwrap();
            for param in op["parameters"].as_array().unwrap() {
                if param["in"] == "path" {
                    let name = param["name"].as_str().unwrap();
                    url = url.replace(&format!("{{{name}}}"), &foreign(name, op_id));
                }
            }
            let req = ureq::request(&method.to_uppercase(), &server.url(&url))
                .set("Authorization", &format!("Bearer {key_a}"));
            let body: Option<Value> = op.get("requestBody").map(|_| match op_id {
                "ingestStreamEvents" => json!([{"probe": 1}]),
                "sendMonitorPoints" => json!({"timestamp": 1_900_000_000, "value": 1}),
                "setStreamAnomalyStatus" | "setMonitorAnomalyStatus" => {
                    json!({"status": "resolved"})
                }
                "giveStreamAnomalyFeedback" | "giveMonitorAnomalyFeedback" => {
                    json!({"verdict": "confirmed"})
                }
                _ => json!({"name": "x"}),
            });
            let (s, b) = if op_id == "ingestStreamEventsNdjson" {
                let req = req.set("Content-Type", "application/x-ndjson");
                match req.send_string("{\"probe\": 1}\n") {
                    Ok(r) | Err(ureq::Error::Status(_, r)) => {
                        (r.status(), r.into_json().unwrap_or(Value::Null))
                    }
                    Err(e) => panic!("{op_id}: {e}"),
                }
            } else {
                support::send(req, body.as_ref())
            };
            if created_on_use.contains(&op_id) {
                assert_eq!(s, 200, "{op_id}: {b}");
            } else {
                assert_error(s, &b, 404, "not_found");
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} org routes checked");
    // Nothing of org B changed: its key still works, its stream is as it was.
    let (s, keys) = get(
        &server,
        &format!("/v1/admin/orgs/{org_b}/keys"),
        Some(&admin),
    );
    assert_eq!(s, 200);
    assert_eq!(keys["items"][0]["active"], true);
    assert_eq!(snapshot_b(&server), before);
}

#[test]
fn every_failure_is_a_json_error_with_the_right_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), &["--max-body-bytes", "2048"], &[]);
    let admin = server.admin_token();
    let auth = format!("Bearer {admin}");
    let orgs = server.url("/v1/admin/orgs");

    let (s, b) = get(&server, "/no/such/route", None);
    assert_error(s, &b, 404, "route_not_found");
    let (s, b) = support::send(ureq::put(&server.url("/healthz")), None);
    assert_error(s, &b, 405, "method_not_allowed");

    let raw = |content_type: &str, body: &[u8]| {
        let req = ureq::post(&orgs)
            .set("Authorization", &auth)
            .set("Content-Type", content_type);
        match req.send_bytes(body) {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                let status = r.status();
                let id = r.header("x-request-id").unwrap_or_default().to_string();
                let v: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
                assert_eq!(
                    v["request_id"].as_str(),
                    Some(id.as_str()),
                    "header and body ids agree"
                );
                (status, v)
            }
            Err(e) => panic!("{e}"),
        }
    };
    let (s, b) = raw("application/json", b"{\"name\": ");
    assert_error(s, &b, 400, "invalid_json");
    // Well-formed JSON of the wrong shape is a 422 naming what is wrong.
    let (s, b) = raw("application/json", b"[1,2]");
    assert_error(s, &b, 422, "validation_failed");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .starts_with("body: expected an object"),
        "{b}"
    );
    let (s, b) = raw("text/plain", b"{\"name\": \"x\"}");
    assert_error(s, &b, 415, "unsupported_media_type");
    let (s, b) = raw("application/json", &[b'"'; 4096]);
    assert_error(s, &b, 413, "payload_too_large");
    let (s, b) = raw("application/json", b"{\"name\": \"\"}");
    assert_error(s, &b, 422, "validation_failed");
    let (s, b) = raw(
        "application/json",
        b"{\"name\": \"x\", \"plan\": \"platinum\"}",
    );
    assert_error(s, &b, 422, "validation_failed");
    let (s, b) = raw(
        "application/json",
        b"{\"name\": \"x\", \"billing_email\": \"nope\"}",
    );
    assert_error(s, &b, 422, "validation_failed");

    // A body with no declared length is counted as it streams.
    let mut stream =
        std::net::TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    let chunk = "x".repeat(1000);
    let mut request = format!(
        "POST /v1/admin/orgs HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for _ in 0..5 {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("\"code\":\"payload_too_large\""),
        "{answer}"
    );

    let (s, b) = get(&server, "/v1/admin/orgs?limit=abc", Some(&admin));
    assert_error(s, &b, 400, "bad_request");
    let (s, b) = get(&server, "/v1/admin/orgs?cursor=forged", Some(&admin));
    assert_error(s, &b, 400, "bad_request");
    let (s, b) = get(&server, "/v1/admin/orgs/org_missing", Some(&admin));
    assert_error(s, &b, 404, "not_found");
    let (s, b) = post(
        &server,
        "/v1/admin/orgs/org_missing/keys",
        Some(&admin),
        &json!({"name": "k"}),
    );
    assert_error(s, &b, 404, "not_found");

    // Nothing above created anything.
    let (_, list) = get(&server, "/v1/admin/orgs", Some(&admin));
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
}

#[test]
fn listings_page_with_an_opaque_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let admin = server.admin_token();
    let mut created = Vec::new();
    for i in 0..7 {
        let (_, org) = post(
            &server,
            "/v1/admin/orgs",
            Some(&admin),
            &json!({"name": format!("org {i}")}),
        );
        created.push(org["id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/v1/admin/orgs?limit=3&cursor={c}"),
            None => "/v1/admin/orgs?limit=3".to_string(),
        };
        let (s, page) = get(&server, &path, Some(&admin));
        assert_eq!(s, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|o| o["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, created, "pages cover every org once, oldest first");
}

#[test]
fn configuration_layers_file_then_env_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("driftlock.toml");
    std::fs::write(&config, "max_body_bytes = 2048\nlog_format = \"json\"\n").unwrap();
    let cfg = config.to_str().unwrap();
    let body = json!({"name": "x".repeat(150), "billing_email": format!("{}@example.com", "a".repeat(60))});
    let big = json!({"name": "y", "padding": "z".repeat(3000)});

    let data = dir.path().join("data");
    let mut server = start_with(&data, &["--config", cfg], &[]);
    let admin = server.admin_token();
    let (s, b) = post(&server, "/v1/admin/orgs", Some(&admin), &big);
    assert_error(s, &b, 413, "payload_too_large");
    let (s, _) = post(&server, "/v1/admin/orgs", Some(&admin), &body);
    assert_eq!(s, 201);
    let (_, log) = server.stop_with("TERM");
    let first: Value = serde_json::from_str(log.lines().next().unwrap()).expect("JSON log lines");
    assert!(first.get("level").is_some(), "{first}");

    // The environment beats the file...
    let server = start_with(
        &data,
        &["--config", cfg],
        &[("DRIFTLOCK_MAX_BODY_BYTES", "100000")],
    );
    let (s, b) = post(&server, "/v1/admin/orgs", Some(&admin), &big);
    assert_eq!(s, 201, "{b}");
    drop(server);
    // ...and a flag beats the environment.
    let server = start_with(
        &data,
        &["--config", cfg, "--max-body-bytes", "2048"],
        &[("DRIFTLOCK_MAX_BODY_BYTES", "100000")],
    );
    let (s, b) = post(&server, "/v1/admin/orgs", Some(&admin), &big);
    assert_error(s, &b, 413, "payload_too_large");
}

#[test]
fn a_configured_admin_token_file_must_be_private() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let token = "operator-chosen-token-0123456789";
    std::fs::write(&token_file, token).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let data = dir.path().join("data");
    let env = [("DRIFTLOCK_ADMIN_TOKEN_FILE", token_file.to_str().unwrap())];
    let out = support::serve_command(&data, &[], &env).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("readable by other users"), "{err}");

    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = start_with(&data, &[], &env);
    let (s, _) = get(&server, "/v1/admin/orgs", Some(token));
    assert_eq!(s, 200);
    assert!(
        !data.join("admin.token").exists(),
        "no token is generated when one is configured"
    );
}

#[test]
fn sigterm_finishes_cleanly_and_the_store_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let admin = server.admin_token();
    let (org_id, key, _) = org_with_key(&server, &admin, "Keep me");
    let (status, log) = server.stop_with("TERM");
    assert!(status.success(), "exit status {status:?}\n{log}");
    assert!(log.contains("store closed"), "{log}");

    let server = start(dir.path());
    let (s, org) = get(&server, "/v1/org", Some(&key));
    assert_eq!((s, org["id"].as_str()), (200, Some(org_id.as_str())));
}

#[test]
fn metrics_count_requests_by_route_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let _ = get(&server, "/healthz", None);
    let _ = get(&server, "/v1/org", None);
    let text = ureq::get(&server.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        text.contains(
            r#"driftlock_http_requests_total{route="healthz",method="GET",status="200"}"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"driftlock_http_requests_total{route="getOwnOrganization",method="GET",status="401"} 1"#), "{text}");
    assert!(text.contains("driftlock_http_request_duration_seconds_bucket"));
    let size: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("driftlock_store_bytes "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(size > 0.0);
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let admin = server.admin_token();
    let mut stream =
        std::net::TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let head = format!(
        "POST /v1/admin/orgs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let first = "{\"name\":";
    stream
        .write_all(format!("{head}{:x}\r\n{first}\r\n", first.len()).as_bytes())
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));

    // Ask the server to stop while the request body is still arriving.
    let pid = server.child.as_ref().unwrap().id();
    assert!(Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let rest = "\"In flight\"}";
    stream
        .write_all(format!("{:x}\r\n{rest}\r\n0\r\n\r\n", rest.len()).as_bytes())
        .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let (status, log) = server.stop_with("TERM");
    assert!(status.success(), "{log}");

    let server = start(dir.path());
    let (_, list) = get(&server, "/v1/admin/orgs", Some(&admin));
    assert_eq!(list["items"][0]["name"], "In flight");
}

#[test]
fn cors_is_off_by_default_and_follows_the_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let resp = ureq::get(&server.url("/healthz"))
        .set("Origin", "https://ui.example")
        .call()
        .unwrap();
    assert_eq!(resp.header("access-control-allow-origin"), None);
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(resp.header("x-frame-options"), Some("DENY"));
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let server = start_with(
        dir.path(),
        &[
            "--cors-allowed-origins",
            "https://ui.example,https://other.example",
        ],
        &[],
    );
    let pre = ureq::request("OPTIONS", &server.url("/v1/org"))
        .set("Origin", "https://ui.example")
        .set("Access-Control-Request-Method", "GET")
        .call()
        .unwrap();
    assert_eq!(pre.status(), 204);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://ui.example")
    );
    assert!(pre
        .header("access-control-allow-headers")
        .unwrap()
        .contains("authorization"));
    let resp = ureq::get(&server.url("/healthz"))
        .set("Origin", "https://ui.example")
        .call()
        .unwrap();
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://ui.example")
    );
    let resp = ureq::get(&server.url("/healthz"))
        .set("Origin", "https://evil.example")
        .call()
        .unwrap();
    assert_eq!(resp.header("access-control-allow-origin"), None);
}

/// Whoever starts the server may close its stdout (a pipe read for one line, a closed
/// terminal): the banner is then lost, not the server.
#[test]
fn a_closed_stdout_does_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let serve = support::serve_command(dir.path(), &[], &[]);
    let args: Vec<String> = serve
        .get_args()
        .map(|a| a.to_string_lossy().replace("127.0.0.1:0", &listen))
        .collect();
    let mut cmd = Command::new(support::BIN);
    cmd.args(&args)
        .envs(serve.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env_remove("DRIFTLOCK_ADMIN_TOKEN")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take()); // the reading end closes before the banner is written
    let url = format!("http://{listen}/readyz");
    let mut ready = false;
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the server exited with {status} when its stdout was closed");
        }
        if ureq::get(&url).call().is_ok_and(|r| r.status() == 200) {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ready && still_running,
        "ready {ready}, running {still_running}"
    );
}
