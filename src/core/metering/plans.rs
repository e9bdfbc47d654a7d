//! The plan catalog from the runbook. Money is integer: monthly prices in cents, unit prices
//! for detections past the included amount in thousandths of a cent (millicents), so
//! $0.0035 is 350 millicents and $0.0018 is 180.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub id: &'static str,
    pub name: &'static str,
    pub monthly_price_cents: u64,
    pub included_detections: u64,
    /// Price of each detection past the included amount; `None` means overage is not sold.
    pub overage_millicents: Option<u64>,
}

pub const DEVELOPER: Plan = Plan {
    id: "developer",
    name: "Developer",
    monthly_price_cents: 0,
    included_detections: 10_000,
    overage_millicents: None,
};

pub const STANDARD: Plan = Plan {
    id: "standard",
    name: "Standard",
    monthly_price_cents: 4_900,
    included_detections: 250_000,
    overage_millicents: Some(350),
};

pub const GROWTH: Plan = Plan {
    id: "growth",
    name: "Growth",
    monthly_price_cents: 24_900,
    included_detections: 2_000_000,
    overage_millicents: Some(180),
};

pub const CATALOG: [Plan; 3] = [DEVELOPER, STANDARD, GROWTH];

/// The plan a new organization starts on.
pub const DEFAULT_PLAN: &str = DEVELOPER.id;

pub fn find(id: &str) -> Option<&'static Plan> {
    CATALOG.iter().find(|p| p.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_matches_the_runbook() {
        assert_eq!(find("developer").unwrap().included_detections, 10_000);
        assert_eq!(find("standard").unwrap().monthly_price_cents, 4_900);
        assert_eq!(find("standard").unwrap().overage_millicents, Some(350));
        assert_eq!(find("growth").unwrap().included_detections, 2_000_000);
        assert_eq!(find("growth").unwrap().overage_millicents, Some(180));
        assert!(find("enterprise").is_none());
    }
}
