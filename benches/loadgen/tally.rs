//! What the clients recorded: per route the requests, units, outcomes and latency samples;
//! per organization the detections that 2xx answers reported; and the findings that are not
//! numbers (replays that differed, answers that contradicted themselves). Each client keeps
//! its own tally and the run merges them, so the hot path takes no lock.

use std::{collections::BTreeMap, time::Duration};

use super::{
    http::Answer,
    routes::{Kind, Route},
};

/// Findings of one kind kept verbatim in the report; the rest are only counted.
const KEPT_FINDINGS: usize = 5;

#[derive(Clone, Default)]
pub struct RouteTally {
    pub requests: u64,
    /// Events, points, detections or items carried by 2xx answers.
    pub units: u64,
    /// Outcome (`200`, `429 quota_exceeded`, `transport error`, ...) -> count.
    pub outcomes: BTreeMap<String, u64>,
    /// Latency of every answered or failed request, in microseconds.
    pub latencies_us: Vec<u64>,
}

impl RouteTally {
    fn merge(&mut self, other: RouteTally) {
        self.requests += other.requests;
        self.units += other.units;
        for (k, v) in other.outcomes {
            *self.outcomes.entry(k).or_default() += v;
        }
        self.latencies_us.extend(other.latencies_us);
    }

    pub fn count_where(&self, pred: impl Fn(&str) -> bool) -> u64 {
        self.outcomes
            .iter()
            .filter(|(k, _)| pred(k))
            .map(|(_, v)| v)
            .sum()
    }
}

/// Detections one organization's 2xx answers reported, by where they came from.
#[derive(Clone, Copy, Default)]
pub struct OrgLedger {
    /// Events answered `anomaly: true` in first answers (replays not counted again).
    pub stream_anomalies: u64,
    /// Accepted points answered `anomaly: true`, likewise.
    pub monitor_anomalies: u64,
    /// `counted` of meter-usage answers, likewise.
    pub metered: u64,
    /// Billable requests whose fate is unknown (transport failure, no successful replay).
    pub unknown: u64,
    /// 429 quota_exceeded answers.
    pub quota_refusals: u64,
}

impl OrgLedger {
    fn merge(&mut self, o: OrgLedger) {
        self.stream_anomalies += o.stream_anomalies;
        self.monitor_anomalies += o.monitor_anomalies;
        self.metered += o.metered;
        self.unknown += o.unknown;
        self.quota_refusals += o.quota_refusals;
    }
}

/// Findings: counted, and the first few kept for the report.
#[derive(Clone, Default)]
pub struct Findings {
    pub count: u64,
    pub examples: Vec<String>,
}

impl Findings {
    pub fn add(&mut self, what: String) {
        self.count += 1;
        if self.examples.len() < KEPT_FINDINGS {
            self.examples.push(what);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn merge(&mut self, other: Findings) {
        self.count += other.count;
        let room = KEPT_FINDINGS.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.into_iter().take(room));
    }
}

#[derive(Clone)]
pub struct Tally {
    pub routes: Vec<RouteTally>,
    /// Indexed like the fleet's organizations.
    pub orgs: Vec<OrgLedger>,
    /// Odd events and spikes injected into batches that were answered 2xx.
    pub injected_odd_events: u64,
    pub injected_spikes: u64,
    /// Points a monitor answered `accepted: false` (the tool sends them in time order).
    pub rejected_points: u64,
    pub replay_differences: Findings,
    /// Replays equal to their first answer except for floats a few units in the last place
    /// apart (see `replay.rs`).
    pub replay_float_drift: u64,
    /// Replays refused although their first request had been answered 2xx, by route and
    /// outcome: the caller of a retry cannot tell that the first attempt counted.
    pub replay_refusals: BTreeMap<String, u64>,
    /// Answers that contradict themselves or the caller (a count that disagrees with the
    /// results, another organization's usage).
    pub inconsistencies: Findings,
    pub transport_failures: Findings,
}

impl Tally {
    pub fn new(orgs: usize) -> Tally {
        Tally {
            routes: vec![RouteTally::default(); Route::ALL.len()],
            orgs: vec![OrgLedger::default(); orgs],
            injected_odd_events: 0,
            injected_spikes: 0,
            rejected_points: 0,
            replay_differences: Findings::default(),
            replay_float_drift: 0,
            replay_refusals: BTreeMap::new(),
            inconsistencies: Findings::default(),
            transport_failures: Findings::default(),
        }
    }

    /// Files one answer under `route`; `units` counts only when it was a 2xx.
    pub fn record(&mut self, route: Route, org: usize, answer: &Answer, units: u64) {
        let tally = &mut self.routes[route.index()];
        tally.requests += 1;
        *tally.outcomes.entry(answer.outcome()).or_default() += 1;
        tally.latencies_us.push(answer.latency.as_micros() as u64);
        if answer.is_success() {
            tally.units += units;
        }
        if answer.error_code() == Some("quota_exceeded") {
            self.orgs[org].quota_refusals += 1;
        }
        if let Some(failure) = &answer.failure {
            self.transport_failures
                .add(format!("{}: {failure}", route.label().trim()));
        }
    }

    pub fn merge(&mut self, other: Tally) {
        for (mine, theirs) in self.routes.iter_mut().zip(other.routes) {
            mine.merge(theirs);
        }
        for (mine, theirs) in self.orgs.iter_mut().zip(other.orgs) {
            mine.merge(theirs);
        }
        self.injected_odd_events += other.injected_odd_events;
        self.injected_spikes += other.injected_spikes;
        self.rejected_points += other.rejected_points;
        self.replay_differences.merge(other.replay_differences);
        self.replay_float_drift += other.replay_float_drift;
        for (k, v) in other.replay_refusals {
            *self.replay_refusals.entry(k).or_default() += v;
        }
        self.inconsistencies.merge(other.inconsistencies);
        self.transport_failures.merge(other.transport_failures);
    }

    pub fn route(&self, route: Route) -> &RouteTally {
        &self.routes[route.index()]
    }

    pub fn requests(&self) -> u64 {
        self.routes.iter().map(|r| r.requests).sum()
    }

    /// Requests that got an HTTP answer, whatever its status.
    pub fn answered(&self) -> u64 {
        self.requests() - self.transport_errors()
    }

    pub fn transport_errors(&self) -> u64 {
        self.routes
            .iter()
            .map(|r| r.count_where(|k| k == "transport error"))
            .sum()
    }

    /// 2xx answers on the routes of `kind`.
    pub fn successes(&self, kind: Kind) -> u64 {
        Route::ALL
            .iter()
            .filter(|r| r.kind() == kind)
            .map(|r| self.route(*r).count_where(|k| k.starts_with('2')))
            .sum()
    }

    pub fn server_errors(&self) -> u64 {
        self.routes
            .iter()
            .map(|r| r.count_where(|k| k.starts_with('5')))
            .sum()
    }
}

/// The `p`-quantile (0..=1) of sorted samples by nearest rank, as a duration.
pub fn quantile(sorted_us: &[u64], p: f64) -> Duration {
    if sorted_us.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted_us.len() as f64 * p).ceil() as usize).clamp(1, sorted_us.len());
    Duration::from_micros(sorted_us[rank - 1])
}
