//! The plan catalog in the store: seeded by the migration ladder, read by metering, edited by
//! admins (each edit is a billing action).

use redb::{ReadableDatabase, ReadableTable};
use serde_json::json;

use super::{
    codec::{self, Versioned},
    outbox, tables, Store, StoreError,
};
use crate::core::metering::plans::Plan;

impl Versioned for Plan {
    const KIND: &'static str = "plan";
    const VERSION: u8 = 1;
}

pub(super) fn read_plan(
    plans: &impl ReadableTable<&'static str, &'static [u8]>,
    plan_id: &str,
) -> Result<Plan, StoreError> {
    match plans.get(plan_id)? {
        Some(bytes) => codec::decode(bytes.value()),
        None => Err(StoreError::not_found("plan", plan_id)),
    }
}

impl Store {
    pub fn list_plans(&self) -> Result<Vec<Plan>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let plans = tx.open_table(tables::PLANS)?;
        let mut out = Vec::new();
        for entry in plans.iter()? {
            out.push(codec::decode(entry?.1.value())?);
        }
        out.sort_by_key(|p: &Plan| (p.monthly_price_cents, p.id.clone()));
        Ok(out)
    }

    pub fn get_plan(&self, plan_id: &str) -> Result<Plan, StoreError> {
        let tx = self.db()?.begin_read()?;
        read_plan(&tx.open_table(tables::PLANS)?, plan_id)
    }

    /// Creates or replaces a plan (already validated). Organizations on it are repriced as
    /// their next detections are counted.
    pub fn put_plan(&self, plan: &Plan, actor: &str, now_ms: i64) -> Result<(), StoreError> {
        let tx = self.db()?.begin_write()?;
        let before = {
            let mut plans = tx.open_table(tables::PLANS)?;
            let before = plans
                .insert(plan.id.as_str(), codec::encode(plan).as_slice())?
                .map(|old| codec::decode::<Plan>(old.value()))
                .transpose()?;
            before
        };
        let detail = json!({"before": before, "after": plan});
        outbox::record_billing_action(&tx, None, actor, "plan_catalog_changed", detail, now_ms)?;
        tx.commit()?;
        Ok(())
    }
}
