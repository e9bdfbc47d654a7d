//! Metered usage on its way to Stripe. Counting detections past the included amount adds them
//! to the org's pending count in the same transaction; the Stripe worker turns pending counts
//! into numbered batches (one outbox row each, with the identifier Stripe deduplicates on) and
//! delivers them, so an outage delays usage and never loses or doubles it.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    billing::read_account,
    codec::{self, Versioned},
    outbox::{due_rows, next_seq, record_attempt, retry_failed, settle, Attempt, Queued, Settled},
    tables, Store, StoreError,
};
use crate::core::{billing::meter_resend, metering::period::Period};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeterStatus {
    Pending,
    Delivered,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeterEventRow {
    pub id: u64,
    pub org_id: String,
    pub customer_id: String,
    /// Overage detections in this batch.
    pub value: u64,
    /// Stripe's idempotency identifier for the meter event: stable across retries.
    pub identifier: String,
    /// When the batch was cut (epoch seconds; Stripe's event timestamp).
    pub timestamp: i64,
    pub status: MeterStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_at_ms: i64,
    /// A correction from reconciliation: it replaces detections Stripe lost, so it is not
    /// part of what Stripe should hold in total.
    #[serde(default)]
    pub correction: bool,
    /// When an attempt first ended without a clear answer (no answer, or a server error):
    /// Stripe may hold the event. It recognises the identifier for 24 hours only, so after
    /// that the batch is not resent (see `core::billing::meter_resend`).
    #[serde(default)]
    pub unclear_since_ms: Option<i64>,
}

impl Versioned for MeterEventRow {
    const KIND: &'static str = "meter event";
    const VERSION: u8 = 1;
}

impl Queued for MeterEventRow {
    const NAME: &'static str = "meter event";
    const RETRY_RULE: &'static str = "only failed batches are retried";

    fn retry_billing_action(&self) -> Option<(String, &'static str, serde_json::Value)> {
        let detail = serde_json::json!({
            "meter_event": self.id,
            "identifier": self.identifier,
            "value": self.value,
            "last_error": self.last_error,
        });
        Some((self.org_id.clone(), "stripe_usage_retried", detail))
    }

    fn due_at_ms(&self) -> i64 {
        self.next_attempt_at_ms
    }

    fn retry_refusal(&self, now_ms: i64) -> Option<String> {
        let since = self.unclear_since_ms?;
        (!meter_resend::may_resend(Some(since), now_ms)).then(|| meter_resend::refusal(since))
    }

    fn take(&mut self, attempt: Attempt, _now_ms: i64) -> Option<i64> {
        match settle(
            &mut self.attempts,
            &mut self.last_error,
            &mut self.next_attempt_at_ms,
            attempt,
        ) {
            Settled::Done => {
                self.status = MeterStatus::Delivered;
                None
            }
            Settled::RetryAt(at_ms) => Some(at_ms),
            Settled::Failed => {
                self.status = MeterStatus::Failed;
                None
            }
        }
    }

    fn requeue_failed(&mut self, now_ms: i64) -> bool {
        if self.status != MeterStatus::Failed {
            return false;
        }
        self.status = MeterStatus::Pending;
        self.attempts = 0;
        self.next_attempt_at_ms = now_ms;
        true
    }
}

/// Adds overage detections to an org's pending count for `period` (inside the metering
/// transaction).
pub(super) fn add_pending(
    tx: &WriteTransaction,
    org_id: &str,
    period: Period,
    overage: u64,
) -> Result<(), StoreError> {
    if overage == 0 {
        return Ok(());
    }
    let mut pending = tx.open_table(tables::METER_PENDING)?;
    let key = (org_id, period.start_ms);
    let before = pending.get(key)?.map(|v| v.value()).unwrap_or(0);
    pending.insert(key, before.saturating_add(overage))?;
    Ok(())
}

impl Store {
    /// Turns each org's pending overage into one batch row per period, for orgs Stripe knows
    /// (a customer id); the others keep waiting. Overage credited by disputes after it was
    /// batched (`METER_CREDIT`) is netted first: a batch is cut for what is left, and none
    /// when nothing is (the credit never goes below zero, and what it cannot net waits for
    /// later overage). A batch is stamped inside its own period
    /// (`Period::report_time_ms`), so usage that waited across a month end still lands on that
    /// month's invoice; a period the clock has not reached yet (it stepped back) waits.
    /// Returns the rows made.
    pub fn cut_meter_batches(&self, now_ms: i64) -> Result<Vec<MeterEventRow>, StoreError> {
        let tx = self.db()?.begin_write()?;
        let mut made = Vec::new();
        {
            let mut pending = tx.open_table(tables::METER_PENDING)?;
            let accounts = tx.open_table(tables::BILLING_ACCOUNTS)?;
            let mut outbox = tx.open_table(tables::METER_OUTBOX)?;
            let mut due = tx.open_table(tables::METER_DUE)?;
            let mut credits = tx.open_table(tables::METER_CREDIT)?;
            let waiting: Vec<(String, i64, u64)> = pending
                .iter()?
                .map(|e| e.map(|(k, v)| (k.value().0.to_string(), k.value().1, v.value())))
                .collect::<Result<_, _>>()?;
            for (org, period_start, value) in waiting {
                let Some(report_ms) = Period::containing(period_start).report_time_ms(now_ms)
                else {
                    continue;
                };
                let Some(customer) = read_account(&accounts, &org)?.customer_id else {
                    continue;
                };
                let owed = credits.get(org.as_str())?.map(|v| v.value()).unwrap_or(0);
                let netted = owed.min(value);
                let value = value - netted;
                if netted > 0 {
                    if owed == netted {
                        credits.remove(org.as_str())?;
                    } else {
                        credits.insert(org.as_str(), owed - netted)?;
                    }
                    let detail = serde_json::json!({
                        "period_start_ms": period_start,
                        "netted": netted,
                        "credit_left": owed - netted,
                        "batched": value,
                    });
                    super::outbox::record_billing_action(
                        &tx,
                        Some(&org),
                        "stripe",
                        "meter_credit_netted",
                        detail,
                        now_ms,
                    )?;
                }
                if value == 0 {
                    pending.remove((org.as_str(), period_start))?;
                    continue;
                }
                let id = next_seq(&outbox)?;
                let row = MeterEventRow {
                    id,
                    identifier: format!("driftlock-{org}-{id}"),
                    org_id: org.clone(),
                    customer_id: customer,
                    value,
                    timestamp: report_ms / 1000,
                    status: MeterStatus::Pending,
                    attempts: 0,
                    last_error: None,
                    next_attempt_at_ms: now_ms,
                    correction: false,
                    unclear_since_ms: None,
                };
                outbox.insert(id, codec::encode(&row).as_slice())?;
                due.insert((now_ms, id), ())?;
                pending.remove((org.as_str(), period_start))?;
                made.push(row);
            }
        }
        tx.commit()?;
        Ok(made)
    }

    pub fn due_meter_events(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<MeterEventRow>, StoreError> {
        due_rows(self, tables::METER_OUTBOX, tables::METER_DUE, now_ms, limit)
    }

    /// Records the outcome of sending batch `id`; `unclear` when the attempt got no clear
    /// answer (Stripe may hold the batch), which starts the batch's resend window.
    pub fn record_meter_attempt(
        &self,
        id: u64,
        attempt: Attempt,
        unclear: bool,
        now_ms: i64,
    ) -> Result<MeterEventRow, StoreError> {
        record_attempt(
            self,
            tables::METER_OUTBOX,
            tables::METER_DUE,
            (id, attempt, now_ms),
            |row: &mut MeterEventRow| {
                if unclear && row.unclear_since_ms.is_none() {
                    row.unclear_since_ms = Some(now_ms);
                }
            },
        )
    }

    /// All meter batches, oldest first (for admins and reconciliation).
    pub fn meter_events(&self) -> Result<Vec<MeterEventRow>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let outbox = tx.open_table(tables::METER_OUTBOX)?;
        let mut out = Vec::new();
        for entry in outbox.iter()? {
            out.push(codec::decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// Puts a failed meter batch back in the queue with a fresh set of attempts (same
    /// identifier, so Stripe still counts it once).
    /// Recorded as the billing action `stripe_usage_retried` by `actor`.
    pub fn retry_meter_event(
        &self,
        id: u64,
        actor: &str,
        now_ms: i64,
    ) -> Result<MeterEventRow, StoreError> {
        retry_failed(
            self,
            tables::METER_OUTBOX,
            tables::METER_DUE,
            id,
            actor,
            now_ms,
        )
    }

    /// Queues a correction batch of `value` detections for an org (from reconciliation).
    pub fn enqueue_meter_correction(
        &self,
        org_id: &str,
        customer_id: &str,
        value: u64,
        now_ms: i64,
    ) -> Result<MeterEventRow, StoreError> {
        let tx = self.db()?.begin_write()?;
        let row = {
            let mut outbox = tx.open_table(tables::METER_OUTBOX)?;
            let id = next_seq(&outbox)?;
            let row = MeterEventRow {
                id,
                identifier: format!("driftlock-{org_id}-{id}-reconcile"),
                org_id: org_id.to_string(),
                customer_id: customer_id.to_string(),
                value,
                timestamp: now_ms / 1000,
                status: MeterStatus::Pending,
                attempts: 0,
                last_error: None,
                next_attempt_at_ms: now_ms,
                correction: true,
                unclear_since_ms: None,
            };
            outbox.insert(id, codec::encode(&row).as_slice())?;
            tx.open_table(tables::METER_DUE)?.insert((now_ms, id), ())?;
            row
        };
        let detail = serde_json::json!({"customer": customer_id, "value": value, "identifier": row.identifier});
        super::outbox::record_billing_action(
            &tx,
            Some(org_id),
            "reconcile",
            "meter_correction_queued",
            detail,
            now_ms,
        )?;
        tx.commit()?;
        Ok(row)
    }

    /// Overage not yet batched, per org (summed over periods).
    pub fn meter_pending(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let pending = tx.open_table(tables::METER_PENDING)?;
        let mut out: Vec<(String, u64)> = Vec::new();
        for entry in pending.iter()? {
            let (k, v) = entry?;
            let org = k.value().0;
            match out.last_mut() {
                Some((last, sum)) if last == org => *sum += v.value(),
                _ => out.push((org.to_string(), v.value())),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Attempt, NewOrg};

    #[test]
    fn retrying_a_failed_batch_is_a_billing_action_and_other_retries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let new = NewOrg {
            id: "org_1".into(),
            name: "Acme".into(),
            billing_email: None,
            plan: "standard".into(),
        };
        store.create_org(new, "test", 0).unwrap();
        let row = store
            .enqueue_meter_correction("org_1", "cus_1", 12, 1_000)
            .unwrap();
        let refused = store.retry_meter_event(row.id, "admin", 2_000).unwrap_err();
        assert!(matches!(refused, StoreError::Conflict(_)), "{refused}");
        let gave_up = Attempt::GiveUp {
            error: "Stripe answered 500".into(),
        };
        store
            .record_meter_attempt(row.id, gave_up, false, 3_000)
            .unwrap();

        let retried = store
            .retry_meter_event(row.id, "session:ops", 4_000)
            .unwrap();
        assert_eq!(retried.status, MeterStatus::Pending);
        let actions = store
            .list_billing_actions(Some("org_1"), None, 10)
            .unwrap()
            .items;
        let logged = actions
            .iter()
            .find(|a| a.action == "stripe_usage_retried")
            .expect("the retry is in the billing actions");
        assert_eq!(logged.actor, "session:ops");
        assert_eq!(logged.detail["value"], 12);
        assert_eq!(logged.detail["last_error"], "Stripe answered 500");
        let retries = actions
            .iter()
            .filter(|a| a.action == "stripe_usage_retried")
            .count();
        assert_eq!(retries, 1, "the refused retry logged nothing");
    }
}
