//! Email delivery against a real SMTP server on loopback (aiosmtpd): alerts arrive with the
//! right recipient, subject and numbers; a server that is down for a while gets each mail
//! exactly once when it comes back; mail pending at a restart goes out after the start; a
//! permanently refused address ends `failed` after the configured attempts; with no SMTP
//! configured, mail lands in the data directory.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use serde_json::{json, Value};

use crate::support::{free_port, get, post, python, service_key, start_with, wait_for, Server};

struct Sink {
    child: Child,
    dir: PathBuf,
}

impl Sink {
    fn start(port: u16, dir: &Path) -> Sink {
        std::fs::create_dir_all(dir).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/smtp_sink.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(port.to_string())
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the SMTP sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "SMTP sink did not start");
        Sink {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn messages(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp_args(port: u16) -> Vec<String> {
    [
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &port.to_string(),
        "--smtp-tls",
        "none",
        "--smtp-from",
        "alerts@driftlock.example",
        "--email-poll-ms",
        "50",
        "--email-retry-base-ms",
        "150",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn serve(data: &Path, args: &[String]) -> Server {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start_with(data, &args, &[])
}

fn outbox_row(server: &Server, admin: &str, id: u64) -> Value {
    let (_, outbox) = get(server, "/v1/admin/outbox/email?limit=500", Some(admin));
    outbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .cloned()
        .unwrap()
}

fn queue_test_email(server: &Server, admin: &str, to: &str) -> u64 {
    let (s, row) = post(
        server,
        "/v1/admin/email/test",
        Some(admin),
        &json!({"to": to}),
    );
    assert_eq!(s, 202, "{row}");
    row["id"].as_u64().unwrap()
}

#[test]
fn a_usage_alert_arrives_with_recipient_subject_and_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sink = Sink::start(port, &dir.path().join("sink"));
    let server = serve(&dir.path().join("data"), &smtp_args(port));
    let admin = server.admin_token();
    let (_, org) = post(
        &server,
        "/v1/admin/orgs",
        Some(&admin),
        &json!({"name": "Acme", "plan": "standard", "billing_email": "billing@acme.example"}),
    );
    let org = org["id"].as_str().unwrap();
    let service = service_key(&server, &admin);
    let (s, _) = post(
        &server,
        "/v1/meter-usage",
        Some(&service),
        &json!({"organization_id": org, "anomaly": true, "count": 175_000}),
    );
    assert_eq!(s, 200);

    let mail = wait_for(20, "the 70% alert", || sink.messages().into_iter().next());
    assert!(
        mail.contains("X-Envelope-To: billing@acme.example"),
        "{mail}"
    );
    assert!(
        mail.contains("Subject: [Driftlock] Acme has used 70% of its included detections"),
        "{mail}"
    );
    assert!(mail.contains("175,000 of the 250,000"), "{mail}");
    assert!(
        mail.contains("2026-12-01") || mail.contains("T00:00:00.000Z"),
        "period end: {mail}"
    );
    assert!(!mail.contains(&admin), "no secrets in mail");
    let row = wait_for(10, "the row marked sent", || {
        let (_, outbox) = get(&server, "/v1/admin/outbox/email", Some(&admin));
        let row = outbox["items"][0].clone();
        (row["status"] == "sent").then_some(row)
    });
    assert_eq!(row["attempts"], 1);
    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn mail_waits_for_a_server_that_is_down_and_arrives_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut args = smtp_args(port);
    args.extend(["--email-max-attempts".into(), "30".into()]);
    let server = serve(&dir.path().join("data"), &args);
    let admin = server.admin_token();
    let ids: Vec<u64> = (0..3)
        .map(|i| queue_test_email(&server, &admin, &format!("ops{i}@acme.example")))
        .collect();
    wait_for(20, "failed attempts while the server is down", || {
        let row = outbox_row(&server, &admin, ids[0]);
        (row["attempts"].as_u64().unwrap() >= 2 && row["status"] == "pending").then_some(())
    });
    let (_, workers) = get(&server, "/v1/admin/workers", Some(&admin));
    assert_eq!(workers["items"][0]["name"], "email");

    let sink = Sink::start(port, &dir.path().join("sink"));
    wait_for(30, "all mail delivered", || {
        ids.iter()
            .all(|id| outbox_row(&server, &admin, *id)["status"] == "sent")
            .then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let messages = sink.messages();
    assert_eq!(messages.len(), 3, "each mail exactly once");
    for i in 0..3 {
        assert_eq!(
            messages
                .iter()
                .filter(|m| m.contains(&format!("X-Envelope-To: ops{i}@acme.example")))
                .count(),
            1
        );
    }
}

#[test]
fn mail_pending_at_a_restart_is_delivered_after_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut server = serve(&data, &smtp_args(port));
    let admin = server.admin_token();
    let id = queue_test_email(&server, &admin, "later@acme.example");
    wait_for(20, "a failed attempt", || {
        (outbox_row(&server, &admin, id)["attempts"].as_u64() >= Some(1)).then_some(())
    });
    server.stop_with("TERM");

    let sink = Sink::start(port, &dir.path().join("sink"));
    let server = serve(&data, &smtp_args(port));
    wait_for(30, "delivery after the restart", || {
        (outbox_row(&server, &admin, id)["status"] == "sent").then_some(())
    });
    assert_eq!(sink.messages().len(), 1);
    assert!(sink.messages()[0].contains("Subject: [Driftlock] Test email"));
}

#[test]
fn a_refused_address_ends_failed_after_the_configured_attempts_and_can_be_retried() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sink = Sink::start(port, &dir.path().join("sink"));
    let mut args = smtp_args(port);
    args.extend(["--email-max-attempts".into(), "3".into()]);
    let server = serve(&dir.path().join("data"), &args);
    let admin = server.admin_token();
    let bad = queue_test_email(&server, &admin, "bounce@acme.example");
    let good = queue_test_email(&server, &admin, "fine@acme.example");
    let row = wait_for(30, "the refused mail to fail", || {
        let row = outbox_row(&server, &admin, bad);
        (row["status"] == "failed").then_some(row)
    });
    assert_eq!(row["attempts"], 3);
    assert!(row["last_error"].as_str().unwrap().contains("550"), "{row}");
    wait_for(10, "the good mail", || {
        (outbox_row(&server, &admin, good)["status"] == "sent").then_some(())
    });
    assert_eq!(sink.messages().len(), 1);

    let (s, retried) = post(
        &server,
        &format!("/v1/admin/outbox/email/{bad}/retry"),
        Some(&admin),
        &json!({}),
    );
    assert_eq!(
        (s, retried["status"].as_str(), retried["attempts"].as_u64()),
        (200, Some("pending"), Some(0)),
        "{retried}"
    );
    let (s, b) = post(
        &server,
        &format!("/v1/admin/outbox/email/{good}/retry"),
        Some(&admin),
        &json!({}),
    );
    crate::support::assert_error(s, &b, 409, "conflict");
}

#[test]
fn without_smtp_mail_goes_to_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = start_with(&data, &["--email-poll-ms", "50"], &[]);
    let admin = server.admin_token();
    let id = queue_test_email(&server, &admin, "ops@acme.example");
    wait_for(20, "the mail written", || {
        (outbox_row(&server, &admin, id)["status"] == "sent").then_some(())
    });
    let files: Vec<_> = std::fs::read_dir(data.join("mail/new")).unwrap().collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    assert!(
        text.contains("To: <ops@acme.example>") || text.contains("To: ops@acme.example"),
        "{text}"
    );
    let (_, log) = server.stop_with("TERM");
    assert!(log.contains("no SMTP server configured"), "{log}");
}
