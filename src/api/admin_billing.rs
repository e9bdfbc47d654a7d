//! Operator routes for metering and billing: an org's plan, quota policy and usage, the
//! billing actions log and the email outbox.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    ApiResponse, Object, OpenApi,
};

use super::{
    auth::AdminAuth,
    blocking,
    error::{ApiError, ApiResult},
    models::DateTime,
    models::Text,
    models::{decode_cursor, encode_cursor, Organization, Tag},
    usage::{report, QuotaPolicyView, UsageReport},
    AppState,
};
use crate::{
    clock,
    core::metering::{plans::Plan, quota::QuotaPolicy},
    store::{page_limit, EmailStatus},
};

pub struct AdminBillingApi;

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct SetPlanRequest {
    /// `developer`, `standard` or `growth`.
    plan: Text,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct BillingActionView {
    id: u64,
    at: DateTime,
    /// Absent for changes to the plan catalog.
    organization_id: Option<String>,
    /// Who or what caused it: `admin`, `key:<id>`, `metering`, ...
    actor: String,
    action: String,
    detail: serde_json::Value,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct BillingActionList {
    /// Newest first.
    items: Vec<BillingActionView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct OutboxEmailView {
    id: u64,
    organization_id: Option<String>,
    to: Option<String>,
    kind: String,
    /// `pending`, `sent`, `failed` or `no_recipient`.
    status: String,
    attempts: u32,
    last_error: Option<String>,
    created_at: DateTime,
    params: serde_json::Value,
}

impl From<crate::store::OutboxEmail> for OutboxEmailView {
    fn from(e: crate::store::OutboxEmail) -> Self {
        OutboxEmailView {
            id: e.id,
            organization_id: e.org_id,
            to: e.to,
            kind: e.kind,
            status: match e.status {
                EmailStatus::Pending => "pending",
                EmailStatus::Sent => "sent",
                EmailStatus::Failed => "failed",
                EmailStatus::NoRecipient => "no_recipient",
            }
            .into(),
            attempts: e.attempts,
            last_error: e.last_error,
            created_at: DateTime::from_ms(e.created_at_ms),
            params: e.params,
        }
    }
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct TestEmailRequest {
    /// Where to send the test message.
    to: Text,
}

#[derive(ApiResponse)]
enum EmailQueued {
    /// Queued; the email worker delivers it.
    #[oai(status = 202)]
    Queued(Json<OutboxEmailView>),
}

/// A background worker's status.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct WorkerView {
    name: String,
    /// `idle`, `busy` or `stopped`.
    state: String,
    passes: u64,
    items: u64,
    errors: u64,
    last_error: Option<String>,
    last_pass_at: Option<DateTime>,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct WorkerList {
    items: Vec<WorkerView>,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct OutboxEmailList {
    items: Vec<OutboxEmailView>,
    next_cursor: Option<String>,
}

/// A plan of the catalog.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct PlanView {
    /// Lowercase id, e.g. `standard`.
    id: String,
    name: String,
    monthly_price_cents: u64,
    included_detections: u64,
    /// Price per detection past the included amount, in thousandths of a cent; absent when
    /// overage is not sold.
    overage_millicents: Option<u64>,
    /// Stripe price of the monthly fee.
    stripe_price_id: Option<String>,
    /// Stripe metered price for overage.
    stripe_metered_price_id: Option<String>,
    /// Disputes (false positives) accepted at once up to this share of a period's
    /// detections, in percent; beyond it they wait for an operator.
    dispute_share_percent: u32,
}

impl From<Plan> for PlanView {
    fn from(p: Plan) -> Self {
        PlanView {
            id: p.id,
            name: p.name,
            monthly_price_cents: p.monthly_price_cents,
            included_detections: p.included_detections,
            overage_millicents: p.overage_millicents,
            stripe_price_id: p.stripe_price_id,
            stripe_metered_price_id: p.stripe_metered_price_id,
            dispute_share_percent: p.dispute_share_percent,
        }
    }
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct PlanList {
    items: Vec<PlanView>,
}

/// A plan's terms; the id comes from the path.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct PutPlanRequest {
    /// Not blank, at most 100 characters (surrounding white space is trimmed off).
    #[oai(validator(min_length = 1, max_length = 100, pattern = r"\S"))]
    name: Text,
    monthly_price_cents: u64,
    #[oai(validator(minimum(value = "1")))]
    included_detections: u64,
    overage_millicents: Option<u64>,
    stripe_price_id: Option<Text>,
    stripe_metered_price_id: Option<Text>,
    /// Share of a period's detections that may be disputed without an operator, 0 to 100
    /// percent (default 5).
    #[oai(validator(maximum(value = "100")))]
    dispute_share_percent: Option<u32>,
}

#[OpenApi(prefix_path = "/v1/admin", tag = "Tag::Admin")]
impl AdminBillingApi {
    /// The plan catalog, cheapest first.
    #[oai(path = "/plans", method = "get", operation_id = "listPlans")]
    async fn plans(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
    ) -> ApiResult<Json<PlanList>> {
        let plans = state.store.list_plans()?;
        Ok(Json(PlanList {
            items: plans.into_iter().map(Into::into).collect(),
        }))
    }

    /// Create or edit a plan, including its Stripe price ids. Organizations on it are repriced
    /// from their next counted detection; the change is a billing action.
    #[oai(path = "/plans/:plan_id", method = "put", operation_id = "putPlan")]
    async fn put_plan(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        /// 1 to 40 characters of a-z, 0-9, '-' or '_'.
        #[oai(validator(pattern = r"^[a-z0-9_-]{1,40}$"))]
        plan_id: Path<String>,
        body: Json<PutPlanRequest>,
    ) -> ApiResult<Json<PlanView>> {
        let body = body.0;
        let plan = Plan {
            id: plan_id.0,
            name: body.name.trim().to_string(),
            monthly_price_cents: body.monthly_price_cents,
            included_detections: body.included_detections,
            overage_millicents: body.overage_millicents,
            stripe_price_id: body.stripe_price_id.map(String::from),
            stripe_metered_price_id: body.stripe_metered_price_id.map(String::from),
            dispute_share_percent: body
                .dispute_share_percent
                .unwrap_or(crate::core::feedback::DEFAULT_DISPUTE_SHARE_PERCENT),
        };
        plan.validate()
            .map_err(|e| ApiError::validation("plan", e.to_string()))?;
        let store = state.store.clone();
        let now = clock::now_ms();
        let saved = plan.clone();
        blocking(move || store.put_plan(&saved, &auth.actor, now)).await?;
        Ok(Json(plan.into()))
    }

    /// Move an organization to another plan. The period's usage is kept and repriced.
    #[oai(
        path = "/orgs/:org_id/plan",
        method = "put",
        operation_id = "setOrganizationPlan"
    )]
    async fn set_plan(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        org_id: Path<String>,
        body: Json<SetPlanRequest>,
    ) -> ApiResult<Json<Organization>> {
        let plan_id = body.0.plan;
        let store = state.store.clone();
        let now = clock::now_ms();
        let org = blocking(move || store.set_plan(&org_id, &plan_id, &auth.actor, now)).await?;
        Ok(Json(org.into()))
    }

    /// An organization's quota policy (the default one when never set).
    #[oai(
        path = "/orgs/:org_id/quota-policy",
        method = "get",
        operation_id = "getQuotaPolicy"
    )]
    async fn get_policy(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        org_id: Path<String>,
    ) -> ApiResult<Json<QuotaPolicyView>> {
        let snapshot = state.store.meter_snapshot(&org_id, clock::now_ms())?;
        Ok(Json((&snapshot.policy).into()))
    }

    /// Replace an organization's quota policy. It takes effect on the next detection call.
    #[oai(
        path = "/orgs/:org_id/quota-policy",
        method = "put",
        operation_id = "setQuotaPolicy"
    )]
    async fn set_policy(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        org_id: Path<String>,
        body: Json<QuotaPolicyView>,
    ) -> ApiResult<Json<QuotaPolicyView>> {
        let snapshot = state.store.meter_snapshot(&org_id, clock::now_ms())?;
        let policy = QuotaPolicy::from(&body.0);
        policy
            .validate(&snapshot.plan)
            .map_err(|e| ApiError::validation("policy", e.to_string()))?;
        let store = state.store.clone();
        let now = clock::now_ms();
        let saved = policy.clone();
        blocking(move || store.set_quota_policy(&org_id, &saved, &auth.actor, now)).await?;
        Ok(Json((&policy).into()))
    }

    /// An organization's usage in the current period.
    #[oai(
        path = "/orgs/:org_id/usage",
        method = "get",
        operation_id = "getOrganizationUsage"
    )]
    async fn usage(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        org_id: Path<String>,
    ) -> ApiResult<Json<UsageReport>> {
        let s = state.store.meter_snapshot(&org_id, clock::now_ms())?;
        Ok(Json(report(&s.org.id, &s.plan, &s.policy, &s.usage)))
    }

    /// The billing actions log, newest first, optionally for one organization.
    #[oai(
        path = "/billing-actions",
        method = "get",
        operation_id = "listBillingActions"
    )]
    async fn billing_actions(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        org_id: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        /// The `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<BillingActionList>> {
        let after = decode_cursor(cursor.0.as_deref())?;
        let page = state.store.list_billing_actions(
            org_id.0.as_deref(),
            after.as_deref(),
            page_limit(limit.0),
        )?;
        Ok(Json(BillingActionList {
            next_cursor: encode_cursor(page.next_after),
            items: page
                .items
                .into_iter()
                .map(|a| BillingActionView {
                    id: a.id,
                    at: DateTime::from_ms(a.at_ms),
                    organization_id: a.org_id,
                    actor: a.actor,
                    action: a.action,
                    detail: a.detail,
                })
                .collect(),
        }))
    }

    /// The email outbox, oldest first.
    #[oai(
        path = "/outbox/email",
        method = "get",
        operation_id = "listEmailOutbox"
    )]
    async fn emails(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<OutboxEmailList>> {
        let after = decode_cursor(cursor.0.as_deref())?
            .map(|c| {
                c.parse::<u64>()
                    .map_err(|_| ApiError::BadRequest("cursor is not valid".into()))
            })
            .transpose()?;
        let page = state.store.list_emails(after, page_limit(limit.0))?;
        Ok(Json(OutboxEmailList {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: encode_cursor(page.next_after),
        }))
    }

    /// Put a failed email back in the queue with a fresh set of attempts.
    #[oai(
        path = "/outbox/email/:email_id/retry",
        method = "post",
        operation_id = "retryEmail"
    )]
    async fn retry_email(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        email_id: Path<u64>,
    ) -> ApiResult<Json<OutboxEmailView>> {
        let store = state.store.clone();
        let now = clock::now_ms();
        let actor = auth.actor.clone();
        let row = blocking(move || store.retry_email(email_id.0, &actor, now)).await?;
        Ok(Json(row.into()))
    }

    /// Queue a test email, to check delivery end to end.
    #[oai(path = "/email/test", method = "post", operation_id = "sendTestEmail")]
    async fn test_email(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        body: Json<TestEmailRequest>,
    ) -> ApiResult<EmailQueued> {
        let to = super::models::valid_email("to", &body.to)?;
        let store = state.store.clone();
        let now = clock::now_ms();
        let row = blocking(move || store.enqueue_test_email(&to, &auth.actor, now)).await?;
        Ok(EmailQueued::Queued(Json(row.into())))
    }

    /// Background workers and how they are doing.
    #[oai(path = "/workers", method = "get", operation_id = "listWorkers")]
    async fn workers(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
    ) -> ApiResult<Json<WorkerList>> {
        Ok(Json(WorkerList {
            items: state
                .workers
                .snapshot()
                .into_iter()
                .map(|w| WorkerView {
                    name: w.name.into(),
                    state: w.state.into(),
                    passes: w.passes,
                    items: w.items,
                    errors: w.errors,
                    last_error: w.last_error,
                    last_pass_at: w.last_pass_at_ms.map(DateTime::from_ms),
                })
                .collect(),
        }))
    }
}
