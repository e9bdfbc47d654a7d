//! The client threads of a run. Each has its own ureq agent and random generator, and until
//! the deadline or the shared request budget runs out picks a random (organization, key) and a
//! route kind by weight for every request. It records what it saw and, per organization, the
//! detections that 2xx answers reported. Some billable requests carry an idempotency key and
//! are then deliberately sent again as their own, recorded request: the replay must answer
//! the same, and one detection is never counted twice.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use rand::{rngs::StdRng, RngExt, SeedableRng};
use serde_json::{json, Value};

use super::{
    http::{bearer, exchange, keyed_post, Answer, Payload},
    replay::{same_body, same_metering, Sameness},
    routes::{Kind, Route},
    setup::Fleet,
    tally::Tally,
    traffic, Settings, Target,
};

/// What every client of a run shares.
struct Shared<'a> {
    base: &'a str,
    settings: &'a Settings,
    fleet: &'a Fleet,
    deadline: Instant,
    requests_taken: AtomicU64,
}

impl Shared<'_> {
    /// Takes one request from the budget. A replay ignores the deadline, so a request that
    /// was sent is always followed by its replay while the budget lasts.
    fn take_request(&self, is_replay: bool) -> bool {
        if !is_replay && Instant::now() >= self.deadline {
            return false;
        }
        self.requests_taken.fetch_add(1, Ordering::Relaxed) < self.settings.max_requests
    }
}

/// Runs `settings.clients` threads against `target` and merges what they recorded.
pub fn drive_all(target: &Target, settings: &Settings, fleet: &Fleet) -> Tally {
    let shared = Shared {
        base: &target.base,
        settings,
        fleet,
        deadline: Instant::now() + settings.duration,
        requests_taken: AtomicU64::new(0),
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..settings.clients)
            .map(|number| {
                let shared = &shared;
                scope.spawn(move || Client::new(shared, number).drive())
            })
            .collect();
        let mut total = Tally::new(fleet.orgs.len());
        for handle in handles {
            total.merge(handle.join().expect("a client thread panicked"));
        }
        total
    })
}

struct Client<'a> {
    shared: &'a Shared<'a>,
    number: usize,
    agent: ureq::Agent,
    rng: StdRng,
    tally: Tally,
    replay_keys_made: u64,
}

/// The answer a billable request is judged by, when there is one.
enum Settled {
    Answered(Value),
    /// A transport failure left it unknown whether the request was applied.
    Unknown,
    /// Answered with an error: nothing was applied.
    Refused,
}

impl<'a> Client<'a> {
    fn new(shared: &'a Shared<'a>, number: usize) -> Client<'a> {
        Client {
            shared,
            number,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
            rng: StdRng::seed_from_u64(shared.settings.seed.wrapping_add(number as u64)),
            tally: Tally::new(shared.fleet.orgs.len()),
            replay_keys_made: 0,
        }
    }

    fn drive(mut self) -> Tally {
        let fleet = self.shared.fleet;
        while self.shared.take_request(false) {
            let org = self.rng.random_range(0..fleet.orgs.len());
            let keys = &fleet.orgs[org].keys;
            let key = bearer(&keys[self.rng.random_range(0..keys.len())]);
            match self.pick_kind() {
                Kind::Streams => self.stream_batch(org, &key),
                Kind::Monitors => self.monitor_batch(org, &key),
                Kind::Metering => self.meter(org),
                Kind::Reads => self.read(org, &key),
            }
        }
        self.tally
    }

    fn pick_kind(&mut self) -> Kind {
        let mix = self.shared.settings.mix;
        let weights = [
            (Kind::Streams, mix.streams),
            (Kind::Monitors, mix.monitors),
            (Kind::Metering, mix.metering),
            (Kind::Reads, mix.reads),
        ];
        let mut roll = self
            .rng
            .random_range(0..weights.iter().map(|(_, w)| w).sum::<u32>());
        for (kind, weight) in weights {
            if roll < weight {
                return kind;
            }
            roll -= weight;
        }
        Kind::Reads
    }

    /// An idempotency key for a request that will be replayed, for `replay_percent` of calls.
    fn replay_key(&mut self) -> Option<String> {
        let percent = self.shared.settings.replay_percent;
        if !self.rng.random_ratio(percent, 100) {
            return None;
        }
        self.replay_keys_made += 1;
        let run = &self.shared.fleet.run_id;
        Some(format!(
            "loadgen-{run}-{}-{}",
            self.number, self.replay_keys_made
        ))
    }

    /// Sends `send` once, and again as `replay_route` when it carries a replay key. The first
    /// 2xx answer is the one that counts; a replay after a 2xx must repeat it (`same`).
    fn send_billable(
        &mut self,
        (route, replay_route): (Route, Route),
        org: usize,
        units: u64,
        replay_key: Option<&str>,
        send: impl Fn(&ureq::Agent, Option<&str>) -> Answer,
        same: impl Fn(&Value, &Value) -> Sameness,
    ) -> Settled {
        let first = send(&self.agent, replay_key);
        self.tally.record(route, org, &first, units);
        let replay = match replay_key {
            Some(k) if self.shared.take_request(true) => {
                let answer = send(&self.agent, Some(k));
                self.tally.record(replay_route, org, &answer, units);
                Some(answer)
            }
            _ => None,
        };
        match (first.is_success(), replay) {
            (true, Some(r)) if r.is_success() => {
                match same(&first.body, &r.body) {
                    Sameness::Same => {}
                    Sameness::LastDigits => self.tally.replay_float_drift += 1,
                    Sameness::Different(diff) => {
                        let what = route.label();
                        self.tally.replay_differences.add(format!("{what}: {diff}"));
                    }
                }
                Settled::Answered(first.body)
            }
            (true, Some(r)) => {
                let refusal = format!("{} -> {}", route.label(), r.outcome());
                *self.tally.replay_refusals.entry(refusal).or_default() += 1;
                Settled::Answered(first.body)
            }
            (true, None) => Settled::Answered(first.body),
            (false, Some(r)) if r.is_success() => Settled::Answered(r.body),
            (false, _) if first.status.is_none() => Settled::Unknown,
            (false, _) => Settled::Refused,
        }
    }

    fn stream_batch(&mut self, org: usize, key: &str) {
        let shared = self.shared;
        let settings = shared.settings;
        let o = &shared.fleet.orgs[org];
        let stream = &o.streams[self.rng.random_range(0..o.streams.len())];
        let n = settings.events_per_batch;
        let batch = traffic::event_batch(&mut self.rng, n, settings.odd_events_per_mille);
        let replay_key = self.replay_key();
        let url = format!("{}/v1/streams/{stream}/events", shared.base);
        let send = |agent: &ureq::Agent, idem: Option<&str>| {
            exchange(
                keyed_post(agent, &url, key, idem),
                Payload::Ndjson(&batch.body),
            )
        };
        let routes = (Route::StreamEvents, Route::StreamReplay);
        let settled = self.send_billable(
            routes,
            org,
            n as u64,
            replay_key.as_deref(),
            send,
            same_body,
        );
        match settled {
            Settled::Answered(body) => {
                self.tally.injected_odd_events += batch.injected;
                let seen = self.stream_anomalies(&body, n);
                self.tally.orgs[org].stream_anomalies += seen;
            }
            Settled::Unknown => self.tally.orgs[org].unknown += 1,
            Settled::Refused => {}
        }
    }

    /// Events answered `anomaly: true`, checked against the answer's own counts.
    fn stream_anomalies(&mut self, body: &Value, sent: usize) -> u64 {
        let results = body["results"].as_array().map_or(&[][..], Vec::as_slice);
        let seen = results.iter().filter(|r| r["anomaly"] == true).count() as u64;
        let counted = body["detections_counted"].as_u64();
        let totals = body["totals"]["anomalies"].as_u64();
        if results.len() != sent || counted != Some(seen) || totals != Some(seen) {
            self.tally.inconsistencies.add(format!(
                "stream batch of {sent}: {} results, {seen} anomalies, detections_counted {counted:?}, totals.anomalies {totals:?}",
                results.len()
            ));
        }
        seen
    }

    fn monitor_batch(&mut self, org: usize, key: &str) {
        let shared = self.shared;
        let settings = shared.settings;
        let o = &shared.fleet.orgs[org];
        let feed = &o.monitors[self.rng.random_range(0..o.monitors.len())];
        let n = settings.points_per_batch;
        let mut next_point = feed.claim();
        let batch = traffic::point_batch(&mut self.rng, *next_point, n, settings.spikes_per_mille);
        *next_point += n as u64;
        let replay_key = self.replay_key();
        let url = format!("{}/v1/monitors/{}/points", shared.base, feed.id);
        let send = |agent: &ureq::Agent, idem: Option<&str>| {
            exchange(
                keyed_post(agent, &url, key, idem),
                Payload::Json(&batch.body),
            )
        };
        let routes = (Route::MonitorPoints, Route::MonitorReplay);
        let settled = self.send_billable(
            routes,
            org,
            n as u64,
            replay_key.as_deref(),
            send,
            same_body,
        );
        drop(next_point);
        match settled {
            Settled::Answered(body) => {
                self.tally.injected_spikes += batch.injected;
                let seen = self.monitor_anomalies(&body, n);
                self.tally.orgs[org].monitor_anomalies += seen;
            }
            Settled::Unknown => self.tally.orgs[org].unknown += 1,
            Settled::Refused => {}
        }
    }

    /// Accepted points answered `anomaly: true`, checked against the answer's own counts.
    fn monitor_anomalies(&mut self, body: &Value, sent: usize) -> u64 {
        let results = body["results"].as_array().map_or(&[][..], Vec::as_slice);
        let accepted = results.iter().filter(|r| r["accepted"] == true);
        let accepted_count = accepted.clone().count() as u64;
        let seen = accepted.filter(|r| r["anomaly"] == true).count() as u64;
        self.tally.rejected_points += sent as u64 - accepted_count.min(sent as u64);
        let counted = body["detections_counted"].as_u64();
        let said_accepted = body["accepted"].as_u64();
        let anomalies = body["anomalies"].as_u64();
        let consistent = results.len() == sent
            && said_accepted == Some(accepted_count)
            && counted == Some(seen)
            && anomalies == Some(seen);
        if !consistent {
            self.tally.inconsistencies.add(format!(
                "monitor batch of {sent}: {} results, {accepted_count} accepted (says {said_accepted:?}), {seen} anomalies (says {anomalies:?}), detections_counted {counted:?}",
                results.len()
            ));
        }
        seen
    }

    fn meter(&mut self, org: usize) {
        let fleet = self.shared.fleet;
        let service_key = bearer(&fleet.service_keys[self.number % fleet.service_keys.len()]);
        let replay_key = self.replay_key();
        // Replays always meter something, so there is a count to compare.
        let anomaly = replay_key.is_some() || self.rng.random_ratio(4, 5);
        let count: u64 = self.rng.random_range(1..=5);
        let mut body =
            json!({"organization_id": fleet.orgs[org].id, "anomaly": anomaly, "count": count});
        if let Some(k) = &replay_key {
            body["idempotency_key"] = json!(k);
        }
        let url = format!("{}/v1/meter-usage", self.shared.base);
        let send = |agent: &ureq::Agent, _: Option<&str>| {
            exchange(
                agent.post(&url).set("Authorization", &service_key),
                Payload::Json(&body),
            )
        };
        let units = if anomaly { count } else { 0 };
        let routes = (Route::MeterUsage, Route::MeterReplay);
        match self.send_billable(
            routes,
            org,
            units,
            replay_key.as_deref(),
            send,
            same_metering,
        ) {
            Settled::Answered(answer) => {
                let counted = answer["counted"].as_u64();
                if counted != Some(units) {
                    self.tally.inconsistencies.add(format!(
                        "meter-usage of {units} detections answered counted {counted:?}"
                    ));
                }
                self.tally.orgs[org].metered += counted.unwrap_or(0);
            }
            Settled::Unknown => self.tally.orgs[org].unknown += 1,
            Settled::Refused => {}
        }
    }

    fn read(&mut self, org: usize, key: &str) {
        let shared = self.shared;
        let o = &shared.fleet.orgs[org];
        let base = shared.base;
        let (route, url) = match self.rng.random_range(0..3) {
            0 => (Route::ReadUsage, format!("{base}/v1/usage")),
            1 => {
                let stream = &o.streams[self.rng.random_range(0..o.streams.len())];
                let url = format!("{base}/v1/streams/{stream}/anomalies?limit=100");
                (Route::ReadStreamAnomalies, url)
            }
            _ => {
                let monitor = &o.monitors[self.rng.random_range(0..o.monitors.len())].id;
                let url = format!("{base}/v1/monitors/{monitor}/anomalies?limit=100");
                (Route::ReadMonitorAnomalies, url)
            }
        };
        let answer = exchange(
            self.agent.get(&url).set("Authorization", key),
            Payload::Empty,
        );
        let units = match route {
            Route::ReadUsage => {
                let owner = answer.body["organization_id"].as_str();
                if answer.is_success() && owner != Some(o.id.as_str()) {
                    self.tally.inconsistencies.add(format!(
                        "GET /v1/usage with a key of {} answered for {owner:?}",
                        o.id
                    ));
                }
                1
            }
            _ => answer.body["items"].as_array().map_or(0, Vec::len) as u64,
        };
        self.tally.record(route, org, &answer, units);
    }
}
