//! A storefront's webhook endpoint for tests: a real HTTP/1.1 listener on
//! loopback that keeps every request it receives.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// The Standard Webhooks specification's example secret, for test targets.
pub const TARGET_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A campaign whose one step, after 30 minutes, goes to webhook target `crm`.
pub const CRM_CAMPAIGN: &str = r#"
id = "crm"
name = "Abandoned carts to the CRM"
holdout_percent = 0

[[steps]]
delay = "30m"
webhook = "crm"
[steps.channels]
mobile = ["webhook"]
desktop = ["webhook"]
"#;

/// One request the endpoint received: its headers (names in lower case) and body.
pub type Request = (Vec<(String, String)>, Vec<u8>);

/// An endpoint at `http://127.0.0.1:PORT/hooks/cartback` that answers 503 to
/// its first `failures` requests, then 204; it keeps every request, in the
/// order they came.
pub fn webhook_endpoint(failures: usize) -> (String, Arc<Mutex<Vec<Request>>>) {
    scripted_endpoint(vec!["503 Service Unavailable"; failures])
}

/// An endpoint answering its requests in turn with `answers` (a status line
/// and any headers, `"429 Too Many Requests\r\nRetry-After: 2"`), then 204.
pub fn scripted_endpoint(answers: Vec<&'static str>) -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/hooks/cartback", listener.local_addr().unwrap().port());
    let received = Arc::new(Mutex::new(Vec::new()));
    let keep = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (_, headers, body) = read_request(&stream);
            let seen = {
                let mut kept = keep.lock().unwrap();
                kept.push((headers, body));
                kept.len()
            };
            let status = answers.get(seen - 1).copied().unwrap_or("204 No Content");
            let mut stream = stream;
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, received)
}

/// Reads one HTTP/1.1 request: its request line (`GET /path HTTP/1.1`),
/// its headers (names in lower case) and its body.
pub fn read_request(stream: &TcpStream) -> (String, Vec<(String, String)>, Vec<u8>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let (mut line, mut headers) = (String::new(), Vec::new());
    reader.read_line(&mut line).unwrap();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        let Some((name, value)) = header.trim_end().split_once(':') else { break };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (line.trim_end().to_owned(), headers, body)
}

/// What the `standardwebhooks` package (PyPI, the specification's own
/// Python library) makes of a received request: the verified JSON payload,
/// or its error. Installed into `.venv-webhooks` on first use.
pub fn verify_with_standardwebhooks(secret: &str, request: &Request) -> Result<serde_json::Value, String> {
    let python = crate::moto::venv_bin(".venv-webhooks", "python", "standardwebhooks==1.1.0")?;
    let (headers, body) = request;
    let headers: serde_json::Map<String, serde_json::Value> =
        headers.iter().map(|(n, v)| (n.clone(), serde_json::Value::String(v.clone()))).collect();
    let input = serde_json::json!({"secret": secret, "headers": headers, "body": String::from_utf8_lossy(body)});
    let script = "import json, sys\nfrom standardwebhooks.webhooks import Webhook\nr = json.load(sys.stdin)\n\
                  print(json.dumps(Webhook(r['secret']).verify(r['body'], r['headers'])))";
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())
}

/// A header of a received request (`name` in lower case); empty when absent.
pub fn header(request: &Request, name: &str) -> String {
    request.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default()
}

/// Checks attempts at one event: every request verified by
/// `standardwebhooks` with `secret`, all under one `webhook-id`; the last
/// one's payload.
pub fn verified_attempts(secret: &str, requests: &[Request]) -> serde_json::Value {
    let id = header(&requests[0], "webhook-id");
    for request in requests {
        assert_eq!(header(request, "webhook-id"), id, "one id on every attempt");
        let payload = verify_with_standardwebhooks(secret, request).expect("standardwebhooks verifies it");
        assert_eq!(payload, serde_json::from_slice::<serde_json::Value>(&request.1).unwrap());
    }
    serde_json::from_slice(&requests[requests.len() - 1].1).unwrap()
}
