//! Issue 9, item 4: right before the provider call the sender asks the
//! engine's rules again on fresh state. Between the decision and the send
//! the customer may withdraw consent, an address may be suppressed after a
//! bounce, the customer may buy on another cart, night may fall or the SMS
//! window close; a job redriven from the dead-letter queue days later obeys
//! the same checks. Each outcome leaves its reason code and a sentence on
//! the cart's timeline. Run on the local adapters (SQLite, queues, outbox).

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use cartback_core::consent::{AnswerReason, ConsentSource, CustomerAnswer};
use cartback_core::event::{ConsentPatch, CustomerPatch, Event};
use cartback_core::ids::{CustomerKey, MessageId};
use cartback_core::message::{Channel, MessageJob, MessageRecord, MessageStatus, QueueName};
use cartback_core::ports::{Clock, MessageStore, Timeline, TimelineEntry, TimelineKind};
use cartback_core::service::{CheckOutcome, DeliveryError, DeliveryOutcome, FeedbackEvent, FeedbackKind};
use cartback_tests::samples::LocalStack;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// 11:00 in Paris.
const START: &str = "2026-11-23T10:00:00Z";

async fn ingest(stack: &LocalStack, events: Value) {
    let body = json!({ "events": events });
    let answer = stack.api.ingest.ingest_body(body.to_string().as_bytes()).await.unwrap();
    assert_eq!(answer.rejected, 0, "{answer:?}");
}

/// A customer in Paris with `contact` abandons cart-1 at START; its first
/// step is decided and queued 30 minutes later. Returns the queued job
/// (received from its queue, not yet delivered).
async fn decided(contact: Value, queue: QueueName) -> (LocalStack, MessageJob, i64) {
    let stack = LocalStack::new(at(START));
    ingest(
        &stack,
        json!([
            { "event_id": "id-1", "type": "identify", "occurred_at": "2026-11-23T09:59:00Z", "customer_id": "cust-1",
              "customer": contact },
            { "event_id": "add-1", "type": "add_to_cart", "occurred_at": START, "cart_id": "cart-1",
              "customer_id": "cust-1", "device": "mobile", "currency": "EUR",
              "items": [{ "item_id": "sku-mug", "item_name": "Stoneware mug", "price": "14.90" }] }
        ]),
    )
    .await;
    let timer = stack.timers.next_due(at("2030-01-01T00:00:00Z")).await.unwrap().expect("a timer is armed");
    stack.timers.complete(&timer).await.unwrap();
    stack.clock.set(timer.due_at);
    let outcome = stack.checker.on_timer(&timer).await.unwrap();
    let CheckOutcome::Decided { sent, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(sent.len(), 1, "{outcome:?}");
    let job = stack.queue.receive(queue, stack.clock.now(), Duration::minutes(5)).await.unwrap().expect("a job");
    (stack, job.job.clone(), job.id)
}

fn email_contact() -> Value {
    json!({ "email": "ana@example.com", "timezone": "Europe/Paris", "consents": { "email": true } })
}

fn sms_contact() -> Value {
    json!({ "phone": "+33612345678", "timezone": "Europe/Paris", "consents": { "sms": true } })
}

/// The cart's timeline lines about its message (not the decision lines).
async fn lines(stack: &LocalStack, code: &str) -> Vec<TimelineEntry> {
    let timeline = stack.db.timeline(&"cart-1".into()).await.unwrap();
    timeline.into_iter().filter(|e| e.kind == TimelineKind::Message && e.code == code).collect()
}

async fn status(stack: &LocalStack, id: &MessageId) -> MessageStatus {
    stack.db.get_message(id).await.unwrap().unwrap().status
}

fn outbox_files(stack: &LocalStack, channel: &str) -> usize {
    std::fs::read_dir(stack.dir.path().join("outbox").join(channel)).map_or(0, |d| d.count())
}

/// Asserts the job was cancelled for `code`: nothing sent, the record
/// closed with the code, and one timeline line with the code and a sentence.
async fn assert_cancelled(stack: &LocalStack, job: &MessageJob, outcome: DeliveryOutcome, code: &str) {
    assert_eq!(outcome, DeliveryOutcome::Skipped(code.into()));
    let MessageStatus::Cancelled { reason, .. } = status(stack, &job.message_id).await else {
        panic!("{:?}", status(stack, &job.message_id).await)
    };
    assert_eq!(reason, code);
    let found = lines(stack, code).await;
    assert_eq!(found.len(), 1, "one {code} line: {found:?}");
    assert!(found[0].message.starts_with("Step 1 not sent: "), "{}", found[0].message);
    assert_eq!(found[0].details["message_id"], job.message_id.as_str());
    assert!(lines(stack, "sent").await.is_empty());
}

/// GIVEN an email decided and queued
/// WHEN the customer withdraws email consent before the sender takes it
/// THEN it is not sent: cancelled with `no_consent`, said on the timeline.
#[tokio::test]
async fn given_consent_withdrawn_after_the_decision_when_the_job_is_delivered_then_it_is_cancelled() {
    let (stack, job, _) = decided(email_contact(), QueueName::Email).await;
    ingest(
        &stack,
        json!([{ "event_id": "id-2", "type": "identify", "occurred_at": "2026-11-23T10:31:00Z",
                 "customer_id": "cust-1", "customer": { "consents": { "email": false } } }]),
    )
    .await;
    stack.clock.set(at("2026-11-23T10:32:00Z"));

    let outcome = stack.delivery.deliver(&job).await.unwrap();

    assert_cancelled(&stack, &job, outcome, "no_consent").await;
    assert_eq!(outbox_files(&stack, "email"), 0);
}

/// The preference page's effects as Cartback's own events carry them
/// (internal fields no storefront can send), applied through ingest.
fn preference_event(id: &str, cart: bool, customer: Option<CustomerPatch>, answer: Option<CustomerAnswer>) -> Event {
    Event {
        cart_id: cart.then(|| "cart-1".into()),
        customer_id: Some("cust-1".into()),
        customer,
        answer,
        ..Event::identify(id.into(), at("2026-11-23T10:31:00Z"))
    }
}

/// GIVEN an email decided and queued
/// WHEN the customer unsubscribes by the link, snoozes reminders, or says
/// they already bought, before the sender takes it
/// THEN it is not sent: cancelled with `unsubscribed`, `snoozed` or
/// `already_bought`, said on the timeline.
#[tokio::test]
async fn given_the_customer_unsubscribed_snoozed_or_answered_after_the_decision_when_delivered_then_it_is_cancelled() {
    let unsubscribe =
        ConsentPatch { email: Some(false), source: Some(ConsentSource::UnsubscribeLink), ..Default::default() };
    let unsubscribe = CustomerPatch { consents: Some(unsubscribe), ..Default::default() };
    let snooze = CustomerPatch { snoozed_until: Some(at("2026-12-23T10:31:00Z")), ..Default::default() };
    let bought = CustomerAnswer { reason: AnswerReason::AlreadyBought, text: None, message_id: None };
    for (event, code) in [
        (preference_event("u-1", false, Some(unsubscribe), None), "unsubscribed"),
        (preference_event("s-1", false, Some(snooze), None), "snoozed"),
        (preference_event("a-1", true, None, Some(bought)), "already_bought"),
    ] {
        let (stack, job, _) = decided(email_contact(), QueueName::Email).await;
        stack.api.ingest.apply(&event, at("2026-11-23T10:31:00Z")).await.unwrap().into_result().unwrap();
        stack.clock.set(at("2026-11-23T10:32:00Z"));

        let outcome = stack.delivery.deliver(&job).await.unwrap();

        assert_cancelled(&stack, &job, outcome, code).await;
        assert_eq!(outbox_files(&stack, "email"), 0);
    }
}

/// GIVEN an email decided and queued, and an earlier email to the same
/// customer (another cart)
/// WHEN that earlier email bounces for good (the address is suppressed)
/// THEN the queued email is not sent: cancelled with `no_consent`.
#[tokio::test]
async fn given_the_address_suppressed_after_a_bounce_when_the_job_is_delivered_then_it_is_cancelled() {
    let (stack, job, _) = decided(email_contact(), QueueName::Email).await;
    let earlier = MessageRecord {
        message_id: MessageRecord::id_for("cart-0", 0, Channel::Email),
        cart_id: "cart-0".into(),
        customer_key: CustomerKey::Customer("cust-1".into()),
        campaign_id: "default".into(),
        step: 0,
        channel: Channel::Email,
        decided_at: at("2026-11-20T10:00:00Z"),
        status: MessageStatus::Sent { provider_message_id: "ses-0".into(), at: at("2026-11-20T10:00:00Z") },
        engagement: Default::default(),
        variant: None,
    };
    stack.db.create_message(&earlier).await.unwrap();
    let bounce = FeedbackEvent {
        message_id: earlier.message_id.clone(),
        provider: "ses".into(),
        provider_message_id: "ses-0".into(),
        kind: FeedbackKind::Bounced { permanent: true },
        at: at("2026-11-23T10:31:00Z"),
        user_agent: None,
    };
    stack.feedback.record(&bounce).await.unwrap();

    let outcome = stack.delivery.deliver(&job).await.unwrap();

    assert_cancelled(&stack, &job, outcome, "no_consent").await;
    assert_eq!(outbox_files(&stack, "email"), 0);
}

/// GIVEN an email decided and queued for cart-1
/// WHEN the same customer buys on another cart before it goes out
/// THEN it is not sent: cancelled with `recent_purchase`.
#[tokio::test]
async fn given_a_purchase_on_another_cart_after_the_decision_when_the_job_is_delivered_then_it_is_cancelled() {
    let (stack, job, _) = decided(email_contact(), QueueName::Email).await;
    ingest(
        &stack,
        json!([{ "event_id": "buy-2", "type": "purchase", "occurred_at": "2026-11-23T10:31:00Z",
                 "cart_id": "cart-2", "customer_id": "cust-1", "order_id": "o-2", "currency": "EUR", "value": "20.00" }]),
    )
    .await;

    let outcome = stack.delivery.deliver(&job).await.unwrap();

    assert_cancelled(&stack, &job, outcome, "recent_purchase").await;
    assert_eq!(outbox_files(&stack, "email"), 0);
}

/// GIVEN an SMS decided at 11:30 in Paris
/// WHEN the sender only gets to it at 21:30 in Paris (quiet hours)
/// THEN it is deferred to 08:00 Paris, not dropped: the claim is handed
/// back, the queue hides the job until then without spending an attempt,
/// the timeline says why; at 08:00 it goes out.
#[tokio::test]
async fn given_an_sms_reaching_the_sender_in_quiet_hours_when_delivered_then_it_is_deferred_and_sent_after() {
    let (stack, job, job_id) = decided(sms_contact(), QueueName::Sms).await;
    stack.clock.set(at("2026-11-23T20:30:00Z"));

    let error = stack.delivery.deliver(&job).await.unwrap_err();

    let DeliveryError::Deferred { until, reason } = error else { panic!("{error}") };
    assert_eq!(until, at("2026-11-24T07:00:00Z"), "08:00 in Paris");
    assert_eq!(reason.code.as_str(), "quiet_hours_deferred");
    assert_eq!(status(&stack, &job.message_id).await, MessageStatus::Queued, "the claim is handed back");
    let deferred = lines(&stack, "quiet_hours_deferred").await;
    assert_eq!(deferred.len(), 1, "{deferred:?}");
    assert!(deferred[0].message.contains("held back at send time"), "{}", deferred[0].message);
    assert_eq!(outbox_files(&stack, "sms"), 0);
    // The local runtime's worker postpones the job without spending an attempt.
    assert!(stack.queue.postpone(job_id, until).await.unwrap());
    let now = stack.clock.now();
    assert!(stack.queue.receive(QueueName::Sms, now, Duration::minutes(5)).await.unwrap().is_none(), "hidden");

    stack.clock.set(until);
    let again = stack.queue.receive(QueueName::Sms, until, Duration::minutes(5)).await.unwrap().expect("back at 08:00");
    assert_eq!(again.attempts, 1, "the deferral spent no attempt");
    let outcome = stack.delivery.deliver(&again.job).await.unwrap();
    assert!(matches!(outcome, DeliveryOutcome::Sent { .. }), "{outcome:?}");
    assert_eq!(lines(&stack, "sent").await.len(), 1);
}

/// GIVEN an SMS job that failed into the dead-letter queue
/// WHEN an operator redrives it three days later (past the 48-hour SMS
/// window after abandonment, at noon in Paris)
/// THEN it is not sent: cancelled with `sms_window_closed`.
#[tokio::test]
async fn given_an_sms_redriven_from_the_dead_letters_days_later_when_delivered_then_the_closed_window_cancels_it() {
    let (stack, _, job_id) = decided(sms_contact(), QueueName::Sms).await;
    let now = stack.clock.now();
    assert!(stack.queue.dead_letter(job_id, now, "provider outage").await.unwrap());
    stack.clock.set(at("2026-11-26T11:00:00Z"));
    assert_eq!(stack.queue.redrive(QueueName::Sms, stack.clock.now()).await.unwrap(), 1);
    let redriven =
        stack.queue.receive(QueueName::Sms, stack.clock.now(), Duration::minutes(5)).await.unwrap().expect("redriven");

    let outcome = stack.delivery.deliver(&redriven.job).await.unwrap();

    assert_cancelled(&stack, &redriven.job, outcome, "sms_window_closed").await;
    assert_eq!(outbox_files(&stack, "sms"), 0);
}

/// Dead-letters the job (a provider outage), then redrives and delivers it
/// at `when`.
async fn redrive_email_at(stack: &LocalStack, job_id: i64, when: &str) -> DeliveryOutcome {
    assert!(stack.queue.dead_letter(job_id, stack.clock.now(), "provider outage").await.unwrap());
    stack.clock.set(at(when));
    assert_eq!(stack.queue.redrive(QueueName::Email, stack.clock.now()).await.unwrap(), 1);
    let redriven =
        stack.queue.receive(QueueName::Email, stack.clock.now(), Duration::minutes(5)).await.unwrap().expect("job");
    stack.delivery.deliver(&redriven.job).await.unwrap()
}

/// GIVEN an email job redriven from the dead-letter queue a day later
/// WHEN nothing has changed for the customer
/// THEN it goes out (within `max_send_delay`, the checks stop what changed).
#[tokio::test]
async fn given_an_email_redriven_a_day_later_with_nothing_changed_when_delivered_then_it_is_sent() {
    let (stack, _, job_id) = decided(email_contact(), QueueName::Email).await;
    let outcome = redrive_email_at(&stack, job_id, "2026-11-24T11:00:00Z").await;

    assert!(matches!(outcome, DeliveryOutcome::Sent { .. }), "{outcome:?}");
    assert_eq!(outbox_files(&stack, "email"), 1);
}

/// GIVEN an email job redriven from the dead-letter queue three days later
/// WHEN delivered, past the campaign's `max_send_delay` (2 days)
/// THEN it is cancelled as too late, like a step decided that late.
#[tokio::test]
async fn given_an_email_redriven_past_the_max_send_delay_when_delivered_then_it_is_cancelled_as_too_late() {
    let (stack, job, job_id) = decided(email_contact(), QueueName::Email).await;
    let outcome = redrive_email_at(&stack, job_id, "2026-11-26T11:00:00Z").await;

    assert_cancelled(&stack, &job, outcome, "step_too_late").await;
    assert_eq!(outbox_files(&stack, "email"), 0);
}
