//! Every file in `events/` is exercised here, so none can rot:
//! - `events/apigw/*`: API Gateway HTTP API (payload v2) requests, one per
//!   route, signed with the documented test secret (`SAMPLE_SECRET`);
//! - `events/scheduler/checker.json`: the schedule's target input;
//! - `events/sqs/*`: SQS batches for each sender (one malformed record);
//! - `events/ses/*`: SES event notifications as they reach the feedback
//!   queue (SNS envelope in the SQS body);
//! - `events/aws/*`: the AWS engineer's emulator fixtures (unsigned
//!   placeholders that their tests re-sign);
//! - `events/local/*`: the README walkthrough's bodies.
//! - `events/sources/*`: the commerce platforms' documented sample payloads
//!   (mapped field by field in `shared/core/src/sources/fixture_tests.rs`,
//!   driving recoveries in `cli/tests/e2e_sources.rs`).
//!
//! Every API Gateway answer is checked against the served OpenAPI document,
//! and every request body here against its request schema
//! (`cartback_tests::openapi`).
//!
//! The Lambda events go through `cartback_aws::handlers::*`, the functions
//! the binaries call, with services on the local adapters (SQLite, outbox)
//! instead of DynamoDB/SQS/SES: the honest in-process path, with no
//! hand-written stand-in for any AWS API (see `cartback_tests::samples`).
//!
//! Regenerate the samples (after changing a template or the signing scheme):
//! `cargo test -p cartback-tests --test events_samples -- --ignored regenerate`

use std::collections::BTreeSet;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::sqs::SqsEvent;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use cartback_aws::handlers;
use cartback_core::event::{parse_body, validate_event, ConsentPatch};
use cartback_core::message::{Channel, MessageJob, MessageRecord, MessageStatus, Outgoing, QueueName};
use cartback_core::ports::{CreateOutcome, CustomerStore, MessageStore, Timeline, TimerPayload};
use cartback_core::signing::{sign_link, verify_request, Accept, LinkClaims, SignedRequest, SIGNATURE_HEADER};
use cartback_core::sources::{map, map_fetched, map_with_cart, Fetched, FetchedCart, FetchedOrder, Headers, Source};
use cartback_tests::moto::sign_apigw;
use cartback_tests::openapi::{assert_response, served, Observed};
use cartback_tests::samples::{
    events_dir, json_files, md5_hex, request_time, sample, sample_as, sample_secret, LocalStack, PUBLIC_BASE_URL,
};

// ---------------------------------------------------------------- the list

const POST_EVENTS: &str = "apigw/post-events.json";
const GET_CART: &str = "apigw/get-cart.json";
const REDIRECT: &str = "apigw/redirect.json";
const OPENAPI: &str = "apigw/openapi.json";
const HEALTHZ: &str = "apigw/healthz.json";
const CHECKER: &str = "scheduler/checker.json";
const SEND_EMAIL: &str = "sqs/send-email.json";
const SEND_SMS: &str = "sqs/send-sms.json";
const SEND_PUSH: &str = "sqs/send-push.json";
const SES_DELIVERY: &str = "ses/delivery.json";
const SES_OPEN: &str = "ses/open.json";
const SES_CLICK: &str = "ses/click.json";
const SES_BOUNCE: &str = "ses/bounce-permanent.json";
const SES_COMPLAINT: &str = "ses/complaint.json";
const AWS_POST: &str = "aws/apigw-post-events.json";
const AWS_GET: &str = "aws/apigw-get-cart.json";
const LOCAL: [(&str, usize, usize); 4] = [
    ("local/01-identify.json", 1, 0),
    ("local/02-add-to-cart.json", 3, 0),
    ("local/03-second-cart-then-purchase.json", 2, 0),
    ("local/04-mixed-batch.json", 1, 1),
];

/// Each source sample: its source, its topic header (Shopify, WooCommerce),
/// and how many events it maps to (refused ones included).
const SOURCES: [(&str, Source, &str, usize); 23] = [
    ("sources/shopify/checkouts-create.json", Source::Shopify, "checkouts/create", 1),
    ("sources/shopify/orders-create.json", Source::Shopify, "orders/create", 1),
    ("sources/shopify/refunds-create.json", Source::Shopify, "refunds/create", 1),
    ("sources/shopify/refunds-create-paid.json", Source::Shopify, "refunds/create", 1),
    ("sources/shopify/refunds-create-shipping.json", Source::Shopify, "refunds/create", 1),
    ("sources/shopify/customers-update.json", Source::Shopify, "customers/update", 1),
    ("sources/segment/product-added.json", Source::Segment, "", 1),
    ("sources/segment/order-completed.json", Source::Segment, "", 1),
    ("sources/segment/order-refunded.json", Source::Segment, "", 1),
    ("sources/segment/identify.json", Source::Segment, "", 1),
    ("sources/segment/batch-mixed.json", Source::Segment, "", 3),
    ("sources/woocommerce/order-created-pending.json", Source::WooCommerce, "order.created", 1),
    ("sources/woocommerce/order-updated-processing.json", Source::WooCommerce, "order.updated", 1),
    ("sources/woocommerce/cart-updated.json", Source::WooCommerce, "cart.updated", 1),
    ("sources/bigcommerce/cart-updated-thin.json", Source::BigCommerce, "", 0),
    ("sources/bigcommerce/line-item-added-thin.json", Source::BigCommerce, "", 0),
    ("sources/bigcommerce/cart-updated-snapshot.json", Source::BigCommerce, "", 1),
    ("sources/bigcommerce/cart-converted.json", Source::BigCommerce, "", 1),
    // Order deliveries map only with the configured fetch (see below).
    ("sources/bigcommerce/order-created.json", Source::BigCommerce, "", 0),
    ("sources/bigcommerce/order-status-updated.json", Source::BigCommerce, "", 0),
    ("sources/bigcommerce/order-refund-created.json", Source::BigCommerce, "", 0),
    ("sources/sfcc/basket-scapi.json", Source::Sfcc, "", 1),
    ("sources/sfcc/order-ocapi.json", Source::Sfcc, "", 1),
];

/// BigCommerce's `GET /v3/carts/{id}` answer: what the configured fetch
/// maps a thin cart webhook from.
const BIGCOMMERCE_API_CART: &str = "sources/bigcommerce/api-cart.json";
/// BigCommerce's `GET /v2/orders/{id}`, `GET /v2/orders/{id}/products` and
/// `GET /v3/orders/{id}/payment_actions/refunds` answers: what the fetch
/// maps `store/order/*` webhooks from.
const BIGCOMMERCE_API_ORDER: [&str; 3] = [
    "sources/bigcommerce/api-order.json",
    "sources/bigcommerce/api-order-products.json",
    "sources/bigcommerce/api-order-refunds.json",
];

/// Every file some test below runs. A new sample must be added here, and to
/// a test.
fn claimed() -> BTreeSet<String> {
    let mut files: BTreeSet<String> = [
        POST_EVENTS,
        GET_CART,
        REDIRECT,
        OPENAPI,
        HEALTHZ,
        CHECKER,
        SEND_EMAIL,
        SEND_SMS,
        SEND_PUSH,
        SES_DELIVERY,
        SES_OPEN,
        SES_CLICK,
        SES_BOUNCE,
        SES_COMPLAINT,
        AWS_POST,
        AWS_GET,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    files.extend(LOCAL.iter().map(|(f, _, _)| f.to_string()));
    files.extend(SOURCES.iter().map(|(f, _, _, _)| f.to_string()));
    files.insert(BIGCOMMERCE_API_CART.to_owned());
    files.extend(BIGCOMMERCE_API_ORDER.iter().map(|f| f.to_string()));
    files
}

#[test]
fn given_the_events_folder_when_listed_then_every_json_file_is_claimed_by_a_test_and_every_claim_exists() {
    let present: BTreeSet<String> = json_files(&events_dir()).into_iter().collect();
    let claimed = claimed();
    let unclaimed: Vec<_> = present.difference(&claimed).collect();
    let missing: Vec<_> = claimed.difference(&present).collect();
    assert!(
        unclaimed.is_empty(),
        "events/ files no test exercises (add them to claimed() and to a test): {unclaimed:?}"
    );
    assert!(missing.is_empty(), "claimed events/ files that do not exist: {missing:?}");
}

#[test]
fn given_each_source_sample_when_mapped_then_it_yields_its_events_and_each_mapped_one_is_a_valid_event() {
    let received = at("2026-11-25T12:00:00Z");
    for (file, source, topic, count) in SOURCES {
        let body = std::fs::read(events_dir().join(file)).unwrap();
        let headers: Headers = [("X-Shopify-Topic", topic), ("X-WC-Webhook-Topic", topic)].into_iter().collect();
        let mapped = map(source, &headers, &body, Some("USD")).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(mapped.len(), count, "{file}: {mapped:?}");
        for mapped in mapped {
            let Ok(mut event) = mapped.result else { continue };
            // A refund's customer comes from its order's purchase at ingest.
            if mapped.owner_from_order.is_some() {
                event["customer_id"] = "the-orders-customer".into();
            }
            validate_event(&event, received).unwrap_or_else(|e| panic!("{file}: {event} is not valid: {e:?}"));
        }
    }
    // The thin deliveries, with the cart BigCommerce's API answers, map to one valid event each.
    let answer: Value =
        serde_json::from_slice(&std::fs::read(events_dir().join(BIGCOMMERCE_API_CART)).unwrap()).unwrap();
    for thin in ["sources/bigcommerce/cart-updated-thin.json", "sources/bigcommerce/line-item-added-thin.json"] {
        let body = std::fs::read(events_dir().join(thin)).unwrap();
        let fetched = FetchedCart { cart: answer["data"].clone(), customer: None };
        let mapped = map_with_cart(Source::BigCommerce, &Headers::default(), &body, None, Some(&fetched)).unwrap();
        assert_eq!(mapped.len(), 1, "{thin}: {mapped:?}");
        let event = mapped[0].result.clone().unwrap_or_else(|e| panic!("{thin}: {e:?}"));
        validate_event(&event, received).unwrap_or_else(|e| panic!("{thin}: {event} is not valid: {e:?}"));
    }
    // The order deliveries, with the order, its lines and its refunds as the API answers them: a purchase
    // each (one and the same), and a return.
    let [order, products, refunds] = BIGCOMMERCE_API_ORDER
        .map(|f| -> Value { serde_json::from_slice(&std::fs::read(events_dir().join(f)).unwrap()).unwrap() });
    let order = Fetched::Order(FetchedOrder { order, products: products.as_array().unwrap().clone() });
    let refunds = Fetched::Refunds(refunds["data"].as_array().unwrap().clone());
    for (file, fetched, kind) in [
        ("sources/bigcommerce/order-created.json", &order, "purchase"),
        ("sources/bigcommerce/order-status-updated.json", &order, "purchase"),
        ("sources/bigcommerce/order-refund-created.json", &refunds, "return"),
    ] {
        let body = std::fs::read(events_dir().join(file)).unwrap();
        let mapped = map_fetched(Source::BigCommerce, &Headers::default(), &body, None, Some(fetched)).unwrap();
        assert_eq!(mapped.len(), 1, "{file}: {mapped:?}");
        let mut event = mapped[0].result.clone().unwrap_or_else(|e| panic!("{file}: {e:?}"));
        assert_eq!(event["type"], kind, "{file}");
        // A refund's customer and currency come from its order's purchase at ingest.
        if mapped[0].owner_from_order.is_some() {
            event["customer_id"] = "the-orders-customer".into();
            event["currency"] = "USD".into();
        }
        validate_event(&event, received).unwrap_or_else(|e| panic!("{file}: {event} is not valid: {e:?}"));
    }
}

// ---------------------------------------------------------------- helpers

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("RFC 3339 time")
}

fn apigw(relative: &str) -> ApiGatewayV2httpRequest {
    sample_as(relative)
}

fn body_json(response: &ApiGatewayV2httpResponse) -> Value {
    match &response.body {
        Some(Body::Text(t)) => serde_json::from_str(t).expect("a JSON body"),
        other => panic!("expected a text body, got {other:?}"),
    }
}

fn header<'a>(response: &'a ApiGatewayV2httpResponse, name: &str) -> Option<&'a str> {
    response.headers.get(name).and_then(|v| v.to_str().ok())
}

/// A stack whose clock is at the sample's request time.
fn stack_for(relative: &str) -> LocalStack {
    LocalStack::new(request_time(&sample(relative)))
}

/// Sends a sample request at its own time.
async fn send(stack: &LocalStack, relative: &str) -> ApiGatewayV2httpResponse {
    stack.clock.set(request_time(&sample(relative)));
    ingest(stack, apigw(relative)).await
}

/// The ingest Lambda's answer, checked against the served OpenAPI document.
async fn ingest(stack: &LocalStack, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
    let method = request.request_context.http.method.to_string();
    let path = request.raw_path.clone().unwrap_or_default();
    let response = handlers::ingest(&stack.app, request).await;
    let headers =
        response.headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned())).collect();
    let body = match &response.body {
        Some(Body::Text(t)) => t.as_bytes().to_vec(),
        Some(Body::Binary(b)) => b.clone(),
        _ => Vec::new(),
    };
    assert_response(&method, &path, &Observed { status: response.status_code as u16, headers, body });
    response
}

fn jobs_in(event: &SqsEvent) -> Vec<(String, Option<MessageJob>)> {
    event
        .records
        .iter()
        .map(|r| {
            (
                r.message_id.clone().unwrap_or_default(),
                serde_json::from_str::<MessageJob>(r.body.as_deref().unwrap_or_default()).ok(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------- apigw

#[test]
fn given_each_signed_apigw_sample_when_verified_with_the_test_secret_at_its_time_then_the_signature_holds() {
    for relative in [POST_EVENTS, GET_CART] {
        let raw = sample(relative);
        let event = apigw(relative);
        let body = event.body.clone().unwrap_or_default();
        let signature = event.headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        assert!(signature.is_some(), "{relative}: no {SIGNATURE_HEADER} header");
        let now = request_time(&raw);
        let path = event.raw_path.clone().unwrap_or_default();
        let request = SignedRequest {
            method: event.request_context.http.method.as_str(),
            path_and_query: &path,
            body: body.as_bytes(),
        };
        assert_eq!(
            verify_request(&sample_secret(), signature, &request, now, Accept::V2Only).map(drop),
            Ok(()),
            "{relative}"
        );
        assert_eq!(
            now.timestamp_millis(),
            raw["requestContext"]["timeEpoch"].as_i64().unwrap(),
            "{relative}: timeEpoch and t= disagree"
        );
    }
}

#[tokio::test]
async fn given_the_post_events_sample_when_ingested_then_both_events_are_accepted_and_a_replay_is_all_duplicates() {
    let stack = stack_for(POST_EVENTS);
    let response = send(&stack, POST_EVENTS).await;
    assert_eq!(response.status_code, 200);
    let answer = body_json(&response);
    assert_eq!(
        (answer["accepted"].as_u64(), answer["duplicates"].as_u64(), answer["rejected"].as_u64()),
        (Some(2), Some(0), Some(0)),
        "{answer}"
    );
    let types: Vec<_> = parse_body(apigw(POST_EVENTS).body.unwrap().as_bytes(), stack.clock_now())
        .unwrap()
        .into_iter()
        .map(|p| p.result.unwrap().kind.as_str())
        .collect();
    assert_eq!(types, ["identify", "add_to_cart"]);
    let replay = body_json(&send(&stack, POST_EVENTS).await);
    assert_eq!(replay["duplicates"], 2, "{replay}");
}

#[tokio::test]
async fn given_the_ingested_cart_when_the_get_cart_sample_is_sent_then_the_cart_its_totals_and_next_check_come_back() {
    let stack = stack_for(POST_EVENTS);
    assert_eq!(send(&stack, POST_EVENTS).await.status_code, 200);
    let response = send(&stack, GET_CART).await;
    assert_eq!(response.status_code, 200, "{:?}", response.body);
    let cart = body_json(&response);
    assert_eq!(cart["cart_id"], "cart-1001");
    assert_eq!(cart["status"], "active");
    assert_eq!(cart["customer_id"], "cust-ana");
    assert_eq!(cart["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(cart["totals"], json!({ "currency": "EUR", "subtotal": "68.80", "item_count": 3 }));
    let timer: TimerPayload = sample_as(CHECKER);
    assert_eq!(cart["next_check_at"].as_str().map(at), Some(timer.due_at), "the scheduler sample is this cart's timer");
    assert!(cart["timeline"].as_array().is_some_and(|t| !t.is_empty()), "{cart}");
}

/// The cart's steps can hold a step skipped as too late (`max_send_delay`,
/// two days by default); the answer that shows one keeps to the document.
#[tokio::test]
async fn given_the_ingested_cart_when_its_timer_first_fires_three_days_late_then_get_cart_shows_step_one_skipped() {
    let stack = stack_for(POST_EVENTS);
    assert_eq!(send(&stack, POST_EVENTS).await.status_code, 200);
    let timer: TimerPayload = sample_as(CHECKER);
    let late = timer.due_at + Duration::days(3);
    stack.clock.set(late);

    let summary = handlers::checker(&stack.checker, sample(CHECKER)).await.expect("checker ran");

    // Step 1 is too late and skipped; step 2 is still in its window and sent.
    assert_eq!(summary["sent"], json!([MessageRecord::id_for("cart-1001", 1, Channel::Email)]), "{summary}");
    let mut get = apigw(GET_CART);
    get.headers.insert(SIGNATURE_HEADER, sign_apigw(&get, &sample_secret(), late).parse().unwrap());
    let response = ingest(&stack, get).await;
    assert_eq!(response.status_code, 200, "{:?}", response.body);
    let step = &body_json(&response)["campaign"]["steps"][0];
    assert_eq!((step["step"].as_u64(), step["skipped"].as_bool()), (Some(0), Some(true)), "{step}");
    assert_eq!(step["at"].as_str().map(at), Some(timer.due_at), "a skipped step is dated when it fell due");
}

#[tokio::test]
async fn given_the_healthz_and_openapi_samples_when_sent_then_they_answer_without_a_signature() {
    let stack = stack_for(HEALTHZ);
    let health = send(&stack, HEALTHZ).await;
    assert_eq!(health.status_code, 200);
    assert_eq!(body_json(&health), json!({ "status": "ok", "now": request_time(&sample(HEALTHZ)) }));
    let openapi = send(&stack, OPENAPI).await;
    assert_eq!(openapi.status_code, 200);
    let doc = body_json(&openapi);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    assert!(doc["paths"]["/v1/events"].is_object());
}

/// Ingests the post-events sample and fires the scheduler sample at its due
/// time: the state every later sample (redirect, SQS, SES) follows from.
async fn cart_1001_after_first_email() -> (LocalStack, MessageJob) {
    let stack = stack_for(POST_EVENTS);
    assert_eq!(send(&stack, POST_EVENTS).await.status_code, 200);
    let payload = sample(CHECKER);
    let timer: TimerPayload = serde_json::from_value(payload.clone()).unwrap();
    stack.clock.set(timer.due_at);
    let summary = handlers::checker(&stack.checker, payload).await.expect("checker ran");
    assert_eq!(summary["outcome"], "decided", "{summary}");
    let job = stack
        .queue
        .receive(QueueName::Email, timer.due_at, Duration::minutes(5))
        .await
        .unwrap()
        .expect("an email job is queued")
        .job;
    (stack, job)
}

#[tokio::test]
async fn given_the_post_events_sample_when_its_timer_fires_with_the_scheduler_sample_then_an_email_job_is_queued() {
    let stack = stack_for(POST_EVENTS);
    assert_eq!(send(&stack, POST_EVENTS).await.status_code, 200);
    let timer: TimerPayload = sample_as(CHECKER);
    // The sample is exactly what ingest armed for the cart.
    let armed = stack.timers.next_due(timer.due_at + Duration::days(1)).await.unwrap();
    assert_eq!(armed.as_ref(), Some(&timer), "events/{CHECKER} is not the timer ingest arms for events/{POST_EVENTS}");
    // Not due yet: the checker waits.
    stack.clock.set(timer.due_at - Duration::minutes(10));
    let early = handlers::checker(&stack.checker, sample(CHECKER)).await.unwrap();
    assert_eq!(
        stack.queue.receive(QueueName::Email, stack.clock_now(), Duration::minutes(5)).await.unwrap(),
        None,
        "{early}"
    );
    // Due: one email job, for the first step.
    stack.clock.set(timer.due_at);
    let summary = handlers::checker(&stack.checker, sample(CHECKER)).await.unwrap();
    let first = MessageRecord::id_for("cart-1001", 0, Channel::Email);
    assert_eq!(summary["sent"], json!([first]), "{summary}");
    let job = stack
        .queue
        .receive(QueueName::Email, timer.due_at, Duration::minutes(5))
        .await
        .unwrap()
        .expect("an email job")
        .job;
    assert_eq!(job.message_id, first);
    let Outgoing::Email { to, subject, text, .. } = &job.outgoing else { panic!("not an email: {job:?}") };
    assert_eq!(to.expose(), "ana@example.com");
    assert!(
        !subject.is_empty() && text.contains("Stoneware mug") && text.contains(&format!("{PUBLIC_BASE_URL}/r/")),
        "{text}"
    );
    // The SQS and SES samples concern this very message.
    let email_batch: SqsEvent = sample_as(SEND_EMAIL);
    assert_eq!(jobs_in(&email_batch)[0].1.as_ref().map(|j| j.message_id.as_str()), Some(first.as_str()));
}

#[tokio::test]
async fn given_the_first_email_sent_when_the_redirect_sample_is_followed_then_it_redirects_to_the_restore_url_and_records_the_click(
) {
    let (stack, job) = cart_1001_after_first_email().await;
    let response = send(&stack, REDIRECT).await;
    assert_eq!(response.status_code, 302, "{:?}", response.body);
    let location = header(&response, "location").expect("a location");
    assert!(location.starts_with("https://shop.example.com/cart/restore?cart=cart-1001&t="), "{location}");
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    let record = stack.db.get_message(&job.message_id).await.unwrap().expect("the message record");
    let clicked: Vec<_> = record.engagement.iter().map(|(label, t)| (label.as_str(), t.count, t.first_at)).collect();
    assert_eq!(clicked, [("click", 1, request_time(&sample(REDIRECT)))], "a browser's click, minutes after the send");
    let timeline = stack.db.timeline(&"cart-1001".into()).await.unwrap();
    assert!(timeline.iter().any(|e| e.kind == "engagement" && e.code == "click"), "{timeline:?}");
}

#[tokio::test]
async fn given_the_aws_emulator_fixtures_when_re_signed_and_sent_then_they_are_accepted() {
    // These carry placeholder signatures by design (their tests sign them
    // with the emulator stack's secret); sign them with the sample secret.
    let now =
        DateTime::from_timestamp_millis(sample(AWS_POST)["requestContext"]["timeEpoch"].as_i64().unwrap()).unwrap();
    let stack = LocalStack::new(now);
    let mut post = apigw(AWS_POST);
    post.headers.insert(SIGNATURE_HEADER, sign_apigw(&post, &sample_secret(), now).parse().unwrap());
    let answer = body_json(&ingest(&stack, post).await);
    assert_eq!((answer["accepted"].as_u64(), answer["rejected"].as_u64()), (Some(3), Some(0)), "{answer}");
    let mut get = apigw(AWS_GET);
    get.headers.insert(SIGNATURE_HEADER, sign_apigw(&get, &sample_secret(), now).parse().unwrap());
    let cart = ingest(&stack, get).await;
    assert_eq!(cart.status_code, 200);
    assert_eq!(body_json(&cart)["cart_id"], "cart-aws-1");
}

// ---------------------------------------------------------------- sqs

/// Creates the queued message record a job stands for (the checker would
/// have), unless it exists.
async fn queued_records_for(stack: &LocalStack, event: &SqsEvent) {
    for (_, job) in jobs_in(event) {
        let Some(job) = job else { continue };
        if stack.db.get_message(&job.message_id).await.unwrap().is_none() {
            let record = MessageRecord {
                message_id: job.message_id.clone(),
                cart_id: job.cart_id.clone(),
                customer_key: cartback_core::ids::CustomerKey::Customer(format!("cust-of-{}", job.cart_id).into()),
                campaign_id: "default".into(),
                step: 0,
                channel: job.channel,
                decided_at: stack.clock_now(),
                status: MessageStatus::Queued,
                engagement: Default::default(),
                variant: None,
            };
            assert_eq!(stack.db.create_message(&record).await.unwrap(), CreateOutcome::Created);
        }
    }
}

fn failures(response: &aws_lambda_events::sqs::SqsBatchResponse) -> Vec<String> {
    response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
}

#[tokio::test]
async fn given_the_send_email_batch_when_delivered_then_the_good_job_is_in_the_outbox_and_only_the_malformed_record_fails(
) {
    let (stack, _) = cart_1001_after_first_email().await;
    let event: SqsEvent = sample_as(SEND_EMAIL);
    assert!(event.records.iter().all(|r| r.event_source.as_deref() == Some("aws:sqs")
        && r.md5_of_body == r.body.as_deref().map(|b| md5_hex(b.as_bytes()))));
    let jobs = jobs_in(&event);
    let malformed: Vec<String> = jobs.iter().filter(|(_, j)| j.is_none()).map(|(id, _)| id.clone()).collect();
    assert_eq!(malformed.len(), 1, "the email batch shows one malformed record");
    queued_records_for(&stack, &event).await;
    let response = handlers::sender(&stack.delivery, event.clone()).await;
    assert_eq!(failures(&response), malformed);
    for (_, job) in jobs.iter().filter_map(|(id, j)| j.as_ref().map(|j| (id, j))) {
        let eml =
            std::fs::read_to_string(stack.outbox.email_path(&job.message_id)).expect("the email is in the outbox");
        assert!(eml.contains("To: ana@example.com") && eml.contains("Stoneware mug"), "{eml}");
        let record = stack.db.get_message(&job.message_id).await.unwrap().unwrap();
        assert_eq!(record.status.name(), "sent");
    }
    // SQS redelivers the batch (at least once): nothing is sent twice.
    let again = handlers::sender(&stack.delivery, event).await;
    assert_eq!(failures(&again), malformed);
    assert_eq!(std::fs::read_dir(stack.outbox.dir().join("email")).unwrap().count(), 1);
}

#[tokio::test]
async fn given_the_send_sms_batch_when_delivered_then_each_sms_is_in_the_outbox_and_nothing_fails() {
    let event: SqsEvent = sample_as(SEND_SMS);
    let stack = LocalStack::new(
        DateTime::from_timestamp_millis(event.records[0].attributes["SentTimestamp"].parse().unwrap()).unwrap(),
    );
    queued_records_for(&stack, &event).await;
    let response = handlers::sender(&stack.delivery, event.clone()).await;
    assert_eq!(failures(&response), Vec::<String>::new());
    let lines: Vec<Value> = std::fs::read_to_string(stack.outbox.sms_path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected: Vec<_> = jobs_in(&event).into_iter().map(|(_, j)| j.expect("every SMS record is a job")).collect();
    assert_eq!(lines.len(), expected.len());
    for (line, job) in lines.iter().zip(&expected) {
        let Outgoing::Sms { to, body } = &job.outgoing else { panic!("not an SMS job: {job:?}") };
        assert_eq!(
            (&line["message_id"], &line["to"], &line["body"]),
            (&json!(job.message_id), &json!(to), &json!(body))
        );
    }
}

#[tokio::test]
async fn given_the_send_push_batch_when_delivered_then_the_mobile_and_web_push_are_in_the_outbox_and_nothing_fails() {
    let event: SqsEvent = sample_as(SEND_PUSH);
    let stack = LocalStack::new(
        DateTime::from_timestamp_millis(event.records[0].attributes["SentTimestamp"].parse().unwrap()).unwrap(),
    );
    queued_records_for(&stack, &event).await;
    let response = handlers::sender(&stack.delivery, event.clone()).await;
    assert_eq!(failures(&response), Vec::<String>::new());
    let lines: Vec<Value> = std::fs::read_to_string(stack.outbox.push_path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["push", "web_push"]);
    let ids: Vec<String> = jobs_in(&event).into_iter().map(|(_, j)| j.unwrap().message_id.into_string()).collect();
    assert_eq!(lines.iter().map(|l| l["message_id"].as_str().unwrap().to_owned()).collect::<Vec<_>>(), ids);
}

// ---------------------------------------------------------------- ses

/// The SES event inside a feedback-queue sample (SQS body -> SNS Message).
fn ses_event(relative: &str) -> Value {
    let event: SqsEvent = sample_as(relative);
    let envelope: Value = serde_json::from_str(event.records[0].body.as_deref().unwrap()).unwrap();
    serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap()
}

/// Runs one SES sample after the first email went out and was sent.
async fn feedback_after_first_email(relative: &str) -> (LocalStack, MessageJob) {
    let (stack, job) = cart_1001_after_first_email().await;
    let sent = handlers::sender(
        &stack.delivery,
        SqsEvent { records: vec![sample_as::<SqsEvent>(SEND_EMAIL).records[0].clone()] },
    )
    .await;
    assert_eq!(failures(&sent), Vec::<String>::new());
    let ses = ses_event(relative);
    assert_eq!(
        ses["mail"]["tags"]["cartback_message_id"],
        json!([job.message_id]),
        "events/{relative} is about another message"
    );
    let event: SqsEvent = sample_as(relative);
    stack.clock.set(at(ses["mail"]["timestamp"].as_str().unwrap()) + Duration::minutes(30));
    let response = handlers::feedback(&stack.feedback, event).await;
    assert_eq!(failures(&response), Vec::<String>::new(), "events/{relative}");
    (stack, job)
}

async fn email_consent(stack: &LocalStack) -> Option<bool> {
    let (customer, _) = stack.db.get_customer(&"cust-ana".into()).await.unwrap().expect("cust-ana");
    customer.profile.consents.unwrap_or(ConsentPatch::default()).email
}

async fn timeline_codes(stack: &LocalStack) -> Vec<String> {
    stack
        .db
        .timeline(&"cart-1001".into())
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{}:{}", e.kind, e.code))
        .collect()
}

#[tokio::test]
async fn given_the_ses_delivery_sample_when_consumed_then_the_timeline_shows_the_delivery_and_nothing_else_changes() {
    let (stack, job) = feedback_after_first_email(SES_DELIVERY).await;
    assert!(timeline_codes(&stack).await.contains(&"message:delivered".to_owned()));
    assert!(stack.db.get_message(&job.message_id).await.unwrap().unwrap().engagement.is_empty());
    assert_eq!(email_consent(&stack).await, Some(true));
}

#[tokio::test]
async fn given_the_ses_open_and_click_samples_when_consumed_then_engagement_is_recorded_at_their_time() {
    for (relative, section, code) in [(SES_OPEN, "open", "engagement:open"), (SES_CLICK, "click", "engagement:click")] {
        let (stack, job) = feedback_after_first_email(relative).await;
        let when = at(ses_event(relative)[section]["timestamp"].as_str().unwrap());
        let record = stack.db.get_message(&job.message_id).await.unwrap().unwrap();
        let seen: Vec<_> = record.engagement.iter().map(|(label, t)| (label.as_str(), t.first_at)).collect();
        assert_eq!(seen, [(section, when)], "{relative}: a person's {section}, by its user agent and time");
        assert!(timeline_codes(&stack).await.contains(&code.to_owned()), "{relative}");
        assert_eq!(email_consent(&stack).await, Some(true));
    }
}

#[tokio::test]
async fn given_the_ses_permanent_bounce_and_complaint_samples_when_consumed_then_email_consent_is_withdrawn_once() {
    for (relative, code) in [(SES_BOUNCE, "message:bounced"), (SES_COMPLAINT, "message:complaint")] {
        let (stack, _) = feedback_after_first_email(relative).await;
        assert_eq!(email_consent(&stack).await, Some(false), "{relative}");
        let lines = timeline_codes(&stack).await;
        assert_eq!(lines.iter().filter(|c| *c == code).count(), 1, "{relative}: {lines:?}");
        // SQS delivers at least once: a redelivery changes nothing.
        let again = handlers::feedback(&stack.feedback, sample_as(relative)).await;
        assert_eq!(failures(&again), Vec::<String>::new());
        assert_eq!(timeline_codes(&stack).await, lines, "{relative}");
    }
}

// ---------------------------------------------------------------- local

#[test]
fn given_the_local_walkthrough_files_when_parsed_then_the_counts_match_the_readme() {
    let now = at("2026-11-23T12:00:00Z");
    for (relative, valid, rejected) in LOCAL {
        let body = std::fs::read(events_dir().join(relative)).unwrap();
        let parsed = parse_body(&body, now).unwrap_or_else(|e| panic!("{relative}: {e}"));
        let ok = parsed.iter().filter(|p| p.result.is_ok()).count();
        assert_eq!((ok, parsed.len() - ok), (valid, rejected), "{relative}");
    }
    let mixed = parse_body(&std::fs::read(events_dir().join("local/04-mixed-batch.json")).unwrap(), now).unwrap();
    assert_eq!(mixed[1].result.as_ref().unwrap_err().field, "items[0].price");
}

/// GIVEN every body for `POST /v1/events` in events/ (the walkthrough files
/// and the API Gateway samples' bodies) WHEN checked against the served
/// document's request schema THEN each event the server accepts is valid by
/// the schema and each it rejects (the mixed batch's bad price) is not, and a
/// body of only good events is a valid request. The document's own example is
/// the API Gateway sample's body.
#[test]
fn given_every_request_body_in_events_when_checked_against_the_served_document_then_schema_and_server_agree() {
    let now = at("2026-11-23T12:00:00Z");
    let mut bodies: Vec<(String, Value)> = LOCAL.iter().map(|(f, _, _)| (f.to_string(), sample(f))).collect();
    for relative in [POST_EVENTS, AWS_POST] {
        let body = apigw(relative).body.expect("a body");
        bodies.push((relative.to_owned(), serde_json::from_str(&body).expect("a JSON body")));
    }
    let documented = &served().document()["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"];
    assert_eq!(documented["example"], bodies[LOCAL.len()].1, "the document's example is events/{POST_EVENTS}'s body");
    for (relative, body) in bodies {
        let raw_events = body.get("events").and_then(Value::as_array).cloned().unwrap_or_else(|| vec![body.clone()]);
        let parsed = parse_body(&serde_json::to_vec(&body).unwrap(), now).unwrap();
        for (index, (raw, server)) in raw_events.iter().zip(&parsed).enumerate() {
            let schema = served().validate("#/components/schemas/Event", raw);
            let verdicts = format!("schema {schema:?}, server {:?}", server.result);
            assert_eq!(schema.is_ok(), server.result.is_ok(), "{relative} event {index}: {verdicts}");
        }
        let request = served().check_request("POST", "/v1/events", &body);
        assert_eq!(request.is_ok(), parsed.iter().all(|p| p.result.is_ok()), "{relative}: {request:?}");
    }
}

// ---------------------------------------------------------------- generator

trait ClockNow {
    fn clock_now(&self) -> DateTime<Utc>;
}

impl ClockNow for LocalStack {
    fn clock_now(&self) -> DateTime<Utc> {
        cartback_core::ports::Clock::now(self.clock.as_ref())
    }
}

mod generate {
    //! Writes the samples. Deterministic: the same code gives the same bytes.

    use super::*;
    use cartback_core::signing::sign_request;
    use cartback_tests::samples::SAMPLE_SECRET;

    pub const ACCOUNT: &str = "123456789012";
    pub const REGION: &str = "us-east-1";
    pub const SES_MESSAGE_ID: &str = "0100019ab3c4d5e6-7f8091a2-b3c4-4d5e-8f60-718293a4b5c6-000000";

    fn write(relative: &str, value: &Value) {
        let path = events_dir().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(value).unwrap() + "\n").unwrap();
        println!("wrote events/{relative}");
    }

    /// An HTTP API (payload v2) request as API Gateway hands it to Lambda.
    #[allow(clippy::too_many_arguments)] // one per field of the request it writes
    pub fn apigw_request(
        method: &str,
        route: &str,
        path: &str,
        params: Option<(&str, &str)>,
        body: Option<&str>,
        now: DateTime<Utc>,
        signed: bool,
        request_id: &str,
    ) -> Value {
        let host = PUBLIC_BASE_URL.trim_start_matches("https://");
        let browser = !signed;
        let user_agent = if browser {
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
        } else {
            "demo-shop-backend/2.3 (+https://shop.example.com)"
        };
        let source_ip = if browser { "198.51.100.23" } else { "203.0.113.7" };
        let mut headers = json!({
            "accept": if browser { "text/html,application/xhtml+xml" } else { "application/json" },
            "host": host,
            "user-agent": user_agent,
            "x-amzn-trace-id": format!("Root=1-{:08x}-{}", now.timestamp(), &md5_hex(request_id.as_bytes())[..24]),
            "x-forwarded-for": source_ip,
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        });
        if let Some(b) = body {
            headers["content-type"] = json!("application/json");
            headers["content-length"] = json!(b.len().to_string());
        }
        if signed {
            let request = SignedRequest { method, path_and_query: path, body: body.unwrap_or_default().as_bytes() };
            headers[SIGNATURE_HEADER] = json!(sign_request(&sample_secret(), now.timestamp(), &request));
        }
        let mut request = json!({
            "version": "2.0",
            "routeKey": route,
            "rawPath": path,
            "rawQueryString": "",
            "headers": headers,
            "requestContext": {
                "accountId": ACCOUNT,
                "apiId": "abc123",
                "domainName": host,
                "domainPrefix": "abc123",
                "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip, "userAgent": user_agent },
                "requestId": request_id,
                "routeKey": route,
                "stage": "$default",
                "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
                "timeEpoch": now.timestamp_millis(),
            },
            "isBase64Encoded": false,
        });
        if let Some((name, value)) = params {
            request["pathParameters"] = json!({ name: value });
        }
        if let Some(b) = body {
            request["body"] = json!(b);
        }
        request
    }

    /// One SQS record as the Lambda event source mapping delivers it.
    pub fn sqs_record(queue: &str, message_id: &str, body: &str, sent: DateTime<Utc>, sender: &str) -> Value {
        json!({
            "messageId": message_id,
            "receiptHandle": format!("AQEB{}{}", md5_hex(message_id.as_bytes()), md5_hex(body.as_bytes())),
            "body": body,
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": sent.timestamp_millis().to_string(),
                "SenderId": sender,
                "ApproximateFirstReceiveTimestamp": (sent + Duration::milliseconds(1250)).timestamp_millis().to_string(),
            },
            "messageAttributes": {},
            "md5OfBody": md5_hex(body.as_bytes()),
            "eventSource": "aws:sqs",
            "eventSourceARN": format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}"),
            "awsRegion": REGION,
        })
    }

    fn uuid(seed: &str) -> String {
        let h = md5_hex(seed.as_bytes());
        format!("{}-{}-4{}-a{}-{}", &h[..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
    }

    fn job_record(queue: &str, job: &MessageJob, sent: DateTime<Utc>) -> Value {
        sqs_record(
            queue,
            &uuid(&job.message_id),
            &serde_json::to_string(job).unwrap(),
            sent,
            "AROA3EXAMPLECHECKER:cartback-checker",
        )
    }

    fn feedback_record(ses: &Value, sent: DateTime<Utc>) -> Value {
        let kind = ses["eventType"].as_str().unwrap();
        let sns_id = uuid(&format!("sns-{kind}"));
        let topic = format!("arn:aws:sns:{REGION}:{ACCOUNT}:cartback-FeedbackTopic-1B2C3D4E5F6G");
        let envelope = json!({
            "Type": "Notification",
            "MessageId": sns_id,
            "TopicArn": topic,
            "Message": serde_json::to_string(ses).unwrap(),
            "Timestamp": sent.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "SignatureVersion": "1",
            "Signature": format!("EXAMPLE{}{}==", md5_hex(sns_id.as_bytes()), md5_hex(kind.as_bytes())),
            "SigningCertURL": format!("https://sns.{REGION}.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem"),
            "UnsubscribeURL": format!("https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic}:{}", uuid("subscription")),
        });
        let body = serde_json::to_string_pretty(&envelope).unwrap();
        json!({ "Records": [sqs_record("cartback-FeedbackQueue-7H8I9J0K1L2M", &uuid(&format!("sqs-{kind}")), &body, sent, "AIDAIT2UOQQY3AUEKVGXU")] })
    }

    /// SES event publishing JSON for the first email of cart-1001.
    fn ses(event_type: &str, message_id: &str, subject: &str, sent: DateTime<Utc>, detail: (&str, Value)) -> Value {
        let mut event = json!({
            "eventType": event_type,
            "mail": {
                "timestamp": sent.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "source": "Demo Shop <shop@example.com>",
                "sourceArn": format!("arn:aws:ses:{REGION}:{ACCOUNT}:identity/shop@example.com"),
                "sendingAccountId": ACCOUNT,
                "messageId": SES_MESSAGE_ID,
                "destination": ["ana@example.com"],
                "headersTruncated": false,
                "headers": [
                    { "name": "From", "value": "Demo Shop <shop@example.com>" },
                    { "name": "To", "value": "ana@example.com" },
                    { "name": "Subject", "value": subject },
                    { "name": "MIME-Version", "value": "1.0" },
                    { "name": "Content-Type", "value": "multipart/alternative; boundary=\"cartback-alt\"" },
                ],
                "commonHeaders": {
                    "from": ["Demo Shop <shop@example.com>"],
                    "to": ["ana@example.com"],
                    "messageId": SES_MESSAGE_ID,
                    "subject": subject,
                },
                "tags": {
                    "ses:operation": ["SendEmail"],
                    "ses:configuration-set": ["SesConfigurationSet-9AbCdEfGhIjK"],
                    "ses:source-ip": ["3.85.20.17"],
                    "ses:from-domain": ["example.com"],
                    "ses:caller-identity": ["cartback-SendEmailFunctionRole-1A2B3C4D5E6F"],
                    "cartback_message_id": [message_id],
                },
            },
        });
        event[detail.0] = detail.1;
        event
    }

    #[tokio::test]
    #[ignore = "rewrites events/: run with --ignored regenerate"]
    async fn regenerate() {
        assert_eq!(SAMPLE_SECRET, "cartback-sample-secret-0123456789");
        // --- apigw: a storefront's batch, then reads.
        let posted = at("2026-11-23T10:02:30Z");
        let body = serde_json::to_string(&json!({ "events": [
            {
                "event_id": "apigw-identify-ana", "type": "identify", "occurred_at": "2026-11-23T10:00:00Z", "customer_id": "cust-ana",
                "customer": { "email": "ana@example.com", "first_name": "Ana", "locale": "fr-FR", "timezone": "Europe/Paris",
                              "consents": { "email": true, "sms": false, "push": false, "web_push": false } }
            },
            {
                "event_id": "apigw-add-1", "type": "add_to_cart", "occurred_at": "2026-11-23T10:01:00Z", "cart_id": "cart-1001", "customer_id": "cust-ana",
                "device": "desktop", "currency": "EUR",
                "items": [
                    { "item_id": "sku-mug", "item_name": "Stoneware mug", "price": "14.90", "quantity": 2,
                      "image_url": "https://cdn.example.com/img/mug.jpg", "url": "https://shop.example.com/p/stoneware-mug" },
                    { "item_id": "sku-teapot", "item_name": "Cast-iron teapot", "price": "39.00", "quantity": 1,
                      "image_url": "https://cdn.example.com/img/teapot.jpg", "url": "https://shop.example.com/p/cast-iron-teapot" }
                ]
            }
        ]}))
        .unwrap();
        write(
            POST_EVENTS,
            &apigw_request(
                "POST",
                "POST /v1/events",
                "/v1/events",
                None,
                Some(&body),
                posted,
                true,
                "cBx1EjPLIAMEJmA=",
            ),
        );
        write(
            GET_CART,
            &apigw_request(
                "GET",
                "GET /v1/carts/{cart_id}",
                "/v1/carts/cart-1001",
                Some(("cart_id", "cart-1001")),
                None,
                at("2026-11-23T10:03:00Z"),
                true,
                "cBx1ShPLIAMEJnQ=",
            ),
        );
        write(
            HEALTHZ,
            &apigw_request(
                "GET",
                "GET /healthz",
                "/healthz",
                None,
                None,
                at("2026-11-23T10:03:10Z"),
                false,
                "cBx1UhPLIAMEJoA=",
            ),
        );
        write(
            OPENAPI,
            &apigw_request(
                "GET",
                "GET /openapi.json",
                "/openapi.json",
                None,
                None,
                at("2026-11-23T10:03:20Z"),
                false,
                "cBx1WBPLIAMEJpQ=",
            ),
        );

        // --- the pipeline on local adapters: the timer ingest arms, the job
        // the checker queues.
        let stack = LocalStack::new(posted);
        assert_eq!(send(&stack, POST_EVENTS).await.status_code, 200);
        let timer = stack.timers.next_due(posted + Duration::days(1)).await.unwrap().expect("ingest armed a timer");
        write(CHECKER, &serde_json::to_value(&timer).unwrap());
        stack.clock.set(timer.due_at);
        handlers::checker(&stack.checker, serde_json::to_value(&timer).unwrap()).await.unwrap();
        let email = stack
            .queue
            .receive(QueueName::Email, timer.due_at, Duration::minutes(5))
            .await
            .unwrap()
            .expect("an email job")
            .job;
        let Outgoing::Email { subject, text, .. } = &email.outgoing else { panic!("not an email") };

        // --- the customer clicks the restore link in that email.
        let marker = format!("{PUBLIC_BASE_URL}/r/");
        let token = text
            .match_indices(&marker)
            .map(|(i, _)| {
                text[i + marker.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                    .collect::<String>()
            })
            .find(|t| {
                cartback_core::signing::verify_link(&sample_secret(), t, timer.due_at)
                    .is_ok_and(|c| c.target.starts_with("https://shop.example.com/cart/restore"))
            })
            .expect("the restore link in the email");
        let clicked = at("2026-11-23T10:47:12Z");
        write(
            REDIRECT,
            &apigw_request(
                "GET",
                "GET /r/{token}",
                &format!("/r/{token}"),
                Some(("token", &token)),
                None,
                clicked,
                false,
                "cBy9KhPLIAMEJqB=",
            ),
        );

        // --- SQS batches. Email: the checker's job, and a record whose body
        // is not a job (it must be reported, and end in the DLQ).
        let queued = timer.due_at + Duration::milliseconds(180);
        let malformed =
            json!({ "message_id": "m_0000000000000000000000ff", "cart_id": "cart-1001", "channel": "email" })
                .to_string();
        write(
            SEND_EMAIL,
            &json!({ "Records": [
                job_record("cartback-EmailQueue-3N4O5P6Q7R8S", &email, queued),
                sqs_record("cartback-EmailQueue-3N4O5P6Q7R8S", &uuid("malformed"), &malformed, queued, "AROA3EXAMPLECHECKER:cartback-checker"),
            ]}),
        );
        let link = |message_id: &str, cart_id: &str| {
            let claims = LinkClaims {
                message_id: message_id.into(),
                cart_id: cart_id.into(),
                target: format!("https://shop.example.com/cart/restore?cart={cart_id}"),
                expires: (queued + Duration::hours(48)).timestamp(),
            };
            format!("{PUBLIC_BASE_URL}/r/{}", sign_link(&sample_secret(), &claims))
        };
        let sms = |cart_id: &str, to: &str, body: String| {
            let message_id = MessageRecord::id_for(cart_id, 0, Channel::Sms);
            MessageJob {
                message_id,
                cart_id: cart_id.into(),
                channel: Channel::Sms,
                outgoing: Outgoing::Sms { to: to.into(), body },
                voucher: None,
            }
        };
        let ben = sms(
            "cart-2002",
            "+14155550123",
            format!(
                "Ben, your Desk lamp is still in your cart: {} Reply STOP to opt out.",
                link(&MessageRecord::id_for("cart-2002", 0, Channel::Sms), "cart-2002")
            ),
        );
        let cleo = sms(
            "cart-3003",
            "+447911123456",
            format!(
                "Cleo, your Wool scarf is waiting: {} Reply STOP to opt out.",
                link(&MessageRecord::id_for("cart-3003", 0, Channel::Sms), "cart-3003")
            ),
        );
        write(
            SEND_SMS,
            &json!({ "Records": [job_record("cartback-SmsQueue-9T0U1V2W3X4Y", &ben, queued), job_record("cartback-SmsQueue-9T0U1V2W3X4Y", &cleo, queued)] }),
        );
        let push_id = MessageRecord::id_for("cart-4004", 1, Channel::Push);
        let push = MessageJob {
            message_id: push_id.clone(),
            cart_id: "cart-4004".into(),
            channel: Channel::Push,
            outgoing: Outgoing::Push {
                platform: cartback_core::event::PushPlatform::Fcm,
                token: "fcm-dQw4w9WgXcQ:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx".into(),
                title: "Dev, your cart is waiting".into(),
                body: "Trail running shoes and 1 more item(s) are saved for you.".into(),
                url: link(&push_id, "cart-4004"),
            },
            voucher: None,
        };
        let web_id = MessageRecord::id_for("cart-5005", 1, Channel::WebPush);
        let web = MessageJob {
            message_id: web_id.clone(),
            cart_id: "cart-5005".into(),
            channel: Channel::WebPush,
            outgoing: Outgoing::WebPush {
                subscription: json!({
                    "endpoint": "https://fcm.googleapis.com/fcm/send/eXaMpLe-SuBsCrIpTiOn:APA91bE",
                    "keys": { "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM", "auth": "tBHItJI5svbpez7KI4CCXg" }
                }).into(),
                title: "Your cart is waiting".into(),
                body: "Linen apron is saved for you.".into(),
                url: link(&web_id, "cart-5005"),
            },
            voucher: None,
        };
        write(
            SEND_PUSH,
            &json!({ "Records": [job_record("cartback-PushQueue-5Z6A7B8C9D0E", &push, queued), job_record("cartback-PushQueue-5Z6A7B8C9D0E", &web, queued)] }),
        );

        // --- SES feedback for that email, as the feedback queue delivers it.
        let sent = timer.due_at + Duration::milliseconds(1118);
        let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let id = &email.message_id;
        let delivered = sent + Duration::milliseconds(1758);
        write(
            SES_DELIVERY,
            &feedback_record(
                &ses(
                    "Delivery",
                    id,
                    subject,
                    sent,
                    (
                        "delivery",
                        json!({
                            "timestamp": ts(delivered), "processingTimeMillis": 1758, "recipients": ["ana@example.com"],
                            "smtpResponse": "250 2.0.0 OK  1795430000 5b1f17b1804b1-4365e1c1d0asi1234567gsmtp",
                            "reportingMTA": "a8-30.smtp-out.amazonses.com", "remoteMtaIp": "142.250.102.26"
                        }),
                    ),
                ),
                delivered + Duration::milliseconds(412),
            ),
        );
        let opened = at("2026-11-23T10:46:40.512Z");
        write(
            SES_OPEN,
            &feedback_record(
                &ses(
                    "Open",
                    id,
                    subject,
                    sent,
                    (
                        "open",
                        json!({ "ipAddress": "198.51.100.23", "timestamp": ts(opened), "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148" }),
                    ),
                ),
                opened + Duration::milliseconds(640),
            ),
        );
        write(
            SES_CLICK,
            &feedback_record(
                &ses(
                    "Click",
                    id,
                    subject,
                    sent,
                    (
                        "click",
                        json!({
                            "ipAddress": "198.51.100.23", "timestamp": ts(clicked), "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                            "link": format!("{PUBLIC_BASE_URL}/r/{token}"), "linkTags": {}
                        }),
                    ),
                ),
                clicked + Duration::milliseconds(590),
            ),
        );
        let bounced = sent + Duration::milliseconds(2290);
        write(
            SES_BOUNCE,
            &feedback_record(
                &ses(
                    "Bounce",
                    id,
                    subject,
                    sent,
                    (
                        "bounce",
                        json!({
                            "bounceType": "Permanent", "bounceSubType": "General",
                            "bouncedRecipients": [{ "emailAddress": "ana@example.com", "action": "failed", "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 The email account that you tried to reach does not exist." }],
                            "timestamp": ts(bounced), "feedbackId": "0100019ab3c4e1f2-2b3c4d5e-6f70-4811-9a2b-3c4d5e6f7081-000000",
                            "reportingMTA": "dns; a8-30.smtp-out.amazonses.com"
                        }),
                    ),
                ),
                bounced + Duration::milliseconds(503),
            ),
        );
        let complained = at("2026-11-23T11:05:00.004Z");
        write(
            SES_COMPLAINT,
            &feedback_record(
                &ses(
                    "Complaint",
                    id,
                    subject,
                    sent,
                    (
                        "complaint",
                        json!({
                            "complainedRecipients": [{ "emailAddress": "ana@example.com" }],
                            "timestamp": ts(complained), "feedbackId": "0100019ab4f0a1b2-3c4d5e6f-7081-4293-a4b5-c6d7e8f90a1b-000000",
                            "userAgent": "Yahoo!-Mail-Feedback/2.0", "complaintFeedbackType": "abuse", "arrivalDate": ts(complained - Duration::seconds(2))
                        }),
                    ),
                ),
                complained + Duration::milliseconds(777),
            ),
        );
    }
}
