//! Idempotency records: the first answer to a request made with an `Idempotency-Key`, kept for
//! 24 hours per organization, so a retry gets the same answer and changes nothing. A key
//! reused with a different request is refused rather than answered with the wrong result.
//! A record holds a digest of the request and the answer in compact form
//! (`compact_answer`), and its bytes count against the organization's limit
//! (`OrgLimits::idempotency_bytes`): a request that would pass it is refused, with nothing
//! of it kept, until older records expire.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    codec::{self, Versioned},
    compact_answer, tables, OrgLimit, StoreError,
};

/// How long a client waits to retry when the organization's records are at the limit (they
/// expire one by one, 24 hours after each was made).
const FULL_RETRY_AFTER_SECS: u64 = 600;

/// The bytes one record counts for: its key and its encoded value.
pub(super) fn record_bytes(org_id: &str, key: &str, value_len: usize) -> u64 {
    (org_id.len() + key.len() + value_len) as u64
}

fn add_held(tx: &WriteTransaction, org_id: &str, delta: i64) -> Result<u64, StoreError> {
    let mut held = tx.open_table(tables::IDEMPOTENCY_BYTES)?;
    let before = held.get(org_id)?.map(|v| v.value()).unwrap_or(0);
    let after = before.saturating_add_signed(delta);
    if after == 0 {
        held.remove(org_id)?;
    } else {
        held.insert(org_id, after)?;
    }
    Ok(after)
}

/// Bytes of idempotency records `org_id` holds now.
pub(super) fn held_bytes(
    table: &impl ReadableTable<&'static str, u64>,
    org_id: &str,
) -> Result<u64, StoreError> {
    Ok(table.get(org_id)?.map(|v| v.value()).unwrap_or(0))
}

/// How long an answer is kept.
pub const TTL_MS: i64 = 24 * 3600 * 1000;
/// Expired records removed per write, so pruning never makes one write slow.
const PRUNE_PER_WRITE: usize = 32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotentAnswer {
    pub created_at_ms: i64,
    /// Digest of the request the key was first used with.
    pub fingerprint: String,
    pub answer: serde_json::Value,
}

impl Versioned for IdempotentAnswer {
    const KIND: &'static str = "idempotency record";
    const VERSION: u8 = 1;
}

/// What a lookup found for a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Prior {
    None,
    /// The same request was answered before: answer it the same way.
    Answered(serde_json::Value),
    /// The key was used for a different request.
    Mismatch,
}

pub(super) fn lookup(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    org_id: &str,
    key: &str,
    fingerprint: &str,
    now_ms: i64,
) -> Result<Prior, StoreError> {
    let Some(bytes) = table.get((org_id, key))? else {
        return Ok(Prior::None);
    };
    let record: IdempotentAnswer = codec::decode(bytes.value())?;
    if now_ms - record.created_at_ms >= TTL_MS {
        Ok(Prior::None)
    } else if record.fingerprint == fingerprint {
        Ok(Prior::Answered(compact_answer::expand(&record.answer)))
    } else {
        Ok(Prior::Mismatch)
    }
}

/// Keeps `answer` under `key` for 24 hours, refusing when the organization's records would
/// pass `budget_bytes`.
pub(super) fn remember(
    tx: &WriteTransaction,
    (org_id, key, fingerprint): (&str, &str, &str),
    answer: serde_json::Value,
    now_ms: i64,
    budget_bytes: u64,
) -> Result<(), StoreError> {
    prune(tx, now_ms)?;
    let record = IdempotentAnswer {
        created_at_ms: now_ms,
        fingerprint: fingerprint.to_string(),
        answer: compact_answer::compact(&answer),
    };
    let encoded = codec::encode(&record);
    let bytes = record_bytes(org_id, key, encoded.len());
    let replaced = {
        let mut table = tx.open_table(tables::IDEMPOTENCY)?;
        let old = table.insert((org_id, key), encoded.as_slice())?;
        old.map(|bytes| {
            let len = bytes.value().len();
            codec::decode::<IdempotentAnswer>(bytes.value()).map(|r| (r, len))
        })
        .transpose()?
    };
    let mut by_time = tx.open_table(tables::IDEMPOTENCY_BY_TIME)?;
    let mut freed = 0;
    if let Some((old, len)) = replaced {
        // An expired record under the same key: drop its expiry entry.
        by_time.remove((old.created_at_ms, org_id, key))?;
        freed = record_bytes(org_id, key, len);
    }
    by_time.insert((now_ms, org_id, key), ())?;
    drop(by_time);
    let held = add_held(tx, org_id, bytes as i64 - freed as i64)?;
    if held > budget_bytes {
        return Err(StoreError::OrgLimit(OrgLimit {
            what: "bytes of idempotency records (each kept 24 h)",
            limit: budget_bytes,
            setting: "--max-idempotency-bytes-per-org",
            retry_after_secs: Some(FULL_RETRY_AFTER_SECS),
        }));
    }
    Ok(())
}

/// At the start of a commit made with `idempotency` (scoped key, fingerprint): the answer
/// already given to the same request, if any; a key used for another request is refused.
pub(super) fn replay_in_tx(
    tx: &WriteTransaction,
    org_id: &str,
    idempotency: Option<&(String, String)>,
    now_ms: i64,
) -> Result<Option<serde_json::Value>, StoreError> {
    let Some((key, fingerprint)) = idempotency else {
        return Ok(None);
    };
    let table = tx.open_table(tables::IDEMPOTENCY)?;
    match lookup(&table, org_id, key, fingerprint, now_ms)? {
        Prior::None => Ok(None),
        Prior::Answered(answer) => Ok(Some(answer)),
        Prior::Mismatch => Err(StoreError::Conflict(
            "this Idempotency-Key was used for a different request".into(),
        )),
    }
}

/// At the end of a commit: keeps `answer` for retries with the same key.
pub(super) fn remember_answer<T: Serialize>(
    tx: &WriteTransaction,
    org_id: &str,
    idempotency: Option<&(String, String)>,
    answer: &T,
    now_ms: i64,
    budget_bytes: u64,
) -> Result<(), StoreError> {
    let Some((key, fingerprint)) = idempotency else {
        return Ok(());
    };
    let value = serde_json::to_value(answer)
        .map_err(|e| StoreError::Corrupt(format!("answer does not serialize: {e}")))?;
    remember(tx, (org_id, key, fingerprint), value, now_ms, budget_bytes)
}

/// Removes up to [`PRUNE_PER_WRITE`] expired records, and their bytes from their orgs' counts.
fn prune(tx: &WriteTransaction, now_ms: i64) -> Result<(), StoreError> {
    let mut by_time = tx.open_table(tables::IDEMPOTENCY_BY_TIME)?;
    let mut records = tx.open_table(tables::IDEMPOTENCY)?;
    let cutoff = now_ms - TTL_MS;
    let expired: Vec<(i64, String, String)> = by_time
        .range((i64::MIN, "", "")..(cutoff, "", ""))?
        .take(PRUNE_PER_WRITE)
        .map(|e| {
            e.map(|(k, _)| {
                let (t, org, key) = k.value();
                (t, org.to_string(), key.to_string())
            })
        })
        .collect::<Result<_, _>>()?;
    let mut freed: Vec<(String, u64)> = Vec::new();
    for (t, org, key) in expired {
        by_time.remove((t, org.as_str(), key.as_str()))?;
        if let Some(old) = records.remove((org.as_str(), key.as_str()))? {
            freed.push((org.clone(), record_bytes(&org, &key, old.value().len())));
        }
    }
    drop((by_time, records));
    for (org, bytes) in freed {
        add_held(tx, &org, -(bytes as i64))?;
    }
    Ok(())
}
