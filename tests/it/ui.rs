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
        "09-disputes",
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

/// The routes behind the UI: the overview counts what was metered (today's bar included),
/// a usage reset is a logged test operation, and sessions follow the cookie rules.
#[test]
fn the_overview_counts_detections_and_sessions_follow_the_cookie_rules() {
    use crate::support::{assert_error, get, org_with_key, post, send};
    use serde_json::json;

    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let admin = server.admin_token();
    let (org_id, _key, _) = org_with_key(&server, &admin, "Overview Org");
    let (s, _) = post(
        &server,
        "/v1/meter-usage",
        Some(&admin),
        &json!({"organization_id": org_id, "anomaly": true, "count": 1234}),
    );
    assert_eq!(s, 200);
    let (s, overview) = get(&server, "/v1/admin/overview", Some(&admin));
    assert_eq!(s, 200, "{overview}");
    assert_eq!(overview["detections"], 1234);
    let days = overview["detections_per_day"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    assert_eq!(days.last().unwrap()["detections"], 1234, "today's bar");
    let developer = overview["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plan"] == "developer")
        .unwrap();
    assert_eq!(developer["organizations"], 1);

    // Reset: a note is required; an unknown org is 404; the reset is a test operation.
    let reset = format!("/v1/admin/orgs/{org_id}/usage/reset");
    let (s, body) = post(&server, &reset, Some(&admin), &json!({"note": " "}));
    assert_error(s, &body, 422, "validation_failed");
    let (s, body) = post(
        &server,
        "/v1/admin/orgs/org_nope/usage/reset",
        Some(&admin),
        &json!({"note": "x"}),
    );
    assert_error(s, &body, 404, "not_found");
    let (s, usage) = post(&server, &reset, Some(&admin), &json!({"note": "test run"}));
    assert_eq!((s, usage["total_calls"].as_u64()), (200, Some(0)));
    let (_, actions) = get(
        &server,
        &format!("/v1/admin/billing-actions?org_id={org_id}"),
        Some(&admin),
    );
    let last = &actions["items"][0];
    assert_eq!(last["action"], "usage_reset");
    assert_eq!(last["detail"]["test_operation"], true);
    assert_eq!(last["detail"]["before"]["total_calls"], 1234);

    // Sessions: a wrong token is refused; behind a TLS proxy the cookie is Secure; the
    // cookie alone (no CSRF token) opens nothing; sign-out ends the session.
    let (s, body) = post(
        &server,
        "/v1/admin/session",
        None,
        &json!({"token": "dla_wrong"}),
    );
    assert_error(s, &body, 401, "unauthorized");
    let resp = ureq::post(&server.url("/v1/admin/session"))
        .set("X-Forwarded-Proto", "https")
        .send_json(json!({"token": admin}))
        .unwrap();
    let cookie_header = resp.header("set-cookie").unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(cookie_header.contains(attr), "{attr} in {cookie_header}");
    }
    let session: serde_json::Value = resp.into_json().unwrap();
    let cookie = cookie_header.split(';').next().unwrap().to_string();
    let csrf = session["csrf_token"].as_str().unwrap();
    let with_cookie = |method: &str, path: &str, csrf: Option<&str>| {
        let mut req = ureq::request(method, &server.url(path)).set("Cookie", &cookie);
        if let Some(csrf) = csrf {
            req = req.set("X-CSRF-Token", csrf);
        }
        send(req, None)
    };
    assert_eq!(with_cookie("GET", "/v1/admin/orgs", None).0, 401);
    assert_eq!(with_cookie("GET", "/v1/admin/orgs", Some("forged")).0, 401);
    assert_eq!(with_cookie("GET", "/v1/admin/orgs", Some(csrf)).0, 200);
    assert_eq!(
        with_cookie("GET", "/v1/admin/session", None).1["csrf_token"],
        csrf
    );
    assert_eq!(
        with_cookie("DELETE", "/v1/admin/session", Some(csrf)).0,
        204
    );
    assert_eq!(with_cookie("GET", "/v1/admin/orgs", Some(csrf)).0, 401);
    assert_eq!(with_cookie("GET", "/v1/admin/session", None).0, 401);
}
