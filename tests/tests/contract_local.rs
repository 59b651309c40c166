//! The port contract suite (`cartback_tests::contract`) against the local
//! adapters: SQLite state, campaigns and timers in a fresh temporary folder
//! per test.

use std::sync::Arc;

use async_trait::async_trait;
use cartback_core::ports::TimerPayload;
use cartback_local::{Database, SqliteScheduler, TimerWheel};
use cartback_tests::contract::{Adapters, ArmedTimers};

struct LocalTimers(TimerWheel);

#[async_trait]
impl ArmedTimers for LocalTimers {
    async fn armed_for(&self, cart_id: &str) -> Result<Vec<TimerPayload>, String> {
        let pending = self.0.pending().await.map_err(|e| e.to_string())?;
        Ok(pending.into_iter().filter(|t| t.cart_id == cart_id).collect())
    }
}

async fn adapters() -> Adapters {
    let dir = tempfile::tempdir().expect("temporary folder");
    let db = Database::open(dir.path()).expect("database opens");
    Adapters {
        state: Arc::new(db.clone()),
        campaigns: Arc::new(db.clone()),
        templates: Arc::new(db.clone()),
        scheduler: Arc::new(SqliteScheduler::new(db.clone())),
        timers: Arc::new(LocalTimers(TimerWheel::new(db))),
        keep_alive: Some(Box::new(dir)),
    }
}

cartback_tests::contract_suite!(adapters);

/// GIVEN a customer with a profile, carts (one a guest cart identified
/// later), messages sent and queued, ledgers and facts, beside another
/// customer WHEN erased THEN no row of any table in the database file
/// carries the customer's id, email address, phone, push token, web push
/// endpoint, cart ids or order id, and the other customer's rows remain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_erased_customer_when_every_row_left_in_the_database_is_listed_then_none_carries_their_identifiers() {
    let adapters = adapters().await;
    let dir = adapters.keep_alive.as_ref().and_then(|k| k.downcast_ref::<tempfile::TempDir>()).expect("the folder");
    let file = dir.path().join(cartback_local::DB_FILE);
    let seeded = cartback_tests::customer_contract::seed_customer(&adapters).await;
    let holds = |rows: &[String], needle: &str| rows.iter().any(|row| row.contains(needle));
    let before = rows(&file);
    for identifier in seeded.identifiers() {
        assert!(holds(&before, &identifier), "the seeded database holds {identifier} before the erasure");
    }

    adapters.state.erase_customer(&seeded.customer_id, chrono::Utc::now()).await.unwrap();

    let after = rows(&file);
    for identifier in seeded.identifiers() {
        let carriers: Vec<&String> = after.iter().filter(|row| row.contains(&identifier)).collect();
        assert!(carriers.is_empty(), "{identifier} is still in {carriers:#?}");
    }
    for other in [seeded.other_customer.as_str(), seeded.other_cart.as_str(), seeded.other_message.as_str()] {
        assert!(holds(&after, other), "the other customer's {other} is untouched");
    }
}

/// Every row of every table, each as `table: column values`.
fn rows(file: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(file).expect("the database file");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut rows = Vec::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = stmt.column_count();
        let mut query = stmt.query([]).unwrap();
        while let Some(row) = query.next().unwrap() {
            let values: Vec<String> = (0..columns)
                .map(|i| match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(text) => String::from_utf8_lossy(text).into_owned(),
                    other => format!("{other:?}"),
                })
                .collect();
            rows.push(format!("{table}: {}", values.join(" | ")));
        }
    }
    rows
}
