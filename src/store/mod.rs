//! The embedded store (redb). This module owns every table, the schema version and its
//! migrations, and the typed transactions the rest of the program uses. Nothing outside it
//! names a table or opens a transaction. Org-scoped data is reached only through `OrgScope`,
//! which carries the caller's organization into every read and write, so one org can never
//! see another's records (a foreign id answers `NotFound`, exactly like a missing one).

mod audit;
pub mod backup;
mod billing;
pub mod codec;
mod idempotency;
mod keys;
mod meter_outbox;
mod metering;
mod monitors;
mod orgs;
mod outbox;
mod overview;
mod plans;
mod promotions;
pub mod schema;
mod scoped;
mod streams;
mod tables;
mod webhooks;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use redb::{Database, ReadableDatabase};

pub use audit::AuditEvent;
pub use billing::{Received, StripeEventRecord};
pub use keys::{KeyRecord, KeyScope, NewKey};
pub use meter_outbox::{MeterEventRow, MeterStatus};
pub use metering::{MeterOutcome, MeterSnapshot, Metered};
pub use monitors::{
    EpisodeStart, MonitorAnomaly, MonitorBatchCommit, MonitorRecord, SeriesPoint, WebhookChannel,
    MAX_SERIES_POINTS,
};
pub use orgs::{NewOrg, OrgRecord};
pub use outbox::{Attempt, BillingAction, EmailStatus, OutboxEmail};
pub use overview::{OrgStanding, OutboxHealth};
pub use streams::{
    BatchCommitted, Remembered, StoredAnomaly, StreamBatchCommit, StreamRecord, StreamSnapshot,
};
pub use webhooks::{DeliveryStatus, WebhookDelivery};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "driftlock.redb";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error(
        "the store has schema version {found}, newer than this binary supports ({supported}); \
         run the newer driftlock release that wrote it, or restore a backup made by this one"
    )]
    TooNew { found: u64, supported: u64 },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage error: {0}")]
    Backend(#[from] redb::Error),
}

macro_rules! backend_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Backend(e.into())
            }
        }
    )*};
}
backend_error_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl StoreError {
    pub fn not_found(entity: &'static str, id: impl Into<String>) -> Self {
        StoreError::NotFound {
            entity,
            id: id.into(),
        }
    }
}

/// One page of a listing, and where the next one starts.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The last key of this page when more may follow.
    pub next_after: Option<String>,
}

/// A handle on the open store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the store in `data_dir` and migrates it to the current schema.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join(DB_FILE);
        let db = Database::create(&path)?;
        let found = schema::migrate(&db)?;
        tracing::info!(
            path = %path.display(),
            found_version = found,
            version = schema::CURRENT_SCHEMA_VERSION,
            "store open"
        );
        Ok(Store {
            inner: Arc::new(Inner { db, path }),
        })
    }

    pub(crate) fn db(&self) -> &Database {
        &self.inner.db
    }

    /// The schema version recorded in the store.
    pub fn schema_version(&self) -> Result<u64, StoreError> {
        schema::stored_version(self.db())
    }

    /// Proves the store answers reads: used by `/readyz`.
    pub fn ping(&self) -> Result<(), StoreError> {
        let tx = self.db().begin_read()?;
        tx.open_table(tables::META)?;
        Ok(())
    }

    /// Size of the database file in bytes.
    pub fn file_size(&self) -> u64 {
        std::fs::metadata(&self.inner.path)
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// A view limited to one organization's data. The org's existence is checked on use.
    pub fn org(&self, org_id: &str) -> OrgScope {
        OrgScope {
            store: self.clone(),
            org_id: org_id.to_string(),
        }
    }
}

/// The store as one organization sees it. Every method is limited to `org_id`.
#[derive(Clone)]
pub struct OrgScope {
    store: Store,
    org_id: String,
}

impl OrgScope {
    pub fn org_id(&self) -> &str {
        &self.org_id
    }
}

/// Clamps a requested page size to what listings allow.
pub fn page_limit(requested: Option<u32>) -> usize {
    requested.unwrap_or(50).clamp(1, 500) as usize
}
