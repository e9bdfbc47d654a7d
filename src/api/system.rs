//! Liveness, readiness and metrics: the routes an orchestrator and Prometheus call.

use std::sync::{atomic::Ordering, Arc};

use poem::web::Data;
use poem_openapi::{payload::Json, payload::PlainText, Object, OpenApi};

use super::models::Tag;

use super::{error::ApiError, error::ApiResult, metrics::Gauges, AppState};

pub struct SystemApi;

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Health {
    /// Always `ok` when the process answers.
    status: String,
    version: String,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Readiness {
    /// `ready` when the store answers and the server is not shutting down.
    status: String,
    store_schema_version: u64,
}

#[OpenApi(tag = "Tag::System")]
impl SystemApi {
    /// The process is up.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    /// The store is open and answering and the server takes work.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, state: Data<&Arc<AppState>>) -> ApiResult<Json<Readiness>> {
        if state.shutting_down.load(Ordering::Relaxed) {
            return Err(ApiError::NotReady("the server is shutting down".into()));
        }
        state
            .store
            .ping()
            .map_err(|e| ApiError::NotReady(format!("the store does not answer: {e}")))?;
        if !state.store.writable() {
            return Err(ApiError::NotReady(
                "the store cannot take writes (disk full or failing?); it recovers by itself \
                 once writes succeed again"
                    .into(),
            ));
        }
        if !state.workers.all_running() {
            return Err(ApiError::NotReady("a background worker has stopped".into()));
        }
        let version = state
            .store
            .schema_version()
            .map_err(|e| ApiError::NotReady(format!("the store does not answer: {e}")))?;
        Ok(Json(Readiness {
            status: "ready".into(),
            store_schema_version: version,
        }))
    }

    /// Prometheus text exposition: requests and latencies by route and status, store size.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self, state: Data<&Arc<AppState>>) -> PlainText<String> {
        let gauges = Gauges {
            store_bytes: state.store.file_size(),
            uptime_secs: state.started_at.elapsed().as_secs_f64(),
            schema_version: state.store.schema_version().unwrap_or(0),
        };
        PlainText(state.metrics.render(&gauges))
    }
}
