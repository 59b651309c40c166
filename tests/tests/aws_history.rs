//! The DynamoDB `HistoryReader` against moto: a parallel scan that reads
//! every cart, customer, message and voucher once, and never writes (the calls are
//! counted on the wire).

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use cartback_aws::clients::Clients;
use cartback_aws::dynamo::DynamoStateStore;
use cartback_aws::history::DynamoHistoryReader;
use cartback_core::customer::Customer;
use cartback_core::event::validate_event;
use cartback_core::ids::CustomerKey;
use cartback_core::message::{Channel, MessageRecord, MessageStatus};
use cartback_core::ports::{CartRecord, EventCommit, EventLog, HistoryReader, MessageStore, VoucherStore};
use cartback_core::voucher::{IssueOutcome, VoucherOwner};
use cartback_tests::faults::FaultyHttpClient;
use cartback_tests::moto::{Moto, Stack, TestClock};
use cartback_tests::voucher_contract::voucher_for;

fn t0() -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_carts_customers_messages_and_vouchers_when_scanned_in_segments_then_each_is_read_once_with_scans_only() {
    // GIVEN 60 carts of 20 customers, a message for every third cart and a
    // voucher for every fifth (beside each, its cart's voucher item)
    let moto = Moto::global();
    let stack = Stack::create(moto.clients().await, 3).await;
    let clock = TestClock::new(t0());
    let store =
        DynamoStateStore::new(stack.clients.dynamodb.clone(), &stack.state_table, Duration::days(90), clock.clone());
    let mut issued = Vec::new();
    for n in 0..60 {
        let customer_id = format!("cust-{}", n % 20);
        let event = validate_event(
            &json!({"event_id": format!("e{n}"), "type": "add_to_cart", "cart_id": format!("cart-{n}"),
                    "customer_id": customer_id, "customer": {"email": "ana@example.com"},
                    "items": [{"item_id": "sku", "quantity": 1}]}),
            t0(),
        )
        .unwrap();
        let mut cart = CartRecord::new(format!("cart-{n}"), t0());
        cart.insert_event(event.clone());
        let customer = (n < 20).then(|| {
            let mut c = Customer::new(customer_id.as_str());
            c.apply(&event);
            (c, 0)
        });
        let commit =
            EventCommit { event_id: event.event_id, received_at: t0(), cart: Some(cart), customer, timeline: None };
        store.commit_event(commit).await.unwrap();
        if n % 3 == 0 {
            let cart_id = format!("cart-{n}");
            let message = MessageRecord {
                message_id: MessageRecord::id_for(&cart_id, 0, Channel::Email),
                cart_id: cart_id.as_str().into(),
                customer_key: CustomerKey::Customer(customer_id.as_str().into()),
                campaign_id: "default".into(),
                step: 0,
                channel: Channel::Email,
                decided_at: t0(),
                status: MessageStatus::Queued,
                engagement: Default::default(),
                variant: None,
            };
            store.create_message(&message).await.unwrap();
        }
        if n % 5 == 0 {
            let owner = VoucherOwner::customer(&customer_id.as_str().into());
            let voucher = voucher_for(&owner, t0() - Duration::hours(1));
            let voucher = cartback_core::voucher::Voucher { cart_id: format!("cart-{n}").into(), ..voucher };
            assert_eq!(store.issue_voucher(&voucher).await.unwrap(), IssueOutcome::Issued);
            issued.push(voucher);
        }
    }

    // WHEN read through a counting client in 4 segments
    let (counted, wire) = FaultyHttpClient::wrap(&Moto::sdk_config_for(&moto.endpoint).await, 1, 0);
    let reader = DynamoHistoryReader::new(Clients::new(&counted).dynamodb.clone(), &stack.state_table, 4);
    let mut carts = Vec::new();
    let cart_count = reader.scan_carts(&mut |c| carts.push(c)).await.unwrap();
    let mut customers = Vec::new();
    let customer_count = reader.scan_customers(&mut |c| customers.push(c.customer_id)).await.unwrap();
    let mut messages = Vec::new();
    let message_count = reader.scan_messages(&mut |m| messages.push(m.message_id)).await.unwrap();
    let mut vouchers = Vec::new();
    let voucher_count = reader.scan_vouchers(&mut |v| vouchers.push(v)).await.unwrap();

    // THEN every record once, whole; only Scan calls, at least one per segment and kind
    assert_eq!((cart_count, customer_count, message_count, voucher_count), (60, 20, 20, 12));
    vouchers.sort_by(|a, b| a.code.cmp(&b.code));
    issued.sort_by(|a, b| a.code.cmp(&b.code));
    assert_eq!(vouchers, issued, "each voucher once, whole");
    let mut ids: Vec<String> = carts.iter().map(|c| c.cart_id.to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 60, "each cart once");
    assert!(carts.iter().all(|c| c.events.len() == 1), "carts come back with their events");
    // (read through the projection: each cart's own event, whole)
    let cart_7 = carts.iter().find(|c| c.cart_id.as_str() == "cart-7").unwrap();
    assert_eq!((cart_7.events[0].event_id.as_str(), cart_7.events[0].items.len()), ("e7", 1));
    assert_eq!(cart_7.created_at, t0());
    customers.sort();
    customers.dedup();
    assert_eq!(customers.len(), 20);
    let operations = wire.counts().operations;
    assert_eq!(operations.keys().collect::<Vec<_>>(), ["DynamoDB_20120810.Scan"], "{operations:?}");
    assert!(operations["DynamoDB_20120810.Scan"] >= 16, "{operations:?}");
}
