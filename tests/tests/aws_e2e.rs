//! End to end on moto (issue 3, item 5), calling the Lambda handlers
//! in-process exactly as the `functions/*` binaries do (same `wiring` and
//! `handlers` functions; only `lambda_runtime::run` is left out).

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use cartback_aws::{handlers, wiring};
use cartback_core::message::MessageStatus;
use cartback_core::ports::{MessageStore, TimerPayload};
use cartback_tests::moto::{apigw_event, post_events, resign, response_json, Moto, Stack, TestClock};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

async fn armed_timers(stack: &Stack) -> Vec<TimerPayload> {
    stack.schedules().await.into_iter().map(|(timer, _)| timer).collect()
}

/// The readable text of a MIME message: quoted-printable soft breaks
/// undone and base64 parts decoded.
fn mime_text(raw: &str) -> String {
    let mut text = raw.replace("=\r\n", "").replace("=\n", "");
    for part in raw.split("Content-Transfer-Encoding: base64").skip(1) {
        let body = part.split("\r\n\r\n").nth(1).unwrap_or_default();
        let b64: String = body.lines().take_while(|l| !l.trim().is_empty() && !l.starts_with("--")).collect();
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

#[tokio::test]
async fn given_an_api_gateway_event_when_the_cart_is_abandoned_then_the_timer_fires_and_an_email_with_the_items_is_sent(
) {
    let stack = Stack::create(Moto::global().clients().await, 3).await;
    let clock = TestClock::new(at("2026-11-23T10:03:00Z"));
    // Cold start, as in functions/ingest: config, secret from Secrets Manager, services.
    let config = stack.ingest_config();
    let secret = wiring::load_secret(&stack.clients, &config.timer.secret_arn).await.unwrap();
    let app =
        cartback_http::router(std::sync::Arc::new(wiring::api(&stack.clients, &config, secret.clone(), clock.clone())));

    let mut event = apigw_event("apigw-post-events.json");
    resign(&mut event, &secret, at("2026-11-23T10:03:00Z"));
    let response = handlers::ingest(&app, event).await;
    assert_eq!(response.status_code, 200, "{:?}", response.body);
    assert_eq!(response.headers.get("content-type").unwrap(), "application/json");
    let answer = response_json(&response);
    assert_eq!((answer["accepted"].as_u64(), answer["rejected"].as_u64()), (Some(3), Some(0)), "{answer}");

    // The cart is stored and readable through the same contract.
    let mut get = apigw_event("apigw-get-cart.json");
    resign(&mut get, &secret, at("2026-11-23T10:03:00Z"));
    let cart = response_json(&handlers::ingest(&app, get).await);
    assert_eq!(cart["cart_id"], "cart-aws-1");
    assert_eq!(cart["items"].as_array().unwrap().len(), 2);

    // One schedule armed, when the first cart edit arrived: 30 minutes after
    // it. The second edit only moved the cart's activity time.
    let timers = armed_timers(&stack).await;
    assert_eq!(timers, vec![TimerPayload { cart_id: "cart-aws-1".into(), due_at: at("2026-11-23T10:31:00Z") }]);
    assert_eq!(cart["next_check_at"], json!("2026-11-23T10:31:00Z"));

    // The schedule fires (within its flexible window). The checker sees the
    // later edit and re-arms once; that timer fires and an email job is enqueued.
    let checker = wiring::checker(&stack.clients, &stack.checker_config(), secret.clone(), clock.clone());
    clock.set(at("2026-11-23T10:31:40Z"));
    let outcome = handlers::checker(&checker, serde_json::to_value(&timers[0]).unwrap()).await.unwrap();
    assert_eq!(outcome["decision"], "wait", "{outcome}");
    let timers = armed_timers(&stack).await;
    assert_eq!(timers[0], TimerPayload { cart_id: "cart-aws-1".into(), due_at: at("2026-11-23T10:32:00Z") });
    clock.set(at("2026-11-23T10:33:10Z"));
    let outcome = handlers::checker(&checker, serde_json::to_value(&timers[0]).unwrap()).await.unwrap();
    assert_eq!(outcome["sent"].as_array().unwrap().len(), 1, "one email decided: {outcome}");
    let message_id = outcome["sent"][0].as_str().unwrap().to_owned();

    // send-email gets that SQS batch.
    let delivery = wiring::email_delivery(&stack.clients, &stack.email_config(), clock.clone());
    let batch = stack.receive("email").await;
    assert_eq!(batch.records.len(), 1);
    let result = handlers::sender(&delivery, batch.clone()).await;
    assert!(result.batch_item_failures.is_empty());
    stack.settle("email", &batch, &result).await;

    let emails = stack.sent_raw_emails();
    assert_eq!(emails.len(), 1);
    let text = mime_text(&emails[0]);
    for needle in ["Stoneware mug", "Cast-iron teapot", "To: ana@example.com", "https://cb.example/r/"] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    let store = wiring::state_store(&stack.clients, &stack.timer_config().common, clock.clone());
    assert!(matches!(
        store.get_message(&message_id.as_str().into()).await.unwrap().unwrap().status,
        MessageStatus::Sent { .. }
    ));
    // A redelivery of the same job sends nothing more.
    let again = handlers::sender(&delivery, batch).await;
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(stack.sent_raw_emails().len(), 1);
}

#[tokio::test]
async fn given_a_purchase_before_the_timer_fires_when_the_checker_runs_then_nothing_is_sent() {
    let stack = Stack::create(Moto::global().clients().await, 3).await;
    let clock = TestClock::new(at("2026-11-23T10:03:00Z"));
    let secret = stack.secret();
    let app = stack.http_app(clock.clone());
    let mut event = apigw_event("apigw-post-events.json");
    resign(&mut event, &secret, clock_now(&clock));
    assert_eq!(handlers::ingest(&app, event).await.status_code, 200);

    clock.set(at("2026-11-23T10:15:00Z"));
    let purchase = json!({ "event_id": "aws-purchase-1", "type": "purchase", "occurred_at": "2026-11-23T10:14:00Z", "cart_id": "cart-aws-1",
                           "customer_id": "cust-ana", "order_id": "o-1", "currency": "EUR", "value": "68.80" });
    let response =
        handlers::ingest(&app, post_events(&json!({ "events": [purchase] }), &secret, clock_now(&clock))).await;
    assert_eq!(response_json(&response)["accepted"], 1);

    let timers = armed_timers(&stack).await;
    assert_eq!(timers.len(), 1, "a purchase arms nothing");
    clock.set(timers[0].due_at + Duration::minutes(1));
    let checker = wiring::checker(&stack.clients, &stack.checker_config(), secret, clock.clone());
    let outcome = handlers::checker(&checker, serde_json::to_value(&timers[0]).unwrap()).await.unwrap();
    assert_eq!(outcome["decision"], "stop", "{outcome}");
    assert!(stack.receive("email").await.records.is_empty(), "no email job");
    assert!(stack.sent_raw_emails().is_empty());
    assert_eq!(armed_timers(&stack).await.len(), 1, "no re-arm after a stop");
}

#[tokio::test]
async fn given_a_malformed_timer_payload_when_the_checker_runs_then_it_answers_without_failing() {
    let stack = Stack::create(Moto::global().clients().await, 3).await;
    let clock = TestClock::new(at("2026-11-23T10:03:00Z"));
    let checker = wiring::checker(&stack.clients, &stack.checker_config(), stack.secret(), clock);
    let outcome = handlers::checker(&checker, json!({ "cart": 1 })).await.unwrap();
    assert_eq!(outcome["outcome"], "malformed");
    let outcome =
        handlers::checker(&checker, json!({ "cart_id": "nope", "due_at": "2026-11-23T10:00:00Z" })).await.unwrap();
    assert_eq!(outcome["outcome"], "no_such_cart");
}

fn clock_now(clock: &Arc<TestClock>) -> DateTime<Utc> {
    cartback_core::ports::Clock::now(clock.as_ref())
}
