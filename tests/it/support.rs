//! Test harness: start the real binary on 127.0.0.1 port 0, learn its address from the first
//! banner line, wait for `/readyz`, and stop it with SIGTERM or SIGKILL. HTTP helpers return
//! the status and the JSON body whatever the status.

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{mpsc, OnceLock},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_driftlock");

pub struct Server {
    pub child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// The `driftlock serve` command on a fresh loopback port, with `extra` arguments and env,
/// on the test's pinned wall clock ([`crate::test_clock`]) unless `env` brings its own
/// `LD_PRELOAD` (the clock-jump tests move the clock themselves).
pub fn serve_command(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    if !env.iter().any(|(k, _)| *k == "LD_PRELOAD") {
        cmd.envs(crate::test_clock::env());
    }
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env_remove("DRIFTLOCK_ADMIN_TOKEN")
        .env("DRIFTLOCK_LOG_LEVEL", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Starts `driftlock serve` with `extra` arguments and environment, on a fresh port.
pub fn start_with(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
    launch(serve_command(data_dir, extra, env), data_dir)
}

/// Runs `cmd`, reads the bound address from its first stdout line and waits for `/readyz`.
pub fn launch(cmd: Command, data_dir: &Path) -> Server {
    let server = launch_unready(cmd, data_dir);
    server.wait_ready();
    server
}

/// Runs `cmd` and reads the bound address from its first stdout line, without waiting for
/// `/readyz` (for servers expected to start unready).
pub fn launch_unready(mut cmd: Command, data_dir: &Path) -> Server {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start driftlock");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr_thread = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = stderr.read_to_string(&mut all);
        all
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        for _ in lines {}
    });
    let first = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "driftlock did not start; stderr:\n{}",
                stderr_thread.join().unwrap_or_default()
            );
        }
    };
    let base = first
        .strip_prefix("driftlock listening on ")
        .unwrap_or_else(|| panic!("unexpected banner {first:?}"))
        .to_string();
    Server {
        child: Some(child),
        base,
        data_dir: data_dir.to_path_buf(),
        stderr: Some(stderr_thread),
    }
}

pub fn start(data_dir: &Path) -> Server {
    start_with(data_dir, &[], &[])
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(resp) = ureq::get(&self.url("/readyz")).call() {
                if resp.status() == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} never became ready", self.base);
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_string()
    }

    /// Sends `signal` (e.g. "TERM", "KILL") and waits for the exit; returns the stderr log.
    pub fn stop_with(&mut self, signal: &str) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("server running");
        if child.try_wait().unwrap().is_none() {
            let ok = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status()
                .expect("run kill")
                .success();
            assert!(ok, "kill -{signal} failed");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("driftlock did not exit after SIG{signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = self
            .stderr
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        (status, log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Status and JSON body (Null when the body is not JSON) of any request.
pub fn send(req: ureq::Request, body: Option<&Value>) -> (u16, Value) {
    let result = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    let resp = match result {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub fn get(server: &Server, path: &str, token: Option<&str>) -> (u16, Value) {
    send(with_auth(ureq::get(&server.url(path)), token), None)
}

pub fn post(server: &Server, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    send(with_auth(ureq::post(&server.url(path)), token), Some(body))
}

pub fn delete(server: &Server, path: &str, token: Option<&str>) -> (u16, Value) {
    send(with_auth(ureq::delete(&server.url(path)), token), None)
}

fn with_auth(req: ureq::Request, token: Option<&str>) -> ureq::Request {
    match token {
        Some(t) => req.set("Authorization", &format!("Bearer {t}")),
        None => req,
    }
}

/// Creates an org through the admin API and returns (org id, org key secret, key id).
pub fn org_with_key(server: &Server, admin: &str, name: &str) -> (String, String, String) {
    let (status, org) = post(
        server,
        "/v1/admin/orgs",
        Some(admin),
        &json!({"name": name}),
    );
    assert_eq!(status, 201, "{org}");
    let org_id = org["id"].as_str().unwrap().to_string();
    let (status, key) = post(
        server,
        &format!("/v1/admin/orgs/{org_id}/keys"),
        Some(admin),
        &json!({"name": "test"}),
    );
    assert_eq!(status, 201, "{key}");
    (
        org_id,
        key["secret"].as_str().unwrap().to_string(),
        key["key"]["id"].as_str().unwrap().to_string(),
    )
}

/// Creates a service-scoped key (for `/v1/meter-usage`) and returns its secret.
pub fn service_key(server: &Server, admin: &str) -> String {
    let (status, key) = post(
        server,
        "/v1/admin/keys",
        Some(admin),
        &json!({"name": "meter", "scope": "service"}),
    );
    assert_eq!(status, 201, "{key}");
    key["secret"].as_str().unwrap().to_string()
}

/// Asserts the DESIGN.md error body: exactly `code`, `message` and `request_id`, and
/// `details` (an object) where an error has figures to give.
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        body["request_id"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let fields = body.as_object().unwrap();
    let details = fields
        .get("details")
        .map(|d| assert!(d.is_object(), "{body}"));
    assert_eq!(fields.len(), 3 + usize::from(details.is_some()), "{body}");
}

/// A Python virtual environment `target/NAME` with `packages`, made when `ready` (a marker
/// naming what it holds) is not there yet; answers its interpreter.
pub fn venv(name: &str, ready: &str, packages: &[&str]) -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name);
    let py = venv.join("bin/python");
    let ready = venv.join(ready);
    if !ready.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success();
        assert!(ok, "python3 -m venv failed");
        let ok = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(packages)
            .status()
            .unwrap()
            .success();
        assert!(ok, "pip install of {packages:?} failed");
        std::fs::write(&ready, "").unwrap();
    }
    py
}

/// A Python virtual environment under target/ with the spec tools and the SMTP sink, made
/// once per run.
pub fn python() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        venv(
            "it-venv",
            ".installed-v5",
            &[
                "openapi-spec-validator==0.7.*",
                "openapi-python-client==0.*",
                "aiosmtpd==1.*",
                "stripe==16.*",
                "schemathesis==4.*",
            ],
        )
    })
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `secs` seconds.
pub fn wait_for<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One request a `Receiver` got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 webhook receiver on loopback: answers 500 to the first `fail_first`
/// requests and 200 afterwards, recording every request. Stops when dropped.
pub struct Receiver {
    pub port: u16,
    pub got: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    pub fn start(port: u16, fail_first: usize) -> Receiver {
        Receiver::start_with(port, fail_first, 200)
    }

    /// A receiver that always answers `status` (e.g. a redirect).
    pub fn start_answering(port: u16, status: u16) -> Receiver {
        Receiver::start_with(port, usize::MAX, status)
    }

    fn start_with(port: u16, fail_first: usize, then: u16) -> Receiver {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind receiver");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (got2, stop2) = (got.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, content_length) = loop {
                    let n = conn.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break (None, 0);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..pos]).to_string();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        break (Some(pos + 4), len);
                    }
                };
                let Some(start) = head_end else { continue };
                while buf.len() < start + content_length {
                    let n = conn.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..start]).to_string();
                let headers = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| {
                        l.split_once(':')
                            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    })
                    .collect();
                let mut got = got2.lock().unwrap();
                let status = match (got.len() < fail_first, then) {
                    (true, 200) => 500,
                    (true, other) => other,
                    (false, _) => 200,
                };
                got.push(Received {
                    headers,
                    body: buf[start..start + content_length].to_vec(),
                    answered: status,
                });
                drop(got);
                let _ = conn.write_all(
                    format!(
                        "HTTP/1.1 {status} X\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                );
            }
        });
        Receiver { port, got, stop }
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Sends monitor `id` 400 one-minute points, steady but for `spike` at point 350; answers the
/// verdicts.
pub fn points_with_a_spike(server: &Server, key: &str, id: &str, spike: f64) -> Value {
    let points: Vec<Value> = (0..400)
        .map(|i| {
            let v = if i == 350 {
                spike
            } else {
                10.0 + (i % 5) as f64
            };
            json!({"timestamp": 1_700_000_000 + 60 * i, "value": v})
        })
        .collect();
    let (st, b) = crate::support::post(
        server,
        &format!("/v1/monitors/{id}/points"),
        Some(key),
        &json!({"points": points}),
    );
    assert_eq!(st, 200, "{b}");
    b
}
