//! Operator commands besides `serve`: backup and restore of the store. A backup taken while
//! the server runs goes through its admin API (the server holds the store's lock); otherwise
//! the store file is read directly.

use std::io::Write;

use anyhow::Context;

use crate::{
    cli::{BackupArgs, RestoreArgs},
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

fn backup_through_server(args: &BackupArgs) -> anyhow::Result<()> {
    let server = args
        .server
        .clone()
        .unwrap_or_else(|| format!("http://{}", args.listen));
    let token = match std::env::var("DRIFTLOCK_ADMIN_TOKEN") {
        Ok(t) => t,
        Err(_) => config::read_secret_file(&args.data_dir.join(crate::app::ADMIN_TOKEN_FILE))
            .context("the store is in use by a running server; reading its admin token")?
            .trim()
            .to_string(),
    };
    anyhow::ensure!(
        !args.output.exists(),
        "{} already exists",
        args.output.display()
    );
    let response = ureq::get(&format!("{}/v1/admin/backup", server.trim_end_matches('/')))
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
