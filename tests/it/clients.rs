//! Clients generated from `openapi/openapi.json` by three generators nobody here wrote, each
//! running the README's tour (`tests/clients/*/tour`) against the real binary with no hand
//! edits: progenitor (Rust, generated when its crate builds), openapi-typescript with
//! openapi-fetch (TypeScript, checked by `tsc` in strict mode) and openapi-python-client.
//! Each tour creates an organization and a key, reads the organization, sends a stream a JSON
//! batch with an intruder (flagged) and an NDJSON batch twice (the retry is a replay), lists the
//! stream's anomalies, sends a monitor a series, and checks that usage equals its detections.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use crate::support::{python, start, Server};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn clients() -> PathBuf {
    repo().join("tests/clients")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `command` with the server's address and the admin token; asserts it prints `expect`.
fn tour(mut command: Command, server: &Server, expect: &str) {
    let out = command
        .env("BASE_URL", &server.base)
        .env("ADMIN_TOKEN", server.admin_token())
        .output()
        .expect("run the tour");
    let text = text(&out);
    assert!(
        out.status.success() && text.contains(expect),
        "the tour failed:\n{text}"
    );
}

#[test]
fn a_rust_client_generated_by_progenitor_runs_the_tour() {
    let manifest = clients().join("rust/Cargo.toml");
    let target = repo().join("target/clients/rust");
    let build = Command::new(env!("CARGO"))
        .args(["build", "--locked", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .output()
        .expect("cargo");
    assert!(
        build.status.success(),
        "progenitor's client did not build from the spec:\n{}",
        text(&build)
    );
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let bin = target.join("debug/driftlock-tour-rust");
    tour(Command::new(bin), &server, "rust client ok");
}

#[test]
fn a_typescript_client_from_openapi_typescript_type_checks_and_runs_the_tour() {
    let dir = clients().join("ts");
    let marker = dir.join("node_modules/.installed-1");
    if !marker.exists() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("npm (Node.js) is needed for the TypeScript client")
            .success();
        assert!(ok, "npm ci in tests/clients/ts failed");
        std::fs::write(&marker, "").unwrap();
    }
    for step in ["generate", "check"] {
        let out = Command::new("npm")
            .args(["run", "--silent", step])
            .current_dir(&dir)
            .output()
            .expect("npm");
        assert!(out.status.success(), "npm run {step}:\n{}", text(&out));
    }
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path());
    let mut node = Command::new("node");
    node.arg(dir.join("build/tour.js"));
    tour(node, &server, "typescript client ok");
}

#[test]
fn a_python_client_from_openapi_python_client_runs_the_tour() {
    let dir = tempfile::tempdir().unwrap();
    // No post hooks: the generated code is used exactly as generated (no formatter run).
    let config = dir.path().join("config.yml");
    std::fs::write(&config, "post_hooks: []\n").unwrap();
    let generator = python().parent().unwrap().join("openapi-python-client");
    let out = Command::new(generator)
        .args(["generate", "--path"])
        .arg(repo().join("openapi/openapi.json"))
        .arg("--output-path")
        .arg(dir.path().join("client"))
        .args(["--meta", "none", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let generated = text(&out);
    assert!(out.status.success(), "generation failed:\n{generated}");
    assert!(
        !generated.contains("Warning"),
        "the generator left parts of the spec out:\n{generated}"
    );
    let data = dir.path().join("data");
    let server = start(&data);
    let mut py = Command::new(python());
    py.arg(clients().join("python/tour.py"))
        .env("CLIENT_PARENT", dir.path());
    tour(py, &server, "python client ok");
}
