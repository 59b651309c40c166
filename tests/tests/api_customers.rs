//! `DELETE /v1/customers/{customer_id}` and `GET /v1/customers/{customer_id}/export`
//! over the HTTP application both runtimes serve (SQLite in memory, manual
//! clock): signed like every `/v1` route, answers that match the served
//! OpenAPI document.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use cartback_core::ports::Clock;
use cartback_core::signing::{sign_request, Secret, SignedRequest};
use cartback_local::testing::ManualClock;
use cartback_tests::local_app::local_app_with_db;
use cartback_tests::openapi::{assert_response, Observed};
use serde_json::{json, Value};

const SECRET: &[u8] = b"customers-secret-0123456789";

async fn call(
    app: &Router,
    clock: &Arc<ManualClock>,
    method: &'static str,
    path: &str,
    body: Vec<u8>,
    signed: bool,
) -> (u16, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if signed {
        let to_sign = SignedRequest { method, path_and_query: path, body: &body };
        let secret = Secret::new(SECRET.to_vec()).unwrap();
        request = request.header("x-cartback-signature", sign_request(&secret, clock.now().timestamp(), &to_sign));
    }
    let observed = Observed::from_app(app, request.body(Body::from(body)).unwrap()).await;
    let template = if path.ends_with("/export") {
        "/v1/customers/{customer_id}/export"
    } else if path.starts_with("/v1/customers/") {
        "/v1/customers/{customer_id}"
    } else {
        path
    };
    assert_response(method, template, &observed);
    (observed.status, serde_json::from_slice(&observed.body).unwrap_or(Value::Null))
}

/// A customer with contact data and a cart, through `POST /v1/events`.
async fn seed(app: &Router, clock: &Arc<ManualClock>) {
    let events = json!({"events": [
        {"event_id": "c-identify", "type": "identify", "customer_id": "cust-ana",
         "customer": {"email": "ana@example.com", "phone": "+33612345678",
                      "consents": {"email": true, "sms": true}}},
        {"event_id": "c-add", "type": "add_to_cart", "cart_id": "cart-ana", "customer_id": "cust-ana",
         "currency": "EUR", "items": [{"item_id": "sku-mug", "price": "14.90", "quantity": 1}]},
    ]});
    let (status, answer) = call(app, clock, "POST", "/v1/events", events.to_string().into_bytes(), true).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(2)), "{answer}");
}

/// GIVEN a customer WHEN their export or erasure is asked without a
/// signature THEN 401, and nothing is erased.
#[tokio::test]
async fn given_unsigned_requests_when_a_customer_is_exported_or_erased_then_401_and_nothing_changes() {
    let (app, clock, _db) = local_app_with_db(SECRET);
    seed(&app, &clock).await;

    let (status, body) = call(&app, &clock, "DELETE", "/v1/customers/cust-ana", Vec::new(), false).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = call(&app, &clock, "GET", "/v1/customers/cust-ana/export", Vec::new(), false).await;
    assert_eq!(status, 401);

    let (status, export) = call(&app, &clock, "GET", "/v1/customers/cust-ana/export", Vec::new(), true).await;
    assert_eq!(status, 200);
    assert_eq!(export["customer"]["profile"]["email"], "ana@example.com", "still there");
}

/// GIVEN a customer with a profile and a cart WHEN exported, erased, erased
/// again and exported again THEN the export holds the profile (with its
/// consent history) and the cart with its events and timeline; the erasure
/// answers its counts and the audiences gap; the second erasure answers
/// zeros; the last export is 404.
#[tokio::test]
async fn given_a_customer_when_exported_then_erased_twice_then_the_answers_have_their_documented_shape() {
    let (app, clock, _db) = local_app_with_db(SECRET);
    seed(&app, &clock).await;

    let (status, export) = call(&app, &clock, "GET", "/v1/customers/cust-ana/export", Vec::new(), true).await;
    assert_eq!(status, 200, "{export}");
    assert_eq!(export["customer_id"], "cust-ana");
    assert_eq!(export["customer"]["profile"]["phone"], "+33612345678");
    assert!(!export["customer"]["consent_history"].as_array().unwrap().is_empty(), "{export}");
    assert_eq!(export["carts"][0]["cart_id"], "cart-ana");
    assert_eq!(export["carts"][0]["events"].as_array().unwrap().len(), 1);
    assert!(!export["carts"][0]["timeline"].as_array().unwrap().is_empty());

    let (status, erased) = call(&app, &clock, "DELETE", "/v1/customers/cust-ana", Vec::new(), true).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["customer_id"], "cust-ana");
    assert_eq!(erased["audiences"], "none configured");
    assert_eq!((erased["erased"]["profiles"].as_u64(), erased["erased"]["carts"].as_u64()), (Some(1), Some(1)));
    assert!(erased["erased"]["timeline_entries"].as_u64().unwrap() >= 1);
    assert_eq!(erased["erased"]["timers"], 1, "the cart's pending timer");

    let (status, again) = call(&app, &clock, "DELETE", "/v1/customers/cust-ana", Vec::new(), true).await;
    assert_eq!(status, 200);
    assert!(again["erased"].as_object().unwrap().values().all(|count| count == 0), "{again}");

    let (status, body) = call(&app, &clock, "GET", "/v1/customers/cust-ana/export", Vec::new(), true).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, _) = call(&app, &clock, "GET", "/v1/carts/cart-ana", Vec::new(), true).await;
    assert_eq!(status, 404, "the cart is gone");
}

/// GIVEN a customer id that is not an id WHEN erased THEN 400 naming it.
#[tokio::test]
async fn given_a_blank_customer_id_when_erased_then_400_names_the_field() {
    let (app, clock, _db) = local_app_with_db(SECRET);
    let (status, body) = call(&app, &clock, "DELETE", "/v1/customers/a%20b", Vec::new(), true).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("customer_id:"), "{body}");
}
