//! Property tests of the HTTP contract: whatever arrives, Cartback answers
//! with a JSON 2xx/4xx and never a 5xx or a panic, and the per-event answer
//! always accounts for every event sent; every answer to a documented route
//! keeps to the served OpenAPI document.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use cartback_core::ports::Clock;
use cartback_core::signing::{sign_request, Secret, SignedRequest};
use cartback_local::testing::ManualClock;
use cartback_tests::local_app::local_app;
use cartback_tests::openapi::{served, Observed};
use proptest::prelude::*;
use serde_json::{json, Value};

const SECRET: &[u8] = b"fuzz-secret-0123456789";

/// The HTTP application both runtimes serve, over SQLite in memory.
fn api() -> (Router, Arc<ManualClock>) {
    local_app(SECRET, true)
}

fn signed_post(clock: &ManualClock, body: Vec<u8>) -> Request<Body> {
    let request = SignedRequest { method: "POST", path_and_query: "/v1/events", body: &body };
    let signature = sign_request(&Secret::new(SECRET.to_vec()).unwrap(), clock.now().timestamp(), &request);
    Request::post("/v1/events").header("x-cartback-signature", signature).body(Body::from(body)).unwrap()
}

/// The answer keeps to what the served document says of `POST /v1/events`.
fn documented(response: &Observed) -> Result<(), TestCaseError> {
    served().check_response("POST", "/v1/events", response).map_err(|v| TestCaseError::fail(v.to_string()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Any JSON, biased towards the field names and shapes of real events.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[a-z0-9_:+.@ -]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("add_to_cart"),
            Just("purchase"),
            Just("identify"),
            Just("2026-11-23T09:00:00Z"),
            Just("EUR"),
            Just("12.50"),
            Just("+33612345678"),
            Just("Europe/Paris")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let key = prop_oneof![
            Just("event_id"),
            Just("type"),
            Just("cart_id"),
            Just("customer_id"),
            Just("items"),
            Just("price"),
            Just("quantity"),
            Just("item_id"),
            Just("currency"),
            Just("occurred_at"),
            Just("customer"),
            Just("email"),
            Just("phone"),
            Just("consents"),
            Just("order_id"),
            Just("value"),
            Just("device"),
            Just("timezone"),
        ]
        .prop_map(str::to_owned);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(key, inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn given_any_batch_of_json_events_when_posted_then_every_event_is_answered_and_nothing_fails_on_the_server(events in prop::collection::vec(json_value(), 0..6)) {
        let (api, clock) = api();
        let body = serde_json::to_vec(&json!({ "events": events })).unwrap();
        let response = runtime().block_on(Observed::from_app(&api, signed_post(&clock, body)));
        prop_assert_eq!(response.status, 200);
        documented(&response)?;
        let answer: Value = serde_json::from_slice(&response.body).unwrap();
        let results = answer["results"].as_array().unwrap();
        prop_assert_eq!(results.len(), events.len());
        let counted = answer["accepted"].as_u64().unwrap() + answer["duplicates"].as_u64().unwrap() + answer["rejected"].as_u64().unwrap();
        prop_assert_eq!(counted as usize, events.len());
        for result in results {
            if result["status"] == "rejected" {
                prop_assert!(result["error"]["field"].is_string() && result["error"]["message"].is_string());
            }
        }
    }

    #[test]
    fn given_arbitrary_bytes_when_posted_then_the_answer_is_a_json_4xx_or_200(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let (api, clock) = api();
        let response = runtime().block_on(Observed::from_app(&api, signed_post(&clock, body)));
        prop_assert!(matches!(response.status, 200 | 400), "status {}", response.status);
        documented(&response)?;
        prop_assert!(serde_json::from_slice::<Value>(&response.body).is_ok());
    }

    #[test]
    fn given_any_method_path_and_signature_when_requested_then_no_answer_is_a_server_error(
        method in prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE"), Just("PATCH")],
        path in "(/[a-zA-Z0-9%._~-]{0,12}){0,4}",
        signature in prop::option::of("[ -~]{0,80}"),
    ) {
        let (api, _) = api();
        let path = format!("/{}", path.trim_start_matches('/'));
        let mut request = Request::builder().method(method).uri(&path);
        if let Some(signature) = signature {
            request = request.header("x-cartback-signature", signature);
        }
        let status = runtime().block_on(Observed::from_app(&api, request.body(Body::empty()).unwrap())).status;
        prop_assert!(status < 500, "{} {} -> {}", method, path, status);
    }
}
