//! Loading a backtest's history at scale: what `cartback backtest` pays
//! before the replay starts. One mode per run (each its own process, so the
//! peak memory printed is that mode's):
//!
//! - `sqlite`: a `cartback dev` database on disk (built once under the
//!   target directory, reused) read through its `HistoryReader` into the
//!   grouped history, as `cartback backtest --data DIR` reads it;
//! - `dynamo`: the state table's Scan items (made as the store writes them)
//!   decoded into carts and grouped, as `--aws` does with each page; the
//!   network and DynamoDB itself are not in it;
//! - `jsonl`: a JSON Lines export of canonical events (written once) read as
//!   `--events FILE` reads it;
//! - `*-before`: the same input read the way it was read before the loading
//!   was optimised, for a side-by-side figure;
//! - `replay`: `sqlite`, then the backtest of the shipped campaign over it
//!   against itself as the live campaign (`--against default`, the CLI's
//!   default: two replays per customer and the comparison), the whole cost
//!   of a backtest.
//!
//! Carts are realistic: 3 to 6 events and 1 to 4 items each, a third
//! guests, customers with one to three carts, one cart in four bought, a
//! profile with contact details and consents, live progress and a message
//! record for carts live traffic reminded.
//!
//! Run: `HISTORY_LOAD=sqlite HISTORY_CARTS=1000000 cargo bench -p
//! cartback-tests --bench history_load` (scripts/bench.sh runs every mode).

#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use cartback_core::backtest::{self, History, HistoryBuilder, Options};
use cartback_core::campaign::Campaign;
use cartback_core::customer::Customer;
use cartback_core::engine::{Progress, StepDispatched};
use cartback_core::event::{ConsentPatch, CustomerPatch, Device, Event, EventType, Item};
use cartback_core::ids::{CustomerId, CustomerKey};
use cartback_core::measure::report::Prices;
use cartback_core::message::{Channel, MessageRecord, MessageStatus};
use cartback_core::ports::CartRecord;
use cartback_local::sqlite::Database;
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

/// A deterministic spread of `n` over `0..m`.
fn pick(n: usize, salt: u64, m: u64) -> u64 {
    let mut x = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 29)) % m
}

fn item(n: usize, i: u64) -> Item {
    let sku = pick(n, 10 + i, 5_000);
    Item {
        item_id: format!("sku-{sku}"),
        item_name: Some(format!("Stoneware mug no. {sku}, 350 ml")),
        price: Some(Decimal::new(990 + (sku as i64 % 40) * 100, 2)),
        quantity: 1 + pick(n, 20 + i, 3) as u32,
        image_url: Some(format!("https://shop.example.com/images/products/{sku}/main-800x800.jpg")),
        url: Some(format!("https://shop.example.com/products/stoneware-mug-{sku}")),
        variant: None,
    }
}

/// Cart `n`: its events (in order), its customer (`None`: a guest), and
/// whether live traffic reminded it.
fn cart(n: usize, start: DateTime<Utc>) -> (Vec<Event>, Option<String>) {
    let cart_id = format!("c_{n:08}_{:06x}", pick(n, 1, 1 << 24));
    let customer = (!n.is_multiple_of(3)).then(|| format!("cust-{:07}", n / 2));
    let at = start + Duration::minutes(pick(n, 2, 365 * 24 * 60) as i64);
    let count = 3 + pick(n, 3, 4) as usize;
    let items = 1 + pick(n, 4, 4);
    let bought = n.is_multiple_of(4);
    let patch = CustomerPatch {
        email: Some(format!("shopper{n}@example.com").as_str().into()),
        first_name: Some("Ana".into()),
        locale: Some("en-GB".into()),
        consents: Some(ConsentPatch { email: Some(pick(n, 5, 5) != 0), ..Default::default() }),
        ..Default::default()
    };
    let events = (0..count)
        .map(|i| {
            let last = i + 1 == count;
            let kind = match i {
                _ if last && bought => EventType::Purchase,
                _ if last => EventType::BeginCheckout,
                0 => EventType::AddToCart,
                _ if i as u64 <= items => EventType::AddToCart,
                _ => EventType::CartUpdate,
            };
            let lines = match kind {
                EventType::Purchase => Vec::new(),
                EventType::AddToCart => vec![item(n, (i as u64).min(items - 1))],
                _ => (0..items).map(|k| item(n, k)).collect(),
            };
            Event {
                event_id: format!("evt_{n:08}_{i}").into(),
                kind,
                occurred_at: at + Duration::minutes(i as i64 * 3 + if last && bought { 180 } else { 0 }),
                cart_id: Some(cart_id.as_str().into()),
                customer_id: customer.as_deref().map(Into::into),
                device: Some(if n.is_multiple_of(2) { Device::Mobile } else { Device::Desktop }),
                currency: Some("EUR".into()),
                items: lines,
                order_id: (kind == EventType::Purchase).then(|| format!("order-{n}")),
                value: (kind == EventType::Purchase).then(|| Decimal::new(4990, 2)),
                coupon: None,
                customer: (i == 0 || kind == EventType::BeginCheckout).then(|| patch.clone()),
                answer: None,
            }
        })
        .collect();
    (events, customer)
}

/// Cart `n` as the store keeps it, with the customer profile folded from
/// its events and the message live traffic sent for it (carts not bought).
fn stored(n: usize, start: DateTime<Utc>) -> (CartRecord, Option<Customer>, Option<MessageRecord>) {
    let (events, customer_id) = cart(n, start);
    let first = events[0].occurred_at;
    let last = events[events.len() - 1].occurred_at;
    let mut record = CartRecord::new(events[0].cart_id.clone().unwrap(), first);
    let mut customer = customer_id.as_deref().map(Customer::new);
    for event in events {
        if let Some(c) = customer.as_mut() {
            c.apply(&event);
        }
        record.insert_event(event);
    }
    record.updated_at = last;
    let message = (!n.is_multiple_of(4)).then(|| {
        let at = last + Duration::hours(1);
        let message_id = MessageRecord::id_for(record.cart_id.as_str(), 0, Channel::Email);
        record.progress = Progress {
            campaign_id: Some("default".into()),
            steps: vec![StepDispatched {
                step: 0,
                channel: Channel::Email,
                message_id: message_id.clone(),
                at,
                skipped: false,
            }],
            group: None,
            variant: None,
        };
        MessageRecord {
            message_id,
            cart_id: record.cart_id.clone(),
            customer_key: CustomerKey::for_cart(customer_id.as_deref().map(CustomerId::from).as_ref(), &record.cart_id),
            campaign_id: "default".into(),
            step: 0,
            channel: Channel::Email,
            decided_at: at,
            status: MessageStatus::Sent { provider_message_id: format!("0100019{n:012x}-ses"), at },
            engagement: Default::default(),
            variant: None,
        }
    });
    (record, customer, message)
}

fn start() -> DateTime<Utc> {
    "2025-11-01T00:00:00Z".parse().unwrap()
}

/// The folder the inputs are built in, once per size.
fn workdir(carts: usize) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("history-load-{carts}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `cartback dev` database holding `carts` carts, their customers and
/// messages, written with the store's own schema and JSON (one transaction).
fn sqlite_store(carts: usize) -> PathBuf {
    let dir = workdir(carts).join("data");
    let done = dir.join("complete");
    if done.exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let built = Instant::now();
    drop(Database::open(&dir).unwrap()); // the schema, by the store's own migrations
    let mut conn = rusqlite::Connection::open(dir.join("cartback.db")).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut cart_row =
            tx.prepare("INSERT INTO carts (cart_id, version, record, updated_at) VALUES (?1, 1, ?2, ?3)").unwrap();
        let mut link =
            tx.prepare("INSERT OR IGNORE INTO cart_customers (customer_id, cart_id) VALUES (?1, ?2)").unwrap();
        let mut message_row = tx
            .prepare("INSERT INTO messages (message_id, cart_id, customer_key, decided_at, record) VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        let mut customer_row = tx
            .prepare(
                "INSERT INTO customers (customer_id, version, record, updated_at) VALUES (?1, 1, ?2, ?3)
                 ON CONFLICT (customer_id) DO UPDATE SET record = ?2",
            )
            .unwrap();
        let mut profiles: HashMap<String, Customer> = HashMap::new();
        for n in 0..carts {
            let (record, customer, message) = stored(n, start());
            let json = serde_json::to_string(&record).unwrap();
            cart_row.execute(rusqlite::params![record.cart_id.as_str(), json, record.updated_at.to_rfc3339()]).unwrap();
            if let Some(customer) = customer {
                let id = customer.customer_id.as_str().to_owned();
                link.execute(rusqlite::params![id, record.cart_id.as_str()]).unwrap();
                // A customer's second cart (n, n+1 share one) adds to the profile.
                let profile = profiles.entry(id).or_insert_with(|| Customer::new(customer.customer_id.clone()));
                for event in &record.events {
                    profile.apply(event);
                }
                if n % 2 == 1 || n + 1 == carts {
                    let profile = profiles.remove(customer.customer_id.as_str()).unwrap();
                    let json = serde_json::to_string(&profile).unwrap();
                    customer_row
                        .execute(rusqlite::params![profile.customer_id.as_str(), json, record.updated_at.to_rfc3339()])
                        .unwrap();
                }
            }
            if let Some(m) = message {
                let json = serde_json::to_string(&m).unwrap();
                let key = m.customer_key.to_string();
                message_row
                    .execute(rusqlite::params![
                        m.message_id.as_str(),
                        m.cart_id.as_str(),
                        key,
                        m.decided_at.to_rfc3339(),
                        json
                    ])
                    .unwrap();
            }
        }
        for profile in profiles.into_values() {
            let json = serde_json::to_string(&profile).unwrap();
            customer_row.execute(rusqlite::params![profile.customer_id.as_str(), json, start().to_rfc3339()]).unwrap();
        }
    }
    tx.commit().unwrap();
    drop(conn);
    std::fs::write(&done, b"").unwrap();
    let size = std::fs::metadata(dir.join("cartback.db")).map(|m| m.len()).unwrap_or(0);
    eprintln!("built the SQLite store ({:.0} MB) in {:.0} s", size as f64 / 1e6, built.elapsed().as_secs_f64());
    dir
}

/// The carts' events as a JSON Lines export, in time order per cart.
fn jsonl_file(carts: usize) -> PathBuf {
    let path = workdir(carts).join("events.jsonl");
    if path.exists() {
        return path;
    }
    let partial = path.with_extension("partial");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&partial).unwrap());
    for n in 0..carts {
        for event in cart(n, start()).0 {
            serde_json::to_writer(&mut out, &event).unwrap();
            out.write_all(b"\n").unwrap();
        }
    }
    out.into_inner().unwrap().sync_all().unwrap();
    std::fs::rename(&partial, &path).unwrap();
    path
}

/// Cart `n` as a Scan item of the state table.
fn scan_item(n: usize) -> HashMap<String, AttributeValue> {
    let (record, _, _) = stored(n, start());
    let mut item: HashMap<String, AttributeValue> = serde_dynamo::aws_sdk_dynamodb_1::to_item(&record).unwrap();
    item.insert("pk".into(), AttributeValue::S(format!("CART#{}", record.cart_id.as_str())));
    item.insert("sk".into(), AttributeValue::S("STATE".into()));
    item.insert("version".into(), AttributeValue::N("3".into()));
    item.insert("expires_at".into(), AttributeValue::N("1798761600".into()));
    item
}

/// Peak resident memory of this process so far (Linux), in MB.
fn peak_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn report(mode: &str, carts: usize, seconds: f64, history: &History) {
    let peak = peak_mb().map_or("n/a".to_owned(), |mb| format!("{mb:.0} MB"));
    eprintln!(
        "{mode}: {} carts of {} customers loaded in {seconds:.1} s ({:.0} carts/s), peak resident {peak}",
        history.cart_count,
        history.customers.len(),
        carts as f64 / seconds,
    );
}

fn options() -> Options {
    Options {
        draft: Campaign::default_campaign(),
        against: Some(Campaign::default_campaign().id),
        from: None,
        to: None,
        channels: Channel::ALL.to_vec(),
        prices: Prices::default(),
        until: None,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; no criterion here (one timed run each).
    let mode = std::env::var("HISTORY_LOAD").unwrap_or_else(|_| "sqlite".into());
    let carts: usize = std::env::var("HISTORY_CARTS").ok().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    match mode.as_str() {
        "sqlite" | "sqlite-before" | "replay" => {
            let dir = sqlite_store(carts);
            let db = Database::open(&dir).unwrap();
            let began = Instant::now();
            let history = if mode == "sqlite-before" {
                runtime.block_on(before::load_sqlite(&db))
            } else {
                runtime.block_on(backtest::load_history(&db, &mut |_| {})).unwrap()
            };
            let loaded = began.elapsed().as_secs_f64();
            report(&mode, carts, loaded, &history);
            if mode == "replay" {
                let began = Instant::now();
                let live = [Campaign::default_campaign()];
                let out = backtest::run(&history, &live, &options(), None, &mut |_| {}).unwrap();
                let replayed = began.elapsed().as_secs_f64();
                let against = out.against.as_ref().unwrap();
                eprintln!(
                    "replay against {:?}: {:.1} s ({:.0} carts/s); load and replay {:.1} min on one core, {} \
                     entering, {} sent, live sent {}, {} replay mismatches, peak resident {}",
                    against.campaign_id,
                    replayed,
                    carts as f64 / replayed,
                    (loaded + replayed) / 60.0,
                    out.entering,
                    out.steps.iter().map(|s| s.sent).sum::<u64>(),
                    against.live_sent,
                    against.replay_mismatches,
                    peak_mb().map_or("n/a".to_owned(), |mb| format!("{mb:.0} MB"))
                );
            }
        }
        "dynamo" | "dynamo-before" => {
            // Pages of 1,000 items made outside the clock (as the Scan
            // returns them: projected, since the optimisation), decoded inside it.
            let mut builder = HistoryBuilder::default();
            let mut decoding = std::time::Duration::ZERO;
            for page in (0..carts).collect::<Vec<_>>().chunks(1000) {
                let mut items: Vec<_> = page.iter().map(|&n| scan_item(n)).collect();
                if mode == "dynamo" {
                    let projection = cartback_aws::history::CART_PROJECTION;
                    items.iter_mut().for_each(|i| i.retain(|name, _| projection.contains(&name.as_str())));
                }
                let began = Instant::now();
                for item in items {
                    let cart = if mode == "dynamo" {
                        cartback_aws::history::cart_from_item(item).unwrap()
                    } else {
                        serde_dynamo::aws_sdk_dynamodb_1::from_item(item).unwrap()
                    };
                    builder.add_cart(cart);
                }
                decoding += began.elapsed();
            }
            let began = Instant::now();
            let history = builder.build();
            report(&mode, carts, (decoding + began.elapsed()).as_secs_f64(), &history);
        }
        "jsonl" | "jsonl-before" => {
            let path = jsonl_file(carts);
            let began = Instant::now();
            let history = if mode == "jsonl" {
                let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
                backtest::history::history_from_reader(file, Utc::now()).unwrap()
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                backtest::history_from_events(&text, Utc::now()).unwrap()
            };
            report(&mode, carts, began.elapsed().as_secs_f64(), &history);
        }
        other => panic!(
            "HISTORY_LOAD={other}: one of sqlite, sqlite-before, replay, dynamo, dynamo-before, jsonl, jsonl-before"
        ),
    }
}

/// The SQLite read as it was before: pages of 500 rows copied out as
/// strings on SQLite's thread, each decoded whole (live progress included)
/// on the caller's.
mod before {
    use std::sync::{Arc, Mutex};

    use super::*;

    pub async fn load_sqlite(db: &Database) -> History {
        let conn = Arc::new(Mutex::new(rusqlite::Connection::open(db.path()).unwrap()));
        let mut builder = HistoryBuilder::default();
        for (table, key) in [("carts", "cart_id"), ("customers", "customer_id"), ("messages", "message_id")] {
            let sql = format!("SELECT {key}, record FROM {table} WHERE {key} > ?1 ORDER BY {key} LIMIT 500");
            let mut after = String::new();
            loop {
                let (conn, sql, key) = (conn.clone(), sql.clone(), after.clone());
                let rows: Vec<(String, String)> = tokio::task::spawn_blocking(move || {
                    let conn = conn.lock().unwrap();
                    let mut stmt = conn.prepare_cached(&sql).unwrap();
                    let rows = stmt.query_map([&key], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
                    rows.collect::<Result<Vec<_>, _>>().unwrap()
                })
                .await
                .unwrap();
                let Some((last, _)) = rows.last() else { break };
                after = last.clone();
                for (_, json) in rows {
                    match table {
                        "carts" => builder.add_cart(serde_json::from_str(&json).unwrap()),
                        "customers" => builder.add_customer(serde_json::from_str(&json).unwrap()),
                        _ => builder.add_message(serde_json::from_str(&json).unwrap()),
                    }
                }
            }
        }
        builder.build()
    }
}
