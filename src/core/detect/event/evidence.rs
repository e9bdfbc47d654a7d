//! What each signal found, and how the event's p-values are combined (issue 21).
//!
//! Owns [`Evidence`] (kept per event while scoring, formatted by [`super::explain`] only when
//! the event is flagged) and [`fisher_log10`], Fisher's combination of independent p-values.

/// What one signal found in the event being scored (formatted only when it is flagged).
#[derive(Debug, Clone)]
pub(crate) enum Evidence {
    Value {
        f: usize,
        text: String,
        count: f64,
        total: f64,
    },
    Template {
        f: usize,
        text: String,
        count: f64,
        total: f64,
    },
    Burst {
        f: usize,
        text: String,
        template: bool,
        recent: f64,
        usual: f64,
    },
    Numeric {
        f: usize,
        x: f64,
        median: f64,
        spread: f64,
        constant: bool,
    },
    NewKey {
        name: String,
    },
    MissingKey {
        f: usize,
    },
    RareKey {
        f: usize,
    },
    Joint {
        t2: f64,
        typical: f64,
        z: Vec<(usize, f64)>,
    },
    State {
        median: f64,
        typical: f64,
    },
    /// The state was flagged and has not returned: held by the hysteresis.
    StateHeld {
        median: f64,
        typical: f64,
    },
}

/// -log10 of Fisher's combined p-value: X = -2 sum ln p_i is chi-squared with 2k degrees of
/// freedom, whose upper tail has the closed form e^(-X/2) sum_{j<k} (X/2)^j / j!.
pub(crate) fn fisher_log10(ps: &[f64]) -> f64 {
    if ps.is_empty() {
        return 0.0;
    }
    let half: f64 = ps.iter().map(|p| -p.clamp(1e-300, 1.0).ln()).sum();
    // log of sum_{j<k} half^j / j!, accumulated stably in logs.
    let mut log_term = 0.0f64;
    let mut log_sum = 0.0f64;
    for j in 1..ps.len() {
        log_term += half.max(1e-300).ln() - (j as f64).ln();
        let (a, b) = if log_sum > log_term {
            (log_sum, log_term)
        } else {
            (log_term, log_sum)
        };
        log_sum = a + (b - a).exp().ln_1p();
    }
    let ln_p = (-half + log_sum).min(0.0);
    -ln_p / std::f64::consts::LN_10
}
