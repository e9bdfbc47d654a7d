//! The operator's whole-installation views: the overview (subscriptions by plan, detections,
//! overage, estimated revenue, dunning, outbox failures, detections per day), every org's
//! invoices, and the outbox of metered usage for Stripe with its retry. The sums are the
//! core's (`core::metering::overview`); this file reads and renders.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    Object, OpenApi,
};

use super::{
    auth::AdminAuth,
    billing::Invoice,
    blocking,
    error::ApiResult,
    models::DateTime,
    models::{decode_cursor, encode_cursor, Tag},
    AppState,
};
use crate::{
    clock,
    core::metering::{
        overview::{summarize, Standing},
        period::Period,
    },
    store::{page_limit, MeterEventRow, MeterStatus},
};

pub struct AdminOverviewApi;

/// Days of history in the overview's chart.
const CHART_DAYS: usize = 30;

#[derive(Object)]
struct PlanFiguresView {
    plan: String,
    organizations: u64,
    /// Subscriptions Stripe reports `active`, `trialing` or `past_due`.
    active_subscriptions: u64,
    detections: u64,
    overage_detections: u64,
    overage_cents: u64,
    /// Base price of billed subscriptions plus overage, in cents.
    estimated_revenue_cents: u64,
}

#[derive(Object)]
struct DayCount {
    /// UTC day, `YYYY-MM-DD`.
    day: String,
    detections: u64,
}

/// Key figures of the current billing period.
#[derive(Object)]
struct Overview {
    period_start: DateTime,
    period_end: DateTime,
    plans: Vec<PlanFiguresView>,
    detections: u64,
    overage_detections: u64,
    overage_cents: u64,
    estimated_revenue_cents: u64,
    /// Organizations whose dunning state is not `ok`.
    orgs_in_dunning: u64,
    /// Monitor webhook deliveries given up on.
    webhook_failures: u64,
    webhooks_pending: u64,
    /// Emails given up on.
    email_failures: u64,
    emails_pending: u64,
    /// Batches of metered usage Stripe did not take after every attempt.
    stripe_meter_failures: u64,
    stripe_meter_pending: u64,
    /// Stripe events that matched no organization.
    stripe_event_failures: u64,
    /// Detections per UTC day over the last 30 days, oldest first.
    detections_per_day: Vec<DayCount>,
}

#[derive(Object)]
struct AdminInvoice {
    organization_id: String,
    invoice: Invoice,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct AdminInvoiceList {
    items: Vec<AdminInvoice>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct MeterEventView {
    id: u64,
    organization_id: String,
    customer_id: String,
    /// Overage detections in this batch.
    value: u64,
    /// Stripe's identifier for the meter event (stable across retries).
    identifier: String,
    /// `pending`, `delivered` or `failed`.
    status: String,
    attempts: u32,
    last_error: Option<String>,
    next_attempt_at: DateTime,
    /// A correction queued by reconciliation.
    correction: bool,
    /// When an attempt first got no clear answer (Stripe may hold the batch). Stripe
    /// recognises the identifier for 24 hours, so the batch is resent only within 23 hours
    /// of this; after that `driftlock billing reconcile` settles it.
    unclear_since: Option<DateTime>,
}

impl From<MeterEventRow> for MeterEventView {
    fn from(r: MeterEventRow) -> Self {
        MeterEventView {
            id: r.id,
            organization_id: r.org_id,
            customer_id: r.customer_id,
            value: r.value,
            identifier: r.identifier,
            status: match r.status {
                MeterStatus::Pending => "pending",
                MeterStatus::Delivered => "delivered",
                MeterStatus::Failed => "failed",
            }
            .into(),
            attempts: r.attempts,
            last_error: r.last_error,
            next_attempt_at: DateTime::from_ms(r.next_attempt_at_ms),
            correction: r.correction,
            unclear_since: r.unclear_since_ms.map(DateTime::from_ms),
        }
    }
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct MeterEventList {
    items: Vec<MeterEventView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

#[OpenApi(prefix_path = "/v1/admin", tag = "Tag::Admin")]
impl AdminOverviewApi {
    /// Key figures of the current period for the whole installation.
    #[oai(path = "/overview", method = "get", operation_id = "getOverview")]
    async fn overview(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
    ) -> ApiResult<Json<Overview>> {
        let store = state.store.clone();
        let now = clock::now_ms();
        let (catalog, standings, health, daily, stripe_events) = blocking(move || {
            Ok((
                store.list_plans()?,
                store.org_standings(now)?,
                store.outbox_health()?,
                store.daily_detections(None, now, CHART_DAYS)?,
                store.list_stripe_events(None, usize::MAX)?.items,
            ))
        })
        .await?;
        let input: Vec<Standing<'_>> = standings
            .iter()
            .map(|s| Standing {
                plan: &s.snapshot.plan,
                usage: &s.snapshot.usage,
                dunning: &s.account.dunning,
                subscription_status: s.account.subscription_status.as_deref(),
            })
            .collect();
        let o = summarize(&catalog, &input, &state.dunning_policy, now);
        let period = Period::containing(now);
        Ok(Json(Overview {
            period_start: DateTime::from_ms(period.start_ms),
            period_end: DateTime::from_ms(period.end_ms),
            plans: o
                .plans
                .into_iter()
                .map(|p| PlanFiguresView {
                    plan: p.plan_id,
                    organizations: p.organizations,
                    active_subscriptions: p.active_subscriptions,
                    detections: p.detections,
                    overage_detections: p.overage_detections,
                    overage_cents: p.overage_cents,
                    estimated_revenue_cents: p.estimated_revenue_cents,
                })
                .collect(),
            detections: o.detections,
            overage_detections: o.overage_detections,
            overage_cents: o.overage_cents,
            estimated_revenue_cents: o.estimated_revenue_cents,
            orgs_in_dunning: o.orgs_in_dunning,
            webhook_failures: health.webhooks_failed,
            webhooks_pending: health.webhooks_pending,
            email_failures: health.emails_failed,
            emails_pending: health.emails_pending,
            stripe_meter_failures: health.meter_events_failed,
            stripe_meter_pending: health.meter_events_pending,
            stripe_event_failures: stripe_events
                .iter()
                .filter(|e| e.outcome == "unmatched")
                .count() as u64,
            detections_per_day: daily
                .into_iter()
                .map(|(day_ms, detections)| DayCount {
                    day: clock::format_rfc3339(day_ms)[..10].to_string(),
                    detections,
                })
                .collect(),
        }))
    }

    /// Every organization's mirrored invoices, newest first.
    #[oai(path = "/invoices", method = "get", operation_id = "listAllInvoices")]
    async fn invoices(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        /// The `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<AdminInvoiceList>> {
        let after = decode_cursor(cursor.0.as_deref())?;
        let page = state
            .store
            .all_invoices(after.as_deref(), page_limit(limit.0))?;
        Ok(Json(AdminInvoiceList {
            next_cursor: encode_cursor(page.next_after),
            items: page
                .items
                .into_iter()
                .map(|(organization_id, invoice)| AdminInvoice {
                    organization_id,
                    invoice: invoice.into(),
                })
                .collect(),
        }))
    }

    /// The outbox of metered usage for Stripe, newest first.
    #[oai(
        path = "/outbox/stripe",
        method = "get",
        operation_id = "listStripeOutbox"
    )]
    async fn meter_outbox(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        /// The `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<MeterEventList>> {
        let after = decode_cursor(cursor.0.as_deref())?;
        let rows = state.store.meter_events()?;
        let newest_first = rows
            .into_iter()
            .rev()
            .map(|r| Ok((crate::store::listing_key(r.id), r)));
        let page =
            crate::store::page_newest_first(newest_first, after.as_deref(), page_limit(limit.0))?;
        Ok(Json(MeterEventList {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: encode_cursor(page.next_after),
        }))
    }

    /// Put a failed batch of metered usage back in the queue with a fresh set of attempts.
    #[oai(
        path = "/outbox/stripe/:event_id/retry",
        method = "post",
        operation_id = "retryStripeOutbox"
    )]
    async fn retry_meter(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        event_id: Path<u64>,
    ) -> ApiResult<Json<MeterEventView>> {
        let store = state.store.clone();
        let now = clock::now_ms();
        let actor = auth.actor.clone();
        let row = blocking(move || store.retry_meter_event(event_id.0, &actor, now)).await?;
        Ok(Json(row.into()))
    }
}
