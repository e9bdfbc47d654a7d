//! The webhook worker: POSTs due deliveries of the webhook outbox to customers' URLs with a
//! `Driftlock-Signature` header (HMAC-SHA256 over `timestamp.body`), retrying non-2xx answers
//! and network errors with exponential backoff and jitter up to the configured attempts.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{
    destination::{DestinationPolicy, PolicyResolver},
    retry, Worker,
};
use crate::{
    clock, secrets,
    store::{Attempt, Store, WebhookDelivery},
};

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_cap_ms: u64,
    pub poll: Duration,
    pub timeout: Duration,
    /// Where webhooks may go ([`super::destination`]).
    pub destinations: DestinationPolicy,
}

pub struct WebhookWorker {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    settings: WebhookSettings,
    agent: ureq::Agent,
    in_flight: Mutex<InFlight>,
}

/// Deliveries attempted at once, and at most this many of one organization's: one org's
/// hanging receivers cannot hold up another's deliveries.
const MAX_IN_FLIGHT: usize = 16;
const PER_ORG: usize = 2;
/// Due rows looked at per pass to find a fair batch.
const LOOK_AHEAD: usize = 512;

/// Deliveries being attempted now, by id and per organization.
#[derive(Default)]
struct InFlight {
    ids: HashSet<u64>,
    per_org: HashMap<String, usize>,
}

impl InFlight {
    /// Takes from `due` (oldest first) the rows to start now: none already running, at most
    /// `PER_ORG` running per organization and `MAX_IN_FLIGHT` in all.
    fn start(&mut self, due: Vec<WebhookDelivery>) -> Vec<WebhookDelivery> {
        let mut out = Vec::new();
        for row in due {
            if self.ids.len() >= MAX_IN_FLIGHT {
                break;
            }
            let running = self.per_org.get(&row.org_id).copied().unwrap_or(0);
            if running >= PER_ORG || self.ids.contains(&row.id) {
                continue;
            }
            self.ids.insert(row.id);
            *self.per_org.entry(row.org_id.clone()).or_default() += 1;
            out.push(row);
        }
        out
    }

    fn finish(&mut self, id: u64, org_id: &str) {
        self.ids.remove(&id);
        if let Some(n) = self.per_org.get_mut(org_id) {
            *n -= 1;
            if *n == 0 {
                self.per_org.remove(org_id);
            }
        }
    }
}

impl WebhookWorker {
    pub fn new(store: Store, settings: WebhookSettings) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout(settings.timeout)
            .redirects(0)
            .resolver(PolicyResolver(settings.destinations.clone()))
            .user_agent(concat!("driftlock-webhooks/", env!("CARGO_PKG_VERSION")))
            .build();
        WebhookWorker {
            inner: Arc::new(Inner {
                store,
                settings,
                agent,
                in_flight: Mutex::default(),
            }),
        }
    }
}

impl Inner {
    /// One POST; `Err` carries what went wrong.
    fn post(agent: &ureq::Agent, row: &WebhookDelivery) -> Result<(), String> {
        let body = serde_json::to_vec(&row.body).map_err(|e| e.to_string())?;
        let now_secs = clock::now_ms() / 1000;
        let result = agent
            .post(&row.url)
            .set("Content-Type", "application/json")
            .set("Driftlock-Event", &row.event)
            .set("Driftlock-Delivery", &row.id.to_string())
            .set(
                "Driftlock-Signature",
                &secrets::sign_webhook(&row.secret, now_secs, &body),
            )
            .send_bytes(&body);
        match result {
            Ok(resp) if (200..300).contains(&resp.status()) => Ok(()),
            // Redirects are not followed (they could lead inside the network): not delivered.
            Ok(resp) => Err(format!(
                "the receiver answered HTTP {} (only 2xx counts as delivered; redirects are not followed)",
                resp.status()
            )),
            Err(ureq::Error::Status(code, _)) => Err(format!("the receiver answered HTTP {code}")),
            Err(ureq::Error::Transport(t)) => Err(transport_failure(&t)),
        }
    }

    async fn handle(&self, row: WebhookDelivery) -> Result<(), String> {
        let agent = self.agent.clone();
        let sent = row.clone();
        let outcome = tokio::task::spawn_blocking(move || Self::post(&agent, &sent))
            .await
            .map_err(|e| e.to_string())?;
        let now = clock::now_ms();
        let attempt = match outcome {
            Ok(()) => Attempt::Delivered,
            Err(error) => match retry::next_attempt_at(
                now,
                row.attempts + 1,
                self.settings.max_attempts,
                self.settings.retry_base_ms,
                self.settings.retry_cap_ms,
                rand::random(),
            ) {
                Some(at_ms) => Attempt::RetryAt { error, at_ms },
                None => Attempt::GiveUp { error },
            },
        };
        match &attempt {
            Attempt::Delivered => {
                tracing::info!(delivery = row.id, monitor = %row.monitor_id, "webhook delivered")
            }
            Attempt::RetryAt { error, .. } => {
                tracing::warn!(delivery = row.id, attempt = row.attempts + 1, %error, "webhook not delivered; will retry")
            }
            Attempt::GiveUp { error } => {
                tracing::error!(delivery = row.id, %error, "webhook failed for good")
            }
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.record_webhook_attempt(row.id, attempt, now))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// What a tenant may read about a failed connection: the kind of failure, or the policy's
/// refusal, never the raw socket error (which would map the operator's network).
fn transport_failure(t: &ureq::Transport) -> String {
    use std::error::Error;
    let mut source = t.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::PermissionDenied {
                return format!("destination refused: {io}");
            }
        }
        source = e.source();
    }
    match t.kind() {
        ureq::ErrorKind::Dns => "the receiver's host name does not resolve".into(),
        ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => {
            "the webhook URL is not valid".into()
        }
        _ => "the receiver could not be reached (connection failed or timed out)".into(),
    }
}

impl Worker for WebhookWorker {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    fn idle_interval(&self) -> Duration {
        self.inner.settings.poll
    }

    async fn run_once(&self) -> Result<usize, String> {
        let store = self.inner.store.clone();
        let now = clock::now_ms();
        let due = tokio::task::spawn_blocking(move || store.due_webhooks(now, LOOK_AHEAD))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let started = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .start(due);
        let count = started.len();
        // Each delivery runs on its own; the next pass starts more as slots free up.
        for row in started {
            let inner = self.inner.clone();
            tokio::spawn(async move {
                let (id, org_id) = (row.id, row.org_id.clone());
                if let Err(e) = inner.handle(row).await {
                    tracing::warn!(delivery = id, error = %e, "webhook attempt not recorded");
                }
                inner
                    .in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .finish(id, &org_id);
            });
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, org: &str) -> WebhookDelivery {
        WebhookDelivery {
            id,
            org_id: org.into(),
            monitor_id: "mon_1".into(),
            url: "https://example.com/".into(),
            secret: "whsec_x".into(),
            event: "monitor.anomaly".into(),
            body: serde_json::Value::Null,
            status: crate::store::DeliveryStatus::Pending,
            attempts: 0,
            last_error: None,
            created_at_ms: 0,
            next_attempt_at_ms: 0,
            delivered_at_ms: None,
        }
    }

    #[test]
    fn one_org_cannot_take_every_slot() {
        let mut flight = InFlight::default();
        let mut due: Vec<_> = (0..40).map(|i| row(i, "org_a")).collect();
        due.push(row(40, "org_b"));
        let started: Vec<u64> = flight.start(due.clone()).iter().map(|r| r.id).collect();
        assert_eq!(started, vec![0, 1, 40]);
        // Still running: nothing of org_a starts again, a newcomer does.
        due.push(row(41, "org_c"));
        let next: Vec<u64> = flight.start(due.clone()).iter().map(|r| r.id).collect();
        assert_eq!(next, vec![41]);
        flight.finish(0, "org_a");
        let after: Vec<u64> = flight.start(due).iter().map(|r| r.id).collect();
        assert_eq!(after, vec![0]);
        let mut wide = InFlight::default();
        let many: Vec<_> = (0..40).map(|i| row(i, &format!("org_{i}"))).collect();
        assert_eq!(wide.start(many).len(), MAX_IN_FLIGHT);
    }
}
