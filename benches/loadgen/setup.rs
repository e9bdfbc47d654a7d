//! The fleet a run drives, made through the admin and organization APIs: organizations moved
//! to `growth` (a few left on `developer` with a hard cap and usage prefilled to just below
//! it, so quota 429s happen within seconds), K keys each, streams and monitors, and one
//! service key per client for meter-usage. After the run, each organization's usage counter
//! is read back. Any unexpected answer stops the setup with what was being done: a half-made
//! fleet would make the metering check meaningless.

use std::{
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::{json, Value};

use super::{
    http::{bearer, exchange, Payload},
    Settings, Target,
};

/// Streams and monitors start judging after this many events or points instead of the
/// defaults (64 and 150), so runs of a few seconds get past warm-up and see anomalies;
/// every other detector setting keeps its default.
const STREAM_WARMUP_EVENTS: u32 = 32;
const MONITOR_WARMUP_POINTS: u32 = 32;

/// A monitor and the index of its next point. Whoever holds the lock is the monitor's only
/// sender until the answer is in, so its points arrive in time order.
pub struct MonitorFeed {
    pub id: String,
    next_point: Mutex<u64>,
}

impl MonitorFeed {
    pub fn claim(&self) -> MutexGuard<'_, u64> {
        self.next_point.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Org {
    pub id: String,
    /// On `developer` with a hard cap, prefilled to `capped_headroom` below its limit.
    pub capped: bool,
    /// Detections metered during setup (the prefill).
    pub prefilled: u64,
    pub keys: Vec<String>,
    pub streams: Vec<String>,
    pub monitors: Vec<MonitorFeed>,
}

pub struct Fleet {
    pub run_id: String,
    pub orgs: Vec<Org>,
    pub service_keys: Vec<String>,
    /// Revoked after the run: platform keys should not outlive it on a shared server.
    service_key_ids: Vec<String>,
    pub setup_requests: u64,
    pub setup_time: Duration,
}

/// An organization's usage counter after the run.
pub struct Counter {
    pub total_calls: u64,
    /// Where detection calls start answering 429, if anywhere.
    pub limit: Option<u64>,
}

struct Admin<'a> {
    agent: ureq::Agent,
    target: &'a Target,
    requests: u64,
}

impl<'a> Admin<'a> {
    fn new(target: &'a Target) -> Admin<'a> {
        Admin {
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
            target,
            requests: 0,
        }
    }

    /// Sends one request with `secret` and insists on `want`; returns the JSON body.
    fn call(
        &mut self,
        method: &str,
        path: &str,
        secret: &str,
        body: Option<&Value>,
        want: u16,
    ) -> Result<Value, String> {
        self.requests += 1;
        let request = self
            .agent
            .request(method, &format!("{}{path}", self.target.base))
            .set("Authorization", &bearer(secret));
        let payload = body.map_or(Payload::Empty, Payload::Json);
        let answer = exchange(request, payload);
        match answer.status {
            Some(s) if s == want => Ok(answer.body),
            Some(s) => Err(format!(
                "{method} {path} answered {s} (wanted {want}): {}",
                answer.body
            )),
            None => Err(format!(
                "{method} {path} failed: {}",
                answer.failure.unwrap_or_default()
            )),
        }
    }

    fn admin(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        want: u16,
    ) -> Result<Value, String> {
        let token = self.target.admin_token.clone();
        self.call(method, path, &token, body, want)
    }
}

fn field(value: &Value, name: &str) -> Result<String, String> {
    value[name]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("answer without {name}: {value}"))
}

/// Creates the run's organizations, keys, streams, monitors and service keys.
pub fn build(target: &Target, settings: &Settings) -> Result<Fleet, String> {
    let started = Instant::now();
    let run_id = format!(
        "{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let mut admin = Admin::new(target);
    let mut service_keys = Vec::with_capacity(settings.clients);
    let mut service_key_ids = Vec::with_capacity(settings.clients);
    for c in 0..settings.clients {
        let body = json!({"name": format!("loadgen-{run_id}-meter-{c}"), "scope": "service"});
        let created = admin.admin("POST", "/v1/admin/keys", Some(&body), 201)?;
        service_keys.push(field(&created, "secret")?);
        service_key_ids.push(field(&created["key"], "id")?);
    }
    let mut orgs = Vec::with_capacity(settings.orgs);
    for i in 0..settings.orgs {
        let capped = i < settings.capped_orgs;
        orgs.push(build_org(
            &mut admin,
            settings,
            &run_id,
            i,
            capped,
            &service_keys[0],
        )?);
    }
    Ok(Fleet {
        run_id,
        orgs,
        service_keys,
        service_key_ids,
        setup_requests: admin.requests,
        setup_time: started.elapsed(),
    })
}

fn build_org(
    admin: &mut Admin,
    settings: &Settings,
    run_id: &str,
    i: usize,
    capped: bool,
    service_key: &str,
) -> Result<Org, String> {
    let name = format!("loadgen {run_id} org {i}");
    let org = admin.admin("POST", "/v1/admin/orgs", Some(&json!({"name": name})), 201)?;
    let id = field(&org, "id")?;
    let prefilled = if capped {
        prefill_to_cap(admin, &id, service_key, settings.capped_headroom)?
    } else {
        let plan = json!({"plan": "growth"});
        admin.admin(
            "PUT",
            &format!("/v1/admin/orgs/{id}/plan"),
            Some(&plan),
            200,
        )?;
        0
    };
    let keys = (0..settings.keys_per_org)
        .map(|k| {
            let body = json!({"name": format!("loadgen-{k}")});
            let created = admin.admin(
                "POST",
                &format!("/v1/admin/orgs/{id}/keys"),
                Some(&body),
                201,
            )?;
            field(&created, "secret")
        })
        .collect::<Result<Vec<_>, _>>()?;
    let streams = (0..settings.streams_per_org)
        .map(|s| {
            let stream = format!("loadgen-{s}");
            let path = format!("/v1/streams/{stream}");
            let settings = json!({ "warmup": STREAM_WARMUP_EVENTS });
            admin.call("PUT", &path, &keys[0], Some(&settings), 200)?;
            Ok(stream)
        })
        .collect::<Result<Vec<_>, String>>()?;
    let monitors = (0..settings.monitors_per_org)
        .map(|m| {
            let body = json!({
                "name": format!("loadgen monitor {m}"),
                "detector": {"warmup": MONITOR_WARMUP_POINTS},
            });
            let created = admin.call("POST", "/v1/monitors", &keys[0], Some(&body), 201)?;
            Ok(MonitorFeed {
                id: field(&created, "id")?,
                next_point: Mutex::new(0),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Org {
        id,
        capped,
        prefilled,
        keys,
        streams,
        monitors,
    })
}

/// Hard cap at the plan's included detections, then meters all but `headroom` of them.
/// Returns the detections metered.
fn prefill_to_cap(
    admin: &mut Admin,
    org: &str,
    service_key: &str,
    headroom: u64,
) -> Result<u64, String> {
    let policy = json!({
        "behavior_on_exceed": "hard_cap",
        "cap_percent": 100,
        "invoice_threshold_cents": 50_000,
        "alert_at_90": false,
    });
    admin.admin(
        "PUT",
        &format!("/v1/admin/orgs/{org}/quota-policy"),
        Some(&policy),
        200,
    )?;
    let usage = admin.admin("GET", &format!("/v1/admin/orgs/{org}/usage"), None, 200)?;
    let limit = usage["limit"]
        .as_u64()
        .ok_or_else(|| format!("a hard-capped organization without a limit: {usage}"))?;
    let count = limit.saturating_sub(headroom);
    if count == 0 {
        return Ok(0);
    }
    let body = json!({"organization_id": org, "anomaly": true, "count": count});
    let metered = admin.call("POST", "/v1/meter-usage", service_key, Some(&body), 200)?;
    match metered["counted"].as_u64() {
        Some(c) if c == count => Ok(count),
        _ => Err(format!("prefill of {count} detections answered {metered}")),
    }
}

/// Every organization's usage counter, read through the admin API.
pub fn usage_counters(target: &Target, fleet: &Fleet) -> Result<Vec<Counter>, String> {
    let mut admin = Admin::new(target);
    fleet
        .orgs
        .iter()
        .map(|org| {
            let usage = admin.admin(
                "GET",
                &format!("/v1/admin/orgs/{}/usage", org.id),
                None,
                200,
            )?;
            Ok(Counter {
                total_calls: usage["total_calls"]
                    .as_u64()
                    .ok_or_else(|| format!("usage without total_calls: {usage}"))?,
                limit: usage["limit"].as_u64(),
            })
        })
        .collect()
}

/// Revokes the run's service keys (the organizations and their keys stay, as data).
pub fn retire(target: &Target, fleet: &Fleet) -> Result<(), String> {
    let mut admin = Admin::new(target);
    for id in &fleet.service_key_ids {
        admin.admin("DELETE", &format!("/v1/admin/keys/{id}"), None, 200)?;
    }
    Ok(())
}
