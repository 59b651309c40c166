//! Durable per-cart timers in the database (table `timers`).
//!
//! [`SqliteScheduler`] arms them (the [`Scheduler`] port); the runtime's timer
//! loop drives a [`TimerWheel`]:
//!
//! ```text
//! loop {
//!     while let Some(timer) = wheel.next_due(clock.now()).await? {
//!         match checker.on_timer(&timer).await {
//!             Ok(_) => wheel.complete(&timer).await?,
//!             Err(_) => wheel.retry_at(&timer, clock.now() + backoff).await?,
//!         }
//!     }
//!     sleep until wheel.earliest_due() (or a wake-up when a timer is armed)
//! }
//! ```
//!
//! Claiming marks the timer with a lease rather than deleting it: a process
//! that dies between claiming a timer and finishing its check leaves the timer
//! in the table, and it fires again when the lease ends. Timers are therefore
//! delivered at least once, which the checker tolerates (it re-reads the cart
//! and sends through exclusive message claims).

use async_trait::async_trait;
use cartback_core::ports::{PortError, Scheduler, TimerPayload};
use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, OptionalExtension};
use tokio::sync::Notify;

use std::sync::Arc;

use crate::sqlite::{db, from_json, immediate, parse_ts, to_json, ts, Cached, Database};

/// How long a claimed timer is held before it fires again (the check died).
pub const DEFAULT_TIMER_LEASE_SECONDS: i64 = 300;

/// The [`Scheduler`] port on the database: one row per cart and due time.
#[derive(Clone, Debug)]
pub struct SqliteScheduler {
    db: Database,
    armed: Arc<Notify>,
}

impl SqliteScheduler {
    pub fn new(db: Database) -> Self {
        SqliteScheduler { db, armed: Arc::new(Notify::new()) }
    }

    /// Notified after every arm, so a sleeping timer loop can wake up and
    /// look at [`TimerWheel::earliest_due`] again (a new timer may be earlier).
    pub fn armed_signal(&self) -> Arc<Notify> {
        self.armed.clone()
    }
}

#[async_trait]
impl Scheduler for SqliteScheduler {
    async fn arm(&self, timer: &TimerPayload) -> Result<(), PortError> {
        let payload = to_json("timer", timer)?;
        let (cart_id, due_at) = (timer.cart_id.to_string(), ts(timer.due_at));
        self.db
            .call(move |conn| {
                conn.execute_cached(
                    "INSERT INTO timers (cart_id, due_at, payload, ready_at) VALUES (?1, ?2, ?3, ?2)
                     ON CONFLICT (cart_id, due_at) DO NOTHING",
                    params![cart_id, due_at, payload],
                )
                .map_err(db)?;
                Ok(())
            })
            .await?;
        self.armed.notify_one();
        Ok(())
    }
}

/// The runtime's view of the timers: what is due, and when the next one is.
#[derive(Clone, Debug)]
pub struct TimerWheel {
    db: Database,
    lease: Duration,
}

impl TimerWheel {
    pub fn new(db: Database) -> Self {
        TimerWheel { db, lease: Duration::seconds(DEFAULT_TIMER_LEASE_SECONDS) }
    }

    /// How long a claimed timer stays away before firing again (virtual time).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Claims the earliest timer due at `now`, if any: atomically, so two
    /// loops never get the same timer while its lease runs. Call
    /// [`complete`](Self::complete) once the check is done.
    pub async fn next_due(&self, now: DateTime<Utc>) -> Result<Option<TimerPayload>, PortError> {
        let (now_text, until) = (ts(now), ts(now + self.lease));
        self.db
            .call(move |conn| {
                let tx = immediate(conn)?;
                let row: Option<(String, String, String)> = tx
                    .query_row_cached(
                        "SELECT cart_id, due_at, payload FROM timers WHERE ready_at <= ?1 ORDER BY ready_at, cart_id LIMIT 1",
                        [&now_text],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()
                    .map_err(db)?;
                let Some((cart_id, due_at, payload)) = row else {
                    return Ok(None);
                };
                match from_json::<TimerPayload>("timer", &payload) {
                    Ok(timer) => {
                        tx.execute_cached(
                            "UPDATE timers SET ready_at = ?3, claims = claims + 1 WHERE cart_id = ?1 AND due_at = ?2",
                            params![cart_id, due_at, until],
                        )
                        .map_err(db)?;
                        tx.commit().map_err(db)?;
                        Ok(Some(timer))
                    }
                    Err(e) => {
                        // A payload that cannot be read would block the wheel
                        // forever: drop it, and say so (no cart data in logs).
                        tracing::error!(error = %e, "dropping an unreadable timer");
                        tx.execute_cached("DELETE FROM timers WHERE cart_id = ?1 AND due_at = ?2", params![cart_id, due_at]).map_err(db)?;
                        tx.commit().map_err(db)?;
                        Ok(None)
                    }
                }
            })
            .await
    }

    /// The check for this timer is done: the timer is removed.
    pub async fn complete(&self, timer: &TimerPayload) -> Result<(), PortError> {
        let (cart_id, due_at) = (timer.cart_id.to_string(), ts(timer.due_at));
        self.db
            .call(move |conn| {
                conn.execute_cached("DELETE FROM timers WHERE cart_id = ?1 AND due_at = ?2", params![cart_id, due_at])
                    .map_err(db)?;
                Ok(())
            })
            .await
    }

    /// The check failed (e.g. storage was busy): fire this timer again at `at`.
    pub async fn retry_at(&self, timer: &TimerPayload, at: DateTime<Utc>) -> Result<(), PortError> {
        let (cart_id, due_at, at) = (timer.cart_id.to_string(), ts(timer.due_at), ts(at));
        self.db
            .call(move |conn| {
                conn.execute_cached(
                    "UPDATE timers SET ready_at = ?3 WHERE cart_id = ?1 AND due_at = ?2",
                    params![cart_id, due_at, at],
                )
                .map_err(db)?;
                Ok(())
            })
            .await
    }

    /// When the next timer becomes claimable (its due time, or the end of a
    /// claim's lease); `None` when no timer is pending.
    pub async fn earliest_due(&self) -> Result<Option<DateTime<Utc>>, PortError> {
        self.db
            .call(|conn| {
                let next: Option<String> =
                    conn.query_row_cached("SELECT MIN(ready_at) FROM timers", [], |r| r.get(0)).map_err(db)?;
                next.map(|t| parse_ts(&t)).transpose()
            })
            .await
    }

    /// Every pending timer (claimed or not), earliest due first.
    pub async fn pending(&self) -> Result<Vec<TimerPayload>, PortError> {
        self.db
            .call(|conn| {
                let mut stmt =
                    conn.prepare_cached("SELECT payload FROM timers ORDER BY due_at, cart_id").map_err(db)?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(db)?;
                rows.map(|row| from_json("timer", &row.map_err(db)?)).collect()
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn timer(cart: &str, due: &str) -> TimerPayload {
        TimerPayload { cart_id: cart.into(), due_at: at(due) }
    }

    fn open() -> (tempfile::TempDir, SqliteScheduler, TimerWheel) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        (dir, SqliteScheduler::new(db.clone()), TimerWheel::new(db))
    }

    #[tokio::test]
    async fn given_the_same_cart_and_time_armed_twice_when_listed_then_there_is_one_timer() {
        let (_dir, scheduler, wheel) = open();
        scheduler.arm(&timer("c1", "2026-11-23T10:30:00Z")).await.unwrap();
        scheduler.arm(&timer("c1", "2026-11-23T10:30:00Z")).await.unwrap();
        scheduler.arm(&timer("c1", "2026-11-23T11:00:00Z")).await.unwrap();
        assert_eq!(
            wheel.pending().await.unwrap(),
            [timer("c1", "2026-11-23T10:30:00Z"), timer("c1", "2026-11-23T11:00:00Z")]
        );
    }

    #[tokio::test]
    async fn given_timers_when_the_clock_passes_them_then_they_come_due_earliest_first_and_only_once() {
        let (_dir, scheduler, wheel) = open();
        scheduler.arm(&timer("late", "2026-11-23T11:00:00Z")).await.unwrap();
        scheduler.arm(&timer("early", "2026-11-23T10:30:00.000000001Z")).await.unwrap();
        assert_eq!(wheel.earliest_due().await.unwrap(), Some(at("2026-11-23T10:30:00.000000001Z")));
        assert_eq!(wheel.next_due(at("2026-11-23T10:30:00Z")).await.unwrap(), None, "not due one nanosecond early");
        let now = at("2026-11-23T12:00:00Z");
        let first = wheel.next_due(now).await.unwrap().unwrap();
        assert_eq!(first, timer("early", "2026-11-23T10:30:00.000000001Z"), "payload round-trips to the nanosecond");
        let second = wheel.next_due(now).await.unwrap().unwrap();
        assert_eq!(second.cart_id, "late");
        assert_eq!(wheel.next_due(now).await.unwrap(), None, "claimed timers are not handed out twice");
        wheel.complete(&first).await.unwrap();
        wheel.complete(&second).await.unwrap();
        assert_eq!(wheel.earliest_due().await.unwrap(), None);
    }

    #[tokio::test]
    async fn given_a_claimed_timer_never_completed_when_its_lease_ends_then_it_fires_again() {
        let (_dir, scheduler, wheel) = open();
        let wheel = wheel.with_lease(Duration::minutes(5));
        scheduler.arm(&timer("c1", "2026-11-23T10:30:00Z")).await.unwrap();
        let now = at("2026-11-23T10:30:00Z");
        assert!(wheel.next_due(now).await.unwrap().is_some());
        assert_eq!(wheel.earliest_due().await.unwrap(), Some(now + Duration::minutes(5)));
        assert_eq!(wheel.next_due(now + Duration::minutes(4)).await.unwrap(), None);
        assert_eq!(
            wheel.next_due(now + Duration::minutes(5)).await.unwrap(),
            Some(timer("c1", "2026-11-23T10:30:00Z"))
        );
    }

    #[tokio::test]
    async fn given_a_failed_check_when_retried_later_then_the_timer_fires_at_that_time() {
        let (_dir, scheduler, wheel) = open();
        let t = timer("c1", "2026-11-23T10:30:00Z");
        scheduler.arm(&t).await.unwrap();
        let now = at("2026-11-23T10:30:00Z");
        wheel.next_due(now).await.unwrap().unwrap();
        wheel.retry_at(&t, now + Duration::seconds(10)).await.unwrap();
        assert_eq!(wheel.earliest_due().await.unwrap(), Some(now + Duration::seconds(10)));
        assert_eq!(wheel.next_due(now + Duration::seconds(10)).await.unwrap(), Some(t));
    }

    #[tokio::test]
    async fn given_pending_timers_when_the_process_restarts_then_none_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        {
            let scheduler = SqliteScheduler::new(Database::open(dir.path()).unwrap());
            scheduler.arm(&timer("c1", "2026-11-23T10:30:00Z")).await.unwrap();
            scheduler.arm(&timer("c2", "2026-11-23T10:45:00Z")).await.unwrap();
        }
        let wheel = TimerWheel::new(Database::open(dir.path()).unwrap());
        assert_eq!(wheel.pending().await.unwrap().len(), 2);
        assert_eq!(
            wheel.next_due(at("2026-11-23T10:31:00Z")).await.unwrap(),
            Some(timer("c1", "2026-11-23T10:30:00Z"))
        );
    }

    #[tokio::test]
    async fn given_an_armed_timer_when_a_loop_waits_on_the_signal_then_it_is_woken() {
        let (_dir, scheduler, _wheel) = open();
        let signal = scheduler.armed_signal();
        let waiter = tokio::spawn(async move { signal.notified().await });
        scheduler.arm(&timer("c1", "2026-11-23T10:30:00Z")).await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn given_an_unreadable_timer_row_when_the_wheel_turns_then_it_is_dropped_without_blocking_others() {
        let (_dir, scheduler, wheel) = open();
        scheduler.arm(&timer("good", "2026-11-23T10:31:00Z")).await.unwrap();
        wheel
            .db
            .call(|c| {
                c.execute("INSERT INTO timers (cart_id, due_at, payload, ready_at) VALUES ('bad', 'x', '{', '2026-11-23T10:00:00.000000000Z')", [])
                    .map_err(db)
            })
            .await
            .unwrap();
        let now = at("2026-11-23T12:00:00Z");
        assert_eq!(wheel.next_due(now).await.unwrap(), None);
        assert_eq!(wheel.next_due(now).await.unwrap().map(|t| t.cart_id), Some("good".into()));
    }
}
