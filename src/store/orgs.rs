//! Organizations: creation, lookup and listing.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::{
    audit::{self, AuditEvent},
    codec::{self, Versioned},
    tables, OrgScope, Page, Store, StoreError,
};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrgRecord {
    pub id: String,
    pub name: String,
    pub billing_email: Option<String>,
    pub plan: String,
    pub created_at_ms: i64,
}

impl Versioned for OrgRecord {
    const KIND: &'static str = "organization";
    const VERSION: u8 = 1;
}

/// What an admin gives to create an organization; the id is made by the caller.
#[derive(Debug, Clone)]
pub struct NewOrg {
    pub id: String,
    pub name: String,
    pub billing_email: Option<String>,
    pub plan: String,
}

impl Store {
    pub fn create_org(
        &self,
        new: NewOrg,
        actor: &str,
        now_ms: i64,
    ) -> Result<OrgRecord, StoreError> {
        let record = OrgRecord {
            id: new.id,
            name: new.name,
            billing_email: new.billing_email,
            plan: new.plan,
            created_at_ms: now_ms,
        };
        let tx = self.db()?.begin_write()?;
        {
            let mut orgs = tx.open_table(tables::ORGS)?;
            if orgs.get(record.id.as_str())?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "organization {} already exists",
                    record.id
                )));
            }
            orgs.insert(record.id.as_str(), codec::encode(&record).as_slice())?;
            audit::append(
                &tx,
                &AuditEvent::new(now_ms, actor, "org.created", Some(&record.id), &record.name),
            )?;
        }
        tx.commit()?;
        Ok(record)
    }

    pub fn get_org(&self, org_id: &str) -> Result<OrgRecord, StoreError> {
        let tx = self.db()?.begin_read()?;
        let orgs = tx.open_table(tables::ORGS)?;
        let found = orgs.get(org_id)?;
        match found {
            Some(bytes) => codec::decode(bytes.value()),
            None => Err(StoreError::not_found("organization", org_id)),
        }
    }

    /// Organizations in id order (ids sort by creation time), starting after `after`; with
    /// `matching`, only those whose name, id or billing email contains it (any case).
    pub fn list_orgs(
        &self,
        after: Option<&str>,
        matching: Option<&str>,
        limit: usize,
    ) -> Result<Page<OrgRecord>, StoreError> {
        let needle = matching.map(str::to_lowercase);
        let matches = |org: &OrgRecord| match &needle {
            None => true,
            Some(n) => {
                org.name.to_lowercase().contains(n)
                    || org.id.to_lowercase().contains(n)
                    || org
                        .billing_email
                        .as_deref()
                        .is_some_and(|e| e.to_lowercase().contains(n))
            }
        };
        let tx = self.db()?.begin_read()?;
        let orgs = tx.open_table(tables::ORGS)?;
        let mut items = Vec::with_capacity(limit.min(64));
        let range = match after {
            Some(after) => {
                orgs.range::<&str>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))?
            }
            None => orgs.range::<&str>(..)?,
        };
        let mut more = false;
        for entry in range {
            let org = codec::decode::<OrgRecord>(entry?.1.value())?;
            if !matches(&org) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(org);
        }
        let next_after = if more {
            items.last().map(|o: &OrgRecord| o.id.clone())
        } else {
            None
        };
        Ok(Page { items, next_after })
    }
}

impl OrgScope {
    /// The caller's own organization.
    pub fn get_org(&self) -> Result<OrgRecord, StoreError> {
        self.store.get_org(&self.org_id)
    }

    /// An organization by id, as the caller may see it: only its own.
    pub fn get_org_by_id(&self, org_id: &str) -> Result<OrgRecord, StoreError> {
        if org_id != self.org_id {
            return Err(StoreError::not_found("organization", org_id));
        }
        self.get_org()
    }
}
