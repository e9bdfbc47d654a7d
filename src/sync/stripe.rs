//! Talking to Stripe: a small form-encoded client for the calls Driftlock makes (checkout and
//! portal sessions, promotion code lookup, Billing Meter events), and the worker that turns
//! pending overage into meter-event batches and delivers them with backoff. Each batch has a
//! stable `identifier`, so a retry after a lost answer is recognised by Stripe, not billed twice.

use std::time::Duration;

use serde_json::Value;

use super::{
    retry,
    stripe_requests::{self, Method, StripeRequest},
    Worker,
};
use crate::{
    clock,
    core::{billing::meter_resend, metering::promotions::Promotion},
    store::{Attempt, MeterEventRow, Store},
};

/// The Stripe API version every request pins, so object shapes cannot change under us.
pub const STRIPE_API_VERSION: &str = "2024-06-20";

#[derive(Debug, Clone)]
pub struct StripeSettings {
    pub api_base: String,
    pub secret_key: Option<String>,
    pub meter_event_name: String,
    pub meter_interval: Duration,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StripeError {
    #[error("Stripe is not configured (set DRIFTLOCK_STRIPE_SECRET_KEY)")]
    NotConfigured,
    /// The request did not reach Stripe (no connection): Stripe did nothing.
    #[error("Stripe cannot be reached: {0}")]
    Unreachable(String),
    /// The request went out and no answer came back: Stripe may have acted on it.
    #[error("Stripe did not answer: {0}")]
    NoAnswer(String),
    #[error("Stripe answered {status}: {message}")]
    Api {
        status: u16,
        code: Option<String>,
        message: String,
    },
}

impl StripeError {
    /// True when Stripe may have acted on the request although it did not say so: no answer,
    /// or a server error (Stripe documents that a 500 may have been processed).
    pub fn unclear(&self) -> bool {
        match self {
            StripeError::NoAnswer(_) => true,
            StripeError::Api { status, .. } => *status >= 500,
            StripeError::NotConfigured | StripeError::Unreachable(_) => false,
        }
    }
}

#[derive(Clone)]
pub struct StripeClient {
    agent: ureq::Agent,
    base: String,
    secret: Option<String>,
}

impl StripeClient {
    pub fn new(settings: &StripeSettings) -> Self {
        StripeClient {
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(20))
                .build(),
            base: settings.api_base.trim_end_matches('/').to_string(),
            secret: settings.secret_key.clone(),
        }
    }

    pub fn configured(&self) -> bool {
        self.secret.is_some()
    }

    fn answer(result: Result<ureq::Response, ureq::Error>) -> Result<Value, StripeError> {
        match result {
            Ok(r) => r
                .into_json()
                .map_err(|e| StripeError::NoAnswer(e.to_string())),
            Err(ureq::Error::Status(status, r)) => {
                let body: Value = r.into_json().unwrap_or_default();
                Err(StripeError::Api {
                    status,
                    code: body
                        .pointer("/error/code")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    message: body
                        .pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("no message")
                        .to_string(),
                })
            }
            Err(ureq::Error::Transport(t)) => match t.kind() {
                ureq::ErrorKind::Dns
                | ureq::ErrorKind::ConnectionFailed
                | ureq::ErrorKind::InvalidUrl
                | ureq::ErrorKind::UnknownScheme
                | ureq::ErrorKind::InvalidProxyUrl
                | ureq::ErrorKind::ProxyConnect => Err(StripeError::Unreachable(t.to_string())),
                _ => Err(StripeError::NoAnswer(t.to_string())),
            },
        }
    }

    /// Sends `request` (blocking; call from a blocking thread). A POST carries
    /// `idempotency_key`, so Stripe answers a retry with the first answer.
    pub fn send(
        &self,
        request: &StripeRequest,
        idempotency_key: &str,
    ) -> Result<Value, StripeError> {
        let secret = self.secret.as_deref().ok_or(StripeError::NotConfigured)?;
        let pairs: Vec<(&str, &str)> = request
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let url = format!("{}{}", self.base, request.path);
        let result = match request.method {
            Method::Post => self
                .agent
                .post(&url)
                .set("Authorization", &format!("Bearer {secret}"))
                .set("Stripe-Version", STRIPE_API_VERSION)
                .set("Idempotency-Key", idempotency_key)
                .send_form(&pairs),
            Method::Get => pairs
                .iter()
                .fold(
                    self.agent
                        .get(&url)
                        .set("Authorization", &format!("Bearer {secret}"))
                        .set("Stripe-Version", STRIPE_API_VERSION),
                    |req, (k, v)| req.query(k, v),
                )
                .call(),
        };
        Self::answer(result)
    }

    /// Sends a GET `request` (reads need no idempotency key).
    pub fn fetch(&self, request: &StripeRequest) -> Result<Value, StripeError> {
        debug_assert_eq!(request.method, Method::Get);
        self.send(request, "")
    }

    /// The id of the Billing Meter with `event_name`, looked up through every page of the
    /// account's meters.
    pub fn find_meter(&self, event_name: &str) -> Result<Option<String>, StripeError> {
        let mut after: Option<String> = None;
        // Bounded: 100 pages of 100 meters is far more than an account holds.
        for _ in 0..100 {
            let page = self.fetch(&stripe_requests::meters(after.as_deref()))?;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            if let Some(id) = data
                .iter()
                .find(|m| m["event_name"] == event_name)
                .and_then(|m| m["id"].as_str())
            {
                return Ok(Some(id.to_string()));
            }
            match (
                page["has_more"].as_bool(),
                data.last().and_then(|m| m["id"].as_str()),
            ) {
                (Some(true), Some(last)) => after = Some(last.to_string()),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// The Stripe id of the active promotion code typed as `code`, if Stripe has one.
    pub fn active_promotion_code(&self, code: &str) -> Result<Option<String>, StripeError> {
        Ok(self
            .fetch(&stripe_requests::active_promotion_code(code))?
            .pointer("/data/0/id")
            .and_then(Value::as_str)
            .map(str::to_string))
    }
}

pub struct StripeWorker {
    store: Store,
    client: StripeClient,
    settings: StripeSettings,
}

impl StripeWorker {
    pub fn new(store: Store, settings: StripeSettings) -> Self {
        StripeWorker {
            client: StripeClient::new(&settings),
            store,
            settings,
        }
    }

    /// Sends one batch; answers the outcome and whether it was unclear (Stripe may hold the
    /// batch without having said so). A batch whose unclear attempt is older than Stripe's
    /// memory of identifiers is not resent.
    fn deliver(&self, row: &MeterEventRow, now_ms: i64) -> (Attempt, bool) {
        if !meter_resend::may_resend(row.unclear_since_ms, now_ms) {
            let since = row.unclear_since_ms.unwrap_or(now_ms);
            let error = meter_resend::refusal(since);
            return (Attempt::GiveUp { error }, false);
        }
        let request = stripe_requests::meter_event(&self.settings.meter_event_name, row, now_ms);
        match self.client.send(&request, &row.identifier) {
            Ok(_) => (Attempt::Delivered, false),
            // Stripe already holds an event with this identifier: an earlier attempt landed.
            Err(StripeError::Api {
                code: Some(code), ..
            }) if code == "resource_already_exists" => (Attempt::Delivered, false),
            Err(e) => {
                let unclear = e.unclear();
                let error = e.to_string();
                let attempt = match retry::next_attempt_at(
                    clock::now_ms(),
                    row.attempts + 1,
                    self.settings.max_attempts,
                    self.settings.retry_base_ms,
                    3_600_000,
                    rand::random(),
                ) {
                    Some(at_ms) => Attempt::RetryAt { error, at_ms },
                    None => Attempt::GiveUp { error },
                };
                (attempt, unclear)
            }
        }
    }

    /// The Stripe products of the plans a promotion is for (through their prices), so its
    /// coupon discounts those plans only; empty while none of them has a Stripe price.
    fn promotion_products(&self, promo: &Promotion) -> Result<Vec<String>, String> {
        let plans = self.store.list_plans().map_err(|e| e.to_string())?;
        let mut products = Vec::new();
        for plan in plans.iter().filter(|p| promo.plans.contains(&p.id)) {
            for price in [&plan.stripe_price_id, &plan.stripe_metered_price_id]
                .into_iter()
                .flatten()
            {
                let found = self
                    .client
                    .fetch(&stripe_requests::price(price))
                    .map_err(|e| format!("price {price}: {e}"))?;
                let product = match &found["product"] {
                    Value::String(id) => id.clone(),
                    expanded => expanded["id"].as_str().unwrap_or_default().to_string(),
                };
                if !product.is_empty() && !products.contains(&product) {
                    products.push(product);
                }
            }
        }
        Ok(products)
    }

    /// Creates on Stripe the coupon and promotion code of every promotion not synced yet.
    fn sync_promotions(&self) -> Result<(), String> {
        let pending = self.store.promotions().map_err(|e| e.to_string())?;
        for promo in pending
            .into_iter()
            .filter(|p| p.stripe_promotion_code_id.is_none())
        {
            let products = self.promotion_products(&promo)?;
            if products.is_empty() {
                // A coupon without `applies_to` would discount every product of the account.
                tracing::info!(code = %promo.code, "promotion waits: none of its plans has a Stripe price yet");
                continue;
            }
            let coupon = promo.coupon_id();
            let request = stripe_requests::coupon(&stripe_requests::Coupon {
                id: coupon.clone(),
                name: promo.code.clone(),
                percent_off: promo.percent_off,
                duration_months: promo.duration_months,
                products,
            });
            match self
                .client
                .send(&request, &format!("dl-coupon-{}", promo.code))
            {
                Ok(_) => {}
                Err(StripeError::Api { code: Some(c), .. }) if c == "resource_already_exists" => {}
                Err(e) => return Err(format!("coupon {coupon}: {e}")),
            }
            let request = stripe_requests::promotion_code(STRIPE_API_VERSION, &coupon, &promo.code);
            let id = match self
                .client
                .send(&request, &format!("dl-promo-{}", promo.code))
            {
                Ok(created) => created["id"].as_str().map(str::to_string),
                Err(StripeError::Api { code: Some(c), .. }) if c == "resource_already_exists" => {
                    self.client
                        .active_promotion_code(&promo.code)
                        .map_err(|e| e.to_string())?
                }
                Err(e) => return Err(format!("promotion code {}: {e}", promo.code)),
            };
            let id =
                id.ok_or_else(|| format!("Stripe gave no id for promotion code {}", promo.code))?;
            self.store
                .promotion_synced(&promo.code, &coupon, &id, clock::now_ms())
                .map_err(|e| e.to_string())?;
            tracing::info!(code = %promo.code, "promotion synced to Stripe");
        }
        Ok(())
    }

    fn pass(&self) -> Result<usize, String> {
        if !self.client.configured() {
            return Ok(0); // offline: usage waits in the pending counts
        }
        if let Err(e) = self.sync_promotions() {
            tracing::warn!(error = %e, "promotions not synced to Stripe yet");
        }
        let now = clock::now_ms();
        self.store
            .cut_meter_batches(now)
            .map_err(|e| e.to_string())?;
        let due = self
            .store
            .due_meter_events(now, 32)
            .map_err(|e| e.to_string())?;
        let mut delivered = 0;
        for row in due {
            let (attempt, unclear) = self.deliver(&row, clock::now_ms());
            if matches!(attempt, Attempt::Delivered) {
                delivered += 1;
            } else if let Attempt::RetryAt { error, .. } | Attempt::GiveUp { error } = &attempt {
                tracing::warn!(meter_event = %row.identifier, %error, "meter event not delivered");
            }
            self.store
                .record_meter_attempt(row.id, attempt, unclear, clock::now_ms())
                .map_err(|e| e.to_string())?;
        }
        Ok(delivered)
    }
}

impl Worker for StripeWorker {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn idle_interval(&self) -> Duration {
        self.settings.meter_interval
    }

    async fn run_once(&self) -> Result<usize, String> {
        let worker = StripeWorker {
            store: self.store.clone(),
            client: self.client.clone(),
            settings: self.settings.clone(),
        };
        tokio::task::spawn_blocking(move || worker.pass())
            .await
            .map_err(|e| e.to_string())?
    }
}
