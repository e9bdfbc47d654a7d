//! Operations: the systemd unit verifies cleanly, the example config is complete and valid,
//! a backup of a busy server restores with every acknowledged record, `doctor` says what is
//! wrong, and stores written by every earlier schema version open and migrate.

use std::{
    path::Path,
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use serde_json::{json, Value};

use crate::support::{get, start, start_with, BIN};

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(repo("packaging/systemd/driftlock.service")).unwrap();
    for must in [
        "Type=notify",
        "StateDirectory=driftlock",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
        "Restart=on-failure",
        "EnvironmentFile=",
    ] {
        assert!(unit.contains(must), "the unit lacks {must}");
    }
    // verify checks that ExecStart exists: point it at the binary under test.
    let path = dir.path().join("driftlock.service");
    std::fs::write(&path, unit.replace("/usr/bin/driftlock", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn the_example_config_names_every_setting_and_starts_the_server() {
    let example = std::fs::read_to_string(repo("packaging/driftlock.example.toml")).unwrap();
    for env in driftlock::config::KNOWN_ENV {
        assert!(example.contains(env), "the example does not mention {env}");
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(
        dir.path(),
        &[
            "--config",
            repo("packaging/driftlock.example.toml").to_str().unwrap(),
        ],
        &[],
    );
    let (s, _) = get(&server, "/healthz", None);
    assert_eq!(s, 200);
}

#[test]
fn a_backup_of_a_busy_server_restores_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data);
    let admin = server.admin_token();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (url, admin, acknowledged, stop) = (
                server.url("/v1/admin/orgs"),
                admin.clone(),
                acknowledged.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                for i in 0..5_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = ureq::post(&url)
                        .set("Authorization", &format!("Bearer {admin}"))
                        .send_json(json!({"name": format!("busy {w}-{i}")}));
                    if let Ok(r) = r {
                        let v: Value = r.into_json().unwrap();
                        acknowledged
                            .lock()
                            .unwrap()
                            .push(v["id"].as_str().unwrap().to_string());
                    }
                }
            })
        })
        .collect();
    while acknowledged.lock().unwrap().len() < 100 {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Every write acknowledged before the backup starts must be in it.
    let before: Vec<String> = acknowledged.lock().unwrap().clone();
    let backup = dir.path().join("snapshot.redb");
    let out = Command::new(BIN)
        .args(["backup", "--output"])
        .arg(&backup)
        .arg("--data-dir")
        .arg(&data)
        .arg("--server")
        .arg(&server.base)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }

    let restored = dir.path().join("restored");
    let out = Command::new(BIN)
        .args(["restore", "--input"])
        .arg(&backup)
        .arg("--data-dir")
        .arg(&restored)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .args(["restore", "--input"])
        .arg(&backup)
        .arg("--data-dir")
        .arg(&restored)
        .output()
        .unwrap();
    assert!(!out.status.success(), "restoring over a store is refused");

    std::fs::copy(data.join("admin.token"), restored.join("admin.token")).unwrap();
    let server = start(&restored);
    let mut found = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            Some(c) => format!("/v1/admin/orgs?limit=500&cursor={c}"),
            None => "/v1/admin/orgs?limit=500".into(),
        };
        let (_, page) = get(&server, &path, Some(&admin));
        found.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let missing: Vec<_> = before.iter().filter(|id| !found.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged orgs missing from the backup",
        missing.len()
    );
}

#[test]
fn an_offline_backup_needs_no_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = start(&data);
    server.stop_with("TERM");
    let backup = dir.path().join("b.redb");
    let out = Command::new(BIN)
        .args(["backup", "--output"])
        .arg(&backup)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(backup.exists());
}

#[test]
fn doctor_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = start(&data);
    server.stop_with("TERM");
    let out = Command::new(BIN)
        .args(["doctor", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("schema version") && text.contains("0 problem(s)"),
        "{text}"
    );

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        data.join("admin.token"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["doctor", "--data-dir"])
        .arg(&data)
        .args([
            "--smtp-host",
            "127.0.0.1",
            "--smtp-port",
            &crate::support::free_port().to_string(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("readable by other users"), "{text}");
    assert!(text.contains("cannot be reached"), "{text}");
}

/// Stores written by the binaries of earlier schema versions (tests/fixtures/make-fixture.sh)
/// open, migrate to the current version and keep their data.
#[test]
fn stores_from_every_earlier_schema_version_migrate() {
    let current = driftlock::store::schema::CURRENT_SCHEMA_VERSION;
    let mut checked = 0;
    for n in 1..current {
        let fixture = repo(&format!("tests/fixtures/store-v{n}.redb"));
        assert!(
            fixture.exists(),
            "missing fixture {}; make it with tests/fixtures/make-fixture.sh",
            fixture.display()
        );
        let facts: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture.with_extension("json")).unwrap())
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&fixture, dir.path().join("driftlock.redb")).unwrap();
        let token = repo(&format!("tests/fixtures/store-v{n}.admin-token"));
        std::fs::copy(&token, dir.path().join("admin.token")).unwrap();
        std::fs::set_permissions(
            dir.path().join("admin.token"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();

        let server = start(dir.path());
        let (_, ready) = get(&server, "/readyz", None);
        assert_eq!(ready["store_schema_version"], current, "v{n} migrated");
        let key = facts["org_key"].as_str().unwrap();
        let (s, org) = get(&server, "/v1/org", Some(key));
        assert_eq!(
            (s, org["id"].as_str()),
            (200, facts["org_id"].as_str()),
            "v{n}: the old key still works"
        );
        assert_eq!(org["name"], "Fixture Org");
        if facts["stream_events"].as_u64() > Some(0) {
            let (_, stream) = get(&server, "/v1/streams/fixture-stream", Some(key));
            assert_eq!(
                stream["events_seen"], facts["stream_events"],
                "v{n}: stream kept"
            );
            // The fixture's usage stays in the period it was counted in (the month the
            // fixture was made), whatever month the server's clock reads now.
            let (_, history) = get(&server, "/v1/usage/history?limit=500", Some(key));
            let periods = history["items"].as_array().expect("usage history");
            let counted = periods
                .iter()
                .map(|p| p["total_calls"].as_u64().unwrap_or(0))
                .max();
            assert!(
                counted >= facts["metered"].as_u64(),
                "v{n}: usage kept in its own period: {history}"
            );
            let (_, usage) = get(&server, "/v1/usage", Some(key));
            assert_eq!(usage["plan"], "standard", "v{n}: {usage}");
        }
        let (s, _) = crate::support::post(
            &server,
            "/v1/monitors",
            Some(key),
            &json!({"name": "after upgrade"}),
        );
        assert_eq!(s, 201, "v{n}: new features work on the migrated store");
        checked += 1;
    }
    assert_eq!(checked, current - 1);
}
