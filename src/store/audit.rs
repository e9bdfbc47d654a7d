//! The audit log: an append-only record of who changed what (organizations, keys, and later
//! billing actions). Entries are written in the same transaction as the change they describe.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    codec::{self, Versioned},
    tables, Store, StoreError,
};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEvent {
    pub at_ms: i64,
    /// Who caused it: `admin`, `key:<id>`, `system`, ...
    pub actor: String,
    /// What happened, e.g. `org.created`, `key.revoked`.
    pub action: String,
    pub org_id: Option<String>,
    pub detail: String,
}

impl Versioned for AuditEvent {
    const KIND: &'static str = "audit event";
    const VERSION: u8 = 1;
}

impl AuditEvent {
    pub fn new(at_ms: i64, actor: &str, action: &str, org_id: Option<&str>, detail: &str) -> Self {
        AuditEvent {
            at_ms,
            actor: actor.to_string(),
            action: action.to_string(),
            org_id: org_id.map(str::to_string),
            detail: detail.to_string(),
        }
    }
}

/// Appends `event` inside the caller's transaction.
pub(super) fn append(tx: &WriteTransaction, event: &AuditEvent) -> Result<(), StoreError> {
    let mut log = tx.open_table(tables::AUDIT_LOG)?;
    let next = super::outbox::next_seq(&log)?;
    log.insert(next, codec::encode(event).as_slice())?;
    Ok(())
}

impl Store {
    /// The newest audit events first, at most `limit`.
    /// Audit entries newest first, after the listing key `after` (see `page_newest_first`).
    pub fn recent_audit_events(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<super::Page<AuditEvent>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let log = tx.open_table(tables::AUDIT_LOG)?;
        let rows = log.iter()?.rev().map(|entry| {
            let (k, v) = entry?;
            Ok((super::listing_key(k.value()), codec::decode(v.value())?))
        });
        super::page_newest_first(rows, after, limit)
    }
}
