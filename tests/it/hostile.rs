//! Hostile bodies against the running binary: text that is not UTF-8, JSON nested far past any
//! real payload, numbers no type can hold, and XML (which no route accepts, so the XML parser
//! linked in through poem is never fed from the network), and large bodies refused before
//! their route reads them. Each gets a clear 4xx with a JSON error body, and what was accepted
//! before is still there, unchanged, afterwards.

use serde_json::{json, Value};

use crate::support::{assert_error, get, org_with_key, service_key, start, Server};

/// Sends `body` as-is with `content_type` and returns the status and the JSON answer.
fn raw(server: &Server, path: &str, token: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let request = ureq::post(&server.url(path))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", content_type);
    match request.send_bytes(body) {
        Ok(r) | Err(ureq::Error::Status(_, r)) => {
            let status = r.status();
            let text = r.into_string().unwrap();
            let value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("answer {status} is not JSON ({e}): {text}"));
            (status, value)
        }
        Err(e) => panic!("{e}"),
    }
}

/// What the org has so far: its stream's totals and its usage this period.
fn accepted_so_far(server: &Server, key: &str) -> (Value, Value) {
    let (s, stream) = get(server, "/v1/streams/web", Some(key));
    assert_eq!(s, 200, "{stream}");
    let (s, usage) = get(server, "/v1/usage", Some(key));
    assert_eq!(s, 200, "{usage}");
    (
        json!([stream["events_seen"], stream["anomalies_seen"]]),
        usage,
    )
}

#[test]
fn hostile_bodies_get_clear_4xx_and_lose_nothing_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let admin = server.admin_token();
    let (_, key, _) = org_with_key(&server, &admin, "Acme");
    let service = service_key(&server, &admin);
    let events = "/v1/streams/web/events";

    let first: Vec<u8> = (0..5)
        .flat_map(|i| format!("{{\"user\":\"u{i}\",\"action\":\"view\"}}\n").into_bytes())
        .collect();
    let (s, b) = raw(&server, events, &key, "application/x-ndjson", &first);
    assert_eq!(s, 200, "{b}");
    let before = accepted_so_far(&server, &key);
    assert_eq!(before.0[0], 5, "{before:?}");

    let (ndjson, json) = ("application/x-ndjson", "application/json");
    let orgs = "/v1/admin/orgs";
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_line = format!("{{\"a\":{}1{}}}\n", "[".repeat(10_000), "]".repeat(10_000));
    let deep_name = format!(
        "{{\"name\":{}\"x\"{}}}",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let refused: [(&str, &str, &str, &[u8], &str); 8] = [
        // Not UTF-8: NDJSON text, and JSON bodies.
        (
            events,
            &key,
            ndjson,
            b"{\"a\":1}\n{\"b\":\"\xff\xfe\"}\n",
            "invalid_encoding",
        ),
        (
            events,
            &key,
            json,
            b"[{\"b\":\"\xc3\x28\"}]",
            "invalid_json",
        ),
        (orgs, &admin, json, b"{\"name\":\"\xff\"}", "invalid_json"),
        // Nesting 100,000 deep (a stack overflow for a naive recursive parser), and deep
        // inside an NDJSON line and a typed field.
        (events, &key, json, deep.as_bytes(), "invalid_json"),
        (events, &key, ndjson, deep_line.as_bytes(), "invalid_json"),
        (orgs, &admin, json, deep_name.as_bytes(), "invalid_json"),
        // Numbers no type can hold: in an event, in a typed field, in a count.
        (events, &key, json, b"[{\"n\":1e400}]", "invalid_json"),
        (
            "/v1/monitors/mon_missing/points",
            &key,
            json,
            b"{\"points\":[{\"value\":-1e999}]}",
            "invalid_json",
        ),
    ];
    // A count past 64 bits parses as JSON: it is refused naming the field.
    let (s, b) = raw(
        &server,
        "/v1/meter-usage",
        &service,
        json,
        b"{\"organization_id\":\"org_x\",\"count\":18446744073709551616}",
    );
    assert_error(s, &b, 422, "validation_failed");
    assert!(b["message"].as_str().unwrap().starts_with("count: "), "{b}");
    for (path, token, content_type, body, code) in refused {
        let (s, b) = raw(&server, path, token, content_type, body);
        assert_error(s, &b, 400, code);
        if body.len() == deep.len() {
            assert!(b["message"].as_str().unwrap().contains("recursion"), "{b}");
        }
    }
    // A number past any integer type in a query parameter.
    let (s, b) = get(
        &server,
        "/v1/admin/orgs?limit=340282366920938463463374607431768211456",
        Some(&admin),
    );
    assert_error(s, &b, 400, "bad_request");

    // XML, here a start tag with thousands of duplicate attributes (the quadratic case of
    // RUSTSEC-2026-0194 in quick-xml): refused by content type before any parsing.
    let attributes: String = (0..5_000).map(|_| " a=\"1\"").collect();
    let xml = format!("<e{attributes}/>");
    for path in [events, "/v1/admin/orgs", "/v1/meter-usage"] {
        let token = match path {
            "/v1/admin/orgs" => &admin,
            "/v1/meter-usage" => &service,
            _ => &key,
        };
        let (s, b) = raw(&server, path, token, "application/xml", xml.as_bytes());
        assert_error(s, &b, 415, "unsupported_media_type");
    }

    // Refused before the route reads the body (wrong key, wrong content type, unknown route):
    // the server still takes the whole body off the socket, so a client that writes all of it
    // before reading gets the error, not a reset, and can reuse its connection.
    let agent = ureq::AgentBuilder::new().build();
    let big: Vec<u8> = first.iter().copied().cycle().take(900_000).collect();
    for round in 0..5 {
        for (path, token, content_type, want) in [
            // No valid credential: the body is drained, not kept (past 64 KiB), and refused.
            (events, "dl_wrong", "application/x-ndjson", 413),
            (events, key.as_str(), "application/xml", 415),
            (
                "/v1/no/such/route",
                key.as_str(),
                "application/x-ndjson",
                404,
            ),
        ] {
            let answer = agent
                .post(&server.url(path))
                .set("Authorization", &format!("Bearer {token}"))
                .set("Content-Type", content_type)
                .send_bytes(&big);
            match answer {
                Err(ureq::Error::Status(status, _)) => assert_eq!(status, want, "{path}"),
                other => panic!("round {round}, {path}: {other:?}"),
            }
        }
    }

    // Everything accepted before is still there, and nothing of the refused bodies counted.
    assert_eq!(accepted_so_far(&server, &key), before);
    let (s, b) = raw(&server, events, &key, "application/x-ndjson", &first);
    assert_eq!(s, 200, "{b}");
    assert_eq!(accepted_so_far(&server, &key).0, json!([10, 0]));
}

#[test]
fn no_operation_of_the_spec_takes_xml() {
    let spec: Value = serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
    let mut media_types = Vec::new();
    for (path, operations) in spec["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            if let Some(content) = operation["requestBody"]["content"].as_object() {
                media_types.extend(content.keys().map(|m| format!("{method} {path}: {m}")));
            }
        }
    }
    assert!(!media_types.is_empty());
    let xml: Vec<_> = media_types.iter().filter(|m| m.contains("xml")).collect();
    assert!(xml.is_empty(), "operations taking XML: {xml:?}");
}

/// Guessing the admin token is throttled per client address and every failure is logged; the
/// store (and a backup of it) is readable by its owner only.
#[test]
fn sign_in_guesses_are_throttled_and_logged_and_the_store_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut server = crate::support::start(dir.path());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("driftlock.redb")), 0o600);

    let sign_in = |token: &str| {
        crate::support::post(
            &server,
            "/v1/admin/session",
            None,
            &serde_json::json!({"token": token}),
        )
    };
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(sign_in(&format!("guess-{i}")).0);
    }
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429, 429], "{statuses:?}");
    // The right token waits too: the budget is the address's, not the token's.
    let (st, body) = sign_in(&server.admin_token());
    crate::support::assert_error(st, &body, 429, "rate_limited");
    let (_, log) = server.stop_with("TERM");
    assert_eq!(log.matches("admin sign-in failed").count(), 10, "{log}");
    assert!(log.contains("too many failed attempts"), "{log}");
    assert!(!log.contains("guess-"), "tokens tried are not logged");
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// CPU time (user + system) a process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Nobody without a key can make the server buffer bodies or hold sockets: stalled
/// unauthenticated uploads are drained, not kept, and cut off at the body timeout (408); idle
/// connections close after the idle timeout; past the connection limit sockets wait in the
/// listen queue while the server stays responsive and does not spin.
#[test]
fn stalled_uploads_and_idle_sockets_cannot_exhaust_the_server() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::start_with(
        dir.path(),
        &[
            "--body-timeout-secs",
            "3",
            "--idle-timeout-secs",
            "3",
            "--max-connections",
            "64",
        ],
        &[],
    );
    let pid = server.child.as_ref().unwrap().id();
    let addr = server.base.strip_prefix("http://").unwrap().to_string();
    let rss_before = rss_kib(pid);

    // 40 uploads declaring 16 MiB, without a key, each sending 1 MiB and then stalling.
    let chunk = vec![b'x'; 1 << 20];
    let mut uploads: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            write!(
                s,
                "POST /v1/streams/s/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: 16777216\r\n\r\n"
            )
            .unwrap();
            s.write_all(&chunk).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let rss_stalled = rss_kib(pid);
    eprintln!(
        "figures: RSS {rss_before} KiB before, {rss_stalled} KiB with 40 stalled 16 MiB uploads"
    );
    assert!(
        rss_stalled < rss_before + 64 * 1024,
        "stalled uploads are buffered: {rss_before} -> {rss_stalled} KiB"
    );
    // Each is answered at the body timeout.
    for s in &mut uploads {
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 408", "{}", String::from_utf8_lossy(&head));
    }
    drop(uploads);

    // 150 idle sockets: 64 are served (and closed after the idle timeout), the rest wait in
    // the listen queue; a good request gets through, and the server does not spin meanwhile.
    let idle: Vec<TcpStream> = (0..150)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let ticks_before = cpu_ticks(pid);
    let started = Instant::now();
    let (status, _) = crate::support::get(&server, "/healthz", None);
    assert_eq!(status, 200);
    let waited = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let ticks = cpu_ticks(pid) - ticks_before;
    eprintln!("figures: a request behind 150 idle sockets answered in {waited:?}; server CPU {ticks} ticks while they idled");
    assert!(waited < Duration::from_secs(15), "{waited:?}");
    assert!(ticks < 100, "the server spun: {ticks} ticks");
    // The served idle sockets were closed by the server.
    let mut closed = 0;
    for mut s in idle.into_iter().take(10) {
        s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let mut buf = [0u8; 1];
        if matches!(s.read(&mut buf), Ok(0)) {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 10,
        "idle connections are closed after the idle timeout"
    );
}

/// A malformed path parameter is named as the spec names it, in the API's words.
#[test]
fn a_bad_path_parameter_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::start(dir.path());
    let admin = server.admin_token();
    let (s, b) = crate::support::post(
        &server,
        "/v1/admin/outbox/email/abc/retry",
        Some(&admin),
        &serde_json::json!({}),
    );
    crate::support::assert_error(s, &b, 400, "bad_request");
    let message = b["message"].as_str().unwrap();
    assert!(message.contains("`email_id`"), "{message}");
    assert!(message.contains("non-negative integer"), "{message}");
    assert!(
        !message.contains("param0") && !message.contains("uint64"),
        "{message}"
    );
}

/// One rule for idempotency keys on every route that takes one, stated in the spec: a key
/// that is not 1 to 255 visible ASCII characters is refused (422), never silently ignored,
/// and keys of different streams never collide.
#[test]
fn idempotency_keys_follow_one_rule_and_never_collide() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::start(dir.path());
    let admin = server.admin_token();
    let (_, key, _) = crate::support::org_with_key(&server, &admin, "Acme");
    let m = crate::support::post(&server, "/v1/monitors", Some(&key), &json!({"name": "m"})).1;
    let monitor = m["id"].as_str().unwrap().to_string();
    // Raw HTTP, so the header goes out byte for byte as a client may send it (UTF-8 here).
    let post_with = |path: &str, idem: &[u8], body: &Value| -> (u16, Value) {
        use std::io::{Read, Write};
        let addr = server.base.strip_prefix("http://").unwrap();
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        let body = body.to_string();
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        )
        .into_bytes();
        if !idem.is_empty() {
            request.extend_from_slice(b"Idempotency-Key: ");
            request.extend_from_slice(idem);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body.as_bytes());
        conn.write_all(&request).unwrap();
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).unwrap();
        let text = String::from_utf8_lossy(&answer).to_string();
        let status = text[9..12].parse().unwrap();
        let json = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| serde_json::from_str(b).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        (status, json)
    };
    let points = format!("/v1/monitors/{monitor}/points");
    for bad in ["réessai-8".as_bytes(), b"a b", b""] {
        for (path, body) in [
            ("/v1/streams/s/events", json!([{"a": 1}])),
            (
                points.as_str(),
                json!({"timestamp": 1_800_000_000, "value": 1.0}),
            ),
        ] {
            let (s, b) = post_with(path, bad, &body);
            if bad.is_empty() {
                // No header at all: the call is simply not idempotent.
                assert_eq!(s, 200, "{path}: {b}");
                continue;
            }
            assert_error(s, &b, 422, "validation_failed");
            assert!(
                b["message"].as_str().unwrap().contains("Idempotency-Key"),
                "{b}"
            );
        }
    }
    let service = crate::support::service_key(&server, &admin);
    let org = crate::support::get(&server, "/v1/org", Some(&key)).1["id"].clone();
    let (s, b) = crate::support::post(
        &server,
        "/v1/meter-usage",
        Some(&service),
        &json!({"organization_id": org, "anomaly": true, "idempotency_key": "réessai"}),
    );
    assert_error(s, &b, 422, "validation_failed");

    // Stream `a` with key `b:c` and stream `a:b` with key `c` are two different requests.
    let (s1, first) = post_with("/v1/streams/a/events", b"b:c", &json!([{"x": 1}]));
    let (s2, second) = post_with("/v1/streams/a:b/events", b"c", &json!([{"x": 1}]));
    assert_eq!((s1, s2), (200, 200), "{first} {second}");
    let seen = crate::support::get(&server, "/v1/streams/a:b", Some(&key)).1;
    assert_eq!(
        seen["events_seen"], 1,
        "the second stream got its own event: {seen}"
    );

    let spec: Value = serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
    let header = spec["paths"]["/v1/streams/{stream_id}/events"]["post"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .cloned()
        .unwrap();
    assert_eq!(header["schema"]["pattern"], "^[!-~]+$", "{header}");
}

/// Small surprises of the spec: an out-of-range `max_points` is refused naming the parameter,
/// and an organization never dunned has no `dunning_since` (not 1970-01-01).
#[test]
fn out_of_range_chart_sizes_are_refused_and_never_dunned_has_no_date() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let (_, key, _) = org_with_key(&server, &server.admin_token(), "Acme");
    let m = crate::support::post(&server, "/v1/monitors", Some(&key), &json!({"name": "m"})).1;
    let id = m["id"].as_str().unwrap();
    for bad in ["0", "9", "20001"] {
        let (s, b) = get(
            &server,
            &format!("/v1/monitors/{id}/series?max_points={bad}"),
            Some(&key),
        );
        assert_error(s, &b, 422, "validation_failed");
        let message = b["message"].as_str().unwrap();
        assert!(message.starts_with("max_points: must be at "), "{b}");
    }
    let (s, _) = get(
        &server,
        &format!("/v1/monitors/{id}/series?max_points=10"),
        Some(&key),
    );
    assert_eq!(s, 200);
    let (s, billing) = get(&server, "/v1/billing", Some(&key));
    assert_eq!(s, 200, "{billing}");
    assert_eq!(billing["dunning_state"], "ok");
    assert!(billing.get("dunning_since").is_none(), "{billing}");
}

/// Issue 18, finding 9: at any sensitivity (the lowest counts fewest), a verdict that is not a
/// detection carries no score a client could threshold itself; a detection carries its score.
#[test]
fn verdicts_that_are_not_detections_disclose_no_score() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::start(dir.path());
    let admin = server.admin_token();
    let (_, key, _) = crate::support::org_with_key(&server, &admin, "Acme");
    let events = |n: usize, odd_every: usize| -> Value {
        (0..n)
            .map(|i| {
                let odd = i > 0 && i % odd_every == 0;
                json!({"user": format!("u{}", i % 7), "status": if odd { 500 } else { 200 },
                       "ms": if odd { 98_765 } else { 20 + (i * 7) % 20 }})
            })
            .collect()
    };
    for (stream, sensitivity) in [("quiet", 0.0), ("normal", 0.5)] {
        let (st, b) = crate::support::send(
            ureq::put(&server.url(&format!("/v1/streams/{stream}")))
                .set("Authorization", &format!("Bearer {key}")),
            Some(&json!({"sensitivity": sensitivity})),
        );
        assert!(st == 200 || st == 201, "{st} {b}");
        let (st, b) = crate::support::post(
            &server,
            &format!("/v1/streams/{stream}/events"),
            Some(&key),
            &events(600, 1_000),
        );
        assert_eq!(st, 200, "{b}");
        let (st, b) = crate::support::post(
            &server,
            &format!("/v1/streams/{stream}/events"),
            Some(&key),
            &events(300, 50),
        );
        assert_eq!(st, 200, "{b}");
        let results = b["results"].as_array().unwrap();
        let scored = results.iter().filter(|r| r.get("score").is_some()).count();
        let flagged = results.iter().filter(|r| r["anomaly"] == true).count();
        assert_eq!(scored, flagged, "{stream}: only detections carry a score");
        // What is disclosed is what is counted.
        assert_eq!(b["detections_counted"].as_u64(), Some(flagged as u64));
        assert!(results.len() - flagged > 250, "{stream}: {flagged} flagged");
        if sensitivity > 0.0 {
            assert!(flagged >= 3, "{stream}: {flagged} flagged");
        }
    }
    // Monitor points and the chart series follow the same rule.
    let m = crate::support::post(&server, "/v1/monitors", Some(&key), &json!({"name": "m"})).1;
    let id = m["id"].as_str().unwrap();
    let b = crate::support::points_with_a_spike(&server, &key, id, 500.0);
    let results = b["results"].as_array().unwrap();
    assert!(results.iter().any(|r| r["anomaly"] == true), "{b}");
    assert!(results
        .iter()
        .all(|r| r.get("score").is_some() == (r["anomaly"] == true)));
    let (_, series) =
        crate::support::get(&server, &format!("/v1/monitors/{id}/series"), Some(&key));
    let series = series["points"].as_array().unwrap();
    assert!(!series.is_empty());
    assert!(series
        .iter()
        .all(|p| p.get("score").is_some() == (p["anomaly"] == true)));
}

/// Issue 18, finding 3: the rate limit is the organization's, however many keys it mints;
/// the keys, streams and monitors it may hold are capped (checked where they are written);
/// and one organization's flood of batches leaves the others served.
#[test]
fn one_tenant_cannot_starve_another_or_hold_without_bound() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::start_with(
        dir.path(),
        &[
            "--rate-limit-per-sec",
            "1",
            "--rate-limit-burst",
            "40",
            "--max-keys-per-org",
            "32",
            "--max-streams-per-org",
            "2",
            "--max-monitors-per-org",
            "1",
            "--org-concurrent-batches",
            "2",
        ],
        &[],
    );
    let admin = server.admin_token();
    let (_, key_a, _) = org_with_key(&server, &admin, "Abuser");
    let (_, key_b, _) = org_with_key(&server, &admin, "Bystander");
    // 31 more keys: 32 in all, the limit; the 33rd is refused, naming the setting.
    let mut keys = vec![key_a.clone()];
    for i in 0..31 {
        let (st, b) = crate::support::post(
            &server,
            "/v1/keys",
            Some(&key_a),
            &json!({"name": format!("k{i}")}),
        );
        assert_eq!(st, 201, "{b}");
        keys.push(b["secret"].as_str().unwrap().to_string());
    }
    let (st, b) = crate::support::post(
        &server,
        "/v1/keys",
        Some(&key_a),
        &json!({"name": "one more"}),
    );
    assert_error(st, &b, 409, "limit_reached");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("--max-keys-per-org"),
        "{b}"
    );

    // 400 requests spread over the 32 keys: the organization's bucket (40, then 1/s) refuses
    // most of them however long they take (at most 40 + 1 a second pass); per key it refused
    // none.
    let event = json!([{"path": "/", "ms": 20}]);
    let refused = keys
        .iter()
        .cycle()
        .take(400)
        .filter(|k| {
            let (st, _) = crate::support::post(&server, "/v1/streams/web/events", Some(k), &event);
            st == 429
        })
        .count();
    let (st, b) = crate::support::post(&server, "/v1/streams/web/events", Some(&key_b), &event);
    assert_eq!(st, 200, "the other organization has its own bucket: {b}");
    eprintln!("figures: 429s for 400 requests over 32 keys of one organization: {refused}");
    assert!(refused >= 300, "{refused} refused");

    // Caps on what an organization holds: a third stream and a second monitor are refused
    // with nothing kept, and the organization sees its limits.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (st, b) = crate::support::post(&server, "/v1/streams/second/events", Some(&key_a), &event);
    assert_eq!(st, 200, "{b}");
    let (st, b) = crate::support::post(&server, "/v1/streams/third/events", Some(&key_a), &event);
    assert_error(st, &b, 409, "limit_reached");
    let (st, _) = get(&server, "/v1/streams/third", Some(&key_a));
    assert_eq!(st, 404, "the refused stream was not created");
    let (st, b) = crate::support::post(
        &server,
        "/v1/monitors",
        Some(&key_a),
        &json!({"name": "one"}),
    );
    assert_eq!(st, 201, "{b}");
    let (st, b) = crate::support::post(
        &server,
        "/v1/monitors",
        Some(&key_a),
        &json!({"name": "two"}),
    );
    assert_error(st, &b, 409, "limit_reached");
    let (st, limits) = get(&server, "/v1/limits", Some(&key_a));
    assert_eq!(st, 200, "{limits}");
    assert_eq!(limits["api_keys"], json!({"held": 32, "limit": 32}));
    assert_eq!(limits["streams"], json!({"held": 2, "limit": 2}));
    assert_eq!(limits["monitors"], json!({"held": 1, "limit": 1}));
    assert_eq!(limits["concurrent_batches"], 2);
}

/// Issue 18, finding 3: while one organization keeps many large batches in flight, it gets
/// 429 `limit_reached` beyond its share and another organization's batches are served.
#[test]
fn a_flood_of_batches_from_one_organization_leaves_room_for_another() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::start_with(
        dir.path(),
        &["--rate-limit-per-sec", "0", "--org-concurrent-batches", "2"],
        &[],
    );
    let admin = server.admin_token();
    let (_, key_a, _) = org_with_key(&server, &admin, "Abuser");
    let (_, key_b, _) = org_with_key(&server, &admin, "Bystander");
    let batch: Value = (0..5_000)
        .map(|i| json!({"user": format!("u{}", i % 50), "path": "/api", "ms": 20 + i % 20}))
        .collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (limited, served, b_times) = std::thread::scope(|s| {
        let flood: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let (mut limited, mut served) = (0, 0);
                    for _ in 0..40 {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        let (st, b) = crate::support::post(
                            &server,
                            "/v1/streams/flood/events",
                            Some(&key_a),
                            &batch,
                        );
                        match st {
                            200 => served += 1,
                            429 => {
                                assert_eq!(b["code"], "limit_reached", "{b}");
                                limited += 1
                            }
                            other => panic!("{other} {b}"),
                        }
                    }
                    (limited, served)
                })
            })
            .collect();
        let mut b_times = Vec::new();
        for _ in 0..20 {
            let t = std::time::Instant::now();
            let (st, b) = crate::support::post(
                &server,
                "/v1/streams/calm/events",
                Some(&key_b),
                &json!([{"path": "/", "ms": 20}]),
            );
            assert_eq!(st, 200, "{b}");
            b_times.push(t.elapsed().as_secs_f64() * 1000.0);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (mut limited, mut served) = (0, 0);
        for h in flood {
            let (l, s) = h.join().unwrap();
            limited += l;
            served += s;
        }
        (limited, served, b_times)
    });
    let mut sorted = b_times.clone();
    sorted.sort_by(f64::total_cmp);
    eprintln!(
        "figures: flood: {served} batches served, {limited} answered 429; the other organization: p50 {:.1} ms, max {:.1} ms over {} requests",
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1],
        sorted.len()
    );
    assert!(
        limited > 0,
        "8 senders with a share of 2 were never limited"
    );
    assert!(served > 0);
}

/// Issue 18, finding 4: an idempotency record keeps a digest and a compact answer, counted
/// against the organization; past its limit a request with a key is refused and nothing of
/// it is kept.
#[test]
fn idempotency_records_are_compact_and_counted_against_the_organization() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::start_with(
        dir.path(),
        &[
            "--rate-limit-per-sec",
            "0",
            "--max-idempotency-bytes-per-org",
            "4096",
        ],
        &[],
    );
    let admin = server.admin_token();
    let (_, key, _) = org_with_key(&server, &admin, "Acme");
    let batch = |salt: usize| -> Value {
        (0..10_000)
            .map(|i| json!({"user": format!("u{}", (i + salt) % 50), "path": "/api", "ms": 20 + i % 20}))
            .collect()
    };
    let send = |idem: &str, body: &Value| -> (u16, Value) {
        crate::support::send(
            ureq::post(&server.url("/v1/streams/web/events"))
                .set("Authorization", &format!("Bearer {key}"))
                .set("Idempotency-Key", idem),
            Some(body),
        )
    };
    let first_body = batch(0);
    let (st, first) = send("batch-1", &first_body);
    assert_eq!(st, 200, "{first}");
    let (_, limits) = get(&server, "/v1/limits", Some(&key));
    let held = limits["idempotency_bytes"]["held"].as_u64().unwrap();
    let answer_bytes = first.to_string().len();
    eprintln!(
        "figures: a 10,000-event batch answer of {answer_bytes} bytes is kept in {held} bytes"
    );
    assert!(held > 0 && held < 16_384, "{held} bytes held");
    let (st, replay) = send("batch-1", &first_body);
    assert_eq!(
        (st, &replay),
        (200, &first),
        "a retry gets the first answer"
    );

    // Distinct keys until the limit: the refused batch counts nothing and keeps nothing.
    let mut refused = None;
    for n in 2..40 {
        let (st, b) = send(&format!("batch-{n}"), &batch(n));
        if st == 429 {
            refused = Some(b);
            break;
        }
        assert_eq!(st, 200, "{b}");
    }
    let (_, limits) = get(&server, "/v1/limits", Some(&key));
    let refused = refused.unwrap_or_else(|| panic!("the limit was never reached: {limits}"));
    assert_eq!(refused["code"], "limit_reached", "{refused}");
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("--max-idempotency-bytes-per-org"));
    let (_, stream) = get(&server, "/v1/streams/web", Some(&key));
    let (_, limits) = get(&server, "/v1/limits", Some(&key));
    let held = limits["idempotency_bytes"]["held"].as_u64().unwrap();
    assert!(held <= 4_096, "{held}");
    assert_eq!(
        stream["events_seen"].as_u64().unwrap() % 10_000,
        0,
        "whole batches only: {stream}"
    );
    // Without a key the organization is still served.
    let (st, b) = crate::support::post(&server, "/v1/streams/web/events", Some(&key), &batch(99));
    assert_eq!(st, 200, "{b}");
}

/// Issue 18, finding 2: a client that trickles its request head a byte at a time (each byte
/// resets the idle timeout) is cut off at the header timeout; a head sent at once is served.
#[test]
fn a_request_head_trickled_byte_by_byte_is_cut_off_at_the_header_timeout() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::start_with(
        dir.path(),
        &["--header-timeout-secs", "2", "--idle-timeout-secs", "30"],
        &[],
    );
    let addr = server.base.strip_prefix("http://").unwrap().to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut cut_off = None;
    // One header byte every 300 ms, for at most 12 s.
    for byte in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        .iter()
        .cycle()
        .take(40)
    {
        if s.write_all(&[*byte]).is_err() {
            cut_off = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            // The server closed the connection.
            Ok(0) => {
                cut_off = Some(started.elapsed());
                break;
            }
            Ok(n) => panic!("answered a head that never ended: {:?}", &buf[..n]),
            // Still open: nothing to read within 300 ms.
            Err(_) => {}
        }
    }
    let cut_off = cut_off.expect("the trickling connection stayed open for 12 s");
    eprintln!(
        "figures: a trickled request head was cut off after {cut_off:?} (header timeout 2 s)"
    );
    assert!(cut_off < Duration::from_secs(6), "{cut_off:?}");
    // A keep-alive connection that sends its heads at once is served, request after request,
    // for longer than the header timeout.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..3 {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        let mut rest = [0u8; 4096];
        let _ = s.read(&mut rest);
        std::thread::sleep(Duration::from_millis(1200));
    }
}

/// Issue 18, finding 7: monitor mail has a per-organization budget per hour; past it mail is
/// held back (counted, visible in `GET /v1/limits`); webhooks and stored anomalies are kept.
#[test]
fn monitor_mail_has_a_budget_per_organization() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::start_with(
        dir.path(),
        &[
            "--rate-limit-per-sec",
            "0",
            "--max-mails-per-org-per-hour",
            "5",
        ],
        &[],
    );
    let admin = server.admin_token();
    let (_, key, _) = org_with_key(&server, &admin, "Acme");
    let emails: Vec<String> = (0..20).map(|i| format!("ops{i}@example.com")).collect();
    let mut queued_by_monitors = 0;
    for m in 0..2 {
        let (st, monitor) = crate::support::post(
            &server,
            "/v1/monitors",
            Some(&key),
            &json!({"name": format!("<b>Buy now</b> {m}"), "notifications": {"emails": emails}}),
        );
        assert_eq!(st, 201, "{monitor}");
        let id = monitor["id"].as_str().unwrap();
        let b = crate::support::points_with_a_spike(&server, &key, id, 900.0);
        queued_by_monitors += 20 * b["anomalies"].as_u64().unwrap().min(1);
    }
    assert_eq!(queued_by_monitors, 40, "both monitors started an episode");
    let (_, outbox) = get(&server, "/v1/admin/outbox/email?limit=500", Some(&admin));
    let mails: Vec<&Value> = outbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "monitor_anomaly")
        .collect();
    assert_eq!(mails.len(), 5, "{outbox}");
    let (_, limits) = get(&server, "/v1/limits", Some(&key));
    assert_eq!(limits["mails_this_hour"], json!({"held": 5, "limit": 5}));
    assert_eq!(limits["mails_held_back_this_hour"], 35);
}

/// Issue 19: what the spec forbids is refused by the binary with the field and the rule, and
/// nothing is created: a `null` where no field is nullable, a blank name, an unknown or
/// mistyped detector setting, an out-of-range stream setting.
#[test]
fn requests_the_spec_forbids_are_refused_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let admin = server.admin_token();
    let post = |path: &str, token: &str, body: Value| {
        crate::support::post(&server, path, Some(token), &body)
    };
    let (s, b) = post(
        "/v1/admin/orgs",
        &admin,
        json!({"name": "Acme", "billing_email": null}),
    );
    assert_error(s, &b, 422, "validation_failed");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .starts_with("billing_email: null"),
        "{b}"
    );
    let (s, b) = post("/v1/admin/orgs", &admin, json!({"name": " \t "}));
    assert_error(s, &b, 422, "validation_failed");
    let (_, orgs) = get(&server, "/v1/admin/orgs", Some(&admin));
    assert_eq!(orgs["items"].as_array().unwrap().len(), 0, "{orgs}");

    let (_, key, _) = org_with_key(&server, &admin, "Acme");
    for (body, says) in [
        (
            json!({"name": "m", "description": null}),
            "description: null is not allowed here",
        ),
        (
            json!({"name": "m", "detector": {"windw": 5}}),
            "detector.windw: is not a known field",
        ),
        (
            json!({"name": "m", "sensitivity": 0.5, "detector": {"sensitivity": {}}}),
            "detector.sensitivity: expected a number, found an object",
        ),
    ] {
        let (s, b) = post("/v1/monitors", &key, body);
        assert_error(s, &b, 422, "validation_failed");
        assert!(b["message"].as_str().unwrap().starts_with(says), "{b}");
    }
    let (_, monitors) = get(&server, "/v1/monitors", Some(&key));
    assert_eq!(monitors["items"].as_array().unwrap().len(), 0, "{monitors}");
    let put =
        ureq::put(&server.url("/v1/streams/s1")).set("Authorization", &format!("Bearer {key}"));
    let (s, b) = crate::support::send(put, Some(&json!({"warmup": 7})));
    assert_error(s, &b, 422, "validation_failed");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .starts_with("warmup: 7 is below the minimum 8"),
        "{b}"
    );
}
