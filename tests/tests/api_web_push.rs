//! `GET /v1/web-push/public-key`: the VAPID public key a storefront passes
//! to `pushManager.subscribe`, unsigned (the shopper's browser asks for it)
//! and cacheable; every answer checked against the served OpenAPI document.

use axum::body::Body;
use axum::http::Request;
use cartback_tests::local_app::{local_app, local_app_with_web_push_key};
use cartback_tests::openapi::{assert_response, Observed};
use serde_json::Value;

const PATH: &str = "/v1/web-push/public-key";
const SECRET: &[u8] = b"web-push-secret-0123456789";
/// A VAPID public key: an uncompressed P-256 point, base64url.
const KEY: &str = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM";

async fn get(app: &axum::Router) -> Observed {
    let request = Request::builder().method("GET").uri(PATH).body(Body::empty()).unwrap();
    let observed = Observed::from_app(app, request).await;
    assert_response("GET", PATH, &observed);
    observed
}

#[tokio::test]
async fn given_a_vapid_key_when_the_browser_asks_without_a_signature_then_the_public_key_comes_back_cacheable() {
    // GIVEN a runtime with a VAPID key
    let app = local_app_with_web_push_key(SECRET, KEY);
    // WHEN a browser asks, unsigned
    let observed = get(&app).await;
    // THEN 200 with the key, cacheable for a day
    assert_eq!(observed.status, 200);
    let body: Value = serde_json::from_slice(&observed.body).unwrap();
    assert_eq!(body["public_key"], KEY);
    assert_eq!(observed.header("cache-control"), Some("public, max-age=86400"));
}

#[tokio::test]
async fn given_no_vapid_key_when_asked_then_404_says_web_push_is_not_configured() {
    // GIVEN a runtime without web push
    let (app, _) = local_app(SECRET, false);
    // WHEN asked
    let observed = get(&app).await;
    // THEN 404 naming why
    assert_eq!(observed.status, 404);
    let body: Value = serde_json::from_slice(&observed.body).unwrap();
    assert!(body.to_string().contains("web push is not configured"), "{body}");
}
