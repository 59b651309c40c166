//! Cart ids that need percent-encoding in a URL, read through the ingest
//! Lambda as API Gateway HTTP APIs deliver them: `rawPath` arrives decoded
//! (`/v1/carts/shop:cartä-1`) while the storefront signed the path it sent
//! (`/v1/carts/shop%3Acart%C3%A4-1`). The v2 signature covers the canonical
//! path, so the read is answered, and still refused for another cart.

use chrono::{DateTime, Utc};
use serde_json::json;

use cartback_aws::handlers;
use cartback_core::signing::{sign_request, SignedRequest, SIGNATURE_HEADER};
use cartback_tests::moto::{apigw_event, post_events, response_json, Moto, Stack, TestClock};

#[tokio::test]
async fn given_a_cart_id_with_reserved_characters_when_api_gateway_decodes_the_path_then_the_signed_read_is_answered() {
    // GIVEN a cart whose id holds a `:` and a non-ASCII letter
    let stack = Stack::create(Moto::global().clients().await, 3).await;
    let now: DateTime<Utc> = "2026-11-23T10:03:00Z".parse().unwrap();
    let clock = TestClock::new(now);
    let secret = stack.secret();
    let app = stack.http_app(clock);
    let add = json!({"events": [{"event_id": "paths-1", "type": "add_to_cart", "cart_id": "shop:cartä-1",
        "currency": "EUR", "items": [{"item_id": "sku-1", "price": "5.00", "quantity": 1}]}]});
    assert_eq!(response_json(&handlers::ingest(&app, post_events(&add, &secret, now)).await)["accepted"], 1);

    // WHEN the storefront signs the encoded path it sends, and API Gateway
    // hands the function the decoded one
    let read = |decoded_path: &str, signed_path: &str| {
        let mut event = apigw_event("apigw-get-cart.json");
        event.raw_path = Some(decoded_path.to_owned());
        event.request_context.http.path = Some(decoded_path.to_owned());
        let signed = SignedRequest { method: "GET", path_and_query: signed_path, body: b"" };
        let header = sign_request(&secret, now.timestamp(), &signed);
        event.headers.insert(SIGNATURE_HEADER, header.parse().unwrap());
        event
    };
    let answer = handlers::ingest(&app, read("/v1/carts/shop:cartä-1", "/v1/carts/shop%3Acart%C3%A4-1")).await;

    // THEN the cart is answered; the same header on another cart is refused
    assert_eq!(answer.status_code, 200, "{:?}", answer.body);
    assert_eq!(response_json(&answer)["cart_id"], "shop:cartä-1");
    let other = handlers::ingest(&app, read("/v1/carts/shop:cartb-1", "/v1/carts/shop%3Acart%C3%A4-1")).await;
    assert_eq!(other.status_code, 401);
}
