//! The HTTP API: thin handlers that authenticate, parse, call the store or the core, and map
//! errors to HTTP in one place (`error`). This module wires the OpenAPI service, the docs,
//! and the frame middleware; it holds no business rules.

mod admin;
mod auth;
pub mod error;
mod metrics;
mod middleware;
mod models;
mod orgs;
pub mod request_id;
mod system;

use std::{
    sync::{atomic::AtomicBool, Arc},
    time::Instant,
};

use poem::{EndpointExt, Route};
use poem_openapi::OpenApiService;

use crate::store::{Store, StoreError};
use error::{ApiError, ApiResult};
pub use metrics::Metrics;

/// What every handler can reach.
pub struct AppState {
    pub store: Store,
    pub admin_token: String,
    pub metrics: Metrics,
    pub max_body_bytes: usize,
    pub started_at: Instant,
    pub shutting_down: AtomicBool,
}

type Api = (system::SystemApi, admin::AdminApi, orgs::OrgApi);

fn service() -> OpenApiService<Api, ()> {
    OpenApiService::new(
        (system::SystemApi, admin::AdminApi, orgs::OrgApi),
        "Driftlock",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Self-hosted, explainable compression-based anomaly detection with pooled, \
         usage-based billing. Errors are always JSON: `{code, message, request_id}`.",
    )
    .server("/")
}

/// The OpenAPI 3 document, as served at `/openapi.json`.
pub fn openapi_json() -> String {
    service().spec()
}

/// The whole HTTP application.
pub fn app(state: Arc<AppState>) -> impl poem::Endpoint {
    let api = service();
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    Route::new()
        .nest("/", api)
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .with(middleware::Frame {
            state: state.clone(),
        })
        .data(state)
}

/// Runs a store call off the async workers (redb writes wait for fsync).
async fn blocking<T, F>(f: F) -> ApiResult<T>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("store task failed: {e}")))?
        .map_err(ApiError::from)
}
