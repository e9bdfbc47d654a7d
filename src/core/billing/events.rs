//! Stripe events to billing state. Events may come twice (the store drops repeats by event
//! id) and out of order: subscription state only moves to an event at least as new as the
//! last one applied (by the event's `created`), and an invoice's mirror only takes an event at
//! least as new as the one it holds, so an older event never overwrites newer state.

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
    pub dunning: Dunning,
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
    let stale_subscription = created < account.subscription_event_created;
    let outcome = match kind {
        "checkout.session.completed" => {
            if let Some(customer) = id_of(&obj, "customer") {
                next.customer_id = Some(customer.clone());
                effects.push(Effect::LinkCustomer(customer));
            }
            if let Some(sub) = id_of(&obj, "subscription") {
                next.subscription_id = Some(sub);
            }
            if let Some(plan) = obj.pointer("/metadata/plan").and_then(Value::as_str) {
                if plans.iter().any(|p| p.id == plan) && !stale_subscription {
                    effects.push(Effect::SetPlan(plan.to_string()));
                }
            }
            effects.push(Effect::Action {
                action: "checkout_completed",
                detail: json!({"session": str_of(&obj, "id")}),
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
            next.subscription_id = str_of(&obj, "id");
            next.subscription_status = str_of(&obj, "status");
            next.current_period_start = obj.get("current_period_start").and_then(Value::as_i64);
            next.current_period_end = obj.get("current_period_end").and_then(Value::as_i64);
            if let Some(customer) = id_of(&obj, "customer") {
                next.customer_id = Some(customer.clone());
                effects.push(Effect::LinkCustomer(customer));
            }
            let live = matches!(
                next.subscription_status.as_deref(),
                Some("active" | "trialing" | "past_due")
            );
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
