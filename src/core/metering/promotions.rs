//! Promotion codes: the seed catalog (LAUNCH50: 50% off for 3 months on standard and growth)
//! and the rule for which plans a code applies to. Stripe applies the discount itself; this
//! module decides what Driftlock offers and what it asks Stripe to create.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    /// What customers type, e.g. `LAUNCH50`.
    pub code: String,
    pub percent_off: u32,
    /// How many monthly invoices get the discount.
    pub duration_months: u32,
    /// Plans the code applies to.
    pub plans: Vec<String>,
    pub active: bool,
    /// Ids of the coupon and promotion code once synced to Stripe.
    pub stripe_coupon_id: Option<String>,
    pub stripe_promotion_code_id: Option<String>,
}

impl Promotion {
    pub fn applies_to(&self, plan_id: &str) -> bool {
        self.active && self.plans.iter().any(|p| p == plan_id)
    }

    /// The coupon id Driftlock asks Stripe to create for this code.
    pub fn coupon_id(&self) -> String {
        format!("driftlock-{}", self.code.to_lowercase())
    }
}

/// The promotions written into a new store.
pub fn seed() -> Vec<Promotion> {
    vec![Promotion {
        code: "LAUNCH50".into(),
        percent_off: 50,
        duration_months: 3,
        plans: vec!["standard".into(), "growth".into()],
        active: true,
        stripe_coupon_id: None,
        stripe_promotion_code_id: None,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch50_is_half_off_for_three_months_on_paid_plans() {
        let launch = &seed()[0];
        assert_eq!(
            (
                launch.code.as_str(),
                launch.percent_off,
                launch.duration_months
            ),
            ("LAUNCH50", 50, 3)
        );
        assert!(launch.applies_to("standard") && launch.applies_to("growth"));
        assert!(!launch.applies_to("developer"));
        assert_eq!(launch.coupon_id(), "driftlock-launch50");
    }
}
