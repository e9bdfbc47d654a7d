//! The operator's overview of the whole installation for the current period: organizations
//! and active subscriptions per plan, detections, overage and estimated revenue, and how many
//! organizations are in dunning. Pure: the caller hands in each org's standing as stored.

use super::{plans::Plan, usage::Usage};
use crate::core::billing::dunning::{advance, Dunning, DunningPolicy, DunningState};

/// One organization as the overview needs it.
pub struct Standing<'a> {
    pub plan: &'a Plan,
    pub usage: &'a Usage,
    pub dunning: &'a Dunning,
    /// Stripe's subscription status, when the org has a subscription.
    pub subscription_status: Option<&'a str>,
}

/// Figures for one plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFigures {
    pub plan_id: String,
    pub organizations: u64,
    /// Subscriptions Stripe calls `active`, `trialing` or `past_due` (still being billed).
    pub active_subscriptions: u64,
    pub detections: u64,
    pub overage_detections: u64,
    pub overage_cents: u64,
    /// Base price of the billed subscriptions plus overage.
    pub estimated_revenue_cents: u64,
}

impl PlanFigures {
    fn empty(plan_id: &str) -> PlanFigures {
        PlanFigures {
            plan_id: plan_id.to_string(),
            organizations: 0,
            active_subscriptions: 0,
            detections: 0,
            overage_detections: 0,
            overage_cents: 0,
            estimated_revenue_cents: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Overview {
    pub plans: Vec<PlanFigures>,
    pub detections: u64,
    pub overage_detections: u64,
    pub overage_cents: u64,
    pub estimated_revenue_cents: u64,
    /// Orgs whose dunning state (moved on to `now_ms`) is anything but `ok`.
    pub orgs_in_dunning: u64,
}

fn billed(status: Option<&str>) -> bool {
    matches!(status, Some("active" | "trialing" | "past_due"))
}

/// Sums the standings per plan (in catalog order) and overall.
pub fn summarize(
    catalog: &[Plan],
    standings: &[Standing<'_>],
    policy: &DunningPolicy,
    now_ms: i64,
) -> Overview {
    let mut out = Overview {
        plans: catalog.iter().map(|p| PlanFigures::empty(&p.id)).collect(),
        ..Overview::default()
    };
    for s in standings {
        let index = match out.plans.iter().position(|f| f.plan_id == s.plan.id) {
            Some(i) => i,
            None => {
                out.plans.push(PlanFigures::empty(&s.plan.id));
                out.plans.len() - 1
            }
        };
        let figures = &mut out.plans[index];
        let subscribed = billed(s.subscription_status);
        let base = if subscribed {
            s.plan.monthly_price_cents
        } else {
            0
        };
        figures.organizations += 1;
        figures.active_subscriptions += u64::from(subscribed);
        figures.detections += s.usage.total_calls;
        figures.overage_detections += s.usage.overage_calls;
        figures.overage_cents += s.usage.estimated_charges_cents;
        figures.estimated_revenue_cents += base + s.usage.estimated_charges_cents;
        if advance(s.dunning, policy, now_ms).state != DunningState::Ok {
            out.orgs_in_dunning += 1;
        }
    }
    for f in &out.plans {
        out.detections += f.detections;
        out.overage_detections += f.overage_detections;
        out.overage_cents += f.overage_cents;
        out.estimated_revenue_cents += f.estimated_revenue_cents;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::metering::{
        period::Period,
        plans::{developer, growth, standard},
    };

    fn usage(plan: &Plan, calls: u64) -> Usage {
        let mut u = Usage::new(Period::containing(0), plan);
        u.add(calls, plan);
        u
    }

    #[test]
    fn sums_per_plan_and_overall_counting_only_billed_subscriptions() {
        let (dev, std_plan, grow) = (developer(), standard(), growth());
        let catalog = [dev.clone(), std_plan.clone(), grow.clone()];
        let ok = Dunning::default();
        let failing = Dunning {
            state: DunningState::Grace,
            since_ms: 0,
        };
        let (u1, u2, u3) = (
            usage(&dev, 500),
            usage(&std_plan, 260_000),
            usage(&std_plan, 10),
        );
        let standings = [
            Standing {
                plan: &dev,
                usage: &u1,
                dunning: &ok,
                subscription_status: None,
            },
            Standing {
                plan: &std_plan,
                usage: &u2,
                dunning: &failing,
                subscription_status: Some("past_due"),
            },
            Standing {
                plan: &std_plan,
                usage: &u3,
                dunning: &ok,
                subscription_status: Some("canceled"),
            },
        ];
        let o = summarize(&catalog, &standings, &DunningPolicy::default(), 0);
        let standard_figures = &o.plans[1];
        assert_eq!(standard_figures.organizations, 2);
        assert_eq!(standard_figures.active_subscriptions, 1);
        // 10,000 overage detections at $0.0035 = $35.00, plus one $49 subscription.
        assert_eq!(standard_figures.overage_cents, 3_500);
        assert_eq!(standard_figures.estimated_revenue_cents, 4_900 + 3_500);
        assert_eq!(o.detections, 500 + 260_000 + 10);
        assert_eq!(o.estimated_revenue_cents, 8_400);
        assert_eq!(o.orgs_in_dunning, 1);
        assert_eq!(o.plans[2].organizations, 0);
    }
}
