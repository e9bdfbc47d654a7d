//! A short run of the load tool (issue 11) against the debug binary: a dozen organizations
//! with two keys each, two of them already at their hard cap, eight clients for about three
//! seconds. Whatever the throughput, every request must be answered without a 5xx, every
//! replay must repeat its first answer, the capped organizations (and only they) must meet
//! their quota, and each organization's usage counter must equal what the clients saw
//! counted.

use std::time::{Duration, Instant};

use crate::support::start;

#[path = "../../benches/loadgen/driver.rs"]
mod driver;

use driver::{Kind, Settings, Target};

#[test]
fn load_run_answers_everything_and_meters_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let target = Target {
        base: server.base.clone(),
        admin_token: server.admin_token(),
        description: format!("debug binary at {}", server.base),
    };
    let settings = Settings {
        orgs: 12,
        keys_per_org: 2,
        // At the cap from the start, so every billable call of theirs answers 429 however
        // few requests a slow machine gets through (the bench leaves headroom instead).
        capped_orgs: 2,
        capped_headroom: 0,
        // One stream and one monitor per org and small batches: the debug build detects
        // slowly, and each stream and monitor should get past warm-up within the run.
        streams_per_org: 1,
        monitors_per_org: 1,
        events_per_batch: 50,
        points_per_batch: 40,
        clients: 8,
        duration: Duration::from_secs(3),
        max_requests: 20_000,
        ..Settings::default()
    };
    let started = Instant::now();
    let outcome = driver::run(&target, &settings).expect("setup and read-back succeed");
    println!("{}", outcome.report);
    println!("load test took {:.1} s", started.elapsed().as_secs_f64());

    let (tally, metering, report) = (&outcome.tally, &outcome.metering, &outcome.report);
    assert!(tally.requests() > 0, "no request was sent");
    assert_eq!(tally.server_errors(), 0, "5xx answers:\n{report}");
    assert_eq!(tally.transport_errors(), 0, "{report}");
    assert_eq!(tally.answered(), tally.requests(), "{report}");
    for kind in Kind::ALL {
        let name = kind.name();
        assert!(tally.successes(kind) > 0, "no 2xx for {name}:\n{report}");
        let row = format!("{name} (all)");
        assert!(report.contains(&row), "the report has no {name} row");
    }
    assert!(
        tally.replay_differences.is_empty() && tally.replay_refusals.is_empty(),
        "replays did not repeat their first answer:\n{report}"
    );
    assert!(tally.inconsistencies.is_empty(), "{report}");
    let flagged: u64 = tally
        .orgs
        .iter()
        .map(|o| o.stream_anomalies + o.monitor_anomalies)
        .sum();
    assert!(
        flagged > 0,
        "no anomaly was flagged, so metering checked only meter-usage:\n{report}"
    );
    let refusals = |capped: bool| -> u64 {
        let orgs = metering.orgs.iter().filter(|o| o.capped == capped);
        orgs.map(|o| o.quota_refusals).sum()
    };
    assert!(
        refusals(true) > 0,
        "capped orgs never got a quota 429:\n{report}"
    );
    assert_eq!(refusals(false), 0, "growth orgs got quota 429s:\n{report}");
    assert_eq!(metering.orgs.len(), settings.orgs);
    for org in &metering.orgs {
        assert_eq!(
            org.counter, org.expected,
            "usage counter of {} differs from what its clients saw:\n{report}",
            org.org_id
        );
    }
    assert!(report.contains("metering: exact"));
    assert!(outcome.healthy(), "{report}");
}
