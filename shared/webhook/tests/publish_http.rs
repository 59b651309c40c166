//! The publisher against a real HTTP server on this machine: the request
//! that reaches a storefront is a signed `voucher.issued` event that the
//! Standard Webhooks algorithm, computed here independently, accepts; the
//! receiver's answers become acknowledgements, retries or refusals.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::thread;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cartback_core::ids::CustomerKey;
use cartback_core::ports::{PublishError, VoucherPublisher};
use cartback_core::voucher::{Discount, TierName, Voucher, VoucherCode, VoucherOwner, VoucherStatus, VoucherTerms};
use cartback_core::webhook::WebhookSecret;
use cartback_webhook::HttpVoucherPublisher;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request as the server read it.
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

/// Serves one request with `status` and hands back what it received.
fn serve_once(status: &'static str) -> (String, thread::JoinHandle<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/hooks/cartback", listener.local_addr().unwrap().port());
    let handle = thread::spawn(move || {
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
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        Received { request_line: request_line.trim_end().to_owned(), headers, body }
    });
    (url, handle)
}

fn voucher() -> Voucher {
    let at: DateTime<Utc> = "2026-11-23T10:30:00Z".parse().unwrap();
    Voucher {
        code: VoucherCode::parse("CB-7KQ4-M9XD-2PWE").unwrap(),
        cart_id: "cart-1".into(),
        owner: VoucherOwner::customer(&"cus-9".into()),
        customer_key: CustomerKey::Customer("cus-9".into()),
        campaign_id: "default".into(),
        step: 0,
        variant: None,
        terms: VoucherTerms {
            tier: TierName::Recovery,
            discount: Discount::PercentOff { percent: 10.into(), max_amount: None },
            currency: "USD".into(),
            min_cart_value: None,
        },
        issued_at: at,
        expires_at: at + Duration::days(7),
        status: VoucherStatus::Issued,
        published_at: None,
    }
}

/// The specification's verification, written out: HMAC-SHA256 keyed with
/// the secret's base64-decoded bytes over `{id}.{timestamp}.{body}`,
/// compared with each `v1,` signature.
fn verifies(secret: &str, id: &str, timestamp: &str, body: &[u8], signatures: &str) -> bool {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    signatures.split(' ').any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

#[tokio::test]
async fn given_a_storefront_that_acknowledges_when_a_voucher_is_published_then_it_receives_a_verifiable_signed_event() {
    let (url, server) = serve_once("204 No Content");
    let publisher = HttpVoucherPublisher::new(&url, WebhookSecret::parse(SECRET).unwrap());
    publisher.publish(&voucher()).await.expect("acknowledged");

    let received = server.join().unwrap();
    assert_eq!(received.request_line, "POST /hooks/cartback HTTP/1.1");
    assert_eq!(received.header("content-type"), "application/json");
    // Stamped with the wall clock, as receivers check it (within minutes).
    let stamped: i64 = received.header("webhook-timestamp").parse().unwrap();
    assert!((Utc::now().timestamp() - stamped).abs() <= 60, "{stamped}");
    let id = received.header("webhook-id");
    assert!(id.starts_with("msg_"), "{id}");
    assert!(verifies(
        SECRET,
        id,
        received.header("webhook-timestamp"),
        &received.body,
        received.header("webhook-signature")
    ));
    let other = "whsec_dGhpcyBpcyBhbm90aGVyIHNlY3JldCBrZXk=";
    assert!(!verifies(
        other,
        id,
        received.header("webhook-timestamp"),
        &received.body,
        received.header("webhook-signature")
    ));
    let event: serde_json::Value = serde_json::from_slice(&received.body).unwrap();
    assert_eq!(event["type"], "voucher.issued");
    assert_eq!(event["data"]["code"], "CB-7KQ4-M9XD-2PWE");
    assert_eq!(event["data"]["customer_id"], "cus-9");
    assert_eq!(event["data"]["expires_at"], "2026-11-30T10:30:00Z");
}

#[tokio::test]
async fn given_a_storefront_that_is_down_or_refuses_when_published_then_the_answer_says_retry_or_refused() {
    let secret = WebhookSecret::parse(SECRET).unwrap();
    let (url, server) = serve_once("503 Service Unavailable");
    let error = HttpVoucherPublisher::new(&url, secret.clone()).publish(&voucher()).await.unwrap_err();
    server.join().unwrap();
    assert_eq!(error, PublishError::Retryable("HTTP 503".into()));

    let (url, server) = serve_once("401 Unauthorized");
    let error = HttpVoucherPublisher::new(&url, secret.clone()).publish(&voucher()).await.unwrap_err();
    server.join().unwrap();
    assert_eq!(error, PublishError::Refused("HTTP 401".into()));

    // Nobody listening: a transport failure, retried, naming no URL.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/hooks?token=abc", closed.local_addr().unwrap().port());
    drop(closed);
    let error = HttpVoucherPublisher::new(&url, secret).publish(&voucher()).await.unwrap_err();
    assert!(matches!(&error, PublishError::Retryable(_)), "{error}");
    assert!(!error.to_string().contains("token"), "{error}");
}
