//! Outboxes and the billing action log. Anything a mail server (and later Stripe) must learn
//! is first written here, in the same transaction as the change that caused it, with a
//! dedupe key; workers deliver it afterwards and record the result.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    codec::{self, Versioned},
    tables, Page, Store, StoreError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailStatus {
    Pending,
    Sent,
    Failed,
    /// The organization has no billing email; kept so admins can see what was not sent.
    NoRecipient,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEmail {
    pub id: u64,
    pub dedupe_key: String,
    pub org_id: Option<String>,
    pub to: Option<String>,
    /// Template name, e.g. `usage_alert`.
    pub kind: String,
    /// The numbers the template renders.
    pub params: serde_json::Value,
    pub status: EmailStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    /// When delivery is next tried (pending rows only).
    #[serde(default)]
    pub next_attempt_at_ms: i64,
    #[serde(default)]
    pub sent_at_ms: Option<i64>,
}

impl Versioned for OutboxEmail {
    const KIND: &'static str = "email outbox row";
    const VERSION: u8 = 1;
}

/// What a change asks to be mailed.
pub struct NewEmail<'a> {
    pub dedupe_key: String,
    pub org_id: Option<&'a str>,
    pub to: Option<&'a str>,
    pub kind: &'a str,
    pub params: serde_json::Value,
}

/// The sequence number after the last row of an append-only table.
pub(super) fn next_seq(table: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64, StoreError> {
    Ok(match table.last()? {
        Some((seq, _)) => seq.value() + 1,
        None => 1,
    })
}

/// Queues an email unless one with the same dedupe key exists. Returns whether it was queued.
pub(super) fn enqueue_email(
    tx: &WriteTransaction,
    email: NewEmail<'_>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let mut dedupe = tx.open_table(tables::EMAIL_DEDUPE)?;
    if dedupe.get(email.dedupe_key.as_str())?.is_some() {
        return Ok(false);
    }
    let mut outbox = tx.open_table(tables::EMAIL_OUTBOX)?;
    let id = next_seq(&outbox)?;
    let row = OutboxEmail {
        id,
        org_id: email.org_id.map(str::to_string),
        to: email.to.map(str::to_string),
        kind: email.kind.to_string(),
        params: email.params,
        status: if email.to.is_some() {
            EmailStatus::Pending
        } else {
            EmailStatus::NoRecipient
        },
        attempts: 0,
        last_error: None,
        created_at_ms: now_ms,
        next_attempt_at_ms: now_ms,
        sent_at_ms: None,
        dedupe_key: email.dedupe_key,
    };
    outbox.insert(id, codec::encode(&row).as_slice())?;
    dedupe.insert(row.dedupe_key.as_str(), id)?;
    if row.status == EmailStatus::Pending {
        tx.open_table(tables::EMAIL_DUE)?.insert((now_ms, id), ())?;
    }
    Ok(true)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingAction {
    pub id: u64,
    pub at_ms: i64,
    /// The organization concerned; `None` for catalog-wide changes.
    pub org_id: Option<String>,
    /// Who or what caused it: `admin`, `key:<id>`, `metering`, `stripe:<event id>`, ...
    pub actor: String,
    /// e.g. `plan_changed`, `quota_policy_changed`, `early_invoice_requested`.
    pub action: String,
    pub detail: serde_json::Value,
}

impl Versioned for BillingAction {
    const KIND: &'static str = "billing action";
    const VERSION: u8 = 1;
}

pub(super) fn record_billing_action(
    tx: &WriteTransaction,
    org_id: Option<&str>,
    actor: &str,
    action: &str,
    detail: serde_json::Value,
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut log = tx.open_table(tables::BILLING_ACTIONS)?;
    let id = next_seq(&log)?;
    let row = BillingAction {
        id,
        at_ms: now_ms,
        org_id: org_id.map(str::to_string),
        actor: actor.to_string(),
        action: action.to_string(),
        detail,
    };
    log.insert(id, codec::encode(&row).as_slice())?;
    Ok(())
}

/// Where one attempt leaves a queued row.
pub(super) enum Settled {
    Done,
    RetryAt(i64),
    Failed,
}

/// Counts an attempt on a queued row's shared fields and says where it leaves the row.
pub(super) fn settle(
    attempts: &mut u32,
    last_error: &mut Option<String>,
    next_at_ms: &mut i64,
    attempt: Attempt,
) -> Settled {
    *attempts += 1;
    match attempt {
        Attempt::Delivered => Settled::Done,
        Attempt::RetryAt { error, at_ms } => {
            *last_error = Some(error);
            *next_at_ms = at_ms;
            Settled::RetryAt(at_ms)
        }
        Attempt::GiveUp { error } => {
            *last_error = Some(error);
            Settled::Failed
        }
    }
}

/// A row of a delivery queue (email or webhook outbox).
pub(super) trait Queued: Versioned {
    /// When the row is due, as indexed in its queue.
    fn due_at_ms(&self) -> i64;
    /// Takes in the outcome of one attempt; returns the new due time if it stays queued.
    fn take(&mut self, attempt: Attempt, now_ms: i64) -> Option<i64>;
    /// A failed row goes back to pending, due at `now_ms`, with a fresh set of attempts;
    /// false (and no change) for a row that has not failed.
    fn requeue_failed(&mut self, now_ms: i64) -> bool;
    /// What a row is called in errors, e.g. `email`.
    const NAME: &'static str;
    /// Why a retry was refused, e.g. `only failed mail is retried`.
    const RETRY_RULE: &'static str;
    /// The billing action an operator's retry of this row records, as (org, action, detail),
    /// for rows that carry billing data; none for rows whose retry is only operational.
    fn retry_billing_action(&self) -> Option<(String, &'static str, serde_json::Value)> {
        None
    }
    /// Why an operator may not retry this row now, beyond its not having failed.
    fn retry_refusal(&self, _now_ms: i64) -> Option<String> {
        None
    }
}

impl Queued for OutboxEmail {
    const NAME: &'static str = "email";
    const RETRY_RULE: &'static str = "only failed mail is retried";

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
                self.status = EmailStatus::Sent;
                self.sent_at_ms = Some(now_ms);
                None
            }
            Settled::RetryAt(at_ms) => Some(at_ms),
            Settled::Failed => {
                self.status = EmailStatus::Failed;
                None
            }
        }
    }

    fn requeue_failed(&mut self, now_ms: i64) -> bool {
        if self.status != EmailStatus::Failed {
            return false;
        }
        self.status = EmailStatus::Pending;
        self.attempts = 0;
        self.next_attempt_at_ms = now_ms;
        true
    }
}

/// Rows of a queue due by `now_ms`, soonest first.
pub(super) fn due_rows<T: Queued>(
    store: &Store,
    rows: redb::TableDefinition<u64, &'static [u8]>,
    due: redb::TableDefinition<(i64, u64), ()>,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<T>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let index = tx.open_table(due)?;
    let table = tx.open_table(rows)?;
    let mut out = Vec::new();
    for entry in index.range((i64::MIN, 0)..=(now_ms, u64::MAX))?.take(limit) {
        let (_, id) = entry?.0.value();
        if let Some(bytes) = table.get(id)? {
            out.push(codec::decode(bytes.value())?);
        }
    }
    Ok(out)
}

/// Puts failed row `id` of a queue back in it with a fresh set of attempts. `what` names the
/// row in errors and `only` says what may be retried when the row has not failed.
pub(super) fn retry_failed<T: Queued>(
    store: &Store,
    rows: redb::TableDefinition<u64, &'static [u8]>,
    due: redb::TableDefinition<(i64, u64), ()>,
    id: u64,
    actor: &str,
    now_ms: i64,
) -> Result<T, StoreError> {
    let tx = store.db()?.begin_write()?;
    let row = {
        let mut table = tx.open_table(rows)?;
        let mut row: T = match table.get(id)? {
            Some(bytes) => codec::decode(bytes.value())?,
            None => return Err(StoreError::not_found(T::NAME, id.to_string())),
        };
        if let Some(reason) = row.retry_refusal(now_ms) {
            return Err(StoreError::Conflict(format!("{} {id}: {reason}", T::NAME)));
        }
        if !row.requeue_failed(now_ms) {
            return Err(StoreError::Conflict(format!(
                "{} {id} has not failed; {}",
                T::NAME,
                T::RETRY_RULE
            )));
        }
        table.insert(id, codec::encode(&row).as_slice())?;
        tx.open_table(due)?.insert((now_ms, id), ())?;
        row
    };
    if let Some((org_id, action, detail)) = row.retry_billing_action() {
        record_billing_action(&tx, Some(&org_id), actor, action, detail, now_ms)?;
    }
    tx.commit()?;
    Ok(row)
}

/// Records one attempt on row `id` of a queue: the row, and its place in the due index.
/// `note` changes the row first, in the same transaction (what an outcome says beyond
/// delivered or not).
pub(super) fn record_attempt<T: Queued>(
    store: &Store,
    rows: redb::TableDefinition<u64, &'static [u8]>,
    due: redb::TableDefinition<(i64, u64), ()>,
    (id, attempt, now_ms): (u64, Attempt, i64),
    note: impl FnOnce(&mut T),
) -> Result<T, StoreError> {
    let tx = store.db()?.begin_write()?;
    let row = {
        let mut table = tx.open_table(rows)?;
        let mut row: T = match table.get(id)? {
            Some(bytes) => codec::decode(bytes.value())?,
            None => return Err(StoreError::not_found(T::KIND, id.to_string())),
        };
        note(&mut row);
        let mut index = tx.open_table(due)?;
        index.remove((row.due_at_ms(), id))?;
        if let Some(at_ms) = row.take(attempt, now_ms) {
            index.insert((at_ms, id), ())?;
        }
        table.insert(id, codec::encode(&row).as_slice())?;
        row
    };
    tx.commit()?;
    Ok(row)
}

/// What happened to one delivery attempt.
pub enum Attempt {
    Delivered,
    /// Failed; try again at this time.
    RetryAt {
        error: String,
        at_ms: i64,
    },
    /// Failed for the last time.
    GiveUp {
        error: String,
    },
}

impl Store {
    /// Pending emails due by `now_ms`, soonest first.
    pub fn due_emails(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEmail>, StoreError> {
        due_rows(self, tables::EMAIL_OUTBOX, tables::EMAIL_DUE, now_ms, limit)
    }

    /// Records the outcome of delivering row `id`.
    pub fn record_email_attempt(
        &self,
        id: u64,
        attempt: Attempt,
        now_ms: i64,
    ) -> Result<OutboxEmail, StoreError> {
        record_attempt(
            self,
            tables::EMAIL_OUTBOX,
            tables::EMAIL_DUE,
            (id, attempt, now_ms),
            |_: &mut _| {},
        )
    }

    /// Puts a failed email back in the queue with a fresh set of attempts (asked by `actor`).
    pub fn retry_email(
        &self,
        id: u64,
        actor: &str,
        now_ms: i64,
    ) -> Result<OutboxEmail, StoreError> {
        retry_failed(
            self,
            tables::EMAIL_OUTBOX,
            tables::EMAIL_DUE,
            id,
            actor,
            now_ms,
        )
    }

    /// Queues a test email to `to`.
    pub fn enqueue_test_email(
        &self,
        to: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<OutboxEmail, StoreError> {
        let tx = self.db()?.begin_write()?;
        let id = next_seq(&tx.open_table(tables::EMAIL_OUTBOX)?)?;
        enqueue_email(
            &tx,
            NewEmail {
                dedupe_key: format!("test:{id}"),
                org_id: None,
                to: Some(to),
                kind: "test",
                params: serde_json::json!({"requested_by": actor}),
            },
            now_ms,
        )?;
        let row = codec::decode(
            tx.open_table(tables::EMAIL_OUTBOX)?
                .get(id)?
                .ok_or_else(|| StoreError::Corrupt("queued email vanished".into()))?
                .value(),
        )?;
        tx.commit()?;
        Ok(row)
    }

    /// Email outbox rows, oldest first, after row `after`.
    pub fn list_emails(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page<OutboxEmail>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let outbox = tx.open_table(tables::EMAIL_OUTBOX)?;
        let start = after.map_or(0, |a| a + 1);
        let mut items = Vec::new();
        let mut more = false;
        for entry in outbox.range(start..)? {
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(codec::decode::<OutboxEmail>(entry?.1.value())?);
        }
        let next_after = if more {
            items.last().map(|e| e.id.to_string())
        } else {
            None
        };
        Ok(Page { items, next_after })
    }

    /// Billing actions, newest first; only one org's when `org_id` is given.
    /// Billing actions newest first (of one org, or all), after the listing key `after`.
    pub fn list_billing_actions(
        &self,
        org_id: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<super::Page<BillingAction>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let log = tx.open_table(tables::BILLING_ACTIONS)?;
        let rows = log
            .iter()?
            .rev()
            .map(|entry| {
                let (k, v) = entry?;
                let action: BillingAction = codec::decode(v.value())?;
                Ok((super::listing_key(k.value()), action))
            })
            .filter(|row: &Result<(String, BillingAction), StoreError>| {
                row.as_ref().map_or(true, |(_, a)| {
                    org_id.is_none_or(|o| a.org_id.as_deref() == Some(o))
                })
            });
        super::page_newest_first(rows, after, limit)
    }
}
