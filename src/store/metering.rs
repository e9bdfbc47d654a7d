//! Metering in the store: usage counters per org and period, quota policies and plan changes.
//! Counting detections, raising the alerts it crosses (email outbox rows) and asking for an
//! early invoice (billing action) happen in one write transaction, so concurrent calls can
//! neither lose a count nor send an alert twice. The decisions themselves are the core's.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde_json::json;

use super::{
    codec::{self, Versioned},
    idempotency::{self, Prior},
    outbox::{self, NewEmail},
    plans::read_plan,
    tables, OrgRecord, OrgScope, Page, Store, StoreError,
};
use crate::core::metering::{
    period::Period,
    plans::Plan,
    quota::{self, Crossings, QuotaPolicy},
    usage::Usage,
};

impl Versioned for Usage {
    const KIND: &'static str = "usage counter";
    const VERSION: u8 = 1;
}

impl Versioned for QuotaPolicy {
    const KIND: &'static str = "quota policy";
    const VERSION: u8 = 1;
}

/// What admission and display need: the org, its plan and policy, and this period's usage.
#[derive(Debug, Clone)]
pub struct MeterSnapshot {
    pub org: OrgRecord,
    /// The org's dunning state as stored (time-based moves are applied by the caller).
    pub dunning: crate::core::billing::dunning::Dunning,
    pub plan: Plan,
    pub policy: QuotaPolicy,
    pub usage: Usage,
}

/// What a metering call did.
#[derive(Debug, Clone)]
pub enum MeterOutcome {
    Counted(Metered),
    /// The idempotency key was already used for this very request: nothing counted again.
    AlreadyCounted,
    /// The idempotency key was used for a different request: nothing counted.
    KeyReused,
}

/// The result of counting detections.
#[derive(Debug, Clone)]
pub struct Metered {
    pub usage: Usage,
    pub crossings: Crossings,
}

fn read_org(
    orgs: &impl ReadableTable<&'static str, &'static [u8]>,
    org_id: &str,
) -> Result<OrgRecord, StoreError> {
    match orgs.get(org_id)? {
        Some(bytes) => codec::decode(bytes.value()),
        None => Err(StoreError::not_found("organization", org_id)),
    }
}

fn read_policy(
    policies: &impl ReadableTable<&'static str, &'static [u8]>,
    org_id: &str,
) -> Result<QuotaPolicy, StoreError> {
    match policies.get(org_id)? {
        Some(bytes) => codec::decode(bytes.value()),
        None => Ok(QuotaPolicy::default()),
    }
}

fn read_usage(
    usage: &impl ReadableTable<(&'static str, i64), &'static [u8]>,
    org_id: &str,
    period: Period,
    plan: &Plan,
) -> Result<Usage, StoreError> {
    let mut current = match usage.get((org_id, period.start_ms))? {
        Some(bytes) => codec::decode(bytes.value())?,
        None => Usage::new(period, plan),
    };
    if current.plan_id != plan.id {
        current.reprice(plan);
    }
    Ok(current)
}

/// An org's policy and its usage of the period that contains `now_ms`, priced with `plan`.
pub(super) fn read_org_usage(
    policies: &impl ReadableTable<&'static str, &'static [u8]>,
    usage: &impl ReadableTable<(&'static str, i64), &'static [u8]>,
    org_id: &str,
    plan: &Plan,
    now_ms: i64,
) -> Result<(QuotaPolicy, Usage), StoreError> {
    let policy = read_policy(policies, org_id)?;
    let period = counting_period(usage, org_id, now_ms)?;
    let usage = read_usage(usage, org_id, period, plan)?;
    Ok((policy, usage))
}

/// The period the org's detections count into at `now_ms` (see `Period::for_counting`): the
/// clock's, unless the org already has usage in a later one because the clock stepped back.
fn counting_period(
    usage: &impl ReadableTable<(&'static str, i64), &'static [u8]>,
    org_id: &str,
    now_ms: i64,
) -> Result<Period, StoreError> {
    let by_clock = Period::containing(now_ms);
    let newest_later = usage
        .range((org_id, by_clock.end_ms)..=(org_id, i64::MAX))?
        .next_back()
        .transpose()?
        .map(|(k, _)| k.value().1);
    Ok(Period::for_counting(now_ms, newest_later))
}

/// Counts `count` detections for `org_id` inside `tx`, with everything they trigger.
pub(super) fn meter_in_tx(
    tx: &WriteTransaction,
    org_id: &str,
    count: u64,
    now_ms: i64,
) -> Result<Metered, StoreError> {
    let org = read_org(&tx.open_table(tables::ORGS)?, org_id)?;
    let plan = &read_plan(&tx.open_table(tables::PLANS)?, &org.plan)?;
    let policy = read_policy(&tx.open_table(tables::QUOTA_POLICIES)?, org_id)?;
    let mut usage_table = tx.open_table(tables::USAGE)?;
    let period = counting_period(&usage_table, org_id, now_ms)?;
    let mut usage = read_usage(&usage_table, org_id, period, plan)?;
    if let quota::Admission::QuotaExceeded { used, limit } =
        quota::admit_count(&usage, plan, &policy, count)
    {
        return Err(StoreError::QuotaExceeded {
            used,
            adding: count,
            limit,
            period,
        });
    }
    let overage_before = usage.overage_calls;
    let crossings = quota::record(&mut usage, plan, &policy, count);
    if plan.overage_millicents.is_some() {
        let overage = usage.overage_calls - overage_before;
        super::meter_outbox::add_pending(tx, org_id, period, overage)?;
    }
    usage_table.insert((org_id, period.start_ms), codec::encode(&usage).as_slice())?;
    drop(usage_table);
    add_daily(tx, org_id, count, now_ms)?;

    for threshold in &crossings.alerts {
        let params = json!({
            "organization_id": org.id,
            "organization_name": org.name,
            "plan": plan.id,
            "threshold_percent": threshold,
            "is_cap": *threshold > 100,
            "used": usage.total_calls,
            "included": plan.included_detections,
            "percent_used": usage.percent_used(plan),
            "overage_calls": usage.overage_calls,
            "estimated_charges_cents": usage.estimated_charges_cents,
            "period_start_ms": period.start_ms,
            "period_end_ms": period.end_ms,
        });
        outbox::enqueue_email(
            tx,
            NewEmail {
                dedupe_key: format!("usage_alert:{}:{}:{threshold}", org.id, period.start_ms),
                org_id: Some(&org.id),
                to: org.billing_email.as_deref(),
                kind: "usage_alert",
                params,
            },
            now_ms,
        )?;
    }
    if crossings.early_invoice {
        outbox::record_billing_action(
            tx,
            Some(org_id),
            "metering",
            "early_invoice_requested",
            json!({
                "estimated_charges_cents": usage.estimated_charges_cents,
                "invoice_threshold_cents": policy.invoice_threshold_cents,
                "period_start_ms": period.start_ms,
            }),
            now_ms,
        )?;
    }
    Ok(Metered { usage, crossings })
}

const DAY_MS: i64 = 86_400_000;

/// Adds detections to the org's count for the UTC day of `now_ms` (for the admin overview).
fn add_daily(
    tx: &WriteTransaction,
    org_id: &str,
    count: u64,
    now_ms: i64,
) -> Result<(), StoreError> {
    if count == 0 {
        return Ok(());
    }
    let day = now_ms.div_euclid(DAY_MS) * DAY_MS;
    let mut daily = tx.open_table(tables::USAGE_DAILY)?;
    let before = daily.get((org_id, day))?.map(|v| v.value()).unwrap_or(0);
    daily.insert((org_id, day), before.saturating_add(count))?;
    Ok(())
}

impl Store {
    /// Detections per UTC day over the `days` days that end with the day of `now_ms`, oldest
    /// first, for one org or (without one) summed over all orgs. Days before schema 9 are 0.
    pub fn daily_detections(
        &self,
        org_id: Option<&str>,
        now_ms: i64,
        days: usize,
    ) -> Result<Vec<(i64, u64)>, StoreError> {
        let last = now_ms.div_euclid(DAY_MS) * DAY_MS;
        let first = last - (days.saturating_sub(1) as i64) * DAY_MS;
        let mut out: Vec<(i64, u64)> = (0..days as i64).map(|i| (first + i * DAY_MS, 0)).collect();
        let tx = self.db()?.begin_read()?;
        let daily = tx.open_table(tables::USAGE_DAILY)?;
        let mut add = |day: i64, count: u64| {
            if day >= first && day <= last {
                out[((day - first) / DAY_MS) as usize].1 += count;
            }
        };
        match org_id {
            Some(org) => {
                for entry in daily.range((org, first)..=(org, last))? {
                    let (k, v) = entry?;
                    add(k.value().1, v.value());
                }
            }
            None => {
                for entry in daily.iter()? {
                    let (k, v) = entry?;
                    add(k.value().1, v.value());
                }
            }
        }
        Ok(out)
    }

    /// Zeroes an org's usage for the current period (alerts included), for testing an
    /// installation. Recorded as a billing action marked as a test operation, with the
    /// counters it replaced. Daily counts and usage already sent to Stripe are kept.
    pub fn reset_usage(
        &self,
        org_id: &str,
        note: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<Usage, StoreError> {
        let tx = self.db()?.begin_write()?;
        let org = read_org(&tx.open_table(tables::ORGS)?, org_id)?;
        let plan = read_plan(&tx.open_table(tables::PLANS)?, &org.plan)?;
        let mut usage_table = tx.open_table(tables::USAGE)?;
        let period = counting_period(&usage_table, org_id, now_ms)?;
        let before = read_usage(&usage_table, org_id, period, &plan)?;
        let fresh = Usage::new(period, &plan);
        usage_table.insert((org_id, period.start_ms), codec::encode(&fresh).as_slice())?;
        drop(usage_table);
        let detail = json!({
            "test_operation": true,
            "note": note,
            "before": {
                "total_calls": before.total_calls,
                "overage_calls": before.overage_calls,
                "estimated_charges_cents": before.estimated_charges_cents,
                "alerts_sent": before.alerts_sent,
            },
            "period_start_ms": period.start_ms,
        });
        outbox::record_billing_action(&tx, Some(org_id), actor, "usage_reset", detail, now_ms)?;
        tx.commit()?;
        Ok(fresh)
    }

    /// The org's plan, policy and current-period usage as of `now_ms`.
    pub fn meter_snapshot(&self, org_id: &str, now_ms: i64) -> Result<MeterSnapshot, StoreError> {
        let tx = self.db()?.begin_read()?;
        let org = read_org(&tx.open_table(tables::ORGS)?, org_id)?;
        let plan = read_plan(&tx.open_table(tables::PLANS)?, &org.plan)?;
        let (policy, usage) = read_org_usage(
            &tx.open_table(tables::QUOTA_POLICIES)?,
            &tx.open_table(tables::USAGE)?,
            org_id,
            &plan,
            now_ms,
        )?;
        let dunning =
            super::billing::read_account(&tx.open_table(tables::BILLING_ACCOUNTS)?, org_id)?
                .dunning;
        Ok(MeterSnapshot {
            org,
            dunning,
            plan,
            policy,
            usage,
        })
    }

    /// Counts detections reported by a service (meter-usage), in one transaction. With an
    /// idempotency key (already scoped by the caller) a repeat counts nothing.
    pub fn meter(
        &self,
        org_id: &str,
        count: u64,
        idempotency: Option<(&str, &str)>,
        now_ms: i64,
    ) -> Result<MeterOutcome, StoreError> {
        let tx = self.db()?.begin_write()?;
        if let Some((key, fingerprint)) = idempotency {
            let table = tx.open_table(tables::IDEMPOTENCY)?;
            match idempotency::lookup(&table, org_id, key, fingerprint, now_ms)? {
                Prior::None => {}
                Prior::Answered(_) => return Ok(MeterOutcome::AlreadyCounted),
                Prior::Mismatch => return Ok(MeterOutcome::KeyReused),
            }
        }
        let metered = meter_in_tx(&tx, org_id, count, now_ms)?;
        if let Some((key, fingerprint)) = idempotency {
            idempotency::remember(
                &tx,
                (org_id, key, fingerprint),
                json!({"counted": count}),
                now_ms,
                self.org_limits().idempotency_bytes,
            )?;
        }
        tx.commit()?;
        Ok(MeterOutcome::Counted(metered))
    }

    /// Replaces an org's quota policy (already validated against its plan).
    pub fn set_quota_policy(
        &self,
        org_id: &str,
        policy: &QuotaPolicy,
        actor: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = self.db()?.begin_write()?;
        read_org(&tx.open_table(tables::ORGS)?, org_id)?;
        let before = read_policy(&tx.open_table(tables::QUOTA_POLICIES)?, org_id)?;
        tx.open_table(tables::QUOTA_POLICIES)?
            .insert(org_id, codec::encode(policy).as_slice())?;
        let detail = json!({"before": before, "after": policy});
        outbox::record_billing_action(
            &tx,
            Some(org_id),
            actor,
            "quota_policy_changed",
            detail,
            now_ms,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Moves an org to another plan. The period's usage is kept and repriced.
    pub fn set_plan(
        &self,
        org_id: &str,
        plan_id: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<OrgRecord, StoreError> {
        let tx = self.db()?.begin_write()?;
        let org = set_plan_in_tx(&tx, org_id, plan_id, actor, now_ms)?;
        tx.commit()?;
        Ok(org)
    }
}

/// Moves an org to another plan inside `tx`, keeping and repricing the period's usage, and
/// records the billing action.
pub(super) fn set_plan_in_tx(
    tx: &WriteTransaction,
    org_id: &str,
    plan_id: &str,
    actor: &str,
    now_ms: i64,
) -> Result<OrgRecord, StoreError> {
    let plan = &read_plan(&tx.open_table(tables::PLANS)?, plan_id)?;
    let mut orgs = tx.open_table(tables::ORGS)?;
    let mut org = read_org(&orgs, org_id)?;
    let from = std::mem::replace(&mut org.plan, plan.id.clone());
    orgs.insert(org_id, codec::encode(&org).as_slice())?;
    drop(orgs);
    let mut usage_table = tx.open_table(tables::USAGE)?;
    let period = counting_period(&usage_table, org_id, now_ms)?;
    let mut usage = read_usage(&usage_table, org_id, period, plan)?;
    usage.reprice(plan);
    usage_table.insert((org_id, period.start_ms), codec::encode(&usage).as_slice())?;
    drop(usage_table);
    if from != plan.id {
        let detail = json!({"before": from, "after": plan.id, "usage_kept": usage.total_calls});
        outbox::record_billing_action(tx, Some(org_id), actor, "plan_changed", detail, now_ms)?;
    }
    Ok(org)
}

impl OrgScope {
    pub fn meter_snapshot(&self, now_ms: i64) -> Result<MeterSnapshot, StoreError> {
        self.store.meter_snapshot(&self.org_id, now_ms)
    }

    /// Past and current periods, newest first, starting before period `before_start_ms`.
    pub fn usage_history(
        &self,
        before_start_ms: Option<i64>,
        limit: usize,
    ) -> Result<Page<Usage>, StoreError> {
        let tx = self.store.db()?.begin_read()?;
        let usage = tx.open_table(tables::USAGE)?;
        let org = self.org_id.as_str();
        let end = before_start_ms.unwrap_or(i64::MAX);
        let mut items = Vec::new();
        let mut more = false;
        for entry in usage.range((org, i64::MIN)..(org, end))?.rev() {
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(codec::decode::<Usage>(entry?.1.value())?);
        }
        let next_after = if more {
            items.last().map(|u| u.period.start_ms.to_string())
        } else {
            None
        };
        Ok(Page { items, next_after })
    }
}
