//! The metering check: per organization, the detections its 2xx answers reported plus the
//! setup's prefill, against its usage counter read back after the run. What is billed, as
//! the server does it: the anomalies of a stream batch (src/api/streams.rs), the anomalies
//! among a monitor batch's accepted points (src/api/monitors.rs), and the `count` of a
//! meter-usage call with `anomaly: true` (src/api/usage.rs); each commit meters inside its
//! own transaction (`meter_in_tx`, src/store/metering.rs), and an answer replayed from the
//! idempotency store counts nothing again. Every organization is fresh, so its counter
//! started at 0.

use super::{
    setup::{Counter, Fleet},
    tally::Tally,
};

/// One organization's expected and actual count.
pub struct OrgCheck {
    pub org_id: String,
    pub capped: bool,
    /// Prefill plus what the clients saw counted.
    pub expected: u64,
    /// The server's usage counter.
    pub counter: u64,
    pub limit: Option<u64>,
    /// Billable requests lost to transport failures: each may or may not have counted.
    pub unknown: u64,
    pub quota_refusals: u64,
}

impl OrgCheck {
    pub fn exact(&self) -> bool {
        self.expected == self.counter
    }
}

pub struct Metering {
    pub orgs: Vec<OrgCheck>,
}

impl Metering {
    pub fn compare(fleet: &Fleet, tally: &Tally, counters: &[Counter]) -> Metering {
        let orgs = fleet
            .orgs
            .iter()
            .zip(&tally.orgs)
            .zip(counters)
            .map(|((org, seen), counter)| OrgCheck {
                org_id: org.id.clone(),
                capped: org.capped,
                expected: org.prefilled
                    + seen.stream_anomalies
                    + seen.monitor_anomalies
                    + seen.metered,
                counter: counter.total_calls,
                limit: counter.limit,
                unknown: seen.unknown,
                quota_refusals: seen.quota_refusals,
            })
            .collect();
        Metering { orgs }
    }

    /// Every organization checked and every counter equal to what the clients saw.
    pub fn exact(&self) -> bool {
        !self.orgs.is_empty() && self.orgs.iter().all(OrgCheck::exact)
    }

    pub fn mismatches(&self) -> impl Iterator<Item = &OrgCheck> {
        self.orgs.iter().filter(|o| !o.exact())
    }
}
