//! No personal data in the Lambda handlers' logs (issue 9): carts reachable
//! by email, SMS and mobile push go through ingest, the checker and the
//! three senders on moto, exactly as the `functions/*` binaries call them;
//! their JSON tracing output (Cartback's crates at `trace`, the AWS SDK's
//! runtime at `debug`) is captured and scanned for every contact value.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use cartback_aws::{handlers, wiring};
use cartback_core::ports::{Clock, TimerPayload};
use cartback_tests::moto::{post_events, response_json, Moto, Stack, TestClock};
use cartback_tests::pii::{Contacts, LambdaLogs};

/// The earliest armed timer not fired yet (moto keeps a one-time schedule
/// after its time, and never fires it).
async fn next_timer(stack: &Stack, fired: &[TimerPayload]) -> Option<TimerPayload> {
    stack.schedules().await.into_iter().map(|(timer, _)| timer).filter(|t| !fired.contains(t)).min_by_key(|t| t.due_at)
}

fn event(cart: &str, device: &str, customer: Value) -> Value {
    json!({
        "event_id": format!("{cart}-add"), "type": "add_to_cart", "cart_id": cart, "device": device,
        "currency": "EUR", "customer": customer,
        "items": [{"item_id": "sku-mug", "item_name": "Stoneware mug", "price": "14.90", "quantity": 2,
                   "image_url": "https://cdn.example.com/mug.jpg", "url": "https://shop.example.com/p/mug"}]
    })
}

#[tokio::test]
async fn given_carts_reached_by_email_sms_and_push_when_every_lambda_handles_them_then_no_contact_value_is_logged() {
    // GIVEN the handlers' log capture and three carts: one reached by email,
    // one mobile cart reached by SMS and then by push.
    let logs = LambdaLogs::capture();
    let stack = Stack::create(Moto::global().clients().await, 3).await;
    stack.treat_everyone().await;
    let start: DateTime<Utc> = "2026-11-23T10:03:00Z".parse().unwrap();
    let clock = TestClock::new(start);
    let secret = stack.secret();
    let app = stack.http_app(clock.clone());
    let batch = json!({"events": [
        event("logs-email", "desktop", json!({"email": "erin.logscan@example.com", "first_name": "Erin",
            "consents": {"email": true}})),
        event("logs-mobile", "mobile", json!({"email": "mo.logscan@example.com", "phone": "+33612345678",
            "first_name": "Mo", "push_tokens": [{"platform": "fcm", "token": "fcm-logscan-token-0123456789"}],
            "consents": {"email": false, "sms": true, "push": true}})),
    ]});
    let mut contacts = Contacts::default();
    contacts.collect(&batch);
    let answer = response_json(&handlers::ingest(&app, post_events(&batch, &secret, start)).await);
    assert_eq!(answer["accepted"], 2, "{answer}");

    // WHEN every timer fires in turn (the reminder, then the next day's
    // last call) and each sender handles its queue after each firing.
    let checker = wiring::checker(&stack.clients, &stack.checker_config(), secret.clone(), clock.clone());
    let email = wiring::email_delivery(&stack.clients, &stack.email_config(), clock.clone());
    let sms = wiring::sms_delivery(&stack.clients, &stack.sms_config(), clock.clone());
    let push = wiring::push_delivery(&stack.clients, &stack.push_config(), clock.clone());
    let mut sent = 0;
    let mut fired = Vec::new();
    for _ in 0..12 {
        let Some(timer) = next_timer(&stack, &fired).await else { break };
        fired.push(timer.clone());
        if timer.due_at > start + Duration::days(3) {
            break;
        }
        clock.set(timer.due_at.max(clock.now()) + Duration::minutes(1));
        handlers::checker(&checker, serde_json::to_value(&timer).unwrap()).await.unwrap();
        for (queue, delivery) in [("email", &email), ("sms", &sms), ("push", &push)] {
            let jobs = stack.receive(queue).await;
            if jobs.records.is_empty() {
                continue;
            }
            let result = handlers::sender(delivery, jobs.clone()).await;
            assert!(result.batch_item_failures.is_empty(), "{queue} sender failed");
            sent += jobs.records.len();
            stack.settle(queue, &jobs, &result).await;
        }
    }
    // Email (reminder and last call), SMS reminder, push last call.
    assert_eq!(sent, 4, "every channel sent");

    // THEN the handlers logged (the capture is live) and none of it holds
    // an address, a number or a token.
    let log = logs.text();
    assert!(log.lines().count() > 10, "the capture holds the handlers' output:\n{log}");
    assert_eq!(contacts.len(), 5, "two addresses, a number (with and without +) and a token");
    contacts.assert_absent_from("the Lambda handlers", &log);

    // Nor do the timers' schedules: their names, descriptions and the
    // input EventBridge Scheduler hands the checker, as stored.
    let scheduler = &stack.clients.scheduler;
    let listed = scheduler.list_schedules().group_name(&stack.schedule_group).send().await.unwrap();
    assert!(!listed.schedules.is_empty(), "the timers are listed");
    let mut schedules = String::new();
    for summary in listed.schedules {
        let name = summary.name.unwrap_or_default();
        let got = scheduler.get_schedule().name(&name).group_name(&stack.schedule_group).send().await.unwrap();
        let input = got.target.as_ref().and_then(|t| t.input.clone()).unwrap_or_default();
        assert!(input.contains("logs-"), "the input names its cart: {input}");
        schedules.push_str(&format!("{name} {:?} {input}\n", got.description));
    }
    contacts.assert_not_in("the EventBridge schedules", &schedules);
}
