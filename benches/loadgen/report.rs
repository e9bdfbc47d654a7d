//! The printed report of a run: the machine, the settings, one row per route and per kind of
//! traffic (requests/s, units/s, p50/p99/max latency, outcomes), what the detectors flagged,
//! the replay and consistency findings, the quota refusals, and the metering verdict
//! (`metering: exact` or each mismatch).

use std::{collections::BTreeMap, fmt::Write, time::Duration};

use super::{
    metering::Metering,
    routes::{Kind, Route},
    setup::Fleet,
    tally::{quantile, Findings, RouteTally, Tally},
    Settings, Target,
};

const LABEL_WIDTH: usize = 34;

pub fn render(
    target: &Target,
    settings: &Settings,
    fleet: &Fleet,
    tally: &Tally,
    metering: &Metering,
    elapsed: Duration,
) -> String {
    let mut out = String::new();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let (arch, os) = (std::env::consts::ARCH, std::env::consts::OS);
    let s = settings;
    let _ = writeln!(out, "driftlock loadgen");
    let _ = writeln!(out, "machine   {cores} cores, {arch}, {os}");
    let _ = writeln!(out, "server    {}", target.description);
    let _ = writeln!(
        out,
        "settings  {} orgs ({} growth, {} developer hard-capped with {} detections left) x {} keys, {} streams + {} monitors per org",
        s.orgs, s.orgs - s.capped_orgs, s.capped_orgs, s.capped_headroom, s.keys_per_org, s.streams_per_org, s.monitors_per_org
    );
    let _ = writeln!(
        out,
        "          {} clients for {:.1} s or {} requests; {} events/batch ({}\u{2030} odd), {} points/batch ({}\u{2030} spikes), {}% replayed",
        s.clients, s.duration.as_secs_f64(), s.max_requests, s.events_per_batch, s.odd_events_per_mille,
        s.points_per_batch, s.spikes_per_mille, s.replay_percent
    );
    let _ = writeln!(
        out,
        "          mix streams {} / monitors {} / metering {} / reads {}; seed {}",
        s.mix.streams, s.mix.monitors, s.mix.metering, s.mix.reads, s.seed
    );
    let _ = writeln!(
        out,
        "setup     {} requests in {:.2} s (run {})",
        fleet.setup_requests,
        fleet.setup_time.as_secs_f64(),
        fleet.run_id
    );
    let _ = writeln!(
        out,
        "run       {} requests in {secs:.2} s: {} answered, {} transport errors, {} answered 5xx",
        tally.requests(),
        tally.answered(),
        tally.transport_errors(),
        tally.server_errors()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<LABEL_WIDTH$} {:>8} {:>8} {:>18} {:>10} {:>7} {:>7} {:>7}  outcomes",
        "route", "requests", "req/s", "units", "units/s", "p50 ms", "p99 ms", "max ms"
    );
    for route in Route::ALL {
        let t = tally.route(route);
        if t.requests > 0 {
            out.push_str(&row(route.label(), t, Some(route.unit()), secs));
        }
    }
    for kind in Kind::ALL {
        let merged = merged(tally, |r| r.kind() == kind);
        let unit = Route::ALL
            .iter()
            .find(|r| r.kind() == kind)
            .map(|r| r.unit());
        out.push_str(&row(&format!("{} (all)", kind.name()), &merged, unit, secs));
    }
    out.push_str(&row("overall", &merged(tally, |_| true), None, secs));
    let _ = writeln!(out);
    findings_section(&mut out, tally);
    quota_section(&mut out, metering);
    metering_section(&mut out, fleet, tally, metering);
    out
}

fn merged(tally: &Tally, pick: impl Fn(Route) -> bool) -> RouteTally {
    let mut all = RouteTally::default();
    for route in Route::ALL.into_iter().filter(|r| pick(*r)) {
        let t = tally.route(route);
        all.requests += t.requests;
        all.units += t.units;
        for (k, v) in &t.outcomes {
            *all.outcomes.entry(k.clone()).or_default() += v;
        }
        all.latencies_us.extend(&t.latencies_us);
    }
    all
}

fn row(label: &str, t: &RouteTally, unit: Option<&str>, secs: f64) -> String {
    let mut sorted = t.latencies_us.clone();
    sorted.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (units, per_sec) = match unit {
        Some(unit) => (
            format!("{} {unit}", t.units),
            format!("{:.0}", t.units as f64 / secs),
        ),
        None => ("-".to_string(), "-".to_string()),
    };
    format!(
        "{label:<LABEL_WIDTH$} {:>8} {:>8.1} {units:>18} {per_sec:>10} {:>7.1} {:>7.1} {:>7.1}  {}\n",
        t.requests,
        t.requests as f64 / secs,
        ms(quantile(&sorted, 0.50)),
        ms(quantile(&sorted, 0.99)),
        ms(quantile(&sorted, 1.0)),
        outcomes(&t.outcomes)
    )
}

fn outcomes(counts: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    parts.join(", ")
}

/// `title` and `what` around the count, then the kept examples.
fn list(out: &mut String, title: &str, findings: &Findings, what: &str) {
    let _ = writeln!(out, "{title:<10}{} {what}", findings.count);
    for example in &findings.examples {
        let _ = writeln!(out, "          - {example}");
    }
}

fn findings_section(out: &mut String, tally: &Tally) {
    let flagged_events: u64 = tally.orgs.iter().map(|o| o.stream_anomalies).sum();
    let flagged_points: u64 = tally.orgs.iter().map(|o| o.monitor_anomalies).sum();
    let _ = writeln!(
        out,
        "detected  {flagged_events} stream events flagged ({} odd events injected), {flagged_points} monitor points flagged ({} spikes injected), {} points rejected",
        tally.injected_odd_events, tally.injected_spikes, tally.rejected_points
    );
    let replays: u64 = [
        Route::StreamReplay,
        Route::MonitorReplay,
        Route::MeterReplay,
    ]
    .iter()
    .map(|r| tally.route(*r).requests)
    .sum();
    let _ = writeln!(
        out,
        "replays   {replays} sent with the key of a request just sent"
    );
    list(
        out,
        "",
        &tally.replay_differences,
        "replays answered differently",
    );
    let _ = writeln!(
        out,
        "          {} replays equal but for floats in their last digits",
        tally.replay_float_drift
    );
    let refused: u64 = tally.replay_refusals.values().sum();
    let _ = writeln!(
        out,
        "          {refused} replays refused after a 2xx first answer"
    );
    for (what, count) in &tally.replay_refusals {
        let _ = writeln!(out, "          - {what}: {count}");
    }
    list(
        out,
        "answers",
        &tally.inconsistencies,
        "contradicted themselves or the caller",
    );
    list(
        out,
        "failures",
        &tally.transport_failures,
        "requests got no HTTP answer",
    );
}

fn quota_section(out: &mut String, metering: &Metering) {
    let refusals = |capped: bool| -> u64 {
        let orgs = metering.orgs.iter().filter(|o| o.capped == capped);
        orgs.map(|o| o.quota_refusals).sum()
    };
    let overshoot = metering
        .orgs
        .iter()
        .filter(|o| o.capped)
        .filter_map(|o| o.limit.map(|limit| o.counter.saturating_sub(limit)))
        .max();
    let _ = writeln!(
        out,
        "quota     capped orgs: {} x 429 quota_exceeded, largest count past the limit {}; growth orgs: {} x 429 quota_exceeded",
        refusals(true),
        overshoot.map_or("-".to_string(), |o| o.to_string()),
        refusals(false)
    );
}

fn metering_section(out: &mut String, fleet: &Fleet, tally: &Tally, metering: &Metering) {
    let prefilled: u64 = fleet.orgs.iter().map(|o| o.prefilled).sum();
    let sum = |f: fn(&super::tally::OrgLedger) -> u64| -> u64 { tally.orgs.iter().map(f).sum() };
    let (stream, monitor, metered) = (
        sum(|o| o.stream_anomalies),
        sum(|o| o.monitor_anomalies),
        sum(|o| o.metered),
    );
    let counters: u64 = metering.orgs.iter().map(|o| o.counter).sum();
    let breakdown = format!(
        "{prefilled} prefilled + {stream} stream + {monitor} monitor + {metered} meter-usage = {} expected, counters sum to {counters}",
        prefilled + stream + monitor + metered
    );
    if metering.exact() {
        let _ = writeln!(
            out,
            "metering: exact ({} orgs; {breakdown})",
            metering.orgs.len()
        );
        return;
    }
    let bad: Vec<_> = metering.mismatches().collect();
    let _ = writeln!(
        out,
        "metering: MISMATCH in {} of {} orgs ({breakdown})",
        bad.len(),
        metering.orgs.len()
    );
    for org in bad {
        let _ = writeln!(
            out,
            "  {}: counter {}, clients saw {} ({} requests with unknown outcome)",
            org.org_id, org.counter, org.expected, org.unknown
        );
    }
}
