//! The webhook outbox: signed POSTs to customers' URLs, queued in the transaction that
//! decided to notify, delivered and retried by the webhook worker.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    codec::{self, Versioned},
    outbox::{next_seq, Attempt},
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
        let tx = self.db().begin_read()?;
        let due = tx.open_table(tables::WEBHOOK_DUE)?;
        let outbox = tx.open_table(tables::WEBHOOK_OUTBOX)?;
        let mut out = Vec::new();
        for entry in due.range((i64::MIN, 0)..=(now_ms, u64::MAX))?.take(limit) {
            let (_, id) = entry?.0.value();
            if let Some(bytes) = outbox.get(id)? {
                out.push(codec::decode(bytes.value())?);
            }
        }
        Ok(out)
    }

    /// Records the outcome of delivering `id`.
    pub fn record_webhook_attempt(
        &self,
        id: u64,
        attempt: Attempt,
        now_ms: i64,
    ) -> Result<WebhookDelivery, StoreError> {
        let tx = self.db().begin_write()?;
        let row = {
            let mut outbox = tx.open_table(tables::WEBHOOK_OUTBOX)?;
            let mut row: WebhookDelivery = match outbox.get(id)? {
                Some(bytes) => codec::decode(bytes.value())?,
                None => return Err(StoreError::not_found("webhook delivery", id.to_string())),
            };
            let mut due = tx.open_table(tables::WEBHOOK_DUE)?;
            due.remove((row.next_attempt_at_ms, id))?;
            row.attempts += 1;
            match attempt {
                Attempt::Delivered => {
                    row.status = DeliveryStatus::Delivered;
                    row.delivered_at_ms = Some(now_ms);
                }
                Attempt::RetryAt { error, at_ms } => {
                    row.last_error = Some(error);
                    row.next_attempt_at_ms = at_ms;
                    due.insert((at_ms, id), ())?;
                }
                Attempt::GiveUp { error } => {
                    row.last_error = Some(error);
                    row.status = DeliveryStatus::Failed;
                }
            }
            outbox.insert(id, codec::encode(&row).as_slice())?;
            row
        };
        tx.commit()?;
        Ok(row)
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
