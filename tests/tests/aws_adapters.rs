//! Each AWS adapter against moto server, over HTTP, with the real SDK.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use cartback_aws::dynamo::{DynamoCampaignStore, DynamoStateStore};
use cartback_aws::scheduler::{schedule_name, EventBridgeScheduler, FLEXIBLE_WINDOW_MINUTES};
use cartback_aws::ses::SesSender;
use cartback_aws::sns::{SnsPushSender, SnsSmsSender};
use cartback_aws::sqs::SqsJobQueue;
use cartback_aws::{handlers, wiring};
use cartback_core::campaign::Campaign;
use cartback_core::consent::ConsentSource;
use cartback_core::customer::Customer;
use cartback_core::engagement::EngagementLabel;
use cartback_core::event::{validate_event, PushPlatform};
use cartback_core::ids::CustomerKey;
use cartback_core::message::{Channel, MessageJob, MessageRecord, MessageStatus, Outgoing};
use cartback_core::ports::{
    CampaignStore, CartRecord, CartStore, Claim, CommitOutcome, CreateOutcome, CustomerStore, EventCommit, EventLog,
    JobQueue, MessageStore, SaveOutcome, Scheduler, SendError, Sender, Timeline, TimelineEntry, TimerPayload,
};
use cartback_core::ports::{PortError, TimelineKind};
use cartback_core::service::{Delivery, DeliveryOutcome};
use cartback_tests::moto::{Moto, Stack, TestClock};

fn t0() -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

async fn stack() -> Stack {
    Stack::create(Moto::global().clients().await, 3).await
}

fn store(stack: &Stack, clock: Arc<TestClock>) -> DynamoStateStore {
    DynamoStateStore::new(stack.clients.dynamodb.clone(), &stack.state_table, Duration::days(90), clock)
}

fn add_to_cart(event_id: &str, cart_id: &str, at: DateTime<Utc>) -> cartback_core::event::Event {
    validate_event(
        &json!({ "event_id": event_id, "type": "add_to_cart", "occurred_at": at, "cart_id": cart_id, "customer_id": "cust-1", "currency": "EUR",
                 "customer": { "email": "ana@example.com", "consents": { "email": true } },
                 "items": [{ "item_id": "sku-1", "item_name": "Blue mug", "price": "9.50", "quantity": 1 }] }),
        at,
    )
    .unwrap()
}

fn commit_for(event: &cartback_core::event::Event, cart: CartRecord, customer_version: u64) -> EventCommit {
    let mut cart = cart;
    cart.events.push(event.clone());
    let mut customer = Customer::new("cust-1");
    customer.apply(event);
    EventCommit {
        event_id: event.event_id.clone(),
        received_at: event.occurred_at,
        cart: Some(cart),
        customer: Some((customer, customer_version)),
        timeline: Some(TimelineEntry {
            at: event.occurred_at,
            kind: TimelineKind::Event,
            code: "add_to_cart".into(),
            message: "added".into(),
            details: json!({}),
        }),
    }
}

fn message(cart_id: &str, customer_key: &str, decided_at: DateTime<Utc>) -> MessageRecord {
    MessageRecord {
        message_id: MessageRecord::id_for(cart_id, 0, Channel::Email),
        cart_id: cart_id.into(),
        customer_key: CustomerKey::Customer(customer_key.into()),
        campaign_id: "default".into(),
        step: 0,
        channel: Channel::Email,
        decided_at,
        status: MessageStatus::Queued,
        engagement: Default::default(),
        variant: None,
    }
}

fn email_job(record: &MessageRecord, to: &str) -> MessageJob {
    MessageJob {
        message_id: record.message_id.clone(),
        cart_id: record.cart_id.clone(),
        channel: Channel::Email,
        outgoing: Outgoing::Email {
            to: to.into(),
            subject: "Your Blue mug is waiting".into(),
            text: "Blue mug x1".into(),
            html: "<p>Blue mug x1</p>".into(),
            unsubscribe: None,
        },
        voucher: None,
    }
}

#[tokio::test]
async fn given_an_accepted_event_when_the_same_event_id_is_committed_again_then_it_is_a_duplicate_and_nothing_changes()
{
    let stack = stack().await;
    let store = store(&stack, TestClock::new(t0()));
    let event = add_to_cart("e-1", "c-1", t0());
    assert_eq!(
        store.commit_event(commit_for(&event, CartRecord::new("c-1", t0()), 0)).await.unwrap(),
        CommitOutcome::Applied
    );
    let stored = store.get_cart(&"c-1".into()).await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.cart().items[0].item_name.as_deref(), Some("Blue mug"));

    // Replayed with a fresh, otherwise valid write: the dedupe condition wins.
    let replay = commit_for(&event, stored.clone(), 1);
    assert_eq!(store.commit_event(replay).await.unwrap(), CommitOutcome::Duplicate);
    let after = store.get_cart(&"c-1".into()).await.unwrap().unwrap();
    assert_eq!(after, stored, "a duplicate writes nothing");
    assert_eq!(store.timeline(&"c-1".into()).await.unwrap().len(), 1);
    assert_eq!(store.get_customer(&"cust-1".into()).await.unwrap().unwrap().1, 1);
}

#[tokio::test]
async fn given_a_cart_changed_by_another_writer_when_a_stale_version_is_committed_then_it_is_a_conflict_and_nothing_is_written(
) {
    let stack = stack().await;
    let store = store(&stack, TestClock::new(t0()));
    let first = add_to_cart("e-1", "c-1", t0());
    store.commit_event(commit_for(&first, CartRecord::new("c-1", t0()), 0)).await.unwrap();

    // A second writer that read before the first commit (version 0).
    let second = add_to_cart("e-2", "c-1", t0() + Duration::minutes(1));
    assert_eq!(
        store.commit_event(commit_for(&second, CartRecord::new("c-1", t0()), 1)).await.unwrap(),
        CommitOutcome::Conflict
    );
    // Cart current, customer stale: still a conflict.
    let current = store.get_cart(&"c-1".into()).await.unwrap().unwrap();
    assert_eq!(store.commit_event(commit_for(&second, current.clone(), 0)).await.unwrap(), CommitOutcome::Conflict);
    assert_eq!(store.get_cart(&"c-1".into()).await.unwrap().unwrap(), current);
    // The dedupe record was rolled back with the rest: the event can be retried.
    assert_eq!(store.commit_event(commit_for(&second, current, 1)).await.unwrap(), CommitOutcome::Applied);
    assert_eq!(store.get_cart(&"c-1".into()).await.unwrap().unwrap().version, 2);

    // save_cart is conditional too.
    let mut stale = store.get_cart(&"c-1".into()).await.unwrap().unwrap();
    stale.version = 1;
    assert_eq!(store.save_cart(&stale).await.unwrap(), SaveOutcome::Conflict);
    stale.version = 2;
    assert_eq!(store.save_cart(&stale).await.unwrap(), SaveOutcome::Saved);
    assert_eq!(store.get_cart(&"c-1".into()).await.unwrap().unwrap().version, 3);
}

#[tokio::test]
async fn given_one_queued_message_when_eight_senders_claim_it_concurrently_then_exactly_one_holds_it() {
    let stack = stack().await;
    let store = Arc::new(store(&stack, TestClock::new(t0())));
    let record = message("c-1", "cust-1", t0());
    assert_eq!(store.create_message(&record).await.unwrap(), CreateOutcome::Created);
    assert_eq!(
        store.create_message(&record).await.unwrap(),
        CreateOutcome::AlreadyExists,
        "the second create is refused"
    );

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let id = record.message_id.clone();
        tasks.push(tokio::spawn(
            async move { store.claim_message(&id, t0(), t0() + Duration::minutes(5)).await.unwrap() },
        ));
    }
    let mut claimed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Claim::Claimed(r) => {
                claimed += 1;
                assert!(matches!(r.status, MessageStatus::Sending { attempts: 1, .. }));
            }
            Claim::InFlight => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(claimed, 1);
    // After the lease, a new claim starts afresh (attempt 2): the first
    // holder never marked a provider call. Once sent, never again.
    assert!(matches!(
        store
            .claim_message(&record.message_id, t0() + Duration::minutes(6), t0() + Duration::minutes(11))
            .await
            .unwrap(),
        Claim::Claimed(MessageRecord {
            status: MessageStatus::Sending { attempts: 2, provider_called: false, .. },
            ..
        })
    ));
    store
        .set_message_status(&record.message_id, &MessageStatus::Sent { provider_message_id: "p-1".into(), at: t0() })
        .await
        .unwrap();
    assert_eq!(
        store.claim_message(&record.message_id, t0() + Duration::hours(1), t0() + Duration::hours(2)).await.unwrap(),
        Claim::AlreadySent
    );
    assert_eq!(store.claim_message(&"m_missing".into(), t0(), t0()).await.unwrap(), Claim::NotFound);
}

#[tokio::test]
async fn given_writes_of_every_kind_when_read_raw_then_each_item_expires_retention_after_its_last_write() {
    let stack = stack().await;
    let clock = TestClock::new(t0());
    let store = store(&stack, clock.clone());
    let event = add_to_cart("e-1", "c-1", t0());
    store.commit_event(commit_for(&event, CartRecord::new("c-1", t0()), 0)).await.unwrap();
    clock.advance(Duration::days(2));
    let record = message("c-1", "cust-1", clock.now_utc());
    store.create_message(&record).await.unwrap();

    let ttl = stack.clients.dynamodb.describe_time_to_live().table_name(&stack.state_table).send().await.unwrap();
    assert_eq!(ttl.time_to_live_description.unwrap().attribute_name.as_deref(), Some("expires_at"));

    let items = stack.clients.dynamodb.scan().table_name(&stack.state_table).send().await.unwrap().items.unwrap();
    let expected_first = (t0() + Duration::days(90)).timestamp().to_string();
    let expected_msg = (t0() + Duration::days(92)).timestamp().to_string();
    let mut kinds = Vec::new();
    for item in &items {
        let pk = item["pk"].as_s().unwrap().clone();
        let sk = item["sk"].as_s().unwrap().clone();
        let expires = item
            .get("expires_at")
            .and_then(|v| v.as_n().ok())
            .cloned()
            .unwrap_or_else(|| panic!("{pk}/{sk} has no expires_at"));
        let want = if pk.starts_with("MSG#") { &expected_msg } else { &expected_first };
        assert_eq!(&expires, want, "{pk}/{sk}");
        kinds.push(format!("{}/{}", pk.split('#').next().unwrap(), sk.split('#').next().unwrap()));
    }
    kinds.sort();
    assert_eq!(kinds, ["CART/STATE", "CART/TL", "CUST/PROFILE", "EVENT/EVENT", "MSG/MSG"]);
    // A later write pushes the message's expiry on.
    clock.advance(Duration::days(1));
    store.record_engagement(&record.message_id, EngagementLabel::HumanClick, clock.now_utc()).await.unwrap();
    let key = [
        ("pk".to_owned(), AttributeValue::S(format!("MSG#{}", record.message_id))),
        ("sk".to_owned(), AttributeValue::S("MSG".into())),
    ];
    let item = stack
        .clients
        .dynamodb
        .get_item()
        .table_name(&stack.state_table)
        .set_key(Some(key.into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["expires_at"].as_n().unwrap(), &(t0() + Duration::days(93)).timestamp().to_string());
}

trait NowUtc {
    fn now_utc(&self) -> DateTime<Utc>;
}
impl NowUtc for Arc<TestClock> {
    fn now_utc(&self) -> DateTime<Utc> {
        cartback_core::ports::Clock::now(self.as_ref())
    }
}

#[tokio::test]
async fn given_messages_and_timeline_entries_when_queried_then_history_comes_from_the_index_and_timeline_is_oldest_first(
) {
    let stack = stack().await;
    let store = store(&stack, TestClock::new(t0()));
    for (i, cart) in ["c-1", "c-2", "c-3"].iter().enumerate() {
        store.create_message(&message(cart, "cust-1", t0() + Duration::days(i as i64))).await.unwrap();
    }
    store.create_message(&message("c-9", "cust-2", t0())).await.unwrap();
    let since =
        store.customer_messages(&CustomerKey::Customer("cust-1".into()), t0() + Duration::hours(12)).await.unwrap();
    let mut carts: Vec<_> = since.iter().map(|m| m.cart_id.as_str()).collect();
    carts.sort();
    assert_eq!(carts, ["c-2", "c-3"]);

    for minutes in [5, 1, 3] {
        let at = t0() + Duration::minutes(minutes);
        store
            .append_timeline(
                &"c-1".into(),
                &TimelineEntry {
                    at,
                    kind: TimelineKind::Decision,
                    code: format!("m{minutes}"),
                    message: String::new(),
                    details: serde_json::Value::Null,
                },
            )
            .await
            .unwrap();
    }
    let codes: Vec<_> = store.timeline(&"c-1".into()).await.unwrap().into_iter().map(|e| e.code).collect();
    assert_eq!(codes, ["m1", "m3", "m5"]);
}

#[tokio::test]
async fn given_campaigns_when_put_and_listed_then_they_round_trip_through_the_config_table() {
    let stack = stack().await;
    let campaigns = DynamoCampaignStore::new(stack.clients.dynamodb.clone(), &stack.config_table);
    assert!(campaigns.list().await.unwrap().is_empty());
    let mut campaign = Campaign::default_campaign();
    campaigns.put(&campaign).await.unwrap();
    campaign.name = "Renamed".into();
    campaigns.put(&campaign).await.unwrap();
    let mut other = Campaign::default_campaign();
    other.id = "vip".into();
    campaigns.put(&other).await.unwrap();
    let listed = campaigns.list().await.unwrap();
    assert_eq!(listed, vec![campaign, other]);
}

#[tokio::test]
async fn given_a_timer_when_armed_twice_then_one_one_time_schedule_targets_the_checker_with_the_payload() {
    let stack = stack().await;
    let scheduler = EventBridgeScheduler::new(stack.clients.scheduler.clone(), stack.timer_config().scheduler);
    let timer =
        TimerPayload { cart_id: "cart/with odd#chars".into(), due_at: "2026-11-23T10:30:00.500Z".parse().unwrap() };
    scheduler.arm(&timer).await.unwrap();
    scheduler.arm(&timer).await.unwrap();

    let listed = stack.clients.scheduler.list_schedules().group_name(&stack.schedule_group).send().await.unwrap();
    assert_eq!(listed.schedules.len(), 1);
    let got = stack
        .clients
        .scheduler
        .get_schedule()
        .name(schedule_name(&timer))
        .group_name(&stack.schedule_group)
        .send()
        .await
        .unwrap();
    assert_eq!(got.schedule_expression.as_deref(), Some("at(2026-11-23T10:30:01)"));
    assert_eq!(got.schedule_expression_timezone.as_deref(), Some("UTC"));
    assert_eq!(got.action_after_completion.map(|a| a.as_str().to_owned()).as_deref(), Some("DELETE"));
    let window = got.flexible_time_window.unwrap();
    assert_eq!((window.mode.as_str(), window.maximum_window_in_minutes), ("FLEXIBLE", Some(FLEXIBLE_WINDOW_MINUTES)));
    let target = got.target.unwrap();
    assert_eq!(target.arn, cartback_tests::moto::CHECKER_ARN);
    assert_eq!(target.role_arn, cartback_tests::moto::SCHEDULER_ROLE_ARN);
    let payload: TimerPayload = serde_json::from_str(target.input.as_deref().unwrap()).unwrap();
    assert_eq!(payload, timer);
}

#[tokio::test]
async fn given_a_batch_with_a_good_a_busy_and_a_malformed_record_when_handled_then_only_the_bad_ones_fail_and_end_in_the_dead_letter_queue(
) {
    let stack = stack().await;
    let clock = TestClock::new(t0());
    let store = Arc::new(store(&stack, clock.clone()));
    let queue = SqsJobQueue::new(stack.clients.sqs.clone(), stack.checker_config().queues);
    let delivery = wiring::email_delivery(&stack.clients, &stack.email_config(), clock.clone());

    let good = message("c-good", "cust-1", t0());
    let busy = message("c-busy", "cust-2", t0());
    for r in [&good, &busy] {
        store.create_message(r).await.unwrap();
        queue.enqueue(&email_job(r, "ana@example.com")).await.unwrap();
    }
    // Another sender holds the busy one far into the future.
    store.claim_message(&busy.message_id, t0(), t0() + Duration::days(1)).await.unwrap();
    let email = &stack.queues["email"];
    stack.clients.sqs.send_message().queue_url(&email.url).message_body("{ not a job").send().await.unwrap();

    // maxReceiveCount is 3: three deliveries, then the redrive takes over.
    let mut first_failures = None;
    for _ in 0..6 {
        let event = stack.receive("email").await;
        if event.records.is_empty() {
            break;
        }
        let response = handlers::sender(&delivery, event.clone()).await;
        first_failures.get_or_insert(response.batch_item_failures.len());
        stack.settle("email", &event, &response).await;
    }
    assert_eq!(first_failures, Some(2), "one busy + one malformed record fail; the good one does not");
    assert!(matches!(store.get_message(&good.message_id).await.unwrap().unwrap().status, MessageStatus::Sent { .. }));
    assert_eq!(stack.queue_depth(&email.url).await, 0);
    let dead = stack
        .clients
        .sqs
        .receive_message()
        .queue_url(&email.dlq_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    let mut bodies: Vec<String> = dead.iter().map(|m| m.body.clone().unwrap_or_default()).collect();
    bodies.sort();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(bodies.iter().any(|b| b == "{ not a job"));
    assert!(bodies.iter().any(|b| b.contains(busy.message_id.as_str())));
}

#[tokio::test]
async fn given_a_verified_sender_when_an_email_job_is_sent_then_ses_records_the_raw_mime_message() {
    let stack = stack().await;
    let sender = SesSender::new(stack.clients.ses.clone(), format!("Shop <{}>", stack.sender), "cartback");
    let record = message("c-ses", "cust-1", t0());
    let id = sender.send(&email_job(&record, "ana@example.com"), t0()).await.unwrap();
    assert!(!id.is_empty());
    let raw = stack.sent_emails().into_iter().next().expect("raw message recorded");
    let mime = raw["raw_data"].as_str().unwrap();
    for needle in [
        "Subject: Your Blue mug is waiting",
        "multipart/alternative",
        &format!("Message-ID: <{}@cartback>", record.message_id),
        "To: ana@example.com",
    ] {
        assert!(mime.contains(needle), "missing {needle} in {mime}");
    }
    assert!(raw["destinations"].as_array().unwrap().iter().all(|d| d == "ana@example.com"), "{}", raw["destinations"]);
}

#[tokio::test]
async fn given_an_sms_job_when_sent_then_sns_records_a_publish_to_the_number() {
    let stack = stack().await;
    let sender = SnsSmsSender::new(stack.clients.sns.clone(), Some("Shop".into()));
    let number = format!("+3361234{:04}", std::process::id() % 10000);
    let job = MessageJob {
        message_id: "m_sms".into(),
        cart_id: "c-1".into(),
        channel: Channel::Sms,
        outgoing: Outgoing::Sms { to: number.as_str().into(), body: "Your cart is waiting".into() },
        voucher: None,
    };
    let id = sender.send(&job, t0()).await.unwrap();
    let data = Moto::global().data();
    let sms = data["sns"]["SMS"].as_array().unwrap();
    assert!(
        sms.iter().any(|m| m["message_id"] == json!(id)
            && m["phone_number"] == json!(number)
            && m["message"] == json!("Your cart is waiting")),
        "{sms:?}"
    );
    // A number that is not E.164 is refused for good, without calling SNS.
    let bad = MessageJob { outgoing: Outgoing::Sms { to: "0612".into(), body: "x".into() }, ..job };
    assert!(matches!(sender.send(&bad, t0()).await, Err(SendError::Permanent(_))));
}

#[tokio::test]
async fn given_a_push_token_when_sent_twice_then_one_platform_endpoint_receives_both_json_payloads() {
    let stack = stack().await;
    let sender =
        SnsPushSender::new(stack.clients.sns.clone(), Some(stack.apns_arn.clone()), Some(stack.fcm_arn.clone()));
    let token = cartback_tests::moto::unique("fcm-token");
    let job = |id: &str| MessageJob {
        message_id: id.into(),
        cart_id: "c-1".into(),
        channel: Channel::Push,
        outgoing: Outgoing::Push {
            platform: PushPlatform::Fcm,
            token: token.as_str().into(),
            title: "Your cart".into(),
            body: "Blue mug is waiting".into(),
            url: "https://cb.example/r/x".into(),
        },
        voucher: None,
    };
    sender.send(&job("m_1"), t0()).await.unwrap();
    sender.send(&job("m_2"), t0()).await.unwrap();
    let endpoints = stack
        .clients
        .sns
        .list_endpoints_by_platform_application()
        .platform_application_arn(&stack.fcm_arn)
        .send()
        .await
        .unwrap()
        .endpoints
        .unwrap();
    assert_eq!(endpoints.len(), 1, "CreatePlatformEndpoint is idempotent per token");
    let data = Moto::global().data();
    let endpoint = data["sns"]["PlatformEndpoint"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["token"] == json!(token))
        .unwrap()
        .clone();
    let messages: Vec<serde_json::Value> = endpoint["messages"]
        .as_object()
        .unwrap()
        .values()
        .map(|m| serde_json::from_str(m.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(messages.len(), 2);
    let gcm: serde_json::Value = serde_json::from_str(messages[0]["GCM"].as_str().unwrap()).unwrap();
    assert_eq!(gcm["notification"]["title"], "Your cart");
    assert_eq!(gcm["data"]["url"], "https://cb.example/r/x");
    // The app reads the message id beside the deep link, to report an open
    // to `POST /v1/engagement`; APNs carries both beside `aps`.
    let mut ids: Vec<String> = messages
        .iter()
        .map(|m| serde_json::from_str::<serde_json::Value>(m["GCM"].as_str().unwrap()).unwrap())
        .map(|gcm| gcm["data"]["message_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["m_1", "m_2"]);
    let apns: serde_json::Value = serde_json::from_str(messages[0]["APNS"].as_str().unwrap()).unwrap();
    assert_eq!(apns["aps"]["alert"]["title"], "Your cart");
    assert_eq!(apns["url"], "https://cb.example/r/x");
    assert_eq!(apns["message_id"], gcm["data"]["message_id"]);
    // No APNS application configured: refused for good, not retried.
    let no_apns = SnsPushSender::new(stack.clients.sns.clone(), None, Some(stack.fcm_arn.clone()));
    let apns = MessageJob {
        outgoing: Outgoing::Push {
            platform: PushPlatform::Apns,
            token: "t".into(),
            title: "t".into(),
            body: "b".into(),
            url: "u".into(),
        },
        ..job("m_3")
    };
    assert!(matches!(no_apns.send(&apns, t0()).await, Err(SendError::Permanent(_))));
}

#[tokio::test]
async fn given_a_delivery_for_a_cart_bought_meanwhile_when_delivered_then_it_is_cancelled_not_sent() {
    let stack = stack().await;
    let clock = TestClock::new(t0());
    let store = Arc::new(store(&stack, clock.clone()));
    let add = add_to_cart("e-1", "c-1", t0());
    store.commit_event(commit_for(&add, CartRecord::new("c-1", t0()), 0)).await.unwrap();
    let mut cart = store.get_cart(&"c-1".into()).await.unwrap().unwrap();
    cart.events.push(validate_event(&json!({ "event_id": "e-2", "type": "purchase", "occurred_at": t0() + Duration::minutes(5), "cart_id": "c-1", "order_id": "o-1" }), t0() + Duration::minutes(5)).unwrap());
    assert_eq!(store.save_cart(&cart).await.unwrap(), SaveOutcome::Saved);
    let record = message("c-1", "cust-1", t0());
    store.create_message(&record).await.unwrap();
    let delivery = Delivery {
        store: store.clone(),
        sender: Arc::new(SesSender::new(stack.clients.ses.clone(), stack.sender.clone(), "cartback")),
        campaigns: wiring::campaign_cache(&stack.clients, &stack.email_config().common, clock.clone()),
        clock,
        webhook: None,
    };
    assert_eq!(
        delivery.deliver(&email_job(&record, "ana@example.com")).await.unwrap(),
        DeliveryOutcome::Skipped("purchased".into())
    );
    assert!(matches!(
        store.get_message(&record.message_id).await.unwrap().unwrap().status,
        MessageStatus::Cancelled { .. }
    ));
}

/// GIVEN an SMS decided at 11:30 in Paris, queued on SQS (the test queues
/// have a visibility timeout of 0: a failed record is back at once)
/// WHEN the sender function gets it at 21:30 in Paris (quiet hours)
/// THEN it is not sent and not dropped: the claim is handed back
/// (`queued`), the timeline says why, and the record is hidden on its
/// queue until the quiet hours end instead of coming straight back to be
/// deferred again (which would spend its receives into the dead-letter queue).
#[tokio::test]
async fn given_an_sms_reaching_the_sender_function_in_quiet_hours_when_handled_then_it_is_hidden_until_they_end() {
    let stack = stack().await;
    let clock = TestClock::new(t0());
    let store = Arc::new(store(&stack, clock.clone()));
    let add = validate_event(
        &json!({ "event_id": "e-q", "type": "add_to_cart", "occurred_at": t0(), "cart_id": "c-quiet",
                 "customer_id": "cust-1", "device": "mobile", "currency": "EUR",
                 "customer": { "phone": "+33612345678", "timezone": "Europe/Paris", "consents": { "sms": true } },
                 "items": [{ "item_id": "sku-1", "item_name": "Blue mug", "price": "9.50" }] }),
        t0(),
    )
    .unwrap();
    store.commit_event(commit_for(&add, CartRecord::new("c-quiet", t0()), 0)).await.unwrap();
    let sms = MessageRecord {
        message_id: MessageRecord::id_for("c-quiet", 0, Channel::Sms),
        channel: Channel::Sms,
        ..message("c-quiet", "cust-1", t0() + Duration::minutes(30))
    };
    store.create_message(&sms).await.unwrap();
    let job = MessageJob {
        message_id: sms.message_id.clone(),
        cart_id: "c-quiet".into(),
        channel: Channel::Sms,
        outgoing: Outgoing::Sms { to: "+33612345678".into(), body: "Your cart is waiting".into() },
        voucher: None,
    };
    SqsJobQueue::new(stack.clients.sqs.clone(), stack.checker_config().queues).enqueue(&job).await.unwrap();
    clock.set("2026-11-23T20:30:00Z".parse().unwrap());
    let delivery = wiring::sms_delivery(&stack.clients, &stack.sms_config(), clock.clone());
    let postponer = cartback_aws::sqs::Postponer::new(stack.clients.sqs.clone());

    let batch = stack.receive("sms").await;
    assert_eq!(batch.records.len(), 1);
    let response = handlers::sender_postponing(&delivery, &postponer, batch.clone()).await;
    stack.settle("sms", &batch, &response).await;

    assert_eq!(response.batch_item_failures.len(), 1, "kept on the queue, not deleted");
    assert_eq!(store.get_message(&sms.message_id).await.unwrap().unwrap().status, MessageStatus::Queued);
    let timeline = store.timeline(&"c-quiet".into()).await.unwrap();
    assert!(timeline.iter().any(|e| e.code == "quiet_hours_deferred"), "{timeline:?}");
    assert!(stack.receive("sms").await.records.is_empty(), "hidden until 08:00 in Paris, not back at once");
}

/// GIVEN a customer whose number replied STOP (moto's SNS keeps every number
/// ending in 99 on its opt-out list) and an SMS queued for their cart
/// WHEN the SMS sender function delivers it
/// THEN nothing is published, the message is rejected with the cause on the
/// timeline, and the customer's SMS consent is withdrawn with source
/// `sms_stop` (explainable, and later steps skip SMS).
#[tokio::test]
async fn given_a_number_on_the_sns_opt_out_list_when_an_sms_is_delivered_then_sms_consent_is_withdrawn_as_sms_stop() {
    let stack = stack().await;
    let clock = TestClock::new(t0());
    let store = Arc::new(store(&stack, clock.clone()));
    let number = "+33612345699";
    let add = validate_event(
        &json!({ "event_id": "e-stop", "type": "add_to_cart", "occurred_at": t0(), "cart_id": "c-stop",
                 "customer_id": "cust-1", "device": "mobile", "currency": "EUR",
                 "customer": { "phone": number, "timezone": "Europe/Paris", "consents": { "sms": true } },
                 "items": [{ "item_id": "sku-1", "item_name": "Blue mug", "price": "9.50" }] }),
        t0(),
    )
    .unwrap();
    store.commit_event(commit_for(&add, CartRecord::new("c-stop", t0()), 0)).await.unwrap();
    let sms = MessageRecord {
        message_id: MessageRecord::id_for("c-stop", 0, Channel::Sms),
        channel: Channel::Sms,
        ..message("c-stop", "cust-1", t0())
    };
    store.create_message(&sms).await.unwrap();
    let job = MessageJob {
        message_id: sms.message_id.clone(),
        cart_id: "c-stop".into(),
        channel: Channel::Sms,
        outgoing: Outgoing::Sms { to: number.into(), body: "Your cart is waiting".into() },
        voucher: None,
    };
    clock.set(t0() + Duration::minutes(30));
    let delivery = wiring::sms_delivery(&stack.clients, &stack.sms_config(), clock.clone());

    let outcome = delivery.deliver(&job).await.unwrap();

    assert!(matches!(outcome, DeliveryOutcome::Rejected(_)), "{outcome:?}");
    let published = Moto::global().data()["sns"]["SMS"].as_array().cloned().unwrap_or_default();
    assert!(published.iter().all(|m| m["phone_number"] != json!(number)), "published to an opted-out number");
    assert!(matches!(
        store.get_message(&sms.message_id).await.unwrap().unwrap().status,
        MessageStatus::Rejected { .. }
    ));
    let (customer, _) = store.get_customer(&"cust-1".into()).await.unwrap().unwrap();
    assert_eq!(customer.profile.consents.and_then(|c| c.sms), Some(false));
    let last = customer.consent_history.last().expect("a consent change");
    assert_eq!((last.channel, last.granted, last.source), (Channel::Sms, false, ConsentSource::SmsStop));
    let codes: Vec<String> = store.timeline(&"c-stop".into()).await.unwrap().into_iter().map(|e| e.code).collect();
    assert!(codes.contains(&"opted_out".to_owned()) && codes.contains(&"unsubscribed".to_owned()), "{codes:?}");
}

/// GIVEN a cart past DynamoDB's 400 KB item limit (what the ingest bounds
/// exist to prevent, written here straight through the adapter)
/// WHEN it is committed in a transaction, or saved on its own
/// THEN the adapter reports a refusal (retrying cannot help), not an outage.
#[tokio::test]
async fn given_a_cart_over_the_item_limit_when_written_then_the_store_refuses_it_for_good() {
    let stack = stack().await;
    let store = store(&stack, TestClock::new(t0()));
    let mut cart = CartRecord::new("cart-huge", t0());
    for i in 0..300 {
        let mut event = add_to_cart(&format!("big-{i}"), "cart-huge", t0());
        event.items[0].item_name = Some("x".repeat(2_000));
        cart.events.push(event);
    }
    let commit = commit_for(&add_to_cart("e-last", "cart-huge", t0()), cart.clone(), 0);

    let committed = store.commit_event(commit).await.unwrap_err();
    assert!(matches!(committed, PortError::Refused(..)), "{committed}");
    let saved = store.save_cart(&cart).await.unwrap_err();
    assert!(matches!(saved, PortError::Refused(..)), "{saved}");
}

/// A push service on this machine answering one request with `status`;
/// hands back the request's head (lower-cased header lines) once served.
fn push_service(status: &'static str) -> (String, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://127.0.0.1:{}/push/sub-1", listener.local_addr().unwrap().port());
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let (mut head, mut length) = (String::new(), 0usize);
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        reader.read_exact(&mut vec![0; length]).unwrap();
        write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        head
    });
    (endpoint, handle)
}

/// GIVEN a desktop customer with a web push subscription and consent, and a
/// web push queued for their cart, on DynamoDB
/// WHEN the push sender function delivers it and the push service answers
/// 201, or 410 (the browser unsubscribed)
/// THEN 201: it is sent, a VAPID-signed aes128gcm POST reached the service;
/// 410: the message is rejected, web push consent is withdrawn with source
/// `subscription_gone` and the timeline says so (no more web push).
#[tokio::test]
async fn given_a_web_push_when_the_push_service_accepts_or_says_gone_then_it_is_sent_or_web_push_stops() {
    for (status, gone) in [("201 Created", false), ("410 Gone", true)] {
        let stack = stack().await;
        let clock = TestClock::new(t0());
        let store = Arc::new(store(&stack, clock.clone()));
        let (endpoint, service) = push_service(status);
        let keys =
            json!({ "p256dh": cartback_webpush::VapidKey::generate().public_key(), "auth": "AAECAwQFBgcICQoLDA0ODw" });
        // Ingest takes browsers' https endpoints; the job carries the loopback one of this test's push service.
        let add = validate_event(
            &json!({ "event_id": "e-wp", "type": "add_to_cart", "occurred_at": t0(), "cart_id": "c-wp",
                     "customer_id": "cust-1", "device": "desktop", "currency": "EUR",
                     "customer": { "web_push_subscription": { "endpoint": "https://push.example/sub-1", "keys": keys },
                                   "consents": { "web_push": true } },
                     "items": [{ "item_id": "sku-1", "item_name": "Blue mug", "price": "9.50" }] }),
            t0(),
        )
        .unwrap();
        store.commit_event(commit_for(&add, CartRecord::new("c-wp", t0()), 0)).await.unwrap();
        let record = MessageRecord {
            message_id: MessageRecord::id_for("c-wp", 0, Channel::WebPush),
            channel: Channel::WebPush,
            ..message("c-wp", "cust-1", t0())
        };
        store.create_message(&record).await.unwrap();
        let subscription = json!({ "endpoint": endpoint, "keys": keys }).into();
        let job = MessageJob {
            message_id: record.message_id.clone(),
            cart_id: "c-wp".into(),
            channel: Channel::WebPush,
            outgoing: Outgoing::WebPush {
                subscription,
                title: "Your cart".into(),
                body: "Blue mug is waiting".into(),
                url: "https://shop.example/r".into(),
            },
            voucher: None,
        };
        clock.set(t0() + Duration::minutes(30));
        let web_push = cartback_webpush::WebPushSender::new(
            cartback_webpush::VapidKey::generate(),
            Some("mailto:ops@shop.example"),
            true,
        );
        let delivery =
            wiring::push_delivery_with_web_push(&stack.clients, &stack.push_config(), Some(web_push), clock.clone());

        let outcome = delivery.deliver(&job).await.unwrap();

        let head = service.join().unwrap();
        assert!(head.starts_with("post /push/sub-1 "), "{head}");
        assert!(head.contains("authorization: vapid t=") && head.contains("content-encoding: aes128gcm"), "{head}");
        let (customer, _) = store.get_customer(&"cust-1".into()).await.unwrap().unwrap();
        let codes: Vec<String> = store.timeline(&"c-wp".into()).await.unwrap().into_iter().map(|e| e.code).collect();
        if gone {
            assert!(matches!(outcome, DeliveryOutcome::Rejected(_)), "{outcome:?}");
            assert_eq!(customer.profile.consents.and_then(|c| c.web_push), Some(false));
            let last = customer.consent_history.last().expect("a consent change");
            assert_eq!(
                (last.channel, last.granted, last.source),
                (Channel::WebPush, false, ConsentSource::SubscriptionGone)
            );
            assert!(codes.contains(&"subscription_gone".to_owned()), "{codes:?}");
        } else {
            assert!(matches!(outcome, DeliveryOutcome::Sent { .. }), "{outcome:?}");
            assert_eq!(customer.profile.consents.and_then(|c| c.web_push), Some(true));
            assert!(codes.contains(&"sent".to_owned()), "{codes:?}");
        }
    }
}
