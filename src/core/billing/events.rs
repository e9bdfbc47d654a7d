//! Stripe events to billing state. Events may come twice (the store drops repeats by event
//! id) and out of order: subscription state only moves to an event at least as new as the
//! last one applied (by the event's `created`), and an invoice's mirror only takes an event at
//! least as new as the one it holds, so an older event never overwrites newer state. Two
//! subscription events of the same second are ordered by the lifecycle (`created`, then
//! `updated`, then `deleted`): an event earlier in it never undoes a later one.
//!
//! The org follows its current subscription (the one its last checkout made, or the newest
//! live one): an event about another subscription of the customer, such as the deletion of
//! an old one after a second checkout, is recorded and changes neither plan nor status.
//! Payloads follow the webhook endpoint's API version: the period is read from the
//! subscription (up to 2025-03-31) or from its items (from 2025-03-31 on).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::dunning::{self, Dunning, DunningState};
use crate::core::metering::plans::{Plan, DEFAULT_PLAN};

/// What the org's billing looks like from Stripe's side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BillingAccount {
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    pub subscription_status: Option<String>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    /// `created` of the newest subscription event applied.
    pub subscription_event_created: i64,
    /// Lifecycle rank of that event (1 created, 2 updated, 3 deleted), for same-second ties.
    #[serde(default)]
    pub subscription_event_rank: u8,
    /// When the current subscription was created (its `created`, or the checkout's).
    #[serde(default)]
    pub subscription_created: i64,
    pub dunning: Dunning,
}

impl BillingAccount {
    /// True while the current subscription bills (active, trialing or past due): a second
    /// checkout would make a second subscription.
    pub fn has_live_subscription(&self) -> bool {
        self.subscription_id.is_some() && is_live(self.subscription_status.as_deref())
    }
}

/// The local mirror of a Stripe invoice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceMirror {
    pub id: String,
    pub number: Option<String>,
    pub status: String,
    pub currency: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub attempt_count: i64,
    pub hosted_invoice_url: Option<String>,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub created: i64,
    /// `created` of the event this mirror was last written from.
    pub event_created: i64,
}

/// What applying an event asks the store to do besides saving the account.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Move the org to this plan (its period usage is kept).
    SetPlan(String),
    /// Link a Stripe customer to the org.
    LinkCustomer(String),
    UpsertInvoice(InvoiceMirror),
    /// Mail the org's billing contact.
    Email {
        kind: &'static str,
        params: Value,
    },
    /// Record a billing action.
    Action {
        action: &'static str,
        detail: Value,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Older than the state already held: acknowledged, nothing changed.
    Stale,
    /// A type Driftlock does not act on: stored and acknowledged.
    Ignored,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub account: BillingAccount,
    pub effects: Vec<Effect>,
    pub outcome: Outcome,
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The id of an expandable field (a string, or an object with an `id`).
fn id_of(v: &Value, key: &str) -> Option<String> {
    match v.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// Statuses in which a subscription bills and serves its plan.
fn is_live(status: Option<&str>) -> bool {
    matches!(status, Some("active" | "trialing" | "past_due"))
}

/// A subscription field that moved to its items at API version 2025-03-31.
fn period_field(sub: &Value, key: &str) -> Option<i64> {
    sub.get(key).and_then(Value::as_i64).or_else(|| {
        sub.pointer("/items/data")?
            .as_array()?
            .iter()
            .filter_map(|item| item.get(key).and_then(Value::as_i64))
            .reduce(|a, b| {
                if key.ends_with("_start") {
                    a.min(b)
                } else {
                    a.max(b)
                }
            })
    })
}

/// Lifecycle rank of a subscription event type.
fn subscription_rank(kind: &str) -> u8 {
    match kind {
        "customer.subscription.created" => 1,
        "customer.subscription.updated" => 2,
        "customer.subscription.deleted" => 3,
        _ => 0,
    }
}

/// The plan of a subscription object: the catalog plan whose Stripe price is among its items.
fn plan_of_subscription(sub: &Value, plans: &[Plan]) -> Option<String> {
    let items = sub.pointer("/items/data")?.as_array()?;
    items.iter().find_map(|item| {
        let price = item.pointer("/price/id").and_then(Value::as_str)?;
        plans
            .iter()
            .find(|p| {
                p.stripe_price_id.as_deref() == Some(price)
                    || p.stripe_metered_price_id.as_deref() == Some(price)
            })
            .map(|p| p.id.clone())
    })
}

fn invoice_from(obj: &Value, event_created: i64) -> Option<InvoiceMirror> {
    Some(InvoiceMirror {
        id: str_of(obj, "id")?,
        number: str_of(obj, "number"),
        status: str_of(obj, "status").unwrap_or_else(|| "open".into()),
        currency: str_of(obj, "currency").unwrap_or_else(|| "usd".into()),
        amount_due: obj.get("amount_due").and_then(Value::as_i64).unwrap_or(0),
        amount_paid: obj.get("amount_paid").and_then(Value::as_i64).unwrap_or(0),
        attempt_count: obj
            .get("attempt_count")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        hosted_invoice_url: str_of(obj, "hosted_invoice_url"),
        period_start: obj.get("period_start").and_then(Value::as_i64),
        period_end: obj.get("period_end").and_then(Value::as_i64),
        created: obj
            .get("created")
            .and_then(Value::as_i64)
            .unwrap_or(event_created),
        event_created,
    })
}

/// Applies one Stripe event to an org's billing account. `invoice` is the mirror already held
/// for the event's invoice, if any.
pub fn apply(
    account: &BillingAccount,
    event: &Value,
    plans: &[Plan],
    invoice: Option<&InvoiceMirror>,
    now_ms: i64,
) -> Applied {
    let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
    let created = event.get("created").and_then(Value::as_i64).unwrap_or(0);
    let obj = event
        .pointer("/data/object")
        .cloned()
        .unwrap_or(Value::Null);
    let mut next = account.clone();
    let mut effects = Vec::new();
    let rank = subscription_rank(kind);
    let stale_subscription = created < account.subscription_event_created
        || (created == account.subscription_event_created
            && rank != 0
            && rank < account.subscription_event_rank);
    let sub_id = str_of(&obj, "id");
    // An event about a subscription other than the org's current one: it takes over only
    // when it is live and newer than the current one.
    let sub_created = obj
        .get("created")
        .and_then(Value::as_i64)
        .unwrap_or(created);
    let other_subscription = rank != 0
        && account.subscription_id.is_some()
        && sub_id != account.subscription_id
        && (kind == "customer.subscription.deleted"
            || !is_live(obj.get("status").and_then(Value::as_str))
            || sub_created < account.subscription_created);
    let outcome = match kind {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            // A checkout paid by a delayed method completes unpaid: the plan moves when
            // Stripe says the payment succeeded (`async_payment_succeeded`).
            let paid = matches!(
                obj.get("payment_status").and_then(Value::as_str),
                None | Some("paid" | "no_payment_required")
            );
            if let Some(customer) = id_of(&obj, "customer") {
                next.customer_id = Some(customer.clone());
                effects.push(Effect::LinkCustomer(customer));
            }
            if let Some(sub) = id_of(&obj, "subscription") {
                if next.subscription_id.as_ref() != Some(&sub) {
                    next.subscription_created = created;
                }
                next.subscription_id = Some(sub);
            }
            if let Some(plan) = obj.pointer("/metadata/plan").and_then(Value::as_str) {
                if paid && plans.iter().any(|p| p.id == plan) && !stale_subscription {
                    effects.push(Effect::SetPlan(plan.to_string()));
                }
            }
            effects.push(Effect::Action {
                action: if kind == "checkout.session.completed" {
                    "checkout_completed"
                } else {
                    "checkout_payment_succeeded"
                },
                detail: json!({"session": str_of(&obj, "id"),
                    "payment_status": str_of(&obj, "payment_status")}),
            });
            Outcome::Applied
        }
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted"
            if other_subscription =>
        {
            // Recorded (the store keeps the event), but the org follows its current one.
            next = account.clone();
            effects.push(Effect::Action {
                action: "other_subscription_event",
                detail: json!({"subscription": sub_id, "event": kind,
                    "status": str_of(&obj, "status"), "current": account.subscription_id}),
            });
            Outcome::Applied
        }
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted"
            if stale_subscription =>
        {
            Outcome::Stale
        }
        "customer.subscription.created" | "customer.subscription.updated" => {
            next.subscription_event_created = created;
            next.subscription_event_rank = rank;
            if sub_id != account.subscription_id || account.subscription_created == 0 {
                next.subscription_created = sub_created;
            }
            next.subscription_id = sub_id;
            next.subscription_status = str_of(&obj, "status");
            next.current_period_start = period_field(&obj, "current_period_start");
            next.current_period_end = period_field(&obj, "current_period_end");
            if let Some(customer) = id_of(&obj, "customer") {
                next.customer_id = Some(customer.clone());
                effects.push(Effect::LinkCustomer(customer));
            }
            let live = is_live(next.subscription_status.as_deref());
            if let (true, Some(plan)) = (live, plan_of_subscription(&obj, plans)) {
                effects.push(Effect::SetPlan(plan));
            }
            effects.push(Effect::Action {
                action: "subscription_changed",
                detail: json!({"subscription": next.subscription_id, "status": next.subscription_status}),
            });
            Outcome::Applied
        }
        "customer.subscription.deleted" => {
            next.subscription_event_created = created;
            next.subscription_event_rank = rank;
            next.subscription_status = Some("canceled".into());
            next.dunning = Dunning {
                state: DunningState::Cancelled,
                since_ms: now_ms,
            };
            effects.push(Effect::SetPlan(DEFAULT_PLAN.into()));
            effects.push(Effect::Action {
                action: "subscription_cancelled",
                detail: json!({"subscription": str_of(&obj, "id")}),
            });
            Outcome::Applied
        }
        "invoice.paid" | "invoice.payment_failed" => match invoice_from(&obj, created) {
            None => Outcome::Ignored,
            Some(_) if invoice.is_some_and(|held| held.event_created > created) => Outcome::Stale,
            Some(mirror) => {
                let before = next.dunning.state;
                if kind == "invoice.paid" {
                    next.dunning = dunning::invoice_paid(&account.dunning, now_ms);
                } else {
                    next.dunning = dunning::payment_failed(&account.dunning, now_ms);
                    effects.push(Effect::Email {
                        kind: "payment_failed",
                        params: json!({
                            "invoice": mirror.id, "number": mirror.number, "amount_due": mirror.amount_due,
                            "currency": mirror.currency, "hosted_invoice_url": mirror.hosted_invoice_url,
                            "attempt_count": mirror.attempt_count,
                        }),
                    });
                }
                if next.dunning.state != before {
                    effects.push(Effect::Action {
                        action: "dunning_changed",
                        detail: json!({"before": before.as_str(), "after": next.dunning.state.as_str(), "invoice": mirror.id}),
                    });
                }
                effects.push(Effect::UpsertInvoice(mirror));
                Outcome::Applied
            }
        },
        _ => Outcome::Ignored,
    };
    if outcome != Outcome::Applied {
        return Applied {
            account: account.clone(),
            effects: Vec::new(),
            outcome,
        };
    }
    Applied {
        account: next,
        effects,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::metering::plans::{seed_catalog, standard};

    fn plans() -> Vec<Plan> {
        let mut plans = seed_catalog();
        plans[1].stripe_price_id = Some("price_standard".into());
        plans
    }

    fn sub_event(kind: &str, created: i64, status: &str) -> Value {
        json!({"id": format!("evt_{created}"), "type": kind, "created": created, "data": {"object": {
            "id": "sub_1", "customer": "cus_1", "status": status, "current_period_start": 1, "current_period_end": 2,
            "items": {"data": [{"price": {"id": "price_standard"}}]}}}})
    }

    /// A subscription event at API version 2025-03-31 or later: the period on the items.
    /// `sub_old` was created at 50, any other subscription just before its event.
    fn sub_event_2025(kind: &str, created: i64, id: &str, status: &str) -> Value {
        let sub_created = if id == "sub_old" { 50 } else { created - 5 };
        json!({"id": format!("evt_{id}_{created}"), "type": kind, "created": created, "data": {"object": {
            "id": id, "customer": "cus_1", "status": status, "created": sub_created,
            "items": {"data": [{"price": {"id": "price_standard"},
                "current_period_start": 1_000, "current_period_end": 2_000}]}}}})
    }

    #[test]
    fn an_unpaid_checkout_moves_the_plan_only_once_the_payment_succeeds() {
        let checkout = |kind: &str, status: &str| {
            json!({"id": format!("evt_{kind}"), "type": kind, "created": 100, "data": {"object": {
                "id": "cs_1", "customer": "cus_1", "subscription": "sub_1", "payment_status": status,
                "metadata": {"plan": "standard"}}}})
        };
        let unpaid = apply(
            &BillingAccount::default(),
            &checkout("checkout.session.completed", "unpaid"),
            &plans(),
            None,
            0,
        );
        assert!(!unpaid
            .effects
            .iter()
            .any(|e| matches!(e, Effect::SetPlan(_))));
        assert!(unpaid
            .effects
            .contains(&Effect::LinkCustomer("cus_1".into())));
        let paid = apply(
            &unpaid.account,
            &checkout("checkout.session.async_payment_succeeded", "paid"),
            &plans(),
            None,
            0,
        );
        assert!(paid.effects.contains(&Effect::SetPlan(standard().id)));
    }

    #[test]
    fn the_period_is_read_from_the_items_at_newer_api_versions() {
        let a = apply(
            &BillingAccount::default(),
            &sub_event_2025("customer.subscription.updated", 200, "sub_2", "active"),
            &plans(),
            None,
            0,
        );
        assert_eq!(
            (a.account.current_period_start, a.account.current_period_end),
            (Some(1_000), Some(2_000))
        );
    }

    #[test]
    fn a_same_second_created_event_does_not_undo_an_update() {
        let updated = apply(
            &BillingAccount::default(),
            &sub_event("customer.subscription.updated", 200, "active"),
            &plans(),
            None,
            0,
        );
        let created = apply(
            &updated.account,
            &sub_event("customer.subscription.created", 200, "incomplete"),
            &plans(),
            None,
            0,
        );
        assert_eq!(created.outcome, Outcome::Stale);
        assert_eq!(
            created.account.subscription_status.as_deref(),
            Some("active")
        );
        // The other way round, the update wins as well.
        let first = apply(
            &BillingAccount::default(),
            &sub_event("customer.subscription.created", 200, "incomplete"),
            &plans(),
            None,
            0,
        );
        let then = apply(
            &first.account,
            &sub_event("customer.subscription.updated", 200, "active"),
            &plans(),
            None,
            0,
        );
        assert_eq!(then.account.subscription_status.as_deref(), Some("active"));
    }

    #[test]
    fn deleting_an_old_subscription_after_a_second_checkout_keeps_the_plan() {
        let old = apply(
            &BillingAccount::default(),
            &sub_event_2025("customer.subscription.updated", 100, "sub_old", "active"),
            &plans(),
            None,
            0,
        );
        let checkout = json!({"id": "evt_co", "type": "checkout.session.completed", "created": 500,
            "data": {"object": {"id": "cs_2", "customer": "cus_1", "subscription": "sub_new",
                "metadata": {"plan": "standard"}}}});
        let second = apply(&old.account, &checkout, &plans(), None, 0);
        let new = apply(
            &second.account,
            &sub_event_2025("customer.subscription.updated", 510, "sub_new", "active"),
            &plans(),
            None,
            0,
        );
        // The old subscription is updated (cancellation scheduled) and then deleted.
        for (kind, at, status) in [
            ("customer.subscription.updated", 600, "active"),
            ("customer.subscription.deleted", 700, "canceled"),
        ] {
            let e = apply(
                &new.account,
                &sub_event_2025(kind, at, "sub_old", status),
                &plans(),
                None,
                0,
            );
            assert_eq!(e.account, new.account, "{kind} of the old subscription");
            assert!(
                !e.effects.iter().any(|x| matches!(x, Effect::SetPlan(_))),
                "{kind}"
            );
        }
        // Deleting the current one does downgrade.
        let gone = apply(
            &new.account,
            &sub_event_2025("customer.subscription.deleted", 800, "sub_new", "canceled"),
            &plans(),
            None,
            0,
        );
        assert!(gone.effects.contains(&Effect::SetPlan(DEFAULT_PLAN.into())));
    }

    #[test]
    fn a_subscription_sets_the_plan_and_an_older_event_changes_nothing() {
        let a = apply(
            &BillingAccount::default(),
            &sub_event("customer.subscription.updated", 200, "active"),
            &plans(),
            None,
            0,
        );
        assert_eq!(a.outcome, Outcome::Applied);
        assert!(a.effects.contains(&Effect::SetPlan(standard().id)));
        assert_eq!(a.account.subscription_event_created, 200);
        let old = apply(
            &a.account,
            &sub_event("customer.subscription.deleted", 100, "canceled"),
            &plans(),
            None,
            0,
        );
        assert_eq!(old.outcome, Outcome::Stale);
        assert_eq!(old.account, a.account);
        let deleted = apply(
            &a.account,
            &sub_event("customer.subscription.deleted", 300, "canceled"),
            &plans(),
            None,
            0,
        );
        assert!(deleted
            .effects
            .contains(&Effect::SetPlan("developer".into())));
        assert_eq!(deleted.account.dunning.state, DunningState::Cancelled);
    }

    #[test]
    fn payment_failure_then_payment_moves_dunning_and_mirrors_the_invoice() {
        let inv = |kind: &str, created: i64, status: &str| json!({"type": kind, "created": created, "data": {"object": {"id": "in_1", "status": status, "amount_due": 4900, "currency": "usd"}}});
        let failed = apply(
            &BillingAccount::default(),
            &inv("invoice.payment_failed", 100, "open"),
            &plans(),
            None,
            5,
        );
        assert_eq!(failed.account.dunning.state, DunningState::Grace);
        assert!(failed.effects.iter().any(|e| matches!(
            e,
            Effect::Email {
                kind: "payment_failed",
                ..
            }
        )));
        let mirror = failed
            .effects
            .iter()
            .find_map(|e| match e {
                Effect::UpsertInvoice(m) => Some(m.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!((mirror.status.as_str(), mirror.amount_due), ("open", 4900));
        let paid = apply(
            &failed.account,
            &inv("invoice.paid", 200, "paid"),
            &plans(),
            Some(&mirror),
            9,
        );
        assert_eq!(paid.account.dunning.state, DunningState::Ok);
        let paid_mirror = paid
            .effects
            .iter()
            .find_map(|e| match e {
                Effect::UpsertInvoice(m) => Some(m.clone()),
                _ => None,
            })
            .unwrap();
        // The failure event arriving late does not reopen the paid invoice.
        let late = apply(
            &paid.account,
            &inv("invoice.payment_failed", 100, "open"),
            &plans(),
            Some(&paid_mirror),
            10,
        );
        assert_eq!(late.outcome, Outcome::Stale);
        assert_eq!(late.account.dunning.state, DunningState::Ok);
    }

    #[test]
    fn unknown_events_are_ignored() {
        let a = apply(
            &BillingAccount::default(),
            &json!({"type": "charge.refunded", "created": 1}),
            &plans(),
            None,
            0,
        );
        assert_eq!((a.outcome, a.effects.len()), (Outcome::Ignored, 0));
    }
}
