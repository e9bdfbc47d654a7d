//! Wall-clock jumps across a billing-period boundary, on the running binary. libfaketime
//! (Debian's `libfaketime`, preloaded) moves the server's wall clock by an offset read from a
//! file on every call; its monotonic clock stays real, so timers behave. The fake Stripe sees
//! the metered usage. Checked: a jump forward starts a fresh period (alerts and the soft cap
//! start over) and usage that waited across the month end is reported inside its own month; a
//! step back never reopens the month that ended, and usage of a month the clock has not reached
//! again waits for it; nothing is lost or sent twice.

use serde_json::{json, Value};

use crate::{
    stripe::{checkout_completed, raw, setup_online_with, stripe_signature, FakeStripe, Setup},
    support::{get, post, send, wait_for, Server},
    test_clock::MovableClock,
};

/// 2027-03-31T23:50:00Z: ten minutes before the end of March.
const MARCH_31_2350: i64 = 1_806_537_000;
const APRIL_1: i64 = 1_806_537_600;

fn meter(s: &Setup, org: &str, count: u64) -> (u16, Value) {
    post(
        &s.server,
        "/v1/meter-usage",
        Some(&s.service),
        &json!({"organization_id": org, "anomaly": true, "count": count}),
    )
}

fn usage_of(server: &Server, admin: &str, org: &str) -> Value {
    let (st, usage) = get(server, &format!("/v1/admin/orgs/{org}/usage"), Some(admin));
    assert_eq!(st, 200, "{usage}");
    usage
}

/// The meter events Stripe holds, in the order they were batched, as (value, timestamp).
fn stripe_events(stripe: &FakeStripe) -> Vec<(u64, i64)> {
    let seen = stripe.seen();
    assert_eq!(seen["duplicates"], 0, "a batch reached Stripe twice");
    let mut events: Vec<(u64, u64, i64)> = seen["meter_events"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(identifier, e)| {
            let batch = identifier.rsplit('-').next().unwrap().parse().unwrap();
            let timestamp = e["timestamp"].as_str().unwrap().parse().unwrap();
            (batch, e["value"].as_u64().unwrap(), timestamp)
        })
        .collect();
    events.sort();
    events.into_iter().map(|(_, v, ts)| (v, ts)).collect()
}

#[test]
fn clock_jumps_across_a_month_end_never_reopen_a_period_or_lose_usage() {
    let dir = tempfile::tempdir().unwrap();
    let clock = MovableClock::new(dir.path(), MARCH_31_2350);
    let env = clock.env();
    // The fake Stripe keeps the same time (it refuses meter events outside its window).
    let stripe = FakeStripe::start_with(&env);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = setup_online_with(dir.path(), &stripe, "100", &env);
    let admin = &s.admin;

    // A developer-plan org, capped at 120% of its 10,000 included detections.
    let (_, capped) = post(
        &s.server,
        "/v1/admin/orgs",
        Some(admin),
        &json!({"name": "Capped", "plan": "developer"}),
    );
    let capped = capped["id"].as_str().unwrap().to_string();

    // Acme is on the standard plan (overage billed through Stripe's meter).
    let (st, b) = send(
        ureq::put(&s.server.url(&format!("/v1/admin/orgs/{}/plan", s.org)))
            .set("Authorization", &format!("Bearer {admin}")),
        Some(&json!({"plan": "standard"})),
    );
    assert_eq!(st, 200, "{b}");

    // March: the clock really is fake (the period is March 2027), Acme goes 10 past its
    // included detections, and Capped reaches its cap.
    let march = usage_of(&s.server, admin, &s.org);
    assert_eq!(march["period_start"], "2027-03-01T00:00:00.000Z", "{march}");
    assert_eq!(meter(&s, &s.org, 250_010).0, 200);
    assert_eq!(meter(&s, &capped, 12_000).0, 200);
    let (st, b) = meter(&s, &capped, 1);
    assert_eq!((st, &b["code"]), (429, &json!("quota_exceeded")), "{b}");
    assert_eq!(b["details"]["period_end"], "2027-04-01T00:00:00.000Z");

    // Forward across the month end, before Acme has a Stripe customer: its March overage waits.
    clock.set(APRIL_1 + 30);
    let april = usage_of(&s.server, admin, &s.org);
    assert_eq!(april["period_start"], "2027-04-01T00:00:00.000Z", "{april}");
    assert_eq!(april["total_calls"], 0, "a new month starts from zero");
    assert_eq!(meter(&s, &capped, 1).0, 200, "the cap starts over");
    assert_eq!(meter(&s, &s.org, 250_003).0, 200);
    let at = APRIL_1 + 31;
    let payload = checkout_completed("evt_c", &s.org, at).to_string();
    let (st, b) = raw(&s.server, &payload, Some(&stripe_signature(&payload, at)));
    assert_eq!(st, 200, "{b}");

    // Each month's overage reaches Stripe once, stamped inside its own month.
    let events = wait_for(30, "both months' overage at Stripe", || {
        let e = stripe_events(&stripe);
        (e.len() >= 2).then_some(e)
    });
    let mut by_value = events.clone();
    by_value.sort();
    assert_eq!(by_value.len(), 2, "{events:?}");
    let (april_batch, march_batch) = (by_value[0], by_value[1]);
    assert_eq!(march_batch, (10, APRIL_1 - 1), "March's overage in March");
    assert_eq!(april_batch.0, 3);
    assert!(
        (APRIL_1..APRIL_1 + 300).contains(&april_batch.1),
        "April's overage in April: {events:?}"
    );

    // Alerts: 70% and 100% once per month, each month on its own.
    let (st, history) = get(&s.server, "/v1/usage/history", Some(&s.key));
    assert_eq!(st, 200, "{history}");
    let months: Vec<(String, u64, Value)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["period_start"].as_str().unwrap().to_string(),
                u["total_calls"].as_u64().unwrap(),
                u["alerts_sent"].clone(),
            )
        })
        .collect();
    assert_eq!(
        months,
        vec![
            ("2027-04-01T00:00:00.000Z".into(), 250_003, json!([70, 100])),
            ("2027-03-01T00:00:00.000Z".into(), 250_010, json!([70, 100])),
        ]
    );
    let (_, emails) = send(
        ureq::get(&s.server.url("/v1/admin/outbox/email?limit=500"))
            .set("Authorization", &format!("Bearer {admin}")),
        None,
    );
    let alerts: Vec<(i64, u64)> = emails["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "usage_alert" && e["organization_id"] == s.org.as_str())
        .map(|e| {
            (
                e["params"]["period_start_ms"].as_i64().unwrap(),
                e["params"]["threshold_percent"].as_u64().unwrap(),
            )
        })
        .collect();
    let march_ms = (APRIL_1 - 31 * 86_400) * 1000;
    assert_eq!(
        alerts,
        vec![
            (march_ms, 70),
            (march_ms, 100),
            (APRIL_1 * 1000, 70),
            (APRIL_1 * 1000, 100)
        ]
    );

    // The clock steps back into March: March stays closed, detections count into April, and
    // April's new overage waits until the clock is back in April.
    clock.set(APRIL_1 - 60);
    assert_eq!(meter(&s, &s.org, 7).0, 200);
    let (st, b) = meter(&s, &capped, 1);
    assert_eq!(st, 200, "Capped's April has room: {b}");
    let now = usage_of(&s.server, admin, &s.org);
    assert_eq!(now["period_start"], "2027-04-01T00:00:00.000Z", "{now}");
    assert_eq!(now["total_calls"], 250_010);
    assert_eq!(now["overage_calls"], 10);
    let capped_now = usage_of(&s.server, admin, &capped);
    assert_eq!(capped_now["period_start"], "2027-04-01T00:00:00.000Z");
    assert_eq!(capped_now["total_calls"], 2);
    let (_, history) = get(&s.server, "/v1/usage/history", Some(&s.key));
    assert_eq!(
        history["items"][1]["total_calls"], 250_010,
        "March unchanged"
    );
    // Twenty meter passes (100 ms each) while the clock reads March: nothing new is sent.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(stripe_events(&stripe).len(), 2, "April usage sent early");

    // Back in April: the 7 reach Stripe, stamped in April; nothing lost, nothing twice.
    clock.set(APRIL_1 + 120);
    let events = wait_for(30, "April's later overage at Stripe", || {
        let e = stripe_events(&stripe);
        (e.len() >= 3).then_some(e)
    });
    assert_eq!(events.len(), 3, "{events:?}");
    let (value, ts) = events[2];
    assert_eq!(value, 7);
    assert!((APRIL_1 + 120..APRIL_1 + 400).contains(&ts), "{events:?}");
    let total: u64 = events.iter().map(|e| e.0).sum();
    assert_eq!(
        total,
        10 + 3 + 7,
        "Stripe holds exactly the overage counted"
    );
}

/// Usage that waited more than Stripe's 35 days (here for its customer) is still delivered:
/// it is sent stamped at the oldest time Stripe accepts instead of being refused for good.
#[test]
fn usage_that_waited_past_stripes_35_days_is_still_billed() {
    let dir = tempfile::tempdir().unwrap();
    let start = crate::test_clock::start();
    let clock = MovableClock::new(dir.path(), start);
    let env = clock.env();
    let stripe = FakeStripe::start_with(&env);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = setup_online_with(dir.path(), &stripe, "100", &env);
    let (st, b) = send(
        ureq::put(&s.server.url(&format!("/v1/admin/orgs/{}/plan", s.org)))
            .set("Authorization", &format!("Bearer {}", s.admin)),
        Some(&json!({"plan": "standard"})),
    );
    assert_eq!(st, 200, "{b}");
    // 7 overage detections, with no Stripe customer yet: they wait.
    assert_eq!(meter(&s, &s.org, 250_007).0, 200);
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(stripe_events(&stripe), vec![]);

    // Sixty days later the customer is linked: the batch is stamped inside its own month,
    // which Stripe no longer accepts, so it goes out at the oldest time Stripe does.
    clock.set(start + 60 * 86_400);
    let at = clock.now();
    let payload = checkout_completed("evt_late", &s.org, at).to_string();
    let (st, b) = raw(&s.server, &payload, Some(&stripe_signature(&payload, at)));
    assert_eq!(st, 200, "{b}");
    let events = wait_for(20, "the late batch delivered", || {
        let events = stripe_events(&stripe);
        (!events.is_empty()).then_some(events)
    });
    assert_eq!(events.len(), 1, "{events:?}");
    let (value, timestamp) = events[0];
    assert_eq!(value, 7);
    let age = clock.now() - timestamp;
    assert!((0..35 * 86_400).contains(&age), "sent {age} s old");
    // The server records the delivery just after Stripe has it.
    wait_for(20, "the batch marked delivered", || {
        let (_, outbox) = get(&s.server, "/v1/admin/outbox/stripe", Some(&s.admin));
        outbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "delivered")
            .then_some(())
    });
}
