//! Plans: what a plan includes and costs, and the catalog seeded at first start (from the
//! runbook). The store keeps the catalog and admins may edit it; this module only defines the
//! shape and the seed. Money is integer: monthly prices in cents, unit prices for detections
//! past the included amount in thousandths of a cent (millicents), so $0.0035 is 350
//! millicents and $0.0018 is 180.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub monthly_price_cents: u64,
    pub included_detections: u64,
    /// Price of each detection past the included amount; `None` means overage is not sold.
    pub overage_millicents: Option<u64>,
    /// Stripe price of the monthly base fee, when synced.
    pub stripe_price_id: Option<String>,
    /// Stripe metered price for overage detections, when synced.
    pub stripe_metered_price_id: Option<String>,
    /// Disputes (false positives) accepted at once up to this share of a period's
    /// detections, in percent; beyond it they wait for an operator (issue 22).
    #[serde(default = "default_dispute_share")]
    pub dispute_share_percent: u32,
}

fn default_dispute_share() -> u32 {
    crate::core::feedback::DEFAULT_DISPUTE_SHARE_PERCENT
}

/// The plan a new organization starts on.
pub const DEFAULT_PLAN: &str = "developer";

fn plan(id: &str, name: &str, cents: u64, included: u64, overage: Option<u64>) -> Plan {
    Plan {
        id: id.into(),
        name: name.into(),
        monthly_price_cents: cents,
        included_detections: included,
        overage_millicents: overage,
        stripe_price_id: None,
        stripe_metered_price_id: None,
        dispute_share_percent: default_dispute_share(),
    }
}

pub fn developer() -> Plan {
    plan("developer", "Developer", 0, 10_000, None)
}

pub fn standard() -> Plan {
    plan("standard", "Standard", 4_900, 250_000, Some(350))
}

pub fn growth() -> Plan {
    plan("growth", "Growth", 24_900, 2_000_000, Some(180))
}

/// The catalog written into a new store.
pub fn seed_catalog() -> Vec<Plan> {
    vec![developer(), standard(), growth()]
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("plan id must be 1 to 40 characters of a-z, 0-9, '-' or '_'")]
    BadId,
    #[error("plan name must be 1 to 100 characters")]
    BadName,
    #[error("included_detections must be at least 1")]
    NothingIncluded,
}

impl Plan {
    pub fn validate(&self) -> Result<(), PlanError> {
        let id_ok = (1..=40).contains(&self.id.len())
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(PlanError::BadId);
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 100 {
            return Err(PlanError::BadName);
        }
        if self.included_detections == 0 {
            return Err(PlanError::NothingIncluded);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_matches_the_runbook() {
        let catalog = seed_catalog();
        let find = |id: &str| catalog.iter().find(|p| p.id == id).unwrap().clone();
        assert_eq!(find("developer").included_detections, 10_000);
        assert_eq!(find("developer").overage_millicents, None);
        assert_eq!(find("standard").monthly_price_cents, 4_900);
        assert_eq!(find("standard").included_detections, 250_000);
        assert_eq!(find("standard").overage_millicents, Some(350));
        assert_eq!(find("growth").monthly_price_cents, 24_900);
        assert_eq!(find("growth").included_detections, 2_000_000);
        assert_eq!(find("growth").overage_millicents, Some(180));
        assert!(catalog.iter().all(|p| p.validate().is_ok()));
    }

    #[test]
    fn validation_names_the_problem() {
        let mut p = standard();
        p.id = "Has Space".into();
        assert_eq!(p.validate(), Err(PlanError::BadId));
        let mut p = standard();
        p.included_detections = 0;
        assert_eq!(p.validate(), Err(PlanError::NothingIncluded));
    }
}
