//! Promotion codes in the store: read for checkouts, and marked once synced to Stripe.

use redb::{ReadableDatabase, ReadableTable};
use serde_json::json;

use super::{
    codec::{self, Versioned},
    outbox, tables, Store, StoreError,
};
use crate::core::metering::promotions::Promotion;

impl Versioned for Promotion {
    const KIND: &'static str = "promotion";
    const VERSION: u8 = 1;
}

impl Store {
    pub fn promotions(&self) -> Result<Vec<Promotion>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(tables::PROMOTIONS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            out.push(codec::decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// A promotion by its code, whatever the case it is typed in.
    pub fn promotion(&self, code: &str) -> Result<Promotion, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(tables::PROMOTIONS)?;
        let found = table.get(code.to_uppercase().as_str())?;
        match found {
            Some(bytes) => codec::decode(bytes.value()),
            None => Err(StoreError::not_found("promotion", code)),
        }
    }

    /// Records the Stripe ids of a promotion's coupon and promotion code.
    pub fn promotion_synced(
        &self,
        code: &str,
        coupon_id: &str,
        promotion_code_id: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = self.db()?.begin_write()?;
        {
            let mut table = tx.open_table(tables::PROMOTIONS)?;
            let mut promotion: Promotion = match table.get(code)? {
                Some(bytes) => codec::decode(bytes.value())?,
                None => return Err(StoreError::not_found("promotion", code)),
            };
            promotion.stripe_coupon_id = Some(coupon_id.to_string());
            promotion.stripe_promotion_code_id = Some(promotion_code_id.to_string());
            table.insert(code, codec::encode(&promotion).as_slice())?;
        }
        let detail =
            json!({"code": code, "coupon": coupon_id, "promotion_code": promotion_code_id});
        outbox::record_billing_action(
            &tx,
            None,
            "stripe-sync",
            "promotion_synced",
            detail,
            now_ms,
        )?;
        tx.commit()?;
        Ok(())
    }
}
