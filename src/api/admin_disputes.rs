//! Operator routes for disputed detections (issue 22): the dispute queue across orgs
//! (`GET /v1/admin/disputes`), an operator's decision on a dispute that waits for one
//! (`POST /v1/admin/disputes/{dispute_id}/decision`), and an org's dispute figures
//! (`GET /v1/admin/orgs/{org_id}/disputes/summary`). The org's own view of its disputes is
//! `GET /v1/disputes`. The decisions and writes are the store's (`store::feedback`).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    Enum, Object, OpenApi,
};

use super::{
    auth::{AdminAuth, OrgAuth},
    blocking, blocking_api,
    error::{ApiError, ApiResult},
    feedback::{DisputeState, DisputeView},
    models::{decode_cursor, encode_cursor, Tag},
    name::{valid_name, Name},
    AppState,
};
use crate::{
    clock,
    core::feedback::DisputeStatus,
    store::{page_limit, DisputeCounts, Store},
};

/// Disputes, newest first.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DisputeList {
    pub items: Vec<DisputeView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// What the operator decides.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[oai(rename_all = "snake_case")]
pub enum DisputeDecision {
    /// Credit the detection: it leaves the usage of the period it was counted in.
    Accept,
    /// Keep it billed.
    Reject,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DecideDisputeRequest {
    pub decision: DisputeDecision,
    /// Why, kept with the dispute and shown to the org.
    pub reason: Option<Name>,
}

/// An org's disputes by status, and what they credited.
#[derive(Object)]
pub struct DisputeSummary {
    pub organization_id: String,
    pub accepted: u64,
    pub awaiting_operator: u64,
    pub rejected: u64,
    pub withdrawn: u64,
    /// Overage detections that accepted disputes took off the bill.
    pub overage_credited: u64,
    /// Credited overage already reported to Stripe, not yet netted from a later meter
    /// batch.
    pub credit_to_net: u64,
}

fn summary(store: &Store, org_id: &str) -> ApiResult<DisputeSummary> {
    let DisputeCounts {
        accepted,
        awaiting_operator,
        rejected,
        withdrawn,
        overage_credited,
    } = store.dispute_counts(org_id)?;
    Ok(DisputeSummary {
        organization_id: org_id.to_string(),
        accepted,
        awaiting_operator,
        rejected,
        withdrawn,
        overage_credited,
        credit_to_net: store.meter_credit(org_id)?,
    })
}

/// `dp_7` -> 7; 404 naming the dispute otherwise.
fn dispute_number(id: &str) -> ApiResult<u64> {
    super::triage::anomaly_number("dp", id).map_err(|_| ApiError::NotFound {
        entity: "dispute",
        id: id.to_string(),
    })
}

fn cursor_number(cursor: Option<&str>) -> ApiResult<Option<u64>> {
    decode_cursor(cursor)?
        .map(|c| {
            c.parse::<u64>()
                .map_err(|_| ApiError::validation("cursor", "is not a cursor this list gave"))
        })
        .transpose()
}

fn list(
    store: &Store,
    org_id: Option<&str>,
    status: Option<DisputeState>,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> ApiResult<DisputeList> {
    let before = cursor_number(cursor)?;
    let status = status.map(DisputeStatus::from);
    let (items, next) = store.list_disputes(org_id, status, before, page_limit(limit))?;
    Ok(DisputeList {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor: encode_cursor(next.map(|n| n.to_string())),
    })
}

pub struct AdminDisputesApi;

#[OpenApi(prefix_path = "/v1", tag = "Tag::Admin")]
impl AdminDisputesApi {
    /// Disputed detections of every org (or one), newest first; `status=awaiting_operator`
    /// is the queue an operator works through.
    #[oai(
        path = "/admin/disputes",
        method = "get",
        operation_id = "listDisputes"
    )]
    async fn admin_list(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        status: Query<Option<DisputeState>>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:-]{1,128}$"))] organization_id: Query<
            Option<String>,
        >,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<DisputeList>> {
        let store = state.store.clone();
        let found = blocking_api(move || {
            list(
                &store,
                organization_id.0.as_deref(),
                status.0,
                cursor.0.as_deref(),
                limit.0,
            )
        })
        .await?;
        Ok(Json(found))
    }

    /// Decide a dispute that waits for an operator: `accept` takes the detection out of the
    /// usage of the period it was counted in (netting overage already sent to Stripe from
    /// later meter batches), `reject` keeps it billed. Either is a billing action; a dispute
    /// that does not wait is refused (409 `dispute_not_waiting`).
    #[oai(
        path = "/admin/disputes/:dispute_id/decision",
        method = "post",
        operation_id = "decideDispute"
    )]
    async fn decide(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        #[oai(validator(pattern = r"^dp_[1-9][0-9]{0,19}$"))] dispute_id: Path<String>,
        body: Json<DecideDisputeRequest>,
    ) -> ApiResult<Json<DisputeView>> {
        let id = dispute_number(&dispute_id)?;
        let reason = body
            .reason
            .as_ref()
            .map(|r| valid_name("reason", &r.0))
            .transpose()?;
        let accept = body.decision == DisputeDecision::Accept;
        let store = state.store.clone();
        let actor = auth.actor.clone();
        let now = clock::now_ms();
        let decided =
            blocking(move || store.decide_dispute(id, accept, reason, &actor, now)).await?;
        Ok(Json(decided.into()))
    }

    /// An org's dispute figures: how many were accepted, wait, were rejected or withdrawn,
    /// the overage they credited, and the credit still to net from meter batches.
    #[oai(
        path = "/admin/orgs/:org_id/disputes/summary",
        method = "get",
        operation_id = "getOrgDisputeSummary"
    )]
    async fn admin_summary(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:-]{1,128}$"))] org_id: Path<String>,
    ) -> ApiResult<Json<DisputeSummary>> {
        let store = state.store.clone();
        let figures = blocking_api(move || {
            store.get_org(&org_id)?;
            summary(&store, &org_id)
        })
        .await?;
        Ok(Json(figures))
    }

    /// The calling org's disputes, newest first, and where each stands.
    #[oai(
        path = "/disputes",
        method = "get",
        operation_id = "listOwnDisputes",
        tag = "Tag::Anomalies"
    )]
    async fn own_list(
        &self,
        auth: OrgAuth,
        state: Data<&Arc<AppState>>,
        status: Query<Option<DisputeState>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<DisputeList>> {
        let store = state.store.clone();
        let org_id = auth.0.scope.org_id().to_string();
        let found = blocking_api(move || {
            list(
                &store,
                Some(&org_id),
                status.0,
                cursor.0.as_deref(),
                limit.0,
            )
        })
        .await?;
        Ok(Json(found))
    }
}
