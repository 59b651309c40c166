//! Call budgets (issue 3, item 3), counted on the wire: every request the
//! functions make goes through a proxy in front of moto that records its
//! service and operation.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use cartback_aws::{handlers, wiring};
use cartback_core::ports::{Clock, TimerPayload};
use cartback_tests::moto::{post_events, response_json, Moto, Proxy, Stack, TestClock};

const DYNAMODB_WRITES: [&str; 5] = ["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"];

fn t0() -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

fn edit(i: i64) -> serde_json::Value {
    json!({ "event_id": format!("edit-{i}"), "type": "add_to_cart", "occurred_at": t0() + Duration::minutes(i), "cart_id": "cart-busy",
            "customer_id": "cust-1", "currency": "EUR", "device": "desktop",
            "customer": { "email": "ana@example.com", "consents": { "email": true } },
            "items": [{ "item_id": format!("sku-{i}"), "item_name": format!("Item {i}"), "price": "5.00", "quantity": 1 }] })
}

#[tokio::test]
async fn given_a_cart_edited_20_times_when_it_is_abandoned_then_at_most_2_scheduler_calls_happen_up_to_the_first_send_and_each_accepted_event_is_one_dynamodb_write(
) {
    let moto = Moto::global();
    let direct = Stack::create(moto.clients().await, 3).await;
    direct.treat_everyone().await;
    let proxy = Proxy::start(moto.port);
    let stack = direct.with_clients(proxy.clients().await);
    let clock = TestClock::new(t0());
    let app = stack.http_app(clock.clone());

    for i in 0..20 {
        clock.set(t0() + Duration::minutes(i) + Duration::seconds(5));
        proxy.reset();
        let response =
            handlers::ingest(&app, post_events(&json!({ "events": [edit(i)] }), &stack.secret(), clock.now())).await;
        assert_eq!(response_json(&response)["accepted"], 1, "edit {i}");
        let writes: usize = DYNAMODB_WRITES.iter().map(|op| proxy.count("dynamodb", op)).sum();
        assert_eq!(writes, 1, "edit {i}: {:?}", proxy.counts());
        assert_eq!(proxy.count("dynamodb", "TransactWriteItems"), 1, "edit {i}");
        let scheduler_calls = proxy.count_service("scheduler");
        assert_eq!(scheduler_calls, usize::from(i == 0), "edit {i}: only the first edit arms a timer");
    }
    // A replay of an accepted event is a duplicate and writes nothing.
    proxy.reset();
    let replay =
        handlers::ingest(&app, post_events(&json!({ "events": [edit(3)] }), &stack.secret(), clock.now())).await;
    assert_eq!(response_json(&replay)["duplicates"], 1);
    assert_eq!(DYNAMODB_WRITES.iter().map(|op| proxy.count("dynamodb", op)).sum::<usize>(), 0);

    // The timers fire (read back directly, not through the proxy).
    let checker = wiring::checker(&stack.clients, &stack.checker_config(), stack.secret(), clock.clone());
    let mut scheduler_calls = 1;
    let mut fired = Vec::new();
    let decision = loop {
        let timer = latest_timer(&direct).await;
        assert!(!fired.contains(&timer), "the checker re-armed nothing new");
        fired.push(timer.clone());
        clock.set(timer.due_at + Duration::seconds(30));
        proxy.reset();
        let outcome = handlers::checker(&checker, serde_json::to_value(&timer).unwrap()).await.unwrap();
        let calls = proxy.count_service("scheduler");
        if outcome["decision"] != "wait" || !outcome["sent"].as_array().unwrap().is_empty() {
            // This run decided the send first; its own scheduler call (if
            // any) arms the *next* step's timer, after that decision.
            assert!(calls <= 1, "{calls} scheduler calls after the send decision");
            break outcome;
        }
        scheduler_calls += calls;
    };
    assert_eq!(decision["sent"].as_array().unwrap().len(), 1, "the first send decision: {decision}");
    assert!(scheduler_calls <= 2, "{scheduler_calls} scheduler calls up to the first send decision");
    assert_eq!(fired.len(), 2, "first timer (30 min after the first edit) re-arms once for the last edit");
}

async fn latest_timer(stack: &Stack) -> TimerPayload {
    let listed = stack.clients.scheduler.list_schedules().group_name(&stack.schedule_group).send().await.unwrap();
    let mut timers = Vec::new();
    for s in listed.schedules {
        let got = stack
            .clients
            .scheduler
            .get_schedule()
            .name(s.name.unwrap())
            .group_name(&stack.schedule_group)
            .send()
            .await
            .unwrap();
        timers.push(serde_json::from_str::<TimerPayload>(got.target.unwrap().input.as_deref().unwrap()).unwrap());
    }
    timers.into_iter().max_by_key(|t| t.due_at).expect("a timer is armed")
}
