//! The sender against a push service on this machine, checked by an
//! independent implementation: a subscriber key pair made in Python, the
//! request Cartback posts decrypted there with http_ece, and its VAPID JWT
//! verified there with `cryptography` (signature, `aud`, `exp`, `sub`).
//! Needs `scripts/python-tools.sh webpush` (`.venv-webpush`), or
//! `CARTBACK_WEBPUSH_PYTHON` naming a python that has http_ece.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::thread;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cartback_core::contact::WebPushSubscription;
use cartback_core::message::{Channel, MessageJob, Outgoing};
use cartback_core::ports::SendError;
use cartback_webpush::{VapidKey, WebPushSender};

const CONTACT: &str = "mailto:ops@shop.example";

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("CARTBACK_WEBPUSH_PYTHON") {
        return python.into();
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = repo.join(".venv-webpush/bin/python");
    assert!(python.exists(), "run scripts/python-tools.sh webpush (or set CARTBACK_WEBPUSH_PYTHON)");
    python
}

/// Runs the Python checker; its JSON answer, or the test fails with its reason.
fn checker(args: &[&str]) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/check_webpush.py");
    let out = Command::new(python()).arg(script).args(args).output().unwrap();
    assert!(out.status.success(), "the independent check failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One request as the push service read it.
struct Received {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

/// A push service answering each request in turn with the next of
/// `answers` (status line and extra headers); hands back what it received.
fn push_service(answers: Vec<&'static str>) -> (String, thread::JoinHandle<Vec<Received>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://127.0.0.1:{}/wpush/v2/gAAAAABsecret", listener.local_addr().unwrap().port());
    let handle = thread::spawn(move || {
        let mut received = Vec::new();
        for answer in answers {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap();
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
            let length: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            write!(stream, "HTTP/1.1 {answer}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
            received.push(Received { request_line: request_line.trim_end().to_owned(), headers, body });
        }
        received
    });
    (endpoint, handle)
}

/// A browser's subscription (keys made in Python) and its private key.
fn subscription(endpoint: &str) -> (WebPushSubscription, serde_json::Value) {
    let keys = checker(&["subscribe"]);
    let json = serde_json::json!({ "endpoint": endpoint, "keys": { "p256dh": keys["p256dh"], "auth": keys["auth"] } });
    (WebPushSubscription::from(json), keys)
}

fn job(subscription: WebPushSubscription) -> MessageJob {
    MessageJob {
        message_id: "m_webpush1".into(),
        cart_id: "cart-42".into(),
        channel: Channel::WebPush,
        outgoing: Outgoing::WebPush {
            subscription,
            title: "Your cart is waiting".into(),
            body: "Blue Mug x2 is still in your cart.".into(),
            url: "https://shop.example/restore/abc".into(),
        },
        voucher: None,
    }
}

#[tokio::test]
async fn given_a_python_made_subscription_when_sent_then_python_decrypts_it_and_verifies_the_vapid_jwt() {
    // GIVEN a push service on this machine and a subscriber whose keys Python made
    let (endpoint, service) = push_service(vec!["201 Created\r\nLocation: /m/123"]);
    let (subscription, keys) = subscription(&endpoint);
    let key = VapidKey::generate();
    let sender = WebPushSender::new(key.clone(), Some(CONTACT), true);

    // WHEN Cartback sends the reminder
    let sent = sender.deliver(&job(subscription)).await.unwrap();

    // THEN the push service got a POST with the RFC 8030 headers
    let received = service.join().unwrap();
    let request = &received[0];
    assert!(request.request_line.starts_with("POST /wpush/v2/gAAAAABsecret "), "{}", request.request_line);
    assert_eq!(request.header("TTL"), "86400");
    assert_eq!(request.header("Urgency"), "normal");
    assert_eq!(request.header("Topic"), cartback_webpush::topic("cart-42"));
    assert_eq!(request.header("Topic").len(), 32);
    assert_eq!(sent.location.as_deref(), Some("/m/123"));
    assert_eq!(sent.request.body, request.body, "the outbox keeps the request as sent");
    // AND Python decrypts the body with the subscriber's private key and
    // accepts the JWT: signature by the shop's public key, aud = origin, exp within 24 h, sub
    let origin = endpoint.split("/wpush").next().unwrap();
    let headers: serde_json::Map<String, serde_json::Value> =
        request.headers.iter().map(|(n, v)| (n.clone(), v.clone().into())).collect();
    let check = serde_json::json!({
        "private_key": keys["private_key"], "auth": keys["auth"], "origin": origin, "contact": CONTACT,
        "headers": headers, "body_base64": STANDARD.encode(&request.body),
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), check.to_string()).unwrap();
    let verdict = checker(&["check", file.path().to_str().unwrap()]);
    let plaintext: serde_json::Value = serde_json::from_str(verdict["plaintext"].as_str().unwrap()).unwrap();
    assert_eq!(plaintext["title"], "Your cart is waiting");
    assert_eq!(plaintext["body"], "Blue Mug x2 is still in your cart.");
    assert_eq!(plaintext["url"], "https://shop.example/restore/abc");
    assert_eq!(plaintext["message_id"], "m_webpush1");
    assert_eq!(verdict["public_key"], key.public_key());
}

#[tokio::test]
async fn given_a_tampered_request_when_python_checks_it_then_it_is_refused() {
    // GIVEN a request Cartback sent, whose JWT is then signed by another key
    let (endpoint, service) = push_service(vec!["201 Created"]);
    let (subscription, keys) = subscription(&endpoint);
    let sender = WebPushSender::new(VapidKey::generate(), Some(CONTACT), true);
    sender.deliver(&job(subscription)).await.unwrap();
    let request = &service.join().unwrap()[0];
    let forged_key = VapidKey::generate().public_key();
    let authorization = request.header("Authorization");
    let forged = format!("{}k={forged_key}", &authorization[..authorization.find("k=").unwrap()]);
    let check = serde_json::json!({
        "private_key": keys["private_key"], "auth": keys["auth"], "origin": endpoint.split("/wpush").next().unwrap(),
        "contact": CONTACT, "headers": { "Authorization": forged, "Content-Encoding": "aes128gcm" },
        "body_base64": STANDARD.encode(&request.body),
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), check.to_string()).unwrap();

    // WHEN the independent check runs
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/check_webpush.py");
    let out = Command::new(python()).arg(script).args(["check", file.path().to_str().unwrap()]).output().unwrap();

    // THEN it refuses (the checker can fail)
    assert!(!out.status.success());
}

#[tokio::test]
async fn given_a_throttling_push_service_when_sent_then_retry_after_is_waited_for_and_the_retry_is_accepted() {
    // GIVEN a push service that first answers 429 with Retry-After: 1
    let (endpoint, service) = push_service(vec!["429 Too Many Requests\r\nRetry-After: 1", "201 Created"]);
    let (subscription, _) = subscription(&endpoint);
    let sender = WebPushSender::new(VapidKey::generate(), Some(CONTACT), true);

    // WHEN sent
    let sent = sender.deliver(&job(subscription)).await;

    // THEN the second attempt went through
    assert!(sent.is_ok(), "{sent:?}");
    assert_eq!(service.join().unwrap().len(), 2);
}

#[tokio::test]
async fn given_push_service_answers_when_sent_then_gone_retry_and_refusal_are_told_apart() {
    type Expected = fn(&SendError) -> bool;
    let cases: [(&'static str, Expected); 4] = [
        ("410 Gone", |e| matches!(e, SendError::Gone(_))),
        ("404 Not Found", |e| matches!(e, SendError::Gone(_))),
        ("403 Forbidden", |e| matches!(e, SendError::Permanent(t) if t.contains("VAPID"))),
        ("413 Payload Too Large", |e| matches!(e, SendError::Permanent(_))),
    ];
    for (answer, expected) in cases {
        // GIVEN a push service answering `answer`
        let (endpoint, service) = push_service(vec![answer]);
        let (subscription, _) = subscription(&endpoint);
        let sender = WebPushSender::new(VapidKey::generate(), Some(CONTACT), true);
        // WHEN sent
        let error = sender.deliver(&job(subscription)).await.unwrap_err();
        // THEN the error says what comes next, and nothing was retried
        assert!(expected(&error), "{answer}: {error:?}");
        assert_eq!(service.join().unwrap().len(), 1, "{answer}");
    }
    // GIVEN a push service that keeps failing with 503 and a long Retry-After
    let (endpoint, service) = push_service(vec!["503 Service Unavailable\r\nRetry-After: 120"]);
    let (subscription, _) = subscription(&endpoint);
    let sender = WebPushSender::new(VapidKey::generate(), Some(CONTACT), true);
    // WHEN sent THEN it goes back to the queue, naming the wait
    let error = sender.deliver(&job(subscription)).await.unwrap_err();
    assert!(matches!(&error, SendError::Retryable(t) if t.contains("Retry-After 120 s")), "{error:?}");
    assert_eq!(service.join().unwrap().len(), 1);
}

#[tokio::test]
async fn given_an_http_endpoint_when_loopback_http_is_not_allowed_then_it_is_refused_without_a_request() {
    // GIVEN plain http, not allowed (production)
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://127.0.0.1:{}/push", listener.local_addr().unwrap().port());
    let (subscription, _) = subscription(&endpoint);
    let sender = WebPushSender::new(VapidKey::generate(), Some(CONTACT), false);
    // WHEN sent THEN refused for good, naming the endpoint
    let error = sender.deliver(&job(subscription)).await.unwrap_err();
    assert!(matches!(&error, SendError::Permanent(t) if t.contains("endpoint")), "{error:?}");
}
