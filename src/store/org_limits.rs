//! Per-organization caps on what an organization holds (API keys, streams, monitors),
//! checked inside the write transaction that adds one, so concurrent creations cannot pass
//! a cap together. The limits themselves are [`super::OrgLimits`], set by the operator.

use redb::{ReadableDatabase, ReadableTable, Value as RedbValue};

use super::{OrgLimit, StoreError};

/// Rows of `org_id` in a table keyed by (org id, id).
pub(super) fn rows_of_org<V: RedbValue + 'static>(
    table: &impl ReadableTable<(&'static str, &'static str), V>,
    org_id: &str,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for entry in table.range((org_id, "")..)? {
        if entry?.0.value().0 != org_id {
            break;
        }
        n += 1;
    }
    Ok(n)
}

/// Keys of `org_id` that are not revoked, from the key table and its per-owner index.
pub(super) fn active_keys_of(
    keys: &impl ReadableTable<&'static str, &'static [u8]>,
    index: &impl ReadableTable<(&'static str, &'static str), ()>,
    org_id: &str,
) -> Result<u64, StoreError> {
    let mut active = 0;
    for entry in index.range((org_id, "")..)? {
        let (k, _) = entry?;
        let (owner, id) = k.value();
        if owner != org_id {
            break;
        }
        let key: Option<super::KeyRecord> = keys
            .get(id)?
            .map(|b| super::codec::decode(b.value()))
            .transpose()?;
        active += u64::from(key.is_some_and(|k| k.revoked_at_ms.is_none()));
    }
    Ok(active)
}

/// Refuses adding one more when `held` already reaches `limit`.
pub(super) fn room_for_one(
    held: u64,
    limit: u64,
    what: &'static str,
    setting: &'static str,
) -> Result<(), StoreError> {
    if held >= limit {
        return Err(StoreError::OrgLimit(OrgLimit {
            what,
            limit,
            setting,
            retry_after_secs: None,
        }));
    }
    Ok(())
}

/// The UTC hour `now_ms` is in (its start, epoch milliseconds).
fn hour_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(3_600_000) * 3_600_000
}

/// Takes one mail from `org_id`'s budget for this hour: false (and counted as held back)
/// once `per_hour` were queued.
pub(super) fn take_mail(
    tx: &redb::WriteTransaction,
    org_id: &str,
    per_hour: u64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let mut budget = tx.open_table(super::tables::MAIL_BUDGET)?;
    let hour = hour_of(now_ms);
    let (queued, held_back) = budget
        .get((org_id, hour))?
        .map(|v| v.value())
        .unwrap_or((0, 0));
    let allowed = queued < per_hour;
    let next = if allowed {
        (queued + 1, held_back)
    } else {
        if held_back == 0 {
            tracing::warn!(
                org = org_id,
                per_hour,
                "monitor mail budget reached; later mail this hour is held back"
            );
        }
        (queued, held_back + 1)
    };
    budget.insert((org_id, hour), next)?;
    // Earlier hours are no longer needed.
    budget.retain_in((org_id, i64::MIN)..(org_id, hour), |_, _| false)?;
    Ok(allowed)
}

/// What an organization holds against its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holdings {
    pub active_api_keys: u64,
    pub streams: u64,
    pub monitors: u64,
    pub idempotency_bytes: u64,
    /// Monitor mails queued this UTC hour, and those held back past the budget.
    pub mails_this_hour: u64,
    pub mails_held_back_this_hour: u64,
}

impl super::OrgScope {
    pub fn holdings(&self, now_ms: i64) -> Result<Holdings, StoreError> {
        use super::tables;
        let tx = self.store.db()?.begin_read()?;
        let org = self.org_id.as_str();
        let active_api_keys = active_keys_of(
            &tx.open_table(tables::API_KEYS)?,
            &tx.open_table(tables::ORG_KEYS)?,
            org,
        )?;
        let (mails_this_hour, mails_held_back_this_hour) = tx
            .open_table(tables::MAIL_BUDGET)?
            .get((org, hour_of(now_ms)))?
            .map(|v| v.value())
            .unwrap_or((0, 0));
        Ok(Holdings {
            mails_this_hour,
            mails_held_back_this_hour,
            active_api_keys,
            streams: rows_of_org(&tx.open_table(tables::STREAMS)?, org)?,
            monitors: rows_of_org(&tx.open_table(tables::MONITORS)?, org)?,
            idempotency_bytes: super::idempotency::held_bytes(
                &tx.open_table(tables::IDEMPOTENCY_BYTES)?,
                org,
            )?,
        })
    }
}
