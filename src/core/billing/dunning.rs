//! Dunning: what a failed payment does to an organization over time, and what each state
//! allows. `ok` and `grace` serve normally; `past_due` still serves but every answer carries a
//! warning; `suspended` refuses detection calls (402 `account_suspended`) until an invoice is
//! paid; `cancelled` (subscription deleted) puts the org back on the developer plan.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DunningState {
    Ok,
    Grace,
    PastDue,
    Suspended,
    Cancelled,
}

impl DunningState {
    pub fn as_str(self) -> &'static str {
        match self {
            DunningState::Ok => "ok",
            DunningState::Grace => "grace",
            DunningState::PastDue => "past_due",
            DunningState::Suspended => "suspended",
            DunningState::Cancelled => "cancelled",
        }
    }

    /// Whether detection calls are served in this state.
    pub fn allows_detection(self) -> bool {
        !matches!(self, DunningState::Suspended)
    }
}

/// Days between the states after a failed payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DunningPolicy {
    pub grace_days: u32,
    pub past_due_days: u32,
}

impl Default for DunningPolicy {
    fn default() -> Self {
        DunningPolicy {
            grace_days: 7,
            past_due_days: 7,
        }
    }
}

/// An org's dunning state and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dunning {
    pub state: DunningState,
    pub since_ms: i64,
}

impl Default for Dunning {
    fn default() -> Self {
        Dunning {
            state: DunningState::Ok,
            since_ms: 0,
        }
    }
}

const DAY_MS: i64 = 86_400_000;

/// The state time has moved a failed payment to: grace, then past due, then suspended (a
/// long silence may pass through several at once).
pub fn advance(current: &Dunning, policy: &DunningPolicy, now_ms: i64) -> Dunning {
    let mut state = current.clone();
    loop {
        let next = step(&state, policy, now_ms);
        if next == state {
            return state;
        }
        state = next;
    }
}

fn step(current: &Dunning, policy: &DunningPolicy, now_ms: i64) -> Dunning {
    let elapsed = now_ms - current.since_ms;
    let (limit_days, next) = match current.state {
        DunningState::Grace => (policy.grace_days, DunningState::PastDue),
        DunningState::PastDue => (policy.past_due_days, DunningState::Suspended),
        _ => return current.clone(),
    };
    let limit_ms = i64::from(limit_days) * DAY_MS;
    if elapsed >= limit_ms {
        Dunning {
            state: next,
            since_ms: current.since_ms + limit_ms,
        }
    } else {
        current.clone()
    }
}

/// A payment failed: an org in good standing enters grace; one already in dunning stays where
/// it is (the clock keeps running from the first failure).
pub fn payment_failed(current: &Dunning, now_ms: i64) -> Dunning {
    match current.state {
        DunningState::Ok => Dunning {
            state: DunningState::Grace,
            since_ms: now_ms,
        },
        _ => current.clone(),
    }
}

/// An invoice was paid: back to good standing (a cancelled subscription stays cancelled).
pub fn invoice_paid(current: &Dunning, now_ms: i64) -> Dunning {
    match current.state {
        DunningState::Cancelled => current.clone(),
        DunningState::Ok => current.clone(),
        _ => Dunning {
            state: DunningState::Ok,
            since_ms: now_ms,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_payment_walks_grace_past_due_suspended() {
        let policy = DunningPolicy::default();
        let g = payment_failed(&Dunning::default(), 0);
        assert_eq!(g.state, DunningState::Grace);
        assert_eq!(
            advance(&g, &policy, 7 * DAY_MS - 1).state,
            DunningState::Grace
        );
        let p = advance(&g, &policy, 7 * DAY_MS);
        assert_eq!(
            p,
            Dunning {
                state: DunningState::PastDue,
                since_ms: 7 * DAY_MS
            }
        );
        assert_eq!(
            advance(&p, &policy, 14 * DAY_MS).state,
            DunningState::Suspended
        );
        // A long silence skips straight through.
        assert_eq!(
            advance(&g, &policy, 30 * DAY_MS).state,
            DunningState::Suspended
        );
        assert!(!DunningState::Suspended.allows_detection());
        assert!(DunningState::PastDue.allows_detection());
    }

    #[test]
    fn paying_restores_and_repeated_failures_do_not_reset_the_clock() {
        let g = payment_failed(&Dunning::default(), 100);
        assert_eq!(payment_failed(&g, 5_000), g);
        assert_eq!(
            invoice_paid(&g, 9_000),
            Dunning {
                state: DunningState::Ok,
                since_ms: 9_000
            }
        );
        let c = Dunning {
            state: DunningState::Cancelled,
            since_ms: 1,
        };
        assert_eq!(invoice_paid(&c, 9_000), c);
    }
}
