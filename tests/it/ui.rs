//! The admin web UI in a real browser: Debian's headless Chromium driven by playwright-core
//! (tests/ui/e2e.mjs) against the real binary on loopback. Screenshots of every page land in
//! target/ui-screenshots/.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::support::{start, Server};

const CHROMIUM: &str = "/usr/bin/chromium";

/// tests/ui/node_modules from the committed lock file, installed once (npm's registry only;
/// playwright-core downloads no browser).
fn ui_test_deps() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let marker = dir.join("node_modules/.installed-1.64.1");
    if !marker.exists() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("npm (Node.js) is needed for the UI tests")
            .success();
        assert!(ok, "npm ci in tests/ui failed");
        std::fs::write(&marker, "").unwrap();
    }
    dir
}

fn run_e2e(server: &Server, screenshots: &Path) -> (bool, String) {
    let dir = ui_test_deps();
    let out = Command::new("node")
        .arg(dir.join("e2e.mjs"))
        .env("DRIFTLOCK_URL", &server.base)
        .env("ADMIN_TOKEN", server.admin_token())
        .env("SCREENSHOTS", screenshots)
        .env("CHROMIUM", CHROMIUM)
        .output()
        .expect("run node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn an_operator_signs_in_manages_an_org_and_reads_a_monitor_chart_in_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium and chromium-driver (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    let (ok, log) = run_e2e(&server, &screenshots);
    println!("{log}");
    assert!(ok, "the browser test failed:\n{log}");
    for page in [
        "01-sign-in",
        "02-overview",
        "03-organizations",
        "04-organization",
        "05-monitor",
        "06-billing",
        "07-overview-phone",
    ] {
        let shot = screenshots.join(format!("{page}.png"));
        assert!(
            std::fs::metadata(&shot)
                .map(|m| m.len() > 1_000)
                .unwrap_or(false),
            "screenshot {} missing",
            shot.display()
        );
    }
}

#[test]
fn the_ui_is_served_with_a_strict_content_security_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let resp = ureq::get(&server.url("/admin/")).call().unwrap();
    assert_eq!(resp.content_type(), "text/html");
    let csp = resp.header("content-security-policy").unwrap().to_string();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    let etag = resp.header("etag").unwrap().to_string();
    let again = ureq::get(&server.url("/admin/"))
        .set("If-None-Match", &etag)
        .call()
        .unwrap();
    assert_eq!(again.status(), 304);
    // `/admin` redirects to the slash form; unknown files are JSON 404s.
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let redirect = agent.get(&server.url("/admin")).call().unwrap();
    assert_eq!(
        (redirect.status(), redirect.header("location")),
        (308, Some("/admin/"))
    );
    match ureq::get(&server.url("/admin/nope.js")).call() {
        Err(ureq::Error::Status(404, resp)) => {
            let body: serde_json::Value = resp.into_json().unwrap();
            assert_eq!(body["code"], "not_found");
        }
        other => panic!("expected 404, got {other:?}"),
    }
    let vendored = ureq::get(&server.url("/admin/vendor/uplot-1.6.32/uPlot.esm.js"))
        .call()
        .unwrap();
    assert_eq!(vendored.content_type(), "text/javascript");
}
