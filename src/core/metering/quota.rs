//! Quota policy per organization and the decisions it implies: whether a detection call may
//! proceed, which usage alerts a change crosses, and when overage asks for an early invoice.

use serde::{Deserialize, Serialize};

use super::{plans::Plan, usage::Usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExceed {
    /// Keep serving past included, up to `cap_percent`; then 429.
    SoftCap,
    /// 429 as soon as the included detections are used.
    HardCap,
    /// Never refuse; overage is billed.
    AllowOverage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaPolicy {
    pub behavior_on_exceed: OnExceed,
    /// The soft cap, in percent of included detections.
    pub cap_percent: u32,
    /// Estimated overage (cents) past which an early invoice is requested.
    pub invoice_threshold_cents: u64,
    /// Whether to alert at 90% as well as 70% and 100%.
    pub alert_at_90: bool,
}

impl Default for QuotaPolicy {
    fn default() -> Self {
        QuotaPolicy {
            behavior_on_exceed: OnExceed::SoftCap,
            cap_percent: 120,
            invoice_threshold_cents: 50_000,
            alert_at_90: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("cap_percent must be between 100 and 1000, got {0}")]
    CapOutOfRange(u32),
    #[error("plan {0} sells no overage, so allow_overage is not available on it")]
    NoOveragePrice(String),
}

impl QuotaPolicy {
    pub fn validate(&self, plan: &Plan) -> Result<(), PolicyError> {
        if !(100..=1000).contains(&self.cap_percent) {
            return Err(PolicyError::CapOutOfRange(self.cap_percent));
        }
        if self.behavior_on_exceed == OnExceed::AllowOverage && plan.overage_millicents.is_none() {
            return Err(PolicyError::NoOveragePrice(plan.id.clone()));
        }
        Ok(())
    }

    /// The number of detections after which calls are refused, if any.
    pub fn limit(&self, plan: &Plan) -> Option<u64> {
        match self.behavior_on_exceed {
            OnExceed::AllowOverage => None,
            OnExceed::HardCap => Some(plan.included_detections),
            OnExceed::SoftCap => Some(scaled(plan.included_detections, self.cap_percent)),
        }
    }

    /// Alert thresholds in percent of included, in rising order.
    pub fn alert_thresholds(&self) -> Vec<u32> {
        let mut t = vec![70];
        if self.alert_at_90 {
            t.push(90);
        }
        t.push(100);
        if self.behavior_on_exceed == OnExceed::SoftCap && self.cap_percent > 100 {
            t.push(self.cap_percent);
        }
        t
    }
}

fn scaled(included: u64, percent: u32) -> u64 {
    (u128::from(included) * u128::from(percent) / 100) as u64
}

/// Whether a detection call may run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Refused until the period ends (or the policy or plan changes).
    QuotaExceeded {
        used: u64,
        limit: u64,
    },
}

/// Decides before any work is done. A call admitted below the limit is served whole, even if
/// its anomalies carry usage past the limit; the next call is refused.
pub fn admit(usage: &Usage, plan: &Plan, policy: &QuotaPolicy) -> Admission {
    match policy.limit(plan) {
        Some(limit) if usage.total_calls >= limit => Admission::QuotaExceeded {
            used: usage.total_calls,
            limit,
        },
        _ => Admission::Allowed,
    }
}

/// Decides, inside the metering transaction, whether `count` more detections fit under a
/// hard cap: a call whose detections would carry usage past the included detections is
/// refused whole (nothing of it is kept), so concurrent calls and large batches cannot
/// overshoot it. A soft cap stays soft: a call admitted below it is served whole, and the
/// calls after it are refused ([`admit`]).
pub fn admit_count(usage: &Usage, plan: &Plan, policy: &QuotaPolicy, count: u64) -> Admission {
    match policy.limit(plan) {
        Some(limit)
            if policy.behavior_on_exceed == OnExceed::HardCap
                && count > 0
                && usage.total_calls.saturating_add(count) > limit =>
        {
            Admission::QuotaExceeded {
                used: usage.total_calls,
                limit,
            }
        }
        _ => Admission::Allowed,
    }
}

/// What recording detections changed that someone must hear about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Crossings {
    /// Alert thresholds (percent of included) reached for the first time this period.
    pub alerts: Vec<u32>,
    /// The estimated overage reached the invoice threshold for the first time this period.
    pub early_invoice: bool,
}

/// Adds `count` detections to `usage` and reports the thresholds crossed for the first time.
/// Marks them as sent in `usage`, so each is raised at most once per period.
pub fn record(usage: &mut Usage, plan: &Plan, policy: &QuotaPolicy, count: u64) -> Crossings {
    usage.add(count, plan);
    let mut crossings = Crossings::default();
    if plan.included_detections > 0 {
        for threshold in policy.alert_thresholds() {
            let reached = usage.total_calls >= scaled(plan.included_detections, threshold);
            if reached && !usage.alerts_sent.contains(&threshold) {
                usage.alerts_sent.push(threshold);
                crossings.alerts.push(threshold);
            }
        }
    }
    if !usage.early_invoice_requested
        && usage.estimated_charges_cents > 0
        && usage.estimated_charges_cents >= policy.invoice_threshold_cents
    {
        usage.early_invoice_requested = true;
        crossings.early_invoice = true;
    }
    crossings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::metering::{
        period::Period,
        plans::{developer, growth, standard},
    };

    fn usage(plan: &Plan, total: u64) -> Usage {
        let mut u = Usage::new(Period::containing(0), plan);
        u.add(total, plan);
        u
    }

    #[test]
    fn soft_cap_refuses_at_cap_percent_hard_cap_at_included() {
        let soft = QuotaPolicy::default();
        assert_eq!(
            admit(&usage(&developer(), 11_999), &developer(), &soft),
            Admission::Allowed
        );
        assert_eq!(
            admit(&usage(&developer(), 12_000), &developer(), &soft),
            Admission::QuotaExceeded {
                used: 12_000,
                limit: 12_000
            }
        );
        let hard = QuotaPolicy {
            behavior_on_exceed: OnExceed::HardCap,
            ..soft.clone()
        };
        assert_eq!(
            admit(&usage(&developer(), 10_000), &developer(), &hard),
            Admission::QuotaExceeded {
                used: 10_000,
                limit: 10_000
            }
        );
        let open = QuotaPolicy {
            behavior_on_exceed: OnExceed::AllowOverage,
            ..soft
        };
        assert_eq!(
            admit(&usage(&standard(), 10_000_000), &standard(), &open),
            Admission::Allowed
        );
    }

    #[test]
    fn policy_validation() {
        let open = QuotaPolicy {
            behavior_on_exceed: OnExceed::AllowOverage,
            ..Default::default()
        };
        assert_eq!(
            open.validate(&developer()),
            Err(PolicyError::NoOveragePrice("developer".into()))
        );
        assert_eq!(open.validate(&growth()), Ok(()));
        let silly = QuotaPolicy {
            cap_percent: 99,
            ..Default::default()
        };
        assert_eq!(
            silly.validate(&standard()),
            Err(PolicyError::CapOutOfRange(99))
        );
    }

    #[test]
    fn each_alert_is_raised_once_per_period() {
        let policy = QuotaPolicy {
            alert_at_90: true,
            ..Default::default()
        };
        let mut u = usage(&developer(), 0);
        assert_eq!(
            record(&mut u, &developer(), &policy, 6_999).alerts,
            Vec::<u32>::new()
        );
        assert_eq!(record(&mut u, &developer(), &policy, 1).alerts, vec![70]);
        assert_eq!(
            record(&mut u, &developer(), &policy, 1).alerts,
            Vec::<u32>::new()
        );
        // One big jump crosses several thresholds at once, each reported once.
        assert_eq!(
            record(&mut u, &developer(), &policy, 6_000).alerts,
            vec![90, 100, 120]
        );
        assert_eq!(
            record(&mut u, &developer(), &policy, 6_000).alerts,
            Vec::<u32>::new()
        );
    }

    #[test]
    fn early_invoice_is_asked_once_when_overage_reaches_the_threshold() {
        let policy = QuotaPolicy {
            behavior_on_exceed: OnExceed::AllowOverage,
            invoice_threshold_cents: 350,
            ..Default::default()
        };
        let mut u = usage(&standard(), 250_000);
        assert!(!record(&mut u, &standard(), &policy, 998).early_invoice);
        assert!(record(&mut u, &standard(), &policy, 2).early_invoice);
        assert!(!record(&mut u, &standard(), &policy, 10_000).early_invoice);
    }

    #[test]
    fn a_call_that_would_pass_the_limit_is_refused_whole() {
        let hard = QuotaPolicy {
            behavior_on_exceed: OnExceed::HardCap,
            ..QuotaPolicy::default()
        };
        let plan = developer();
        assert_eq!(
            admit_count(&usage(&plan, 9_999), &plan, &hard, 1),
            Admission::Allowed
        );
        assert_eq!(
            admit_count(&usage(&plan, 9_999), &plan, &hard, 2),
            Admission::QuotaExceeded {
                used: 9_999,
                limit: 10_000
            }
        );
        assert_eq!(
            admit_count(&usage(&plan, 0), &plan, &hard, 1_000_000),
            Admission::QuotaExceeded {
                used: 0,
                limit: 10_000
            }
        );
        // A call that finds nothing is never refused; overage plans have no limit.
        assert_eq!(
            admit_count(&usage(&plan, 10_000), &plan, &hard, 0),
            Admission::Allowed
        );
        let open = QuotaPolicy {
            behavior_on_exceed: OnExceed::AllowOverage,
            ..QuotaPolicy::default()
        };
        assert_eq!(
            admit_count(&usage(&plan, 99_999), &plan, &open, 5),
            Admission::Allowed
        );
        let soft = QuotaPolicy::default();
        assert_eq!(
            admit_count(&usage(&plan, 11_999), &plan, &soft, 50),
            Admission::Allowed
        );
    }
}
