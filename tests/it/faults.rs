//! Storage faults: the disk filling up under a running server. A full disk is simulated with a
//! file-size limit on the server process (`prlimit`, SIGXFSZ ignored), so the store's writes
//! fail with an I/O error exactly as they would on a full file system, and space "returns"
//! when the limit is lifted, all without privileges.

use std::process::Command;

use serde_json::{json, Value};

use crate::support::{assert_error, get, launch, post, serve_command, wait_for, BIN};

fn set_file_size_limit(pid: u32, soft: &str) {
    let ok = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--fsize={soft}:unlimited"))
        .status()
        .expect("prlimit (util-linux)")
        .success();
    assert!(ok, "prlimit failed");
}

#[test]
fn a_full_disk_answers_503_loses_nothing_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    // `trap '' XFSZ` makes writes past the limit fail with EFBIG instead of killing the
    // process; an ignored signal stays ignored across exec.
    let inner = serve_command(dir.path(), &[], &[]);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("trap '' XFSZ; exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(inner.get_args())
        .env_remove("DRIFTLOCK_ADMIN_TOKEN")
        .env("DRIFTLOCK_LOG_LEVEL", "info");
    let mut server = launch(cmd, dir.path());
    let pid = server.child.as_ref().unwrap().id();
    let admin = server.admin_token();
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let (s, org) = post(
            &server,
            "/v1/admin/orgs",
            Some(&admin),
            &json!({"name": format!("before {i}")}),
        );
        assert_eq!(s, 201);
        acknowledged.push(org["id"].as_str().unwrap().to_string());
    }

    // The disk fills up: only the first 4 KiB of any file can still be written.
    set_file_size_limit(pid, "4096");
    let (s, body) = post(
        &server,
        "/v1/admin/orgs",
        Some(&admin),
        &json!({"name": "during"}),
    );
    assert_error(s, &body, 503, "storage_unavailable");
    let (s, body) = get(&server, "/readyz", None);
    assert_error(s, &body, 503, "not_ready");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("cannot take writes"));
    // Detection calls fail the same clear way and count nothing.
    let (s, _) = post(
        &server,
        "/v1/admin/orgs",
        Some(&admin),
        &json!({"name": "during 2"}),
    );
    assert_eq!(s, 503);

    // Space returns: the server recovers by itself.
    set_file_size_limit(pid, "unlimited");
    wait_for(30, "readyz after space returns", || {
        (get(&server, "/readyz", None).0 == 200).then_some(())
    });
    let (s, org) = post(
        &server,
        "/v1/admin/orgs",
        Some(&admin),
        &json!({"name": "after"}),
    );
    assert_eq!(s, 201, "{org}");
    acknowledged.push(org["id"].as_str().unwrap().to_string());
    let (_, workers) = get(&server, "/v1/admin/workers", Some(&admin));
    let health = workers["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "store-health")
        .cloned()
        .unwrap_or(Value::Null);
    assert!(health["passes"].as_u64() > Some(0), "{workers}");

    // Nothing acknowledged was lost, nothing refused was kept, and the file is sound after
    // a restart.
    let names = |server: &crate::support::Server| -> Vec<String> {
        let (_, list) = get(server, "/v1/admin/orgs?limit=100", Some(&admin));
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_string())
            .collect()
    };
    let before_restart = names(&server);
    assert!(!before_restart.iter().any(|n| n.starts_with("during")));
    let (_, log) = server.stop_with("TERM");
    assert!(log.contains("the store takes writes again"), "{log}");
    assert!(
        log.contains("store reopened after a storage failure"),
        "{log}"
    );
    let server = crate::support::start(dir.path());
    assert_eq!(names(&server), before_restart);
    for id in &acknowledged {
        assert_eq!(
            get(&server, &format!("/v1/admin/orgs/{id}"), Some(&admin)).0,
            200
        );
    }
}
