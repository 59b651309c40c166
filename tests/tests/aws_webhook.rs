//! The webhook channel on the AWS runtime, on moto: a target stored in the
//! config table (its secret in Secrets Manager), a campaign step by
//! `webhook`; the checker enqueues the job on the webhook queue, the
//! send-webhook handler (wired as its `main` wires it) posts it to a real
//! HTTP receiver on loopback, and every request is verified with the
//! Standard Webhooks specification's own Python library (`standardwebhooks`).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use cartback_aws::dynamo::DynamoCampaignStore;
use cartback_aws::sqs::Postponer;
use cartback_aws::webhook_targets::{put_target, StoredTarget};
use cartback_aws::{handlers, wiring};
use cartback_core::campaign::Campaign;
use cartback_core::ports::{CampaignStore, CartStore, Timeline, TimerPayload};
use cartback_core::service::Delivery;
use cartback_core::webhook::WebhookTargetName;
use cartback_tests::moto::{Moto, Stack, TestClock};
use cartback_tests::webhook_endpoint::{
    scripted_endpoint, verified_attempts, verify_with_standardwebhooks, CRM_CAMPAIGN, TARGET_SECRET as SECRET,
};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The stack with the `crm` campaign and target `crm` (posting to `url`,
/// allowed `fields`); its secret under the stack's `<stack>/webhook/` prefix.
async fn stack_with_target(url: &str, fields: &str, max_receive_count: u32) -> Stack {
    let stack = Stack::create(Moto::global().clients().await, max_receive_count).await;
    let campaign = Campaign::from_toml(CRM_CAMPAIGN).unwrap();
    DynamoCampaignStore::new(stack.clients.dynamodb.clone(), &stack.config_table).put(&campaign).await.unwrap();
    let secret_name = format!("{}/webhook/crm", stack.config_table);
    stack.clients.secrets.create_secret().name(&secret_name).secret_string(SECRET).send().await.unwrap();
    let target = StoredTarget {
        name: WebhookTargetName::parse("crm").unwrap(),
        url: url.to_owned(),
        secret_arn: secret_name,
        fields: fields.to_owned(),
    };
    put_target(&stack.clients.dynamodb, &stack.config_table, &target).await.unwrap();
    stack
}

/// A customer without any channel consent abandons `cart_id` on desktop; its
/// timer fires and the checker decides the step.
async fn abandon_and_check(stack: &Stack, clock: &std::sync::Arc<TestClock>, cart_id: &str) -> Value {
    let api = wiring::api(&stack.clients, &stack.ingest_config(), stack.secret(), clock.clone());
    let event = json!({
        "event_id": format!("atc-{cart_id}"), "type": "add_to_cart", "cart_id": cart_id, "customer_id": "cus-7",
        "device": "desktop", "currency": "EUR", "occurred_at": "2026-11-23T10:00:00Z",
        "customer": {"email": "ana@example.com", "phone": "+33612345678", "first_name": "Ana"},
        "items": [{"item_id": "sku-mug", "item_name": "Stoneware mug", "price": "30.00", "quantity": 2}]
    });
    let answer = api.ingest.ingest_body(event.to_string().as_bytes()).await.unwrap();
    assert_eq!(answer.accepted, 1, "{answer:?}");
    let store = wiring::state_store(&stack.clients, &stack.timer_config().common, clock.clone());
    let due = store.get_cart(&cart_id.into()).await.unwrap().unwrap().timer_armed_for.unwrap();
    clock.set(due);
    let checker = wiring::checker(&stack.clients, &stack.checker_config(), stack.secret(), clock.clone());
    let timer = TimerPayload { cart_id: cart_id.into(), due_at: due };
    handlers::checker(&checker, serde_json::to_value(&timer).unwrap()).await.unwrap()
}

/// The send-webhook function's delivery, as its `main` builds it.
async fn webhook_delivery(stack: &Stack, clock: std::sync::Arc<TestClock>) -> Delivery {
    let config = stack.webhook_config();
    let targets = wiring::webhook_targets(&stack.clients, &config.common).await.expect("targets load");
    assert_eq!(targets.names(), [WebhookTargetName::parse("crm").unwrap()]);
    wiring::webhook_delivery(&stack.clients, &config, targets, clock)
}

/// One invocation of the send-webhook function on what its queue holds;
/// the number of records it was given and of those it failed.
async fn run_sender(stack: &Stack, delivery: &Delivery) -> (usize, usize) {
    let batch = stack.receive("webhook").await;
    let postponer = Postponer::new(stack.clients.sqs.clone());
    let response = handlers::sender_postponing(delivery, &postponer, batch.clone()).await;
    stack.settle("webhook", &batch, &response).await;
    (batch.records.len(), response.batch_item_failures.len())
}

async fn message_codes(stack: &Stack, clock: &std::sync::Arc<TestClock>, cart_id: &str) -> Vec<(String, String)> {
    let store = wiring::state_store(&stack.clients, &stack.timer_config().common, clock.clone());
    let timeline = store.timeline(&cart_id.into()).await.unwrap();
    timeline.into_iter().filter(|e| e.kind == "message").map(|e| (e.code, e.message)).collect()
}

/// GIVEN target `crm` in the config table, allowed the email, whose receiver first answers 500
/// WHEN a cart is abandoned on AWS and the send-webhook function runs on the webhook queue
/// THEN the job is retried from the queue and the second request is taken; `standardwebhooks` verifies
///      both, with one webhook id; the payload has the cart and only the email; the timeline says
///      why it was retried, then that it was sent.
#[tokio::test]
async fn given_a_crm_failing_once_when_a_cart_is_abandoned_on_aws_then_the_signed_reminder_arrives_on_the_retry() {
    let (url, received) = scripted_endpoint(vec!["500 Internal Server Error", "200 OK"]);
    let stack = stack_with_target(&url, "email", 5).await;
    let clock = TestClock::new(at("2026-11-23T10:00:00Z"));

    let decided = abandon_and_check(&stack, &clock, "cart-wh").await;
    assert_eq!(decided["sent"].as_array().map(Vec::len), Some(1), "one message enqueued: {decided}");
    let delivery = webhook_delivery(&stack, clock.clone()).await;
    assert_eq!(run_sender(&stack, &delivery).await, (1, 1), "the 500: failed, kept on the queue");
    assert_eq!(run_sender(&stack, &delivery).await, (1, 0), "the retry: sent");
    assert_eq!(run_sender(&stack, &delivery).await, (0, 0), "nothing left");

    let requests = received.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let payload = verified_attempts(SECRET, &requests);
    assert_eq!(payload["type"], "cart.abandoned_reminder");
    let data = &payload["data"];
    assert_eq!((&data["cart_id"], &data["customer_id"]), (&json!("cart-wh"), &json!("cus-7")));
    assert_eq!((&data["subtotal"], &data["currency"]), (&json!("60.00"), &json!("EUR")));
    assert!(data["restore_url"].as_str().unwrap().starts_with("https://cb.example/r/"), "{data}");
    assert_eq!(data["contact"], json!({"email": "ana@example.com"}), "only the allowed field");
    let codes = message_codes(&stack, &clock, "cart-wh").await;
    let names: Vec<&str> = codes.iter().map(|(code, _)| code.as_str()).collect();
    assert_eq!(names, ["retrying", "sent"], "{codes:?}");
    assert!(codes[0].1.contains("HTTP 500"), "{codes:?}");
    assert_eq!(stack.queue_depth(&stack.queues["webhook"].dlq_url).await, 0);
}

/// GIVEN a receiver that refuses the request (HTTP 400), the target allowed no contact field
/// WHEN the step goes out on AWS
/// THEN it is posted once, rejected for good (acknowledged, not in the dead-letter queue) and the
///      timeline gives the status.
#[tokio::test]
async fn given_a_crm_refusing_with_400_when_the_step_goes_out_on_aws_then_it_is_rejected_for_good_with_its_reason() {
    let (url, received) = scripted_endpoint(vec!["400 Bad Request"]);
    let stack = stack_with_target(&url, "", 5).await;
    let clock = TestClock::new(at("2026-11-23T10:00:00Z"));

    abandon_and_check(&stack, &clock, "cart-400").await;
    let delivery = webhook_delivery(&stack, clock.clone()).await;
    assert_eq!(run_sender(&stack, &delivery).await, (1, 0), "answered: not retried");
    assert_eq!(run_sender(&stack, &delivery).await, (0, 0));

    let requests = received.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "never retried");
    let payload = verify_with_standardwebhooks(SECRET, &requests[0]).expect("verified");
    assert_eq!(payload["data"]["contact"], json!({}), "no contact field by default");
    let codes = message_codes(&stack, &clock, "cart-400").await;
    assert_eq!(codes.len(), 1, "{codes:?}");
    assert_eq!(codes[0].0, "rejected");
    assert!(codes[0].1.contains("HTTP 400"), "{codes:?}");
    assert_eq!(stack.queue_depth(&stack.queues["webhook"].dlq_url).await, 0);
}

/// GIVEN a receiver that answers 503 every time, on a queue that redrives after 2 receives
/// WHEN the send-webhook function keeps taking the job
/// THEN after its receives the job ends in the webhook dead-letter queue.
#[tokio::test]
async fn given_a_crm_always_failing_when_the_retries_run_out_then_the_job_ends_in_the_dead_letter_queue() {
    let (url, received) = scripted_endpoint(vec!["503 Service Unavailable"; 10]);
    let stack = stack_with_target(&url, "", 2).await;
    let clock = TestClock::new(at("2026-11-23T10:00:00Z"));

    abandon_and_check(&stack, &clock, "cart-dlq").await;
    let delivery = webhook_delivery(&stack, clock.clone()).await;
    assert_eq!(run_sender(&stack, &delivery).await, (1, 1));
    assert_eq!(run_sender(&stack, &delivery).await, (1, 1));
    // The third receive finds it over its maxReceiveCount: moved, not delivered.
    assert_eq!(run_sender(&stack, &delivery).await, (0, 0));

    assert_eq!(received.lock().unwrap().len(), 2);
    assert_eq!(stack.queue_depth(&stack.queues["webhook"].dlq_url).await, 1);
}
