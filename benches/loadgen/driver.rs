//! The load driver behind `cargo bench --bench loadgen` (issue 11), shared with the
//! integration test `load`: sets up many organizations, keys, streams and monitors through
//! the admin API, drives them from client threads for a bounded time and request count, reads
//! every organization's usage counter back, revokes the service keys it made, and renders the
//! report. It only talks HTTP to the
//! one loopback server it is given; starting or stopping that server is the caller's business.

mod clients;
mod http;
mod metering;
mod replay;
mod report;
mod routes;
mod setup;
mod tally;
mod traffic;

use std::time::{Duration, Instant};

pub use metering::Metering;
pub use routes::Kind;
pub use tally::Tally;

/// Where the server is and how to administer it.
pub struct Target {
    /// e.g. `http://127.0.0.1:8080`, without a trailing slash.
    pub base: String,
    pub admin_token: String,
    /// How the report names the server (spawned binary, given URL, ...).
    pub description: String,
}

/// Relative weights of the route kinds a client picks from.
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    pub streams: u32,
    pub monitors: u32,
    pub metering: u32,
    pub reads: u32,
}

impl Mix {
    pub fn weight(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Streams => self.streams,
            Kind::Monitors => self.monitors,
            Kind::Metering => self.metering,
            Kind::Reads => self.reads,
        }
    }
}

/// What to set up and how hard to drive it.
#[derive(Clone, Debug)]
pub struct Settings {
    pub orgs: usize,
    pub keys_per_org: usize,
    /// Organizations left on `developer` with a hard cap and usage prefilled to just below it,
    /// so quota 429s show up within seconds; the rest go on `growth`.
    pub capped_orgs: usize,
    /// Detections a capped organization has left when the run starts.
    pub capped_headroom: u64,
    pub streams_per_org: usize,
    pub monitors_per_org: usize,
    pub clients: usize,
    pub duration: Duration,
    /// Requests of the run phase, replays included; the run stops at this or at `duration`.
    pub max_requests: u64,
    pub events_per_batch: usize,
    pub points_per_batch: usize,
    /// Per mille of events replaced by an injected odd event.
    pub odd_events_per_mille: u32,
    /// Per mille of points replaced by a spike.
    pub spikes_per_mille: u32,
    /// Percent of billable requests sent with an idempotency key and then deliberately sent
    /// again, to check that a replay answers the same and counts nothing.
    pub replay_percent: u32,
    pub mix: Mix,
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            orgs: 20,
            keys_per_org: 2,
            capped_orgs: 2,
            capped_headroom: 10,
            streams_per_org: 2,
            monitors_per_org: 2,
            clients: 8,
            duration: Duration::from_secs(10),
            max_requests: 1_000_000,
            events_per_batch: 100,
            points_per_batch: 50,
            odd_events_per_mille: 5,
            spikes_per_mille: 10,
            replay_percent: 5,
            mix: Mix {
                streams: 45,
                monitors: 30,
                metering: 10,
                reads: 15,
            },
            seed: 11,
        }
    }
}

impl Settings {
    /// Refuses settings that would make a run meaningless or unbounded.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("orgs", self.orgs),
            ("keys", self.keys_per_org),
            ("streams", self.streams_per_org),
            ("monitors", self.monitors_per_org),
            ("clients", self.clients),
            ("events-per-batch", self.events_per_batch),
            ("points-per-batch", self.points_per_batch),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("--{name} must be at least 1"));
        }
        if self.capped_orgs > self.orgs {
            return Err("--capped-orgs cannot exceed --orgs".into());
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(3_600) {
            return Err("--seconds must be more than 0 and at most 3600".into());
        }
        if self.max_requests == 0 {
            return Err("--max-requests must be at least 1".into());
        }
        if self.replay_percent > 100
            || self.odd_events_per_mille > 1000
            || self.spikes_per_mille > 1000
        {
            return Err("percentages must be at most 100 (per mille at most 1000)".into());
        }
        if Kind::ALL.iter().all(|k| self.mix.weight(*k) == 0) {
            return Err("the route mix needs at least one non-zero weight".into());
        }
        Ok(())
    }
}

/// Everything a run measured, and its report.
pub struct Outcome {
    pub settings: Settings,
    pub tally: Tally,
    pub metering: Metering,
    pub report: String,
}

impl Outcome {
    /// No 5xx, every request answered, every replay identical, every answer consistent,
    /// every kind of traffic in the mix answered 2xx at least once, and metering exact: what
    /// a scripted run should exit 0 on.
    pub fn healthy(&self) -> bool {
        let every_kind_served = Kind::ALL
            .iter()
            .all(|k| self.settings.mix.weight(*k) == 0 || self.tally.successes(*k) > 0);
        self.tally.server_errors() == 0
            && self.tally.transport_errors() == 0
            && self.tally.replay_differences.is_empty()
            && self.tally.replay_refusals.is_empty()
            && self.tally.inconsistencies.is_empty()
            && every_kind_served
            && self.metering.exact()
    }
}

/// Sets up, drives and checks. Fails only when setup or the final read-back fails; what
/// happens under load is measured and reported, never turned into an early stop.
pub fn run(target: &Target, settings: &Settings) -> Result<Outcome, String> {
    settings.validate()?;
    let fleet = setup::build(target, settings)?;
    let started = Instant::now();
    let tally = clients::drive_all(target, settings, &fleet);
    let elapsed = started.elapsed();
    let counters = setup::usage_counters(target, &fleet)?;
    setup::retire(target, &fleet)?;
    let metering = Metering::compare(&fleet, &tally, &counters);
    let report = report::render(target, settings, &fleet, &tally, &metering, elapsed);
    Ok(Outcome {
        settings: settings.clone(),
        tally,
        metering,
        report,
    })
}
