//! What the browser tests share: a child process killed when the test ends,
//! and headless Chromium driven through chromedriver (W3C WebDriver over
//! plain JSON). Each test crate uses a part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// The W3C WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A child process killed when the test ends, however it ends.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let start = Instant::now();
        while self.0.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A chromedriver and one headless Chromium session.
pub struct Browser {
    _driver: Process,
    session: String,
}

impl Browser {
    /// Starts chromedriver and a session with a `width,height` window, or
    /// says why it cannot (the programs are missing).
    pub fn start(window: &str) -> Result<Browser, String> {
        let driver = which("chromedriver").ok_or("chromedriver is not installed")?;
        let chromium = which("chromium").ok_or("chromium is not installed")?;
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("chromedriver does not start: {e}"))?;
        let driver = Process(child);
        let base = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while ureq::get(&format!("{base}/status")).call().is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "chromedriver never answered on {base}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     &format!("--window-size={window}"), "--hide-scrollbars", "--lang=en-US"]
        }}}});
        let answer: Value =
            ureq::post(&format!("{base}/session")).send_json(capabilities).unwrap().into_json().unwrap();
        let session = format!("{base}/session/{}", answer["value"]["sessionId"].as_str().expect("a session id"));
        Ok(Browser { _driver: driver, session })
    }

    pub fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        let answer = if method == "GET" { ureq::get(&url).call() } else { ureq::request(method, &url).send_json(body) };
        match answer {
            Ok(r) => r.into_json::<Value>().unwrap()["value"].take(),
            Err(ureq::Error::Status(code, r)) => {
                panic!("WebDriver {method} {path}: {code} {}", r.into_string().unwrap())
            }
            Err(e) => panic!("WebDriver {method} {path}: {e}"),
        }
    }

    pub fn open(&self, url: &str) {
        self.command("POST", "/url", json!({ "url": url }));
    }

    pub fn element(&self, css: &str) -> String {
        let found = self.command("POST", "/element", json!({"using": "css selector", "value": css}));
        let source = || self.command("GET", "/source", Value::Null);
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {found}\n{}", source())).to_owned()
    }

    pub fn click(&self, css: &str) {
        let element = self.element(css);
        self.command("POST", &format!("/element/{element}/click"), json!({}));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css);
        self.command("POST", &format!("/element/{element}/clear"), json!({}));
        self.command("POST", &format!("/element/{element}/value"), json!({ "text": text }));
    }

    pub fn script(&self, script: &str, args: Value) -> Value {
        self.command("POST", "/execute/sync", json!({ "script": script, "args": args }))
    }

    pub fn screenshot(&self, path: &Path) {
        let png = self.command("GET", "/screenshot", Value::Null);
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    pub fn text(&self, css: &str) -> String {
        let element = self.element(css);
        self.command("GET", &format!("/element/{element}/text"), Value::Null).as_str().unwrap_or_default().to_owned()
    }

    pub fn source(&self) -> String {
        self.command("GET", "/source", Value::Null).as_str().unwrap_or_default().to_owned()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&self.session).call();
    }
}

pub fn which(program: &str) -> Option<String> {
    let output = Command::new("sh").args(["-c", &format!("command -v {program}")]).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
