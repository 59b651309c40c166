//! The signature rules as the HTTP application applies them (both runtimes
//! serve this router): v2 everywhere, legacy v1 on `POST /v1/events` only
//! and only while switched on, hostile headers refused with a JSON 401.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use cartback_core::ports::Clock;
use cartback_core::signing::{sign_request, sign_request_v1, Secret, SignedRequest};
use cartback_local::testing::ManualClock;
use cartback_tests::local_app::local_app;
use cartback_tests::openapi::Observed;
use serde_json::{json, Value};

const SECRET: &[u8] = b"signature-secret-0123456789";

fn secret() -> Secret {
    Secret::new(SECRET.to_vec()).unwrap()
}

fn app(accept_v1_signatures: bool) -> (Router, Arc<ManualClock>) {
    local_app(SECRET, accept_v1_signatures)
}

async fn call(app: &Router, method: &str, path: &str, signature: Option<String>, body: Vec<u8>) -> (u16, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(signature) = signature {
        request = request.header("x-cartback-signature", signature);
    }
    let observed = Observed::from_app(app, request.body(Body::from(body)).unwrap()).await;
    (observed.status, serde_json::from_slice(&observed.body).unwrap_or(Value::Null))
}

fn event_body() -> Vec<u8> {
    serde_json::to_vec(
        &json!({ "event_id": "e1", "type": "identify", "customer_id": "c1", "occurred_at": "2026-11-23T09:59:00Z" }),
    )
    .unwrap()
}

/// GIVEN v1 switched off (CARTBACK_ACCEPT_V1_SIGNATURES=false) WHEN a storefront posts with v1 THEN 401
/// naming v2; with v2 it is accepted. With the compatibility default, v1 still passes on POST /v1/events.
#[tokio::test]
async fn given_the_v1_switch_when_events_are_posted_then_v1_passes_only_while_it_is_on() {
    let body = event_body();
    for (accept, expected) in [(true, 200), (false, 401)] {
        let (app, clock) = app(accept);
        let v1 = sign_request_v1(&secret(), clock.now().timestamp(), &body);
        let (status, answer) = call(&app, "POST", "/v1/events", Some(v1), body.clone()).await;
        assert_eq!(status, expected, "accept v1 = {accept}: {answer}");
        if status == 401 {
            assert!(answer["error"]["message"].as_str().unwrap().contains("v2"), "{answer}");
        }
        let request = SignedRequest { method: "POST", path_and_query: "/v1/events", body: &body };
        let v2 = sign_request(&secret(), clock.now().timestamp(), &request);
        assert_eq!(
            call(&app, "POST", "/v1/events", Some(v2), body.clone()).await.0,
            200,
            "v2 with accept v1 = {accept}"
        );
    }
}

/// GIVEN a header with 3,000 `v1=` values and a 1 MiB body, forged without the secret
/// WHEN posted THEN it is refused with a JSON 401 naming the limit (the MAC is never computed: see
/// `signing::tests` for the count).
#[tokio::test]
async fn given_thousands_of_signature_values_when_posted_then_a_json_401() {
    let (app, clock) = app(true);
    let body = vec![b' '; 1024 * 1024];
    let forged = format!("t={},{}", clock.now().timestamp(), vec![format!("v1={}", "ab".repeat(32)); 3000].join(","));
    let (status, answer) = call(&app, "POST", "/v1/events", Some(forged), body).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("more than 5"), "{answer}");
}

/// GIVEN a signature stamped t=i64::MIN WHEN posted THEN a JSON 401, never a panic.
#[tokio::test]
async fn given_the_smallest_timestamp_when_posted_then_a_json_401() {
    let (app, _) = app(true);
    let header = format!("t={},v1={}", i64::MIN, "ab".repeat(32));
    assert_eq!(call(&app, "POST", "/v1/events", Some(header), event_body()).await.0, 401);
}
