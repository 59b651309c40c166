//! `cartback backtest --aws` against DynamoDB on moto: the same history in
//! a DynamoDB state table (read with a parallel scan) and in a local folder
//! gives the same backtest report, and the scan leaves the table as it was.
#![cfg(feature = "aws")]

use std::process::{Command, Output};
use std::sync::Arc;

use cartback_aws::dynamo::{DynamoCampaignStore, DynamoStateStore};
use cartback_core::campaign::Campaign;
use cartback_core::customer::Customer;
use cartback_core::event::validate_event;
use cartback_core::ids::CustomerKey;
use cartback_core::message::{Channel, MessageRecord, MessageStatus};
use cartback_core::ports::{CampaignStore, CartRecord, EventCommit, EventLog, MessageStore, SystemClock};
use cartback_tests::moto::{create_table, unique, Moto};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

const LIVE: &str = "id = \"live\"\nname = \"Live\"\nholdout_percent = 0\n[[steps]]\ndelay = \"30m\"\n\
                    [steps.channels]\nmobile = [\"email\"]\ndesktop = [\"email\"]\n";

fn at(minutes: i64) -> DateTime<Utc> {
    "2026-11-20T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(minutes)
}

fn backtest(runtime: &[&str], table: &str, draft: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cartback"))
        .args(["backtest", "--campaign", draft.to_str().unwrap(), "--against", "live", "--json", "-"])
        .args(runtime)
        .env("AWS_ENDPOINT_URL", &Moto::global().endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("CARTBACK_CONFIG_TABLE", format!("{table}-config"))
        .env("CARTBACK_STATE_TABLE", table)
        .env("RUST_LOG", "warn")
        .output()
        .expect("cartback runs")
}

fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("the report as JSON")
}

/// GIVEN 30 carts of 12 customers (every fifth bought after an hour) and the live campaign's emails, in
/// DynamoDB and in a local folder
/// WHEN a draft waiting 2 hours is backtested with `--aws --segments 3` and with `--data`
/// THEN both reports are the same, the bought carts decide differently, and the state table is unchanged
#[tokio::test]
async fn given_the_same_history_in_dynamodb_and_locally_when_backtested_then_the_reports_are_identical() {
    let table = unique("backtest");
    let clients = Moto::global().clients().await;
    create_table(&clients, &table, true).await;
    create_table(&clients, &format!("{table}-config"), false).await;
    let dynamo = DynamoStateStore::new(clients.dynamodb.clone(), &table, Duration::days(3650), Arc::new(SystemClock));
    let dir = tempfile::tempdir().unwrap();
    let local = cartback_local::Database::open(dir.path()).unwrap();
    let live = Campaign::from_toml(LIVE).unwrap();
    DynamoCampaignStore::new(clients.dynamodb.clone(), format!("{table}-config")).put(&live).await.unwrap();
    local.put(&live).await.unwrap();
    for n in 0..30i64 {
        let (cart_id, customer_id) = (format!("cart-{n}"), format!("cust-{}", n % 12));
        let raw = |id: String, kind: &str, minutes: i64| {
            validate_event(
                &json!({"event_id": id, "type": kind, "cart_id": cart_id, "customer_id": customer_id,
                        "occurred_at": at(minutes), "currency": "EUR", "order_id": format!("o-{n}"),
                        "customer": {"email": "shopper@example.com", "consents": {"email": true}},
                        "items": [{"item_id": "sku", "price": "12.00", "quantity": 1}]}),
                at(60 * 24 * 30),
            )
            .unwrap()
        };
        let mut events = vec![raw(format!("e{n}"), "add_to_cart", n * 60 * 24 / 3)];
        if n % 5 == 0 {
            events.push(raw(format!("p{n}"), "purchase", n * 60 * 24 / 3 + 60));
        }
        let mut record = CartRecord::new(cart_id.as_str(), at(0));
        let mut customer = Customer::new(customer_id.as_str());
        for event in &events {
            record.insert_event(event.clone());
            customer.apply(event);
        }
        let message = MessageRecord {
            message_id: MessageRecord::id_for(&cart_id, 0, Channel::Email),
            cart_id: cart_id.as_str().into(),
            customer_key: CustomerKey::Customer(customer_id.as_str().into()),
            campaign_id: "live".into(),
            step: 0,
            channel: Channel::Email,
            decided_at: at(n * 60 * 24 / 3 + 30),
            status: MessageStatus::Queued,
            engagement: Default::default(),
            variant: None,
        };
        // A customer's later carts meet the cooldown: only first carts were sent to.
        let first_cart = n < 12;
        for store in [&dynamo as &dyn StoreBoth, &local] {
            let commit = EventCommit {
                event_id: events[0].event_id.clone(),
                received_at: at(0),
                cart: Some(record.clone()),
                customer: first_cart.then(|| (customer.clone(), 0)),
                timeline: None,
            };
            store.commit_event(commit).await.unwrap();
            if first_cart {
                store.create_message(&message).await.unwrap();
            }
        }
    }
    let draft = dir.path().join("draft.toml");
    std::fs::write(&draft, LIVE.replace("\"live\"", "\"patient\"").replace("\"30m\"", "\"2h\"")).unwrap();
    let before = items(&clients, &table).await;

    let on_aws = json(&backtest(&["--aws", "--segments", "3"], &table, &draft));
    let on_local = json(&backtest(&["--data", dir.path().to_str().unwrap()], &table, &draft));

    assert_eq!(on_aws, on_local);
    assert_eq!(on_aws["carts"], 30);
    assert_eq!(on_aws["against"]["live_sent"], 12);
    // The first carts bought after an hour (0, 5, 10) get no draft email.
    let differing: Vec<&str> =
        on_aws["against"]["differing"].as_array().unwrap().iter().map(|c| c["cart_id"].as_str().unwrap()).collect();
    for bought in ["cart-0", "cart-5", "cart-10"] {
        assert!(differing.contains(&bought), "{bought}: {on_aws:#}");
    }
    assert_eq!(items(&clients, &table).await, before, "the backtest wrote nothing");
}

/// Every item's key and version (`version` on carts and customers, `rev` on messages), sorted: a write
/// changes one of them or adds an item.
async fn items(clients: &cartback_aws::clients::Clients, table: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut start = None;
    loop {
        let page = clients.dynamodb.scan().table_name(table).set_exclusive_start_key(start).send().await.unwrap();
        all.extend(page.items().iter().map(|item| {
            let text = |name: &str| item.get(name).map(|v| format!("{v:?}")).unwrap_or_default();
            [text("pk"), text("sk"), text("version"), text("rev"), text("status")].join(" ")
        }));
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => break,
        }
    }
    all.sort();
    all
}

/// What the test writes through, on both runtimes.
trait StoreBoth: EventLog + MessageStore {}
impl<T: EventLog + MessageStore> StoreBoth for T {}
