//! Billing routes: the Stripe webhook (signature verified before anything is parsed, each
//! event applied once), an organization's billing status and invoices, and the operator's
//! dunning override and list of received events.

use super::name::Name;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{
    param::{Header, Path, Query},
    payload::Json,
    ApiRequest, Enum, Object, OpenApi,
};
use serde_json::Value;

use super::{
    auth::{AdminAuth, OrgAuth},
    blocking,
    error::{ApiError, ApiResult},
    models::DateTime,
    models::Tag,
    models::Text,
    raw_json::RawJson,
    AppState,
};
use crate::{
    clock,
    core::billing::{
        dunning::{advance, DunningState},
        events::{BillingAccount, InvoiceMirror},
        meter_resend, reconcile, signature,
    },
    store::{page_limit, Received},
    sync::{stripe::StripeError, stripe_requests},
};

pub struct BillingApi;

/// A Stripe event, exactly as Stripe sent it (the signature covers these bytes).
#[derive(ApiRequest)]
enum StripePayload {
    Json(RawJson),
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct WebhookAck {
    received: bool,
    /// True when this event id was already processed: nothing changed.
    duplicate: bool,
    /// `applied`, `stale`, `ignored` or `unmatched`.
    outcome: String,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[oai(rename_all = "snake_case")]
enum Dunning {
    Ok,
    Grace,
    PastDue,
    Suspended,
    Cancelled,
}

impl From<DunningState> for Dunning {
    fn from(s: DunningState) -> Self {
        match s {
            DunningState::Ok => Dunning::Ok,
            DunningState::Grace => Dunning::Grace,
            DunningState::PastDue => Dunning::PastDue,
            DunningState::Suspended => Dunning::Suspended,
            DunningState::Cancelled => Dunning::Cancelled,
        }
    }
}

impl From<Dunning> for DunningState {
    fn from(s: Dunning) -> Self {
        match s {
            Dunning::Ok => DunningState::Ok,
            Dunning::Grace => DunningState::Grace,
            Dunning::PastDue => DunningState::PastDue,
            Dunning::Suspended => DunningState::Suspended,
            Dunning::Cancelled => DunningState::Cancelled,
        }
    }
}

/// An organization's billing status.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub(super) struct BillingStatus {
    /// `ok` and `grace` serve normally; `past_due` serves with a warning; `suspended` refuses
    /// detection calls (402); `cancelled` is back on the developer plan.
    dunning_state: Dunning,
    /// When the current dunning state began; absent for an organization never dunned.
    dunning_since: Option<DateTime>,
    stripe_customer_id: Option<String>,
    subscription_id: Option<String>,
    subscription_status: Option<String>,
    current_period_end: Option<DateTime>,
}

pub(super) fn status(account: &BillingAccount, state: &AppState) -> BillingStatus {
    let dunning = advance(&account.dunning, &state.dunning_policy, clock::now_ms());
    BillingStatus {
        dunning_state: dunning.state.into(),
        dunning_since: (dunning.since_ms > 0).then(|| DateTime::from_ms(dunning.since_ms)),
        stripe_customer_id: account.customer_id.clone(),
        subscription_id: account.subscription_id.clone(),
        subscription_status: account.subscription_status.clone(),
        current_period_end: account
            .current_period_end
            .map(|s| DateTime::from_ms(s * 1000)),
    }
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub(super) struct Invoice {
    id: String,
    number: Option<String>,
    /// Stripe's status: `draft`, `open`, `paid`, `uncollectible` or `void`.
    status: String,
    currency: String,
    /// In the currency's smallest unit (cents).
    amount_due: i64,
    amount_paid: i64,
    attempt_count: i64,
    hosted_invoice_url: Option<String>,
    created: DateTime,
}

impl From<InvoiceMirror> for Invoice {
    fn from(i: InvoiceMirror) -> Self {
        Invoice {
            id: i.id,
            number: i.number,
            status: i.status,
            currency: i.currency,
            amount_due: i.amount_due,
            amount_paid: i.amount_paid,
            attempt_count: i.attempt_count,
            hosted_invoice_url: i.hosted_invoice_url,
            created: DateTime::from_ms(i.created * 1000),
        }
    }
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct InvoiceList {
    items: Vec<Invoice>,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct SetDunningRequest {
    state: Dunning,
    /// Why, for the billing actions log.
    note: Name,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct StripeEventView {
    id: String,
    #[oai(rename = "type")]
    kind: String,
    created: DateTime,
    received_at: DateTime,
    organization_id: Option<String>,
    /// `applied`, `stale` (older than the state held), `ignored` (a type Driftlock does not
    /// act on) or `unmatched` (no organization for it).
    outcome: String,
    /// `processed`, or `failed` when the event could not be applied.
    status: String,
    /// Why it failed.
    error: Option<String>,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct StripeEventList {
    items: Vec<StripeEventView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

#[derive(Object)]
struct CheckoutRequest {
    /// The plan to subscribe to: `standard` or `growth`.
    plan: Text,
    /// A promotion code such as `LAUNCH50`; without one, the checkout page accepts codes.
    promo_code: Option<Text>,
}

#[derive(Object)]
struct StripeSession {
    id: String,
    /// Where to send the customer.
    url: String,
}

fn stripe_failed(e: StripeError) -> ApiError {
    match e {
        StripeError::NotConfigured => ApiError::StripeOffline,
        other => ApiError::StripeFailed(other.to_string()),
    }
}

#[derive(Object)]
struct ReconcileRequest {
    /// Queue a correction for every customer Stripe has fewer detections for.
    #[oai(default)]
    fix: bool,
}

#[derive(Object)]
struct ReconcileLine {
    organization_id: String,
    stripe_customer_id: String,
    /// Overage detections Driftlock delivered to Stripe, stamped before `settled_until`
    /// (corrections aside: they replace detections Stripe lost).
    delivered: u64,
    /// Delivered detections stamped in the last hour: Stripe's summaries may not show them
    /// yet, so they are left out of the comparison.
    settling: u64,
    /// Overage detections on their way (batched or not yet).
    in_flight: u64,
    /// What Stripe's meter summary reports for the customer up to `settled_until`.
    stripe: u64,
    /// `match`, `stripe_missing` or `stripe_extra`.
    finding: String,
    difference: u64,
    /// What was done: `none`, `correction_queued`, `correction_settling` (an earlier
    /// correction is still queued or settling: nothing new is queued) or `needs_review`.
    action: String,
}

#[derive(Object)]
struct ReconcileReport {
    meter_event_name: String,
    /// End of the compared window (RFC 3339, a minute boundary an hour or more ago).
    settled_until: DateTime,
    lines: Vec<ReconcileLine>,
}

/// What a browser needs to talk to Stripe for this server.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct BillingConfig {
    /// Whether this server talks to Stripe (a secret key is configured).
    online: bool,
    /// Stripe's publishable key, for Stripe.js.
    publishable_key: Option<String>,
}

#[OpenApi(tag = "Tag::Billing")]
impl BillingApi {
    /// Whether billing is online, and Stripe's publishable key.
    #[oai(
        path = "/v1/billing/config",
        method = "get",
        operation_id = "getBillingConfig"
    )]
    async fn config(
        &self,
        _auth: OrgAuth,
        state: Data<&Arc<AppState>>,
    ) -> ApiResult<Json<BillingConfig>> {
        Ok(Json(BillingConfig {
            online: state.stripe.configured(),
            publishable_key: state.stripe_publishable_key.clone(),
        }))
    }

    /// Compare the overage delivered to Stripe's Billing Meter with what Stripe reports per
    /// customer; with `fix`, queue corrections where Stripe has less.
    #[oai(
        path = "/v1/admin/billing/reconcile",
        method = "post",
        operation_id = "reconcileBilling"
    )]
    async fn reconcile(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        body: Json<ReconcileRequest>,
    ) -> ApiResult<Json<ReconcileReport>> {
        let store = state.store.clone();
        let client = state.stripe.clone();
        let event_name = state.meter_event_name.clone();
        let fix = body.fix;
        let now = clock::now_ms();
        let until = reconcile::settled_until(now.div_euclid(1000));
        let lines = tokio::task::spawn_blocking(
            move || -> Result<Result<Vec<ReconcileLine>, StripeError>, crate::store::StoreError> {
                use crate::store::MeterStatus;
                let rows = store.meter_events()?;
                let pending = store.meter_pending()?;
                let meter_id = match client.find_meter(&event_name) {
                    Ok(Some(id)) => id,
                    Ok(None) => {
                        return Ok(Err(StripeError::Api {
                            status: 404,
                            code: None,
                            message: format!("no Stripe meter with event name {event_name}"),
                        }))
                    }
                    Err(e) => return Ok(Err(e)),
                };
                let past_resend =
                    |since: Option<i64>| since.is_some() && !meter_resend::may_resend(since, now);
                let mut customers: Vec<(String, String)> = rows
                    .iter()
                    .map(|r| (r.org_id.clone(), r.customer_id.clone()))
                    .collect();
                customers.sort();
                customers.dedup();
                let mut lines = Vec::new();
                for (org, customer) in customers {
                    let mine: Vec<reconcile::Sent> = rows
                        .iter()
                        .filter(|r| r.customer_id == customer)
                        .filter(|r| {
                            r.status != MeterStatus::Failed
                                || r.correction
                                || past_resend(r.unclear_since_ms)
                        })
                        .map(|r| reconcile::Sent {
                            value: r.value,
                            timestamp: r.timestamp,
                            // A batch no longer resent after an unclear attempt may be on
                            // Stripe: it is expected there, and corrected if it is not.
                            delivered: r.status == MeterStatus::Delivered
                                || past_resend(r.unclear_since_ms),
                            correction: r.correction,
                        })
                        .collect();
                    let in_flight: u64 = rows
                        .iter()
                        .filter(|r| r.customer_id == customer && r.status == MeterStatus::Pending)
                        .map(|r| r.value)
                        .sum::<u64>()
                        + pending
                            .iter()
                            .filter(|(o, _)| *o == org)
                            .map(|(_, v)| *v)
                            .sum::<u64>();
                    let request =
                        stripe_requests::meter_event_summaries(&meter_id, &customer, 0, until);
                    let summaries = match client.fetch(&request) {
                        Ok(s) => s,
                        Err(e) => return Ok(Err(e)),
                    };
                    let stripe_total: u64 = summaries["data"]
                        .as_array()
                        .map(|d| {
                            d.iter()
                                .filter_map(|s| s["aggregated_value"].as_f64())
                                .sum::<f64>() as u64
                        })
                        .unwrap_or(0);
                    let r = reconcile::reconcile_customer(&mine, stripe_total, until);
                    let (name, difference, action) = match r.finding {
                        reconcile::Finding::Match => ("match", 0, "none"),
                        reconcile::Finding::StripeMissing(n) => {
                            let action = match (fix, r.may_correct) {
                                (true, true) => {
                                    store.enqueue_meter_correction(&org, &customer, n, now)?;
                                    "correction_queued"
                                }
                                (_, false) => "correction_settling",
                                (false, true) => "none",
                            };
                            ("stripe_missing", n, action)
                        }
                        reconcile::Finding::StripeExtra(n) => ("stripe_extra", n, "needs_review"),
                    };
                    lines.push(ReconcileLine {
                        organization_id: org,
                        stripe_customer_id: customer,
                        delivered: r.delivered,
                        settling: r.settling,
                        in_flight,
                        stripe: stripe_total,
                        finding: name.into(),
                        difference,
                        action: action.into(),
                    });
                }
                Ok(Ok(lines))
            },
        )
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??
        .map_err(stripe_failed)?;
        Ok(Json(ReconcileReport {
            meter_event_name: state.meter_event_name.clone(),
            settled_until: DateTime::from_ms(until * 1000),
            lines,
        }))
    }

    /// Start a Stripe Checkout for a plan (base price and metered overage), with the
    /// organization as client reference; answers the page's URL.
    #[oai(
        path = "/v1/billing/checkout",
        method = "post",
        operation_id = "createCheckout"
    )]
    async fn checkout(
        &self,
        auth: OrgAuth,
        state: Data<&Arc<AppState>>,
        body: Json<CheckoutRequest>,
    ) -> ApiResult<Json<StripeSession>> {
        let scope = auth.0.scope;
        let org = scope.get_org()?;
        let plan = state
            .store
            .get_plan(&body.plan)
            .map_err(|_| ApiError::validation("plan", format!("unknown plan {:?}", body.plan)))?;
        let Some(price) = plan.stripe_price_id.clone() else {
            return Err(ApiError::validation(
                "plan",
                format!(
                    "plan {} has no Stripe price; it needs no checkout or its price id is not set",
                    plan.id
                ),
            ));
        };
        let account = scope.billing_account()?;
        if account.has_live_subscription() {
            return Err(ApiError::Conflict(format!(
                "the organization already has a {} subscription ({}); change its plan in the billing portal (POST /v1/billing/portal) instead of starting a second checkout",
                account.subscription_status.as_deref().unwrap_or("live"),
                account.subscription_id.as_deref().unwrap_or("?"),
            )));
        }
        let client = state.stripe.clone();
        let promo = match body.promo_code.as_deref() {
            None => None,
            Some(code) => {
                let promotion = state.store.promotion(code).map_err(|_| {
                    ApiError::validation("promo_code", format!("{code:?} is not a promotion code"))
                })?;
                if !promotion.applies_to(&plan.id) {
                    return Err(ApiError::validation(
                        "promo_code",
                        format!("{} does not apply to plan {}", promotion.code, plan.id),
                    ));
                }
                Some(promotion)
            }
        };
        let checkout = stripe_requests::Checkout {
            org_id: org.id.clone(),
            plan_id: plan.id.clone(),
            price,
            metered_price: plan.stripe_metered_price_id.clone(),
            return_url: format!("{}/admin/", state.public_url),
            billing_cycle_anchor:
                crate::core::metering::period::Period::containing(clock::now_ms()).next_start_secs(),
            payer: match (&account.customer_id, &org.billing_email) {
                (Some(customer), _) => stripe_requests::Payer::Customer(customer.clone()),
                (None, Some(email)) => stripe_requests::Payer::Email(email.clone()),
                (None, None) => stripe_requests::Payer::Unknown,
            },
            promotion_code: None,
        };
        let idempotency_key = format!("dl-checkout-{}-{}", org.id, super::request_id::current());
        let session = tokio::task::spawn_blocking(move || {
            let promotion_code = match promo {
                None => None,
                Some(promotion) => match promotion.stripe_promotion_code_id {
                    Some(id) => Some(id),
                    None => match client.active_promotion_code(&promotion.code)? {
                        Some(id) => Some(id),
                        None => {
                            return Ok(Err(ApiError::Conflict(format!(
                                "promotion {} is not on Stripe yet; try again in a minute",
                                promotion.code
                            ))))
                        }
                    },
                },
            };
            let request = stripe_requests::checkout_session(&stripe_requests::Checkout {
                promotion_code,
                ..checkout
            });
            client.send(&request, &idempotency_key).map(Ok)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(stripe_failed)??;
        Ok(Json(StripeSession {
            id: session["id"].as_str().unwrap_or_default().to_string(),
            url: session["url"].as_str().unwrap_or_default().to_string(),
        }))
    }

    /// A Stripe customer portal session for the organization (payment methods, invoices,
    /// plan changes); answers its URL.
    #[oai(
        path = "/v1/billing/portal",
        method = "post",
        operation_id = "createPortalSession"
    )]
    async fn portal(
        &self,
        auth: OrgAuth,
        state: Data<&Arc<AppState>>,
    ) -> ApiResult<Json<StripeSession>> {
        let account = auth.0.scope.billing_account()?;
        let Some(customer) = account.customer_id else {
            return Err(ApiError::Conflict(
                "the organization has no Stripe customer yet; complete a checkout first".into(),
            ));
        };
        let client = state.stripe.clone();
        let return_url = format!("{}/admin/", state.public_url);
        let request = stripe_requests::portal_session(&customer, &return_url);
        let idempotency_key = format!("dl-portal-{customer}-{}", super::request_id::current());
        let session = tokio::task::spawn_blocking(move || client.send(&request, &idempotency_key))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(stripe_failed)?;
        Ok(Json(StripeSession {
            id: session["id"].as_str().unwrap_or_default().to_string(),
            url: session["url"].as_str().unwrap_or_default().to_string(),
        }))
    }

    /// Stripe webhook endpoint. The `Stripe-Signature` header is verified (HMAC-SHA256 over
    /// `t.payload`, 5-minute tolerance) before the body is parsed; each event id is applied
    /// once, and events older than the state held change nothing.
    #[oai(
        path = "/v1/stripe/webhook",
        method = "post",
        operation_id = "stripeWebhook"
    )]
    async fn webhook(
        &self,
        state: Data<&Arc<AppState>>,
        #[oai(name = "Stripe-Signature")] stripe_signature: Header<Option<String>>,
        body: StripePayload,
    ) -> ApiResult<Json<WebhookAck>> {
        let secret = state
            .stripe_webhook_secret
            .clone()
            .ok_or(ApiError::StripeNotConfigured)?;
        let StripePayload::Json(RawJson(payload)) = body;
        let now = clock::now_ms();
        signature::verify(stripe_signature.0.as_deref(), &payload, &secret, now / 1000)
            .map_err(|e| ApiError::InvalidSignature(e.to_string()))?;
        let event: Value =
            serde_json::from_slice(&payload).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
        if !event.get("id").is_some_and(Value::is_string) {
            return Err(ApiError::validation("id", "a Stripe event has a string id"));
        }
        let store = state.store.clone();
        let received = blocking(move || store.receive_stripe_event(&event, now)).await?;
        Ok(Json(match received {
            Received::Duplicate => WebhookAck {
                received: true,
                duplicate: true,
                outcome: "duplicate".into(),
            },
            Received::Recorded(r) => WebhookAck {
                received: true,
                duplicate: false,
                outcome: r.outcome,
            },
        }))
    }

    /// The organization's billing status: dunning state, Stripe customer and subscription.
    #[oai(
        path = "/v1/billing",
        method = "get",
        operation_id = "getBillingStatus"
    )]
    async fn billing(
        &self,
        auth: OrgAuth,
        state: Data<&Arc<AppState>>,
    ) -> ApiResult<Json<BillingStatus>> {
        Ok(Json(status(&auth.0.scope.billing_account()?, &state)))
    }

    /// The organization's invoices (mirrored from Stripe), newest first.
    #[oai(
        path = "/v1/billing/invoices",
        method = "get",
        operation_id = "listInvoices"
    )]
    async fn invoices(&self, auth: OrgAuth) -> ApiResult<Json<InvoiceList>> {
        Ok(Json(InvoiceList {
            items: auth
                .0
                .scope
                .invoices()?
                .into_iter()
                .map(Into::into)
                .collect(),
        }))
    }

    /// Set an organization's dunning state by hand (a billing action with the note).
    #[oai(
        path = "/v1/admin/orgs/:org_id/dunning",
        method = "put",
        operation_id = "setDunning"
    )]
    async fn set_dunning(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        org_id: Path<String>,
        body: Json<SetDunningRequest>,
    ) -> ApiResult<Json<BillingStatus>> {
        let note = super::models::valid_name("note", &body.note.0)?;
        let store = state.store.clone();
        let target = body.state.into();
        let now = clock::now_ms();
        let account =
            blocking(move || store.set_dunning(&org_id, target, &note, &auth.actor, now)).await?;
        Ok(Json(status(&account, &state)))
    }

    /// Stripe events received, most recent first, with what each did.
    #[oai(
        path = "/v1/admin/stripe/events",
        method = "get",
        operation_id = "listStripeEvents"
    )]
    async fn events(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        /// The `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<StripeEventList>> {
        let after = super::models::decode_cursor(cursor.0.as_deref())?;
        let page = state
            .store
            .list_stripe_events(after.as_deref(), page_limit(limit.0))?;
        Ok(Json(StripeEventList {
            next_cursor: super::models::encode_cursor(page.next_after),
            items: page
                .items
                .into_iter()
                .map(|e| StripeEventView {
                    id: e.id,
                    kind: e.kind,
                    created: DateTime::from_ms(e.created * 1000),
                    received_at: DateTime::from_ms(e.received_at_ms),
                    organization_id: e.org_id,
                    status: if e.outcome == "unmatched" {
                        "failed"
                    } else {
                        "processed"
                    }
                    .into(),
                    error: (e.outcome == "unmatched").then(|| {
                        "no organization matches the event's client reference, subscription \
                         metadata or customer"
                            .into()
                    }),
                    outcome: e.outcome,
                })
                .collect(),
        }))
    }
}
