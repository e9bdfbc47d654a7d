//! Every billing and key change leaves a record naming who made it: organization and key
//! changes in the audit log (`/v1/admin/audit`), billing changes in the billing actions
//! (`/v1/admin/billing-actions`). Every changing route of the spec is classified below, so a new
//! one must say where it is recorded, or why it is no billing or key change.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::support::{delete, get, post, send, start, Server};

/// Changing routes and the record each leaves: `audit:<action>` or `billing:<action>`.
const RECORDED: &[(&str, &str)] = &[
    ("createOrganization", "audit:org.created"),
    ("createOrganizationKey", "audit:key.created"),
    ("createPlatformKey", "audit:key.created"),
    ("revokeKey", "audit:key.revoked"),
    ("createOwnKey", "audit:key.created"),
    ("revokeOwnKey", "audit:key.revoked"),
    ("putPlan", "billing:plan_catalog_changed"),
    ("setOrganizationPlan", "billing:plan_changed"),
    ("setQuotaPolicy", "billing:quota_policy_changed"),
    ("resetOrganizationUsage", "billing:usage_reset"),
    ("setDunning", "billing:dunning_set"),
    // Need Stripe; checked by store::meter_outbox's unit test and stripe::reconciliation_*.
    ("retryStripeOutbox", "billing:stripe_usage_retried"),
    ("reconcileBilling", "billing:meter_correction_queued"),
    // Need a stored anomaly; checked by feedback::a_disputed_stream_detection_* (accepted at
    // once) and feedback::disputes_beyond_the_share_* (queued, accepted and rejected).
    ("giveStreamAnomalyFeedback", "billing:dispute_accepted"),
    ("giveMonitorAnomalyFeedback", "billing:dispute_accepted"),
    ("decideDispute", "billing:dispute_accepted"),
];

/// Changing routes that change no billing or key state, and why.
const NOT_BILLING_OR_KEYS: &[(&str, &str)] = &[
    (
        "retryEmail",
        "re-sends a mail; the outbox row keeps its attempts",
    ),
    ("sendTestEmail", "sends a test mail"),
    (
        "signIn",
        "sessions live in memory and open nothing by themselves",
    ),
    ("signOut", "ends a session"),
    (
        "createCheckout",
        "a Stripe link; the change arrives as a webhook",
    ),
    ("createPortalSession", "a Stripe link"),
    (
        "stripeWebhook",
        "kept in the Stripe events log; its effects are billing actions",
    ),
    ("ingestStreamEvents", "detection data"),
    ("ingestStreamEventsNdjson", "detection data"),
    ("putStream", "detection settings"),
    ("deleteStream", "detection data"),
    ("createMonitor", "detection settings"),
    ("updateMonitor", "detection settings"),
    ("deleteMonitor", "detection data"),
    ("pauseMonitor", "detection settings"),
    ("resumeMonitor", "detection settings"),
    ("sendMonitorPoints", "detection data"),
    ("meterUsage", "counted usage, not a change of terms"),
    (
        "setStreamAnomalyStatus",
        "kept on the anomaly: who, when and the note",
    ),
    (
        "setMonitorAnomalyStatus",
        "kept on the anomaly: who, when and the note",
    ),
    (
        "deleteStreamRule",
        "detection settings; the verdict stays on its anomaly",
    ),
    (
        "deleteMonitorRule",
        "detection settings; the verdict stays on its anomaly",
    ),
    (
        "createLiveTicket",
        "a short-lived read ticket, in memory only",
    ),
];

#[test]
fn every_changing_route_says_where_it_is_recorded() {
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    let mut changing = BTreeSet::new();
    for (_, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["post", "put", "patch", "delete"].contains(&method.as_str()) {
                changing.insert(op["operationId"].as_str().unwrap().to_string());
            }
        }
    }
    let classified: BTreeSet<String> = RECORDED
        .iter()
        .chain(NOT_BILLING_OR_KEYS)
        .map(|(op, _)| op.to_string())
        .collect();
    assert_eq!(
        RECORDED.len() + NOT_BILLING_OR_KEYS.len(),
        classified.len(),
        "a route is classified twice"
    );
    assert_eq!(changing, classified, "classify every changing route here");
}

fn put(server: &Server, path: &str, token: &str, body: &Value) -> (u16, Value) {
    send(
        ureq::put(&server.url(path)).set("Authorization", &format!("Bearer {token}")),
        Some(body),
    )
}

/// The (action, actor, org) of every record, audit log and billing actions together.
fn records(server: &Server, admin: &str) -> Vec<(String, String, Option<String>)> {
    let mut out = Vec::new();
    for (kind, path) in [
        ("audit", "/v1/admin/audit?limit=500"),
        ("billing", "/v1/admin/billing-actions?limit=500"),
    ] {
        let (s, list) = get(server, path, Some(admin));
        assert_eq!(s, 200, "{list}");
        for entry in list["items"].as_array().unwrap() {
            out.push((
                format!("{kind}:{}", entry["action"].as_str().unwrap()),
                entry["actor"].as_str().unwrap().to_string(),
                entry["organization_id"]
                    .as_str()
                    .or(entry["org_id"].as_str())
                    .map(str::to_string),
            ));
        }
    }
    out
}

#[test]
fn every_billing_and_key_change_is_recorded_with_its_actor() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let admin = server.admin_token();
    let mut seen = Vec::new();
    // Runs one change and checks that the expected record appeared (for `org`, when given).
    let mut expect = |op: &str, actor: &str, org: Option<&str>, change: &dyn Fn() -> u16| {
        let before = records(&server, &admin);
        let status = change();
        assert!((200..300).contains(&status), "{op} answered {status}");
        let after = records(&server, &admin);
        let want = RECORDED.iter().find(|(o, _)| *o == op).unwrap().1;
        let new: Vec<_> = after.iter().filter(|r| !before.contains(r)).collect();
        assert!(
            new.iter().any(|(a, who, o)| a == want
                && who == actor
                && (org.is_none() || o.as_deref() == org)),
            "{op}: wanted {want} by {actor} for {org:?}, new records: {new:?}"
        );
        seen.push(op.to_string());
    };

    let (s, created) = post(
        &server,
        "/v1/admin/orgs",
        Some(&admin),
        &json!({"name": "Acme", "billing_email": "b@acme.example"}),
    );
    assert_eq!(s, 201);
    let org = created["id"].as_str().unwrap().to_string();
    let org = org.as_str();
    expect("createOrganization", "admin", None, &|| {
        post(
            &server,
            "/v1/admin/orgs",
            Some(&admin),
            &json!({"name": "Other"}),
        )
        .0
    });
    let key = std::cell::RefCell::new(Value::Null);
    expect("createOrganizationKey", "admin", Some(org), &|| {
        let (s, k) = post(
            &server,
            &format!("/v1/admin/orgs/{org}/keys"),
            Some(&admin),
            &json!({"name": "ci"}),
        );
        *key.borrow_mut() = k;
        s
    });
    let key = key.into_inner();
    let (secret, key_id) = (
        key["secret"].as_str().unwrap().to_string(),
        key["key"]["id"].as_str().unwrap().to_string(),
    );
    let actor = format!("key:{key_id}");
    let own = std::cell::RefCell::new(Value::Null);
    expect("createOwnKey", &actor, Some(org), &|| {
        let (s, k) = post(&server, "/v1/keys", Some(&secret), &json!({"name": "own"}));
        *own.borrow_mut() = k;
        s
    });
    let own_id = own.into_inner()["key"]["id"].as_str().unwrap().to_string();
    expect("revokeOwnKey", &actor, Some(org), &|| {
        delete(&server, &format!("/v1/keys/{own_id}"), Some(&secret)).0
    });
    let platform = std::cell::RefCell::new(String::new());
    expect("createPlatformKey", "admin", None, &|| {
        let (s, k) = post(
            &server,
            "/v1/admin/keys",
            Some(&admin),
            &json!({"name": "meter", "scope": "service"}),
        );
        *platform.borrow_mut() = k["key"]["id"].as_str().unwrap_or("").to_string();
        s
    });
    let platform = platform.into_inner();
    expect("revokeKey", "admin", None, &|| {
        delete(&server, &format!("/v1/admin/keys/{platform}"), Some(&admin)).0
    });
    expect("putPlan", "admin", None, &|| {
        put(
            &server,
            "/v1/admin/plans/standard",
            &admin,
            &json!({"name": "Standard", "monthly_price_cents": 4900, "included_detections": 250000, "overage_millicents": 350}),
        )
        .0
    });
    expect("setOrganizationPlan", "admin", Some(org), &|| {
        put(
            &server,
            &format!("/v1/admin/orgs/{org}/plan"),
            &admin,
            &json!({"plan": "standard"}),
        )
        .0
    });
    expect("setQuotaPolicy", "admin", Some(org), &|| {
        put(
            &server,
            &format!("/v1/admin/orgs/{org}/quota-policy"),
            &admin,
            &json!({"behavior_on_exceed": "hard_cap", "cap_percent": 100, "invoice_threshold_cents": 0, "alert_at_90": true}),
        )
        .0
    });
    expect("setDunning", "admin", Some(org), &|| {
        put(
            &server,
            &format!("/v1/admin/orgs/{org}/dunning"),
            &admin,
            &json!({"state": "grace", "note": "card declined, called them"}),
        )
        .0
    });
    expect("resetOrganizationUsage", "admin", Some(org), &|| {
        post(
            &server,
            &format!("/v1/admin/orgs/{org}/usage/reset"),
            Some(&admin),
            &json!({"note": "installation test"}),
        )
        .0
    });
    let performed: BTreeSet<&str> = seen.iter().map(String::as_str).collect();
    let elsewhere = [
        "retryStripeOutbox",
        "reconcileBilling",
        "giveStreamAnomalyFeedback",
        "giveMonitorAnomalyFeedback",
        "decideDispute",
    ];
    for (op, _) in RECORDED {
        assert!(
            performed.contains(op) || elsewhere.contains(op),
            "{op} is not exercised"
        );
    }
}

/// Issue 19: the lists that took only `limit` page with a cursor: a paging loop sees every
/// entry once and ends; a cursor past every entry gives an empty page, never page 1 again;
/// a cursor the server never gave out is refused, naming it.
#[test]
fn lists_page_with_a_cursor_and_every_paging_loop_ends() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::start(dir.path());
    let admin = server.admin_token();
    for i in 0..5 {
        let (org, _, _) = crate::support::org_with_key(&server, &admin, &format!("Org {i}"));
        let (st, _) = crate::support::send(
            ureq::put(&server.url(&format!("/v1/admin/orgs/{org}/plan")))
                .set("Authorization", &format!("Bearer {admin}")),
            Some(&serde_json::json!({"plan": "standard"})),
        );
        assert_eq!(st, 200);
    }
    for list in ["/v1/admin/audit", "/v1/admin/billing-actions"] {
        let (_, all) = crate::support::get(&server, &format!("{list}?limit=500"), Some(&admin));
        let all = all["items"].as_array().unwrap().clone();
        assert!(all.len() >= 5, "{list}: {all:?}");
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let path = match &cursor {
                Some(c) => format!("{list}?limit=2&cursor={c}"),
                None => format!("{list}?limit=2"),
            };
            let (st, page) = crate::support::get(&server, &path, Some(&admin));
            assert_eq!(st, 200, "{page}");
            seen.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, all, "{list}: pages in order, each entry once");
        // A cursor past the end (well formed, pointing before every entry).
        let past_the_end = format!("c1{}", "30".repeat(20));
        let (st, page) = crate::support::get(
            &server,
            &format!("{list}?cursor={past_the_end}"),
            Some(&admin),
        );
        assert_eq!(
            (st, page["items"].as_array().map(Vec::len)),
            (200, Some(0)),
            "{page}"
        );
        let (st, b) = crate::support::get(&server, &format!("{list}?cursor=page-2"), Some(&admin));
        crate::support::assert_error(st, &b, 400, "bad_request");
        assert!(b["message"].as_str().unwrap().contains("cursor"), "{b}");
    }
}
