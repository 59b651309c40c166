//! Order and cart sources on the AWS adapters (DynamoDB and EventBridge
//! Scheduler on moto), wired as the ingest function wires them: each
//! configured source's secret read from Secrets Manager at cold start.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tower::ServiceExt;

use cartback_aws::config::{BigCommerceConfig, BigCommerceStore};
use cartback_aws::wiring;
use cartback_core::sources::{base64_hmac_sha256, bigcommerce, Source};
use cartback_tests::fake_bigcommerce::FakeBigCommerce;
use cartback_tests::moto::{unique, Moto, Stack, TestClock};
use cartback_tests::samples::workspace_root;

const SHOPIFY_SECRET: &str = "shpss_aws_contract_app_secret_01";
const BIGCOMMERCE_SECRET: &str = "bigcommerce-aws-client-secret-01";
/// The business clock of the BigCommerce tests (and the signatures' real time: the wiring reads both on it).
const BIGCOMMERCE_NOW: &str = "2026-11-23T16:02:00Z";

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
    const TOKEN: &str = "bc-aws-api-token-0001";
    const CART: &str = "09346904-4175-44fd-be53-f7e598531b6c";
    let api_fake = FakeBigCommerce::start("abcde", TOKEN);
    let mut answer: Value = serde_json::from_slice(
        &std::fs::read(workspace_root().join("events/sources/bigcommerce/api-cart.json")).unwrap(),
    )
    .unwrap();
    answer["data"]["updated_time"] = serde_json::json!("2026-11-23T15:00:00Z");
    api_fake.put_cart(answer);

    let (app, api) = bigcommerce_app(&api_fake, TOKEN).await;

    let thin = std::fs::read(workspace_root().join("events/sources/bigcommerce/cart-updated-thin.json")).unwrap();
    let headers = bigcommerce_headers("aws-msg-1", &thin);
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

/// The ingest function's router as `wiring` builds it with BigCommerce's fetch configured: the client secret
/// and the API token in Secrets Manager, the API at `fake` (store `abcde`), the clock at [`BIGCOMMERCE_NOW`].
async fn bigcommerce_app(fake: &FakeBigCommerce, token: &str) -> (axum::Router, Arc<cartback_core::api::Api>) {
    let stack = Stack::create(Moto::global().clients().await, 3).await;
    let secret_arn = |name: &str, value: &str| {
        let created = stack.clients.secrets.create_secret().name(unique(name)).secret_string(value);
        async move { created.send().await.expect("secret").arn.unwrap() }
    };
    let mut config = stack.ingest_config();
    config.source_secret_arns = vec![(Source::BigCommerce, secret_arn("bigcommerce", BIGCOMMERCE_SECRET).await)];
    config.bigcommerce = Some(BigCommerceConfig {
        store: BigCommerceStore::parse("abcde", Some(&fake.url)).unwrap(),
        token_arn: secret_arn("bigcommerce-token", token).await,
    });
    let sources = wiring::load_sources(&stack.clients, &config).await.expect("the secrets load");
    let clock = TestClock::new(at(BIGCOMMERCE_NOW));
    let api = Arc::new(wiring::with_sources(wiring::api(&stack.clients, &config, stack.secret(), clock), sources));
    (cartback_http::router(api.clone()), api)
}

/// BigCommerce's headers for delivery `id` of `body`, signed at [`BIGCOMMERCE_NOW`].
fn bigcommerce_headers(id: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let t = at(BIGCOMMERCE_NOW).timestamp();
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", t.to_string()),
        ("webhook-signature", bigcommerce::signature(BIGCOMMERCE_SECRET.as_bytes(), id, t, body)),
    ]
}

fn bigcommerce_sample(file: &str) -> Value {
    let path = workspace_root().join("events/sources/bigcommerce").join(file);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// GIVEN the ingest function's wiring with BigCommerce's fetch configured and a cart stored from a thin
/// webhook WHEN `store/order/created` names order 252 of that cart THEN the order is fetched through the same
/// client and recorded in DynamoDB as the cart's purchase (converted, the order's fact stored); the same
/// delivery again is a duplicate answered before any API request; an order BigCommerce's API does not have
/// (404) is rejected naming its id.
#[tokio::test]
async fn given_bigcommerces_fetch_on_dynamodb_when_store_order_created_arrives_then_the_purchase_converts_the_cart() {
    const TOKEN: &str = "bc-aws-api-token-0002";
    const CART: &str = "09346904-4175-44fd-be53-f7e598531b6c";
    let fake = FakeBigCommerce::start("abcde", TOKEN);
    let mut cart = bigcommerce_sample("api-cart.json");
    cart["data"]["updated_time"] = serde_json::json!("2026-11-23T15:00:00Z");
    fake.put_cart(cart);
    fake.put_order(bigcommerce_sample("api-order.json"), bigcommerce_sample("api-order-products.json"));
    let (app, api) = bigcommerce_app(&fake, TOKEN).await;
    let thin = bigcommerce_sample("cart-updated-thin.json").to_string().into_bytes();
    let (status, answer) = post(&app, "bigcommerce", &bigcommerce_headers("aws-cart", &thin), &thin).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1)), "{answer}");

    let order = bigcommerce_sample("order-created.json").to_string().into_bytes();
    let headers = bigcommerce_headers("aws-order", &order);
    let (status, answer) = post(&app, "bigcommerce", &headers, &order).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1)), "{answer}");
    let record = api.store.get_cart(&CART.into()).await.unwrap().expect("the cart");
    assert_eq!(record.cart().status, cartback_core::cart::CartStatus::Converted);
    let fact = api.store.fact(&cartback_core::measure::facts::FactKind::order_fact_id("252")).await.unwrap();
    assert!(fact.is_some(), "the order's fact is stored");

    let requests = fake.seen().len();
    let (status, answer) = post(&app, "bigcommerce", &headers, &order).await;
    assert_eq!((status, answer["duplicates"].as_u64()), (200, Some(1)), "{answer}");
    assert_eq!(fake.seen().len(), requests, "a retried delivery costs no API request");

    let mut unknown = bigcommerce_sample("order-created.json");
    unknown["data"]["id"] = serde_json::json!(404_404);
    let unknown = unknown.to_string().into_bytes();
    let (status, answer) = post(&app, "bigcommerce", &bigcommerce_headers("aws-404", &unknown), &unknown).await;
    assert_eq!((status, answer["rejected"].as_u64()), (200, Some(1)), "{answer}");
    assert_eq!(answer["results"][0]["error"]["field"], "data.id");
    assert!(answer["results"][0]["error"]["message"].as_str().unwrap().contains("order 404404"), "{answer}");
}
