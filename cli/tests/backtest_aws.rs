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
use cartback_core::ports::{CampaignStore, CartRecord, EventCommit, EventLog, MessageStore, SystemClock, VoucherStore};
use cartback_core::voucher::{Discount, TierName, Voucher, VoucherCode, VoucherOwner, VoucherStatus, VoucherTerms};
use cartback_tests::moto::{create_table, unique, Moto};
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
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
        let key = CustomerKey::Customer(customer_id.as_str().into());
        let decided_at = at(n * 60 * 24 / 3 + 30);
        let message = MessageRecord::decided(
            &cart_id.as_str().into(),
            &key,
            "live",
            0,
            Channel::Email,
            decided_at,
            MessageStatus::Queued,
        );
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

/// The live campaign, and a draft of it offering 10% off (guests too).
const OFFER: &str = "id = \"offer\"\nname = \"Offer\"\nholdout_percent = 0\n\
                     require_explicit_consent_for_guests = false\n[[steps]]\ndelay = \"30m\"\n\
                     [steps.channels]\nmobile = [\"email\"]\ndesktop = [\"email\"]\n\
                     [steps.offer.standard]\npercent_off = \"10\"\n[steps.offer.recovery]\npercent_off = \"10\"\n";

const DAY: i64 = 24 * 60;

/// A canonical event at `minutes` after the start; `customer` is its `customer` patch, if any.
fn event(id: &str, kind: &str, cart: Option<&str>, customer_id: Option<&str>, minutes: i64) -> serde_json::Value {
    let mut raw = json!({"event_id": id, "type": kind, "occurred_at": at(minutes)});
    if let Some(cart) = cart {
        raw["cart_id"] = json!(cart);
        raw["currency"] = json!("EUR");
        raw["items"] = json!([{"item_id": "sku", "price": "12.00", "quantity": 1}]);
    }
    if let Some(customer_id) = customer_id {
        raw["customer_id"] = json!(customer_id);
    }
    raw
}

fn with_customer(mut raw: serde_json::Value, patch: serde_json::Value) -> serde_json::Value {
    raw["customer"] = patch;
    raw
}

/// GIVEN, in DynamoDB and in a local folder, in time order:
///   day 0 ana's cart a1 (email consent), emailed by live with a live voucher;
///   day 1 bo's cart b1 (no consent yet); day 2 bo grants email consent;
///   day 3 a guest's cart g1 (her own consent); day 8 ana's cart a2;
///   day 9 ana withdraws her consent; day 10 bo's cart b2; day 17 ana's cart a3;
///   day 18 bo gives his first name; live's emails to a2, b2 and g1 recorded
/// WHEN a draft offering a voucher is backtested from day 1 with `--aws --segments 2` and with `--data`
/// THEN both reports are the same; consents are those of each moment (b1 and a3 not emailed, though
/// the profiles now say bo yes and ana no); live's voucher on a1, read from the store, caps a2's;
/// b2 and the guest get a voucher each; the live replay matches its records; the table is unchanged
#[tokio::test]
async fn given_vouchers_a_guest_and_consent_changes_when_backtested_on_dynamodb_then_each_counts_at_its_time() {
    let table = unique("backtest-mixed");
    let clients = Moto::global().clients().await;
    create_table(&clients, &table, true).await;
    create_table(&clients, &format!("{table}-config"), false).await;
    let dynamo = DynamoStateStore::new(clients.dynamodb.clone(), &table, Duration::days(3650), Arc::new(SystemClock));
    let dir = tempfile::tempdir().unwrap();
    let local = cartback_local::Database::open(dir.path()).unwrap();
    let live = Campaign::from_toml(LIVE).unwrap();
    DynamoCampaignStore::new(clients.dynamodb.clone(), format!("{table}-config")).put(&live).await.unwrap();
    local.put(&live).await.unwrap();

    let consent = |granted: bool| json!({"email": "someone@example.com", "consents": {"email": granted}});
    let raw = [
        with_customer(event("a1", "add_to_cart", Some("a1"), Some("ana"), 0), consent(true)),
        with_customer(event("b1", "add_to_cart", Some("b1"), Some("bo"), DAY), json!({"email": "bo@example.com"})),
        with_customer(event("bo-yes", "identify", None, Some("bo"), 2 * DAY), consent(true)),
        with_customer(event("g1", "add_to_cart", Some("g1"), None, 3 * DAY), consent(true)),
        event("a2", "add_to_cart", Some("a2"), Some("ana"), 8 * DAY),
        with_customer(event("ana-no", "identify", None, Some("ana"), 9 * DAY), consent(false)),
        event("b2", "add_to_cart", Some("b2"), Some("bo"), 10 * DAY),
        event("a3", "add_to_cart", Some("a3"), Some("ana"), 17 * DAY),
        // The history reaches day 18: a3's check on day 17 is run.
        with_customer(event("bo-name", "identify", None, Some("bo"), 18 * DAY), json!({"first_name": "Bo"})),
    ];
    let events: Vec<_> = raw.iter().map(|e| validate_event(e, at(30 * DAY)).unwrap()).collect();
    let mut customers: std::collections::BTreeMap<String, Customer> = Default::default();
    let stores: [&dyn StoreBoth; 2] = [&dynamo, &local];
    for store in stores {
        // One event a cart: each cart's record is its one event.
        for event in events.iter().filter(|e| e.cart_id.is_some()) {
            let mut cart = CartRecord::new(event.cart_id.clone().unwrap(), event.occurred_at);
            cart.insert_event(event.clone());
            let commit = EventCommit {
                event_id: event.event_id.clone(),
                received_at: event.occurred_at,
                cart: Some(cart),
                customer: None,
                timeline: None,
            };
            store.commit_event(commit).await.unwrap();
        }
    }
    for event in &events {
        if let Some(id) = &event.customer_id {
            customers.entry(id.as_str().to_owned()).or_insert_with(|| Customer::new(id.clone())).apply(event);
        }
    }
    // Profiles as they are now: ana no longer consents, bo does.
    assert_eq!(customers["ana"].profile.consents.unwrap().email, Some(false));
    assert_eq!(customers["bo"].profile.consents.unwrap().email, Some(true));
    let customer_key = |cart: &str| match cart {
        "g1" => CustomerKey::Guest(cart.into()),
        _ if cart.starts_with('a') => CustomerKey::Customer("ana".into()),
        _ => CustomerKey::Customer("bo".into()),
    };
    let sent = |cart: &str, day: i64| {
        MessageRecord::decided(
            &cart.into(),
            &customer_key(cart),
            "live",
            0,
            Channel::Email,
            at(day * DAY + 30),
            MessageStatus::Queued,
        )
    };
    let live_voucher = Voucher {
        code: VoucherCode::generate(Some("LV"), &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3)),
        cart_id: "a1".into(),
        owner: VoucherOwner::customer(&"ana".into()),
        customer_key: customer_key("a1"),
        campaign_id: "live".into(),
        step: 0,
        variant: None,
        terms: VoucherTerms {
            tier: TierName::Standard,
            discount: Discount::PercentOff { percent: Decimal::from(10), max_amount: None },
            currency: "EUR".into(),
            min_cart_value: None,
        },
        issued_at: at(30),
        expires_at: at(7 * DAY + 30),
        status: VoucherStatus::Issued,
        published_at: None,
    };
    for store in stores {
        for (n, customer) in customers.values().enumerate() {
            let commit = EventCommit {
                event_id: format!("profile-{n}").as_str().into(),
                received_at: at(30 * DAY),
                cart: None,
                customer: Some((customer.clone(), 0)),
                timeline: None,
            };
            store.commit_event(commit).await.unwrap();
        }
        for message in [sent("a1", 0), sent("g1", 3), sent("a2", 8), sent("b2", 10)] {
            store.create_message(&message).await.unwrap();
        }
        store.issue_voucher(&live_voucher).await.unwrap();
    }
    let draft = dir.path().join("draft.toml");
    std::fs::write(&draft, OFFER).unwrap();
    let before = items(&clients, &table).await;

    let from = ["--from", "2026-11-21"];
    let on_aws = json(&backtest(&[&["--aws", "--segments", "2"][..], &from].concat(), &table, &draft));
    let on_local = json(&backtest(&[&["--data", dir.path().to_str().unwrap()][..], &from].concat(), &table, &draft));

    assert_eq!(on_aws, on_local);
    let report = &on_aws;
    assert_eq!((report["carts"].as_u64(), report["entering"].as_u64()), (Some(5), Some(3)), "{report:#}");
    assert_eq!(report["steps"][0]["sent"], 3, "{report:#}");
    // b1 before bo's grant, a3 after ana's withdrawal
    assert_eq!(report["suppressed"], json!([{"step": 1, "code": "no_consent", "carts": 2}]), "{report:#}");
    // b2 and g1: 10% of 12.00 each; a2 none, as live's voucher on a1 is within the cap window
    assert_eq!(report["vouchers"]["issued"], 2, "{report:#}");
    assert_eq!(report["vouchers"]["face_value"], json!({"EUR": "2.40"}), "{report:#}");
    let against = &report["against"];
    assert_eq!(
        (against["live_sent"].as_u64(), against["replay_mismatches"].as_u64()),
        (Some(3), Some(0)),
        "{report:#}"
    );
    assert_eq!(against["carts_deciding_differently"], 0, "{report:#}");
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

/// What the tests write through, on both runtimes.
trait StoreBoth: EventLog + MessageStore + VoucherStore {}
impl<T: EventLog + MessageStore + VoucherStore> StoreBoth for T {}
