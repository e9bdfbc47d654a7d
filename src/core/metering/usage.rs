//! Usage counters for one organization and period, and the money they imply. Only anomaly
//! detections are counted. Rounding rule: overage is priced in millicents per detection and
//! the period's total is rounded half up to whole cents once (not per call), so the estimate
//! never drifts with how calls were batched.

use serde::{Deserialize, Serialize};

use super::{period::Period, plans::Plan};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub period: Period,
    /// The plan the counters were last priced with.
    pub plan_id: String,
    pub total_calls: u64,
    pub included_calls_used: u64,
    pub overage_calls: u64,
    pub estimated_charges_cents: u64,
    /// Alert thresholds already raised this period, in percent of included (cap included).
    pub alerts_sent: Vec<u32>,
    /// Whether this period's overage already asked for an early invoice.
    pub early_invoice_requested: bool,
    /// Detections taken out of `total_calls` by accepted disputes (issue 22).
    #[serde(default)]
    pub disputed_calls: u64,
}

impl Usage {
    pub fn new(period: Period, plan: &Plan) -> Usage {
        let mut usage = Usage {
            period,
            plan_id: plan.id.clone(),
            total_calls: 0,
            included_calls_used: 0,
            overage_calls: 0,
            estimated_charges_cents: 0,
            alerts_sent: Vec::new(),
            early_invoice_requested: false,
            disputed_calls: 0,
        };
        usage.reprice(plan);
        usage
    }

    /// Re-derives included, overage and charges from `total_calls` under `plan`. A plan change
    /// keeps the period's usage and reprices it.
    pub fn reprice(&mut self, plan: &Plan) {
        self.plan_id = plan.id.clone();
        self.included_calls_used = self.total_calls.min(plan.included_detections);
        self.overage_calls = self.total_calls - self.included_calls_used;
        self.estimated_charges_cents = overage_cents(self.overage_calls, plan);
    }

    /// Adds `count` detections and reprices.
    pub fn add(&mut self, count: u64, plan: &Plan) {
        self.total_calls = self.total_calls.saturating_add(count);
        self.reprice(plan);
    }

    /// Takes one disputed detection out of the counters (an accepted dispute) and reprices;
    /// answers the overage detections that took off the bill (0 or 1). Alerts already sent
    /// stay sent.
    pub fn credit_one(&mut self, plan: &Plan) -> u64 {
        if self.total_calls == 0 {
            return 0;
        }
        let overage_before = self.overage_calls;
        self.total_calls -= 1;
        self.disputed_calls = self.disputed_calls.saturating_add(1);
        self.reprice(plan);
        overage_before - self.overage_calls
    }

    /// Detections counted this period before any dispute.
    pub fn counted_calls(&self) -> u64 {
        self.total_calls.saturating_add(self.disputed_calls)
    }

    /// Share of the included detections used, in percent (may pass 100).
    pub fn percent_used(&self, plan: &Plan) -> f64 {
        if plan.included_detections == 0 {
            return 0.0;
        }
        self.total_calls as f64 * 100.0 / plan.included_detections as f64
    }
}

/// Price of `overage` detections in cents, rounded half up. Plans that sell no overage cost 0.
pub fn overage_cents(overage: u64, plan: &Plan) -> u64 {
    let Some(millicents) = plan.overage_millicents else {
        return 0;
    };
    let total = u128::from(overage) * u128::from(millicents);
    ((total + 500) / 1000).min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::metering::plans::{developer, growth, standard};

    fn period() -> Period {
        Period::containing(0)
    }

    #[test]
    fn runbook_prices() {
        // 1,000 extra standard detections at $0.0035 = $3.50.
        assert_eq!(overage_cents(1_000, &standard()), 350);
        // 1 extra growth detection at $0.0018 rounds to 0 cents, 3 round to 1 (0.54 -> 1).
        assert_eq!(overage_cents(1, &growth()), 0);
        assert_eq!(overage_cents(3, &growth()), 1);
        // Half a cent rounds up: 1 standard detection is 0.35 -> 0, 2 are 0.7 -> 1.
        assert_eq!(overage_cents(2, &standard()), 1);
        assert_eq!(overage_cents(1_000_000, &developer()), 0);
    }

    #[test]
    fn counters_split_included_and_overage() {
        let mut u = Usage::new(period(), &standard());
        u.add(249_999, &standard());
        assert_eq!(
            (
                u.included_calls_used,
                u.overage_calls,
                u.estimated_charges_cents
            ),
            (249_999, 0, 0)
        );
        u.add(1_001, &standard());
        assert_eq!((u.included_calls_used, u.overage_calls), (250_000, 1_000));
        assert_eq!(u.estimated_charges_cents, 350);
    }

    #[test]
    fn a_plan_change_keeps_the_usage_and_reprices_it() {
        let mut u = Usage::new(period(), &developer());
        u.add(12_000, &developer());
        assert_eq!(
            (
                u.included_calls_used,
                u.overage_calls,
                u.estimated_charges_cents
            ),
            (10_000, 2_000, 0)
        );
        u.reprice(&standard());
        assert_eq!(u.total_calls, 12_000);
        assert_eq!((u.included_calls_used, u.overage_calls), (12_000, 0));
        assert_eq!(u.plan_id, "standard");
    }

    #[test]
    fn a_credit_takes_one_detection_out_and_off_the_overage_first() {
        let plan = standard();
        let mut u = Usage::new(period(), &plan);
        u.add(250_002, &plan);
        assert_eq!(u.credit_one(&plan), 1);
        assert_eq!(
            (u.total_calls, u.overage_calls, u.disputed_calls),
            (250_001, 1, 1)
        );
        assert_eq!(u.credit_one(&plan), 1);
        assert_eq!(u.credit_one(&plan), 0, "within the included amount");
        assert_eq!(u.counted_calls(), 250_002);
        let mut empty = Usage::new(period(), &plan);
        assert_eq!(empty.credit_one(&plan), 0);
        assert_eq!(empty.disputed_calls, 0, "nothing to credit");
    }

    /// Invariant: however detections are split into calls, the counters and the charge are
    /// the same as for one call with their sum.
    #[test]
    fn batching_never_changes_the_bill() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for plan in [developer(), standard(), growth()] {
            for _ in 0..200 {
                let mut u = Usage::new(period(), &plan);
                let mut sum = 0u64;
                for _ in 0..20 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let n = seed % 300_000;
                    sum += n;
                    u.add(n, &plan);
                }
                let mut once = Usage::new(period(), &plan);
                once.add(sum, &plan);
                assert_eq!(u, once);
                assert_eq!(u.included_calls_used + u.overage_calls, u.total_calls);
            }
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn any_plan() -> impl Strategy<Value = Plan> {
            prop_oneof![Just(developer()), Just(standard()), Just(growth())]
        }

        proptest! {
            /// Overage is never charged below zero and never for detections within the plan.
            #[test]
            fn no_charge_within_included(plan in any_plan(), n in 0u64..3_000_000) {
                let mut u = Usage::new(period(), &plan);
                u.add(n, &plan);
                if n <= plan.included_detections {
                    prop_assert_eq!(u.estimated_charges_cents, 0);
                    prop_assert_eq!(u.overage_calls, 0);
                }
                prop_assert_eq!(u.included_calls_used + u.overage_calls, n);
            }

            /// More detections never cost less.
            #[test]
            fn charges_are_monotone_in_usage(plan in any_plan(), a in 0u64..10_000_000, b in 0u64..10_000_000) {
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                prop_assert!(overage_cents(lo, &plan) <= overage_cents(hi, &plan));
            }

            /// The charge is the exact product rounded half up, off by less than one cent.
            #[test]
            fn charge_is_the_rounded_exact_product(plan in any_plan(), n in 0u64..1_000_000_000) {
                let exact_millicents = u128::from(n) * u128::from(plan.overage_millicents.unwrap_or(0));
                let cents = u128::from(overage_cents(n, &plan));
                prop_assert!(cents * 1000 + 500 > exact_millicents);
                prop_assert!(cents * 1000 <= exact_millicents + 500);
            }
        }

        #[test]
        fn exact_at_plan_boundaries() {
            let s = standard();
            let mut u = Usage::new(period(), &s);
            u.add(250_000, &s);
            assert_eq!((u.overage_calls, u.estimated_charges_cents), (0, 0));
            u.add(1, &s);
            assert_eq!((u.overage_calls, u.estimated_charges_cents), (1, 0));
            u.add(1, &s);
            assert_eq!((u.overage_calls, u.estimated_charges_cents), (2, 1));
            let g = growth();
            let mut u = Usage::new(period(), &g);
            u.add(2_000_000 + 100_000, &g);
            assert_eq!(
                u.estimated_charges_cents, 18_000,
                "100k extra growth detections are $180"
            );
        }
    }
}
