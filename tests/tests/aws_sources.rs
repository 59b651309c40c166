//! Order and cart sources on the AWS adapters (DynamoDB and EventBridge
//! Scheduler on moto), wired as the ingest function wires them: each
//! configured source's secret read from Secrets Manager at cold start.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tower::ServiceExt;

use cartback_aws::config::BigCommerceConfig;
use cartback_aws::wiring;
use cartback_core::sources::{base64_hmac_sha256, bigcommerce, Source};
use cartback_tests::fake_bigcommerce::FakeBigCommerce;
use cartback_tests::moto::{unique, Moto, Stack, TestClock};
use cartback_tests::samples::workspace_root;

const SHOPIFY_SECRET: &str = "shpss_aws_contract_app_secret_01";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

async fn post(app: &axum::Router, source: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
    let mut request = Request::post(format!("/v1/sources/{source}")).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = app.clone().oneshot(request.body(Body::from(body.to_vec())).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn shopify_secret(stack: &Stack) -> String {
    let created = stack.clients.secrets.create_secret().name(unique("shopify")).secret_string(SHOPIFY_SECRET);
    created.send().await.expect("secret").arn.unwrap()
}

#[tokio::test]
async fn given_a_shopify_secret_in_secrets_manager_when_its_checkout_webhook_arrives_twice_then_the_cart_is_stored_once_with_a_timer(
) {
    let stack = Stack::create(Moto::global().clients().await, 3).await;
    let mut config = stack.ingest_config();
    config.source_secret_arns = vec![(Source::Shopify, shopify_secret(&stack).await)];
    let sources = wiring::load_sources(&stack.clients, &config).await.expect("the source secrets load");
    let clock = TestClock::new(at("2026-11-23T15:02:00Z"));
    let api = wiring::with_sources(wiring::api(&stack.clients, &config, stack.secret(), clock.clone()), sources);
    let app = cartback_http::router(Arc::new(api));

    let body = std::fs::read(workspace_root().join("events/sources/shopify/checkouts-create.json")).unwrap();
    let headers = vec![
        ("X-Shopify-Topic", "checkouts/create".to_owned()),
        ("X-Shopify-Webhook-Id", "b54557e4-aws".to_owned()),
        ("X-Shopify-Hmac-Sha256", base64_hmac_sha256(SHOPIFY_SECRET.as_bytes(), &body)),
    ];
    let (status, answer) = post(&app, "shopify", &headers, &body).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1)), "{answer}");
    // Shopify retries a slow answer with the same webhook id: a duplicate.
    let (status, answer) = post(&app, "shopify", &headers, &body).await;
    assert_eq!((status, answer["duplicates"].as_u64()), (200, Some(1)), "{answer}");

    let timers: Vec<String> = stack.schedules().await.into_iter().map(|(timer, _)| timer.cart_id.to_string()).collect();
    assert_eq!(timers, ["123123123"], "one timer for the checkout's cart");

    // A spike: the next delivery, redelivered 20 times at once, lands once (conditional writes).
    let mut update: Value = serde_json::from_slice(&body).unwrap();
    update["updated_at"] = serde_json::json!("2026-11-23T10:01:30-05:00");
    let update = update.to_string().into_bytes();
    let headers = vec![
        ("X-Shopify-Topic", "checkouts/update".to_owned()),
        ("X-Shopify-Webhook-Id", "b54557e4-aws-2".to_owned()),
        ("X-Shopify-Hmac-Sha256", base64_hmac_sha256(SHOPIFY_SECRET.as_bytes(), &update)),
    ];
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, headers, update) = (app.clone(), headers.clone(), update.clone());
            tokio::spawn(async move { post(&app, "shopify", &headers, &update).await })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        let (status, answer) = task.await.unwrap();
        assert!(status == 200 || status == 503, "{status} {answer}");
        accepted += answer["accepted"].as_u64().unwrap_or(0);
    }
    assert_eq!(accepted, 1, "one of 20 concurrent redeliveries is stored");

    let forged = vec![("X-Shopify-Topic", "checkouts/create".to_owned()), ("X-Shopify-Hmac-Sha256", "AAAA".to_owned())];
    assert_eq!(post(&app, "shopify", &forged, &body).await.0, 401);
    assert_eq!(post(&app, "segment", &[], b"{}").await.0, 404, "a source without a secret takes nothing");
}

#[tokio::test]
async fn given_a_source_secret_arn_that_does_not_exist_when_loaded_then_the_error_names_the_variable() {
    let stack = Stack::create(Moto::global().clients().await, 3).await;
    let mut config = stack.ingest_config();
    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nothing-here-AbCdEf".to_owned();
    config.source_secret_arns = vec![(Source::Segment, missing)];
    let error = wiring::load_sources(&stack.clients, &config).await.unwrap_err();
    assert!(error.to_string().contains("CARTBACK_SOURCE_SECRET_ARN_SEGMENT"), "{error}");
}

fn shopify_headers(topic: &str, id: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("X-Shopify-Topic", topic.to_owned()),
        ("X-Shopify-Webhook-Id", id.to_owned()),
        ("X-Shopify-Hmac-Sha256", base64_hmac_sha256(SHOPIFY_SECRET.as_bytes(), body)),
    ]
}

/// GIVEN Shopify's order sample stored on DynamoDB (its purchase fact and the fact id's guard) WHEN a
/// `refunds/create` of that order arrives, naming no customer THEN it is accepted as a return of the order's
/// customer, found through the guard; a refund of an unknown order is rejected naming `order_id`.
#[tokio::test]
async fn given_a_stored_shopify_order_on_dynamodb_when_its_refund_arrives_then_the_orders_customer_is_found() {
    let stack = Stack::create(Moto::global().clients().await, 3).await;
    let mut config = stack.ingest_config();
    config.source_secret_arns = vec![(Source::Shopify, shopify_secret(&stack).await)];
    let sources = wiring::load_sources(&stack.clients, &config).await.expect("the source secrets load");
    let clock = TestClock::new(at("2026-11-26T16:00:00Z"));
    let api = Arc::new(wiring::with_sources(wiring::api(&stack.clients, &config, stack.secret(), clock), sources));
    let app = cartback_http::router(api.clone());

    let order = std::fs::read(workspace_root().join("events/sources/shopify/orders-create.json")).unwrap();
    let (status, answer) = post(&app, "shopify", &shopify_headers("orders/create", "aws-order", &order), &order).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1)), "{answer}");
    let refund = std::fs::read(workspace_root().join("events/sources/shopify/refunds-create-paid.json")).unwrap();
    let headers = shopify_headers("refunds/create", "aws-refund", &refund);
    let (status, answer) = post(&app, "shopify", &headers, &refund).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1)), "{answer}");
    let customer = api.store.get_customer(&"115310627314723954".into()).await.unwrap().expect("the customer").0;
    assert_eq!(customer.returns, [at("2026-11-24T15:34:55Z")], "the refund is the customer's return");

    let mut stranger: Value = serde_json::from_slice(&refund).unwrap();
    stranger["id"] = serde_json::json!(78);
    stranger["order_id"] = serde_json::json!(4343);
    let stranger = stranger.to_string().into_bytes();
    let headers = shopify_headers("refunds/create", "aws-refund-2", &stranger);
    let (status, answer) = post(&app, "shopify", &headers, &stranger).await;
    assert_eq!((status, answer["rejected"].as_u64()), (200, Some(1)), "{answer}");
    assert_eq!(answer["results"][0]["error"]["field"], "order_id");
}

/// GIVEN the ingest function's wiring with BigCommerce's cart fetch configured (store hash, the API token in
/// Secrets Manager, the API at a loopback fake) WHEN a thin `store/cart/updated` arrives THEN the cart is
/// fetched with the token and stored in DynamoDB with its lines; a failed fetch answers 503.
#[tokio::test]
async fn given_bigcommerces_cart_fetch_wired_from_secrets_manager_when_a_thin_webhook_arrives_then_the_cart_is_stored()
{
    const SECRET: &str = "bigcommerce-aws-client-secret-01";
    const TOKEN: &str = "bc-aws-api-token-0001";
    const CART: &str = "09346904-4175-44fd-be53-f7e598531b6c";
    let api_fake = FakeBigCommerce::start("abcde", TOKEN);
    let mut answer: Value = serde_json::from_slice(
        &std::fs::read(workspace_root().join("events/sources/bigcommerce/api-cart.json")).unwrap(),
    )
    .unwrap();
    answer["data"]["updated_time"] = serde_json::json!("2026-11-23T15:00:00Z");
    api_fake.put_cart(answer);

    let stack = Stack::create(Moto::global().clients().await, 3).await;
    let secret_arn = |name: &str, value: &str| {
        let created = stack.clients.secrets.create_secret().name(unique(name)).secret_string(value);
        async move { created.send().await.expect("secret").arn.unwrap() }
    };
    let mut config = stack.ingest_config();
    config.source_secret_arns = vec![(Source::BigCommerce, secret_arn("bigcommerce", SECRET).await)];
    config.bigcommerce = Some(BigCommerceConfig {
        store_hash: "abcde".into(),
        token_arn: secret_arn("bigcommerce-token", TOKEN).await,
        api_url: Some(api_fake.url.clone()),
    });
    let sources = wiring::load_sources(&stack.clients, &config).await.expect("the secrets load");
    let clock = TestClock::new(at("2026-11-23T15:02:00Z"));
    let api = Arc::new(wiring::with_sources(wiring::api(&stack.clients, &config, stack.secret(), clock), sources));
    let app = cartback_http::router(api.clone());

    let thin = std::fs::read(workspace_root().join("events/sources/bigcommerce/cart-updated-thin.json")).unwrap();
    // The wiring's clock is the test's: the signature's window is read on it.
    let t = at("2026-11-23T15:02:00Z").timestamp();
    let headers = vec![
        ("webhook-id", "aws-msg-1".to_owned()),
        ("webhook-timestamp", t.to_string()),
        ("webhook-signature", bigcommerce::signature(SECRET.as_bytes(), "aws-msg-1", t, &thin)),
    ];
    api_fake.fail(true);
    assert_eq!(post(&app, "bigcommerce", &headers, &thin).await.0, 503, "BigCommerce retries");
    api_fake.fail(false);
    let (status, answer) = post(&app, "bigcommerce", &headers, &thin).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1)), "{answer}");
    let cart = api.store.get_cart(&CART.into()).await.unwrap().expect("the fetched cart is stored").cart();
    let items: Vec<(&str, u32)> = cart.items.iter().map(|i| (i.item_id.as_str(), i.quantity)).collect();
    assert_eq!(items, [("358", 2), ("401", 1)]);
    assert_eq!(api_fake.seen().last().map(|(_, token)| token.clone()), Some(Some(TOKEN.to_owned())));
}
