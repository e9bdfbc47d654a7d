//! Load tool for streams, monitors and metering with many organizations and keys (issue 11).
//! Starts the release binary on a loopback port (or uses `--url` with `--admin-token-file`),
//! sets up the fleet through the admin API, drives it from client threads for a bounded time
//! and request count, and prints throughput, latency, outcomes and the metering check. Exits
//! 1 when a request failed without an answer, got a 5xx, or the metering was not exact.
//!
//! `cargo bench --bench loadgen -- --orgs 100 --keys 3 --clients 32 --seconds 20`

#[path = "loadgen/driver.rs"]
mod driver;

use std::{
    io::{BufRead, BufReader},
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use clap::Parser;

use driver::{Mix, Settings, Target};

/// Drive a driftlock server with many organizations, keys, streams and monitors.
#[derive(Parser)]
#[command(name = "loadgen")]
struct Cli {
    /// Organizations to create.
    #[arg(long)]
    orgs: Option<usize>,
    /// API keys per organization; each request uses a random one.
    #[arg(long)]
    keys: Option<usize>,
    /// Organizations left on `developer`, hard-capped just above their prefilled usage.
    #[arg(long)]
    capped_orgs: Option<usize>,
    /// Detections each capped organization has left when the run starts.
    #[arg(long)]
    capped_headroom: Option<u64>,
    #[arg(long)]
    streams: Option<usize>,
    #[arg(long)]
    monitors: Option<usize>,
    /// Client threads, each with its own HTTP agent.
    #[arg(long)]
    clients: Option<usize>,
    /// Length of the run phase.
    #[arg(long)]
    seconds: Option<f64>,
    /// Most requests of the run phase, replays included.
    #[arg(long)]
    max_requests: Option<u64>,
    #[arg(long)]
    events_per_batch: Option<usize>,
    #[arg(long)]
    points_per_batch: Option<usize>,
    /// Percent of billable requests sent again with the same idempotency key.
    #[arg(long)]
    replay_percent: Option<u32>,
    /// Weights of streams, monitors, metering and reads, e.g. `45,30,10,15`.
    #[arg(long, value_delimiter = ',', num_args = 4)]
    mix: Option<Vec<u32>>,
    #[arg(long)]
    seed: Option<u64>,
    /// A running server on loopback, e.g. http://127.0.0.1:8080 (needs --admin-token-file).
    #[arg(long, requires = "admin_token_file")]
    url: Option<String>,
    #[arg(long, requires = "url")]
    admin_token_file: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Cli {
    fn settings(&self) -> Result<Settings, String> {
        let d = Settings::default();
        let seconds = self.seconds.unwrap_or(d.duration.as_secs_f64());
        if !(seconds.is_finite() && seconds > 0.0) {
            return Err("--seconds must be a positive number".into());
        }
        let mix = match self.mix.as_deref() {
            Some(&[streams, monitors, metering, reads]) => Mix {
                streams,
                monitors,
                metering,
                reads,
            },
            Some(_) => return Err("--mix takes four weights".into()),
            None => d.mix,
        };
        Ok(Settings {
            orgs: self.orgs.unwrap_or(d.orgs),
            keys_per_org: self.keys.unwrap_or(d.keys_per_org),
            capped_orgs: self.capped_orgs.unwrap_or(d.capped_orgs),
            capped_headroom: self.capped_headroom.unwrap_or(d.capped_headroom),
            streams_per_org: self.streams.unwrap_or(d.streams_per_org),
            monitors_per_org: self.monitors.unwrap_or(d.monitors_per_org),
            clients: self.clients.unwrap_or(d.clients),
            duration: Duration::from_secs_f64(seconds),
            max_requests: self.max_requests.unwrap_or(d.max_requests),
            events_per_batch: self.events_per_batch.unwrap_or(d.events_per_batch),
            points_per_batch: self.points_per_batch.unwrap_or(d.points_per_batch),
            replay_percent: self.replay_percent.unwrap_or(d.replay_percent),
            mix,
            seed: self.seed.unwrap_or(d.seed),
            ..d
        })
    }
}

/// Traffic goes to this machine only.
fn loopback(url: &str) -> bool {
    let host = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("");
    host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]")
}

/// The release binary on a fresh loopback port with a fresh data directory.
struct Spawned {
    child: Child,
    data_dir: PathBuf,
}

impl Spawned {
    fn start() -> Result<(Spawned, Target), String> {
        let bin = env!("CARGO_BIN_EXE_driftlock");
        let data_dir =
            std::env::temp_dir().join(format!("driftlock-loadgen-{}", std::process::id()));
        // Private like an installed data directory, so the server has nothing to warn about.
        let log = std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&data_dir)
            .and_then(|()| std::fs::File::create(data_dir.join("server.log")))
            .map_err(|e| format!("while preparing {}: {e}", data_dir.display()))?;
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-level", "warn"])
            .arg("--data-dir")
            .arg(&data_dir)
            .env_remove("DRIFTLOCK_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("while starting {bin}: {e}"))?;
        let mut banner = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let read = stdout.read_line(&mut banner);
        // Keep reading: the server panics when it prints the rest of its banner into a
        // closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let spawned = Spawned { child, data_dir };
        read.map_err(|e| format!("while reading the banner: {e}"))?;
        let base = banner
            .trim()
            .strip_prefix("driftlock listening on ")
            .ok_or_else(|| format!("unexpected banner {banner:?}"))?
            .to_string();
        wait_ready(&base)?;
        let admin_token = read_token(&spawned.data_dir.join("admin.token"))?;
        let description = format!("{bin} (release, spawned) at {base}, default rate limits");
        let target = Target {
            base,
            admin_token,
            description,
        };
        Ok((spawned, target))
    }

    /// Warnings and errors the server logged during the run.
    fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.data_dir.join("server.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn wait_ready(base: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ureq::get(&format!("{base}/readyz")).call().is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{base} did not become ready within 30 s"))
}

fn read_token(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_string())
        .map_err(|e| format!("while reading the admin token {}: {e}", path.display()))
}

fn main() {
    let cli = Cli::parse();
    let result = cli.settings().and_then(|settings| {
        let spawned = match (&cli.url, &cli.admin_token_file) {
            (Some(url), Some(token_file)) => {
                if !loopback(url) {
                    return Err(format!("{url} is not an http:// loopback address"));
                }
                let target = Target {
                    base: url.trim_end_matches('/').to_string(),
                    admin_token: read_token(token_file)?,
                    description: format!("{url} (given)"),
                };
                wait_ready(&target.base)?;
                (None, target)
            }
            _ => {
                let (spawned, target) = Spawned::start()?;
                (Some(spawned), target)
            }
        };
        let (server, target) = spawned;
        let outcome = driver::run(&target, &settings)?;
        print!("{}", outcome.report);
        if let Some(server) = &server {
            let lines = server.log_lines();
            println!("server log: {} warning or error lines", lines.len());
            for line in lines.iter().take(10) {
                println!("  {line}");
            }
        }
        Ok(outcome.healthy())
    });
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    }
}
