//! Start-up and shutdown. `serve` runs its steps in order, logging each: resolve the config,
//! prepare the data directory, open and migrate the store, settle the admin token, bind, serve;
//! on SIGTERM or SIGINT it stops taking connections, lets in-flight requests finish (bounded
//! by the grace period) and closes the store.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, Instant},
};

use anyhow::Context;
use poem::{listener::Acceptor, listener::Listener, listener::TcpListener, Server};

use crate::{
    api::{self, AppState, InFlightLimiter, Metrics, RateLimiter},
    cli::{Cli, Command, LogFormat, ScoreArgs, ScoreEventsArgs, ServeArgs},
    config::{self, AdminTokenSource, Config},
    secrets,
    store::Store,
    sync::{
        self,
        dunning::DunningWorker,
        email::{EmailWorker, Transport},
        stripe::{StripeClient, StripeWorker},
        webhooks::WebhookWorker,
        Workers,
    },
};
use tokio::sync::watch;

/// File in the data directory that holds the generated admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or_default() {
        Command::Serve(args) => serve(*args),
        Command::Score(args) => score(&args),
        Command::ScoreEvents(args) => score_events(&args),
        Command::Backup(args) => crate::ops::backup(&args),
        Command::Restore(args) => crate::ops::restore(&args),
        Command::Doctor(args) => crate::doctor::run(&args),
        Command::Billing(crate::cli::BillingCommand::Reconcile(args)) => {
            crate::ops::reconcile(&args)
        }
        Command::Openapi => {
            let mut out = std::io::stdout().lock();
            out.write_all(api::openapi_json().as_bytes())?;
            out.write_all(b"\n")?;
            Ok(())
        }
    }
}

fn score(args: &ScoreArgs) -> anyhow::Result<()> {
    let input = std::fs::File::open(&args.input)
        .with_context(|| format!("while opening {}", args.input.display()))?;
    let output = std::fs::File::create(&args.output)
        .with_context(|| format!("while creating {}", args.output.display()))?;
    let summary = crate::score::score_csv(
        std::io::BufReader::new(input),
        std::io::BufWriter::new(output),
        &crate::core::detect::MetricSettings::default(),
    )
    .with_context(|| format!("while scoring {}", args.input.display()))?;
    eprintln!(
        "scored {} rows ({} anomalies, {} rejected) into {}",
        summary.rows,
        summary.anomalies,
        summary.rejected,
        args.output.display()
    );
    Ok(())
}

fn score_events(args: &ScoreEventsArgs) -> anyhow::Result<()> {
    let input = std::fs::File::open(&args.input)
        .with_context(|| format!("while opening {}", args.input.display()))?;
    let output = std::fs::File::create(&args.output)
        .with_context(|| format!("while creating {}", args.output.display()))?;
    let summary = crate::score_events::score_ndjson(
        std::io::BufReader::new(input),
        std::io::BufWriter::new(output),
        &crate::core::detect::EventSettings::default(),
    )
    .with_context(|| format!("while scoring {}", args.input.display()))?;
    eprintln!(
        "scored {} events ({} anomalies) into {}",
        summary.events,
        summary.anomalies,
        args.output.display()
    );
    Ok(())
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Human => builder.with_ansi(false).init(),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let config = config::resolve(&args, &env).context("while reading the configuration")?;
    init_logging(&config);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(listen = %config.listen, data_dir = %config.data_dir.display(), "configuration resolved");

    prepare_data_dir(&config.data_dir)?;
    let (store, unwritable) = Store::open_or_wait(&config.data_dir)
        .with_context(|| format!("while opening the store in {}", config.data_dir.display()))?;
    store.set_org_limits(config.org_limits);
    if let Some(e) = unwritable {
        tracing::error!(
            data_dir = %config.data_dir.display(),
            error = %e,
            "the store cannot be opened for writing (read-only data directory or file system?); \
             every call answers 503 and /readyz reports it until it can, which is retried every second"
        );
    }
    let (admin_token, token_path) = settle_admin_token(&config)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")?;
    let workers = Arc::new(Workers::default());
    let state = Arc::new(AppState {
        store,
        admin_token,
        metrics: Metrics::default(),
        max_body_bytes: config.max_body_bytes,
        unauthenticated_body_bytes: config.unauthenticated_body_bytes,
        body_timeout: config.body_timeout,
        max_batch_events: config.max_batch_events,
        dunning_policy: config.dunning,
        stripe_webhook_secret: config.stripe_webhook_secret.clone(),
        cors_allowed_origins: config.cors_allowed_origins.clone(),
        stripe: StripeClient::new(&config.stripe),
        meter_event_name: config.stripe.meter_event_name.clone(),
        stripe_publishable_key: config.stripe_publishable_key.clone(),
        public_url: config.email.public_url.clone(),
        data_dir: config.data_dir.clone(),
        rate_limiter: RateLimiter::new(config.rate_limit_per_sec, config.rate_limit_burst),
        org_batches: InFlightLimiter::new(config.org_concurrent_batches),
        workers: workers.clone(),
        sessions: Default::default(),
        webhook_destinations: config.webhooks.destinations.clone(),
        live_tickets: Default::default(),
        started_at: Instant::now(),
        shutting_down: AtomicBool::new(false),
    });
    runtime.block_on(async {
        let (stop_workers, shutdown) = watch::channel(false);
        let handles = start_workers(&config, &state.store, &workers, shutdown);
        let served = serve_http(&config, state.clone(), token_path).await;
        let _ = stop_workers.send(true);
        let grace = Duration::from_secs(10);
        for handle in handles {
            if tokio::time::timeout(grace, handle).await.is_err() {
                tracing::warn!("a worker did not stop within {} s", grace.as_secs());
            }
        }
        served
    })?;
    drop(runtime);
    match Arc::try_unwrap(state) {
        Ok(state) => {
            drop(state.store);
            tracing::info!("store closed; goodbye");
        }
        Err(_) => tracing::warn!("store still referenced at exit; it closes with the process"),
    }
    Ok(())
}

fn start_workers(
    config: &Config,
    store: &Store,
    workers: &Arc<Workers>,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    match &config.email.transport {
        Transport::Maildir(dir) => tracing::warn!(
            dir = %dir.display(),
            "no SMTP server configured: outgoing mail is written to this folder (set --smtp-host to send it)"
        ),
        Transport::Smtp(smtp) => {
            tracing::info!(host = %smtp.host, port = smtp.port, tls = ?smtp.tls, "outgoing mail goes to SMTP")
        }
    }
    let email = EmailWorker::new(store.clone(), config.email.clone());
    let webhooks = WebhookWorker::new(store.clone(), config.webhooks.clone());
    if config.stripe.secret_key.is_none() {
        tracing::warn!(
            "no Stripe secret key: billing runs offline and metered usage waits until one is set"
        );
    }
    let stripe = StripeWorker::new(store.clone(), config.stripe.clone());
    vec![
        sync::spawn(email, workers.clone(), shutdown.clone()),
        sync::spawn(webhooks, workers.clone(), shutdown.clone()),
        sync::spawn(stripe, workers.clone(), shutdown.clone()),
        sync::spawn(
            DunningWorker {
                store: store.clone(),
                policy: config.dunning,
                every: Duration::from_secs(60),
            },
            workers.clone(),
            shutdown.clone(),
        ),
        sync::spawn(
            sync::store_health::StoreHealthWorker {
                store: store.clone(),
            },
            workers.clone(),
            shutdown,
        ),
    ]
}

async fn serve_http(
    config: &Config,
    state: Arc<AppState>,
    token_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    let acceptor = TcpListener::bind(config.listen)
        .into_acceptor()
        .await
        .with_context(|| format!("while binding {}", config.listen))?;
    let local = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .context("listener has no address")?;
    print_banner(&local.to_string(), config, token_path.as_deref());
    tracing::info!(address = %local, "listening");
    notify_systemd("READY=1");

    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let app = api::app(state.clone());
    let shutdown_state = state.clone();
    Server::new_with_acceptor(api::listener::LimitedAcceptor::new(
        acceptor,
        config.max_connections,
        config.header_timeout,
    ))
    .idle_timeout(config.idle_timeout)
    .run_with_graceful_shutdown(
        app,
        async move {
            shutdown_signal().await;
            shutdown_state
                .shutting_down
                .store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(
                grace_secs = grace.as_secs(),
                "shutting down: finishing in-flight requests"
            );
        },
        Some(grace),
    )
    .await
    .context("while serving HTTP")?;
    tracing::info!("HTTP server stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Tells systemd (`Type=notify`) about readiness and shutdown, when it is listening.
fn notify_systemd(state: &str) {
    #[cfg(unix)]
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).to_vec();
        let addr = match bytes.strip_prefix(b"@") {
            #[cfg(target_os = "linux")]
            Some(name) => {
                <SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name)
            }
            #[cfg(not(target_os = "linux"))]
            Some(_) => return,
            None => SocketAddr::from_pathname(std::path::Path::new(&path)),
        };
        let sent =
            addr.and_then(|addr| UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr));
        if let Err(e) = sent {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }
}

fn print_banner(addr: &str, config: &Config, token_path: Option<&Path>) {
    let token_line = match token_path {
        Some(path) => format!("admin token:  in {}", path.display()),
        None => "admin token:  as configured".to_string(),
    };
    // Tests and scripts read the first line to learn the bound address. Written without
    // `println!`, which would end the server if whoever started it closed stdout (a pipe read
    // for one line, a closed terminal): the banner is a courtesy, the log says the same.
    let banner = format!(
        "driftlock listening on http://{addr}\n  admin UI:     http://{addr}/admin/\n  \
         API docs:     http://{addr}/docs\n  data:         {}\n  {token_line}\n",
        config.data_dir.display()
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
}

fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("while creating the data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777), "the data directory is readable by other users; chmod 700 is advised");
        }
    }
    Ok(())
}

/// The admin token in force, and the file it lives in when it was generated.
fn settle_admin_token(config: &Config) -> anyhow::Result<(String, Option<PathBuf>)> {
    if let AdminTokenSource::Configured(token) = &config.admin_token {
        tracing::info!("admin token taken from the configuration");
        return Ok((token.clone(), None));
    }
    let path = config.data_dir.join(ADMIN_TOKEN_FILE);
    if path.exists() {
        let token = config::read_secret_file(&path)
            .with_context(|| "while reading the generated admin token")?;
        tracing::info!(path = %path.display(), "admin token read from the data directory");
        return Ok((token.trim().to_string(), Some(path)));
    }
    let token = secrets::new_admin_token();
    write_private_file(&path, &format!("{token}\n"))
        .with_context(|| format!("while writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "admin token created; read it from this file");
    Ok((token, Some(path)))
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
