//! The HTTP API: thin handlers that authenticate, parse, call the store or the core, and map
//! errors to HTTP in one place (`error`). This module wires the OpenAPI service, the docs,
//! and the frame middleware; it holds no business rules.

mod admin;
mod admin_billing;
mod admin_disputes;
mod admin_orgs;
mod admin_overview;
mod anomaly_feed;
mod anomaly_status;
mod auth;
mod billing;
mod detector_settings;
mod diagnose;
pub mod error;
mod event_body;
mod explain;
mod feedback;
pub mod listener;
mod metrics;
mod middleware;
mod models;
mod monitors;
mod name;
mod orgs;
mod point_time;
mod rate_limit;
mod raw_json;
pub mod request_id;
mod routes;
mod session;
mod spec;
mod spec_links;
mod streams;
mod system;
mod triage;
mod usage;

use std::{
    sync::{atomic::AtomicBool, Arc},
    time::Instant,
};

use poem::{EndpointExt, Route};
use poem_openapi::OpenApiService;

use crate::store::{Store, StoreError};
use error::{ApiError, ApiResult};
pub use metrics::Metrics;
pub use rate_limit::{InFlightLimiter, RateLimiter};

/// What every handler can reach.
pub struct AppState {
    pub store: Store,
    pub admin_token: String,
    pub metrics: Metrics,
    pub max_body_bytes: usize,
    /// Body limit before the caller has authenticated.
    pub unauthenticated_body_bytes: usize,
    /// A request body must arrive within this.
    pub body_timeout: std::time::Duration,
    /// Where the store lives (backups are staged here).
    pub data_dir: std::path::PathBuf,
    /// Most events accepted in one stream batch.
    pub max_batch_events: usize,
    /// Days between dunning states after a failed payment.
    pub dunning_policy: crate::core::billing::dunning::DunningPolicy,
    /// Client for Stripe's API (checkout and portal sessions).
    pub stripe: crate::sync::stripe::StripeClient,
    /// Stripe's publishable key, for browsers.
    pub stripe_publishable_key: Option<String>,
    /// Event name of the Stripe meter that counts overage.
    pub meter_event_name: String,
    /// Public base URL, for the return links of Stripe pages.
    pub public_url: String,
    /// Browser origins allowed by CORS (empty: CORS off).
    pub cors_allowed_origins: Vec<String>,
    /// Stripe's webhook signing secret; webhooks are refused without it.
    pub stripe_webhook_secret: Option<String>,
    /// Per-organization request budget on detection and metering routes.
    pub rate_limiter: RateLimiter,
    /// Per-organization cap on detection batches processed at once.
    pub org_batches: InFlightLimiter,
    /// Status of the background workers.
    pub workers: Arc<crate::sync::Workers>,
    /// Signed-in admin UI sessions.
    pub sessions: session::Sessions,
    /// Where monitor webhooks may point.
    pub webhook_destinations: crate::sync::destination::DestinationPolicy,
    /// Tickets that open the live anomaly feed from a browser.
    pub live_tickets: anomaly_feed::LiveTickets,
    pub started_at: Instant,
    pub shutting_down: AtomicBool,
}

type Api = (
    system::SystemApi,
    admin::AdminApi,
    (
        admin_billing::AdminBillingApi,
        admin_disputes::AdminDisputesApi,
    ),
    admin_orgs::AdminOrgsApi,
    admin_overview::AdminOverviewApi,
    orgs::OrgApi,
    streams::StreamsApi,
    monitors::MonitorsApi,
    (
        anomaly_status::AnomalyStatusApi,
        feedback::FeedbackApi,
        anomaly_feed::AnomalyFeedApi,
    ),
    usage::UsageApi,
    billing::BillingApi,
    session::SessionApi,
);

fn service() -> OpenApiService<Api, ()> {
    OpenApiService::new(
        (
            system::SystemApi,
            admin::AdminApi,
            (
                admin_billing::AdminBillingApi,
                admin_disputes::AdminDisputesApi,
            ),
            admin_orgs::AdminOrgsApi,
            admin_overview::AdminOverviewApi,
            orgs::OrgApi,
            streams::StreamsApi,
            monitors::MonitorsApi,
            (
                anomaly_status::AnomalyStatusApi,
                feedback::FeedbackApi,
                anomaly_feed::AnomalyFeedApi,
            ),
            usage::UsageApi,
            billing::BillingApi,
            session::SessionApi,
        ),
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
    spec::finish(&service().spec())
}

/// The whole HTTP application.
pub fn app(state: Arc<AppState>) -> impl poem::Endpoint {
    let api = service();
    let docs = api.swagger_ui();
    let finished = openapi_json();
    let spec = poem::endpoint::make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(finished.clone())
    });
    Route::new()
        .nest("/", api)
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .nest("/admin", crate::ui::AdminUi)
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
    blocking_api(move || f().map_err(ApiError::from)).await
}

/// Runs CPU-bound work that also uses the store (e.g. detection over a batch) off the async
/// workers.
async fn blocking_api<T, F>(f: F) -> ApiResult<T>
where
    F: FnOnce() -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("worker task failed: {e}")))?
}

/// A detector restored from its stored state, or a fresh one when there is none. State written
/// by an older release restarts the baseline (with a warning) rather than being read with the
/// wrong layout; any other unreadable state is an internal error.
fn resume_detector<D>(
    what: &str,
    state: Option<&[u8]>,
    decode: impl Fn(&[u8]) -> Result<D, crate::core::detect::DetectError>,
    fresh: impl FnOnce() -> D,
) -> ApiResult<D> {
    use crate::core::detect::DetectError;
    match state.map(decode) {
        None => Ok(fresh()),
        Some(Ok(detector)) => Ok(detector),
        Some(Err(DetectError::UnsupportedStateVersion { found, supported }))
            if found < supported =>
        {
            tracing::warn!(
                detector = what,
                found,
                supported,
                "detector state from an older release; the baseline restarts"
            );
            Ok(fresh())
        }
        Some(Err(e)) => Err(ApiError::Internal(format!("{what}: {e}"))),
    }
}
