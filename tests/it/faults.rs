//! Storage faults. The disk filling up under a running server: a file-size limit on the server
//! process (`prlimit`, SIGXFSZ ignored) makes the store's writes fail with an I/O error exactly
//! as they would on a full file system, and space "returns" when the limit is lifted, all
//! without privileges. A read-only data directory at start: file modes, which bind root only
//! once it drops CAP_DAC_OVERRIDE (`setpriv`, for the server alone).

use std::{os::unix::fs::PermissionsExt, path::Path, process::Command};

use serde_json::{json, Value};

use crate::support::{
    assert_error, get, launch, launch_unready, post, serve_command, start, wait_for, Server, BIN,
};

/// `driftlock serve` on `dir`, started through `wrapper` (a program and its arguments that end
/// by running the binary with the arguments that follow).
fn wrapped_serve(wrapper: &[&str], dir: &Path) -> Command {
    let inner = serve_command(dir, &[], &[]);
    let mut cmd = Command::new(wrapper[0]);
    cmd.args(&wrapper[1..])
        .arg(BIN)
        .args(inner.get_args())
        .env_remove("DRIFTLOCK_ADMIN_TOKEN")
        .env("DRIFTLOCK_LOG_LEVEL", "info");
    cmd
}

fn org_names(server: &Server, admin: &str) -> Vec<String> {
    let (s, list) = get(server, "/v1/admin/orgs?limit=100", Some(admin));
    assert_eq!(s, 200, "{list}");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect()
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

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
    let cmd = wrapped_serve(
        &["sh", "-c", "trap '' XFSZ; exec \"$0\" \"$@\""],
        dir.path(),
    );
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
    let before_restart = org_names(&server, &admin);
    assert!(!before_restart.iter().any(|n| n.starts_with("during")));
    let (_, log) = server.stop_with("TERM");
    assert!(log.contains("the store takes writes again"), "{log}");
    assert!(
        log.contains("store reopened after a storage failure"),
        "{log}"
    );
    let server = start(dir.path());
    assert_eq!(org_names(&server, &admin), before_restart);
    for id in &acknowledged {
        assert_eq!(
            get(&server, &format!("/v1/admin/orgs/{id}"), Some(&admin)).0,
            200
        );
    }
}

#[test]
fn a_read_only_data_directory_answers_503_and_recovers_when_it_is_writable_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let admin = server.admin_token();
    for i in 0..3 {
        let (s, _) = post(
            &server,
            "/v1/admin/orgs",
            Some(&admin),
            &json!({"name": format!("kept {i}")}),
        );
        assert_eq!(s, 201);
    }
    let acknowledged = org_names(&server, &admin);
    server.stop_with("TERM");

    // The data directory and the store turn read-only (an operator's chmod, a read-only
    // volume, a unit without write access to its state directory).
    let store_file = dir.path().join("driftlock.redb");
    set_mode(&store_file, 0o400);
    set_mode(dir.path(), 0o500);
    let bytes_before = std::fs::read(&store_file).unwrap();
    let running_as_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    let cmd = if running_as_root {
        // Root passes file modes; without these capabilities it obeys them like any user.
        wrapped_serve(
            &[
                "setpriv",
                "--bounding-set=-dac_override,-dac_read_search,-fowner",
                "--inh-caps=-all",
            ],
            dir.path(),
        )
    } else {
        wrapped_serve(&["env"], dir.path())
    };
    let mut server = launch_unready(cmd, dir.path());

    // It runs, says why it cannot work, and refuses calls with a clear 503.
    let (s, body) = get(&server, "/readyz", None);
    assert_error(s, &body, 503, "not_ready");
    let why = body["message"].as_str().unwrap();
    assert!(
        why.contains("cannot be opened for writing") && why.contains("Permission denied"),
        "{why}"
    );
    assert_eq!(get(&server, "/healthz", None).0, 200, "alive, not ready");
    let (s, body) = get(&server, "/v1/admin/orgs", Some(&admin));
    assert_error(s, &body, 503, "storage_unavailable");
    let (s, body) = post(
        &server,
        "/v1/admin/orgs",
        Some(&admin),
        &json!({"name": "refused"}),
    );
    assert_error(s, &body, 503, "storage_unavailable");
    // A few store-health passes later the file is still byte for byte what it was.
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    assert_eq!(get(&server, "/readyz", None).0, 503);
    assert!(
        std::fs::read(&store_file).unwrap() == bytes_before,
        "the store was written"
    );

    // Writable again: the server opens the store by itself, with everything in it.
    set_mode(dir.path(), 0o700);
    set_mode(&store_file, 0o600);
    wait_for(30, "readyz once the directory is writable", || {
        (get(&server, "/readyz", None).0 == 200).then_some(())
    });
    assert_eq!(org_names(&server, &admin), acknowledged);
    let (s, _) = post(
        &server,
        "/v1/admin/orgs",
        Some(&admin),
        &json!({"name": "after"}),
    );
    assert_eq!(s, 201);
    let (_, log) = server.stop_with("TERM");
    assert!(
        log.contains("the store cannot be opened for writing"),
        "{log}"
    );
    assert!(log.contains("the store takes writes again"), "{log}");
}
