//! The report over facts the real services recorded: storefront events into
//! ingest, timers into the checker (which holds half the customers out),
//! jobs into delivery (the outbox sender), purchases into ingest, then
//! `GET /v1/report` on the same local stack. The expected numbers come from
//! the ground truth of the run (who was held out by the stable hash, who bought).

use axum::body::Body;
use axum::http::Request;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use cartback_core::campaign::Campaign;
use cartback_core::ids::CustomerKey;
use cartback_core::measure::{assign_group, Group};
use cartback_core::message::QueueName;
use cartback_core::ports::{CampaignStore, Clock};
use cartback_core::signing::{sign_request, SignedRequest, SIGNATURE_HEADER};
use cartback_tests::openapi::{assert_response, Observed};
use cartback_tests::samples::{sample_secret, LocalStack};

const CARTS: usize = 40;

async fn ingest(stack: &LocalStack, events: Value) {
    let answer =
        stack.api.ingest.ingest_body(&serde_json::to_vec(&json!({ "events": events })).unwrap()).await.unwrap();
    assert_eq!(answer.retry, 0);
}

/// Fires every timer due now, then delivers every email job queued.
async fn run_due_work(stack: &LocalStack) {
    let now = stack.clock.now();
    while let Some(timer) = stack.timers.next_due(now).await.unwrap() {
        stack.checker.on_timer(&timer).await.unwrap();
        stack.timers.complete(&timer).await.unwrap();
    }
    while let Some(received) = stack.queue.receive(QueueName::Email, now, Duration::minutes(5)).await.unwrap() {
        stack.delivery.deliver(&received.job).await.unwrap();
        stack.queue.ack(received.id).await.unwrap();
    }
}

/// GIVEN a one-step email campaign holding out 50% and 40 customers who
/// abandon a cart, every fourth of whom buys two hours later WHEN the
/// pipeline runs and the report is asked THEN its arms, recoveries, messages
/// and attributions equal the run's ground truth.
#[tokio::test]
async fn given_the_real_pipeline_when_carts_are_abandoned_and_some_bought_then_the_report_matches_the_ground_truth() {
    let start: DateTime<Utc> = "2026-11-02T08:00:00Z".parse().unwrap();
    let stack = LocalStack::new(start);
    let mut campaign = Campaign::default_campaign();
    campaign.holdout_percent = 50;
    campaign.steps.truncate(1);
    stack.db.put(&campaign).await.unwrap();

    let carts: Vec<Value> = (0..CARTS)
        .map(|i| {
            json!({ "event_id": format!("add-{i}"), "type": "add_to_cart", "cart_id": format!("cart-{i}"),
                "customer_id": format!("cust-{i}"), "device": "desktop", "currency": "EUR",
                "occurred_at": start.to_rfc3339(),
                "customer": { "email": format!("c{i}@example.com"), "consents": { "email": true } },
                "items": [{ "item_id": "sku-1", "price": "25.00", "quantity": 1 }] })
        })
        .collect();
    ingest(&stack, Value::Array(carts)).await;
    stack.clock.set(start + Duration::minutes(31));
    run_due_work(&stack).await;

    stack.clock.set(start + Duration::hours(2));
    let buyers: Vec<usize> = (0..CARTS).filter(|i| i % 4 == 0).collect();
    let purchases: Vec<Value> = buyers
        .iter()
        .map(|i| {
            json!({ "event_id": format!("buy-{i}"), "type": "purchase", "cart_id": format!("cart-{i}"),
                "customer_id": format!("cust-{i}"), "order_id": format!("order-{i}"), "currency": "EUR",
                "value": "25.00", "occurred_at": (start + Duration::hours(2)).to_rfc3339() })
        })
        .collect();
    ingest(&stack, Value::Array(purchases)).await;
    stack.clock.set(start + Duration::days(3));
    run_due_work(&stack).await;

    let held_out = |i: &usize| {
        assign_group("default", 50, &CustomerKey::Customer(format!("cust-{i}").as_str().into())) == Group::HeldOut
    };
    let treated = (0..CARTS).filter(|i| !held_out(i)).count() as u64;
    let bought_treated = buyers.iter().filter(|i| !held_out(i)).count() as u64;
    let bought_held_out = buyers.len() as u64 - bought_treated;
    assert!(treated > 5 && treated < 35, "the hash splits the 40 customers: {treated} treated");

    let path = "/v1/report?from=2026-11-02&to=2026-11-02";
    let signed = SignedRequest { method: "GET", path_and_query: path, body: b"" };
    let header = sign_request(&sample_secret(), stack.clock.now().timestamp(), &signed);
    let request = Request::builder().uri(path).header(SIGNATURE_HEADER, header).body(Body::empty()).unwrap();
    let observed = Observed::from_app(&stack.app, request).await;
    assert_response("GET", "/v1/report", &observed);
    assert_eq!(observed.status, 200, "{}", String::from_utf8_lossy(&observed.body));
    let report: Value = serde_json::from_slice(&observed.body).unwrap();
    let c = &report["campaigns"][0];

    assert_eq!(c["campaign_id"], "default");
    assert_eq!(c["entered"], CARTS as u64);
    assert_eq!((c["treated"].as_u64(), c["held_out"].as_u64()), (Some(treated), Some(CARTS as u64 - treated)));
    assert_eq!(
        (c["recovered_treated"].as_u64(), c["recovered_held_out"].as_u64()),
        (Some(bought_treated), Some(bought_held_out))
    );
    assert_eq!(c["messages"]["sent"], treated);
    assert_eq!(c["messages"]["would_send"], CARTS as u64 - treated);
    assert_eq!(c["by_step"]["1"]["attributed_orders"], bought_treated);
    assert_eq!(c["by_channel"]["email"]["sent"], treated);
    let revenue = c["attributed_revenue"]["EUR"].as_str().map(|text| text.parse::<cartback_core::Decimal>().unwrap());
    let expected = cartback_core::Decimal::from(25 * bought_treated);
    assert_eq!(revenue, (bought_treated > 0).then_some(expected));
}
