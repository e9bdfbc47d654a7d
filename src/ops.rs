//! Operator commands besides `serve`: backup and restore of the store. A backup taken while
//! the server runs goes through its admin API (the server holds the store's lock); otherwise
//! the store file is read directly.

use std::io::Write;

use anyhow::Context;

use crate::{
    cli::{BackupArgs, ReconcileArgs, RestoreArgs},
    config,
    store::backup,
};

pub fn backup(args: &BackupArgs) -> anyhow::Result<()> {
    match backup::backup_offline(&args.data_dir, &args.output) {
        Ok(summary) => {
            eprintln!(
                "backed up {} rows (schema version {}) from {} into {}",
                summary.rows,
                summary.schema_version,
                args.data_dir.display(),
                args.output.display()
            );
            Ok(())
        }
        Err(e) if backup::in_use(&e) => backup_through_server(args),
        Err(e) => Err(e).context("while backing up the store"),
    }
}

/// The running server's URL and the admin token to call it with.
fn server_and_token(
    server: &Option<String>,
    listen: std::net::SocketAddr,
    data_dir: &std::path::Path,
) -> anyhow::Result<(String, String)> {
    let server = server.clone().unwrap_or_else(|| format!("http://{listen}"));
    let token = match std::env::var("DRIFTLOCK_ADMIN_TOKEN") {
        Ok(t) => t,
        Err(_) => config::read_secret_file(&data_dir.join(crate::app::ADMIN_TOKEN_FILE))
            .context("reading the running server's admin token")?
            .trim()
            .to_string(),
    };
    Ok((server.trim_end_matches('/').to_string(), token))
}

pub fn reconcile(args: &ReconcileArgs) -> anyhow::Result<()> {
    let (server, token) = server_and_token(&args.server, args.listen, &args.data_dir)?;
    let report: serde_json::Value = ureq::post(&format!("{server}/v1/admin/billing/reconcile"))
        .set("Authorization", &format!("Bearer {token}"))
        .send_json(serde_json::json!({"fix": args.fix}))
        .map_err(|e| match e {
            ureq::Error::Status(_, r) => anyhow::anyhow!(r.into_string().unwrap_or_default()),
            other => anyhow::anyhow!(other),
        })
        .context("asking the server to reconcile")?
        .into_json()?;
    let lines = report["lines"].as_array().cloned().unwrap_or_default();
    println!(
        "compared with Stripe's meter summaries up to {} (newer deliveries are settling)",
        report["settled_until"].as_str().unwrap_or("?")
    );
    println!(
        "{:<24} {:<20} {:>10} {:>10} {:>10} {:>10}  finding",
        "organization", "customer", "delivered", "settling", "in flight", "stripe"
    );
    for l in &lines {
        println!(
            "{:<24} {:<20} {:>10} {:>10} {:>10} {:>10}  {} {} ({})",
            l["organization_id"].as_str().unwrap_or(""),
            l["stripe_customer_id"].as_str().unwrap_or(""),
            l["delivered"],
            l["settling"],
            l["in_flight"],
            l["stripe"],
            l["finding"].as_str().unwrap_or(""),
            l["difference"],
            l["action"].as_str().unwrap_or("")
        );
    }
    let differing = lines.iter().filter(|l| l["finding"] != "match").count();
    println!("{} customer(s), {differing} with differences", lines.len());
    Ok(())
}

fn backup_through_server(args: &BackupArgs) -> anyhow::Result<()> {
    let (server, token) = server_and_token(&args.server, args.listen, &args.data_dir)
        .context("the store is in use by a running server")?;
    anyhow::ensure!(
        !args.output.exists(),
        "{} already exists",
        args.output.display()
    );
    let response = ureq::get(&format!("{server}/v1/admin/backup"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .with_context(|| {
            format!("the store is in use; asking the server at {server} for a backup")
        })?;
    let staged = args.output.with_extension("partial");
    let mut file = std::fs::File::create(&staged)
        .with_context(|| format!("while creating {}", staged.display()))?;
    let bytes = std::io::copy(&mut response.into_reader(), &mut file)?;
    file.sync_all()?;
    std::fs::rename(&staged, &args.output)?;
    let _ = std::io::stderr().flush();
    eprintln!(
        "backed up {bytes} bytes from the running server at {server} into {}",
        args.output.display()
    );
    Ok(())
}

pub fn restore(args: &RestoreArgs) -> anyhow::Result<()> {
    let summary = backup::restore(&args.input, &args.data_dir).context("while restoring")?;
    eprintln!(
        "restored {} rows (schema version {}) into {}; start the server to migrate and use it",
        summary.rows,
        summary.schema_version,
        args.data_dir.display()
    );
    Ok(())
}
