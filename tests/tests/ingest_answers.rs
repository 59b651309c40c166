//! What `POST /v1/events` answers when part of a batch cannot be stored or
//! carries contact data its channel cannot use (issue 9 items 3 and 12),
//! through the HTTP application both runtimes serve, each answer checked
//! against the served OpenAPI document.

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use cartback_core::ports::Clock;
use cartback_core::signing::{sign_request, Secret, SignedRequest};
use cartback_local::testing::ManualClock;
use cartback_tests::local_app::{local_app_with_failing_timers, local_app_with_timer_faults};
use cartback_tests::openapi::{served, Observed};
use serde_json::{json, Value};

const SECRET: &[u8] = b"answers-secret-0123456789";

fn signed(clock: &ManualClock, method: &'static str, path: &'static str, body: Vec<u8>) -> Request<Body> {
    let request = SignedRequest { method, path_and_query: path, body: &body };
    let signature = sign_request(&Secret::new(SECRET.to_vec()).unwrap(), clock.now().timestamp(), &request);
    Request::builder()
        .method(method)
        .uri(path)
        .header("x-cartback-signature", signature)
        .body(Body::from(body))
        .unwrap()
}

/// Posts a batch; the answer must keep to the document.
async fn post(app: &Router, clock: &ManualClock, body: &Value) -> (u16, Option<String>, Value) {
    let observed = Observed::from_app(app, signed(clock, "POST", "/v1/events", body.to_string().into_bytes())).await;
    served().check_response("POST", "/v1/events", &observed).unwrap_or_else(|v| panic!("{v}"));
    let retry_after =
        observed.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("retry-after")).map(|(_, v)| v.clone());
    (observed.status, retry_after, serde_json::from_slice(&observed.body).unwrap())
}

fn edit(event_id: &str, cart_id: &str) -> Value {
    json!({"event_id": event_id, "type": "add_to_cart", "cart_id": cart_id, "items": [{"item_id": "sku-1"}]})
}

#[tokio::test]
async fn given_a_batch_where_one_cart_cannot_be_stored_when_posted_then_503_names_it_retry_and_the_rest_land() {
    let (app, clock) = local_app_with_failing_timers(SECRET, false, &["cart-down"]);
    let body = json!({"events": [edit("a1", "cart-up"), edit("a2", "cart-down"), edit("a3", "cart-up")]});

    let (status, retry_after, answer) = post(&app, &clock, &body).await;

    assert_eq!((status, retry_after.as_deref()), (503, Some("5")));
    let statuses: Vec<&str> =
        answer["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["accepted", "retry", "accepted"]);
    assert_eq!((answer["accepted"].as_u64(), answer["retry"].as_u64()), (Some(2), Some(1)));

    // A client that reads only the status resends the whole batch: the stored ones are duplicates.
    let (status, _, again) = post(&app, &clock, &body).await;
    assert_eq!(status, 503, "this store still fails that cart: {again}");
    assert_eq!((again["duplicates"].as_u64(), again["retry"].as_u64()), (Some(2), Some(1)));
}

/// GIVEN a store that refuses one cart's write for good (a validation
/// error, not an outage)
/// WHEN a batch with it is posted
/// THEN that event is rejected on `event` (a resend would be refused too),
/// the others land, and the answer is 200 without Retry-After.
#[tokio::test]
async fn given_a_batch_where_the_store_refuses_one_cart_for_good_when_posted_then_it_is_rejected_not_retried() {
    let (app, clock) = local_app_with_timer_faults(SECRET, false, &[], &["cart-refused"]);
    let body = json!({"events": [edit("b1", "cart-up"), edit("b2", "cart-refused")]});

    let (status, retry_after, answer) = post(&app, &clock, &body).await;

    assert_eq!((status, retry_after), (200, None), "{answer}");
    assert_eq!(answer["results"][0]["status"], "accepted");
    assert_eq!(answer["results"][1]["status"], "rejected");
    assert_eq!(answer["results"][1]["error"]["field"], "event");
    assert_eq!((answer["rejected"].as_u64(), answer["retry"].as_u64()), (Some(1), Some(0)));
}

#[tokio::test]
async fn given_an_add_to_cart_with_a_bad_phone_when_posted_then_it_is_accepted_with_a_warning_and_the_timeline_says_why(
) {
    let (app, clock) = local_app_with_failing_timers(SECRET, false, &[]);
    let mut event = edit("w1", "cart-w");
    event["customer"] = json!({"phone": "+1 555 0100 000", "email": "wendy@example.com"});

    let (status, _, answer) = post(&app, &clock, &json!({"events": [event]})).await;

    assert_eq!(status, 200);
    assert_eq!(answer["results"][0]["status"], "accepted");
    assert_eq!(answer["results"][0]["warnings"][0]["field"], "customer.phone");
    assert_eq!(answer["results"][0]["warnings"].as_array().map(Vec::len), Some(1));
    let observed = Observed::from_app(&app, signed(&clock, "GET", "/v1/carts/cart-w", Vec::new())).await;
    assert_eq!(observed.status, 200);
    let cart: Value = serde_json::from_slice(&observed.body).unwrap();
    let line = &cart["timeline"][0];
    assert!(line["message"].as_str().is_some_and(|m| m.contains("customer.phone left out")), "{line}");
    assert_eq!(line["details"]["warnings"][0]["field"], "customer.phone");
    assert!(!observed.body.windows(4).any(|w| w == b"0100"), "the bad number is not quoted back");
}
