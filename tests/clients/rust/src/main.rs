//! The README's tour through a Rust client that progenitor generates from
//! `openapi/openapi.json` when this crate is built: an admin creates an organization and a key;
//! the organization reads itself, sends a stream a JSON batch and an NDJSON batch (retried
//! with its `Idempotency-Key`), lists the stream's anomalies, creates a monitor, sends it
//! points and reads its usage. Reads `BASE_URL` and `ADMIN_TOKEN`; prints `rust client ok`.

progenitor::generate_api!(spec = "../../../openapi/openapi.json");

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};

fn client(base: &str, token: &str) -> Client {
    let mut headers = HeaderMap::new();
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).expect("token is a header");
    headers.insert(AUTHORIZATION, bearer);
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("an HTTP client");
    Client::new_with_client(base, http)
}

/// The tour's ordinary request events, then the intruder.
fn event(i: usize) -> serde_json::Map<String, serde_json::Value> {
    let users = ["ana", "ben", "chen", "dara", "eli"];
    let paths = ["/", "/search", "/cart", "/checkout"];
    let value = serde_json::json!({
        "user": users[i % users.len()],
        "path": paths[(i / 5) % paths.len()],
        "status": 200,
        "ms": 20 + (i * 7) % 21,
    });
    value.as_object().expect("an object").clone()
}

fn intruder() -> serde_json::Map<String, serde_json::Value> {
    let value = serde_json::json!({
        "user": "intruder", "path": "/admin/export?all=1", "status": 500, "ms": 98765,
    });
    value.as_object().expect("an object").clone()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let base = std::env::var("BASE_URL").expect("BASE_URL");
    let admin = client(&base, &std::env::var("ADMIN_TOKEN").expect("ADMIN_TOKEN"));

    let org = admin
        .create_organization(&types::CreateOrganizationRequest {
            name: "From Rust".parse().expect("a valid name"),
            billing_email: Some("rust@example.com".into()),
            plan: None,
        })
        .await
        .expect("create an organization")
        .into_inner();
    assert_eq!(org.plan, "developer");
    let key = admin
        .create_organization_key(
            &org.id,
            &types::CreateKeyRequest {
                name: "rust".parse().expect("a valid name"),
            },
        )
        .await
        .expect("create a key")
        .into_inner();
    let api = client(&base, &key.secret);
    let me = api
        .get_own_organization()
        .await
        .expect("own org")
        .into_inner();
    assert_eq!(me.id, org.id);

    // Path parameters with a rule are types of their own, checked before a request is made.
    let stream = "web-logs";
    let ingest_id: types::IngestStreamEventsStreamId = stream.parse().expect("a stream id");
    let ndjson_id: types::IngestStreamEventsNdjsonStreamId = stream.parse().expect("a stream id");
    let list_id: types::ListStreamAnomaliesStreamId = stream.parse().expect("a stream id");

    // A JSON batch: 200 ordinary requests, then the intruder.
    let mut events: Vec<_> = (0..200).map(event).collect();
    events.push(intruder());
    let batch = api
        .ingest_stream_events(&ingest_id, None, &events)
        .await
        .expect("a JSON batch")
        .into_inner();
    assert_eq!(batch.results.len(), 201);
    assert!(batch.results[200].anomaly, "the intruder is flagged");
    assert!(batch.results[200].explanation.is_some());
    let mut detections = batch.detections_counted;

    // An NDJSON batch, as a log shipper sends it, then the same request again.
    let lines: Vec<String> = (200..203)
        .map(|i| serde_json::Value::Object(event(i)).to_string())
        .collect();
    let ndjson = lines.join("\n") + "\n";
    let key = "tour-ndjson-1".parse().expect("a valid Idempotency-Key");
    let first = api
        .ingest_stream_events_ndjson(&ndjson_id, Some(&key), ndjson.clone())
        .await
        .expect("an NDJSON batch");
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = first.into_inner();
    assert_eq!(first.results.len(), 3);
    detections += first.detections_counted;
    let again = api
        .ingest_stream_events_ndjson(&ndjson_id, Some(&key), ndjson)
        .await
        .expect("the retried NDJSON batch");
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(
        again.into_inner().period_detections,
        first.period_detections
    );

    let anomalies = api
        .list_stream_anomalies(&list_id, None, None, None, None)
        .await
        .expect("the stream's anomalies")
        .into_inner();
    assert!(anomalies
        .items
        .iter()
        .any(|a| a.event["user"] == "intruder"));

    // A monitor and a series with one spike.
    let monitor = api
        .create_monitor(&types::CreateMonitorRequest {
            name: "checkout latency".parse().expect("a valid name"),
            description: None,
            sensitivity: None,
            detector: None,
            notifications: None,
        })
        .await
        .expect("create a monitor")
        .into_inner();
    let points: Vec<_> = (0..300)
        .map(|i| types::PointIn {
            timestamp: types::PointInTimestamp::Double((1_800_000_000 + 60 * i) as f64),
            value: if i == 290 {
                400.0
            } else {
                100.0 + ((i * 37) % 11) as f64
            },
        })
        .collect();
    let sent = api
        .send_monitor_points(
            &monitor.id,
            None,
            &types::PointsBody::Batch(types::PointBatch { points }),
        )
        .await
        .expect("send points")
        .into_inner();
    assert_eq!(sent.accepted, 300);
    detections += sent.detections_counted;
    let listed = api
        .list_monitor_anomalies(&monitor.id, None, None, None, None)
        .await
        .expect("the monitor's anomalies")
        .into_inner();
    assert_eq!(listed.items.len() as u64, sent.detections_counted);

    let usage = api.get_usage().await.expect("usage").into_inner();
    assert_eq!(usage.total_calls, detections, "usage counts the detections");
    println!("rust client ok {} {detections}", org.id);
}
