//! `cartback dev` as the end-to-end tests drive it: the real binary on a
//! fresh (or given) data folder with a fast virtual clock and, when asked,
//! campaigns applied first with `cartback campaign apply`; signed requests
//! whose answers are checked against the served OpenAPI document; the
//! outbox read back. The server's log is kept for the test to inspect and
//! its last lines are printed when a test fails. Each test crate uses a
//! part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cartback_core::signing::{sign_request, Secret, SignedRequest};
use cartback_tests::openapi::{assert_response, Observed};
use serde_json::Value;

/// The ingest secret every test server runs with.
pub const SECRET: &str = "e2e-test-secret-0123456789abcdef";
/// How long a wait polls before the test fails: generous, so a slow CI
/// machine never fails a test that would pass.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// How to start the server. `Launch { speed: "5000", ..Launch::default() }`.
pub struct Launch<'a> {
    /// Virtual seconds per real second.
    pub speed: &'a str,
    /// The data folder; a fresh temporary one when `None`.
    pub data: Option<&'a Path>,
    /// Campaign TOML texts applied (in order) before the server starts.
    pub campaigns: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
    /// More `cartback dev` flags.
    pub args: &'a [&'a str],
    pub rust_log: &'a str,
}

impl Default for Launch<'_> {
    fn default() -> Self {
        Launch { speed: "600", data: None, campaigns: &[], env: &[], args: &[], rust_log: "info" }
    }
}

pub struct Dev {
    child: Child,
    pub base: String,
    pub data: PathBuf,
    /// The server's stderr.
    pub log: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Dev {
    pub fn start(launch: Launch) -> Dev {
        let (dir, data) = match launch.data {
            Some(data) => (None, data.to_owned()),
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let data = dir.path().to_owned();
                (Some(dir), data)
            }
        };
        std::fs::create_dir_all(&data).expect("data folder");
        for (n, campaign) in launch.campaigns.iter().enumerate() {
            let file = data.join(format!("campaign-{n}.toml"));
            std::fs::write(&file, campaign).expect("campaign file");
            // With the server's environment: it names the webhook targets a campaign may use.
            apply_campaign_with(&file, &data, launch.env);
        }
        let log = data.join("test-server.log");
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_cartback"))
            .args(["dev", "--listen", "127.0.0.1:0", "--clock-speed", launch.speed, "--data"])
            .arg(&data)
            .args(launch.args)
            .env("CARTBACK_INGEST_SECRET", SECRET)
            .envs(launch.env.iter().copied())
            .env("RUST_LOG", launch.rust_log)
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("cartback dev starts");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        reader.read_line(&mut first).expect("banner");
        // Keep draining so the server never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let base = first.trim().rsplit(' ').next().expect("address in banner").to_owned();
        assert!(base.starts_with("http://127.0.0.1:"), "unexpected banner {first:?}");
        Dev { child, base, data, log, _dir: dir }
    }

    /// A v2 signature at real time (the replay window follows the real
    /// clock, whatever the virtual clock's speed).
    pub fn signature(&self, method: &str, path_and_query: &str, body: &[u8]) -> String {
        let request = SignedRequest { method, path_and_query, body };
        sign_request(
            &Secret::new(SECRET.as_bytes().to_vec()).expect("secret"),
            chrono::Utc::now().timestamp(),
            &request,
        )
    }

    /// A signed request; its status and JSON answer (`Null` when not JSON),
    /// once the answer is checked against the served OpenAPI document.
    pub fn call(&self, method: &str, path_and_query: &str, body: &[u8]) -> (u16, Value) {
        let request = ureq::request(method, &format!("{}{path_and_query}", self.base))
            .set("content-type", "application/json")
            .set("x-cartback-signature", &self.signature(method, path_and_query, body));
        let path = path_and_query.split('?').next().unwrap_or(path_and_query);
        checked(method, path, request.send_bytes(body))
    }

    /// POSTs `/v1/events` (one event or a `{"events": [...]}` batch) and
    /// answers its status and JSON.
    pub fn post_events(&self, body: &Value) -> (u16, Value) {
        self.call("POST", "/v1/events", &serde_json::to_vec(body).expect("JSON"))
    }

    /// The cart read API's status and JSON.
    pub fn cart(&self, cart_id: &str) -> (u16, Value) {
        self.call("GET", &format!("/v1/carts/{cart_id}"), b"")
    }

    /// Polls the cart until `done` holds for it (status 200), and answers it.
    pub fn wait_for(&self, cart_id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let (status, cart) = self.cart(cart_id);
            if status == 200 && done(&cart) {
                return cart;
            }
            assert!(start.elapsed() < DEADLINE, "cart {cart_id} never reached {what}: {cart:#}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server's virtual time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let (status, health) = checked("GET", "/healthz", ureq::get(&format!("{}/healthz", self.base)).call());
        assert_eq!(status, 200, "{health}");
        health["now"].as_str().expect("now").parse().expect("an RFC 3339 time")
    }

    /// The outbox's emails (`.eml`), sorted by file name, each with its
    /// text made readable (quoted-printable soft breaks and `=3D` undone).
    pub fn emails(&self) -> Vec<(PathBuf, String)> {
        let dir = self.data.join("outbox").join("email");
        let mut mails: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                    .filter_map(|p| Some((p.clone(), readable(&std::fs::read_to_string(&p).ok()?))))
                    .collect()
            })
            .unwrap_or_default();
        mails.sort();
        mails
    }

    /// What the server has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server: SIGTERM lets it stop cleanly; kill is the fallback.
    pub fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let start = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("last lines of the server's log:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
    }
}

/// `cartback ARGS --data DATA` (logging at `warn`): its output.
pub fn cartback(data: &Path, args: &[&str]) -> Output {
    cartback_with(data, args, &[])
}

/// [`cartback`] with more environment variables.
pub fn cartback_with(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cartback"))
        .args(args)
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("cartback runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `cartback campaign apply FILE --data DATA`, which must succeed.
pub fn apply_campaign(file: &Path, data: &Path) {
    apply_campaign_with(file, data, &[]);
}

/// [`apply_campaign`] with more environment variables.
pub fn apply_campaign_with(file: &Path, data: &Path, env: &[(&str, &str)]) {
    let applied = cartback_with(data, &["campaign", "apply", &file.to_string_lossy()], env);
    assert!(applied.status.success(), "{}", stderr(&applied));
}

/// Status and JSON body of an answer to `method path`, once the answer is
/// checked against the served OpenAPI document.
pub fn checked(method: &str, path: &str, result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: transport error: {e}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|name| Some((name.clone(), response.header(&name)?.to_owned())))
        .collect();
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).expect("the body reads");
    assert_response(method, path, &Observed { status, headers, body: body.clone() });
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// An email's text with quoted-printable soft breaks and `=3D` undone.
pub fn readable(email: &str) -> String {
    email.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=")
}

/// The timeline entries of a cart read.
pub fn timeline(cart: &Value) -> Vec<Value> {
    cart["timeline"].as_array().cloned().unwrap_or_default()
}

/// How many timeline entries of `kind` (`decision`, `message`, ...) carry `code`.
pub fn count(cart: &Value, kind: &str, code: &str) -> usize {
    timeline(cart).iter().filter(|e| e["kind"] == kind && e["code"] == code).count()
}
