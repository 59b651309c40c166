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
        scheduler: Arc::new(SqliteScheduler::new(db.clone())),
        timers: Arc::new(LocalTimers(TimerWheel::new(db))),
        keep_alive: Some(Box::new(dir)),
    }
}

cartback_tests::contract_suite!(adapters);
