//! The embedded store (redb). This module owns every table, the schema version and its
//! migrations, and the typed transactions the rest of the program uses. Nothing outside it
//! names a table or opens a transaction. Org-scoped data is reached only through `OrgScope`,
//! which carries the caller's organization into every read and write, so one org can never
//! see another's records (a foreign id answers `NotFound`, exactly like a missing one).

mod audit;
pub mod backup;
mod billing;
pub mod codec;
mod compact_answer;
mod feed;
mod feedback;
mod idempotency;
mod keys;
mod meter_outbox;
mod metering;
mod monitors;
mod org_limits;
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
use std::sync::{
    atomic::{AtomicBool, Ordering},
    Mutex, RwLock,
};

pub use audit::AuditEvent;
pub use billing::{Received, StripeEventRecord};
pub use feed::{AnyAnomaly, FeedEntry, FeedFilter, FeedItem};
pub use feedback::{DisputeCounts, FeedbackOutcome};
pub use keys::{KeyRecord, KeyScope, NewKey};
pub use meter_outbox::{MeterEventRow, MeterStatus};
pub use metering::{MeterOutcome, MeterSnapshot, Metered};
pub use monitors::{
    EpisodeStart, MonitorAnomaly, MonitorBatchCommit, MonitorRecord, MonitorSnapshot, SeriesPoint,
    WebhookChannel, MAX_SERIES_POINTS,
};
pub use org_limits::Holdings;
pub use orgs::{NewOrg, OrgRecord};
pub use outbox::{Attempt, BillingAction, EmailStatus, OutboxEmail};
pub use overview::{OrgStanding, OutboxHealth};
pub use streams::{
    BatchCommitted, NewStreamAnomaly, Remembered, StoredAnomaly, StreamBatchCommit, StreamRecord,
    StreamSnapshot,
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
    /// A conflict with its own machine-readable code (`dispute_settled`, ...).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error(
        "the store has schema version {found}, newer than this binary supports ({supported}); \
         run the newer driftlock release that wrote it, or restore a backup made by this one"
    )]
    TooNew { found: u64, supported: u64 },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage error: {0}")]
    Backend(redb::Error),
    /// The detections of a call would carry the org's usage past its quota limit; nothing of
    /// the call was kept.
    #[error("quota exceeded: {used} used, {adding} more would pass the limit of {limit}")]
    QuotaExceeded {
        used: u64,
        adding: u64,
        limit: u64,
        period: crate::core::metering::period::Period,
    },
    /// The database is being reopened after a storage failure (disk full, I/O error).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// One of the operator's per-organization limits; nothing of the call was kept.
    #[error("{0}")]
    OrgLimit(OrgLimit),
}

/// A per-organization limit that refused a call: what is limited, the limit, the setting
/// that sets it, and when a retry can succeed (for limits that free up with time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgLimit {
    /// What is counted, in the plural: `API keys`, `streams`, ...
    pub what: &'static str,
    pub limit: u64,
    /// The flag that sets the limit (each also has an environment variable and a TOML key).
    pub setting: &'static str,
    pub retry_after_secs: Option<u64>,
}

impl std::fmt::Display for OrgLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the organization has reached its limit of {} {} (set by the operator with {})",
            self.limit, self.what, self.setting
        )?;
        match self.retry_after_secs {
            Some(secs) => write!(f, "; retry in {secs} s"),
            None => write!(f, "; remove some to make room"),
        }
    }
}

/// Set when any store call meets an I/O failure (disk full, a file size limit, a failing
/// disk). The store-health worker then probes with a small write and, when redb refuses
/// further work after the failure, reopens the database. Process-wide because errors are
/// converted where no store handle is at hand.
static STORAGE_FAULT: AtomicBool = AtomicBool::new(false);

fn is_io(e: &redb::Error) -> bool {
    matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo)
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        if is_io(&e) {
            STORAGE_FAULT.store(true, Ordering::Release);
        }
        StoreError::Backend(e)
    }
}

macro_rules! backend_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::from(redb::Error::from(e))
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
    /// Whether this is the storage failing (rather than data being missing or refused).
    pub fn is_storage_fault(&self) -> bool {
        match self {
            StoreError::Backend(e) => is_io(e),
            StoreError::Unavailable(_) => true,
            _ => false,
        }
    }

    /// Whether the storage refuses writing outright: permissions or a read-only file system.
    pub fn is_unwritable(&self) -> bool {
        let StoreError::Backend(redb::Error::Io(io)) = self else {
            return false;
        };
        matches!(
            io.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
        )
    }

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

/// One page of a listing whose rows come newest first, each with a key that sorts the same
/// way as text (zero-padded numbers): the rows after `after` (the last key of the previous
/// page), at most `limit`, and the key to continue from when more follow. A cursor past
/// every row gives an empty page, never the first page again.
pub(crate) fn page_newest_first<T>(
    rows: impl IntoIterator<Item = Result<(String, T), StoreError>>,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<T>, StoreError> {
    let mut items = Vec::new();
    let mut last_key = None;
    for row in rows {
        let (key, item) = row?;
        if after.is_some_and(|a| key.as_str() >= a) {
            continue;
        }
        if items.len() == limit {
            return Ok(Page {
                items,
                next_after: last_key,
            });
        }
        items.push(item);
        last_key = Some(key);
    }
    Ok(Page {
        items,
        next_after: None,
    })
}

/// A number as a listing key (see [`page_newest_first`]).
pub(crate) fn listing_key(n: u64) -> String {
    format!("{n:020}")
}

/// A handle on the open store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` while the database is being reopened after a storage failure, or while it
    /// cannot be opened for writing at all (a read-only data directory).
    db: RwLock<Option<Arc<Database>>>,
    path: PathBuf,
    /// Why the database could not be opened, while that lasts (for errors and `/readyz`).
    open_failure: Mutex<Option<String>>,
    /// The operator's per-organization limits (counts checked inside the write transactions).
    limits: RwLock<OrgLimits>,
}

/// Per-organization limits the store enforces where the rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgLimits {
    /// Bytes of idempotency records an organization may hold (each kept 24 h).
    pub idempotency_bytes: u64,
    pub api_keys: u64,
    pub streams: u64,
    pub monitors: u64,
    /// Monitor notification mails an organization may queue per UTC hour.
    pub mails_per_hour: u64,
}

impl Default for OrgLimits {
    fn default() -> Self {
        OrgLimits {
            idempotency_bytes: 16 * 1024 * 1024,
            api_keys: 100,
            streams: 1_000,
            monitors: 1_000,
            mails_per_hour: 100,
        }
    }
}

/// Makes `path` an empty file readable by its owner only (0600) if it does not exist, and
/// takes group and other permissions off one that does: the store holds every tenant's data.
pub(crate) fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))
                {
                    Ok(()) => {
                        tracing::warn!(path = %path.display(), "store file was readable by others; now 0600")
                    }
                    // A read-only directory or file system: the open that follows says so.
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "store file is readable by others and its mode cannot be changed")
                    }
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

impl Store {
    /// Opens (or creates) the store in `data_dir` and migrates it to the current schema.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join(DB_FILE);
        create_private(&path).map_err(|e| StoreError::Backend(redb::Error::Io(e)))?;
        let db = Database::create(&path)?;
        let found = schema::migrate(&db)?;
        tracing::info!(
            path = %path.display(),
            found_version = found,
            version = schema::CURRENT_SCHEMA_VERSION,
            "store open"
        );
        Ok(Store::with_database(Some(db), path))
    }

    /// Opens the store like [`Store::open`]; but when its file exists and cannot be opened
    /// for writing (a read-only data directory, file or file system), gives a store that
    /// answers `Unavailable` until the store-health worker manages to open it, with the reason.
    /// A store that does not exist yet is not waited for: there is nothing to serve.
    pub fn open_or_wait(data_dir: &Path) -> Result<(Store, Option<StoreError>), StoreError> {
        let path = data_dir.join(DB_FILE);
        match Store::open(data_dir) {
            Ok(store) => Ok((store, None)),
            Err(e) if e.is_unwritable() && path.exists() => {
                let store = Store::with_database(None, path.clone());
                *store.open_failure() = Some(format!(
                    "{} cannot be opened for writing ({e}); it is retried every second",
                    path.display()
                ));
                STORAGE_FAULT.store(true, Ordering::Release);
                Ok((store, Some(e)))
            }
            Err(e) => Err(e),
        }
    }

    fn with_database(db: Option<Database>, path: PathBuf) -> Store {
        Store {
            inner: Arc::new(Inner {
                db: RwLock::new(db.map(Arc::new)),
                path,
                open_failure: Mutex::new(None),
                limits: RwLock::new(OrgLimits::default()),
            }),
        }
    }

    /// Sets the per-organization limits (from the configuration, at start).
    pub fn set_org_limits(&self, limits: OrgLimits) {
        *self.inner.limits.write().unwrap_or_else(|e| e.into_inner()) = limits;
    }

    pub fn org_limits(&self) -> OrgLimits {
        *self.inner.limits.read().unwrap_or_else(|e| e.into_inner())
    }

    fn open_failure(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.inner
            .open_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn db(&self) -> Result<Arc<Database>, StoreError> {
        let db = self
            .inner
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        db.ok_or_else(|| {
            StoreError::Unavailable(
                self.open_failure()
                    .clone()
                    .unwrap_or_else(|| "the database is reopening after a storage failure".into()),
            )
        })
    }

    /// The schema version recorded in the store.
    pub fn schema_version(&self) -> Result<u64, StoreError> {
        schema::stored_version(&*self.db()?)
    }

    /// Whether no storage failure is outstanding (for `/readyz`).
    pub fn writable(&self) -> bool {
        !STORAGE_FAULT.load(Ordering::Acquire)
            && self
                .inner
                .db
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .is_some()
    }

    /// After a storage failure: proves the store takes a durable write again, reopening the
    /// database first when redb refuses work after the failure. `Ok(true)` when a failure was
    /// outstanding and is now over; an error while the storage still fails.
    pub fn recover(&self, now_ms: i64) -> Result<bool, StoreError> {
        if self.writable() {
            return Ok(false);
        }
        let probe = || -> Result<(), StoreError> {
            let tx = self.db()?.begin_write()?;
            tx.open_table(tables::META)?
                .insert(tables::META_HEALTH_PROBE, now_ms.max(0) as u64)?;
            tx.commit()?;
            Ok(())
        };
        if let Err(first) = probe() {
            if !first.is_storage_fault() {
                return Err(first);
            }
            // redb answers PreviousIo to everything after an I/O failure until reopened. Our
            // handle goes first; the file lock frees once in-flight transactions end, so a
            // busy moment just means another try on the next pass.
            let mut slot = self.inner.db.write().unwrap_or_else(|e| e.into_inner());
            *slot = None;
            let db = Database::create(&self.inner.path).map_err(StoreError::from);
            let db = match db.and_then(|db| schema::migrate(&db).map(|_| db)) {
                Ok(db) => db,
                Err(e) => {
                    *self.open_failure() = Some(format!(
                        "{} cannot be opened for writing ({e}); it is retried every second",
                        self.inner.path.display()
                    ));
                    return Err(e);
                }
            };
            *slot = Some(Arc::new(db));
            drop(slot);
            *self.open_failure() = None;
            tracing::warn!(path = %self.inner.path.display(), "store reopened after a storage failure");
            probe()?;
        }
        STORAGE_FAULT.store(false, Ordering::Release);
        Ok(true)
    }

    /// Proves the store answers reads: used by `/readyz`.
    pub fn ping(&self) -> Result<(), StoreError> {
        let tx = self.db()?.begin_read()?;
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
