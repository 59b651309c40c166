//! `POST /v1/engagement` on the AWS runtime: the ingest Lambda's HTTP app
//! over DynamoDB (on moto), reached as API Gateway delivers it. An app's
//! report of a push opened is counted on the message, written once as a
//! fact for the report, explained on the timeline, and a repeat changes
//! nothing; a held-out message is refused with 409, an unknown one with 404.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use cartback_aws::dynamo::DynamoStateStore;
use cartback_aws::handlers;
use cartback_core::engagement::EngagementLabel;
use cartback_core::ids::CustomerKey;
use cartback_core::message::{Channel, MessageRecord, MessageStatus};
use cartback_core::ports::{FactStore, MessageStore, Timeline};
use cartback_tests::moto::{apigw_event, resign, response_json, Moto, Stack, TestClock};

fn push_message(cart_id: &str, decided_at: DateTime<Utc>, status: MessageStatus) -> MessageRecord {
    let customer = CustomerKey::Customer("cust-1".into());
    MessageRecord::decided(&cart_id.into(), &customer, "default", 0, Channel::Push, decided_at, status)
}

/// A signed `POST /v1/engagement` as API Gateway hands it to the function.
fn engagement(body: &Value, stack: &Stack, now: DateTime<Utc>) -> aws_lambda_events::apigw::ApiGatewayV2httpRequest {
    let mut event = apigw_event("apigw-post-events.json");
    event.raw_path = Some("/v1/engagement".into());
    event.request_context.http.path = Some("/v1/engagement".into());
    event.route_key = Some("POST /v1/engagement".into());
    event.body = Some(body.to_string());
    resign(&mut event, &stack.secret(), now);
    event
}

#[tokio::test]
async fn given_a_sent_push_on_dynamodb_when_the_app_reports_it_opened_then_it_is_counted_once_and_explained() {
    // GIVEN a push sent a minute ago, and a held-out one, in DynamoDB
    let stack = Stack::create(Moto::global().clients().await, 3).await;
    let now: DateTime<Utc> = "2026-11-23T11:00:00Z".parse().unwrap();
    let clock = TestClock::new(now);
    let store =
        DynamoStateStore::new(stack.clients.dynamodb.clone(), &stack.state_table, Duration::days(90), clock.clone());
    let sent = push_message("cart-e1", now - Duration::minutes(2), MessageStatus::Queued);
    store.create_message(&sent).await.unwrap();
    let status = MessageStatus::Sent { provider_message_id: "sns-1".into(), at: now - Duration::minutes(1) };
    store.set_message_status(&sent.message_id, &status).await.unwrap();
    let held_out = push_message("cart-e2", now, MessageStatus::HeldOut { at: now });
    store.create_message(&held_out).await.unwrap();
    let app = stack.http_app(clock);

    // WHEN the app reports the push opened, twice, and reports on the
    // held-out message and on one that does not exist
    let opened = json!({"message_id": sent.message_id, "kind": "opened", "at": now - Duration::seconds(30)});
    let first = handlers::ingest(&app, engagement(&opened, &stack, now)).await;
    let repeat = handlers::ingest(&app, engagement(&opened, &stack, now)).await;
    let never_sent = json!({"message_id": held_out.message_id, "kind": "opened"});
    let conflict = handlers::ingest(&app, engagement(&never_sent, &stack, now)).await;
    let unknown =
        handlers::ingest(&app, engagement(&json!({"message_id": "nope", "kind": "clicked"}), &stack, now)).await;

    // THEN the first is recorded, the repeat is not
    assert_eq!(first.status_code, 200, "{:?}", first.body);
    assert_eq!(response_json(&first), json!({"message_id": sent.message_id, "recorded": true, "label": "open"}));
    assert_eq!((repeat.status_code, response_json(&repeat)["recorded"].clone()), (200, json!(false)));
    // and the message holds one open, at the reported time
    let stored = store.get_message(&sent.message_id).await.unwrap().unwrap();
    let tally = stored.engagement.tally(EngagementLabel::Open).copied().expect("an open");
    assert_eq!((tally.count, tally.first_at), (1, now - Duration::seconds(30)));
    // one fact for the report, one timeline line with its reason
    let facts = store.facts(now.date_naive(), now.date_naive()).await.unwrap();
    let opened_facts = facts.iter().filter(|f| serde_json::to_string(f).unwrap().contains("\"opened_human\"")).count();
    assert_eq!(opened_facts, 1, "{facts:?}");
    let timeline = store.timeline(&"cart-e1".into()).await.unwrap();
    let lines: Vec<_> = timeline.iter().filter(|e| e.code == "open").collect();
    assert_eq!(lines.len(), 1, "{timeline:?}");
    assert_eq!(lines[0].details["reason"], "reported_by_app");
    assert!(lines[0].message.contains("opened step 1's push"), "{}", lines[0].message);
    // the held-out message is refused with 409, the unknown one with 404
    assert_eq!(conflict.status_code, 409, "{:?}", conflict.body);
    assert_eq!(response_json(&conflict)["error"]["code"], "not_sent");
    assert_eq!(unknown.status_code, 404, "{:?}", unknown.body);
    assert!(response_json(&unknown)["error"]["message"].as_str().unwrap().contains("\"nope\""));
}
