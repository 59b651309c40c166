//! A step whose message cannot be composed is recorded and explained, never
//! sent with Cartback's internal error text in it.

use chrono::{DateTime, Utc};
use serde_json::json;

use cartback_core::campaign::Campaign;
use cartback_core::message::{MessageStatus, QueueName};
use cartback_core::ports::{CampaignStore, MessageStore, Timeline};
use cartback_core::service::CheckOutcome;
use cartback_tests::samples::LocalStack;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// GIVEN a campaign whose first step names a template that does not exist
/// WHEN the cart's timer fires
/// THEN no job is queued, the message is recorded as not sent with the cause,
/// and the timeline says the step was not sent without quoting the error.
#[tokio::test]
async fn given_a_step_whose_template_fails_when_checked_then_it_is_recorded_not_mailed() {
    let stack = LocalStack::new(at("2026-11-23T10:00:00Z"));
    let mut campaign = Campaign::default_campaign();
    campaign.holdout_percent = 0;
    campaign.steps[0].template = "no_such_template".into();
    stack.db.put(&campaign).await.unwrap();
    let body = json!({ "events": [
        { "event_id": "add-1", "type": "add_to_cart", "occurred_at": "2026-11-23T10:00:00Z", "cart_id": "cart-r",
          "currency": "EUR", "items": [{ "item_id": "sku-mug", "price": "14.90" }],
          "customer": { "email": "ana@example.com", "consents": { "email": true } } }
    ]});
    assert_eq!(stack.api.ingest.ingest_body(body.to_string().as_bytes()).await.unwrap().accepted, 1);

    let timer = stack.timers.next_due(at("2030-01-01T00:00:00Z")).await.unwrap().expect("a timer is armed");
    stack.clock.set(timer.due_at);
    let outcome = stack.checker.on_timer(&timer).await.unwrap();

    let CheckOutcome::Decided { sent, .. } = outcome else { panic!("{outcome:?}") };
    assert!(sent.is_empty(), "nothing is queued: {sent:?}");
    let now = timer.due_at;
    assert!(stack.queue.receive(QueueName::Email, now, chrono::Duration::minutes(5)).await.unwrap().is_none());
    let cart_id = "cart-r".into();
    let timeline = stack.db.timeline(&cart_id).await.unwrap();
    let line = timeline.iter().find(|e| e.code == "not_rendered").expect("the timeline explains the unsent step");
    assert!(!line.message.contains("no_such_template\" does not exist"), "{}", line.message);
    let message_id = line.details["message_id"].as_str().expect("the line names the message").into();
    let record = stack.db.get_message(&message_id).await.unwrap().expect("the message is recorded");
    let MessageStatus::Rejected { error, .. } = record.status else { panic!("{:?}", record.status) };
    assert!(error.contains("no_such_template"), "the operator sees the cause: {error}");
}
