//! Failure handling (issue 3, item 6): throttling and 5xx answers injected
//! on the wire by a proxy in front of moto; a permanent SES rejection from
//! moto itself (unverified sender).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use cartback_aws::clients::MAX_ATTEMPTS;
use cartback_aws::dynamo::DynamoStateStore;
use cartback_aws::ses::SesSender;
use cartback_aws::sns::SnsSmsSender;
use cartback_aws::sqs::SqsJobQueue;
use cartback_aws::{handlers, wiring};
use cartback_core::message::{Channel, MessageJob, MessageRecord, MessageStatus, Outgoing};
use cartback_core::ports::{CartStore, JobQueue, MessageStore, Timeline};
use cartback_core::service::{Delivery, DeliveryError};
use cartback_tests::moto::{Fault, Moto, Proxy, Stack, TestClock};

fn t0() -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

async fn proxied() -> (Proxy, Stack) {
    let moto = Moto::global();
    let direct = Stack::create(moto.clients().await, 3).await;
    let proxy = Proxy::start(moto.port);
    let stack = direct.with_clients(proxy.clients().await);
    (proxy, stack)
}

fn record(cart_id: &str, channel: Channel) -> MessageRecord {
    MessageRecord {
        message_id: MessageRecord::id_for(cart_id, 0, channel),
        cart_id: cart_id.into(),
        customer_key: cartback_core::ids::CustomerKey::Customer("cust-1".into()),
        campaign_id: "default".into(),
        step: 0,
        channel,
        decided_at: t0(),
        status: MessageStatus::Queued,
        engagement: Default::default(),
        variant: None,
    }
}

fn email(record: &MessageRecord) -> MessageJob {
    MessageJob {
        message_id: record.message_id.clone(),
        cart_id: record.cart_id.clone(),
        channel: Channel::Email,
        outgoing: Outgoing::Email {
            to: "ana@example.com".into(),
            subject: "Your cart".into(),
            text: "Blue mug".into(),
            html: "<p>Blue mug</p>".into(),
            unsubscribe: None,
        },
        voucher: None,
    }
}

fn attempts(proxy: &Proxy, service: &str, operation: &str) -> Vec<String> {
    proxy
        .seen()
        .into_iter()
        .filter(|s| s.service == service && s.operation == operation)
        .map(|s| s.sdk_request)
        .collect()
}

#[tokio::test]
async fn given_dynamodb_throttles_twice_when_a_cart_is_read_then_the_sdk_retries_and_the_third_attempt_succeeds() {
    let (proxy, stack) = proxied().await;
    let store = DynamoStateStore::new(
        stack.clients.dynamodb.clone(),
        &stack.state_table,
        Duration::days(90),
        TestClock::new(t0()),
    );
    proxy.inject("dynamodb", "GetItem", Fault::Throttle, 2);
    assert_eq!(store.get_cart(&"c-1".into()).await.unwrap(), None);
    let seen = attempts(&proxy, "dynamodb", "GetItem");
    assert_eq!(seen.len(), 3, "{seen:?}");
    for (i, header) in seen.iter().enumerate() {
        assert!(
            header.contains(&format!("attempt={}", i + 1)) && header.contains(&format!("max={MAX_ATTEMPTS}")),
            "{header}"
        );
    }
}

#[tokio::test]
async fn given_ses_answers_503_three_times_when_an_email_is_sent_then_the_fourth_attempt_delivers_it() {
    let (proxy, stack) = proxied().await;
    let sender = SesSender::new(stack.clients.ses.clone(), stack.sender.clone(), "cartback");
    proxy.inject("ses", "SendEmail", Fault::Unavailable, 3);
    let started = std::time::Instant::now();
    let id = cartback_core::ports::Sender::send(&sender, &email(&record("c-1", Channel::Email)), t0()).await.unwrap();
    assert!(!id.is_empty());
    let seen = attempts(&proxy, "ses", "SendEmail");
    assert_eq!(seen.len(), 4, "{seen:?}");
    // Cartback retries sends itself (only failures that sent nothing), so
    // each request is the SDK's single attempt.
    assert!(seen.iter().all(|header| header.contains("attempt=1")), "{seen:?}");
    eprintln!("4 attempts with backoff took {:?}", started.elapsed());
}

#[tokio::test]
async fn given_sns_throttles_beyond_the_retry_budget_when_an_sms_is_delivered_then_it_stops_after_5_attempts_and_the_job_goes_back_to_the_queue(
) {
    let (proxy, stack) = proxied().await;
    let clock = TestClock::new(t0());
    let store = Arc::new(DynamoStateStore::new(
        stack.clients.dynamodb.clone(),
        &stack.state_table,
        Duration::days(90),
        clock.clone(),
    ));
    let sms = record("c-1", Channel::Sms);
    store.create_message(&sms).await.unwrap();
    let delivery = Delivery {
        store: store.clone(),
        sender: Arc::new(SnsSmsSender::new(stack.clients.sns.clone(), None)),
        campaigns: wiring::campaign_cache(&stack.clients, &stack.email_config().common, clock.clone()),
        clock,
        webhook: None,
    };
    proxy.inject("sns", "Publish", Fault::Throttle, 100);
    let job = MessageJob {
        message_id: sms.message_id.clone(),
        cart_id: "c-1".into(),
        channel: Channel::Sms,
        outgoing: Outgoing::Sms { to: "+33612345678".into(), body: "Your cart".into() },
        voucher: None,
    };
    let error = delivery.deliver(&job).await.unwrap_err();
    assert!(matches!(error, DeliveryError::Retry(_)), "{error}");
    assert_eq!(attempts(&proxy, "sns", "Publish").len(), MAX_ATTEMPTS as usize);
    // The claim is handed back so the queue's redelivery can send it.
    assert_eq!(store.get_message(&sms.message_id).await.unwrap().unwrap().status, MessageStatus::Queued);
}

#[tokio::test]
async fn given_an_unverified_sender_when_an_email_job_is_handled_then_ses_rejects_it_once_it_is_recorded_as_rejected_and_not_retried(
) {
    let (proxy, stack) = proxied().await;
    let clock = TestClock::new(t0());
    let store = wiring::state_store(&stack.clients, &stack.email_config().common, clock.clone());
    let rec = record("c-1", Channel::Email);
    store.create_message(&rec).await.unwrap();
    let queue = SqsJobQueue::new(stack.clients.sqs.clone(), stack.checker_config().queues);
    queue.enqueue(&email(&rec)).await.unwrap();

    let sender = SesSender::new(stack.clients.ses.clone(), "Shop <nobody@unverified.example>", "cartback");
    let campaigns = wiring::campaign_cache(&stack.clients, &stack.email_config().common, clock.clone());
    let delivery: Delivery =
        Delivery { store: store.clone(), sender: Arc::new(sender), campaigns, clock, webhook: None };
    let batch = stack.receive("email").await;
    proxy.reset();
    let response = handlers::sender(&delivery, batch.clone()).await;
    assert!(response.batch_item_failures.is_empty(), "a permanent rejection is not retried by SQS");
    stack.settle("email", &batch, &response).await;

    assert_eq!(attempts(&proxy, "ses", "SendEmail").len(), 1, "MessageRejected is not retried by the SDK either");
    let status = store.get_message(&rec.message_id).await.unwrap().unwrap().status;
    let MessageStatus::Rejected { error, .. } = status else { panic!("{status:?}") };
    assert!(error.contains("MessageRejected"), "{error}");
    let timeline = store.timeline(&"c-1".into()).await.unwrap();
    assert!(timeline.iter().any(|e| e.code == "rejected"), "{timeline:?}");
    assert_eq!(stack.queue_depth(&stack.queues["email"].url).await, 0);
    let _ = json!(null);
}
