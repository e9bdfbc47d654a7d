//! Feedback on stored anomalies in the store (issue 22): the verdict on the anomaly, the
//! dispute it files and the credit an accepted dispute gives, the suppression rule it makes,
//! and the rebase an `expected` verdict asks for, all in one write transaction, so a dispute
//! credits its detection exactly once however many requests race. The decisions are the
//! core's (`core::feedback`, `core::rules`).
//!
//! The credit: an accepted dispute takes its detection out of the usage of the period it was
//! counted in (total, included, overage and the estimate are repriced with the plan that
//! period was priced with). When the detection was overage, the credit comes off the overage
//! still waiting for Stripe in that period; when that was already batched, it is kept as a
//! meter credit of the org (`METER_CREDIT`) and netted from the org's next meter batches,
//! never below zero. A period that has closed is credited the same way: its counters are
//! lowered, and because its Stripe invoice is final, its overage credit lands on the next
//! invoice through that netting.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::json;

use super::{
    codec::{self, Versioned},
    monitors::{MonitorAnomaly, MonitorRecord},
    outbox,
    plans::read_plan,
    scoped,
    streams::{StoredAnomaly, StreamRecord},
    tables, OrgRecord, OrgScope, Store, StoreError,
};
use crate::core::{
    detect::event_fields,
    feedback::{accept_at_once, Dispute, DisputeStatus, Feedback, FeedbackChange, Source, Verdict},
    metering::{period::Period, usage::Usage},
    rules::{MonitorMatch, Rule, StreamMatch},
};

/// Rules one stream or monitor holds at most.
pub const MAX_RULES: u64 = 200;

impl Versioned for Dispute {
    const KIND: &'static str = "dispute";
    const VERSION: u8 = 1;
}

impl Versioned for Rule<StreamMatch> {
    const KIND: &'static str = "stream rule";
    const VERSION: u8 = 1;
}

impl Versioned for Rule<MonitorMatch> {
    const KIND: &'static str = "monitor rule";
    const VERSION: u8 = 1;
}

type Numbered = TableDefinition<'static, (&'static str, &'static str, u64), &'static [u8]>;

/// A stored anomaly that takes feedback: where it and its rules live, and what its rule is.
pub(super) trait Judged: Versioned + Clone {
    const SOURCE: Source;
    const ANOMALIES: Numbered;
    const RULES: Numbered;
    type Matcher: Serialize + DeserializeOwned + Clone;

    fn feedback(&self) -> Option<&Feedback>;
    fn set_feedback(&mut self, feedback: Feedback);
    fn detected_at_ms(&self) -> i64;
    /// The rule its explanation makes (None when it names nothing a rule can hold to).
    fn matcher(&self) -> Option<Self::Matcher>;
    /// Restarts the detector of `parent` (it learns its baseline again from the next data).
    fn rebase(tx: &WriteTransaction, org: &str, parent: &str) -> Result<(), StoreError>;
}

impl Judged for StoredAnomaly {
    const SOURCE: Source = Source::Stream;
    const ANOMALIES: Numbered = tables::STREAM_ANOMALIES;
    const RULES: Numbered = tables::STREAM_RULES;
    type Matcher = StreamMatch;

    fn feedback(&self) -> Option<&Feedback> {
        self.feedback.as_ref()
    }
    fn set_feedback(&mut self, feedback: Feedback) {
        self.feedback = Some(feedback);
    }
    fn detected_at_ms(&self) -> i64 {
        self.at_ms
    }
    fn matcher(&self) -> Option<StreamMatch> {
        let rule = StreamMatch::from_findings(&self.findings, &event_fields(&self.event));
        (!rule.conditions.is_empty()).then_some(rule)
    }
    fn rebase(tx: &WriteTransaction, org: &str, parent: &str) -> Result<(), StoreError> {
        let tables = (tables::STREAMS, tables::STREAM_STATE);
        restart_baseline(tx, tables, (org, parent), |r: &mut StreamRecord| {
            r.version += 1;
            r.baseline_from_event = r.events_seen;
        })
    }
}

impl Judged for MonitorAnomaly {
    const SOURCE: Source = Source::Monitor;
    const ANOMALIES: Numbered = tables::MONITOR_ANOMALIES;
    const RULES: Numbered = tables::MONITOR_RULES;
    type Matcher = MonitorMatch;

    fn feedback(&self) -> Option<&Feedback> {
        self.feedback.as_ref()
    }
    fn set_feedback(&mut self, feedback: Feedback) {
        self.feedback = Some(feedback);
    }
    fn detected_at_ms(&self) -> i64 {
        self.detected_at_ms
    }
    fn matcher(&self) -> Option<MonitorMatch> {
        MonitorMatch::from_explanation(&self.explanation)
    }
    fn rebase(tx: &WriteTransaction, org: &str, parent: &str) -> Result<(), StoreError> {
        let tables = (tables::MONITORS, tables::MONITOR_STATE);
        restart_baseline(tx, tables, (org, parent), |r: &mut MonitorRecord| {
            r.version += 1;
            r.baseline_from_point = r.points_seen;
        })
    }
}

type Keyed = TableDefinition<'static, (&'static str, &'static str), &'static [u8]>;

/// Marks the record of `key` (a stream or a monitor) with `mark` and drops its detector
/// state, so the next batch starts a fresh detector with a fresh warm-up.
fn restart_baseline<R: Versioned>(
    tx: &WriteTransaction,
    (records, states): (Keyed, Keyed),
    key: (&str, &str),
    mark: impl FnOnce(&mut R),
) -> Result<(), StoreError> {
    let mut table = tx.open_table(records)?;
    let mut record: R = match table.get(key)? {
        Some(b) => codec::decode(b.value())?,
        None => return Err(StoreError::not_found(R::KIND, key.1)),
    };
    mark(&mut record);
    table.insert(key, codec::encode(&record).as_slice())?;
    tx.open_table(states)?.remove(key)?;
    Ok(())
}

/// What giving feedback did.
#[derive(Debug, Clone)]
pub struct FeedbackOutcome<A> {
    pub anomaly: A,
    /// The anomaly's dispute as it stands after the call, if it has one.
    pub dispute: Option<Dispute>,
    /// The anomaly's rule after the call, if it has one.
    pub rule: Option<u64>,
    /// Whether the detector was told to learn its baseline again.
    pub rebased: bool,
}

fn read_dispute(
    disputes: &impl ReadableTable<u64, &'static [u8]>,
    id: u64,
) -> Result<Dispute, StoreError> {
    match disputes.get(id)? {
        Some(b) => codec::decode(b.value()),
        None => Err(StoreError::Corrupt(format!("dispute {id} is missing"))),
    }
}

fn org_of(tx: &WriteTransaction, org_id: &str) -> Result<OrgRecord, StoreError> {
    match tx.open_table(tables::ORGS)?.get(org_id)? {
        Some(b) => codec::decode(b.value()),
        None => Err(StoreError::not_found("organization", org_id)),
    }
}

/// The usage of `period` as stored (with the plan it was priced with), for a credit.
fn period_usage(
    tx: &WriteTransaction,
    org: &OrgRecord,
    period: Period,
) -> Result<(Usage, crate::core::metering::plans::Plan), StoreError> {
    let plans = tx.open_table(tables::PLANS)?;
    let usage = tx.open_table(tables::USAGE)?;
    let current = read_plan(&plans, &org.plan)?;
    let stored: Option<Usage> = usage
        .get((org.id.as_str(), period.start_ms))?
        .map(|b| codec::decode(b.value()))
        .transpose()?;
    let usage = stored.unwrap_or_else(|| Usage::new(period, &current));
    let plan = if usage.plan_id == current.id {
        current
    } else {
        read_plan(&plans, &usage.plan_id).unwrap_or(current)
    };
    Ok((usage, plan))
}

/// Takes one detection out of `period`'s usage and off what Stripe will be sent; answers the
/// overage detections credited and where the credit went (`pending` or `meter_credit`).
fn credit(
    tx: &WriteTransaction,
    org: &OrgRecord,
    period: Period,
) -> Result<(u64, Option<&'static str>), StoreError> {
    let (mut usage, plan) = period_usage(tx, org, period)?;
    let overage = usage.credit_one(&plan);
    tx.open_table(tables::USAGE)?.insert(
        (org.id.as_str(), period.start_ms),
        codec::encode(&usage).as_slice(),
    )?;
    if overage == 0 || plan.overage_millicents.is_none() {
        return Ok((overage, None));
    }
    let key = (org.id.as_str(), period.start_ms);
    let mut pending = tx.open_table(tables::METER_PENDING)?;
    let waiting = pending.get(key)?.map(|v| v.value()).unwrap_or(0);
    if waiting >= overage {
        if waiting == overage {
            pending.remove(key)?;
        } else {
            pending.insert(key, waiting - overage)?;
        }
        return Ok((overage, Some("pending")));
    }
    drop(pending);
    let mut credits = tx.open_table(tables::METER_CREDIT)?;
    let owed = credits
        .get(org.id.as_str())?
        .map(|v| v.value())
        .unwrap_or(0);
    credits.insert(org.id.as_str(), owed.saturating_add(overage))?;
    Ok((overage, Some("meter_credit")))
}

/// Accepts `dispute` inside `tx`: credits its detection and records the billing action.
fn accept(
    tx: &WriteTransaction,
    dispute: &mut Dispute,
    actor: &str,
    reason: Option<String>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let org = org_of(tx, &dispute.org_id)?;
    let (overage, credited_to) = credit(tx, &org, Period::containing(dispute.period_start_ms))?;
    dispute.status = DisputeStatus::Accepted;
    dispute.overage_credited = overage;
    dispute.decided_by = Some(actor.to_string());
    dispute.decided_at_ms = Some(now_ms);
    dispute.reason = reason;
    let detail = json!({
        "dispute": dispute.id,
        "anomaly_id": dispute.anomaly_id(),
        "source": dispute.source.as_str(),
        "parent": dispute.parent,
        "filed_by": dispute.filed_by,
        "period_start_ms": dispute.period_start_ms,
        "overage_credited": overage,
        "credited_to": credited_to,
        "reason": dispute.reason,
    });
    outbox::record_billing_action(
        tx,
        Some(&dispute.org_id),
        actor,
        "dispute_accepted",
        detail,
        now_ms,
    )
}

fn save_dispute(tx: &WriteTransaction, dispute: &Dispute) -> Result<(), StoreError> {
    tx.open_table(tables::DISPUTES)?
        .insert(dispute.id, codec::encode(dispute).as_slice())?;
    Ok(())
}

/// Files the dispute of anomaly `seq` of `parent`: accepted at once within the plan's share,
/// otherwise waiting for an operator.
fn file_dispute(
    tx: &WriteTransaction,
    (org_id, source, parent, seq): (&str, Source, &str, u64),
    detected_at_ms: i64,
    note: Option<String>,
    (actor, now_ms): (&str, i64),
) -> Result<Dispute, StoreError> {
    let org = org_of(tx, org_id)?;
    let period = Period::containing(detected_at_ms);
    let (usage, _) = period_usage(tx, &org, period)?;
    let share = read_plan(&tx.open_table(tables::PLANS)?, &org.plan)?.dispute_share_percent;
    let id = {
        let disputes = tx.open_table(tables::DISPUTES)?;
        let last = disputes.last()?.map(|(k, _)| k.value());
        last.unwrap_or(0) + 1
    };
    let mut dispute = Dispute {
        id,
        org_id: org_id.to_string(),
        source,
        parent: parent.to_string(),
        anomaly_seq: seq,
        period_start_ms: period.start_ms,
        status: DisputeStatus::AwaitingOperator,
        filed_by: actor.to_string(),
        filed_at_ms: now_ms,
        note,
        decided_by: None,
        decided_at_ms: None,
        reason: None,
        overage_credited: 0,
    };
    if accept_at_once(usage.disputed_calls, usage.counted_calls(), share) {
        accept(tx, &mut dispute, actor, None, now_ms)?;
    } else {
        let detail = json!({
            "dispute": id,
            "anomaly_id": dispute.anomaly_id(),
            "source": source.as_str(),
            "parent": parent,
            "period_start_ms": period.start_ms,
            "accepted_this_period": usage.disputed_calls,
            "counted_this_period": usage.counted_calls(),
            "share_percent": share,
        });
        outbox::record_billing_action(tx, Some(org_id), actor, "dispute_queued", detail, now_ms)?;
    }
    save_dispute(tx, &dispute)?;
    Ok(dispute)
}

fn rule_count(
    rules: &impl ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
    org: &str,
    parent: &str,
) -> Result<u64, StoreError> {
    Ok(rules
        .range((org, parent, 0)..=(org, parent, u64::MAX))?
        .count() as u64)
}

/// Gives `verdict` on anomaly `seq` of `parent`, with everything it sets in motion.
fn give<A: Judged>(
    tx: &WriteTransaction,
    (org, parent, seq, id): (&str, &str, u64, &str),
    (verdict, note): (Verdict, Option<String>),
    actor: &str,
    now_ms: i64,
) -> Result<FeedbackOutcome<A>, StoreError>
where
    Rule<A::Matcher>: Versioned,
{
    let mut anomaly: A = {
        let table = tx.open_table(A::ANOMALIES)?;
        scoped::get_numbered(&table, (org, parent, seq), ("anomaly", id))?
    };
    let dispute_now = match anomaly.feedback().and_then(|f| f.dispute) {
        Some(d) => Some(read_dispute(&tx.open_table(tables::DISPUTES)?, d)?),
        None => None,
    };
    let change = Feedback::changed(
        anomaly.feedback(),
        dispute_now.as_ref().map(|d| d.status),
        (verdict, note.clone()),
        actor,
        now_ms,
    )
    .map_err(|e| StoreError::Refused {
        code: "dispute_settled",
        message: format!("anomaly {id}: {e}"),
    })?;
    let Some(FeedbackChange {
        mut feedback,
        file_dispute: files,
        withdraw_dispute,
        make_rule,
        drop_rule,
        rebase,
    }) = change
    else {
        let rule = anomaly.feedback().and_then(|f| f.rule);
        return Ok(FeedbackOutcome {
            anomaly,
            dispute: dispute_now,
            rule,
            rebased: false,
        });
    };
    let mut dispute = dispute_now;
    if let (true, Some(d)) = (withdraw_dispute, dispute.as_mut()) {
        d.status = DisputeStatus::Withdrawn;
        feedback.dispute_status = Some(d.status);
        d.decided_by = Some(actor.to_string());
        d.decided_at_ms = Some(now_ms);
        save_dispute(tx, d)?;
        let detail = json!({"dispute": d.id, "anomaly_id": id, "verdict": verdict.as_str()});
        outbox::record_billing_action(tx, Some(org), actor, "dispute_withdrawn", detail, now_ms)?;
    }
    if files {
        let filed = file_dispute(
            tx,
            (org, A::SOURCE, parent, seq),
            anomaly.detected_at_ms(),
            note,
            (actor, now_ms),
        )?;
        feedback.dispute = Some(filed.id);
        feedback.dispute_status = Some(filed.status);
        dispute = Some(filed);
    }
    let mut rules = tx.open_table(A::RULES)?;
    if drop_rule {
        if let Some(old) = anomaly.feedback().and_then(|f| f.rule) {
            rules.remove((org, parent, old))?;
        }
    }
    if make_rule {
        if let Some(matcher) = anomaly.matcher() {
            if rule_count(&rules, org, parent)? >= MAX_RULES {
                return Err(StoreError::Refused {
                    code: "rule_limit",
                    message: format!(
                        "{} {parent} holds {MAX_RULES} rules, the most it may; delete one first",
                        A::SOURCE.as_str()
                    ),
                });
            }
            // A rule is numbered by its anomaly (`sr_12` is the rule of `sa_12`): each anomaly
            // holds at most one, so a number never names two different rules.
            let number = seq;
            let rule = Rule {
                number,
                anomaly_seq: seq,
                verdict,
                matcher,
                created_by: actor.to_string(),
                created_at_ms: now_ms,
            };
            rules.insert((org, parent, number), codec::encode(&rule).as_slice())?;
            feedback.rule = Some(number);
        }
    }
    drop(rules);
    if rebase {
        A::rebase(tx, org, parent)?;
    }
    let rule = feedback.rule;
    anomaly.set_feedback(feedback);
    tx.open_table(A::ANOMALIES)?
        .insert((org, parent, seq), codec::encode(&anomaly).as_slice())?;
    Ok(FeedbackOutcome {
        anomaly,
        dispute,
        rule,
        rebased: rebase,
    })
}

/// The numbered rules under `(org, parent)`, in number order.
pub(super) fn rules_of<M>(
    tx: &redb::ReadTransaction,
    table: Numbered,
    org: &str,
    parent: &str,
) -> Result<Vec<Rule<M>>, StoreError>
where
    Rule<M>: Versioned,
{
    let rules = tx.open_table(table)?;
    let mut out = Vec::new();
    for row in rules.range((org, parent, 0)..=(org, parent, u64::MAX))? {
        out.push(codec::decode(row?.1.value())?);
    }
    Ok(out)
}

/// Deletes rule `number` under `(org, parent)` and clears it from the anomaly that made it.
fn delete_rule<A: Judged>(
    tx: &WriteTransaction,
    (org, parent, number, id): (&str, &str, u64, &str),
) -> Result<Rule<A::Matcher>, StoreError>
where
    Rule<A::Matcher>: Versioned,
{
    let rule: Rule<A::Matcher> = {
        let mut rules = tx.open_table(A::RULES)?;
        let rule = scoped::get_numbered(&rules, (org, parent, number), ("rule", id))?;
        rules.remove((org, parent, number))?;
        rule
    };
    let mut anomalies = tx.open_table(A::ANOMALIES)?;
    let key = (org, parent, rule.anomaly_seq);
    let found: Option<A> = anomalies
        .get(key)?
        .map(|b| codec::decode(b.value()))
        .transpose()?;
    if let Some(mut anomaly) = found {
        if let Some(mut f) = anomaly.feedback().cloned() {
            if f.rule == Some(number) {
                f.rule = None;
                anomaly.set_feedback(f);
                anomalies.insert(key, codec::encode(&anomaly).as_slice())?;
            }
        }
    }
    Ok(rule)
}

impl OrgScope {
    /// Gives a verdict on stored anomaly `seq` of a stream (`id` is its name in answers).
    pub fn give_stream_feedback(
        &self,
        stream_id: &str,
        (seq, id): (u64, &str),
        verdict: (Verdict, Option<String>),
        actor: &str,
        now_ms: i64,
    ) -> Result<FeedbackOutcome<StoredAnomaly>, StoreError> {
        self.get_stream(stream_id)?;
        let tx = self.store.db()?.begin_write()?;
        let key = (self.org_id.as_str(), stream_id, seq, id);
        let outcome = give(&tx, key, verdict, actor, now_ms)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Gives a verdict on stored anomaly `seq` of a monitor (`id` is its name in answers).
    pub fn give_monitor_feedback(
        &self,
        monitor_id: &str,
        (seq, id): (u64, &str),
        verdict: (Verdict, Option<String>),
        actor: &str,
        now_ms: i64,
    ) -> Result<FeedbackOutcome<MonitorAnomaly>, StoreError> {
        self.get_monitor(monitor_id)?;
        let tx = self.store.db()?.begin_write()?;
        let key = (self.org_id.as_str(), monitor_id, seq, id);
        let outcome = give(&tx, key, verdict, actor, now_ms)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// The dispute `id` of this org.
    pub fn get_dispute(&self, id: u64) -> Result<Dispute, StoreError> {
        let tx = self.store.db()?.begin_read()?;
        let found: Option<Dispute> = tx
            .open_table(tables::DISPUTES)?
            .get(id)?
            .map(|b| codec::decode(b.value()))
            .transpose()?;
        found
            .filter(|d| d.org_id == self.org_id)
            .ok_or_else(|| StoreError::not_found("dispute", format!("dp_{id}")))
    }

    pub fn stream_rules(&self, stream_id: &str) -> Result<Vec<Rule<StreamMatch>>, StoreError> {
        self.get_stream(stream_id)?;
        let tx = self.store.db()?.begin_read()?;
        rules_of(&tx, tables::STREAM_RULES, &self.org_id, stream_id)
    }

    pub fn monitor_rules(&self, monitor_id: &str) -> Result<Vec<Rule<MonitorMatch>>, StoreError> {
        self.get_monitor(monitor_id)?;
        let tx = self.store.db()?.begin_read()?;
        rules_of(&tx, tables::MONITOR_RULES, &self.org_id, monitor_id)
    }

    /// Deletes rule `number` of a stream: events it covered are flagged again.
    pub fn delete_stream_rule(
        &self,
        stream_id: &str,
        (number, id): (u64, &str),
    ) -> Result<Rule<StreamMatch>, StoreError> {
        self.get_stream(stream_id)?;
        let tx = self.store.db()?.begin_write()?;
        let key = (self.org_id.as_str(), stream_id, number, id);
        let rule = delete_rule::<StoredAnomaly>(&tx, key)?;
        tx.commit()?;
        Ok(rule)
    }

    /// Deletes rule `number` of a monitor: alarms it covered are raised again.
    pub fn delete_monitor_rule(
        &self,
        monitor_id: &str,
        (number, id): (u64, &str),
    ) -> Result<Rule<MonitorMatch>, StoreError> {
        self.get_monitor(monitor_id)?;
        let tx = self.store.db()?.begin_write()?;
        let key = (self.org_id.as_str(), monitor_id, number, id);
        let rule = delete_rule::<MonitorAnomaly>(&tx, key)?;
        tx.commit()?;
        Ok(rule)
    }
}

/// Copies a decided dispute's status onto its anomaly, while the anomaly is stored.
fn sync_dispute_status<A: Judged>(tx: &WriteTransaction, d: &Dispute) -> Result<(), StoreError> {
    let mut anomalies = tx.open_table(A::ANOMALIES)?;
    let key = (d.org_id.as_str(), d.parent.as_str(), d.anomaly_seq);
    let found: Option<A> = anomalies
        .get(key)?
        .map(|b| codec::decode(b.value()))
        .transpose()?;
    if let Some(mut anomaly) = found {
        if let Some(mut f) = anomaly.feedback().cloned() {
            if f.dispute == Some(d.id) {
                f.dispute_status = Some(d.status);
                anomaly.set_feedback(f);
                anomalies.insert(key, codec::encode(&anomaly).as_slice())?;
            }
        }
    }
    Ok(())
}

/// Dispute figures of one org: how many of each status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisputeCounts {
    pub accepted: u64,
    pub awaiting_operator: u64,
    pub rejected: u64,
    pub withdrawn: u64,
    /// Overage detections credited by accepted disputes.
    pub overage_credited: u64,
}

impl Store {
    /// Disputes newest first, of one org or all, of one status or all, below id `before`.
    pub fn list_disputes(
        &self,
        org_id: Option<&str>,
        status: Option<DisputeStatus>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Dispute>, Option<u64>), StoreError> {
        let tx = self.db()?.begin_read()?;
        let disputes = tx.open_table(tables::DISPUTES)?;
        let mut items = Vec::new();
        for row in disputes.range(..before.unwrap_or(u64::MAX))?.rev() {
            let d: Dispute = codec::decode(row?.1.value())?;
            if org_id.is_some_and(|o| o != d.org_id) || status.is_some_and(|s| s != d.status) {
                continue;
            }
            if items.len() == limit {
                let next = items.last().map(|d: &Dispute| d.id);
                return Ok((items, next));
            }
            items.push(d);
        }
        Ok((items, None))
    }

    /// How many disputes of each status an org has, and the overage they credited.
    pub fn dispute_counts(&self, org_id: &str) -> Result<DisputeCounts, StoreError> {
        let tx = self.db()?.begin_read()?;
        let mut counts = DisputeCounts::default();
        for row in tx.open_table(tables::DISPUTES)?.iter()? {
            let d: Dispute = codec::decode(row?.1.value())?;
            if d.org_id != org_id {
                continue;
            }
            match d.status {
                DisputeStatus::Accepted => counts.accepted += 1,
                DisputeStatus::AwaitingOperator => counts.awaiting_operator += 1,
                DisputeStatus::Rejected => counts.rejected += 1,
                DisputeStatus::Withdrawn => counts.withdrawn += 1,
            }
            counts.overage_credited += d.overage_credited;
        }
        Ok(counts)
    }

    /// An operator's decision on a dispute that waits for one: accept (credit the detection)
    /// or reject (it stays billed), with a reason. Any other dispute is refused
    /// (`dispute_not_waiting`), so a decision counts once.
    pub fn decide_dispute(
        &self,
        id: u64,
        accept_it: bool,
        reason: Option<String>,
        actor: &str,
        now_ms: i64,
    ) -> Result<Dispute, StoreError> {
        let tx = self.db()?.begin_write()?;
        let found: Option<Dispute> = tx
            .open_table(tables::DISPUTES)?
            .get(id)?
            .map(|b| codec::decode(b.value()))
            .transpose()?;
        let mut dispute =
            found.ok_or_else(|| StoreError::not_found("dispute", format!("dp_{id}")))?;
        if dispute.status != DisputeStatus::AwaitingOperator {
            return Err(StoreError::Refused {
                code: "dispute_not_waiting",
                message: format!(
                    "dispute dp_{id} is {}, not awaiting_operator; only a waiting dispute is decided",
                    dispute.status.as_str()
                ),
            });
        }
        if accept_it {
            accept(&tx, &mut dispute, actor, reason, now_ms)?;
        } else {
            dispute.status = DisputeStatus::Rejected;
            dispute.decided_by = Some(actor.to_string());
            dispute.decided_at_ms = Some(now_ms);
            dispute.reason = reason;
            let detail = json!({
                "dispute": id,
                "anomaly_id": dispute.anomaly_id(),
                "source": dispute.source.as_str(),
                "parent": dispute.parent,
                "filed_by": dispute.filed_by,
                "reason": dispute.reason,
            });
            outbox::record_billing_action(
                &tx,
                Some(&dispute.org_id),
                actor,
                "dispute_rejected",
                detail,
                now_ms,
            )?;
        }
        save_dispute(&tx, &dispute)?;
        match dispute.source {
            Source::Stream => sync_dispute_status::<StoredAnomaly>(&tx, &dispute)?,
            Source::Monitor => sync_dispute_status::<MonitorAnomaly>(&tx, &dispute)?,
        }
        tx.commit()?;
        Ok(dispute)
    }

    /// Overage detections credited by disputes and not yet netted from a meter batch.
    pub fn meter_credit(&self, org_id: &str) -> Result<u64, StoreError> {
        let tx = self.db()?.begin_read()?;
        let credits = tx.open_table(tables::METER_CREDIT)?;
        Ok(credits.get(org_id)?.map(|v| v.value()).unwrap_or(0))
    }
}
