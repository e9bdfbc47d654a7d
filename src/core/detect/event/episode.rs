//! The state test's episodes (issue 21): when an alarm of the state test starts, how long it
//! is held, and when it is over.
//!
//! Owns [`Episode`]. Once the state test has flagged an event, the events after it stay
//! flagged while the state's p-value is below [`STATE_EXIT`] (its median T² above the upper
//! quartile of the ordinary states it was calibrated on), a hysteresis, so a fault that holds
//! the state near the threshold is flagged whole. An episode also ends when the state has
//! collapsed: it rose at least [`COLLAPSE_PEAK_DECADES`] above its typical value and has since
//! fallen below [`COLLAPSE_SHARE`] of that rise (on a log scale), the way a person reads a
//! fault that stopped while the slow parts of the system (a fluid's temperature) are still on
//! their way back. The stream is then recovering: while the state keeps falling (a new low at
//! least every [`RECOVERY_NEW_LOW_WITHIN`] events) and does not rise
//! [`RECOVERY_RISE_DECADES`] above its lowest value since, the lingering deviation opens no
//! new episode; recovery is over once the state is back among the ordinary ones, stops
//! falling, rises, or cannot be followed (a joint field missing). Pure; a flag, two floats
//! and a count of state.

use super::{STATE_EVENTS, STATE_EXIT};

/// The least rise of an episode's state (decades above its typical value: median T² at
/// least 10 times the typical) for it to end by collapsing. Below that, a weak fault's
/// state wanders near the threshold and the hysteresis alone decides (issue 21: on SKAB dev,
/// 0.75 / 1 / 1.25 / 1.5 / 2.5 decades give F1 0.793 / 0.794 / 0.796 / 0.795 / 0.795).
pub(super) const COLLAPSE_PEAK_DECADES: f64 = 1.0;
/// The share of the peak's rise (decades) below which the episode's state has collapsed:
/// a half, the geometric midpoint of peak and typical (SKAB dev: 0.5 / 0.6 / 0.7 of the
/// rise give F1 0.794 / 0.801 / 0.802 at one decade).
pub(super) const COLLAPSE_SHARE: f64 = 0.5;
/// While recovering, how far (decades) the state may rise above its lowest value since the
/// collapse and still be the old fault fading (SKAB dev: 0.3 to 2 decades, no change).
pub(super) const RECOVERY_RISE_DECADES: f64 = 1.0;
/// A recovering state falls to a new low at least once in this many events (two of the
/// state's windows: its median needs about one window to move); one that stops falling (a
/// fault that settled at a lower level) is judged by the state test again. Without this
/// limit the models learned such a plateau while it was excused: a spike, then `b` shifted
/// by 1.5 of its 0.29 spread for 480 events, was flagged 0 times in 480 (issue 21 review);
/// with it 413. On the generated cases of `episode_tests` 9 or 12 events end the recovery of
/// a slowly fading tail too early (70 of its 180 events flagged), 27 lets a plateau be
/// learned (49 of 480 flagged); SKAB dev is the same from 5 events to no limit.
pub(super) const RECOVERY_NEW_LOW_WITHIN: u32 = 2 * STATE_EVENTS as u32;

/// The state test's alarm in progress, or the recovery after one (see the module doc).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Episode {
    /// The last event was flagged by the state test, or held by the hysteresis.
    pub(super) alarm: bool,
    /// The largest median T² of the alarm in progress (0 when none).
    pub(super) peak: f64,
    /// While recovering from a collapsed episode, the lowest median T² since (0 otherwise).
    pub(super) trough: f64,
    /// While recovering, the events since the state last fell to a new low.
    pub(super) since_low: u32,
}

/// What the episode makes of this event's state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct StateCall {
    /// The state test's p-value for this event: 1 while recovering (a state still falling
    /// back after its collapse is not evidence of a new fault).
    pub p_state: f64,
    /// The alarm in progress continues (hysteresis), whatever this event's score.
    pub hold: bool,
    /// The stream is recovering from a collapsed episode (or its episode collapsed now).
    pub recovering: bool,
}

impl Episode {
    /// The call on the state `median` (the median T² of the last events, when every joint
    /// field was present) with p-value `p_state`, against the state's typical value (asked
    /// for only during an episode or a recovery: it costs a pass over the calibration).
    pub(super) fn judge(
        &mut self,
        median: Option<f64>,
        p_state: f64,
        typical: impl FnOnce() -> f64,
    ) -> StateCall {
        // No episode or recovery: the state test speaks for itself.
        let open = StateCall {
            p_state,
            hold: false,
            recovering: false,
        };
        let Some(median) = median else {
            // No state to follow: a recovery cannot be told from a new fault.
            self.end_recovery();
            return open;
        };
        if !self.alarm && self.trough == 0.0 {
            return open;
        }
        let typical = typical().max(1e-300);
        let rise = |t2: f64| (t2.max(1e-300) / typical).log10();
        let mut recovering = false;
        if self.trough > 0.0 {
            if median < self.trough {
                self.trough = median;
                self.since_low = 0;
            } else {
                self.since_low = self.since_low.saturating_add(1);
            }
            recovering = p_state < STATE_EXIT
                && self.since_low < RECOVERY_NEW_LOW_WITHIN
                && rise(median) < rise(self.trough) + RECOVERY_RISE_DECADES;
            if !recovering {
                self.end_recovery();
            }
        }
        let mut hold = self.alarm && p_state < STATE_EXIT;
        if hold {
            let peak = rise(self.peak.max(median));
            if peak >= COLLAPSE_PEAK_DECADES && rise(median) < COLLAPSE_SHARE * peak {
                hold = false;
                recovering = true;
                self.trough = median;
                self.since_low = 0;
            }
        }
        StateCall {
            p_state: if recovering { 1.0 } else { p_state },
            hold,
            recovering,
        }
    }

    fn end_recovery(&mut self) {
        self.trough = 0.0;
        self.since_low = 0;
    }

    /// Records the verdict: `alarm` when the state test flagged this event or held it.
    pub(super) fn settle(&mut self, alarm: bool, median: Option<f64>) {
        self.alarm = alarm;
        self.peak = if alarm {
            self.peak.max(median.unwrap_or(0.0))
        } else {
            0.0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm_at(peak: f64) -> Episode {
        Episode {
            alarm: true,
            peak,
            trough: 0.0,
            since_low: 0,
        }
    }

    #[test]
    fn a_high_episode_that_collapses_ends_and_its_tail_is_not_a_new_one() {
        // Typical 8, the fault at 20,000 (3.4 decades), then 250 (1.5 decades): collapsed.
        let mut e = alarm_at(20_000.0);
        let call = e.judge(Some(250.0), 1e-50, || 8.0);
        assert!(!call.hold && call.recovering && call.p_state == 1.0);
        e.settle(false, Some(250.0));
        // The tail fades: still recovering, its own tiny p-value does not count.
        for m in [200.0, 150.0, 300.0] {
            let call = e.judge(Some(m), 1e-30, || 8.0);
            assert!(call.recovering && call.p_state == 1.0, "{m}");
            e.settle(false, Some(m));
        }
        // A new rise, ten times the lowest since: the state test speaks again.
        let call = e.judge(Some(1_600.0), 1e-90, || 8.0);
        assert!(!call.recovering && call.p_state == 1e-90);
        // Back among the ordinary states: recovery is over.
        let mut e = Episode {
            alarm: false,
            peak: 0.0,
            trough: 150.0,
            since_low: 0,
        };
        let call = e.judge(Some(7.0), 0.6, || 8.0);
        assert!(!call.recovering && e.trough == 0.0);
    }

    #[test]
    fn a_weak_or_lasting_episode_is_held() {
        // A weak fault (peak 3 times typical) that dips: held by the hysteresis alone.
        let mut e = alarm_at(24.0);
        let call = e.judge(Some(12.0), 0.1, || 8.0);
        assert!(call.hold && !call.recovering);
        // A high fault that stays high: held.
        let mut e = alarm_at(20_000.0);
        let call = e.judge(Some(9_000.0), 1e-300, || 8.0);
        assert!(call.hold && !call.recovering && call.p_state == 1e-300);
        // Back below the exit level: the episode is over, with no recovery to watch.
        let call = e.judge(Some(7.0), 0.5, || 8.0);
        assert!(!call.hold && !call.recovering);
    }

    #[test]
    fn a_recovery_that_stops_falling_or_cannot_be_followed_is_over() {
        let recovering = || Episode {
            alarm: false,
            peak: 0.0,
            trough: 150.0,
            since_low: 0,
        };
        // A plateau just above the lowest state: excused for a while, then judged again.
        let mut e = recovering();
        for k in 1..RECOVERY_NEW_LOW_WITHIN {
            assert!(e.judge(Some(160.0), 1e-20, || 8.0).recovering, "{k}");
        }
        let call = e.judge(Some(160.0), 1e-20, || 8.0);
        assert!(!call.recovering && call.p_state == 1e-20 && e.trough == 0.0);
        // A new low restarts the count.
        let mut e = recovering();
        for _ in 0..3 * RECOVERY_NEW_LOW_WITHIN {
            let low = e.trough * 0.99;
            assert!(e.judge(Some(low), 1e-20, || 8.0).recovering);
        }
        // A missing joint field: no state to follow.
        let mut e = recovering();
        let call = e.judge(None, 1.0, || 8.0);
        assert!(!call.recovering && e.trough == 0.0);
    }
}
