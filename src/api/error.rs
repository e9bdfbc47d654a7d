//! The one table of error codes. Every failure the API can answer is a variant of `ApiError`,
//! each with its HTTP status and machine-readable `code`; the body is always
//! `{"code", "message", "request_id"}`. Internal details are logged, never returned. Errors
//! raised by poem itself (unknown route, bad JSON, wrong content type) are mapped here too.

use poem::{
    error::{MethodNotAllowedError, NotFoundError, ReadBodyError, ResponseError},
    http::StatusCode,
    IntoResponse, Response,
};
use poem_openapi::{
    error::{
        AuthorizationError, ContentTypeError, ParseMultipartError, ParseParamError, ParsePathError,
        ParseRequestPayloadError,
    },
    payload::Json,
    registry::{MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::ToJSON,
    ApiResponse, Object,
};

use super::request_id;
use crate::store::StoreError;

/// The JSON body of every error answer.
#[derive(Debug, Clone, Object, serde::Deserialize)]
#[oai(skip_serializing_if_is_none)]
pub struct ErrorBody {
    /// Machine-readable reason, snake_case, stable across releases.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The id of the request, also in the `X-Request-Id` header; quote it in support requests.
    pub request_id: String,
    /// Numbers behind the error, for codes that have them (e.g. `quota_exceeded`).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<ErrorDetails>,
}

/// The numbers behind an error; which are present depends on the code.
#[derive(Debug, Clone, Default, Object, serde::Deserialize, serde::Serialize)]
#[oai(skip_serializing_if_is_none)]
pub struct ErrorDetails {
    /// Detections used this period (`quota_exceeded`, `quota_would_pass`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<u64>,
    /// Detections this request would add (`quota_would_pass`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adding: Option<u64>,
    /// The limit reached: detections (quota codes) or things held (`limit_reached`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Seconds until the request may succeed (quota codes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// The end of the period, RFC 3339 (quota codes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_end: Option<super::models::DateTime>,
    /// Events in the batch (`batch_too_large`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    /// Most events a batch may hold (`batch_too_large`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_events: Option<u64>,
    /// What is counted, in the plural (`limit_reached`): `API keys`, `streams`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what: Option<String>,
    /// The server setting that sets the limit (`limit_reached`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
    #[error("method not allowed on this route; allowed: {allow}")]
    MethodNotAllowed { allow: String },
    #[error("{0}")]
    Conflict(String),
    /// A conflict with the current state that has a code of its own (`dispute_settled`,
    /// `dispute_not_waiting`, `rule_limit`).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error("the request body is not valid JSON for this operation: {0}")]
    InvalidJson(String),
    #[error("the request body is not UTF-8 text: {0}")]
    InvalidEncoding(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error(
        "the request carries no valid credential, and bodies from callers that have not \
         authenticated are read up to {limit} bytes; send `Authorization: Bearer <key>`"
    )]
    UnauthenticatedBodyTooLarge { limit: usize },
    #[error("the request body did not arrive within {secs} s")]
    BodyTimeout { secs: u64 },
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    #[error("the batch has {got} events; at most {max} are accepted per request")]
    BatchTooLarge { got: usize, max: usize },
    #[error("{0}")]
    InvalidEvent(String),
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    #[error(
        "the organization used {used} detections this period, the limit of its quota policy is \
         {limit}; detection calls resume when the period ends in {retry_after_secs} s, or when \
         the plan or quota policy changes"
    )]
    QuotaExceeded {
        used: u64,
        limit: u64,
        retry_after_secs: u64,
        period_end: String,
    },
    #[error(
        "the organization used {used} detections this period and this call's {adding} would \
         pass the limit of its quota policy, {limit}; nothing of the call was kept; detection \
         calls resume when the period ends in {retry_after_secs} s, or when the plan or quota \
         policy changes (a smaller batch may still fit)"
    )]
    QuotaWouldPass {
        used: u64,
        adding: u64,
        limit: u64,
        retry_after_secs: u64,
        period_end: String,
    },
    #[error("the organization's account is suspended for non-payment since {since}; pay the open invoice to resume detection")]
    AccountSuspended { since: String },
    #[error("{0}")]
    InvalidSignature(String),
    #[error(
        "Stripe webhooks are not configured on this server (set DRIFTLOCK_STRIPE_WEBHOOK_SECRET)"
    )]
    StripeNotConfigured,
    #[error("billing runs offline on this server: no Stripe secret key is configured")]
    StripeOffline,
    #[error("Stripe refused or could not be reached: {0}")]
    StripeFailed(String),
    #[error("too many requests for this organization; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    OrgLimit(crate::store::OrgLimit),
    #[error("{0}")]
    NotReady(String),
    #[error(
        "the data directory cannot take writes right now (disk full or failing?); nothing \
         from this request was kept; retry shortly"
    )]
    StorageUnavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The table: HTTP status and code of every variant.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::RouteNotFound { .. } => (StatusCode::NOT_FOUND, "route_not_found"),
            ApiError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Refused { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::InvalidEncoding(_) => (StatusCode::BAD_REQUEST, "invalid_encoding"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::PayloadTooLarge { .. } | ApiError::UnauthenticatedBodyTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::BodyTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::BatchTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large"),
            ApiError::InvalidEvent(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_event"),
            ApiError::IdempotencyKeyReused => (StatusCode::CONFLICT, "idempotency_key_reused"),
            ApiError::QuotaExceeded { .. } | ApiError::QuotaWouldPass { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded")
            }
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            // A limit that frees up with time is a 429; a count of things held is a 409.
            ApiError::OrgLimit(limit) if limit.retry_after_secs.is_some() => {
                (StatusCode::TOO_MANY_REQUESTS, "limit_reached")
            }
            ApiError::OrgLimit(_) => (StatusCode::CONFLICT, "limit_reached"),
            ApiError::AccountSuspended { .. } => {
                (StatusCode::PAYMENT_REQUIRED, "account_suspended")
            }
            ApiError::InvalidSignature(_) => (StatusCode::BAD_REQUEST, "invalid_signature"),
            ApiError::StripeNotConfigured => (StatusCode::NOT_FOUND, "stripe_not_configured"),
            ApiError::StripeOffline => (StatusCode::CONFLICT, "stripe_offline"),
            ApiError::StripeFailed(_) => (StatusCode::BAD_GATEWAY, "stripe_error"),
            ApiError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ApiError::StorageUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }

    fn body(&self) -> ErrorBody {
        let (_, code) = self.status_and_code();
        let details = match self {
            ApiError::QuotaExceeded {
                used,
                limit,
                retry_after_secs,
                period_end,
            } => Some(ErrorDetails {
                used: Some(*used),
                limit: Some(*limit),
                retry_after_secs: Some(*retry_after_secs),
                period_end: Some(super::models::DateTime(period_end.clone())),
                ..ErrorDetails::default()
            }),
            ApiError::QuotaWouldPass {
                used,
                adding,
                limit,
                retry_after_secs,
                period_end,
            } => Some(ErrorDetails {
                used: Some(*used),
                adding: Some(*adding),
                limit: Some(*limit),
                retry_after_secs: Some(*retry_after_secs),
                period_end: Some(super::models::DateTime(period_end.clone())),
                ..ErrorDetails::default()
            }),
            ApiError::BatchTooLarge { got, max } => Some(ErrorDetails {
                events: Some(*got as u64),
                max_events: Some(*max as u64),
                ..ErrorDetails::default()
            }),
            ApiError::OrgLimit(limit) => Some(ErrorDetails {
                limit: Some(limit.limit),
                what: Some(limit.what.to_string()),
                setting: Some(limit.setting.to_string()),
                ..ErrorDetails::default()
            }),
            _ => None,
        };
        ErrorBody {
            code: code.to_string(),
            message: self.to_string(),
            request_id: request_id::current(),
            details,
        }
    }

    /// Seconds for the `Retry-After` header, for errors that have one.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::QuotaExceeded {
                retry_after_secs, ..
            }
            | ApiError::QuotaWouldPass {
                retry_after_secs, ..
            }
            | ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            ApiError::OrgLimit(limit) => limit.retry_after_secs,
            ApiError::StorageUnavailable(_) => Some(5),
            _ => None,
        }
    }

    /// Maps an error raised by poem or poem-openapi (routing, parsing, auth extraction).
    pub fn from_poem(err: &poem::Error, method: &str, path: &str) -> ApiError {
        if let Some(api) = err.downcast_ref::<ApiError>() {
            return api.clone();
        }
        if err.is::<NotFoundError>() {
            return ApiError::RouteNotFound {
                method: method.to_string(),
                path: path.to_string(),
            };
        }
        if err.is::<MethodNotAllowedError>() {
            return ApiError::MethodNotAllowed {
                allow: super::routes::allowed_methods(path).join(", "),
            };
        }
        if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
            return ApiError::InvalidJson(plain_types(&e.reason));
        }
        if let Some(ReadBodyError::Utf8(e)) = err.downcast_ref::<ReadBodyError>() {
            return ApiError::InvalidEncoding(e.to_string());
        }
        if let Some(e) = err.downcast_ref::<ContentTypeError>() {
            return ApiError::UnsupportedMediaType(e.to_string());
        }
        if err.is::<AuthorizationError>() {
            return ApiError::Unauthorized(
                "missing or malformed Authorization header; send `Authorization: Bearer <key>`"
                    .into(),
            );
        }
        if let Some(e) = err.downcast_ref::<ParseParamError>() {
            if e.name.eq_ignore_ascii_case("Idempotency-Key") {
                // The same answer as a key the handler refuses (one rule, one status).
                return ApiError::validation(e.name, super::models::IDEMPOTENCY_KEY_RULE);
            }
            if let Some(rule) = validator_rule(&e.reason) {
                return ApiError::validation(e.name, rule);
            }
            return ApiError::BadRequest(format!(
                "parameter {}: {}",
                e.name,
                plain_types(&e.reason)
            ));
        }
        if let Some(e) = err.downcast_ref::<ParsePathError>() {
            let mut message = e.to_string();
            for (i, name) in super::routes::parameter_names(path)
                .iter()
                .enumerate()
                .rev()
            {
                message = message.replace(&format!("`param{i}`"), &format!("parameter `{name}`"));
            }
            return ApiError::BadRequest(plain_types(&message));
        }
        if let Some(e) = err.downcast_ref::<ParseMultipartError>() {
            return ApiError::BadRequest(e.to_string());
        }
        match err.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: 0 },
            status if status.is_client_error() => ApiError::BadRequest(err.to_string()),
            _ => ApiError::Internal(err.to_string()),
        }
    }

    pub fn render(&self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(detail) | ApiError::StorageUnavailable(detail) = self {
            tracing::error!(code, detail = %detail, "request failed");
        }
        let body = serde_json::to_vec(&self.body().to_json()).unwrap_or_default();
        let mut builder = Response::builder()
            .status(status)
            .content_type("application/json; charset=utf-8");
        if let Some(secs) = self.retry_after() {
            builder = builder.header("Retry-After", secs.to_string());
        }
        if let ApiError::MethodNotAllowed { allow } = self {
            builder = builder.header("Allow", allow.as_str());
        }
        builder.body(body)
    }
}

/// The rule behind poem-openapi's "verification failed. maximum(500, exclusive: false)", in
/// words: `must be at most 500`. None for other reasons.
fn validator_rule(reason: &str) -> Option<String> {
    let rule = reason.split_once("verification failed. ")?.1.trim();
    let (name, args) = rule.strip_suffix(')')?.split_once('(')?;
    let first = args.split(',').next().unwrap_or("").trim();
    if name == "pattern" {
        return Some(format!(
            "must match the pattern {}",
            args.trim().trim_matches('"')
        ));
    }
    let exclusive = args.contains("exclusive: true");
    Some(match name {
        "minimum" if exclusive => format!("must be above {first}"),
        "minimum" => format!("must be at least {first}"),
        "maximum" if exclusive => format!("must be below {first}"),
        "maximum" => format!("must be at most {first}"),
        "minLength" => format!("must be at least {first} characters"),
        "maxLength" => format!("must be at most {first} characters"),
        _ => return None,
    })
}

/// The framework's type names in parse errors (`integer(uint64)`, `number(double)`,
/// `list_any`) said the way the API's documentation says them.
pub(crate) fn plain_types(message: &str) -> String {
    const NAMES: &[(&str, &str)] = &[
        ("\"integer(uint64)\"", "a non-negative integer"),
        (
            "\"integer(uint32)\"",
            "a non-negative integer below 4294967296",
        ),
        ("\"integer(int64)\"", "an integer"),
        ("\"integer(int32)\"", "an integer"),
        ("\"number(double)\"", "a number"),
        ("\"number(float)\"", "a number"),
        ("\"boolean\"", "true or false"),
        ("\"string\"", "a string"),
        ("integer(uint64)", "non-negative integer"),
        ("integer(uint32)", "non-negative integer"),
        ("integer(int64)", "integer"),
        ("integer(int32)", "integer"),
        ("number(double)", "number"),
        ("number(float)", "number"),
        ("number_double", "number"),
        ("list_any", "list"),
    ];
    let mut out = message.to_string();
    for (framework, plain) in NAMES {
        out = out.replace(framework, plain);
    }
    out.replace("failed to parse a", "expected a")
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { entity, id } => ApiError::NotFound { entity, id },
            StoreError::Conflict(message) => ApiError::Conflict(message),
            StoreError::Refused { code, message } => ApiError::Refused { code, message },
            StoreError::OrgLimit(limit) => ApiError::OrgLimit(limit),
            StoreError::QuotaExceeded {
                used,
                adding,
                limit,
                period,
            } => ApiError::QuotaWouldPass {
                used,
                adding,
                limit,
                retry_after_secs: period.seconds_left(crate::clock::now_ms()),
                period_end: crate::clock::format_rfc3339(period.end_ms),
            },
            fault if fault.is_storage_fault() => ApiError::StorageUnavailable(fault.to_string()),
            other @ (StoreError::TooNew { .. }
            | StoreError::Unavailable(_)
            | StoreError::Corrupt(_)
            | StoreError::Backend(_)) => ApiError::Internal(other.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn as_response(&self) -> Response {
        self.render()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.render()
    }
}

/// Statuses documented on every operation, beside its own success answer.
const DOCUMENTED: &[(u16, &str)] = &[
    (
        400,
        "Bad request: invalid JSON, text that is not UTF-8, or bad parameters (`invalid_json`, `invalid_encoding`, `bad_request`)",
    ),
    (401, "No key, or a wrong or revoked key (`unauthorized`)"),
    (
        402,
        "The organization's account is suspended for non-payment: detection routes refuse work until the open invoice is paid (`account_suspended`)",
    ),
    (
        403,
        "The key's scope does not reach this route (`forbidden`)",
    ),
    (404, "Not found, or not yours (`not_found`)"),
    (
        408,
        "The request body did not arrive within the server's body timeout (`request_timeout`)",
    ),
    (
        409,
        "Conflict with the current state (`conflict`, `idempotency_key_reused`, `dispute_settled`, `dispute_not_waiting`, `rule_limit`)",
    ),
    (
        413,
        "Body or batch over the configured limit, or over the small limit for callers that have not authenticated (`payload_too_large`, `batch_too_large`)",
    ),
    (415, "Wrong content type (`unsupported_media_type`)"),
    (
        422,
        "Semantically invalid input (`validation_failed`, `invalid_event`)",
    ),
    (
        429,
        "Quota or rate limit reached (`quota_exceeded`, `rate_limited`); see `Retry-After`",
    ),
    (
        500,
        "Internal error (`internal_error`); details are in the server log",
    ),
    (503, "Not ready (`not_ready`), or the data directory cannot take writes (`storage_unavailable`); see `Retry-After`"),
];

impl ApiResponse for ApiError {
    const BAD_REQUEST_HANDLER: bool = true;

    fn meta() -> MetaResponses {
        MetaResponses {
            responses: DOCUMENTED
                .iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(*status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json; charset=utf-8",
                        schema: <Json<ErrorBody> as poem_openapi::payload::Payload>::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        <ErrorBody as poem_openapi::types::Type>::register(registry);
    }

    fn from_parse_request_error(err: poem::Error) -> Self {
        ApiError::from_poem(&err, "", "")
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validator_failures_read_as_rules() {
        let rule = |r: &str| validator_rule(r);
        assert_eq!(
            rule("verification failed. maximum(500, exclusive: false)").as_deref(),
            Some("must be at most 500")
        );
        assert_eq!(
            rule(r#"verification failed. pattern("^[a-z]{1,4}$")"#).as_deref(),
            Some("must match the pattern ^[a-z]{1,4}$")
        );
        assert_eq!(rule("expected a non-negative integer"), None);
    }
}
