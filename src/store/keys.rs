//! API keys: records holding a key's hash (never the key), its scope and owner, and the
//! per-organization index used to list them.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::{
    audit::{self, AuditEvent},
    codec::{self, Versioned},
    org_limits, tables, OrgScope, Page, Store, StoreError,
};

/// Index owner used for keys that belong to no organization (admin and service keys).
const PLATFORM_OWNER: &str = "";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// Reaches one organization's own data.
    Org,
    /// Reaches service routes such as `meter-usage`, for every organization.
    Service,
    /// Reaches the admin API.
    Admin,
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Org => "org",
            KeyScope::Service => "service",
            KeyScope::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyRecord {
    pub id: String,
    pub org_id: Option<String>,
    pub scope: KeyScope,
    pub name: String,
    /// Hex SHA-256 of the whole key.
    pub hash_hex: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

impl Versioned for KeyRecord {
    const KIND: &'static str = "API key";
    const VERSION: u8 = 1;
}

impl KeyRecord {
    pub fn is_active(&self) -> bool {
        self.revoked_at_ms.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub org_id: Option<String>,
    pub scope: KeyScope,
    pub name: String,
    pub hash_hex: String,
}

impl Store {
    /// Stores a new key. An org key's organization must exist.
    pub fn create_key(
        &self,
        new: NewKey,
        actor: &str,
        now_ms: i64,
    ) -> Result<KeyRecord, StoreError> {
        if (new.scope == KeyScope::Org) != new.org_id.is_some() {
            return Err(StoreError::Conflict(
                "org keys belong to exactly one organization; admin and service keys to none"
                    .into(),
            ));
        }
        let record = KeyRecord {
            id: new.id,
            org_id: new.org_id,
            scope: new.scope,
            name: new.name,
            hash_hex: new.hash_hex,
            created_at_ms: now_ms,
            revoked_at_ms: None,
        };
        let owner = record.org_id.as_deref().unwrap_or(PLATFORM_OWNER);
        let tx = self.db()?.begin_write()?;
        {
            let mut keys = tx.open_table(tables::API_KEYS)?;
            if let Some(org_id) = &record.org_id {
                let orgs = tx.open_table(tables::ORGS)?;
                if orgs.get(org_id.as_str())?.is_none() {
                    return Err(StoreError::not_found("organization", org_id.as_str()));
                }
                let active =
                    org_limits::active_keys_of(&keys, &tx.open_table(tables::ORG_KEYS)?, org_id)?;
                org_limits::room_for_one(
                    active,
                    self.org_limits().api_keys,
                    "active API keys",
                    "--max-keys-per-org",
                )?;
            }
            if keys.get(record.id.as_str())?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "key {} already exists",
                    record.id
                )));
            }
            keys.insert(record.id.as_str(), codec::encode(&record).as_slice())?;
            let mut index = tx.open_table(tables::ORG_KEYS)?;
            index.insert((owner, record.id.as_str()), ())?;
            let detail = format!(
                "{} key {} ({})",
                record.scope.as_str(),
                record.id,
                record.name
            );
            audit::append(
                &tx,
                &AuditEvent::new(
                    now_ms,
                    actor,
                    "key.created",
                    record.org_id.as_deref(),
                    &detail,
                ),
            )?;
        }
        tx.commit()?;
        Ok(record)
    }

    /// A key by id, whoever owns it: for authentication and the admin API.
    pub fn get_key(&self, key_id: &str) -> Result<KeyRecord, StoreError> {
        let tx = self.db()?.begin_read()?;
        let keys = tx.open_table(tables::API_KEYS)?;
        let found = keys.get(key_id)?;
        match found {
            Some(bytes) => codec::decode(bytes.value()),
            None => Err(StoreError::not_found("key", key_id)),
        }
    }

    /// Marks a key revoked; it stops working on the next request. Revoking twice keeps the
    /// first revocation time.
    pub fn revoke_key(
        &self,
        key_id: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<KeyRecord, StoreError> {
        self.revoke_key_if(key_id, actor, now_ms, |_| true)
    }

    fn revoke_key_if(
        &self,
        key_id: &str,
        actor: &str,
        now_ms: i64,
        allowed: impl Fn(&KeyRecord) -> bool,
    ) -> Result<KeyRecord, StoreError> {
        let tx = self.db()?.begin_write()?;
        let record = {
            let mut keys = tx.open_table(tables::API_KEYS)?;
            let mut record: KeyRecord = match keys.get(key_id)? {
                Some(bytes) => codec::decode(bytes.value())?,
                None => return Err(StoreError::not_found("key", key_id)),
            };
            if !allowed(&record) {
                return Err(StoreError::not_found("key", key_id));
            }
            if record.revoked_at_ms.is_none() {
                record.revoked_at_ms = Some(now_ms);
                keys.insert(key_id, codec::encode(&record).as_slice())?;
                audit::append(
                    &tx,
                    &AuditEvent::new(
                        now_ms,
                        actor,
                        "key.revoked",
                        record.org_id.as_deref(),
                        key_id,
                    ),
                )?;
            }
            record
        };
        tx.commit()?;
        Ok(record)
    }

    /// Keys of one organization (`Some`) or the platform's admin and service keys (`None`).
    pub fn list_keys(
        &self,
        org_id: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<KeyRecord>, StoreError> {
        let owner = org_id.unwrap_or(PLATFORM_OWNER);
        let tx = self.db()?.begin_read()?;
        let index = tx.open_table(tables::ORG_KEYS)?;
        let keys = tx.open_table(tables::API_KEYS)?;
        let start = after.unwrap_or("");
        let mut items = Vec::new();
        let mut more = false;
        for entry in index.range((owner, start)..)? {
            let (key, _) = entry?;
            let (entry_owner, key_id) = key.value();
            if entry_owner != owner {
                break;
            }
            if after.is_some() && key_id == start {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            let bytes = keys
                .get(key_id)?
                .ok_or_else(|| StoreError::Corrupt(format!("index names missing key {key_id}")))?;
            items.push(codec::decode::<KeyRecord>(bytes.value())?);
        }
        let next_after = if more {
            items.last().map(|k| k.id.clone())
        } else {
            None
        };
        Ok(Page { items, next_after })
    }
}

impl OrgScope {
    fn owns(&self, key: &KeyRecord) -> bool {
        key.org_id.as_deref() == Some(self.org_id.as_str())
    }

    pub fn list_keys(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<KeyRecord>, StoreError> {
        self.store.list_keys(Some(&self.org_id), after, limit)
    }

    /// One of the org's keys; another org's key answers `NotFound`.
    pub fn get_key(&self, key_id: &str) -> Result<KeyRecord, StoreError> {
        let key = self.store.get_key(key_id)?;
        if self.owns(&key) {
            Ok(key)
        } else {
            Err(StoreError::not_found("key", key_id))
        }
    }

    /// A new org-scoped key for this org.
    pub fn create_key(
        &self,
        id: String,
        name: String,
        hash_hex: String,
        actor: &str,
        now_ms: i64,
    ) -> Result<KeyRecord, StoreError> {
        let new = NewKey {
            id,
            org_id: Some(self.org_id.clone()),
            scope: KeyScope::Org,
            name,
            hash_hex,
        };
        self.store.create_key(new, actor, now_ms)
    }

    pub fn revoke_key(
        &self,
        key_id: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<KeyRecord, StoreError> {
        self.store
            .revoke_key_if(key_id, actor, now_ms, |key| self.owns(key))
    }
}
