//! Admin views of one organization's resources, for the operator UI: billing status, usage
//! reset (a test operation), streams, monitors and a monitor's chart data. Each handler opens
//! the org's scoped store view after checking the org exists, then reuses the org API's own
//! page builders, so both APIs answer the same shapes.

use super::name::Name;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    Object, OpenApi,
};

use super::{
    auth::AdminAuth,
    billing::{status, BillingStatus},
    blocking,
    error::ApiResult,
    models::{valid_name, Tag},
    monitors::{self, AnomalyList, MonitorList, Series},
    streams::{self, StreamList},
    usage::{report, UsageReport},
    AppState,
};
use crate::{clock, store::OrgScope};

pub struct AdminOrgsApi;

#[derive(Object)]
struct ResetUsageRequest {
    /// Why, for the billing actions log (the action is marked as a test operation).
    note: Name,
}

/// The org's scoped view, or 404 when there is no such org.
fn org_scope(state: &AppState, org_id: &str) -> ApiResult<OrgScope> {
    state.store.get_org(org_id)?;
    Ok(state.store.org(org_id))
}

#[OpenApi(prefix_path = "/v1/admin/orgs", tag = "Tag::Admin")]
impl AdminOrgsApi {
    /// An organization's billing status: dunning state, Stripe customer and subscription.
    #[oai(
        path = "/:org_id/billing",
        method = "get",
        operation_id = "getOrganizationBilling"
    )]
    async fn billing(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        org_id: Path<String>,
    ) -> ApiResult<Json<BillingStatus>> {
        let scope = org_scope(&state, &org_id)?;
        Ok(Json(status(&scope.billing_account()?, &state)))
    }

    /// Zero the organization's usage for the current period, alerts included. Meant for
    /// testing an installation: it is logged as a billing action marked `test_operation`, and
    /// usage already sent to Stripe is not taken back.
    #[oai(
        path = "/:org_id/usage/reset",
        method = "post",
        operation_id = "resetOrganizationUsage"
    )]
    async fn reset_usage(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        org_id: Path<String>,
        body: Json<ResetUsageRequest>,
    ) -> ApiResult<Json<UsageReport>> {
        let note = valid_name("note", &body.note.0)?;
        let store = state.store.clone();
        let now = clock::now_ms();
        let org = org_id.0.clone();
        let actor = auth.actor.clone();
        blocking(move || store.reset_usage(&org, &note, &actor, now)).await?;
        let s = state.store.meter_snapshot(&org_id, now)?;
        Ok(Json(report(&s.org.id, &s.plan, &s.policy, &s.usage)))
    }

    /// The organization's streams, by id.
    #[oai(
        path = "/:org_id/streams",
        method = "get",
        operation_id = "listOrganizationStreams"
    )]
    async fn streams(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        org_id: Path<String>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<StreamList>> {
        let scope = org_scope(&state, &org_id)?;
        Ok(Json(streams::list_page(
            &scope,
            limit.0,
            cursor.0.as_deref(),
        )?))
    }

    /// The organization's monitors.
    #[oai(
        path = "/:org_id/monitors",
        method = "get",
        operation_id = "listOrganizationMonitors"
    )]
    async fn monitors(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        org_id: Path<String>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<MonitorList>> {
        let scope = org_scope(&state, &org_id)?;
        Ok(Json(monitors::list_page(
            &scope,
            limit.0,
            cursor.0.as_deref(),
        )?))
    }

    /// A monitor's recent points with their scores (downsampled to `max_points`, default 500).
    #[oai(
        path = "/:org_id/monitors/:monitor_id/series",
        method = "get",
        operation_id = "getOrganizationMonitorSeries"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn series(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        org_id: Path<String>,
        monitor_id: Path<String>,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        #[oai(validator(minimum(value = "10"), maximum(value = "20000")))] max_points: Query<
            Option<u32>,
        >,
    ) -> ApiResult<Json<Series>> {
        let scope = org_scope(&state, &org_id)?;
        let window = (from.0.as_deref(), to.0.as_deref());
        Ok(Json(monitors::series_of(
            &scope,
            &monitor_id,
            window,
            max_points.0,
        )?))
    }

    /// A monitor's stored anomalies with their explanations, oldest first.
    #[oai(
        path = "/:org_id/monitors/:monitor_id/anomalies",
        method = "get",
        operation_id = "listOrganizationMonitorAnomalies"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn anomalies(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        org_id: Path<String>,
        monitor_id: Path<String>,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<AnomalyList>> {
        let scope = org_scope(&state, &org_id)?;
        let window = (from.0.as_deref(), to.0.as_deref());
        let page = (limit.0, cursor.0.as_deref());
        Ok(Json(monitors::anomaly_page(
            &scope,
            &monitor_id,
            window,
            page,
        )?))
    }
}
