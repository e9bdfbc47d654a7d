//! Crash safety and schema checks: `kill -9` in the middle of writes loses nothing that was
//! acknowledged, and a store from a newer release is refused with a clear message.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::json;

use crate::support::{self, get, start};

#[test]
fn kill_9_mid_writes_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let admin = server.admin_token();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let url = server.url("/v1/admin/orgs");
            let (admin, acknowledged, stop) = (admin.clone(), acknowledged.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(5))
                    .build();
                // Bounded: at most 2,000 writes or 20 s per writer, whichever comes first.
                let deadline = Instant::now() + Duration::from_secs(20);
                for i in 0..2_000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    let resp = agent
                        .post(&url)
                        .set("Authorization", &format!("Bearer {admin}"))
                        .send_json(json!({"name": format!("writer {w} org {i}")}));
                    match resp {
                        Ok(r) if r.status() == 201 => {
                            let v: serde_json::Value = r.into_json().unwrap();
                            acknowledged
                                .lock()
                                .unwrap()
                                .push(v["id"].as_str().unwrap().to_string());
                        }
                        _ => break, // the server is gone
                    }
                }
            })
        })
        .collect();

    // Let writes flow, then pull the plug while they are in flight.
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < 50 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, _) = server.stop_with("KILL");
    assert!(!status.success());
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 50,
        "only {} writes before the kill",
        acknowledged.len()
    );

    let server = start(dir.path());
    let (s, ready) = get(&server, "/readyz", None);
    assert_eq!(s, 200);
    assert_eq!(
        ready["store_schema_version"],
        driftlock::store::schema::CURRENT_SCHEMA_VERSION
    );
    let mut stored = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1_000 {
        let path = match &cursor {
            Some(c) => format!("/v1/admin/orgs?limit=500&cursor={c}"),
            None => "/v1/admin/orgs?limit=500".into(),
        };
        let (_, page) = get(&server, &path, Some(&admin));
        for org in page["items"].as_array().unwrap() {
            stored.insert(org["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged orgs lost: {lost:?}",
        lost.len()
    );
}

#[test]
fn a_store_from_a_newer_release_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    server.stop_with("TERM");
    {
        let db = redb::Database::open(dir.path().join(driftlock::store::DB_FILE)).unwrap();
        driftlock::store::schema::force_version(&db, 99).unwrap();
    }
    let out = support::serve_command(dir.path(), &[], &[])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "schema version 99, newer than this binary supports ({})",
        driftlock::store::schema::CURRENT_SCHEMA_VERSION
    );
    assert!(err.contains(&want), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "it must not start listening"
    );
}
