//! The frame around every request: request id, body-size limit (declared or streamed), JSON
//! rendering of every error poem or a handler raises, metrics and the access log.
//!
//! The body is read in full (up to the limit) before the route runs, so a request refused
//! early (401, 415, 404) still has its body taken off the socket: the client reads the error
//! instead of a connection reset, and the connection stays usable. The credential is checked
//! first: a caller that has not authenticated gets a small limit (the Stripe webhook, signed
//! rather than authenticated, 1 MiB), so nobody without a key can make the server buffer
//! large bodies, and every body must arrive within the body timeout (408 otherwise).

use std::{sync::Arc, time::Instant};

use futures_util::StreamExt;
use poem::{http::HeaderValue, Body, Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::OperationId;

use super::{error::ApiError, request_id, AppState};

/// Body limit of the Stripe webhook (Stripe's events are well under this).
const STRIPE_WEBHOOK_BODY_BYTES: usize = 1 << 20;

pub struct Frame {
    pub state: Arc<AppState>,
}

impl<E: Endpoint> Middleware<E> for Frame {
    type Output = FrameEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        FrameEndpoint {
            inner,
            state: self.state.clone(),
        }
    }
}

pub struct FrameEndpoint<E> {
    inner: E,
    state: Arc<AppState>,
}

/// Headers every answer carries, and CORS for an allowed origin.
fn secure(response: &mut Response, allowed_origin: Option<&str>) {
    let headers = response.headers_mut();
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if let Some(origin) = allowed_origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        headers.insert("access-control-allow-origin", origin);
        headers.insert("vary", HeaderValue::from_static("Origin"));
        headers.insert(
            "access-control-expose-headers",
            HeaderValue::from_static("x-request-id, retry-after"),
        );
    }
}

/// The answer to a CORS preflight from an allowed origin.
fn preflight(origin: &str, id: &str) -> Response {
    let mut response = Response::builder()
        .status(poem::http::StatusCode::NO_CONTENT)
        .header(
            "access-control-allow-methods",
            "GET, POST, PUT, PATCH, DELETE",
        )
        .header(
            "access-control-allow-headers",
            "authorization, content-type, idempotency-key, x-request-id",
        )
        .header("access-control-max-age", "600")
        .header("x-request-id", id)
        .finish();
    secure(&mut response, Some(origin));
    response
}

/// Label for requests that matched no operation.
fn route_label(path: &str) -> &'static str {
    match path {
        "/openapi.json" => "openapi_json",
        p if p.starts_with("/docs") => "docs",
        p if p.starts_with("/admin") => "admin_ui",
        _ => "unmatched",
    }
}

/// The whole body, counted as it streams in (a declared length is not trusted), or the error
/// to answer when it passes `limit` bytes or cannot be read. Past the limit, up to `drain`
/// bytes in all are read and dropped (nothing is kept), so a client that writes its whole
/// body before reading still gets the answer rather than a reset.
async fn read_bounded(body: Body, limit: usize, drain: usize) -> Result<bytes::Bytes, ApiError> {
    let mut stream = body.into_bytes_stream();
    let mut bytes = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::BadRequest(format!("the request body could not be read: {e}"))
        })?;
        seen += chunk.len();
        if seen > limit {
            bytes = Vec::new();
            if seen > drain {
                break;
            }
            continue;
        }
        bytes.extend_from_slice(&chunk);
    }
    if seen > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(bytes::Bytes::from(bytes))
}

impl<E: Endpoint> Endpoint for FrameEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let id = request_id::choose(
            req.headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok()),
        );
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let authenticated = super::auth::presents_valid_credential(&self.state, &mut req);
        let json_body = req
            .content_type()
            .is_some_and(super::raw_json::is_json_media_type);
        let (limit, too_large) = if authenticated {
            let limit = self.state.max_body_bytes;
            (limit, ApiError::PayloadTooLarge { limit })
        } else if path == "/v1/stripe/webhook" {
            let limit = STRIPE_WEBHOOK_BODY_BYTES.min(self.state.max_body_bytes);
            (limit, ApiError::PayloadTooLarge { limit })
        } else {
            let limit = self.state.unauthenticated_body_bytes;
            (limit, ApiError::UnauthenticatedBodyTooLarge { limit })
        };
        let body_timeout = self.state.body_timeout;
        let origin = req
            .headers()
            .get("origin")
            .and_then(|v| v.to_str().ok())
            .filter(|o| self.state.cors_allowed_origins.iter().any(|a| a == o))
            .map(str::to_string);
        if let (Some(origin), true) = (&origin, req.method() == poem::http::Method::OPTIONS) {
            return Ok(preflight(origin, &id));
        }

        let mut resp = request_id::scope(id.clone(), async {
            let declared = req
                .headers()
                .get(poem::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let drain = self.state.max_body_bytes;
            if declared.is_some_and(|len| len > drain as u64) {
                return (too_large.render(), None);
            }
            let read = read_bounded(req.take_body(), limit, drain);
            // Kept (shared, not copied) to name the field when the body does not parse.
            let body = match tokio::time::timeout(body_timeout, read).await {
                Ok(Ok(body)) => {
                    req.set_body(Body::from(body.clone()));
                    body
                }
                Ok(Err(ApiError::PayloadTooLarge { .. })) => return (too_large.render(), None),
                Ok(Err(refusal)) => return (refusal.render(), None),
                Err(_) => {
                    let refusal = ApiError::BodyTimeout {
                        secs: body_timeout.as_secs(),
                    };
                    return (refusal.render(), None);
                }
            };
            // poem-openapi reads `null` as an absent optional field; the spec allows it
            // nowhere it does not say `nullable`, so it is refused before anything runs.
            if authenticated && json_body && super::diagnose::may_hold_null(&body) {
                if let Some(op) = super::diagnose::operation_for(&method, &path) {
                    if let Some((field, rule)) = super::diagnose::body_violation(op, &body) {
                        let refusal = ApiError::validation(&field, rule);
                        return (refusal.render(), Some(OperationId(op)));
                    }
                }
            }
            let (resp, op) = match self.inner.call(req).await {
                Ok(out) => {
                    let resp = out.into_response();
                    let op = resp.data::<OperationId>().copied();
                    (resp, op)
                }
                Err(err) => {
                    let op = err.data::<OperationId>().copied();
                    let mut error = ApiError::from_poem(&err, &method, &path);
                    if let (ApiError::InvalidJson(_), Some(op)) = (&error, op) {
                        if let Some((field, rule)) = super::diagnose::body_violation(op.0, &body) {
                            error = ApiError::validation(&field, rule);
                        }
                    }
                    (error.render(), op)
                }
            };
            (resp, op)
        })
        .await;

        let (ref mut response, op) = resp;
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert("x-request-id", value);
        }
        secure(response, origin.as_deref());
        let status = response.status().as_u16();
        let route = op.map(|o| o.0).unwrap_or_else(|| route_label(&path));
        let elapsed = started.elapsed();
        self.state.metrics.record(route, &method, status, elapsed);
        tracing::debug!(request_id = %id, %method, %path, route, status, micros = elapsed.as_micros() as u64, "request");
        Ok(resp.0)
    }
}
