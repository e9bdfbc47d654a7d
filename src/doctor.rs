//! `driftlock doctor`: checks what an operator gets wrong most often, without starting the
//! server, and says what is wrong in plain words. Exits non-zero when something must be fixed.

use std::{net::ToSocketAddrs, path::Path, time::Duration};

use crate::{
    app::ADMIN_TOKEN_FILE,
    cli::ServeArgs,
    config::{self, AdminTokenSource, Config},
    store::{backup, schema, DB_FILE},
    sync::email::Transport,
};

#[derive(Default)]
struct Report {
    errors: usize,
    warnings: usize,
}

impl Report {
    fn ok(&mut self, what: &str) {
        println!("ok       {what}");
    }
    fn warn(&mut self, what: &str) {
        self.warnings += 1;
        println!("warning  {what}");
    }
    fn error(&mut self, what: &str) {
        self.errors += 1;
        println!("PROBLEM  {what}");
    }
}

pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let mut report = Report::default();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let config = match config::resolve(args, &env) {
        Ok(c) => {
            report.ok("the configuration is valid");
            for w in &c.warnings {
                report.warn(w);
            }
            c
        }
        Err(e) => {
            report.error(&format!("the configuration is not valid: {e}"));
            anyhow::bail!("1 problem found");
        }
    };
    check_data_dir(&config, &mut report);
    check_store(&config.data_dir, &mut report);
    check_admin_token(&config, &mut report);
    check_mail(&config, &mut report);
    report.warn(
        "Stripe sync is not configured in this build: billing runs offline and its outbox waits",
    );
    println!(
        "\n{} problem(s), {} warning(s)",
        report.errors, report.warnings
    );
    anyhow::ensure!(report.errors == 0, "{} problem(s) found", report.errors);
    Ok(())
}

fn check_data_dir(config: &Config, report: &mut Report) {
    let dir = &config.data_dir;
    match std::fs::metadata(dir) {
        Err(_) => report.warn(&format!(
            "the data directory {} does not exist yet; `serve` creates it",
            dir.display()
        )),
        Ok(meta) if !meta.is_dir() => {
            report.error(&format!("{} is not a directory", dir.display()))
        }
        Ok(meta) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    report.warn(&format!("the data directory {} is readable by other users (mode {mode:o}); run chmod 700 on it", dir.display()));
                } else {
                    report.ok(&format!("the data directory {} is private", dir.display()));
                }
            }
            let probe = dir.join(".doctor-write-test");
            match std::fs::write(&probe, b"") {
                Ok(()) => {
                    let _ = std::fs::remove_file(&probe);
                    report.ok("the data directory is writable");
                }
                Err(e) => report.error(&format!("cannot write in the data directory: {e}")),
            }
        }
    }
}

fn check_store(dir: &Path, report: &mut Report) {
    let path = dir.join(DB_FILE);
    if !path.exists() {
        report.ok("no store yet; the first start creates one");
        return;
    }
    match redb::Database::open(&path) {
        Ok(db) => match schema::stored_version(&db) {
            Ok(v) if v == schema::CURRENT_SCHEMA_VERSION => report.ok(&format!("the store is at schema version {v}, this binary's")),
            Ok(v) if v < schema::CURRENT_SCHEMA_VERSION => report.ok(&format!(
                "the store is at schema version {v}; the next start migrates it to {}",
                schema::CURRENT_SCHEMA_VERSION
            )),
            Ok(v) => report.error(&format!(
                "the store is at schema version {v}, newer than this binary's {}; run the release that wrote it",
                schema::CURRENT_SCHEMA_VERSION
            )),
            Err(e) => report.error(&format!("the store cannot be read: {e}")),
        },
        Err(e) => {
            let e = crate::store::StoreError::from(e);
            if backup::in_use(&e) {
                report.ok("the store is open in a running server");
            } else {
                report.error(&format!("the store cannot be opened: {e}"));
            }
        }
    }
}

fn check_admin_token(config: &Config, report: &mut Report) {
    match &config.admin_token {
        AdminTokenSource::Configured(_) => {
            report.ok("the admin token comes from the configuration")
        }
        AdminTokenSource::DataDir => {
            let path = config.data_dir.join(ADMIN_TOKEN_FILE);
            match config::read_secret_file(&path) {
                Ok(_) => report.ok(&format!("the admin token is in {}", path.display())),
                Err(_) if !path.exists() => {
                    report.ok("no admin token yet; the first start writes one")
                }
                Err(e) => report.error(&e.to_string()),
            }
        }
    }
}

fn check_mail(config: &Config, report: &mut Report) {
    match &config.email.transport {
        Transport::Maildir(dir) => report.warn(&format!(
            "no SMTP server configured: mail is written to {} (set --smtp-host to send it)",
            dir.display()
        )),
        Transport::Smtp(smtp) => {
            let target = format!("{}:{}", smtp.host, smtp.port);
            let reachable = target.to_socket_addrs().ok().and_then(|mut addrs| {
                addrs.find_map(|a| {
                    std::net::TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok()
                })
            });
            match reachable {
                Some(_) => report.ok(&format!("the SMTP server {target} accepts connections")),
                None => report.error(&format!(
                    "the SMTP server {target} cannot be reached; mail waits in the outbox"
                )),
            }
            if smtp.username.is_some() && smtp.password.is_none() {
                report.error(
                    "an SMTP user name is set but no password (DRIFTLOCK_SMTP_PASSWORD or _FILE)",
                );
            }
        }
    }
}
