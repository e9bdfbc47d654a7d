//! The webhook worker: POSTs due deliveries of the webhook outbox to customers' URLs with a
//! `Driftlock-Signature` header (HMAC-SHA256 over `timestamp.body`), retrying non-2xx answers
//! and network errors with exponential backoff and jitter up to the configured attempts.

use std::time::Duration;

use super::{retry, Worker};
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
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(code, _)) => Err(format!("the receiver answered HTTP {code}")),
            Err(e) => Err(format!("cannot reach the receiver: {e}")),
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
