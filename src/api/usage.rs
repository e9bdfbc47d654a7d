//! Usage and metering routes: an organization's current period and history, and
//! `meter-usage` for services that detect elsewhere. Only anomaly detections are counted.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{param::Query, payload::Json, Enum, Object, OpenApi};

use super::{
    auth::{OrgAuth, ServiceAuth},
    blocking,
    error::{ApiError, ApiResult},
    models::DateTime,
    models::Tag,
    models::Text,
    AppState,
};
use crate::{
    clock,
    core::billing::dunning::DunningPolicy,
    core::metering::{
        plans::Plan,
        quota::{self, Admission, OnExceed, QuotaPolicy},
        usage::Usage,
    },
    store::{page_limit, MeterOutcome, MeterSnapshot, Remembered},
};

pub struct UsageApi;

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[oai(rename_all = "snake_case")]
pub enum Behavior {
    SoftCap,
    HardCap,
    AllowOverage,
}

impl From<OnExceed> for Behavior {
    fn from(b: OnExceed) -> Self {
        match b {
            OnExceed::SoftCap => Behavior::SoftCap,
            OnExceed::HardCap => Behavior::HardCap,
            OnExceed::AllowOverage => Behavior::AllowOverage,
        }
    }
}

impl From<Behavior> for OnExceed {
    fn from(b: Behavior) -> Self {
        match b {
            Behavior::SoftCap => OnExceed::SoftCap,
            Behavior::HardCap => OnExceed::HardCap,
            Behavior::AllowOverage => OnExceed::AllowOverage,
        }
    }
}

/// An organization's quota policy.
#[derive(Object, Clone, Debug)]
#[oai(skip_serializing_if_is_none)]
pub struct QuotaPolicyView {
    /// What happens past the included detections.
    pub behavior_on_exceed: Behavior,
    /// Soft cap in percent of included detections (100..=1000).
    #[oai(validator(minimum(value = "100"), maximum(value = "1000")))]
    pub cap_percent: u32,
    /// Estimated overage in cents that asks for an early invoice.
    pub invoice_threshold_cents: u64,
    /// Whether to alert at 90% as well as at 70% and 100%.
    pub alert_at_90: bool,
}

impl From<&QuotaPolicy> for QuotaPolicyView {
    fn from(p: &QuotaPolicy) -> Self {
        QuotaPolicyView {
            behavior_on_exceed: p.behavior_on_exceed.into(),
            cap_percent: p.cap_percent,
            invoice_threshold_cents: p.invoice_threshold_cents,
            alert_at_90: p.alert_at_90,
        }
    }
}

impl From<&QuotaPolicyView> for QuotaPolicy {
    fn from(p: &QuotaPolicyView) -> Self {
        QuotaPolicy {
            behavior_on_exceed: p.behavior_on_exceed.into(),
            cap_percent: p.cap_percent,
            invoice_threshold_cents: p.invoice_threshold_cents,
            alert_at_90: p.alert_at_90,
        }
    }
}

/// Usage of one billing period.
#[derive(Object, Clone, Debug)]
#[oai(skip_serializing_if_is_none)]
pub struct UsagePeriod {
    pub period_start: DateTime,
    pub period_end: DateTime,
    pub plan: String,
    /// Anomaly detections counted this period, less accepted disputes.
    pub total_calls: u64,
    /// Detections taken out of `total_calls` by accepted disputes.
    pub disputed_detections: u64,
    pub included_calls_used: u64,
    pub overage_calls: u64,
    /// Overage at the plan's unit price, rounded half up to whole cents once per period.
    pub estimated_charges_cents: u64,
    /// Alert thresholds raised this period, in percent of included.
    pub alerts_sent: Vec<u32>,
}

impl From<&Usage> for UsagePeriod {
    fn from(u: &Usage) -> Self {
        UsagePeriod {
            period_start: DateTime::from_ms(u.period.start_ms),
            period_end: DateTime::from_ms(u.period.end_ms),
            plan: u.plan_id.clone(),
            total_calls: u.total_calls,
            disputed_detections: u.disputed_calls,
            included_calls_used: u.included_calls_used,
            overage_calls: u.overage_calls,
            estimated_charges_cents: u.estimated_charges_cents,
            alerts_sent: u.alerts_sent.clone(),
        }
    }
}

/// The current period, with what the plan includes and where the policy stops.
#[derive(Object, Clone, Debug)]
#[oai(skip_serializing_if_is_none)]
pub struct UsageReport {
    pub organization_id: String,
    #[oai(flatten)]
    pub period: UsagePeriod,
    pub included: u64,
    /// Detections used over included, in percent (may pass 100).
    pub percent_used: f64,
    /// Detections after which detection calls answer 429; absent when never refused.
    pub limit: Option<u64>,
    /// Whether detection calls are refused right now.
    pub over_limit: bool,
    pub policy: QuotaPolicyView,
}

pub fn report(org_id: &str, plan: &Plan, policy: &QuotaPolicy, usage: &Usage) -> UsageReport {
    UsageReport {
        organization_id: org_id.to_string(),
        period: usage.into(),
        included: plan.included_detections,
        percent_used: (usage.percent_used(plan) * 100.0).round() / 100.0,
        limit: policy.limit(plan),
        over_limit: quota::admit(usage, plan, policy) != Admission::Allowed,
        policy: policy.into(),
    }
}

/// Refuses a detection call when the org is suspended for non-payment or past its quota,
/// before any work.
pub fn admit(
    snapshot: &MeterSnapshot,
    dunning_policy: &DunningPolicy,
    now_ms: i64,
) -> ApiResult<()> {
    let dunning = crate::core::billing::dunning::advance(&snapshot.dunning, dunning_policy, now_ms);
    if !dunning.state.allows_detection() {
        return Err(ApiError::AccountSuspended {
            since: clock::format_rfc3339(dunning.since_ms),
        });
    }
    match quota::admit(&snapshot.usage, &snapshot.plan, &snapshot.policy) {
        Admission::Allowed => Ok(()),
        Admission::QuotaExceeded { used, limit } => Err(ApiError::QuotaExceeded {
            used,
            limit,
            retry_after_secs: snapshot.usage.period.seconds_left(now_ms),
            period_end: clock::format_rfc3339(snapshot.usage.period.end_ms),
        }),
    }
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct UsageHistory {
    /// Newest first.
    items: Vec<UsagePeriod>,
    next_cursor: Option<String>,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct MeterUsageRequest {
    organization_id: Text,
    /// Whether the call being metered found an anomaly; `false` changes nothing.
    anomaly: bool,
    /// Detections to count, 1..=1000000 (default 1).
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
    count: Option<u64>,
    /// Repeating a request with the same key (within 24 h) counts nothing again; 1 to 255
    /// visible ASCII characters.
    #[oai(validator(min_length = 1, max_length = 255, pattern = r"^[!-~]+$"))]
    idempotency_key: Option<Text>,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct MeterUsageResult {
    /// Detections counted by this request (on a replay: by its first attempt).
    counted: u64,
    /// True when the idempotency key was seen before and nothing was counted now.
    replayed: bool,
    usage: UsageReport,
}

/// What an organization holds against one of the operator's limits.
#[derive(Object)]
struct Held {
    held: u64,
    limit: u64,
}

/// The operator's per-organization limits, and what the organization holds of each.
#[derive(Object)]
struct OrgLimitsView {
    /// Active (not revoked) API keys.
    api_keys: Held,
    streams: Held,
    monitors: Held,
    /// Bytes of idempotency records (each kept 24 hours); a request with an
    /// `Idempotency-Key` that would pass the limit answers 429 `limit_reached`.
    idempotency_bytes: Held,
    /// Detection and metering requests per second (a bucket of `burst`), 0 for unlimited.
    requests_per_sec: u32,
    burst: u32,
    /// Detection batches processed at once; more answer 429 `limit_reached`.
    concurrent_batches: u32,
    /// Monitor notification mails queued this UTC hour; past the limit they are held back
    /// (not sent; webhooks and stored anomalies are unaffected).
    mails_this_hour: Held,
    mails_held_back_this_hour: u64,
}

#[OpenApi(prefix_path = "/v1", tag = "Tag::Usage")]
impl UsageApi {
    /// The organization's usage in the current billing period.
    #[oai(path = "/usage", method = "get", operation_id = "getUsage")]
    async fn usage(&self, auth: OrgAuth) -> ApiResult<Json<UsageReport>> {
        let s = auth.0.scope.meter_snapshot(clock::now_ms())?;
        Ok(Json(report(&s.org.id, &s.plan, &s.policy, &s.usage)))
    }

    /// The organization's limits (set by the operator for every organization) and what it
    /// holds of each.
    #[oai(path = "/limits", method = "get", operation_id = "getLimits")]
    async fn limits(
        &self,
        auth: OrgAuth,
        state: Data<&Arc<AppState>>,
    ) -> ApiResult<Json<OrgLimitsView>> {
        let scope = auth.0.scope;
        let now = clock::now_ms();
        let held = blocking(move || scope.holdings(now)).await?;
        let limits = state.store.org_limits();
        let (requests_per_sec, burst) = state.rate_limiter.settings();
        Ok(Json(OrgLimitsView {
            api_keys: Held {
                held: held.active_api_keys,
                limit: limits.api_keys,
            },
            streams: Held {
                held: held.streams,
                limit: limits.streams,
            },
            monitors: Held {
                held: held.monitors,
                limit: limits.monitors,
            },
            idempotency_bytes: Held {
                held: held.idempotency_bytes,
                limit: limits.idempotency_bytes,
            },
            requests_per_sec,
            burst,
            concurrent_batches: state.org_batches.max() as u32,
            mails_this_hour: Held {
                held: held.mails_this_hour,
                limit: limits.mails_per_hour,
            },
            mails_held_back_this_hour: held.mails_held_back_this_hour,
        }))
    }

    /// Usage of past and current periods, newest first.
    #[oai(
        path = "/usage/history",
        method = "get",
        operation_id = "getUsageHistory"
    )]
    async fn history(
        &self,
        auth: OrgAuth,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<UsageHistory>> {
        let before = super::models::decode_cursor(cursor.0.as_deref())?
            .map(|c| {
                c.parse::<i64>()
                    .map_err(|_| ApiError::BadRequest("cursor is not valid".into()))
            })
            .transpose()?;
        let page = auth.0.scope.usage_history(before, page_limit(limit.0))?;
        Ok(Json(UsageHistory {
            items: page.items.iter().map(Into::into).collect(),
            next_cursor: super::models::encode_cursor(page.next_after),
        }))
    }

    /// Records detections made elsewhere (service scope). `anomaly: false` counts nothing;
    /// past the quota the call answers 429 and counts nothing.
    #[oai(path = "/meter-usage", method = "post", operation_id = "meterUsage")]
    async fn meter_usage(
        &self,
        auth: ServiceAuth,
        state: Data<&Arc<AppState>>,
        body: Json<MeterUsageRequest>,
    ) -> ApiResult<Json<MeterUsageResult>> {
        // The organization metered is the one limited, whichever service key reports for it.
        state.rate_limiter.check(&body.organization_id)?;
        let count = body.count.unwrap_or(1);
        tracing::debug!(actor = %auth.0.actor, org = %body.organization_id, count, "meter usage");
        if !(1..=1_000_000).contains(&count) {
            return Err(ApiError::validation(
                "count",
                "must be between 1 and 1000000",
            ));
        }
        let now = clock::now_ms();
        let org_id = body.organization_id.clone();
        let snapshot = state.store.meter_snapshot(&org_id, now)?;
        if !body.anomaly {
            return Ok(Json(MeterUsageResult {
                counted: 0,
                replayed: false,
                usage: report(&org_id, &snapshot.plan, &snapshot.policy, &snapshot.usage),
            }));
        }
        let key = match body.idempotency_key.as_deref() {
            Some(k) => match super::models::valid_idempotency_key(k.as_bytes()) {
                Ok(k) => Some(format!("meter:{k}")),
                Err(_) => {
                    return Err(ApiError::validation(
                        "idempotency_key",
                        super::models::IDEMPOTENCY_KEY_RULE,
                    ))
                }
            },
            None => None,
        };
        let fingerprint = format!("{}:{count}", body.anomaly);
        // A retry of a call already counted gets its answer even at the quota limit (which that
        // very call may have reached): the key is looked at before admission.
        if let Some(key) = &key {
            match state
                .store
                .org(&org_id)
                .remembered(key, &fingerprint, now)?
            {
                Remembered::Nothing => {}
                Remembered::Answer(_) => {
                    return Ok(Json(MeterUsageResult {
                        counted: count,
                        replayed: true,
                        usage: report(&org_id, &snapshot.plan, &snapshot.policy, &snapshot.usage),
                    }))
                }
                Remembered::KeyReused => return Err(ApiError::IdempotencyKeyReused),
            }
        }
        admit(&snapshot, &state.dunning_policy, now)?;
        let store = state.store.clone();
        let outcome = blocking(move || {
            store.meter(
                &org_id,
                count,
                key.as_deref().map(|k| (k, fingerprint.as_str())),
                now,
            )
        })
        .await?;
        let (usage, replayed) = match outcome {
            MeterOutcome::Counted(metered) => (metered.usage, false),
            MeterOutcome::AlreadyCounted => (snapshot.usage, true),
            MeterOutcome::KeyReused => return Err(ApiError::IdempotencyKeyReused),
        };
        Ok(Json(MeterUsageResult {
            counted: count,
            replayed,
            usage: report(
                &body.organization_id,
                &snapshot.plan,
                &snapshot.policy,
                &usage,
            ),
        }))
    }
}
