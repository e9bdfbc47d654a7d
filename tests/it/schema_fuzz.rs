//! Hostile input from the spec: schemathesis generates requests for every operation of
//! `openapi/openapi.json` (as the admin and as an organization) and checks that the running
//! binary never answers 5xx and that every answer matches the spec: status codes, content
//! types, headers (e.g. `Allow` on 405) and response schemas. Bounded: 15 examples per
//! operation and phase, fixed seed. A second run is stateful only, longer: it follows the
//! spec's links (create an organization, then its keys, plan, usage...; create a monitor,
//! then its points, anomalies, pause...) with the same checks on every step.
//!
//! One of schemathesis' checks is left out on purpose: `positive_data_acceptance`. Some rules
//! cannot be said in JSON Schema (a stream's `window` at most half its `baseline`; a cursor is
//! an opaque token from the previous page, so a generated one is refused), and their 422s and
//! 400s are documented answers. `negative_data_rejection` runs: a request the spec forbids (a
//! wrong type, a `null`, a value out of range, a name that breaks its pattern) is refused.

use std::process::Command;

use crate::support::{org_with_key, python, start_with};

fn schemathesis(base: &str, token: &str, settings: &[&str]) -> String {
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let bin = python().parent().unwrap().join("schemathesis");
    let out = Command::new(bin)
        .arg("run")
        .arg(&spec)
        .args([
            "--url",
            base,
            "-H",
            &format!("Authorization: Bearer {token}"),
        ])
        .args(settings)
        .args(["--seed", "7", "--no-color"])
        .args(["--exclude-checks", "positive_data_acceptance"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
    text
}

#[test]
fn schemathesis_finds_no_server_error_and_no_spec_violation() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), &["--rate-limit-per-sec", "0"], &[]);
    let admin = server.admin_token();
    let (_, key, _) = org_with_key(&server, &admin, "Fuzzed");
    for token in [admin.as_str(), key.as_str()] {
        // The live feed never ends by itself (it is a server-sent event stream): each
        // generated request would hold until schemathesis gives up on it. The stateful run
        // reaches it and checks its events against the spec; feedback::the_live_feed_* and
        // the browser test read it for real.
        let text = schemathesis(
            &server.base,
            token,
            &[
                "--max-examples",
                "15",
                "--exclude-operation-id",
                "streamAnomalies",
            ],
        );
        let generated = text
            .lines()
            .find_map(|l| {
                l.trim()
                    .split_once(" generated, ")
                    .map(|(n, _)| n.trim().parse::<u64>().unwrap_or(0))
            })
            .unwrap_or(0);
        assert!(generated > 500, "too few cases: {text}");
        eprintln!("schemathesis: {generated} cases, no failures");
    }
}

/// The number in a schemathesis summary line such as `API Links: 24 covered / ...`.
fn figure(text: &str, after: &str) -> u64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(after))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn stateful_schemathesis_follows_the_links_with_no_failure() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), &["--rate-limit-per-sec", "0"], &[]);
    let admin = server.admin_token();
    let (_, key, _) = org_with_key(&server, &admin, "Stateful");
    // The org key's run reaches fewer operations, and how many scenarios it completes varies
    // between runs with the same seed (112 to 1,105 cases seen, with the ids the server
    // hands out differing): its floor is lower.
    for (token, min_links, min_cases) in [(admin.as_str(), 10, 300), (key.as_str(), 5, 100)] {
        let text = schemathesis(
            &server.base,
            token,
            &["--phases", "stateful", "--max-examples", "150"],
        );
        let cases = text
            .lines()
            .find_map(|l| {
                l.trim()
                    .split_once(" generated, ")
                    .map(|(n, _)| n.to_string())
            })
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let links = figure(&text, "API Links:");
        assert!(cases > min_cases, "too few cases: {text}");
        assert!(
            links >= min_links,
            "too few links followed ({links}): {text}"
        );
        eprintln!("schemathesis stateful: {cases} cases, {links} links covered, no failures");
    }
}
