//! Whole-installation reads for the admin overview: every org's standing (plan, usage of the
//! current period, billing account) and the health of the three outboxes. Read-only.

use redb::{ReadableDatabase, ReadableTable};

use super::{
    billing::read_account,
    codec,
    meter_outbox::{MeterEventRow, MeterStatus},
    metering::{read_org_usage, MeterSnapshot},
    outbox::{EmailStatus, OutboxEmail},
    plans::read_plan,
    tables,
    webhooks::{DeliveryStatus, WebhookDelivery},
    OrgRecord, Store, StoreError,
};
use crate::core::billing::events::BillingAccount;

/// An org as the overview sees it.
pub struct OrgStanding {
    pub snapshot: MeterSnapshot,
    pub account: BillingAccount,
}

/// Rows waiting and rows given up on, per outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxHealth {
    pub emails_pending: u64,
    pub emails_failed: u64,
    pub webhooks_pending: u64,
    pub webhooks_failed: u64,
    pub meter_events_pending: u64,
    pub meter_events_failed: u64,
}

impl Store {
    /// Every org's standing for the period that contains `now_ms`.
    pub fn org_standings(&self, now_ms: i64) -> Result<Vec<OrgStanding>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let orgs = tx.open_table(tables::ORGS)?;
        let plans = tx.open_table(tables::PLANS)?;
        let usage = tx.open_table(tables::USAGE)?;
        let policies = tx.open_table(tables::QUOTA_POLICIES)?;
        let accounts = tx.open_table(tables::BILLING_ACCOUNTS)?;
        let mut out = Vec::new();
        for entry in orgs.iter()? {
            let org: OrgRecord = codec::decode(entry?.1.value())?;
            let plan = read_plan(&plans, &org.plan)?;
            let account = read_account(&accounts, &org.id)?;
            let (policy, usage) = read_org_usage(&policies, &usage, &org.id, &plan, now_ms)?;
            out.push(OrgStanding {
                snapshot: MeterSnapshot {
                    dunning: account.dunning.clone(),
                    org,
                    plan,
                    policy,
                    usage,
                },
                account,
            });
        }
        Ok(out)
    }

    /// Counts of pending and failed rows in the email, webhook and Stripe meter outboxes.
    pub fn outbox_health(&self) -> Result<OutboxHealth, StoreError> {
        let tx = self.db()?.begin_read()?;
        let mut health = OutboxHealth::default();
        for entry in tx.open_table(tables::EMAIL_OUTBOX)?.iter()? {
            let row: OutboxEmail = codec::decode(entry?.1.value())?;
            match row.status {
                EmailStatus::Pending => health.emails_pending += 1,
                EmailStatus::Failed => health.emails_failed += 1,
                EmailStatus::Sent | EmailStatus::NoRecipient => {}
            }
        }
        for entry in tx.open_table(tables::WEBHOOK_OUTBOX)?.iter()? {
            let row: WebhookDelivery = codec::decode(entry?.1.value())?;
            match row.status {
                DeliveryStatus::Pending => health.webhooks_pending += 1,
                DeliveryStatus::Failed => health.webhooks_failed += 1,
                DeliveryStatus::Delivered => {}
            }
        }
        for entry in tx.open_table(tables::METER_OUTBOX)?.iter()? {
            let row: MeterEventRow = codec::decode(entry?.1.value())?;
            match row.status {
                MeterStatus::Pending => health.meter_events_pending += 1,
                MeterStatus::Failed => health.meter_events_failed += 1,
                MeterStatus::Delivered => {}
            }
        }
        Ok(health)
    }
}
