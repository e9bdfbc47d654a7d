//! Prometheus metrics kept in process: request counts and latency histograms by route,
//! method and status, plus gauges supplied at scrape time (store size, uptime).

use std::{collections::BTreeMap, fmt::Write, sync::Mutex, time::Duration};

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum_secs: f64,
    buckets: [u64; BUCKETS.len()],
}

type SeriesKey = (String, String, u16);

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<SeriesKey, Series>>,
}

/// Gauges read at scrape time.
pub struct Gauges {
    pub store_bytes: u64,
    pub uptime_secs: f64,
    pub schema_version: u64,
}

impl Metrics {
    pub fn record(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let series = map
            .entry((route.to_string(), method.to_string(), status))
            .or_default();
        series.count += 1;
        series.sum_secs += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                series.buckets[i] += 1;
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP driftlock_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE driftlock_http_requests_total counter\n");
        for ((route, method, status), s) in map.iter() {
            let _ = writeln!(
                out,
                "driftlock_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        out.push_str(
            "# HELP driftlock_http_request_duration_seconds Time to answer HTTP requests.\n",
        );
        out.push_str("# TYPE driftlock_http_request_duration_seconds histogram\n");
        for ((route, method, status), s) in map.iter() {
            let labels = format!("route=\"{route}\",method=\"{method}\",status=\"{status}\"");
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "driftlock_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "driftlock_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "driftlock_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_secs
            );
            let _ = writeln!(
                out,
                "driftlock_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        drop(map);
        let gauge = |out: &mut String, name: &str, help: &str, value: String| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            );
        };
        gauge(
            &mut out,
            "driftlock_store_bytes",
            "Size of the store file in bytes.",
            gauges.store_bytes.to_string(),
        );
        gauge(
            &mut out,
            "driftlock_store_schema_version",
            "Schema version of the open store.",
            gauges.schema_version.to_string(),
        );
        gauge(
            &mut out,
            "driftlock_uptime_seconds",
            "Seconds since the server started.",
            format!("{:.3}", gauges.uptime_secs),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets_requests() {
        let m = Metrics::default();
        m.record("getOrg", "GET", 200, Duration::from_millis(3));
        m.record("getOrg", "GET", 200, Duration::from_millis(300));
        let text = m.render(&Gauges {
            store_bytes: 10,
            uptime_secs: 1.0,
            schema_version: 1,
        });
        assert!(text.contains(
            "driftlock_http_requests_total{route=\"getOrg\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"0.5\"} 2"));
        assert!(text.contains("driftlock_store_bytes 10"));
    }
}
