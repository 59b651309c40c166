//! Order and cart sources on the AWS adapters (DynamoDB and EventBridge
//! Scheduler on moto), wired as the ingest function wires them: each
//! configured source's secret read from Secrets Manager at cold start.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tower::ServiceExt;

use cartback_aws::wiring;
use cartback_core::sources::{base64_hmac_sha256, Source};
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
