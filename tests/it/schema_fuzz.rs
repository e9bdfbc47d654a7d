//! Hostile input from the spec: schemathesis generates requests for every operation of
//! `openapi/openapi.json` (as the admin and as an organization) and checks that the running
//! binary never answers 5xx and that every answer matches the spec: status codes, content
//! types, headers (e.g. `Allow` on 405) and response schemas. Bounded: 15 examples per
//! operation and phase, fixed seed.
//!
//! Two of schemathesis' checks are left out on purpose: `positive_data_acceptance` (our 422s
//! for semantic rules such as an empty name are documented answers, not schema violations) and
//! `negative_data_rejection` (poem-openapi reads a JSON number or boolean where a string is
//! declared as that string, a lenient parse rather than an error).

use std::process::Command;

use crate::support::{org_with_key, python, start_with};

fn schemathesis(base: &str, token: &str) -> String {
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
        .args(["--max-examples", "15", "--seed", "7", "--no-color"])
        .args([
            "--exclude-checks",
            "positive_data_acceptance,negative_data_rejection",
        ])
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
        let text = schemathesis(&server.base, token);
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
