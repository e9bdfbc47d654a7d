//! Feedback on stored anomalies and the rules it makes, in requests and answers (issue 22):
//! `POST .../anomalies/{anomaly_id}/feedback` with `{verdict, note}` for streams and monitors,
//! `GET .../rules` and `DELETE .../rules/{rule_id}`. Owns the views of
//! [`crate::core::feedback`] and [`crate::core::rules`]; the decisions are the core's and the
//! writes the store's (`store::feedback`). Rule ids are `sr_<n>` in a stream and `mr_<n>` in
//! a monitor; dispute ids `dp_<n>`.

use poem_openapi::{param::Path, payload::Json, Enum, Object, OpenApi};
use serde_json::Value;

use super::{
    auth::{OrgAuth, OrgCaller},
    error::ApiResult,
    models::{DateTime, Tag},
    name::{valid_name, Name},
    triage::{anomaly_id, anomaly_number},
};
use crate::{
    clock,
    core::{
        feedback::{Dispute, DisputeStatus, Feedback, Source, Verdict},
        rules::{Condition, Direction, MonitorMatch, Rule, StreamMatch},
    },
    store::FeedbackOutcome,
};

/// A person's verdict on an anomaly.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[oai(rename_all = "snake_case")]
pub enum VerdictKind {
    /// A real anomaly.
    Confirmed,
    /// Not an anomaly: disputes the billed detection and suppresses ones like it.
    FalsePositive,
    /// Real but expected: suppresses ones like it, and the detector learns its baseline
    /// again from here.
    Expected,
}

impl From<VerdictKind> for Verdict {
    fn from(v: VerdictKind) -> Self {
        match v {
            VerdictKind::Confirmed => Verdict::Confirmed,
            VerdictKind::FalsePositive => Verdict::FalsePositive,
            VerdictKind::Expected => Verdict::Expected,
        }
    }
}

impl From<Verdict> for VerdictKind {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Confirmed => VerdictKind::Confirmed,
            Verdict::FalsePositive => VerdictKind::FalsePositive,
            Verdict::Expected => VerdictKind::Expected,
        }
    }
}

/// Where a dispute stands.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[oai(rename_all = "snake_case")]
pub enum DisputeState {
    /// Credited: the detection is out of the period's usage.
    Accepted,
    /// Beyond the plan's share of disputes: an operator decides.
    AwaitingOperator,
    /// Refused by an operator: the detection stays billed.
    Rejected,
    /// The verdict changed before an operator decided.
    Withdrawn,
}

impl From<DisputeStatus> for DisputeState {
    fn from(s: DisputeStatus) -> Self {
        match s {
            DisputeStatus::Accepted => DisputeState::Accepted,
            DisputeStatus::AwaitingOperator => DisputeState::AwaitingOperator,
            DisputeStatus::Rejected => DisputeState::Rejected,
            DisputeStatus::Withdrawn => DisputeState::Withdrawn,
        }
    }
}

impl From<DisputeState> for DisputeStatus {
    fn from(s: DisputeState) -> Self {
        match s {
            DisputeState::Accepted => DisputeStatus::Accepted,
            DisputeState::AwaitingOperator => DisputeStatus::AwaitingOperator,
            DisputeState::Rejected => DisputeStatus::Rejected,
            DisputeState::Withdrawn => DisputeStatus::Withdrawn,
        }
    }
}

/// Which API an anomaly comes from.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[oai(rename_all = "snake_case")]
pub enum SourceKind {
    Stream,
    Monitor,
}

impl From<Source> for SourceKind {
    fn from(s: Source) -> Self {
        match s {
            Source::Stream => SourceKind::Stream,
            Source::Monitor => SourceKind::Monitor,
        }
    }
}

impl From<SourceKind> for Source {
    fn from(s: SourceKind) -> Self {
        match s {
            SourceKind::Stream => Source::Stream,
            SourceKind::Monitor => Source::Monitor,
        }
    }
}

/// A verdict on an anomaly, and why.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct FeedbackRequest {
    pub verdict: VerdictKind,
    /// Kept with the verdict (the last note is kept when this is absent).
    pub note: Option<Name>,
}

/// The feedback fields of a stored anomaly.
#[derive(Object, Default, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct FeedbackView {
    /// The verdict last given, absent until someone gives one.
    pub verdict: Option<VerdictKind>,
    pub verdict_note: Option<String>,
    /// Who gave it, as the audit log names callers (`key:<key id>`).
    pub verdict_by: Option<String>,
    pub verdict_at: Option<DateTime>,
    /// The dispute a `false_positive` filed (`dp_<n>`), and where it stands.
    pub dispute_id: Option<String>,
    pub dispute_status: Option<DisputeState>,
    /// The suppression rule this anomaly's feedback made, while it exists.
    pub rule_id: Option<String>,
}

impl FeedbackView {
    pub fn of(f: Option<&Feedback>, source: Source) -> FeedbackView {
        let Some(f) = f else {
            return FeedbackView::default();
        };
        FeedbackView {
            verdict: Some(f.verdict.into()),
            verdict_note: f.note.clone(),
            verdict_by: Some(f.given_by.clone()),
            verdict_at: Some(DateTime::from_ms(f.given_at_ms)),
            dispute_id: f.dispute.map(|d| anomaly_id("dp", d)),
            dispute_status: f.dispute_status.map(Into::into),
            rule_id: f.rule.map(|r| anomaly_id(rule_prefix(source), r)),
        }
    }
}

fn rule_prefix(source: Source) -> &'static str {
    match source {
        Source::Stream => "sr",
        Source::Monitor => "mr",
    }
}

/// A dispute of one billed detection.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DisputeView {
    /// `dp_<n>`.
    pub id: String,
    pub organization_id: String,
    pub source: SourceKind,
    /// The stream or monitor id.
    pub parent_id: String,
    pub anomaly_id: String,
    pub status: DisputeState,
    /// Start of the billing period the detection was counted in.
    pub period_start: DateTime,
    pub filed_by: String,
    pub filed_at: DateTime,
    pub note: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime>,
    /// The operator's reason for a decision.
    pub reason: Option<String>,
    /// Overage detections the credit took off the bill (0 or 1).
    pub overage_credited: u64,
}

impl From<Dispute> for DisputeView {
    fn from(d: Dispute) -> Self {
        DisputeView {
            id: anomaly_id("dp", d.id),
            anomaly_id: d.anomaly_id(),
            organization_id: d.org_id,
            source: d.source.into(),
            parent_id: d.parent,
            status: d.status.into(),
            period_start: DateTime::from_ms(d.period_start_ms),
            filed_by: d.filed_by,
            filed_at: DateTime::from_ms(d.filed_at_ms),
            note: d.note,
            decided_by: d.decided_by,
            decided_at: d.decided_at_ms.map(DateTime::from_ms),
            reason: d.reason,
            overage_credited: d.overage_credited,
        }
    }
}

/// What a verdict did.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct FeedbackResult {
    pub anomaly_id: String,
    #[oai(flatten)]
    pub feedback: FeedbackView,
    /// The anomaly's dispute, for a `false_positive`: `accepted` (the detection is out of
    /// the period's usage) or `awaiting_operator` (beyond the plan's share of disputes).
    pub dispute: Option<DisputeView>,
    /// True when this verdict (`expected`) restarted the detector's baseline: it learns
    /// again from the next data, with a fresh warm-up.
    pub rebased: bool,
}

fn result<A>(
    id: &str,
    source: Source,
    outcome: FeedbackOutcome<A>,
    feedback: Option<&Feedback>,
) -> FeedbackResult {
    FeedbackResult {
        anomaly_id: id.to_string(),
        feedback: FeedbackView::of(feedback, source),
        dispute: outcome.dispute.map(Into::into),
        rebased: outcome.rebased,
    }
}

impl FeedbackRequest {
    fn parts(&self) -> ApiResult<(Verdict, Option<String>)> {
        let note = self
            .note
            .as_ref()
            .map(|n| valid_name("note", &n.0))
            .transpose()?;
        Ok((self.verdict.into(), note))
    }
}

/// One condition of a stream rule.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ConditionView {
    /// `equals`, `between` or `template`.
    pub kind: String,
    /// The event's field (a flattened path: `a.b`, `a[0]`).
    pub field: String,
    /// For `equals`: the value.
    pub value: Option<Value>,
    /// For `between`: the range of numbers.
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// For `template`: the message template (variable tokens masked as `<*>`).
    pub template: Option<String>,
}

impl From<&Condition> for ConditionView {
    fn from(c: &Condition) -> Self {
        let mut view = ConditionView {
            kind: String::new(),
            field: c.field().to_string(),
            value: None,
            low: None,
            high: None,
            template: None,
        };
        match c {
            Condition::Equals { value, .. } => {
                view.kind = "equals".into();
                view.value = Some(value.clone());
            }
            Condition::Between { low, high, .. } => {
                view.kind = "between".into();
                view.low = Some(*low);
                view.high = Some(*high);
            }
            Condition::Template { template, .. } => {
                view.kind = "template".into();
                view.template = Some(template.clone());
            }
        }
        view
    }
}

/// A stream's suppression rule: a flagged event it covers is not an anomaly.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct StreamRuleView {
    /// `sr_<n>`: the rule of anomaly `sa_<n>`.
    pub id: String,
    /// The anomaly whose feedback made it.
    pub anomaly_id: String,
    pub verdict: VerdictKind,
    /// What it covers, in one sentence.
    pub description: String,
    /// Every condition must hold.
    pub conditions: Vec<ConditionView>,
    /// The fields an event may be flagged for and still be covered (`(event)` for the
    /// event as a whole).
    pub covers: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime,
}

impl From<Rule<StreamMatch>> for StreamRuleView {
    fn from(r: Rule<StreamMatch>) -> Self {
        StreamRuleView {
            id: anomaly_id("sr", r.number),
            anomaly_id: anomaly_id("sa", r.anomaly_seq),
            verdict: r.verdict.into(),
            description: r.matcher.describe(),
            conditions: r.matcher.conditions.iter().map(Into::into).collect(),
            covers: r.matcher.covers,
            created_by: r.created_by,
            created_at: DateTime::from_ms(r.created_at_ms),
        }
    }
}

/// A monitor's suppression rule: an alarm on a value it covers is not an anomaly.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MonitorRuleView {
    /// `mr_<n>`: the rule of anomaly `ma_<n>`.
    pub id: String,
    pub anomaly_id: String,
    pub verdict: VerdictKind,
    pub description: String,
    /// `above` or `below` the expected range.
    pub direction: String,
    /// The values covered, `[low, high]`.
    pub low: f64,
    pub high: f64,
    pub created_by: String,
    pub created_at: DateTime,
}

impl From<Rule<MonitorMatch>> for MonitorRuleView {
    fn from(r: Rule<MonitorMatch>) -> Self {
        MonitorRuleView {
            id: anomaly_id("mr", r.number),
            anomaly_id: anomaly_id("ma", r.anomaly_seq),
            verdict: r.verdict.into(),
            description: r.matcher.describe(),
            direction: match r.matcher.direction {
                Direction::Above => "above",
                Direction::Below => "below",
            }
            .into(),
            low: r.matcher.low,
            high: r.matcher.high,
            created_by: r.created_by,
            created_at: DateTime::from_ms(r.created_at_ms),
        }
    }
}

#[derive(Object)]
pub struct StreamRuleList {
    pub items: Vec<StreamRuleView>,
}

#[derive(Object)]
pub struct MonitorRuleList {
    pub items: Vec<MonitorRuleView>,
}

pub struct FeedbackApi;

#[OpenApi(prefix_path = "/v1", tag = "Tag::Anomalies")]
impl FeedbackApi {
    /// Give a verdict on a stored anomaly of a stream: `confirmed`, `false_positive` (disputes
    /// the billed detection, once, and suppresses events like it) or `expected` (suppresses
    /// events like it and restarts the stream's baseline). A dispute within the plan's share
    /// of the period's detections is accepted at once; beyond it, it waits for an operator.
    #[oai(
        path = "/streams/:stream_id/anomalies/:anomaly_id/feedback",
        method = "post",
        operation_id = "giveStreamAnomalyFeedback"
    )]
    async fn stream_feedback(
        &self,
        auth: OrgAuth,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:-]{1,128}$"))] stream_id: Path<String>,
        #[oai(validator(pattern = r"^sa_[1-9][0-9]{0,19}$"))] anomaly_id: Path<String>,
        body: Json<FeedbackRequest>,
    ) -> ApiResult<Json<FeedbackResult>> {
        let seq = anomaly_number("sa", &anomaly_id)?;
        let verdict = body.parts()?;
        let OrgCaller { scope, actor } = auth.0;
        let now = clock::now_ms();
        let id = anomaly_id.0.clone();
        let outcome = super::blocking(move || {
            scope.give_stream_feedback(&stream_id, (seq, &anomaly_id), verdict, &actor, now)
        })
        .await?;
        let feedback = outcome.anomaly.feedback.clone();
        Ok(Json(result(
            &id,
            Source::Stream,
            outcome,
            feedback.as_ref(),
        )))
    }

    /// Give a verdict on a stored anomaly of a monitor: `confirmed`, `false_positive`
    /// (disputes the billed detection, once, and suppresses alarms like it) or `expected`
    /// (suppresses alarms like it and restarts the monitor's baseline).
    #[oai(
        path = "/monitors/:monitor_id/anomalies/:anomaly_id/feedback",
        method = "post",
        operation_id = "giveMonitorAnomalyFeedback"
    )]
    async fn monitor_feedback(
        &self,
        auth: OrgAuth,
        monitor_id: Path<String>,
        #[oai(validator(pattern = r"^ma_[1-9][0-9]{0,19}$"))] anomaly_id: Path<String>,
        body: Json<FeedbackRequest>,
    ) -> ApiResult<Json<FeedbackResult>> {
        let seq = anomaly_number("ma", &anomaly_id)?;
        let verdict = body.parts()?;
        let OrgCaller { scope, actor } = auth.0;
        let now = clock::now_ms();
        let id = anomaly_id.0.clone();
        let outcome = super::blocking(move || {
            scope.give_monitor_feedback(&monitor_id, (seq, &anomaly_id), verdict, &actor, now)
        })
        .await?;
        let feedback = outcome.anomaly.feedback.clone();
        Ok(Json(result(
            &id,
            Source::Monitor,
            outcome,
            feedback.as_ref(),
        )))
    }

    /// The stream's suppression rules, made from `false_positive` and `expected` verdicts.
    #[oai(
        path = "/streams/:stream_id/rules",
        method = "get",
        operation_id = "listStreamRules"
    )]
    async fn stream_rules(
        &self,
        auth: OrgAuth,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:-]{1,128}$"))] stream_id: Path<String>,
    ) -> ApiResult<Json<StreamRuleList>> {
        let rules = auth.0.scope.stream_rules(&stream_id)?;
        Ok(Json(StreamRuleList {
            items: rules.into_iter().map(Into::into).collect(),
        }))
    }

    /// Delete a stream's rule: the events it covered are flagged (and counted) again.
    #[oai(
        path = "/streams/:stream_id/rules/:rule_id",
        method = "delete",
        operation_id = "deleteStreamRule"
    )]
    async fn delete_stream_rule(
        &self,
        auth: OrgAuth,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:-]{1,128}$"))] stream_id: Path<String>,
        #[oai(validator(pattern = r"^sr_[1-9][0-9]{0,19}$"))] rule_id: Path<String>,
    ) -> ApiResult<Json<StreamRuleView>> {
        let number = rule_number("sr", &rule_id)?;
        let scope = auth.0.scope;
        let rule =
            super::blocking(move || scope.delete_stream_rule(&stream_id, (number, &rule_id)))
                .await?;
        Ok(Json(rule.into()))
    }

    /// The monitor's suppression rules, made from `false_positive` and `expected` verdicts.
    #[oai(
        path = "/monitors/:monitor_id/rules",
        method = "get",
        operation_id = "listMonitorRules"
    )]
    async fn monitor_rules(
        &self,
        auth: OrgAuth,
        monitor_id: Path<String>,
    ) -> ApiResult<Json<MonitorRuleList>> {
        let rules = auth.0.scope.monitor_rules(&monitor_id)?;
        Ok(Json(MonitorRuleList {
            items: rules.into_iter().map(Into::into).collect(),
        }))
    }

    /// Delete a monitor's rule: the alarms it covered are raised (and counted) again.
    #[oai(
        path = "/monitors/:monitor_id/rules/:rule_id",
        method = "delete",
        operation_id = "deleteMonitorRule"
    )]
    async fn delete_monitor_rule(
        &self,
        auth: OrgAuth,
        monitor_id: Path<String>,
        #[oai(validator(pattern = r"^mr_[1-9][0-9]{0,19}$"))] rule_id: Path<String>,
    ) -> ApiResult<Json<MonitorRuleView>> {
        let number = rule_number("mr", &rule_id)?;
        let scope = auth.0.scope;
        let rule =
            super::blocking(move || scope.delete_monitor_rule(&monitor_id, (number, &rule_id)))
                .await?;
        Ok(Json(rule.into()))
    }
}

/// `sr_3` -> 3; 404 naming the rule otherwise.
fn rule_number(prefix: &str, id: &str) -> ApiResult<u64> {
    anomaly_number(prefix, id).map_err(|_| super::error::ApiError::NotFound {
        entity: "rule",
        id: id.to_string(),
    })
}
