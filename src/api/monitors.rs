//! The Monitor API: named, long-lived monitors over a numeric metric. Points run through the
//! monitor's persisted metric detector (the same engine and defaults as `driftlock score`);
//! anomalies are stored with their explanations, counted as detections, and the first anomaly
//! of each episode notifies the monitor's email addresses and signed webhooks.

use super::{
    detector_settings::DetectorSettings,
    feedback::FeedbackView,
    name::Name,
    point_time::PointTime,
    triage::{anomaly_id, TriageView},
};
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{
    param::{Header, Path, Query},
    payload::Json,
    ApiResponse, Object, OpenApi, Union,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    auth::OrgAuth,
    blocking, blocking_api,
    error::{ApiError, ApiResult},
    explain::ExplanationView,
    models::DateTime,
    models::Text,
    models::{
        decode_cursor, encode_cursor, parse_time_param, replayed, valid_email, valid_name,
        Answered, Tag,
    },
    usage, AppState,
};
use crate::{
    clock,
    core::{
        billing::dunning::DunningPolicy,
        detect::{MetricDetector, MetricSettings},
        feedback::Source,
        metering::disclosure::disclosed_score,
    },
    secrets,
    store::{
        page_limit, BatchCommitted, DeliveryStatus, EpisodeStart, MonitorAnomaly,
        MonitorBatchCommit, MonitorRecord, OrgScope, SeriesPoint, WebhookChannel,
    },
};

pub struct MonitorsApi;

/// Anomalies closer than this many points to the previous one belong to the same episode and
/// notify nobody again (flapping suppression).
pub const EPISODE_GAP_POINTS: u64 = 30;

#[derive(Object, Clone, Default)]
#[oai(skip_serializing_if_is_none)]
struct Channels {
    /// Addresses mailed at the start of each anomaly episode.
    #[oai(default)]
    emails: Vec<String>,
    /// URLs that receive a signed POST at the start of each anomaly episode.
    #[oai(default)]
    webhooks: Vec<String>,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct CreateMonitorRequest {
    name: Name,
    description: Option<Text>,
    /// 0 (fewest alarms) ..= 1 (most alarms); default 0.5.
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    sensitivity: Option<f64>,
    /// Advanced detector settings (the fields of `driftlock score`'s defaults); absent fields
    /// keep their defaults.
    detector: Option<DetectorSettings>,
    notifications: Option<Channels>,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct UpdateMonitorRequest {
    name: Option<Name>,
    description: Option<Text>,
    /// Changing the sensitivity or detector settings restarts the monitor's baseline.
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    sensitivity: Option<f64>,
    detector: Option<DetectorSettings>,
    /// Replaces the channels; new webhooks get new secrets, shown in this answer only.
    notifications: Option<Channels>,
}

#[derive(Object, Clone)]
#[oai(skip_serializing_if_is_none)]
struct WebhookView {
    id: String,
    url: String,
    /// The signing secret; only in the answer that created the channel.
    #[oai(skip_serializing_if_is_none)]
    secret: Option<String>,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Monitor {
    id: String,
    name: String,
    description: Option<String>,
    /// `warming_up`, `healthy` or `paused`.
    status: String,
    warming_up_remaining: u32,
    sensitivity: f64,
    detector: DetectorSettings,
    emails: Vec<String>,
    webhooks: Vec<WebhookView>,
    points_seen: u64,
    points_rejected: u64,
    anomalies_seen: u64,
    episodes: u64,
    last_point_at: Option<DateTime>,
    last_anomaly_at: Option<DateTime>,
    created_at: DateTime,
}

fn view(r: MonitorRecord, fresh: &[String]) -> Monitor {
    let remaining = r.warmup_remaining();
    Monitor {
        status: if r.paused {
            "paused"
        } else if remaining > 0 {
            "warming_up"
        } else {
            "healthy"
        }
        .into(),
        warming_up_remaining: remaining,
        sensitivity: r.settings.sensitivity,
        detector: DetectorSettings(serde_json::to_value(&r.settings).unwrap_or_default()),
        webhooks: r
            .webhooks
            .iter()
            .map(|w| WebhookView {
                id: w.id.clone(),
                url: w.url.clone(),
                secret: fresh.contains(&w.id).then(|| w.secret.clone()),
            })
            .collect(),
        emails: r.emails,
        id: r.id,
        name: r.name,
        description: r.description,
        points_seen: r.points_seen,
        points_rejected: r.points_rejected,
        anomalies_seen: r.anomalies_seen,
        episodes: r.episodes,
        last_point_at: r.last_point_ts.map(DateTime::from_secs),
        last_anomaly_at: r.last_anomaly_ts.map(DateTime::from_secs),
        created_at: DateTime::from_ms(r.created_at_ms),
    }
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub(super) struct MonitorList {
    items: Vec<Monitor>,
    next_cursor: Option<String>,
}

#[derive(ApiResponse)]
enum MonitorCreated {
    /// Created; webhook secrets are in this answer only. `Location` is the monitor's address.
    #[oai(status = 201)]
    Created(Json<Monitor>, #[oai(header = "Location")] String),
}

/// One point: `timestamp` as RFC 3339 (or `YYYY-MM-DD HH:MM:SS`, UTC) or epoch seconds.
#[derive(Object, Clone, Serialize, Deserialize)]
#[oai(skip_serializing_if_is_none)]
struct PointIn {
    timestamp: PointTime,
    value: f64,
}

#[derive(Object, Clone)]
#[oai(skip_serializing_if_is_none)]
struct PointBatch {
    points: Vec<PointIn>,
}

/// A single point or a batch.
#[derive(Union)]
#[oai(one_of)]
enum PointsBody {
    Batch(PointBatch),
    Single(PointIn),
}

#[derive(Object, Serialize, Deserialize, Clone)]
#[oai(skip_serializing_if_is_none)]
struct PointResult {
    index: u32,
    /// The point's time, normalized to RFC 3339.
    timestamp: DateTime,
    /// False when the point broke the input rule and was ignored (see `rejected_reason`).
    accepted: bool,
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rejected_reason: Option<String>,
    anomaly: bool,
    /// The detection's score, 0..1; absent when `anomaly` is false (only detections are
    /// billed, so only they disclose the detector's judgement).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
    warming_up: bool,
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    explanation: Option<ExplanationView>,
    /// The monitor's rule (`mr_<n>`, made from feedback) that covered an alarm on this
    /// point: it is not an anomaly, and it is not counted.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    suppressed_by: Option<String>,
}

#[derive(Object, Serialize, Deserialize, Clone)]
#[oai(skip_serializing_if_is_none)]
struct PointsResult {
    monitor_id: String,
    status: String,
    warming_up_remaining: u32,
    results: Vec<PointResult>,
    accepted: u32,
    anomalies: u32,
    detections_counted: u64,
    period_detections: u64,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub(super) struct AnomalyView {
    /// The anomaly's id within the monitor (`ma_<seq>`), for its status and feedback.
    id: String,
    seq: u64,
    timestamp: DateTime,
    value: f64,
    score: f64,
    episode: u64,
    detected_at: DateTime,
    explanation: ExplanationView,
    #[oai(flatten)]
    triage: TriageView,
    #[oai(flatten)]
    feedback: FeedbackView,
}

impl From<MonitorAnomaly> for AnomalyView {
    fn from(a: MonitorAnomaly) -> Self {
        AnomalyView {
            id: anomaly_id("ma", a.seq),
            seq: a.seq,
            timestamp: DateTime::from_secs(a.ts),
            value: a.value,
            score: a.score,
            episode: a.episode,
            detected_at: DateTime::from_ms(a.detected_at_ms),
            triage: TriageView::from(&a.triage),
            feedback: FeedbackView::of(a.feedback.as_ref(), Source::Monitor),
            explanation: a.explanation.into(),
        }
    }
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub(super) struct AnomalyList {
    items: Vec<AnomalyView>,
    next_cursor: Option<String>,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct SeriesView {
    timestamp: DateTime,
    value: f64,
    /// The score of a detection; absent for other points.
    score: Option<f64>,
    anomaly: bool,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub(super) struct Series {
    /// Points in time order; when downsampled, each bucket keeps its highest-scoring point so
    /// anomalies stay visible.
    points: Vec<SeriesView>,
    downsampled: bool,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct DeliveryView {
    id: u64,
    url: String,
    event: String,
    /// `pending`, `delivered` or `failed`.
    status: String,
    attempts: u32,
    last_error: Option<String>,
    created_at: DateTime,
    delivered_at: Option<DateTime>,
    body: Value,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct DeliveryList {
    items: Vec<DeliveryView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

fn settings_from(
    sensitivity: Option<f64>,
    detector: Option<&DetectorSettings>,
    base: MetricSettings,
) -> ApiResult<MetricSettings> {
    let mut value = serde_json::to_value(&base).unwrap_or_default();
    if let Some(Value::Object(overrides)) = detector.map(|d| &d.0) {
        for (k, v) in overrides {
            value[k] = v.clone();
        }
    }
    if let Some(s) = sensitivity {
        value["sensitivity"] = serde_json::json!(s);
    }
    let settings: MetricSettings = serde_json::from_value(value)
        .map_err(|e| ApiError::validation("detector", e.to_string()))?;
    settings
        .validate()
        .map_err(|e| ApiError::validation("detector", e.to_string()))?;
    Ok(settings)
}

fn channels_from(channels: &Channels) -> ApiResult<(Vec<String>, Vec<WebhookChannel>)> {
    if channels.emails.len() + channels.webhooks.len() > 20 {
        return Err(ApiError::validation(
            "notifications",
            "at most 20 channels per monitor",
        ));
    }
    let emails = channels
        .emails
        .iter()
        .map(|e| valid_email("notifications.emails", e))
        .collect::<ApiResult<Vec<_>>>()?;
    let webhooks = channels
        .webhooks
        .iter()
        .map(|url| {
            let url = url.trim();
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && url.len() <= 2048
                && !url.contains(char::is_whitespace);
            if !ok {
                return Err(ApiError::validation(
                    "notifications.webhooks",
                    format!("{url:?} is not an http(s) URL"),
                ));
            }
            Ok(WebhookChannel {
                id: secrets::new_id("wh", clock::now_ms()),
                url: url.to_string(),
                secret: secrets::new_webhook_secret(),
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok((emails, webhooks))
}

/// Refuses webhooks that point inside the operator's network (after resolving their hosts),
/// unless the operator allowed the block ([`crate::sync::destination`]).
async fn check_destinations(state: &AppState, webhooks: &[WebhookChannel]) -> ApiResult<()> {
    let policy = state.webhook_destinations.clone();
    let urls: Vec<String> = webhooks.iter().map(|w| w.url.clone()).collect();
    blocking_api(move || {
        for url in &urls {
            policy
                .check_url(url)
                .map_err(|why| ApiError::validation("notifications.webhooks", why))?;
        }
        Ok(())
    })
    .await
}

fn parse_points(body: PointsBody) -> ApiResult<Vec<(i64, f64)>> {
    let points = match body {
        PointsBody::Batch(b) => b.points,
        PointsBody::Single(p) => vec![p],
    };
    points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.timestamp
                .epoch_secs()
                .map(|t| (t, p.value))
                .ok_or_else(|| {
                    ApiError::InvalidEvent(format!(
                        "point at index {i}: timestamp {} is not RFC 3339 or epoch seconds",
                        p.timestamp
                    ))
                })
        })
        .collect()
}

fn process_points(
    scope: &OrgScope,
    dunning: &DunningPolicy,
    monitor_id: &str,
    points: &[(i64, f64)],
    idempotency_key: Option<&str>,
    now_ms: i64,
) -> ApiResult<Answered<PointsResult>> {
    let scoped_key =
        idempotency_key.map(|k| super::models::scoped_idempotency_key("monitor", monitor_id, k));
    let fingerprint = secrets::sha256_hex(&serde_json::to_string(points).unwrap_or_default());
    for _attempt in 0..8 {
        if let Some(key) = &scoped_key {
            match scope.remembered(key, &fingerprint, now_ms)? {
                crate::store::Remembered::Nothing => {}
                crate::store::Remembered::Answer(a) => return replayed(a),
                crate::store::Remembered::KeyReused => return Err(ApiError::IdempotencyKeyReused),
            }
        }
        let crate::store::MonitorSnapshot {
            mut record,
            state,
            rules,
        } = scope.monitor_snapshot(monitor_id)?;
        if record.paused {
            return Err(ApiError::Conflict(format!(
                "monitor {monitor_id} is paused; resume it to send points"
            )));
        }
        usage::admit(&scope.meter_snapshot(now_ms)?, dunning, now_ms)?;
        let expected_version = record.version;
        let mut detector = super::resume_detector(
            &format!("monitor {monitor_id}"),
            state.as_deref(),
            MetricDetector::decode_state,
            || MetricDetector::new(record.settings.clone()).after(record.last_point_ts),
        )?;
        let mut results = Vec::with_capacity(points.len());
        let mut series = Vec::new();
        let mut anomalies = Vec::new();
        let mut episode_starts = Vec::new();
        let mut remaining = record.warmup_remaining();
        for (i, &(ts, value)) in points.iter().enumerate() {
            let mut verdict = detector.observe(ts, value);
            let suppressed_by = verdict
                .explanation
                .as_ref()
                .filter(|_| verdict.anomaly)
                .and_then(|e| rules.iter().find(|r| r.matcher.suppresses(value, e)))
                .map(|r| anomaly_id("mr", r.number));
            if suppressed_by.is_some() {
                verdict.anomaly = false;
            }
            let mut result = PointResult {
                index: i as u32,
                timestamp: DateTime::from_secs(ts),
                accepted: verdict.accepted,
                rejected_reason: None,
                anomaly: verdict.anomaly,
                score: disclosed_score(verdict.anomaly, verdict.score),
                warming_up: verdict.warming_up_remaining > 0,
                explanation: None,
                suppressed_by,
            };
            if !verdict.accepted {
                record.points_rejected += 1;
                result.rejected_reason = Some(if value.is_finite() {
                    "timestamp is not after the last accepted point (out of order or duplicate)"
                        .into()
                } else {
                    "value is not a finite number".into()
                });
                results.push(result);
                continue;
            }
            remaining = verdict.warming_up_remaining;
            record.points_seen += 1;
            record.last_point_ts = Some(ts);
            series.push(SeriesPoint {
                ts,
                value,
                score: verdict.score,
                anomaly: verdict.anomaly,
            });
            if let (true, Some(explanation)) = (verdict.anomaly, verdict.explanation) {
                let new_episode = record
                    .last_anomaly_point
                    .is_none_or(|last| record.points_seen - last > EPISODE_GAP_POINTS);
                if new_episode {
                    record.episodes += 1;
                }
                record.anomalies_seen += 1;
                record.last_anomaly_ts = Some(ts);
                record.last_anomaly_point = Some(record.points_seen);
                let anomaly = MonitorAnomaly {
                    seq: 0,
                    ts,
                    value,
                    score: verdict.score,
                    explanation: explanation.clone(),
                    detected_at_ms: now_ms,
                    triage: Default::default(),
                    feedback: None,
                    episode: record.episodes,
                };
                if new_episode {
                    episode_starts.push(EpisodeStart {
                        episode: record.episodes,
                        anomaly: anomaly.clone(),
                    });
                }
                anomalies.push(anomaly);
                result.explanation = Some(explanation.into());
            }
            results.push(result);
        }
        record.version += 1;
        record.updated_at_ms = now_ms;
        let accepted = series.len() as u32;
        let found = anomalies.len() as u32;
        let commit = MonitorBatchCommit {
            record,
            expected_version,
            state: detector.encode_state(),
            points: series,
            anomalies,
            episode_starts,
            idempotency: scoped_key.clone().map(|k| (k, fingerprint.clone())),
            now_ms,
        };
        let committed = scope.commit_monitor_batch(commit, |metered| PointsResult {
            monitor_id: monitor_id.to_string(),
            status: if remaining > 0 {
                "warming_up"
            } else {
                "healthy"
            }
            .into(),
            warming_up_remaining: remaining,
            results,
            accepted,
            anomalies: found,
            detections_counted: u64::from(found),
            period_detections: metered.usage.total_calls,
        })?;
        match committed {
            BatchCommitted::Done(r) => return Ok(Answered::Fresh(r)),
            BatchCommitted::Replayed(a) => return replayed(a),
            BatchCommitted::Raced => continue,
        }
    }
    Err(ApiError::Conflict(format!(
        "monitor {monitor_id} is being written by other requests; retry"
    )))
}

/// The verdicts of a batch of points, and whether they are a stored earlier answer.
#[derive(ApiResponse)]
enum PointsAnswer {
    /// One verdict per point. `Idempotent-Replayed: true` when this is the stored first
    /// answer to an earlier request with the same `Idempotency-Key` (nothing was counted).
    #[oai(status = 200)]
    Ok(
        Json<PointsResult>,
        #[oai(header = "Idempotent-Replayed")] Option<bool>,
    ),
}

/// At most `max` points: each of `max` equal buckets keeps its highest-scoring point.
fn downsample(points: Vec<SeriesPoint>, max: usize) -> (Vec<SeriesPoint>, bool) {
    if points.len() <= max {
        return (points, false);
    }
    let per = points.len().div_ceil(max);
    let kept = points
        .chunks(per)
        .filter_map(|chunk| {
            chunk
                .iter()
                .copied()
                .max_by(|a, b| a.score.total_cmp(&b.score))
        })
        .collect();
    (kept, true)
}

#[OpenApi(prefix_path = "/v1/monitors", tag = "Tag::Monitors")]
impl MonitorsApi {
    /// Create a monitor.
    #[oai(path = "/", method = "post", operation_id = "createMonitor")]
    async fn create(
        &self,
        auth: OrgAuth,
        state: Data<&Arc<AppState>>,
        body: Json<CreateMonitorRequest>,
    ) -> ApiResult<MonitorCreated> {
        let name = valid_name("name", &body.name.0)?;
        let settings = settings_from(
            body.sensitivity,
            body.detector.as_ref(),
            MetricSettings::default(),
        )?;
        let (emails, webhooks) = channels_from(&body.notifications.clone().unwrap_or_default())?;
        check_destinations(&state, &webhooks).await?;
        let now = clock::now_ms();
        let record = MonitorRecord {
            id: secrets::new_id("mon", now),
            name,
            description: body.description.clone().map(String::from),
            settings,
            emails,
            webhooks,
            paused: false,
            created_at_ms: now,
            updated_at_ms: now,
            points_seen: 0,
            points_rejected: 0,
            anomalies_seen: 0,
            last_point_ts: None,
            last_anomaly_ts: None,
            last_anomaly_point: None,
            episodes: 0,
            version: 1,
            baseline_from_point: 0,
        };
        let fresh: Vec<String> = record.webhooks.iter().map(|w| w.id.clone()).collect();
        let scope = auth.0.scope;
        let stored = record.clone();
        blocking(move || scope.create_monitor(&stored)).await?;
        let location = format!("/v1/monitors/{}", record.id);
        Ok(MonitorCreated::Created(
            Json(view(record, &fresh)),
            location,
        ))
    }

    /// The organization's monitors.
    #[oai(path = "/", method = "get", operation_id = "listMonitors")]
    async fn list(
        &self,
        auth: OrgAuth,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<MonitorList>> {
        Ok(Json(list_page(
            &auth.0.scope,
            limit.0,
            cursor.0.as_deref(),
        )?))
    }

    /// A monitor and its status (warming up, healthy or paused; last point; last anomaly).
    #[oai(path = "/:monitor_id", method = "get", operation_id = "getMonitor")]
    async fn get(&self, auth: OrgAuth, monitor_id: Path<String>) -> ApiResult<Json<Monitor>> {
        Ok(Json(view(auth.0.scope.get_monitor(&monitor_id)?, &[])))
    }

    /// Change a monitor. New detector settings restart its baseline.
    #[oai(
        path = "/:monitor_id",
        method = "patch",
        operation_id = "updateMonitor"
    )]
    async fn update(
        &self,
        auth: OrgAuth,
        state: Data<&Arc<AppState>>,
        monitor_id: Path<String>,
        body: Json<UpdateMonitorRequest>,
    ) -> ApiResult<Json<Monitor>> {
        let scope = auth.0.scope;
        let current = scope.get_monitor(&monitor_id)?;
        let name = body
            .name
            .as_ref()
            .map(|n| valid_name("name", &n.0))
            .transpose()?;
        let settings = if body.sensitivity.is_some() || body.detector.is_some() {
            Some(settings_from(
                body.sensitivity,
                body.detector.as_ref(),
                current.settings.clone(),
            )?)
        } else {
            None
        };
        let channels = body.notifications.as_ref().map(channels_from).transpose()?;
        if let Some((_, webhooks)) = &channels {
            check_destinations(&state, webhooks).await?;
        }
        let fresh: Vec<String> = channels
            .iter()
            .flat_map(|(_, w)| w.iter().map(|w| w.id.clone()))
            .collect();
        let reset = settings.as_ref().is_some_and(|s| *s != current.settings);
        let description = body.0.description;
        let now = clock::now_ms();
        let record = blocking(move || {
            scope.update_monitor(&monitor_id, reset, now, |m| {
                if let Some(name) = name {
                    m.name = name;
                }
                if description.is_some() {
                    m.description = description.map(String::from);
                }
                if let Some(settings) = settings {
                    if reset {
                        m.settings = settings;
                        m.points_seen = 0;
                        m.last_anomaly_point = None;
                    }
                }
                if let Some((emails, webhooks)) = channels {
                    m.emails = emails;
                    m.webhooks = webhooks;
                }
            })
        })
        .await?;
        Ok(Json(view(record, &fresh)))
    }

    /// Delete a monitor with its state, points and anomalies.
    #[oai(
        path = "/:monitor_id",
        method = "delete",
        operation_id = "deleteMonitor"
    )]
    async fn delete(&self, auth: OrgAuth, monitor_id: Path<String>) -> ApiResult<Json<Monitor>> {
        let scope = auth.0.scope;
        let record = scope.get_monitor(&monitor_id)?;
        blocking(move || scope.delete_monitor(&monitor_id)).await?;
        Ok(Json(view(record, &[])))
    }

    /// Pause a monitor: points are refused (409) until it is resumed; its state is kept.
    #[oai(
        path = "/:monitor_id/pause",
        method = "post",
        operation_id = "pauseMonitor"
    )]
    async fn pause(&self, auth: OrgAuth, monitor_id: Path<String>) -> ApiResult<Json<Monitor>> {
        let scope = auth.0.scope;
        let now = clock::now_ms();
        let record =
            blocking(move || scope.update_monitor(&monitor_id, false, now, |m| m.paused = true))
                .await?;
        Ok(Json(view(record, &[])))
    }

    /// Resume a paused monitor.
    #[oai(
        path = "/:monitor_id/resume",
        method = "post",
        operation_id = "resumeMonitor"
    )]
    async fn resume(&self, auth: OrgAuth, monitor_id: Path<String>) -> ApiResult<Json<Monitor>> {
        let scope = auth.0.scope;
        let now = clock::now_ms();
        let record =
            blocking(move || scope.update_monitor(&monitor_id, false, now, |m| m.paused = false))
                .await?;
        Ok(Json(view(record, &[])))
    }

    /// Send one point or a batch; get a verdict per point. Points must come in time order: a
    /// point not after the last accepted one (or not finite) is answered `accepted: false` and
    /// ignored. Each anomaly counts one detection; past the quota the call answers 429.
    #[oai(
        path = "/:monitor_id/points",
        method = "post",
        operation_id = "sendMonitorPoints"
    )]
    async fn points(
        &self,
        req: &poem::Request,
        auth: OrgAuth,
        state: Data<&Arc<AppState>>,
        monitor_id: Path<String>,
        /// Retrying with the same key returns the first answer and counts nothing again (24 h).
        /// 1 to 255 visible ASCII characters; anything else is refused with 422.
        #[oai(
            name = "Idempotency-Key",
            validator(min_length = 1, max_length = 255, pattern = r"^[!-~]+$")
        )]
        idempotency_key: Header<Option<String>>,
        body: Json<PointsBody>,
    ) -> ApiResult<PointsAnswer> {
        // Read from the request itself (see the stream route).
        let _ = idempotency_key;
        let idempotency_key = super::models::idempotency_key_header(req)?;
        let org = auth.0.scope.org_id().to_string();
        state.rate_limiter.check(&org)?;
        let _in_flight = state.org_batches.enter(&org)?;
        let points = parse_points(body.0)?;
        if points.len() > state.max_batch_events {
            return Err(ApiError::BatchTooLarge {
                got: points.len(),
                max: state.max_batch_events,
            });
        }
        let scope = auth.0.scope;
        let key = idempotency_key;
        let now = clock::now_ms();
        let dunning = state.dunning_policy;
        let result = blocking_api(move || {
            process_points(&scope, &dunning, &monitor_id, &points, key.as_deref(), now)
        })
        .await?;
        let replayed = result.is_replay().then_some(true);
        Ok(PointsAnswer::Ok(Json(result.into_inner()), replayed))
    }

    /// Stored anomalies, oldest first, with point times in `[from, to)`.
    #[oai(
        path = "/:monitor_id/anomalies",
        method = "get",
        operation_id = "listMonitorAnomalies"
    )]
    async fn anomalies(
        &self,
        auth: OrgAuth,
        monitor_id: Path<String>,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<AnomalyList>> {
        let window = (from.0.as_deref(), to.0.as_deref());
        let page = (limit.0, cursor.0.as_deref());
        Ok(Json(anomaly_page(
            &auth.0.scope,
            &monitor_id,
            window,
            page,
        )?))
    }

    /// Recent points with their scores, for charts (downsampled to `max_points`, default 500).
    #[oai(
        path = "/:monitor_id/series",
        method = "get",
        operation_id = "getMonitorSeries"
    )]
    async fn series(
        &self,
        auth: OrgAuth,
        monitor_id: Path<String>,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        #[oai(validator(minimum(value = "10"), maximum(value = "20000")))] max_points: Query<
            Option<u32>,
        >,
    ) -> ApiResult<Json<Series>> {
        let window = (from.0.as_deref(), to.0.as_deref());
        Ok(Json(series_of(
            &auth.0.scope,
            &monitor_id,
            window,
            max_points.0,
        )?))
    }

    /// Webhook deliveries of this monitor, newest first.
    #[oai(
        path = "/:monitor_id/deliveries",
        method = "get",
        operation_id = "listMonitorDeliveries"
    )]
    async fn deliveries(
        &self,
        auth: OrgAuth,
        monitor_id: Path<String>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        /// The `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<DeliveryList>> {
        let after = decode_cursor(cursor.0.as_deref())?;
        let page =
            auth.0
                .scope
                .monitor_deliveries(&monitor_id, after.as_deref(), page_limit(limit.0))?;
        Ok(Json(DeliveryList {
            next_cursor: encode_cursor(page.next_after),
            items: page
                .items
                .into_iter()
                .map(|d| DeliveryView {
                    id: d.id,
                    url: d.url,
                    event: d.event,
                    status: match d.status {
                        DeliveryStatus::Pending => "pending",
                        DeliveryStatus::Delivered => "delivered",
                        DeliveryStatus::Failed => "failed",
                    }
                    .into(),
                    attempts: d.attempts,
                    last_error: d.last_error,
                    created_at: DateTime::from_ms(d.created_at_ms),
                    delivered_at: d.delivered_at_ms.map(DateTime::from_ms),
                    body: d.body,
                })
                .collect(),
        }))
    }
}

/// A page of an org's monitors (shared with the admin views).
pub(super) fn list_page(
    scope: &OrgScope,
    limit: Option<u32>,
    cursor: Option<&str>,
) -> ApiResult<MonitorList> {
    let after = decode_cursor(cursor)?;
    let page = scope.list_monitors(after.as_deref(), page_limit(limit))?;
    Ok(MonitorList {
        items: page.items.into_iter().map(|m| view(m, &[])).collect(),
        next_cursor: encode_cursor(page.next_after),
    })
}

/// A page of a monitor's stored anomalies with point times in `[from, to)` (shared with the
/// admin views).
pub(super) fn anomaly_page(
    scope: &OrgScope,
    monitor_id: &str,
    (from, to): (Option<&str>, Option<&str>),
    (limit, cursor): (Option<u32>, Option<&str>),
) -> ApiResult<AnomalyList> {
    let after = decode_cursor(cursor)?
        .map(|c| {
            c.parse::<u64>()
                .map_err(|_| ApiError::BadRequest("cursor is not valid".into()))
        })
        .transpose()?;
    let from = parse_time_param("from", from)?.map(|ms| ms / 1000);
    let to = parse_time_param("to", to)?.map(|ms| ms / 1000);
    let page = scope.list_monitor_anomalies(monitor_id, after, from, to, page_limit(limit))?;
    Ok(AnomalyList {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: encode_cursor(page.next_after),
    })
}

/// A monitor's recent points with their scores, downsampled to `max_points` (default 500;
/// shared with the admin views).
pub(super) fn series_of(
    scope: &OrgScope,
    monitor_id: &str,
    (from, to): (Option<&str>, Option<&str>),
    max_points: Option<u32>,
) -> ApiResult<Series> {
    let from = parse_time_param("from", from)?.map(|ms| ms / 1000);
    let to = parse_time_param("to", to)?.map(|ms| ms / 1000);
    let points = scope.monitor_series(monitor_id, from, to, crate::store::MAX_SERIES_POINTS)?;
    let (points, downsampled) =
        downsample(points, max_points.unwrap_or(500).clamp(10, 20_000) as usize);
    Ok(Series {
        points: points
            .into_iter()
            .map(|p| SeriesView {
                timestamp: DateTime::from_secs(p.ts),
                value: p.value,
                score: disclosed_score(p.anomaly, p.score),
                anomaly: p.anomaly,
            })
            .collect(),
        downsampled,
    })
}
