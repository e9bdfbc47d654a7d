//! Stripe webhooks against the running binary: payloads signed by the official `stripe`
//! Python library's own helper are accepted and tampered, stale or unsigned ones refused; the
//! runbook's tests 2 (an upgrade keeps the period's usage) and 6 (a failed payment mirrors the
//! invoice, sets grace and mails the billing contact); repeats and out-of-order events leave
//! one correct state; a suspended account gets 402 on detection calls.

use std::process::Command;

use serde_json::{json, Value};

use crate::support::{assert_error, get, post, python, send, service_key, start_with, Server};

pub(crate) const SECRET: &str = "whsec_test_secret_0123456789";

use crate::test_clock::now;

/// The `Stripe-Signature` header made by stripe-python's `generate_signature_header`.
pub(crate) fn stripe_signature(payload: &str, timestamp: i64) -> String {
    let out = Command::new(python())
        .args(["-c", "import stripe, sys; print(stripe.WebhookSignature.generate_signature_header(sys.argv[1], sys.argv[2], timestamp=int(sys.argv[3])))"])
        .args([payload, SECRET, &timestamp.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn deliver(server: &Server, event: &Value) -> (u16, Value) {
    let payload = event.to_string();
    let sig = stripe_signature(&payload, now());
    raw(server, &payload, Some(&sig))
}

/// Posts `payload` to the webhook route as Stripe does (`application/json; charset=utf-8`).
pub(crate) fn raw(server: &Server, payload: &str, signature: Option<&str>) -> (u16, Value) {
    raw_as(
        server,
        payload,
        signature,
        "application/json; charset=utf-8",
    )
}

fn raw_as(
    server: &Server,
    payload: &str,
    signature: Option<&str>,
    content_type: &str,
) -> (u16, Value) {
    let mut req = ureq::post(&server.url("/v1/stripe/webhook")).set("Content-Type", content_type);
    if let Some(s) = signature {
        req = req.set("Stripe-Signature", s);
    }
    match req.send_string(payload) {
        Ok(r) | Err(ureq::Error::Status(_, r)) => (
            r.status(),
            serde_json::from_str(&r.into_string().unwrap()).unwrap_or(Value::Null),
        ),
        Err(e) => panic!("{e}"),
    }
}

pub(crate) struct Setup {
    pub server: Server,
    pub admin: String,
    pub org: String,
    pub key: String,
    pub service: String,
}

fn setup(dir: &std::path::Path) -> Setup {
    provision(start_with(
        dir,
        &["--email-poll-ms", "50"],
        &[("DRIFTLOCK_STRIPE_WEBHOOK_SECRET", SECRET)],
    ))
}

/// The catalog's standard plan with its Stripe prices, an org with a key, and a service key.
fn provision(server: Server) -> Setup {
    let admin = server.admin_token();
    let (s, b) = send(
        ureq::put(&server.url("/v1/admin/plans/standard"))
            .set("Authorization", &format!("Bearer {admin}")),
        Some(
            &json!({"name": "Standard", "monthly_price_cents": 4900, "included_detections": 250000, "overage_millicents": 350,
                     "stripe_price_id": "price_standard", "stripe_metered_price_id": "price_standard_overage"}),
        ),
    );
    assert_eq!(s, 200, "{b}");
    let (_, org) = post(
        &server,
        "/v1/admin/orgs",
        Some(&admin),
        &json!({"name": "Acme", "billing_email": "billing@acme.example"}),
    );
    let org = org["id"].as_str().unwrap().to_string();
    let (_, key) = post(
        &server,
        &format!("/v1/admin/orgs/{org}/keys"),
        Some(&admin),
        &json!({"name": "k"}),
    );
    let service = service_key(&server, &admin);
    Setup {
        key: key["secret"].as_str().unwrap().into(),
        service,
        server,
        admin,
        org,
    }
}

pub(crate) fn checkout_completed(id: &str, org: &str, created: i64) -> Value {
    json!({"id": id, "object": "event", "type": "checkout.session.completed", "created": created, "data": {"object": {
        "id": "cs_test_1", "object": "checkout.session", "client_reference_id": org, "customer": "cus_123",
        "subscription": "sub_123", "metadata": {"plan": "standard"}}}})
}

fn subscription(id: &str, kind: &str, created: i64, status: &str) -> Value {
    json!({"id": id, "object": "event", "type": kind, "created": created, "data": {"object": {
        "id": "sub_123", "object": "subscription", "customer": "cus_123", "status": status,
        "current_period_start": created, "current_period_end": created + 30 * 86400,
        "items": {"data": [{"price": {"id": "price_standard"}}, {"price": {"id": "price_standard_overage"}}]}}}})
}

fn invoice(id: &str, kind: &str, created: i64, status: &str) -> Value {
    json!({"id": id, "object": "event", "type": kind, "created": created, "data": {"object": {
        "id": "in_123", "object": "invoice", "customer": "cus_123", "number": "DL-0001", "status": status,
        "amount_due": 4900, "amount_paid": if status == "paid" { 4900 } else { 0 }, "attempt_count": 1,
        "currency": "usd", "hosted_invoice_url": "https://pay.example/in_123", "created": created}}})
}

#[test]
fn signatures_from_the_stripe_library_are_checked_before_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path());
    let event = checkout_completed("evt_sig", &s.org, now());
    let payload = event.to_string();

    let tampered = payload.replace("cus_123", "cus_999");
    let (st, b) = raw(
        &s.server,
        &tampered,
        Some(&stripe_signature(&payload, now())),
    );
    assert_error(st, &b, 400, "invalid_signature");
    let (st, b) = raw(
        &s.server,
        &payload,
        Some(&stripe_signature(&payload, now() - 600)),
    );
    assert_error(st, &b, 400, "invalid_signature");
    let (st, b) = raw(&s.server, &payload, None);
    assert_error(st, &b, 400, "invalid_signature");
    let (st, b) = raw(&s.server, "not json at all", None);
    assert_error(st, &b, 400, "invalid_signature");
    let (_, events) = get(&s.server, "/v1/admin/stripe/events", Some(&s.admin));
    assert_eq!(
        events["items"].as_array().unwrap().len(),
        0,
        "nothing was recorded"
    );

    // Only JSON is a Stripe event: another media type is refused before anything is read.
    let (st, b) = raw_as(
        &s.server,
        &payload,
        Some(&stripe_signature(&payload, now())),
        "text/plain",
    );
    assert_error(st, &b, 415, "unsupported_media_type");

    // Stripe sends `application/json; charset=utf-8` (the bare type is accepted too).
    let (st, ack) = raw(
        &s.server,
        &payload,
        Some(&stripe_signature(&payload, now())),
    );
    assert_eq!(
        (st, ack["outcome"].as_str()),
        (200, Some("applied")),
        "{ack}"
    );
    let (st, ack) = raw_as(
        &s.server,
        &payload,
        Some(&stripe_signature(&payload, now())),
        "application/json",
    );
    assert_eq!((st, ack["duplicate"].as_bool()), (200, Some(true)), "{ack}");
}

#[test]
fn runbook_test_2_an_upgrade_through_checkout_keeps_the_usage() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path());
    let (st, _) = post(
        &s.server,
        "/v1/meter-usage",
        Some(&s.service),
        &json!({"organization_id": s.org, "anomaly": true, "count": 9000}),
    );
    assert_eq!(st, 200);
    let (st, ack) = deliver(&s.server, &checkout_completed("evt_1", &s.org, now()));
    assert_eq!(
        (st, ack["outcome"].as_str()),
        (200, Some("applied")),
        "{ack}"
    );
    let (_, usage) = get(&s.server, "/v1/usage", Some(&s.key));
    assert_eq!(
        (
            usage["plan"].as_str(),
            usage["total_calls"].as_u64(),
            usage["included"].as_u64()
        ),
        (Some("standard"), Some(9000), Some(250_000))
    );
    let (_, billing) = get(&s.server, "/v1/billing", Some(&s.key));
    assert_eq!(
        (
            billing["stripe_customer_id"].as_str(),
            billing["dunning_state"].as_str()
        ),
        (Some("cus_123"), Some("ok"))
    );
    let (_, actions) = get(
        &s.server,
        &format!("/v1/admin/billing-actions?org_id={}", s.org),
        Some(&s.admin),
    );
    let plan_change = actions["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "plan_changed")
        .unwrap();
    assert_eq!(plan_change["actor"], "stripe:evt_1");
    assert_eq!(plan_change["detail"]["usage_kept"], 9000);
}

#[test]
fn runbook_test_6_a_failed_payment_mirrors_the_invoice_sets_grace_and_mails() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path());
    deliver(&s.server, &checkout_completed("evt_1", &s.org, now() - 100));
    let (st, ack) = deliver(
        &s.server,
        &invoice("evt_2", "invoice.payment_failed", now() - 50, "open"),
    );
    assert_eq!(
        (st, ack["outcome"].as_str()),
        (200, Some("applied")),
        "{ack}"
    );
    let (_, invoices) = get(&s.server, "/v1/billing/invoices", Some(&s.key));
    let inv = &invoices["items"][0];
    assert_eq!(
        (
            inv["id"].as_str(),
            inv["status"].as_str(),
            inv["amount_due"].as_i64()
        ),
        (Some("in_123"), Some("open"), Some(4900))
    );
    let (_, billing) = get(&s.server, "/v1/billing", Some(&s.key));
    assert_eq!(billing["dunning_state"], "grace");
    let mail = crate::support::wait_for(20, "the payment-failed mail", || {
        let (_, outbox) = get(&s.server, "/v1/admin/outbox/email", Some(&s.admin));
        outbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "payment_failed" && e["status"] == "sent")
            .cloned()
    });
    assert_eq!(mail["to"], "billing@acme.example");
    let files: Vec<_> = std::fs::read_dir(dir.path().join("mail/new"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        files
            .iter()
            .any(|m| m.contains("Payment failed for Acme") && m.contains("DL-0001")),
        "{files:?}"
    );
    // Detection keeps working during grace.
    let (st, _) = post(
        &s.server,
        "/v1/streams/s/events",
        Some(&s.key),
        &json!([{"a": 1}]),
    );
    assert_eq!(st, 200);
    // Paying brings the account back; the late failure event cannot undo it.
    deliver(
        &s.server,
        &invoice("evt_3", "invoice.paid", now() - 10, "paid"),
    );
    let (_, ack) = deliver(
        &s.server,
        &invoice("evt_2b", "invoice.payment_failed", now() - 40, "open"),
    );
    assert_eq!(ack["outcome"], "stale");
    let (_, billing) = get(&s.server, "/v1/billing", Some(&s.key));
    assert_eq!(billing["dunning_state"], "ok");
    let (_, invoices) = get(&s.server, "/v1/billing/invoices", Some(&s.key));
    assert_eq!(invoices["items"][0]["status"], "paid");
}

#[test]
fn repeated_and_out_of_order_events_leave_one_correct_state() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path());
    let t = now();
    deliver(&s.server, &checkout_completed("evt_c", &s.org, t - 300));
    let updated = subscription("evt_u", "customer.subscription.updated", t - 100, "active");
    let (_, first) = deliver(&s.server, &updated);
    let (_, again) = deliver(&s.server, &updated);
    assert_eq!(
        (first["duplicate"].as_bool(), again["duplicate"].as_bool()),
        (Some(false), Some(true))
    );
    // An older deletion arriving late is stale; the plan stays.
    let (_, late) = deliver(
        &s.server,
        &subscription(
            "evt_d_old",
            "customer.subscription.deleted",
            t - 200,
            "canceled",
        ),
    );
    assert_eq!(late["outcome"], "stale");
    let (_, org) = get(&s.server, "/v1/org", Some(&s.key));
    assert_eq!(org["plan"], "standard");
    // A newer deletion takes the org back to developer.
    let (_, del) = deliver(
        &s.server,
        &subscription("evt_d", "customer.subscription.deleted", t - 50, "canceled"),
    );
    assert_eq!(del["outcome"], "applied");
    let (_, org) = get(&s.server, "/v1/org", Some(&s.key));
    assert_eq!(org["plan"], "developer");
    let (_, billing) = get(&s.server, "/v1/billing", Some(&s.key));
    assert_eq!(billing["dunning_state"], "cancelled");
    let (_, actions) = get(
        &s.server,
        &format!("/v1/admin/billing-actions?org_id={}", s.org),
        Some(&s.admin),
    );
    let changed = actions["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "subscription_changed")
        .count();
    assert_eq!(changed, 1, "the repeated event was applied once");
    let (_, unknown) = deliver(
        &s.server,
        &json!({"id": "evt_x", "type": "charge.refunded", "created": t, "data": {"object": {"customer": "cus_123"}}}),
    );
    assert_eq!(unknown["outcome"], "ignored");
    let (_, events) = get(&s.server, "/v1/admin/stripe/events", Some(&s.admin));
    assert_eq!(
        events["items"].as_array().unwrap().len(),
        5,
        "one record per distinct event id"
    );
}

#[test]
fn a_suspended_account_gets_402_until_it_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path());
    let put = |state: &str| {
        send(
            ureq::put(&s.server.url(&format!("/v1/admin/orgs/{}/dunning", s.org)))
                .set("Authorization", &format!("Bearer {}", s.admin)),
            Some(&json!({"state": state, "note": "manual test"})),
        )
    };
    assert_eq!(put("suspended").0, 200);
    let (st, b) = post(
        &s.server,
        "/v1/streams/s/events",
        Some(&s.key),
        &json!([{"a": 1}]),
    );
    assert_error(st, &b, 402, "account_suspended");
    let (st, b) = post(
        &s.server,
        "/v1/meter-usage",
        Some(&s.service),
        &json!({"organization_id": s.org, "anomaly": true}),
    );
    assert_error(st, &b, 402, "account_suspended");
    assert_eq!(put("ok").0, 200);
    let (st, _) = post(
        &s.server,
        "/v1/streams/s/events",
        Some(&s.key),
        &json!([{"a": 1}]),
    );
    assert_eq!(st, 200);
    let (_, actions) = get(
        &s.server,
        &format!("/v1/admin/billing-actions?org_id={}", s.org),
        Some(&s.admin),
    );
    let set: Vec<&Value> = actions["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "dunning_set")
        .collect();
    assert_eq!(set.len(), 2);
    assert_eq!(set[0]["detail"]["note"], "manual test");
}

/// The in-repo fake Stripe (tests/it/fake_stripe.py) on a loopback port.
pub(crate) struct FakeStripe {
    child: std::process::Child,
    base: String,
}

impl FakeStripe {
    /// The fake Stripe on the test's pinned clock.
    pub fn start() -> FakeStripe {
        FakeStripe::start_with(&crate::test_clock::env())
    }

    /// The fake Stripe with `env` (e.g. a movable clock's).
    pub fn start_with(env: &[(&str, String)]) -> FakeStripe {
        use std::io::BufRead;
        let port = crate::support::free_port();
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fake_stripe.py");
        let mut child = Command::new(python())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .arg(script)
            .arg(port.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        FakeStripe {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Sets the fake's failure modes (`down`, `lose_answers`).
    fn control(&self, settings: Value) {
        ureq::post(&format!("{}/_control", self.base))
            .send_json(settings)
            .unwrap();
    }

    fn set_down(&self, down: bool) {
        self.control(json!({"down": down}));
    }

    /// Detections in all the meter events the fake holds.
    fn metered_total(&self) -> u64 {
        self.seen()["meter_events"]
            .as_object()
            .unwrap()
            .values()
            .map(|e| e["value"].as_u64().unwrap())
            .sum()
    }

    pub fn seen(&self) -> Value {
        ureq::get(&format!("{}/_requests", self.base))
            .call()
            .unwrap()
            .into_json()
            .unwrap()
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn setup_online(dir: &std::path::Path, stripe: &FakeStripe, interval_ms: &str) -> Setup {
    setup_online_with(dir, stripe, interval_ms, &[])
}

/// Like `setup_online`, with more environment for the server (e.g. a fake clock).
pub(crate) fn setup_online_with(
    dir: &std::path::Path,
    stripe: &FakeStripe,
    interval_ms: &str,
    env: &[(&str, &str)],
) -> Setup {
    provision(start_online(dir, stripe, interval_ms, env))
}

/// The server of `setup_online_with`, on `dir` as it is (also a restart).
fn start_online(
    dir: &std::path::Path,
    stripe: &FakeStripe,
    interval_ms: &str,
    env: &[(&str, &str)],
) -> Server {
    let mut all_env = vec![
        ("DRIFTLOCK_STRIPE_WEBHOOK_SECRET", SECRET),
        ("DRIFTLOCK_STRIPE_SECRET_KEY", "sk_test_driftlock"),
        ("DRIFTLOCK_STRIPE_PUBLISHABLE_KEY", "pk_test_driftlock"),
    ];
    all_env.extend_from_slice(env);
    start_with(
        dir,
        &[
            "--email-poll-ms",
            "50",
            "--stripe-api-base",
            &stripe.base,
            "--stripe-meter-interval-ms",
            interval_ms,
            "--stripe-retry-base-ms",
            "100",
            "--rate-limit-per-sec",
            "0",
        ],
        &all_env,
    )
}

#[test]
fn checkout_and_portal_send_stripe_the_right_form_and_idempotency_keys() {
    let stripe = FakeStripe::start();
    let dir = tempfile::tempdir().unwrap();
    // A short pass interval: LAUNCH50 is synced on the first pass after the plan has a price.
    let s = setup_online(dir.path(), &stripe, "300");

    let (_, config) = get(&s.server, "/v1/billing/config", Some(&s.key));
    assert_eq!(
        (
            config["online"].as_bool(),
            config["publishable_key"].as_str()
        ),
        (Some(true), Some("pk_test_driftlock"))
    );

    // LAUNCH50 is created on Stripe as a coupon and a promotion code.
    let synced = crate::support::wait_for(20, "LAUNCH50 synced to Stripe", || {
        let seen = stripe.seen();
        seen["promotion_codes"]
            .get("LAUNCH50")
            .is_some()
            .then_some(seen)
    });
    let coupon = &synced["coupons"]["driftlock-launch50"];
    assert_eq!(
        (
            coupon["percent_off"].as_f64(),
            coupon["duration"].as_str(),
            coupon["duration_in_months"].as_u64()
        ),
        (Some(50.0), Some("repeating"), Some(3))
    );
    // It discounts the products of the plans it is for (standard's two prices), and nothing
    // else on the account.
    assert_eq!(
        coupon["applies_to"]["products"],
        json!(["prod_standard", "prod_standard_overage"]),
        "{coupon}"
    );
    let (st, b) = post(
        &s.server,
        "/v1/billing/checkout",
        Some(&s.key),
        &json!({"plan": "developer", "promo_code": "LAUNCH50"}),
    );
    assert_error(st, &b, 422, "validation_failed");

    let (st, session) = post(
        &s.server,
        "/v1/billing/checkout",
        Some(&s.key),
        &json!({"plan": "standard"}),
    );
    assert_eq!(st, 200, "{session}");
    assert!(session["url"]
        .as_str()
        .unwrap()
        .starts_with("https://checkout.stripe.test/"));
    let (st, with_promo) = post(
        &s.server,
        "/v1/billing/checkout",
        Some(&s.key),
        &json!({"plan": "standard", "promo_code": "launch50"}),
    );
    assert_eq!(st, 200, "{with_promo}");
    let (st, b) = post(
        &s.server,
        "/v1/billing/checkout",
        Some(&s.key),
        &json!({"plan": "standard", "promo_code": "NOPE"}),
    );
    assert_error(st, &b, 422, "validation_failed");
    let (st, b) = post(
        &s.server,
        "/v1/billing/checkout",
        Some(&s.key),
        &json!({"plan": "developer"}),
    );
    assert_error(st, &b, 422, "validation_failed");
    let (st, b) = post(&s.server, "/v1/billing/portal", Some(&s.key), &json!({}));
    assert_error(st, &b, 409, "conflict");

    let seen = stripe.seen();
    let checkouts: Vec<&Value> = seen["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/v1/checkout/sessions")
        .collect();
    assert_eq!(checkouts.len(), 2);
    let form = &checkouts[0]["form"];
    assert_eq!(form["mode"], "subscription");
    assert_eq!(form["client_reference_id"], s.org.as_str());
    assert_eq!(form["line_items[0][price]"], "price_standard");
    assert_eq!(form["line_items[0][quantity]"], "1");
    assert_eq!(form["line_items[1][price]"], "price_standard_overage");
    assert_eq!(form["metadata[plan]"], "standard");
    assert_eq!(
        form["subscription_data[metadata][organization_id]"],
        s.org.as_str()
    );
    assert_eq!(form["customer_email"], "billing@acme.example");
    // Anchored at the next 1st (UTC): Stripe's invoice periods are the calendar months. (The
    // dated runs start seconds before a month end: either month's next 1st may be right.)
    let next_first = |t: i64| {
        let this_month = crate::test_clock::parse_instant(&crate::test_clock::month_start(t));
        let next = crate::test_clock::month_start(this_month.unwrap() + 32 * 86_400);
        crate::test_clock::parse_instant(&next).unwrap().to_string()
    };
    let anchor = form["subscription_data[billing_cycle_anchor]"]
        .as_str()
        .unwrap();
    assert!(
        [next_first(crate::test_clock::start()), next_first(now())].contains(&anchor.to_string()),
        "{anchor}"
    );
    assert_eq!(form["allow_promotion_codes"], "true");
    assert_eq!(
        checkouts[0]["content_type"],
        "application/x-www-form-urlencoded"
    );
    assert!(checkouts[0]["idempotency_key"]
        .as_str()
        .is_some_and(|k| k.starts_with("dl-checkout-")));
    assert_ne!(
        checkouts[0]["idempotency_key"],
        checkouts[1]["idempotency_key"]
    );
    assert_eq!(
        checkouts[1]["form"]["discounts[0][promotion_code]"],
        "promo_launch50"
    );

    // Once the checkout completed (webhook), the portal opens for the customer.
    deliver(&s.server, &checkout_completed("evt_portal", &s.org, now()));
    let (st, portal) = post(&s.server, "/v1/billing/portal", Some(&s.key), &json!({}));
    assert_eq!(st, 200, "{portal}");
    let seen = stripe.seen();
    let portal_req = seen["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "/v1/billing_portal/sessions")
        .unwrap();
    assert_eq!(portal_req["form"]["customer"], "cus_123");
    assert!(portal_req["idempotency_key"].is_string());

    // With a live subscription, a second checkout (a second subscription) is refused.
    deliver(
        &s.server,
        &subscription("evt_live", "customer.subscription.updated", now(), "active"),
    );
    let (st, b) = post(
        &s.server,
        "/v1/billing/checkout",
        Some(&s.key),
        &json!({"plan": "standard"}),
    );
    assert_error(st, &b, 409, "conflict");
    assert!(b["message"].as_str().unwrap().contains("portal"), "{b}");
}

#[test]
fn an_invoice_that_overtakes_the_checkout_finds_its_org() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path());
    // No customer is linked yet. The invoice names the org in its subscription's metadata
    // (at `subscription_details` for 2024-06-20, at `parent.subscription_details` from 2025).
    let mut pinned = invoice("evt_inv_a", "invoice.payment_failed", now() - 20, "open");
    pinned["data"]["object"]["subscription_details"] =
        json!({"metadata": {"organization_id": s.org}});
    let (st, ack) = deliver(&s.server, &pinned);
    assert_eq!(
        (st, ack["outcome"].as_str()),
        (200, Some("applied")),
        "{ack}"
    );
    let mut newer = invoice("evt_inv_b", "invoice.paid", now() - 10, "paid");
    newer["data"]["object"]["id"] = json!("in_456");
    newer["data"]["object"]["parent"] = json!({"type": "subscription_details",
        "subscription_details": {"metadata": {"organization_id": s.org}, "subscription": "sub_123"}});
    let (st, ack) = deliver(&s.server, &newer);
    assert_eq!(
        (st, ack["outcome"].as_str()),
        (200, Some("applied")),
        "{ack}"
    );
    let (_, invoices) = get(&s.server, "/v1/billing/invoices", Some(&s.key));
    assert_eq!(invoices["items"].as_array().unwrap().len(), 2, "{invoices}");

    // An event that names no org is unmatched, and tried again when Stripe resends it
    // after the checkout linked the customer (it is not a duplicate).
    let mut orphan = invoice("evt_inv_c", "invoice.payment_failed", now() - 5, "open");
    orphan["data"]["object"]["id"] = json!("in_789");
    let (st, ack) = deliver(&s.server, &orphan);
    assert_eq!(
        (st, ack["outcome"].as_str()),
        (200, Some("unmatched")),
        "{ack}"
    );
    deliver(&s.server, &checkout_completed("evt_c", &s.org, now()));
    let (st, ack) = deliver(&s.server, &orphan);
    assert_eq!(
        (st, ack["outcome"].as_str(), ack["duplicate"].as_bool()),
        (200, Some("applied"), Some(false)),
        "{ack}"
    );
    let (_, invoices) = get(&s.server, "/v1/billing/invoices", Some(&s.key));
    assert_eq!(invoices["items"].as_array().unwrap().len(), 3, "{invoices}");
    // Once matched, a resend is a duplicate again.
    let (_, ack) = deliver(&s.server, &orphan);
    assert_eq!(ack["duplicate"].as_bool(), Some(true), "{ack}");
}

#[test]
fn metered_overage_reaches_stripe_exactly_once_across_an_outage() {
    let stripe = FakeStripe::start();
    let dir = tempfile::tempdir().unwrap();
    let s = setup_online(dir.path(), &stripe, "100");
    deliver(&s.server, &checkout_completed("evt_c", &s.org, now()));
    let meter = |count: u64| {
        let (st, b) = post(
            &s.server,
            "/v1/meter-usage",
            Some(&s.service),
            &json!({"organization_id": s.org, "anomaly": true, "count": count}),
        );
        assert_eq!(st, 200, "{b}");
    };
    meter(250_000); // exactly the included amount: nothing for Stripe
    stripe.set_down(true);
    for _ in 0..5 {
        meter(1_000);
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    crate::support::wait_for(20, "attempts refused while Stripe is down", || {
        (stripe.seen()["refused"].as_u64() >= Some(3)).then_some(())
    });
    stripe.set_down(false);
    meter(2_500);
    let total = crate::support::wait_for(30, "every meter event delivered", || {
        (stripe.metered_total() == 7_500).then(|| stripe.seen())
    });
    for event in total["meter_events"].as_object().unwrap().values() {
        assert_eq!(event["customer"], "cus_123");
        assert_eq!(event["event_name"], "driftlock_detections");
    }
    let (_, usage) = get(&s.server, "/v1/usage", Some(&s.key));
    assert_eq!(
        usage["overage_calls"], 7_500,
        "Stripe got exactly the overage"
    );
}

/// Issue 22: a disputed detection whose overage Stripe already has is netted from the next
/// meter batch, never below zero, exactly once, with the server killed between counting the
/// next overage and reporting it.
#[test]
fn a_disputed_overage_already_sent_is_netted_from_the_next_batch_across_a_crash() {
    let stripe = FakeStripe::start();
    let dir = tempfile::tempdir().unwrap();
    let mut s = setup_online(dir.path(), &stripe, "100");
    deliver(&s.server, &checkout_completed("evt_c", &s.org, now()));
    let meter = |server: &Server, count: u64| {
        let (st, b) = post(
            server,
            "/v1/meter-usage",
            Some(&s.service),
            &json!({"organization_id": s.org, "anomaly": true, "count": count}),
        );
        assert_eq!(st, 200, "{b}");
    };
    meter(&s.server, 250_000);
    let anomaly = crate::anomaly_status::stream_with_an_intruder(&s.server, &s.key, "web");
    let (_, usage) = get(&s.server, "/v1/usage", Some(&s.key));
    let overage = usage["overage_calls"].as_u64().unwrap();
    assert!(overage >= 1, "{usage}");
    crate::support::wait_for(30, "the overage reported", || {
        (stripe.metered_total() == overage).then_some(())
    });

    // Disputed after Stripe has it: the credit waits to be netted.
    let (st, b) = post(
        &s.server,
        &format!("/v1/streams/web/anomalies/{anomaly}/feedback"),
        Some(&s.key),
        &json!({"verdict": "false_positive"}),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["dispute"]["status"], "accepted", "{b}");
    assert_eq!(b["dispute"]["overage_credited"], 1, "{b}");
    let summary = format!("/v1/admin/orgs/{}/disputes/summary", s.org);
    let (_, figures) = get(&s.server, &summary, Some(&s.admin));
    assert_eq!(figures["credit_to_net"], 1, "{figures}");

    // Five more counted while Stripe is down, then a crash before they are reported.
    stripe.set_down(true);
    meter(&s.server, 5);
    crate::support::wait_for(20, "an attempt refused while Stripe is down", || {
        (stripe.seen()["refused"].as_u64() >= Some(1)).then_some(())
    });
    s.server.stop_with("KILL");
    stripe.set_down(false);
    s.server = start_online(dir.path(), &stripe, "100", &[]);
    let want = overage + 4;
    crate::support::wait_for(30, "the next batch, netted", || {
        (stripe.metered_total() == want).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(stripe.metered_total(), want, "netted once, sent once");
    let (_, usage) = get(&s.server, "/v1/usage", Some(&s.key));
    assert_eq!(
        usage["overage_calls"], want,
        "Stripe has exactly the overage: {usage}"
    );
    let (_, figures) = get(&s.server, &summary, Some(&s.admin));
    assert_eq!(figures["credit_to_net"], 0, "{figures}");
    let (_, actions) = get(
        &s.server,
        "/v1/admin/billing-actions?limit=500",
        Some(&s.admin),
    );
    let netted: Vec<&Value> = actions["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "meter_credit_netted")
        .collect();
    assert_eq!(netted.len(), 1, "{actions}");
    assert_eq!(netted[0]["detail"]["netted"], 1);
}

/// An online server and the fake Stripe on one clock the test moves, with the org linked to
/// Stripe customer `cus_123` by a checkout.
fn linked_on_a_movable_clock(
    dir: &std::path::Path,
) -> (crate::test_clock::MovableClock, FakeStripe, Setup) {
    let clock = crate::test_clock::MovableClock::new(dir, crate::test_clock::start());
    let env = clock.env();
    let stripe = FakeStripe::start_with(&env);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = setup_online_with(dir, &stripe, "100", &env);
    let event = checkout_completed("evt_c", &s.org, clock.now());
    let payload = event.to_string();
    raw(
        &s.server,
        &payload,
        Some(&stripe_signature(&payload, clock.now())),
    );
    (clock, stripe, s)
}

#[test]
fn reconciliation_finds_what_stripe_lost_and_fixes_it() {
    // Server and fake Stripe share a clock the test moves: Stripe's summaries lag behind the
    // meter events, and reconciliation compares only what has settled.
    let dir = tempfile::tempdir().unwrap();
    let (clock, stripe, s) = linked_on_a_movable_clock(dir.path());
    let (st, _) = post(
        &s.server,
        "/v1/meter-usage",
        Some(&s.service),
        &json!({"organization_id": s.org, "anomaly": true, "count": 255_000}),
    );
    assert_eq!(st, 200);
    // Delivered: Stripe holds `n`, and the server has recorded every batch's answer.
    let delivered = |n: u64| {
        crate::support::wait_for(20, "meter events delivered", || {
            let sum = stripe.metered_total();
            let (_, outbox) = get(&s.server, "/v1/admin/outbox/stripe", Some(&s.admin));
            let settled = outbox["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|row| row["status"] == "delivered");
            (sum == n && settled).then_some(())
        })
    };
    delivered(5_000);
    let reconcile = |fix: bool| {
        let out = Command::new(crate::support::BIN)
            .args(["billing", "reconcile", "--data-dir"])
            .arg(dir.path())
            .args(["--server", &s.server.base])
            .args(if fix { vec!["--fix"] } else { vec![] })
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let row = |report: &str| -> Vec<String> {
        report
            .lines()
            .find(|l| l.contains("cus_123"))
            .unwrap_or_else(|| panic!("{report}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    // Just delivered: Stripe's summary does not show it yet, and that is no loss.
    let report = reconcile(true);
    assert!(report.contains("0 with differences"), "{report}");
    assert_eq!(row(&report)[2..6], ["0", "5000", "0", "0"], "{report}");
    // Two hours on, the batch has settled and both sides agree.
    clock.set(clock.now() + 7_200);
    let report = reconcile(false);
    assert!(report.contains("0 with differences"), "{report}");
    assert_eq!(row(&report)[2..6], ["5000", "0", "0", "5000"], "{report}");

    // Stripe loses the customer's events: reconciliation sees it and, with --fix, resends
    // once; while that correction settles, nothing more is queued.
    ureq::post(&format!("{}/_forget", stripe.base))
        .send_json(json!({"customer": "cus_123"}))
        .unwrap();
    let report = reconcile(false);
    assert!(report.contains("stripe_missing 5000 (none)"), "{report}");
    let report = reconcile(true);
    assert!(report.contains("correction_queued"), "{report}");
    let report = reconcile(true);
    assert!(report.contains("(correction_settling)"), "{report}");
    delivered(5_000);
    let report = reconcile(true);
    assert!(report.contains("(correction_settling)"), "{report}");
    clock.set(clock.now() + 7_200);
    let report = reconcile(true);
    assert!(
        report.contains("0 with differences"),
        "after the correction: {report}"
    );
    let seen = stripe.seen();
    assert_eq!(
        seen["meter_events"].as_object().unwrap().len(),
        1,
        "one correction: {seen}"
    );
    let (_, actions) = get(
        &s.server,
        &format!("/v1/admin/billing-actions?org_id={}", s.org),
        Some(&s.admin),
    );
    let queued = actions["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "meter_correction_queued")
        .count();
    assert_eq!(queued, 1, "{actions}");
}

#[test]
fn a_batch_whose_answer_was_lost_is_not_resent_once_stripe_forgets_its_identifier() {
    // Stripe records a batch and the answer is lost; every retry's answer is lost too. A
    // day later Stripe no longer recognises the identifier, so a resend would bill twice:
    // the batch is left for reconciliation instead, which finds Stripe has it.
    let dir = tempfile::tempdir().unwrap();
    let (clock, stripe, s) = linked_on_a_movable_clock(dir.path());
    stripe.control(json!({"lose_answers": 1000}));
    let (st, _) = post(
        &s.server,
        "/v1/meter-usage",
        Some(&s.service),
        &json!({"organization_id": s.org, "anomaly": true, "count": 255_000}),
    );
    assert_eq!(st, 200);
    crate::support::wait_for(20, "the batch recorded, its answers lost", || {
        (stripe.metered_total() == 5_000 && stripe.seen()["lost"].as_u64() >= Some(2)).then_some(())
    });
    let outbox = |server: &Server| {
        let (_, list) = get(server, "/v1/admin/outbox/stripe", Some(&s.admin));
        list["items"][0].clone()
    };
    assert_eq!(outbox(&s.server)["status"], "pending");

    // No attempt may be in flight while the clock jumps a day: one sent just before would
    // reach a Stripe that has already forgotten the identifier (the resend margin covers
    // real delays, not a jump). Stripe refuses until the batch is given up, and one refused
    // attempt shows the sender has finished whatever it had in flight.
    let refused = stripe.seen()["refused"].as_u64().unwrap_or(0);
    stripe.set_down(true);
    crate::support::wait_for(20, "an attempt refused before the clock jumps", || {
        (stripe.seen()["refused"].as_u64() > Some(refused)).then_some(())
    });
    clock.set(clock.now() + 25 * 3600);
    let failed = crate::support::wait_for(20, "the batch given up", || {
        let row = outbox(&s.server);
        (row["status"] == "failed").then_some(row)
    });
    stripe.set_down(false);
    assert!(
        failed["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("24 hours")),
        "{failed}"
    );
    stripe.control(json!({"lose_answers": 0}));
    let (st, b) = post(
        &s.server,
        &format!(
            "/v1/admin/outbox/stripe/{}/retry",
            failed["id"].as_u64().unwrap()
        ),
        Some(&s.admin),
        &json!({}),
    );
    assert_error(st, &b, 409, "conflict");
    assert!(b["message"].as_str().unwrap().contains("reconcile"), "{b}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        stripe.metered_total(),
        5_000,
        "billed once: {}",
        stripe.seen()
    );

    // Reconciliation counts the batch as expected on Stripe, and Stripe has it.
    let out = Command::new(crate::support::BIN)
        .args(["billing", "reconcile", "--data-dir"])
        .arg(dir.path())
        .args(["--server", &s.server.base, "--fix"])
        .envs(clock.env())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("0 with differences"), "{report}");
}

#[test]
fn the_fake_stripe_drives_a_whole_subscription_through_signed_webhooks() {
    drive_a_whole_subscription("2024-06-20");
}

#[test]
fn an_endpoint_at_a_2025_api_version_drives_the_same_subscription() {
    // Payloads follow the endpoint's version: the period on the items, the invoice's
    // subscription under `parent`.
    drive_a_whole_subscription("2025-03-31.basil");
}

fn drive_a_whole_subscription(endpoint_version: &str) {
    let stripe = FakeStripe::start();
    let dir = tempfile::tempdir().unwrap();
    let s = setup_online(dir.path(), &stripe, "60000");
    ureq::post(&format!("{}/_webhook", stripe.base))
        .send_json(json!({"url": s.server.url("/v1/stripe/webhook"), "secret": SECRET, "api_version": endpoint_version}))
        .unwrap();
    let (st, _) = post(
        &s.server,
        "/v1/meter-usage",
        Some(&s.service),
        &json!({"organization_id": s.org, "anomaly": true, "count": 9000}),
    );
    assert_eq!(st, 200);

    // The customer completes checkout: Stripe sends three events, newest first, the stale
    // subscription state after it, and the newest again.
    let done: Value = ureq::post(&format!("{}/_complete_checkout", stripe.base))
        .send_json(json!({"org": s.org, "email": "billing@acme.example", "plan": "standard", "prices": ["price_standard", "price_standard_overage"]}))
        .unwrap()
        .into_json()
        .unwrap();
    let answers = done["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 4);
    assert_eq!(
        answers.iter().filter(|a| a["duplicate"] == true).count(),
        1,
        "{answers:?}"
    );
    let (_, usage) = get(&s.server, "/v1/usage", Some(&s.key));
    assert_eq!(
        (usage["plan"].as_str(), usage["total_calls"].as_u64()),
        (Some("standard"), Some(9000))
    );
    let (_, billing) = get(&s.server, "/v1/billing", Some(&s.key));
    assert_eq!(
        billing["subscription_status"], "active",
        "the newer subscription state wins: {billing}"
    );
    assert_eq!(billing["stripe_customer_id"], done["customer"]);
    assert!(
        billing["current_period_end"].is_string(),
        "the period is read at {endpoint_version}: {billing}"
    );

    // A payment fails, then succeeds.
    let customer = done["customer"].as_str().unwrap();
    ureq::post(&format!("{}/_fail_invoice", stripe.base))
        .send_json(json!({"customer": customer}))
        .unwrap();
    let (_, billing) = get(&s.server, "/v1/billing", Some(&s.key));
    assert_eq!(billing["dunning_state"], "grace");
    ureq::post(&format!("{}/_pay_invoice", stripe.base))
        .send_json(json!({"customer": customer}))
        .unwrap();
    let (_, billing) = get(&s.server, "/v1/billing", Some(&s.key));
    assert_eq!(billing["dunning_state"], "ok");
    let (_, invoices) = get(&s.server, "/v1/billing/invoices", Some(&s.key));
    assert_eq!(invoices["items"][0]["status"], "paid");
    let (_, events) = get(&s.server, "/v1/admin/stripe/events", Some(&s.admin));
    let invoice_outcomes: Vec<&Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap_or("").starts_with("invoice."))
        .map(|e| &e["outcome"])
        .collect();
    assert_eq!(
        invoice_outcomes,
        [&json!("applied"), &json!("applied")],
        "every invoice event finds its org at {endpoint_version}: {events}"
    );

    // Stripe's own event list matches what Driftlock recorded.
    let stripe_events: Value = ureq::get(&format!("{}/v1/events", stripe.base))
        .set("Authorization", "Bearer sk_test_driftlock")
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    let (_, ours) = get(&s.server, "/v1/admin/stripe/events", Some(&s.admin));
    assert_eq!(
        stripe_events["data"].as_array().unwrap().len(),
        ours["items"].as_array().unwrap().len()
    );
}
