//! The feedback service (provider reports on sent messages) and the AWS
//! feedback handler, on the local adapters: SQLite state, timers and
//! queues, a manual clock. The handler tests pass SQS events to
//! `cartback_aws::handlers::feedback`, the function the Lambda binary calls;
//! no AWS API is mocked (see `cartback_tests::samples`).

use aws_lambda_events::sqs::SqsEvent;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use cartback_aws::handlers;
use cartback_core::campaign::Campaign;
use cartback_core::consent::ConsentSource;
use cartback_core::engagement::{EngagementLabel, Tally};
use cartback_core::engine::Decision;
use cartback_core::ids::{CustomerKey, MessageId};
use cartback_core::message::{Channel, MessageRecord, MessageStatus, QueueName};
use cartback_core::ports::{CampaignStore, CartStore, CustomerStore, MessageStore, Timeline, TimelineEntry};
use cartback_core::service::{CheckOutcome, FeedbackEvent, FeedbackKind, FeedbackOutcome};
use cartback_tests::samples::{sample_as, LocalStack};

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

const START: &str = "2026-11-23T10:00:00Z";

/// Ana (email consent) abandons cart-1; the first step's email goes out.
async fn first_email_sent() -> (LocalStack, MessageId) {
    let stack = LocalStack::new(at(START));
    let body = json!({ "events": [
        { "event_id": "id-ana", "type": "identify", "occurred_at": "2026-11-23T09:59:00Z", "customer_id": "cust-ana",
          "customer": { "email": "ana@example.com", "first_name": "Ana", "timezone": "Europe/Paris", "consents": { "email": true } } },
        { "event_id": "add-1", "type": "add_to_cart", "occurred_at": START, "cart_id": "cart-1", "customer_id": "cust-ana", "device": "desktop",
          "currency": "EUR", "items": [{ "item_id": "sku-mug", "item_name": "Stoneware mug", "price": "14.90" }] }
    ]});
    let answer = stack.api.ingest.ingest_body(body.to_string().as_bytes()).await.unwrap();
    assert_eq!(answer.accepted, 2);
    let sent = fire_next_timer(&stack).await;
    let CheckOutcome::Decided { sent, .. } = sent else { panic!("{sent:?}") };
    assert_eq!(sent.len(), 1, "the first step sends one email");
    let job = stack
        .queue
        .receive(QueueName::Email, stack_now(&stack), Duration::minutes(5))
        .await
        .unwrap()
        .expect("email job");
    stack.queue.ack(job.id).await.unwrap();
    let status = MessageStatus::Sent { provider_message_id: "ses-0001".into(), at: stack_now(&stack) };
    stack.db.set_message_status(&sent[0], &status).await.unwrap();
    (stack, sent[0].clone())
}

fn stack_now(stack: &LocalStack) -> DateTime<Utc> {
    cartback_core::ports::Clock::now(stack.clock.as_ref())
}

/// Moves the clock to the next armed timer and runs the checker on it.
async fn fire_next_timer(stack: &LocalStack) -> CheckOutcome {
    let timer = stack.timers.next_due(at("2030-01-01T00:00:00Z")).await.unwrap().expect("a timer is armed");
    stack.timers.complete(&timer).await.unwrap();
    stack.clock.set(timer.due_at);
    stack.checker.on_timer(&timer).await.unwrap()
}

fn feedback(message_id: &str, kind: FeedbackKind, when: DateTime<Utc>) -> FeedbackEvent {
    FeedbackEvent {
        message_id: message_id.into(),
        provider: "ses".into(),
        provider_message_id: "ses-0001".into(),
        kind,
        at: when,
        user_agent: Some(BROWSER.into()),
    }
}

async fn email_consent(stack: &LocalStack, customer_id: &str) -> Option<bool> {
    let (customer, _) = stack.db.get_customer(&customer_id.into()).await.unwrap()?;
    customer.profile.consents.and_then(|c| c.email)
}

async fn lines(stack: &LocalStack, cart_id: &str, code: &str) -> Vec<TimelineEntry> {
    stack.db.timeline(&cart_id.into()).await.unwrap().into_iter().filter(|e| e.code == code).collect()
}

/// GIVEN a campaign that opts in to opens WHEN its first email is opened
/// (by a browser, minutes after the send) THEN the checker stops for
/// engagement.
#[tokio::test]
async fn given_a_campaign_counting_opens_when_its_first_email_is_opened_then_the_checker_stops_for_engagement() {
    let (stack, first) = first_email_sent().await;
    let mut campaign = Campaign::default_campaign();
    campaign.holdout_percent = 0;
    campaign.opens_count_as_engagement = true;
    CampaignStore::put(&stack.db, &campaign).await.unwrap();
    let opened = stack_now(&stack) + Duration::minutes(12);
    let outcome = stack.feedback.record(&feedback(&first, FeedbackKind::Opened, opened)).await.unwrap();
    assert_eq!(outcome, FeedbackOutcome::Recorded { consent_withdrawn_for: None });
    let record = stack.db.get_message(&first).await.unwrap().unwrap();
    assert_eq!(record.engagement.tally(EngagementLabel::Open), Some(&Tally::once(opened)));
    assert_eq!(lines(&stack, "cart-1", "open").await.len(), 1);
    match fire_next_timer(&stack).await {
        CheckOutcome::Decided { decision: Decision::Stop { reason, .. }, sent } => {
            assert_eq!((reason.code.as_str(), sent.len()), ("engaged", 0));
        }
        other => panic!("expected a stop for engagement, got {other:?}"),
    }
}

#[tokio::test]
async fn given_a_complaint_when_the_second_step_comes_due_then_no_email_goes_out() {
    let (stack, first) = first_email_sent().await;
    let outcome = stack
        .feedback
        .record(&feedback(&first, FeedbackKind::Complained, stack_now(&stack) + Duration::hours(2)))
        .await
        .unwrap();
    assert_eq!(outcome, FeedbackOutcome::Recorded { consent_withdrawn_for: Some("cust-ana".into()) });
    assert_eq!(email_consent(&stack, "cust-ana").await, Some(false));
    let (customer, _) = stack.db.get_customer(&"cust-ana".into()).await.unwrap().unwrap();
    let last = customer.consent_history.last().expect("the withdrawal is in the consent history");
    assert_eq!((last.channel, last.granted, last.source), (Channel::Email, false, ConsentSource::Complaint));
    let CheckOutcome::Decided { sent, decision } = fire_next_timer(&stack).await else { panic!("not decided") };
    assert!(sent.is_empty(), "sent after a complaint: {sent:?} ({decision:?})");
    assert_eq!(stack.queue.receive(QueueName::Email, stack_now(&stack), Duration::minutes(5)).await.unwrap(), None);
}

#[tokio::test]
async fn given_a_complaint_when_it_is_delivered_twice_then_consent_is_withdrawn_once_with_one_timeline_line() {
    let (stack, first) = first_email_sent().await;
    let event = feedback(&first, FeedbackKind::Complained, stack_now(&stack) + Duration::hours(2));
    assert!(matches!(stack.feedback.record(&event).await.unwrap(), FeedbackOutcome::Recorded { .. }));
    let (_, version) = stack.db.get_customer(&"cust-ana".into()).await.unwrap().unwrap();
    assert_eq!(stack.feedback.record(&event).await.unwrap(), FeedbackOutcome::Duplicate);
    assert_eq!(
        stack.db.get_customer(&"cust-ana".into()).await.unwrap().unwrap().1,
        version,
        "a redelivery writes nothing"
    );
    let complaints = lines(&stack, "cart-1", "complaint").await;
    assert_eq!(complaints.len(), 1);
    assert!(complaints[0].message.contains("consent withdrawn"), "{}", complaints[0].message);
    assert_eq!(complaints[0].details["provider_message_id"], "ses-0001");
}

#[tokio::test]
async fn given_a_permanent_bounce_when_recorded_then_the_consent_history_names_it_as_the_source() {
    let (stack, first) = first_email_sent().await;
    let bounced = feedback(&first, FeedbackKind::Bounced { permanent: true }, stack_now(&stack) + Duration::hours(2));
    stack.feedback.record(&bounced).await.unwrap();
    let (customer, _) = stack.db.get_customer(&"cust-ana".into()).await.unwrap().unwrap();
    let newest = customer.consent_history.last().expect("a change on record");
    assert_eq!((newest.channel, newest.granted, newest.source), (Channel::Email, false, ConsentSource::Bounce));
    assert_eq!(customer.consent_history.len(), 2, "granted by the storefront, then withdrawn: {customer:?}");
}

#[tokio::test]
async fn given_a_withdrawn_consent_when_an_older_identify_arrives_late_then_it_stays_withdrawn_until_a_newer_opt_in() {
    let (stack, first) = first_email_sent().await;
    let bounced = at("2026-11-23T10:31:00Z");
    stack.feedback.record(&feedback(&first, FeedbackKind::Bounced { permanent: true }, bounced)).await.unwrap();
    let identify = |id: &str, when: &str| {
        json!({ "event_id": id, "type": "identify", "occurred_at": when, "customer_id": "cust-ana", "customer": { "consents": { "email": true } } }).to_string()
    };
    // A storefront's event from before the bounce, delivered after it.
    let late = stack.api.ingest.ingest_body(identify("late-old", "2026-11-23T10:20:00Z").as_bytes()).await.unwrap();
    assert_eq!(late.accepted, 1);
    assert_eq!(email_consent(&stack, "cust-ana").await, Some(false), "older data must not give consent back");
    // The customer opts in again afterwards.
    stack.clock.set(at("2026-11-23T12:00:30Z"));
    let again =
        stack.api.ingest.ingest_body(identify("opt-in-again", "2026-11-23T12:00:00Z").as_bytes()).await.unwrap();
    assert_eq!(again.accepted, 1);
    assert_eq!(email_consent(&stack, "cust-ana").await, Some(true));
}

#[tokio::test]
async fn given_a_transient_bounce_then_a_permanent_one_when_recorded_then_only_the_permanent_one_withdraws_consent() {
    let (stack, first) = first_email_sent().await;
    let now = stack_now(&stack);
    let soft = stack
        .feedback
        .record(&feedback(&first, FeedbackKind::Bounced { permanent: false }, now + Duration::minutes(1)))
        .await
        .unwrap();
    assert_eq!(soft, FeedbackOutcome::Recorded { consent_withdrawn_for: None });
    assert_eq!(email_consent(&stack, "cust-ana").await, Some(true));
    let hard = stack
        .feedback
        .record(&feedback(&first, FeedbackKind::Bounced { permanent: true }, now + Duration::hours(1)))
        .await
        .unwrap();
    assert_eq!(hard, FeedbackOutcome::Recorded { consent_withdrawn_for: Some("cust-ana".into()) });
    assert_eq!(email_consent(&stack, "cust-ana").await, Some(false));
    let bounces: Vec<String> = lines(&stack, "cart-1", "bounced")
        .await
        .into_iter()
        .map(|e| e.details["feedback"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bounces, ["bounce-transient", "bounce-permanent"]);
}

#[tokio::test]
async fn given_a_guest_carts_message_when_it_bounces_permanently_then_the_carts_email_consent_is_withdrawn_and_no_profile_is_made(
) {
    let stack = LocalStack::new(at(START));
    let added = cartback_core::event::validate_event(
        &serde_json::json!({"event_id": "g1", "type": "add_to_cart", "cart_id": "cart-guest", "occurred_at": "2026-11-23T09:00:00Z",
                            "customer": {"email": "guest@example.com", "consents": {"email": true}}, "items": [{"item_id": "sku"}]}),
        at(START),
    )
    .unwrap();
    stack.api.ingest.apply(&added, at(START)).await.unwrap().into_result().unwrap();
    let message = MessageRecord {
        message_id: MessageRecord::id_for("cart-guest", 0, Channel::Email),
        cart_id: "cart-guest".into(),
        customer_key: CustomerKey::Guest("cart-guest".into()),
        campaign_id: "default".into(),
        step: 0,
        channel: Channel::Email,
        decided_at: at(START),
        status: MessageStatus::Sent { provider_message_id: "ses-0001".into(), at: at(START) },
        engagement: Default::default(),
        variant: None,
    };
    stack.db.create_message(&message).await.unwrap();
    let outcome = stack
        .feedback
        .record(&feedback(&message.message_id, FeedbackKind::Bounced { permanent: true }, at(START)))
        .await
        .unwrap();
    assert_eq!(outcome, FeedbackOutcome::Recorded { consent_withdrawn_for: None });
    assert_eq!(stack.db.get_customer(&"cart:cart-guest".into()).await.unwrap(), None);
    let bounced = lines(&stack, "cart-guest", "bounced").await;
    assert!(bounced.len() == 1 && bounced[0].message.contains("guest cart"), "{bounced:?}");
    let cart = stack.db.get_cart(&"cart-guest".into()).await.unwrap().unwrap().cart();
    assert_eq!(cart.contact.consents.unwrap().email, Some(false), "the guest's address gets no more email");
    let newest = cart.consent_history.last().expect("the guest cart's history");
    assert_eq!((newest.granted, newest.source), (false, ConsentSource::Bounce));
    let again = stack
        .feedback
        .record(&feedback(&message.message_id, FeedbackKind::Bounced { permanent: true }, at(START)))
        .await
        .unwrap();
    assert_eq!(again, FeedbackOutcome::Duplicate);
}

#[tokio::test]
async fn given_feedback_for_an_unknown_message_when_recorded_then_it_is_acknowledged_and_nothing_is_written() {
    let stack = LocalStack::new(at(START));
    let event = feedback("m_not_ours", FeedbackKind::Complained, at(START));
    assert_eq!(stack.feedback.record(&event).await.unwrap(), FeedbackOutcome::UnknownMessage);
    assert_eq!(
        stack.feedback.record(&event).await.unwrap(),
        FeedbackOutcome::UnknownMessage,
        "no dedupe record was written"
    );
}

/// GIVEN a send recorded `unknown` (the provider's answer was lost)
/// WHEN the provider's delivery report for it arrives, then an open
/// THEN the message is settled `sent` with the provider's id, once, with one
/// line saying how it was learnt.
#[tokio::test]
async fn given_a_send_recorded_unknown_when_its_delivery_report_arrives_then_it_is_reconciled_to_sent_once() {
    let (stack, first) = first_email_sent().await;
    let lost = MessageStatus::Unknown { reason: "timed out after the request was sent".into(), at: at(START) };
    stack.db.set_message_status(&first, &lost).await.unwrap();
    let sent_lines_before = lines(&stack, "cart-1", "sent").await.len();

    let delivered = feedback(first.as_str(), FeedbackKind::Delivered, at(START) + Duration::minutes(1));
    stack.feedback.record(&delivered).await.unwrap();
    let opened = feedback(first.as_str(), FeedbackKind::Opened, at(START) + Duration::minutes(9));
    stack.feedback.record(&opened).await.unwrap();

    let status = stack.db.get_message(&first).await.unwrap().unwrap().status;
    // The send time stays the attempt's; the provider's id comes from the report.
    assert_eq!(status, MessageStatus::Sent { provider_message_id: "ses-0001".into(), at: at(START) });
    let sent_lines = lines(&stack, "cart-1", "sent").await;
    assert_eq!(sent_lines.len(), sent_lines_before + 1, "{sent_lines:?}");
    let line = sent_lines.last().unwrap();
    assert!(line.message.contains("outcome was unknown") && line.message.contains("delivery report"), "{line:?}");
    assert_eq!(line.details["reconciled_from"], "unknown");
}

/// A feedback-queue record like `events/ses/open.json`'s, with its SES event
/// replaced.
fn record_with(id: &str, ses: Option<&Value>, raw_body: Option<&str>) -> aws_lambda_events::sqs::SqsMessage {
    let mut record = sample_as::<SqsEvent>("ses/open.json").records.remove(0);
    record.message_id = Some(id.into());
    let mut envelope: Value = serde_json::from_str(record.body.as_deref().unwrap()).unwrap();
    if let Some(ses) = ses {
        envelope["Message"] = json!(ses.to_string());
    }
    record.body = Some(raw_body.map(str::to_owned).unwrap_or_else(|| envelope.to_string()));
    record
}

#[tokio::test]
async fn given_a_batch_with_a_tracked_event_an_untracked_type_and_a_malformed_record_when_handled_then_only_the_malformed_one_fails(
) {
    let (stack, first) = first_email_sent().await;
    let sample: SqsEvent = sample_as("ses/open.json");
    let envelope: Value = serde_json::from_str(sample.records[0].body.as_deref().unwrap()).unwrap();
    let mut open: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    open["mail"]["tags"]["cartback_message_id"] = json!([first]);
    let mut delay = open.clone();
    delay["eventType"] = json!("DeliveryDelay");
    let event = SqsEvent {
        records: vec![
            record_with("good", Some(&open), None),
            record_with("untracked", Some(&delay), None),
            record_with("malformed", None, Some("{\"Type\":\"Notification\",\"Message\":\"not json\"}")),
        ],
    };
    let response = handlers::feedback(&stack.feedback, event).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["malformed"]);
    let opened = at(open["open"]["timestamp"].as_str().unwrap());
    let record = stack.db.get_message(&first).await.unwrap().unwrap();
    assert_eq!(record.engagement.tally(EngagementLabel::Open).map(|t| t.first_at), Some(opened));
}

// ------------------------------------------------- machine opens and clicks

/// A browser's user agent (Safari on an iPhone).
const BROWSER: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 \
                       (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
/// Microsoft Defender for Office 365 Safe Links, following every link of a delivered message.
const SAFE_LINKS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                          BingPreview/1.0b";

/// Follows the restore link of `message_id` with `user_agent`, as
/// `GET /r/{token}` on the stack's HTTP application.
async fn click(stack: &LocalStack, message_id: &MessageId, user_agent: Option<&str>) -> u16 {
    use tower::ServiceExt;
    let claims = cartback_core::signing::LinkClaims {
        message_id: message_id.clone(),
        cart_id: "cart-1".into(),
        target: "https://shop.example.com/cart/restore?cart=cart-1".into(),
        expires: stack_now(stack).timestamp() + 86_400,
    };
    let token = cartback_core::signing::sign_link(&stack.api.settings.secret, &claims);
    let mut request = axum::http::Request::get(format!("/r/{token}"));
    if let Some(user_agent) = user_agent {
        request = request.header("user-agent", user_agent);
    }
    let response = stack.app.clone().oneshot(request.body(axum::body::Body::empty()).unwrap()).await.unwrap();
    response.status().as_u16()
}

/// The step-two decision once its timer fires.
async fn second_step(stack: &LocalStack) -> (String, usize) {
    match fire_next_timer(stack).await {
        CheckOutcome::Decided { decision, sent } => (decision.reason().code.as_str().to_owned(), sent.len()),
        other => panic!("expected a decision, got {other:?}"),
    }
}

/// GIVEN the first email went out WHEN SES reports it opened (Apple Mail
/// Privacy Protection fetches every image, so an open proves nothing) THEN
/// the second step still goes out: the default campaign does not count opens.
#[tokio::test]
async fn given_an_ses_open_when_the_second_step_comes_due_then_the_follow_up_still_goes_out() {
    let (stack, first) = first_email_sent().await;
    let opened = stack_now(&stack) + Duration::minutes(12);
    stack.feedback.record(&feedback(&first, FeedbackKind::Opened, opened)).await.unwrap();
    assert_eq!(lines(&stack, "cart-1", "open").await.len(), 1, "the open is recorded on the timeline");
    assert_eq!(second_step(&stack).await.1, 1, "step two goes out");
}

/// GIVEN the first email went out WHEN a link scanner (Safe Links) follows
/// its link an hour later THEN the second step still goes out, and the click
/// is on the timeline as a suspected scanner click.
#[tokio::test]
async fn given_a_click_from_a_link_scanner_when_the_second_step_comes_due_then_the_follow_up_still_goes_out() {
    let (stack, first) = first_email_sent().await;
    stack.clock.set(stack_now(&stack) + Duration::hours(1));
    assert_eq!(click(&stack, &first, Some(SAFE_LINKS)).await, 302, "the link still works for a scanner");
    assert_eq!(lines(&stack, "cart-1", "scanner_click").await.len(), 1);
    assert_eq!(second_step(&stack).await.1, 1, "step two goes out");
}

/// GIVEN the first email went out WHEN its link is followed two seconds
/// after the send, by a browser-looking client (no person reads that fast:
/// a mail gateway checking links) THEN the second step still goes out.
#[tokio::test]
async fn given_a_click_seconds_after_the_send_when_the_second_step_comes_due_then_the_follow_up_still_goes_out() {
    let (stack, first) = first_email_sent().await;
    stack.clock.set(stack_now(&stack) + Duration::seconds(2));
    assert_eq!(click(&stack, &first, Some(BROWSER)).await, 302);
    assert_eq!(lines(&stack, "cart-1", "scanner_click").await.len(), 1);
    assert_eq!(second_step(&stack).await.1, 1, "step two goes out");
}

/// GIVEN the first email went out WHEN a person clicks its link from a
/// browser an hour later THEN the checker stops for engagement.
#[tokio::test]
async fn given_a_human_click_when_the_second_step_comes_due_then_the_checker_stops_for_engagement() {
    let (stack, first) = first_email_sent().await;
    stack.clock.set(stack_now(&stack) + Duration::hours(1));
    assert_eq!(click(&stack, &first, Some(BROWSER)).await, 302);
    assert_eq!(lines(&stack, "cart-1", "click").await.len(), 1);
    assert_eq!(second_step(&stack).await, ("engaged".to_owned(), 0));
}

/// GIVEN the first email went out WHEN SES reports three opens, one of them
/// by Apple's privacy proxy THEN each is counted under its label, only the
/// first of each label is on the timeline, and repeats answer `Duplicate`.
#[tokio::test]
async fn given_repeated_ses_opens_when_recorded_then_they_are_counted_per_label_with_one_line_each() {
    let (stack, first) = first_email_sent().await;
    let sent = stack_now(&stack);
    let open = |minutes: i64, user_agent: &str| FeedbackEvent {
        user_agent: Some(user_agent.into()),
        ..feedback(&first, FeedbackKind::Opened, sent + Duration::minutes(minutes))
    };
    let outcomes = [
        stack.feedback.record(&open(1, "Mozilla/5.0")).await.unwrap(),
        stack.feedback.record(&open(30, BROWSER)).await.unwrap(),
        stack.feedback.record(&open(90, BROWSER)).await.unwrap(),
    ];
    let recorded = FeedbackOutcome::Recorded { consent_withdrawn_for: None };
    assert_eq!(outcomes, [recorded.clone(), recorded, FeedbackOutcome::Duplicate]);
    let record = stack.db.get_message(&first).await.unwrap().unwrap();
    let tallies: Vec<_> = record.engagement.iter().map(|(label, t)| (label.as_str(), t.count)).collect();
    assert_eq!(tallies, [("open", 2), ("machine_open", 1)]);
    let machine = lines(&stack, "cart-1", "machine_open").await;
    assert_eq!((machine.len(), lines(&stack, "cart-1", "open").await.len()), (1, 1));
    assert_eq!(machine[0].details["reason"], "privacy_proxy");
}
