//! The webhook outbox: signed POSTs to customers' URLs, queued in the transaction that
//! decided to notify, delivered and retried by the webhook worker.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    codec::{self, Versioned},
    outbox::{due_rows, next_seq, record_attempt, settle, Attempt, Queued, Settled},
    tables, Store, StoreError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub id: u64,
    pub org_id: String,
    pub monitor_id: String,
    pub url: String,
    /// Signing secret of the channel (never shown after the channel is created).
    pub secret: String,
    /// Event type, e.g. `monitor.anomaly`.
    pub event: String,
    pub body: serde_json::Value,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub next_attempt_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
}

impl Versioned for WebhookDelivery {
    const KIND: &'static str = "webhook delivery";
    const VERSION: u8 = 1;
}

pub(super) struct NewDelivery<'a> {
    pub org_id: &'a str,
    pub monitor_id: &'a str,
    pub url: &'a str,
    pub secret: &'a str,
    pub event: &'a str,
    pub body: serde_json::Value,
}

pub(super) fn enqueue(
    tx: &WriteTransaction,
    new: NewDelivery<'_>,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let mut outbox = tx.open_table(tables::WEBHOOK_OUTBOX)?;
    let id = next_seq(&outbox)?;
    let row = WebhookDelivery {
        id,
        org_id: new.org_id.to_string(),
        monitor_id: new.monitor_id.to_string(),
        url: new.url.to_string(),
        secret: new.secret.to_string(),
        event: new.event.to_string(),
        body: new.body,
        status: DeliveryStatus::Pending,
        attempts: 0,
        last_error: None,
        created_at_ms: now_ms,
        next_attempt_at_ms: now_ms,
        delivered_at_ms: None,
    };
    outbox.insert(id, codec::encode(&row).as_slice())?;
    tx.open_table(tables::WEBHOOK_DUE)?
        .insert((now_ms, id), ())?;
    tx.open_table(tables::MONITOR_NOTIFICATIONS)?
        .insert((new.org_id, new.monitor_id, "webhook", id), ())?;
    Ok(id)
}

impl Store {
    /// Pending deliveries due by `now_ms`, soonest first.
    pub fn due_webhooks(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        due_rows(
            self,
            tables::WEBHOOK_OUTBOX,
            tables::WEBHOOK_DUE,
            now_ms,
            limit,
        )
    }

    /// Records the outcome of delivering `id`.
    pub fn record_webhook_attempt(
        &self,
        id: u64,
        attempt: Attempt,
        now_ms: i64,
    ) -> Result<WebhookDelivery, StoreError> {
        record_attempt(
            self,
            tables::WEBHOOK_OUTBOX,
            tables::WEBHOOK_DUE,
            (id, attempt, now_ms),
            |_: &mut _| {},
        )
    }
}

impl Queued for WebhookDelivery {
    const NAME: &'static str = "webhook delivery";
    const RETRY_RULE: &'static str = "only failed deliveries are retried";

    fn due_at_ms(&self) -> i64 {
        self.next_attempt_at_ms
    }

    fn take(&mut self, attempt: Attempt, now_ms: i64) -> Option<i64> {
        match settle(
            &mut self.attempts,
            &mut self.last_error,
            &mut self.next_attempt_at_ms,
            attempt,
        ) {
            Settled::Done => {
                self.status = DeliveryStatus::Delivered;
                self.delivered_at_ms = Some(now_ms);
                None
            }
            Settled::RetryAt(at_ms) => Some(at_ms),
            Settled::Failed => {
                self.status = DeliveryStatus::Failed;
                None
            }
        }
    }

    fn requeue_failed(&mut self, now_ms: i64) -> bool {
        if self.status != DeliveryStatus::Failed {
            return false;
        }
        self.status = DeliveryStatus::Pending;
        self.attempts = 0;
        self.next_attempt_at_ms = now_ms;
        true
    }
}

pub(super) fn read_delivery(
    outbox: &impl ReadableTable<u64, &'static [u8]>,
    id: u64,
) -> Result<Option<WebhookDelivery>, StoreError> {
    outbox
        .get(id)?
        .map(|b| codec::decode(b.value()))
        .transpose()
}
