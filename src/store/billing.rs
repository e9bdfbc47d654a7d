//! Stripe's side of billing in the store: received events (idempotent by event id), each
//! org's billing account with its dunning state, the customer index and the invoice mirror.
//! An event and all its effects are one write transaction: a repeat is acknowledged and
//! changes nothing; an event for an unknown customer is stored for admins to see.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{
    codec::{self, Versioned},
    metering::set_plan_in_tx,
    outbox::{self, NewEmail},
    tables, OrgScope, Store, StoreError,
};
use crate::core::{
    billing::{
        dunning::{advance, Dunning, DunningPolicy, DunningState},
        events::{self, BillingAccount, Effect, InvoiceMirror, Outcome},
    },
    metering::plans::Plan,
};

impl Versioned for BillingAccount {
    const KIND: &'static str = "billing account";
    const VERSION: u8 = 1;
}

impl Versioned for InvoiceMirror {
    const KIND: &'static str = "invoice mirror";
    const VERSION: u8 = 1;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StripeEventRecord {
    pub id: String,
    pub kind: String,
    pub created: i64,
    pub received_at_ms: i64,
    pub org_id: Option<String>,
    /// `applied`, `stale`, `ignored` or `unmatched` (no org for it).
    pub outcome: String,
}

impl Versioned for StripeEventRecord {
    const KIND: &'static str = "Stripe event";
    const VERSION: u8 = 1;
}

/// What receiving an event did.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Duplicate,
    Recorded(StripeEventRecord),
}

pub(crate) fn read_account(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    org_id: &str,
) -> Result<BillingAccount, StoreError> {
    match table.get(org_id)? {
        Some(b) => codec::decode(b.value()),
        None => Ok(BillingAccount::default()),
    }
}

/// The org an event is about: the checkout's client reference, or the customer's owner.
fn org_for(tx: &WriteTransaction, event: &Value) -> Result<Option<String>, StoreError> {
    let obj = event.pointer("/data/object").unwrap_or(&Value::Null);
    // The checkout names the org; subscriptions carry it in their metadata (set at checkout),
    // so a subscription event that overtakes the checkout still finds its org.
    // Invoices carry the subscription's metadata: at `subscription_details` up to API
    // version 2025-03-31, at `parent.subscription_details` from then on.
    let named = [
        obj.get("client_reference_id"),
        obj.pointer("/metadata/organization_id"),
        obj.pointer("/subscription_details/metadata/organization_id"),
        obj.pointer("/parent/subscription_details/metadata/organization_id"),
    ];
    for org in named.into_iter().flatten().filter_map(Value::as_str) {
        if tx.open_table(tables::ORGS)?.get(org)?.is_some() {
            return Ok(Some(org.to_string()));
        }
    }
    let customer = match obj.get("customer") {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_str),
        _ => None,
    }
    .or_else(|| {
        (obj.get("object").and_then(Value::as_str) == Some("customer"))
            .then(|| obj.get("id").and_then(Value::as_str))
            .flatten()
    });
    let Some(customer) = customer else {
        return Ok(None);
    };
    Ok(tx
        .open_table(tables::STRIPE_CUSTOMERS)?
        .get(customer)?
        .map(|o| o.value().to_string()))
}

fn apply_effects(
    tx: &WriteTransaction,
    org_id: &str,
    actor: &str,
    effects: Vec<Effect>,
    now_ms: i64,
) -> Result<(), StoreError> {
    for effect in effects {
        match effect {
            Effect::SetPlan(plan) => {
                set_plan_in_tx(tx, org_id, &plan, actor, now_ms)?;
            }
            Effect::LinkCustomer(customer) => {
                tx.open_table(tables::STRIPE_CUSTOMERS)?
                    .insert(customer.as_str(), org_id)?;
            }
            Effect::UpsertInvoice(invoice) => {
                tx.open_table(tables::INVOICES_MIRROR)?.insert(
                    (org_id, invoice.id.as_str()),
                    codec::encode(&invoice).as_slice(),
                )?;
            }
            Effect::Email { kind, mut params } => {
                let org: super::OrgRecord = codec::decode(
                    tx.open_table(tables::ORGS)?
                        .get(org_id)?
                        .ok_or_else(|| StoreError::not_found("organization", org_id))?
                        .value(),
                )?;
                params["organization_id"] = json!(org.id);
                params["organization_name"] = json!(org.name);
                let invoice = params["invoice"].as_str().unwrap_or("").to_string();
                outbox::enqueue_email(
                    tx,
                    NewEmail {
                        dedupe_key: format!(
                            "{kind}:{org_id}:{invoice}:{}",
                            params["attempt_count"]
                        ),
                        org_id: Some(org_id),
                        to: org.billing_email.as_deref(),
                        kind,
                        params,
                    },
                    now_ms,
                )?;
            }
            Effect::Action { action, detail } => {
                outbox::record_billing_action(tx, Some(org_id), actor, action, detail, now_ms)?;
            }
        }
    }
    Ok(())
}

impl Store {
    /// Records a verified Stripe event and applies it, once per event id.
    pub fn receive_stripe_event(&self, event: &Value, now_ms: i64) -> Result<Received, StoreError> {
        let id = event
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| StoreError::Conflict("the event has no id".into()))?
            .to_string();
        let tx = self.db()?.begin_write()?;
        // A repeat is a duplicate once it was matched to an org; an event that found no org
        // (an invoice that overtook the checkout) is tried again when Stripe resends it.
        let seen: Option<StripeEventRecord> = tx
            .open_table(tables::STRIPE_EVENTS)?
            .get(id.as_str())?
            .map(|b| codec::decode(b.value()))
            .transpose()?;
        if seen.is_some_and(|record| record.outcome != "unmatched") {
            return Ok(Received::Duplicate);
        }
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let org_id = org_for(&tx, event)?;
        let outcome = match &org_id {
            None => "unmatched",
            Some(org) => {
                let plans: Vec<Plan> = {
                    let table = tx.open_table(tables::PLANS)?;
                    let mut out = Vec::new();
                    for entry in table.iter()? {
                        out.push(codec::decode(entry?.1.value())?);
                    }
                    out
                };
                let account = read_account(&tx.open_table(tables::BILLING_ACCOUNTS)?, org)?;
                let invoice_id = event
                    .pointer("/data/object/id")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let held: Option<InvoiceMirror> = tx
                    .open_table(tables::INVOICES_MIRROR)?
                    .get((org.as_str(), invoice_id))?
                    .map(|b| codec::decode(b.value()))
                    .transpose()?;
                let applied = events::apply(&account, event, &plans, held.as_ref(), now_ms);
                if applied.outcome == Outcome::Applied {
                    tx.open_table(tables::BILLING_ACCOUNTS)?
                        .insert(org.as_str(), codec::encode(&applied.account).as_slice())?;
                    apply_effects(&tx, org, &format!("stripe:{id}"), applied.effects, now_ms)?;
                }
                match applied.outcome {
                    Outcome::Applied => "applied",
                    Outcome::Stale => "stale",
                    Outcome::Ignored => "ignored",
                }
            }
        };
        let record = StripeEventRecord {
            id: id.clone(),
            kind,
            created: event.get("created").and_then(Value::as_i64).unwrap_or(0),
            received_at_ms: now_ms,
            org_id,
            outcome: outcome.into(),
        };
        tx.open_table(tables::STRIPE_EVENTS)?
            .insert(id.as_str(), codec::encode(&record).as_slice())?;
        tx.commit()?;
        Ok(Received::Recorded(record))
    }

    /// Stripe events received, most recent first.
    /// Stripe events, most recently received first, after the listing key `after`.
    pub fn list_stripe_events(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<super::Page<StripeEventRecord>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(tables::STRIPE_EVENTS)?;
        let mut out: Vec<(String, StripeEventRecord)> = Vec::new();
        for entry in table.iter()? {
            let event: StripeEventRecord = codec::decode(entry?.1.value())?;
            let key = format!(
                "{}:{}",
                super::listing_key(event.received_at_ms.max(0) as u64),
                event.id
            );
            out.push((key, event));
        }
        out.sort_by(|a, b| b.0.cmp(&a.0));
        super::page_newest_first(out.into_iter().map(Ok), after, limit)
    }

    pub fn billing_account(&self, org_id: &str) -> Result<BillingAccount, StoreError> {
        let tx = self.db()?.begin_read()?;
        read_account(&tx.open_table(tables::BILLING_ACCOUNTS)?, org_id)
    }

    /// An admin sets an org's dunning state by hand, with a note for the billing actions.
    pub fn set_dunning(
        &self,
        org_id: &str,
        state: DunningState,
        note: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<BillingAccount, StoreError> {
        let tx = self.db()?.begin_write()?;
        if tx.open_table(tables::ORGS)?.get(org_id)?.is_none() {
            return Err(StoreError::not_found("organization", org_id));
        }
        let mut account = read_account(&tx.open_table(tables::BILLING_ACCOUNTS)?, org_id)?;
        let before = account.dunning.state;
        account.dunning = Dunning {
            state,
            since_ms: now_ms,
        };
        tx.open_table(tables::BILLING_ACCOUNTS)?
            .insert(org_id, codec::encode(&account).as_slice())?;
        let detail = json!({"before": before.as_str(), "after": state.as_str(), "note": note});
        outbox::record_billing_action(&tx, Some(org_id), actor, "dunning_set", detail, now_ms)?;
        tx.commit()?;
        Ok(account)
    }
}

impl Store {
    /// Moves every account in dunning along by time (grace, past due, suspended), recording a
    /// billing action and mailing the billing contact for each change. Returns the changes.
    pub fn advance_dunning(
        &self,
        policy: &DunningPolicy,
        now_ms: i64,
    ) -> Result<Vec<(String, DunningState)>, StoreError> {
        let tx = self.db()?.begin_write()?;
        let mut changed = Vec::new();
        {
            let accounts: Vec<(String, BillingAccount)> = {
                let table = tx.open_table(tables::BILLING_ACCOUNTS)?;
                let mut all = Vec::new();
                for entry in table.iter()? {
                    let (k, v) = entry?;
                    all.push((
                        k.value().to_string(),
                        codec::decode::<BillingAccount>(v.value())?,
                    ));
                }
                all
            };
            for (org, mut account) in accounts {
                let next = advance(&account.dunning, policy, now_ms);
                if next.state == account.dunning.state {
                    continue;
                }
                let before = account.dunning.state;
                account.dunning = next.clone();
                tx.open_table(tables::BILLING_ACCOUNTS)?
                    .insert(org.as_str(), codec::encode(&account).as_slice())?;
                let detail = json!({"before": before.as_str(), "after": next.state.as_str(), "since_ms": next.since_ms});
                apply_effects(
                    &tx,
                    &org,
                    "dunning-timer",
                    vec![
                        Effect::Action {
                            action: "dunning_changed",
                            detail: detail.clone(),
                        },
                        Effect::Email {
                            kind: "dunning_changed",
                            params: json!({"invoice": format!("dunning-{}", next.state.as_str()), "attempt_count": next.since_ms,
                                           "before": before.as_str(), "after": next.state.as_str()}),
                        },
                    ],
                    now_ms,
                )?;
                changed.push((org, next.state));
            }
        }
        tx.commit()?;
        Ok(changed)
    }
}

impl Store {
    /// Every org's mirrored invoices, newest first, at most `limit`.
    /// Every organization's mirrored invoices, newest first, after the listing key `after`.
    pub fn all_invoices(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<super::Page<(String, InvoiceMirror)>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(tables::INVOICES_MIRROR)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            let (org, invoice_id) = k.value();
            let invoice = codec::decode::<InvoiceMirror>(v.value())?;
            let key = format!(
                "{}:{org}:{invoice_id}",
                super::listing_key(invoice.created.max(0) as u64)
            );
            out.push((key, (org.to_string(), invoice)));
        }
        out.sort_by(|a, b| b.0.cmp(&a.0));
        super::page_newest_first(out.into_iter().map(Ok), after, limit)
    }
}

impl OrgScope {
    /// The org's mirrored invoices, newest first.
    pub fn invoices(&self) -> Result<Vec<InvoiceMirror>, StoreError> {
        let tx = self.store.db()?.begin_read()?;
        let table = tx.open_table(tables::INVOICES_MIRROR)?;
        let org = self.org_id.as_str();
        let mut out: Vec<InvoiceMirror> = Vec::new();
        for entry in table.range((org, "")..)? {
            let (k, v) = entry?;
            if k.value().0 != org {
                break;
            }
            out.push(codec::decode(v.value())?);
        }
        out.sort_by_key(|i| std::cmp::Reverse(i.created));
        Ok(out)
    }

    pub fn billing_account(&self) -> Result<BillingAccount, StoreError> {
        self.store.billing_account(&self.org_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewOrg;

    const DAY: i64 = 86_400_000;

    #[test]
    fn the_dunning_timer_moves_unpaid_accounts_and_tells_the_billing_contact() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let new = NewOrg {
            id: "org_1".into(),
            name: "Acme".into(),
            billing_email: Some("b@acme.example".into()),
            plan: "standard".into(),
        };
        store.create_org(new, "test", 0).unwrap();
        store
            .set_dunning("org_1", DunningState::Grace, "payment failed", "test", 0)
            .unwrap();
        let policy = DunningPolicy::default();
        assert!(store.advance_dunning(&policy, 6 * DAY).unwrap().is_empty());
        assert_eq!(
            store.advance_dunning(&policy, 8 * DAY).unwrap(),
            vec![("org_1".to_string(), DunningState::PastDue)]
        );
        assert_eq!(
            store.advance_dunning(&policy, 15 * DAY).unwrap(),
            vec![("org_1".to_string(), DunningState::Suspended)]
        );
        assert!(
            store.advance_dunning(&policy, 40 * DAY).unwrap().is_empty(),
            "suspended stays"
        );
        let mails = store.list_emails(None, 10).unwrap().items;
        let kinds: Vec<&str> = mails.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(kinds, vec!["dunning_changed", "dunning_changed"]);
        assert_eq!(mails[1].params["after"], "suspended");
        let actions = store
            .list_billing_actions(Some("org_1"), None, 10)
            .unwrap()
            .items;
        assert_eq!(
            actions
                .iter()
                .filter(|a| a.action == "dunning_changed")
                .count(),
            2
        );
    }
}
