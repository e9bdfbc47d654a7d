//! Talking to Stripe: a small form-encoded client for the calls Driftlock makes (checkout and
//! portal sessions, promotion code lookup, Billing Meter events), and the worker that turns
//! pending overage into meter-event batches and delivers them with backoff. Each batch has a
//! stable `identifier`, so a retry after a lost answer is recognised by Stripe, not billed twice.

use std::time::Duration;

use serde_json::Value;

use super::{retry, Worker};
use crate::{
    clock,
    core::metering::period::stripe_event_time_ms,
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
    #[error("Stripe cannot be reached: {0}")]
    Unreachable(String),
    #[error("Stripe answered {status}: {message}")]
    Api {
        status: u16,
        code: Option<String>,
        message: String,
    },
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
                .map_err(|e| StripeError::Unreachable(e.to_string())),
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
            Err(e) => Err(StripeError::Unreachable(e.to_string())),
        }
    }

    /// POST form `params` to `path` (blocking; call from a blocking thread).
    pub fn post(
        &self,
        path: &str,
        params: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<Value, StripeError> {
        let secret = self.secret.as_deref().ok_or(StripeError::NotConfigured)?;
        let pairs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Self::answer(
            self.agent
                .post(&format!("{}{path}", self.base))
                .set("Authorization", &format!("Bearer {secret}"))
                .set("Stripe-Version", STRIPE_API_VERSION)
                .set("Idempotency-Key", idempotency_key)
                .send_form(&pairs),
        )
    }

    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, StripeError> {
        let secret = self.secret.as_deref().ok_or(StripeError::NotConfigured)?;
        let mut req = self
            .agent
            .get(&format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {secret}"))
            .set("Stripe-Version", STRIPE_API_VERSION);
        for (k, v) in query {
            req = req.query(k, v);
        }
        Self::answer(req.call())
    }
}

impl StripeClient {
    /// The id of the Billing Meter with `event_name`, looked up through every page of the
    /// account's meters.
    pub fn find_meter(&self, event_name: &str) -> Result<Option<String>, StripeError> {
        let mut after: Option<String> = None;
        // Bounded: 100 pages of 100 meters is far more than an account holds.
        for _ in 0..100 {
            let mut query = vec![("limit", "100")];
            if let Some(a) = after.as_deref() {
                query.push(("starting_after", a));
            }
            let page = self.get("/v1/billing/meters", &query)?;
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
}

/// The form of one Billing Meter event sent at `now_ms` (the time moved inside Stripe's
/// 35-day window if the batch waited longer).
pub fn meter_event_params(
    event_name: &str,
    row: &MeterEventRow,
    now_ms: i64,
) -> Vec<(String, String)> {
    let timestamp = stripe_event_time_ms(row.timestamp * 1000, now_ms) / 1000;
    vec![
        ("event_name".into(), event_name.into()),
        (
            "payload[stripe_customer_id]".into(),
            row.customer_id.clone(),
        ),
        ("payload[value]".into(), row.value.to_string()),
        ("identifier".into(), row.identifier.clone()),
        ("timestamp".into(), timestamp.to_string()),
    ]
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

    fn deliver(&self, row: &MeterEventRow) -> Attempt {
        let params = meter_event_params(&self.settings.meter_event_name, row, clock::now_ms());
        match self
            .client
            .post("/v1/billing/meter_events", &params, &row.identifier)
        {
            Ok(_) => Attempt::Delivered,
            // Stripe already holds an event with this identifier: an earlier attempt landed.
            Err(StripeError::Api {
                code: Some(code), ..
            }) if code == "resource_already_exists" => Attempt::Delivered,
            Err(e) => {
                let error = e.to_string();
                match retry::next_attempt_at(
                    clock::now_ms(),
                    row.attempts + 1,
                    self.settings.max_attempts,
                    self.settings.retry_base_ms,
                    3_600_000,
                    rand::random(),
                ) {
                    Some(at_ms) => Attempt::RetryAt { error, at_ms },
                    None => Attempt::GiveUp { error },
                }
            }
        }
    }

    /// Creates on Stripe the coupon and promotion code of every promotion not synced yet.
    fn sync_promotions(&self) -> Result<(), String> {
        let pending = self.store.promotions().map_err(|e| e.to_string())?;
        for promo in pending
            .into_iter()
            .filter(|p| p.stripe_promotion_code_id.is_none())
        {
            let coupon = promo.coupon_id();
            let coupon_params = vec![
                ("id".to_string(), coupon.clone()),
                ("name".to_string(), promo.code.clone()),
                ("percent_off".to_string(), promo.percent_off.to_string()),
                ("duration".to_string(), "repeating".to_string()),
                (
                    "duration_in_months".to_string(),
                    promo.duration_months.to_string(),
                ),
            ];
            match self.client.post(
                "/v1/coupons",
                &coupon_params,
                &format!("dl-coupon-{}", promo.code),
            ) {
                Ok(_) => {}
                Err(StripeError::Api { code: Some(c), .. }) if c == "resource_already_exists" => {}
                Err(e) => return Err(format!("coupon {coupon}: {e}")),
            }
            let code_params = vec![
                ("coupon".to_string(), coupon.clone()),
                ("code".to_string(), promo.code.clone()),
            ];
            let id = match self.client.post(
                "/v1/promotion_codes",
                &code_params,
                &format!("dl-promo-{}", promo.code),
            ) {
                Ok(created) => created["id"].as_str().map(str::to_string),
                Err(StripeError::Api { code: Some(c), .. }) if c == "resource_already_exists" => {
                    self.client
                        .get(
                            "/v1/promotion_codes",
                            &[("code", promo.code.as_str()), ("active", "true")],
                        )
                        .map_err(|e| e.to_string())?
                        .pointer("/data/0/id")
                        .and_then(Value::as_str)
                        .map(str::to_string)
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
            let attempt = self.deliver(&row);
            if matches!(attempt, Attempt::Delivered) {
                delivered += 1;
            } else if let Attempt::RetryAt { error, .. } | Attempt::GiveUp { error } = &attempt {
                tracing::warn!(meter_event = %row.identifier, %error, "meter event not delivered");
            }
            self.store
                .record_meter_attempt(row.id, attempt, clock::now_ms())
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
