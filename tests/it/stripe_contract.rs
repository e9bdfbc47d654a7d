//! The contract check of issue 17: every request Driftlock can send to Stripe
//! (`driftlock::sync::stripe_requests::every_shape`) is valid against the parameter
//! definitions of the official `stripe` Python library at the version that pins Driftlock's
//! API version (tests/it/stripe_contract.py walks each bracketed key through the library's
//! TypedDict definitions).

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

use driftlock::sync::{stripe::STRIPE_API_VERSION, stripe_requests};
use serde_json::{json, Value};

/// stripe-python 10.x pins API version 2024-06-20, Driftlock's.
const STRIPE_LIBRARY: &str = "stripe==10.12.1";

fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        crate::support::venv(
            "stripe-contract-venv",
            &format!(".installed-{STRIPE_LIBRARY}"),
            &[STRIPE_LIBRARY],
        )
    })
}

/// Runs the checker on `requests`: (passed, the problems it printed).
fn check(requests: &Value) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/stripe_contract.py");
    let mut child = Command::new(venv())
        .arg(script)
        .arg(STRIPE_API_VERSION)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(requests.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_request_driftlock_sends_is_valid_for_the_pinned_stripe_api_version() {
    let shapes = stripe_requests::every_shape(STRIPE_API_VERSION);
    let (ok, report) = check(&serde_json::to_value(&shapes).unwrap());
    assert!(ok, "{report}");
    assert!(
        report.contains(&format!("checked {} requests", shapes.len())),
        "{report}"
    );
}

#[test]
fn the_contract_check_catches_unknown_parameters_wrong_nesting_and_bad_values() {
    let bad = json!([
        {"method": "POST", "path": "/v1/checkout/sessions", "params": [
            ["mode", "subscription"], ["line_items[0][prize]", "price_1"],
            ["subscription_data[anchor]", "1"], ["allow_promotion_codes", "yes"]]},
        // The promotion code form of API versions from 2025-09-30 on.
        {"method": "POST", "path": "/v1/promotion_codes", "params":
            stripe_requests::promotion_code("2025-09-30.clover", "c", "CODE").params},
        {"method": "POST", "path": "/v1/billing/meter_events", "params": [["payload[value]", "1"]]},
    ]);
    let (ok, report) = check(&bad);
    assert!(!ok, "{report}");
    for problem in [
        "line_items[0][prize]='price_1': unknown parameter",
        "subscription_data[anchor]='1': unknown parameter",
        "allow_promotion_codes='yes': 'yes' is not a boolean",
        "promotion[type]='coupon': unknown parameter",
        "required parameter coupon is missing",
        "required parameter event_name is missing",
    ] {
        assert!(report.contains(problem), "{problem} not in: {report}");
    }
}
