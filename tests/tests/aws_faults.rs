//! Injected AWS faults (issue 9): 1,000 carts through the AWS adapters and
//! Lambda handlers on moto while 10% of the handlers' AWS calls fail
//! (throttling, 503, and timeouts after the request was sent, so the call
//! may have taken effect). What AWS does around the handlers is emulated as
//! AWS documents it: the storefront retries a failed POST; Lambda retries an
//! asynchronous checker invocation twice and then hands it to the OnFailure
//! destination (the timer dead-letter queue), which an operator redrives;
//! SQS redelivers a failed record until `maxReceiveCount` and then moves it
//! to the dead-letter queue; the sweep runs every 5 minutes. The emulation
//! itself talks to moto without faults.
//!
//! SES's delivery reports are emulated too (moto publishes none): one per
//! email moto's SES accepted, through the feedback function.
//!
//! THEN: no accepted event is lost, no email goes out twice, every failure
//! was retried to success or is visible in a dead-letter queue, and every
//! send whose answer was lost (recorded `unknown`) is settled by its report.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use cartback_aws::clients::Clients;
use cartback_aws::{handlers, wiring};
use cartback_core::message::{Channel, MessageRecord, MessageStatus};
use cartback_core::ports::{CartStore, MessageStore, TimerPayload};
use cartback_tests::faults::FaultyHttpClient;
use cartback_tests::moto::{post_events, receive_event_hidden, response_json, Moto, Stack, TestClock};
use cartback_tests::samples::sample_as;

/// `CARTBACK_FAULT_CARTS` overrides (a quicker local run).
fn carts() -> usize {
    std::env::var("CARTBACK_FAULT_CARTS").ok().and_then(|n| n.parse().ok()).unwrap_or(1000)
}
const CARTS_PER_POST: usize = 10;
const SEED: u64 = 9;
const FAULTS_PER_MILLE: u64 = 100;
/// Handler invocations in flight at once (2-core CI; moto answers one
/// request at a time anyway, this only overlaps the SDK's backoffs).
const PARALLEL: usize = 16;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn cart_events(i: usize) -> [Value; 2] {
    [
        json!({ "event_id": format!("f-id-{i}"), "type": "identify", "occurred_at": "2026-11-23T10:00:00Z",
                "customer_id": format!("cust-{i}"),
                "customer": { "email": format!("c{i}@example.com"), "timezone": "Europe/Paris", "consents": { "email": true } } }),
        json!({ "event_id": format!("f-add-{i}"), "type": "add_to_cart", "occurred_at": "2026-11-23T10:01:00Z",
                "cart_id": format!("cart-{i}"), "customer_id": format!("cust-{i}"), "currency": "EUR",
                "items": [{ "item_id": "sku-mug", "item_name": "Stoneware mug", "price": "14.90", "quantity": 1 }] }),
    ]
}

/// Every schedule in the group (read without faults: this is the
/// emulated scheduler looking at what it must fire).
async fn all_schedules(stack: &Stack) -> Vec<(String, TimerPayload)> {
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let page = stack
            .clients
            .scheduler
            .list_schedules()
            .group_name(&stack.schedule_group)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        names.extend(page.schedules.into_iter().filter_map(|s| s.name));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    let mut timers = Vec::new();
    for name in names {
        let got =
            stack.clients.scheduler.get_schedule().name(&name).group_name(&stack.schedule_group).send().await.unwrap();
        let timer = serde_json::from_str(got.target.unwrap().input.as_deref().unwrap()).unwrap();
        timers.push((name, timer));
    }
    timers
}

#[derive(Default, Debug)]
struct Figures {
    posts: usize,
    storefront_retries: usize,
    timers_fired: usize,
    checker_retries: usize,
    timers_dead_lettered: usize,
    sweep_rearmed: usize,
    sender_batches: usize,
    sender_record_retries: usize,
    feedback_record_retries: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_10_percent_of_aws_calls_failing_when_1000_carts_go_through_then_no_event_is_lost_no_email_is_sent_twice_and_every_failure_is_retried_or_dead_lettered(
) {
    let started = std::time::Instant::now();
    if std::env::var("RUST_LOG").is_ok() {
        cartback_aws::init_logging();
    }
    let moto = Moto::global();
    let stack = Stack::create(moto.clients().await, 5).await;
    stack.treat_everyone().await;
    let (faulty_sdk, injector) =
        FaultyHttpClient::wrap(&Moto::sdk_config_for(&moto.endpoint).await, SEED, FAULTS_PER_MILLE);
    let faulty = Clients::new(&faulty_sdk);
    let clock = TestClock::new(at("2026-11-23T10:03:00Z"));
    let secret = stack.secret();
    let app = Arc::new(cartback_http::router(Arc::new(wiring::api(
        &faulty,
        &stack.ingest_config(),
        secret.clone(),
        clock.clone(),
    ))));
    let checker = Arc::new(wiring::checker(&faulty, &stack.checker_config(), secret.clone(), clock.clone()));
    let sweep = Arc::new(wiring::timer_sweep(&faulty, &stack.checker_config(), clock.clone()));
    let delivery = Arc::new(wiring::email_delivery(&faulty, &stack.email_config(), clock.clone()));
    let mut figures = Figures::default();

    // 1. Ingest: the storefront posts 10 carts per request and retries any
    //    request that is not answered 200 with every event stored. (The
    //    lambda_http adapter's future is not Send: these run on one thread.)
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let mut posts = JoinSet::new();
            for chunk in (0..carts()).collect::<Vec<_>>().chunks(CARTS_PER_POST) {
                let events: Vec<Value> = chunk.iter().flat_map(|&i| cart_events(i)).collect();
                let (app, secret, clock) = (app.clone(), secret.clone(), clock.clone());
                posts.spawn_local(async move {
                    let body = json!({ "events": events });
                    let mut last = String::new();
                    for attempt in 1..=10 {
                        let now = cartback_core::ports::Clock::now(clock.as_ref());
                        let response = handlers::ingest(&app, post_events(&body, &secret, now)).await;
                        if response.status_code == 200 {
                            let answer = response_json(&response);
                            let stored = answer["accepted"].as_u64().unwrap() + answer["duplicates"].as_u64().unwrap();
                            if stored as usize == events.len() {
                                return attempt;
                            }
                        }
                        last = format!("{} {:?}", response.status_code, response.body);
                    }
                    panic!("a batch was never stored in 10 attempts; last answer: {last}");
                });
                while posts.len() >= PARALLEL {
                    figures.storefront_retries += posts.join_next().await.unwrap().unwrap() - 1;
                }
                figures.posts += 1;
            }
            while let Some(attempts) = posts.join_next().await {
                figures.storefront_retries += attempts.unwrap() - 1;
            }
        })
        .await;

    // 2. Timers fire. Lambda: three tries, then the OnFailure destination.
    let timers_dlq = stack.queues["timers"].dlq_url.clone();
    let mut fired: HashSet<String> = HashSet::new();
    let horizon = Duration::hours(2);
    loop {
        let now = cartback_core::ports::Clock::now(clock.as_ref());
        let due: Vec<(String, TimerPayload)> = all_schedules(&stack)
            .await
            .into_iter()
            .filter(|(name, t)| !fired.contains(name) && t.due_at <= now + horizon)
            .collect();
        if due.is_empty() {
            break;
        }
        let latest = due.iter().map(|(_, t)| t.due_at).max().unwrap();
        clock.set(latest.max(now) + Duration::seconds(40));
        let mut runs = JoinSet::new();
        for (name, timer) in due {
            fired.insert(name);
            figures.timers_fired += 1;
            let (checker, sweep, sqs, dlq) =
                (checker.clone(), sweep.clone(), stack.clients.sqs.clone(), timers_dlq.clone());
            runs.spawn(async move {
                let payload = serde_json::to_value(&timer).unwrap();
                for attempt in 1..=3 {
                    if handlers::checker_function(&checker, &sweep, payload.clone()).await.is_ok() {
                        return (attempt - 1, false);
                    }
                }
                let record = json!({ "version": "1.0", "requestContext": { "condition": "RetriesExhausted", "approximateInvokeCount": 3 },
                                     "requestPayload": payload, "responseContext": { "functionError": "Unhandled" } });
                sqs.send_message().queue_url(&dlq).message_body(record.to_string()).send().await.unwrap();
                (2, true)
            });
            while runs.len() >= PARALLEL {
                let (retries, dead) = runs.join_next().await.unwrap().unwrap();
                figures.checker_retries += retries;
                figures.timers_dead_lettered += usize::from(dead);
            }
        }
        while let Some(run) = runs.join_next().await {
            let (retries, dead) = run.unwrap();
            figures.checker_retries += retries;
            figures.timers_dead_lettered += usize::from(dead);
        }
    }
    let timers_in_dlq = stack.queue_depth(&timers_dlq).await;
    assert_eq!(timers_in_dlq, figures.timers_dead_lettered, "every given-up timer is visible in the dead-letter queue");

    // 3. The operator redrives the timer dead-letter queue into TimerQueue
    //    (infra/redrive-dlq.sh timers); the checker consumes it.
    let timers_queue = stack.queues["timers"].url.clone();
    loop {
        let dead = stack.clients.sqs.receive_message().queue_url(&timers_dlq).max_number_of_messages(10).send().await;
        let messages = dead.unwrap().messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            stack
                .clients
                .sqs
                .send_message()
                .queue_url(&timers_queue)
                .message_body(m.body.unwrap())
                .send()
                .await
                .unwrap();
            stack
                .clients
                .sqs
                .delete_message()
                .queue_url(&timers_dlq)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    loop {
        let batch = stack.receive("timers").await;
        if batch.records.is_empty() {
            break;
        }
        let answer = handlers::checker_function(&checker, &sweep, serde_json::to_value(&batch).unwrap()).await.unwrap();
        let response = serde_json::from_value(answer).unwrap();
        stack.settle("timers", &batch, &response).await;
    }
    // 4. The sweep, past the grace period: nothing may be left overdue.
    clock.advance(Duration::minutes(cartback_aws::sweep::GRACE_MINUTES + 1));
    let mut report = Value::Null;
    for _ in 0..5 {
        if let Ok(r) = handlers::checker_function(&checker, &sweep, json!({ "sweep": {} })).await {
            report = r;
            break;
        }
    }
    figures.sweep_rearmed = report["rearmed"].as_u64().expect("a sweep ran") as usize;

    // 5. The email queue drains through send-email (SQS redelivers failed
    //    records after the visibility timeout; after 5 receives they move to
    //    the dead-letter queue).
    let mut idle = 0;
    while idle < 2 {
        let mut batches = JoinSet::new();
        let email = stack.queues["email"].clone();
        for _ in 0..PARALLEL {
            let batch = receive_event_hidden(&stack.clients, &email.url, &email.arn, Some(600)).await;
            if batch.records.is_empty() {
                break;
            }
            let (delivery, stack, email) = (delivery.clone(), stack.clone(), email.clone());
            batches.spawn(async move {
                let response = handlers::sender(&delivery, batch.clone()).await;
                stack.settle("email", &batch, &response).await;
                // The visibility timeout of the failed records runs out.
                for failed in &response.batch_item_failures {
                    let record =
                        batch.records.iter().find(|r| r.message_id.as_deref() == Some(&failed.item_identifier));
                    let handle = record.and_then(|r| r.receipt_handle.clone()).unwrap_or_default();
                    let change = stack.clients.sqs.change_message_visibility().queue_url(&email.url);
                    change.receipt_handle(handle).visibility_timeout(0).send().await.unwrap();
                }
                response.batch_item_failures.len()
            });
        }
        if batches.is_empty() {
            idle += 1;
        }
        // A failed record comes back after the queue's visibility timeout
        // (300 s); a claim whose answer was lost holds its 5-minute lease
        // until then.
        clock.advance(Duration::minutes(6));
        while let Some(failed) = batches.join_next().await {
            figures.sender_batches += 1;
            figures.sender_record_retries += failed.unwrap();
        }
    }

    // 6. SES publishes each accepted email's Delivery event, through the
    //    configuration set, SNS and the feedback queue (moto's SES keeps the
    //    messages but publishes nothing: each notification is built from
    //    events/ses/delivery.json); the feedback function consumes them, in
    //    batches of 10, SQS redelivering the failed records. A delivery report
    //    settles a send recorded `unknown`.
    let store = wiring::state_store(&stack.clients, &stack.timer_config().common, clock.clone());
    let before_reports = message_statuses(&store).await;
    let ours = stack.sent_emails();
    let mut per_message: BTreeMap<String, usize> = BTreeMap::new();
    let mut pending = Vec::new();
    for (n, m) in ours.iter().enumerate() {
        let message_id = cartback_message_id(m["raw_data"].as_str().unwrap_or_default());
        *per_message.entry(message_id.clone()).or_insert(0) += 1;
        pending.push(delivery_report(&format!("report-{n}"), &message_id, m["id"].as_str().unwrap_or_default()));
    }
    let feedback = wiring::feedback(&faulty, &stack.email_config().common, clock.clone());
    for _ in 0..10 {
        if pending.is_empty() {
            break;
        }
        let mut failed = HashSet::new();
        for batch in pending.chunks(10) {
            let response = handlers::feedback(&feedback, SqsEvent { records: batch.to_vec() }).await;
            failed.extend(response.batch_item_failures.into_iter().map(|f| f.item_identifier));
        }
        figures.feedback_record_retries += failed.len();
        pending.retain(|r| r.message_id.as_ref().is_some_and(|id| failed.contains(id)));
    }
    assert!(pending.is_empty(), "{} delivery reports never recorded", pending.len());

    // THEN
    let mut lost_events = 0;
    for i in 0..carts() {
        let cart = store.get_cart(&format!("cart-{i}").as_str().into()).await.unwrap();
        if !cart.is_some_and(|c| c.events.iter().any(|e| e.event_id.as_str() == format!("f-add-{i}"))) {
            lost_events += 1;
        }
    }
    let statuses = message_statuses(&store).await;
    let emails: usize = per_message.values().sum();
    let duplicates: usize = per_message.values().map(|n| n - 1).sum();
    let email_dlq = stack.queue_depth(&stack.queues["email"].dlq_url).await;
    let timer_dlq_left = stack.queue_depth(&timers_dlq).await;
    let counts = injector.counts();
    eprintln!(
        "injected AWS faults: {} carts, {} events, seed {SEED}, {FAULTS_PER_MILLE}/1000 calls failing\n\
         calls through the injector: {} {:?}\n\
         faults injected: {} {:?}\n\
         storefront POSTs {} (+{} retries); timers fired {} (checker retries {}, dead-lettered {}, redriven {}); sweep re-armed {}\n\
         sender batches {} (records retried by SQS {}); email DLQ {email_dlq}; timer DLQ left {timer_dlq_left}\n\
         events lost {lost_events}; emails sent {emails}; duplicate emails {duplicates}\n\
         message records before SES's delivery reports {before_reports:?}; after them {statuses:?} \
         (feedback records retried by SQS {})\n\
         took {:?}",
        carts(),
        2 * carts(),
        counts.total_calls(),
        counts.calls,
        counts.total_faults(),
        counts.faults,
        figures.posts,
        figures.storefront_retries,
        figures.timers_fired,
        figures.checker_retries,
        figures.timers_dead_lettered,
        timers_in_dlq,
        figures.sweep_rearmed,
        figures.sender_batches,
        figures.sender_record_retries,
        figures.feedback_record_retries,
        started.elapsed(),
    );
    assert!(
        counts.total_faults() * 1000 >= counts.total_calls() * 8 * FAULTS_PER_MILLE as usize / 10,
        "about 10% failed"
    );
    assert!(counts.faults.len() == 3, "all three kinds were injected: {:?}", counts.faults);
    assert_eq!(lost_events, 0, "every accepted event is in its cart");
    assert_eq!(duplicates, 0, "no email went out twice: {per_message:?}");
    let sent = statuses.get("sent").copied().unwrap_or(0);
    assert_eq!(
        sent + email_dlq + timer_dlq_left,
        carts(),
        "every cart's email was sent, or its failure is visible in a dead-letter queue: {statuses:?}"
    );
    // A send whose answer was lost was recorded `unknown`, never repeated,
    // and SES's delivery report settled it: one email per sent record.
    assert_eq!(emails, sent, "{emails} emails for {sent} sent records");
}

/// Each cart's first-step email record by status.
async fn message_statuses(store: &cartback_aws::dynamo::DynamoStateStore) -> BTreeMap<&'static str, usize> {
    let mut statuses = BTreeMap::new();
    for i in 0..carts() {
        let id = MessageRecord::id_for(&format!("cart-{i}"), 0, Channel::Email);
        let status = match store.get_message(&id).await.unwrap().map(|m| m.status) {
            Some(MessageStatus::Sent { .. }) => "sent",
            Some(MessageStatus::Queued) => "queued",
            Some(MessageStatus::Sending { .. }) => "sending",
            // A send whose answer was lost: recorded, never repeated.
            Some(MessageStatus::Unknown { .. }) => "unknown",
            Some(_) => "closed",
            None => "none",
        };
        *statuses.entry(status).or_insert(0) += 1;
    }
    statuses
}

/// Cartback's message id in a sent email's `Message-ID: <m_...@cartback>`.
fn cartback_message_id(raw_email: &str) -> String {
    let header = raw_email.lines().find_map(|l| l.strip_prefix("Message-ID:")).expect("a Message-ID header");
    header.trim().trim_start_matches('<').split('@').next().unwrap_or_default().to_owned()
}

/// The feedback queue's record of SES's Delivery event for one email, as in
/// `events/ses/delivery.json`.
fn delivery_report(record_id: &str, message_id: &str, ses_message_id: &str) -> SqsMessage {
    let mut record = sample_as::<SqsEvent>("ses/delivery.json").records.remove(0);
    let mut envelope: Value = serde_json::from_str(record.body.as_deref().unwrap()).unwrap();
    let mut event: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    event["mail"]["tags"]["cartback_message_id"] = json!([message_id]);
    event["mail"]["messageId"] = json!(ses_message_id);
    envelope["Message"] = json!(event.to_string());
    record.message_id = Some(record_id.to_owned());
    record.body = Some(envelope.to_string());
    record
}
