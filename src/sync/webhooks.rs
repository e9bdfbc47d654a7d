//! The webhook worker: POSTs due deliveries of the webhook outbox to customers' URLs with a
//! `Driftlock-Signature` header (HMAC-SHA256 over `timestamp.body`), retrying non-2xx answers
//! and network errors with exponential backoff and jitter up to the configured attempts.

use std::time::Duration;

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
    store: Store,
    settings: WebhookSettings,
    agent: ureq::Agent,
}

const BATCH: usize = 16;

impl WebhookWorker {
    pub fn new(store: Store, settings: WebhookSettings) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout(settings.timeout)
            .redirects(0)
            .resolver(PolicyResolver(settings.destinations.clone()))
            .user_agent(concat!("driftlock-webhooks/", env!("CARGO_PKG_VERSION")))
            .build();
        WebhookWorker {
            store,
            settings,
            agent,
        }
    }

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
        self.settings.poll
    }

    async fn run_once(&self) -> Result<usize, String> {
        let store = self.store.clone();
        let now = clock::now_ms();
        let due = tokio::task::spawn_blocking(move || store.due_webhooks(now, BATCH))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let mut handled = 0;
        let mut last_error = None;
        for row in due {
            match self.handle(row).await {
                Ok(()) => handled += 1,
                Err(e) => last_error = Some(e),
            }
        }
        match last_error {
            Some(e) if handled == 0 => Err(e),
            _ => Ok(handled),
        }
    }
}
