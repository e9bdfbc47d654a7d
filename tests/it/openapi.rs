//! The OpenAPI contract: the checked-in spec equals the generated one and validates as OpenAPI 3;
//! what it says of answers holds on the binary. (Generated clients: `clients.rs`.)

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::support::{python, start, BIN};

const REFRESH: &str = "cargo run -q -- openapi > openapi/openapi.json";

fn checked_in() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json")
}

#[test]
fn the_checked_in_spec_is_what_the_code_generates() {
    let out = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let on_disk = std::fs::read_to_string(checked_in()).unwrap_or_default();
    assert!(
        generated == on_disk,
        "openapi/openapi.json differs from the generated spec; refresh it with: {REFRESH}"
    );

    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let served = ureq::get(&server.url("/openapi.json"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let served: serde_json::Value = serde_json::from_str(&served).unwrap();
    let generated: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(
        served, generated,
        "the served spec differs from `driftlock openapi`"
    );
    let docs = ureq::get(&server.url("/docs")).call().unwrap();
    assert_eq!(docs.status(), 200);
    assert!(
        docs.into_string().unwrap().contains("swagger"),
        "interactive docs are served"
    );
}

#[test]
fn the_spec_validates_as_openapi_3() {
    let out = Command::new(python())
        .args(["-m", "openapi_spec_validator"])
        .arg(checked_in())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("OK"), "{text}");
}

/// Issue 19: every 201 answer says where the new resource is (`Location`, declared in the
/// spec), and that address answers 200 with the same id.
#[test]
fn every_created_resource_has_a_location_that_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::start(dir.path());
    let admin = server.admin_token();
    let create =
        |path: &str, token: &str, body: serde_json::Value| -> (String, serde_json::Value) {
            let r = ureq::post(&server.url(path))
                .set("Authorization", &format!("Bearer {token}"))
                .send_json(body)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(r.status(), 201, "{path}");
            let location = r
                .header("Location")
                .unwrap_or_else(|| panic!("{path}: no Location"))
                .to_string();
            (location, r.into_json().unwrap())
        };
    let follow = |location: &str, token: &str| -> serde_json::Value {
        let (st, b) = crate::support::get(&server, location, Some(token));
        assert_eq!(st, 200, "{location}: {b}");
        b
    };
    let (loc, org) = create(
        "/v1/admin/orgs",
        &admin,
        serde_json::json!({"name": "Acme"}),
    );
    assert_eq!(follow(&loc, &admin)["id"], org["id"]);
    let org_id = org["id"].as_str().unwrap();
    let (loc, key) = create(
        &format!("/v1/admin/orgs/{org_id}/keys"),
        &admin,
        serde_json::json!({"name": "k"}),
    );
    assert_eq!(follow(&loc, &admin)["id"], key["key"]["id"]);
    let secret = key["secret"].as_str().unwrap().to_string();
    let (loc, platform) = create(
        "/v1/admin/keys",
        &admin,
        serde_json::json!({"name": "svc", "scope": "service"}),
    );
    assert_eq!(follow(&loc, &admin)["id"], platform["key"]["id"]);
    let (loc, own) = create("/v1/keys", &secret, serde_json::json!({"name": "rotated"}));
    assert_eq!(follow(&loc, &secret)["id"], own["key"]["id"]);
    let (loc, monitor) = create("/v1/monitors", &secret, serde_json::json!({"name": "m"}));
    assert_eq!(follow(&loc, &secret)["id"], monitor["id"]);
    let r = ureq::post(&server.url("/v1/admin/session"))
        .send_json(serde_json::json!({"token": admin}))
        .unwrap();
    assert_eq!(
        (r.status(), r.header("Location")),
        (201, Some("/v1/admin/session"))
    );
    // The spec says so for every 201.
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(checked_in()).unwrap()).unwrap();
    let mut created = 0;
    for item in spec["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if let Some(answer) = op["responses"].get("201") {
                created += 1;
                assert!(
                    answer["headers"].get("Location").is_some(),
                    "{}",
                    op["operationId"]
                );
            }
        }
    }
    assert_eq!(created, 6);
}

/// Issue 19: a body that does not fit its operation's schema is refused naming the field and
/// the rule (the framework named only a type: `integer(uint32) ... StreamSettings`), and a
/// string field takes only a string (`{"name": false}` made an organization named "false").
#[test]
fn a_body_that_breaks_the_schema_is_refused_naming_the_field_and_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::start(dir.path());
    let admin = server.admin_token();
    let (_, key, _) = crate::support::org_with_key(&server, &admin, "Acme");
    let put = |body: serde_json::Value| {
        crate::support::send(
            ureq::put(&server.url("/v1/streams/web"))
                .set("Authorization", &format!("Bearer {key}")),
            Some(&body),
        )
    };
    let (st, b) = put(serde_json::json!({"window": -5}));
    crate::support::assert_error(st, &b, 422, "validation_failed");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .starts_with("window: -5 is below the minimum 1"),
        "{b}"
    );
    for (body, field) in [
        (
            serde_json::json!({"name": false}),
            "name: expected a string, found a boolean",
        ),
        (
            serde_json::json!({"name": 12}),
            "name: expected a string, found a number",
        ),
        (
            serde_json::json!({"name": "x", "billing_email": 5}),
            "billing_email: expected a string",
        ),
        (
            serde_json::json!({"billing_email": "a@b.c"}),
            "name: a required field is missing",
        ),
    ] {
        let (st, b) = crate::support::post(&server, "/v1/admin/orgs", Some(&admin), &body);
        crate::support::assert_error(st, &b, 422, "validation_failed");
        assert!(
            b["message"].as_str().unwrap().starts_with(field),
            "{body}: {b}"
        );
    }
    let (_, orgs) = crate::support::get(&server, "/v1/admin/orgs", Some(&admin));
    assert_eq!(
        orgs["items"].as_array().unwrap().len(),
        1,
        "nothing was created: {orgs}"
    );
}
