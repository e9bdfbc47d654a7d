//! Email templates: the subject, plain-text and HTML bodies of each kind of outbox mail,
//! rendered from the numbers stored with the row. Pure; never includes secrets or keys.

use serde_json::Value;

use crate::clock::format_rfc3339;

pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Where links in mail point.
pub struct Links<'a> {
    /// The admin UI's base URL, e.g. `https://driftlock.example.com`.
    pub public_url: &'a str,
}

fn s<'a>(p: &'a Value, k: &str) -> &'a str {
    p[k].as_str().unwrap_or("")
}

fn n(p: &Value, k: &str) -> u64 {
    p[k].as_u64().unwrap_or(0)
}

/// `1234567` -> `1,234,567`.
fn grouped(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn dollars(cents: u64) -> String {
    format!("${}.{:02}", grouped(cents / 100), cents % 100)
}

pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Wraps paragraphs of plain text into a small HTML document, escaping them.
fn html_from(paragraphs: &[String], link: (&str, &str)) -> String {
    let mut html = String::from(
        "<!doctype html><html><body style=\"font-family:sans-serif;line-height:1.5\">",
    );
    for p in paragraphs {
        html.push_str("<p>");
        html.push_str(&escape_html(p));
        html.push_str("</p>");
    }
    html.push_str(&format!(
        "<p><a href=\"{}\">{}</a></p></body></html>",
        escape_html(link.0),
        escape_html(link.1)
    ));
    html
}

pub fn render(kind: &str, params: &Value, links: &Links<'_>) -> Rendered {
    match kind {
        "usage_alert" => usage_alert(params, links),
        "monitor_anomaly" => monitor_anomaly(params, links),
        "payment_failed" => payment_failed(params, links),
        "dunning_changed" => dunning_changed(params, links),
        "test" => {
            let text =
                "This is a test message from Driftlock. If you can read it, email delivery works."
                    .to_string();
            let url = format!("{}/admin/", links.public_url);
            Rendered {
                subject: "[Driftlock] Test email".into(),
                html: html_from(
                    std::slice::from_ref(&text),
                    (&url, "Open the Driftlock admin"),
                ),
                text: format!("{text}\n\nAdmin: {url}\n"),
            }
        }
        other => {
            let text = format!("Driftlock notification of kind {other}:\n{params}");
            Rendered {
                subject: format!("[Driftlock] {other}"),
                html: html_from(std::slice::from_ref(&text), (links.public_url, "Driftlock")),
                text,
            }
        }
    }
}

fn dunning_changed(p: &Value, links: &Links<'_>) -> Rendered {
    let org = s(p, "organization_name");
    let after = s(p, "after");
    let what = match after {
        "past_due" => "is past due: detection still works, but the account will be suspended if the invoice stays unpaid",
        "suspended" => "is suspended for non-payment: detection calls answer 402 until the invoice is paid",
        _ => "changed its billing state",
    };
    let paragraphs = vec![format!(
        "The account of {org} {what} (state {after}, before {}).",
        s(p, "before")
    )];
    let url = format!(
        "{}/admin/#/orgs/{}",
        links.public_url,
        s(p, "organization_id")
    );
    Rendered {
        subject: format!("[Driftlock] {org}: account {}", after.replace('_', " ")),
        html: html_from(&paragraphs, (&url, "See billing")),
        text: format!("{}\n\nBilling: {url}\n", paragraphs.join("\n\n")),
    }
}

fn payment_failed(p: &Value, links: &Links<'_>) -> Rendered {
    let org = s(p, "organization_name");
    let amount = p["amount_due"].as_i64().unwrap_or(0).max(0) as u64;
    let currency = s(p, "currency").to_uppercase();
    let mut paragraphs = vec![
        format!(
            "The payment of invoice {} for {org} ({} {currency}) failed.",
            p["number"].as_str().unwrap_or(s(p, "invoice")),
            dollars(amount).trim_start_matches('$')
        ),
        "The account is in a grace period: detection keeps working for now. Please update the payment method; without payment the account moves to past due and then to suspended.".to_string(),
    ];
    let url = match p["hosted_invoice_url"].as_str() {
        Some(u) => u.to_string(),
        None => format!(
            "{}/admin/#/orgs/{}",
            links.public_url,
            s(p, "organization_id")
        ),
    };
    paragraphs.push(format!("Invoice: {url}"));
    Rendered {
        subject: format!("[Driftlock] Payment failed for {org}"),
        html: html_from(&paragraphs, (&url, "Pay the invoice")),
        text: paragraphs.join("\n\n") + "\n",
    }
}

fn monitor_anomaly(p: &Value, links: &Links<'_>) -> Rendered {
    let name = p["monitor"]["name"].as_str().unwrap_or("");
    let e = &p["explanation"];
    let when = format_rfc3339(p["timestamp"].as_i64().unwrap_or(0).saturating_mul(1000));
    let mut paragraphs = vec![format!(
        "Monitor {name} saw {} at {when} (anomaly score {:.3}, confidence {:.4}).",
        p["value"],
        p["score"].as_f64().unwrap_or(0.0),
        e["confidence"].as_f64().unwrap_or(0.0)
    )];
    if let (Some(lo), Some(hi)) = (e["expected_low"].as_f64(), e["expected_high"].as_f64()) {
        paragraphs.push(format!("Expected range: {lo:.4} to {hi:.4}."));
    }
    paragraphs.push(s(e, "summary").to_string());
    if let (Some(id), Some(path)) = (p["anomaly_id"].as_str(), p["anomaly_path"].as_str()) {
        paragraphs.push(format!(
            "Anomaly {id}. Acknowledge or resolve it with PATCH {}{path} and a body such as \
             {{\"status\": \"acknowledged\", \"note\": \"...\"}}.",
            links.public_url
        ));
    }
    if let Some(path) = p["feedback_path"].as_str() {
        paragraphs.push(format!(
            "Not an anomaly? POST {}{path} with {{\"verdict\": \"false_positive\"}}: the \
             detection leaves this period's usage and alarms like it are suppressed. Use \
             \"expected\" for a change that is the new normal.",
            links.public_url
        ));
    }
    paragraphs.push("Further anomalies in this episode will not be mailed again.".into());
    let url = format!(
        "{}/admin/#/monitors/{}",
        links.public_url,
        p["monitor"]["id"].as_str().unwrap_or("")
    );
    let mut text = paragraphs.join("\n\n");
    text.push_str(&format!("\n\nMonitor: {url}\n"));
    Rendered {
        // The tenant's own text (the monitor's name) stays out of the subject: mail from this
        // server must not carry words a tenant chose where a reader decides whether to trust it.
        subject: format!(
            "[Driftlock] Anomaly on monitor {}",
            p["monitor"]["id"].as_str().unwrap_or("")
        ),
        html: html_from(&paragraphs, (&url, "Open the monitor")),
        text,
    }
}

fn usage_alert(p: &Value, links: &Links<'_>) -> Rendered {
    let org = s(p, "organization_name");
    let threshold = n(p, "threshold_percent");
    let (used, included) = (n(p, "used"), n(p, "included"));
    let percent = p["percent_used"].as_f64().unwrap_or(0.0);
    let period_end = format_rfc3339(p["period_end_ms"].as_i64().unwrap_or(0));
    let subject = if threshold > 100 {
        format!(
            "[Driftlock] {org} reached its usage cap ({threshold}%): detection calls are paused"
        )
    } else if threshold == 100 {
        format!("[Driftlock] {org} has used all its included detections (100%)")
    } else {
        format!("[Driftlock] {org} has used {threshold}% of its included detections")
    };
    let mut paragraphs = vec![
        format!(
            "{org} (plan {}) has used {} of the {} anomaly detections included this billing period ({:.1}%).",
            s(p, "plan"),
            grouped(used),
            grouped(included),
            percent
        ),
        format!("The period ends at {period_end}."),
    ];
    let overage = n(p, "overage_calls");
    if overage > 0 {
        paragraphs.push(format!(
            "Detections beyond the included amount so far: {}, estimated at {}.",
            grouped(overage),
            dollars(n(p, "estimated_charges_cents"))
        ));
    }
    if threshold > 100 {
        paragraphs.push(
            "Detection calls now answer 429 until the period ends, the plan is upgraded or the quota policy is changed."
                .into(),
        );
    }
    let url = format!(
        "{}/admin/#/orgs/{}",
        links.public_url,
        s(p, "organization_id")
    );
    let mut text = paragraphs.join("\n\n");
    text.push_str(&format!("\n\nUsage and plan: {url}\n"));
    Rendered {
        subject,
        html: html_from(&paragraphs, (&url, "See usage and plan")),
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(threshold: u64, used: u64) -> Value {
        json!({
            "organization_id": "org_1", "organization_name": "Acme <Ops>", "plan": "standard",
            "threshold_percent": threshold, "used": used, "included": 250_000,
            "percent_used": used as f64 * 100.0 / 250_000.0, "overage_calls": used.saturating_sub(250_000),
            "estimated_charges_cents": used.saturating_sub(250_000) * 35 / 100,
            "period_start_ms": 0, "period_end_ms": 1_796_083_200_000i64,
        })
    }

    #[test]
    fn usage_alerts_carry_the_numbers() {
        let links = Links {
            public_url: "https://dl.example",
        };
        let r = render("usage_alert", &alert(70, 175_000), &links);
        assert_eq!(
            r.subject,
            "[Driftlock] Acme <Ops> has used 70% of its included detections"
        );
        assert!(r.text.contains("175,000 of the 250,000"), "{}", r.text);
        assert!(r.text.contains("(70.0%)"));
        assert!(r.text.contains("2026-12-01T00:00:00.000Z"));
        assert!(r.text.contains("https://dl.example/admin/#/orgs/org_1"));
        assert!(r.html.contains("Acme &lt;Ops&gt;"), "HTML is escaped");

        let cap = render("usage_alert", &alert(120, 300_000), &links);
        assert!(cap.subject.contains("usage cap (120%)"));
        assert!(
            cap.text.contains("50,000, estimated at $175.00"),
            "{}",
            cap.text
        );
        assert!(cap.text.contains("429"));
    }

    #[test]
    fn monitor_anomalies_say_what_was_seen_and_expected() {
        let p = json!({"monitor": {"id": "mon_1", "name": "latency"}, "timestamp": 1_700_000_000, "value": 5000.0,
            "anomaly_id": "ma_3", "anomaly_path": "/v1/monitors/mon_1/anomalies/ma_3", "feedback_path": "/v1/monitors/mon_1/anomalies/ma_3/feedback", "score": 0.97, "explanation": {"confidence": 0.9999, "expected_low": 40.0, "expected_high": 60.0, "summary": "Far above."}});
        let r = render(
            "monitor_anomaly",
            &p,
            &Links {
                public_url: "http://x",
            },
        );
        assert_eq!(r.subject, "[Driftlock] Anomaly on monitor mon_1");
        assert!(
            r.text.contains("5000.0 at 2023-11-14T22:13:20.000Z"),
            "{}",
            r.text
        );
        assert!(r.text.contains("Expected range: 40.0000 to 60.0000."));
        assert!(r.text.contains("Far above."));
        assert!(
            r.text
                .contains("Anomaly ma_3. Acknowledge or resolve it with PATCH http://x/v1/monitors/mon_1/anomalies/ma_3"),
            "{}",
            r.text
        );
        assert!(
            r.text
                .contains("POST http://x/v1/monitors/mon_1/anomalies/ma_3/feedback with {\"verdict\": \"false_positive\"}"),
            "{}",
            r.text
        );
    }

    #[test]
    fn money_and_numbers_format() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(dollars(18_375), "$183.75");
        assert_eq!(dollars(5), "$0.05");
    }
}
