//! One SQLite file (`DIR/cartback.db`) behind a [`Database`] handle: the
//! local [`StateStore`] and [`CampaignStore`], and the storage the durable
//! timers ([`crate::timers`]) and queues ([`crate::queues`]) share.
//!
//! Concurrency model: ONE connection in a `std::sync::Mutex`, every call run
//! on tokio's blocking pool (`spawn_blocking`). Why:
//! - SQLite serialises writers anyway; a single connection means our own
//!   writers never race each other into `SQLITE_BUSY`, and every multi-step
//!   operation (claim, commit, receive) is a plain transaction with no retry
//!   loop. `busy_timeout` still covers other processes (`cartback campaign`
//!   from the CLI while `cartback dev` runs) thanks to WAL mode.
//! - A commit may wait on `fsync`, so calls never run on an async worker
//!   thread: the HTTP server and the timer loop stay responsive.
//! - Every statement is short (indexed point reads and writes), so the lock
//!   is held for micro- to milliseconds; a local shop's volume is far below
//!   what one connection sustains (thousands of transactions per second).
//!
//! Durability: WAL with `synchronous=NORMAL`: a commit appends to the WAL
//! and returns without `fsync`; the WAL is synced when it is checkpointed.
//! A committed transaction is in the WAL file, which the OS keeps when the
//! process dies, so it survives a crash or `kill -9` of the process (the
//! crash test in cli/tests/crash_kill9.rs); only a power loss or OS crash
//! may roll back the last commits, never corrupt the file (SQLite's
//! recommended setting for WAL). Checkpoints run every
//! [`CHECKPOINT_EVERY`] on a connection of their own, so that a request's
//! commit seldom crosses the 1,000 WAL pages at which SQLite's automatic
//! checkpoint (kept: it bounds the WAL) copies and syncs the WAL inside it.
//!
//! Every statement goes through the connection's prepared-statement cache
//! ([`Cached`]): compiling the SQL on each call was about 15% of the
//! server's CPU.
//!
//! Times are stored as RFC 3339 text with nine fraction digits and `Z`
//! (`2026-11-23T10:30:00.000000000Z`): readable with the `sqlite3` shell,
//! exact to the nanosecond, and ordered correctly by plain text comparison.
//! Records are stored as the JSON of the core types, with the columns needed
//! for lookups, ordering and retention beside them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use cartback_core::campaign::Campaign;
use cartback_core::customer::Customer;
use cartback_core::engagement::{EngagementLabel, Tally};
use cartback_core::ids::{CartId, CustomerId, CustomerKey, MessageId};
use cartback_core::measure::facts::Fact;
use cartback_core::message::{MessageRecord, MessageStatus};
use cartback_core::ports::{
    CampaignStore, CartRecord, CartStore, Claim, Clock, CommitOutcome, CreateOutcome, CustomerStore, EventCommit,
    EventLog, FactStore, MessageStore, PortError, SaveOutcome, SendLedger, SendLedgerStore, SettleOutcome, SystemClock,
    Timeline, TimelineEntry,
};
use cartback_core::short_link::{ShortLink, ShortToken};
use chrono::{DateTime, Datelike, Duration, NaiveDate, SecondsFormat, TimeZone, Utc};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Params, Row, Transaction, TransactionBehavior};
use tokio::sync::Notify;

/// The database file's name inside the data folder.
pub const DB_FILE: &str = "cartback.db";

/// How long a call waits for another process holding the write lock.
const BUSY_TIMEOUT: StdDuration = StdDuration::from_secs(5);

/// How often the background checkpoint copies the WAL into the database.
pub const CHECKPOINT_EVERY: StdDuration = StdDuration::from_millis(250);

/// Distinct statements the hot paths use, with room to spare.
const STATEMENT_CACHE: usize = 128;

/// Schema migrations, applied in order; `PRAGMA user_version` records how
/// many have run. Never edit a released step: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the whole local schema.
    r#"
    CREATE TABLE carts (
        cart_id     TEXT PRIMARY KEY,
        version     INTEGER NOT NULL,
        record      TEXT NOT NULL,            -- CartRecord JSON
        updated_at  TEXT NOT NULL
    );
    CREATE INDEX carts_updated_at ON carts (updated_at);

    CREATE TABLE dedupe (
        event_id    TEXT PRIMARY KEY,
        received_at TEXT NOT NULL
    );
    CREATE INDEX dedupe_received_at ON dedupe (received_at);

    CREATE TABLE customers (
        customer_id TEXT PRIMARY KEY,
        version     INTEGER NOT NULL,
        record      TEXT NOT NULL,            -- Customer JSON
        updated_at  TEXT NOT NULL
    );

    CREATE TABLE timeline (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        cart_id     TEXT NOT NULL,
        at          TEXT NOT NULL,
        entry       TEXT NOT NULL             -- TimelineEntry JSON
    );
    CREATE INDEX timeline_cart ON timeline (cart_id, at, seq);
    CREATE INDEX timeline_at ON timeline (at);

    CREATE TABLE messages (
        message_id   TEXT PRIMARY KEY,
        cart_id      TEXT NOT NULL,
        customer_key TEXT NOT NULL,
        decided_at   TEXT NOT NULL,
        record       TEXT NOT NULL            -- MessageRecord JSON (status inside)
    );
    CREATE INDEX messages_customer ON messages (customer_key, decided_at);
    CREATE INDEX messages_decided_at ON messages (decided_at);

    CREATE TABLE campaigns (
        id          TEXT PRIMARY KEY,
        json        TEXT NOT NULL,            -- Campaign JSON
        enabled     INTEGER NOT NULL,
        updated_at  TEXT NOT NULL
    );

    CREATE TABLE timers (
        cart_id     TEXT NOT NULL,
        due_at      TEXT NOT NULL,
        payload     TEXT NOT NULL,            -- TimerPayload JSON
        ready_at    TEXT NOT NULL,            -- due_at, or when a claim's lease ends
        claims      INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (cart_id, due_at)
    );
    CREATE INDEX timers_ready_at ON timers (ready_at);

    CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        queue       TEXT NOT NULL,
        message_id  TEXT,
        body        TEXT NOT NULL,            -- MessageJob JSON
        attempts    INTEGER NOT NULL DEFAULT 0,
        visible_at  TEXT NOT NULL,
        last_error  TEXT,
        enqueued_at TEXT NOT NULL
    );
    CREATE INDEX jobs_visible ON jobs (queue, visible_at, id);
    CREATE INDEX jobs_message ON jobs (message_id);

    CREATE TABLE dead_letters (
        id          INTEGER PRIMARY KEY,      -- the job's id
        queue       TEXT NOT NULL,
        message_id  TEXT,
        body        TEXT NOT NULL,
        attempts    INTEGER NOT NULL,
        last_error  TEXT NOT NULL,
        enqueued_at TEXT NOT NULL,
        failed_at   TEXT NOT NULL
    );
    CREATE INDEX dead_letters_queue ON dead_letters (queue, id);
    "#,
    // 2: per-customer send ledgers (the atomic per-customer cap check).
    r#"
    CREATE TABLE send_ledgers (
        customer_key TEXT PRIMARY KEY,
        version      INTEGER NOT NULL,
        record       TEXT NOT NULL,            -- SendLedger JSON
        updated_at   TEXT NOT NULL
    );
    "#,
    // 3: measurement facts (append-only; a report reads them by day).
    r#"
    CREATE TABLE facts (
        fact_id     TEXT PRIMARY KEY,
        day         TEXT NOT NULL,            -- the UTC day of `at`, YYYY-MM-DD
        at          TEXT NOT NULL,
        fact        TEXT NOT NULL             -- Fact JSON
    );
    CREATE INDEX facts_day ON facts (day);
    "#,
    // 4: which carts name which customer (export and erasure find a
    // customer's carts, guest carts identified later included, without
    // reading every cart); filled from the stored carts' events.
    r#"
    CREATE TABLE cart_customers (
        customer_id TEXT NOT NULL,
        cart_id     TEXT NOT NULL,
        PRIMARY KEY (customer_id, cart_id)
    );
    CREATE INDEX cart_customers_cart ON cart_customers (cart_id);
    INSERT OR IGNORE INTO cart_customers (customer_id, cart_id)
        SELECT DISTINCT json_extract(e.value, '$.customer_id'), c.cart_id
        FROM (SELECT cart_id, record FROM carts WHERE json_valid(record)) AS c, json_each(c.record, '$.events') AS e
        WHERE json_extract(e.value, '$.customer_id') IS NOT NULL;
    "#,
    // 5: issued vouchers (see vouchers.rs): the code unique, one per cart,
    // found by owner within a window and listed newest first.
    r#"
    CREATE TABLE vouchers (
        code        TEXT PRIMARY KEY,
        cart_id     TEXT NOT NULL UNIQUE,
        owner       TEXT NOT NULL,
        issued_at   TEXT NOT NULL,
        expires_at  TEXT NOT NULL,
        record      TEXT NOT NULL             -- Voucher JSON (status inside)
    );
    CREATE INDEX vouchers_owner ON vouchers (owner, issued_at);
    CREATE INDEX vouchers_issued_at ON vouchers (issued_at);
    "#,
    // 6: template sets by name and the one brand row (see templates.rs).
    r#"
    CREATE TABLE template_sets (
        name        TEXT PRIMARY KEY,
        json        TEXT NOT NULL,            -- TemplateSet JSON
        updated_at  TEXT NOT NULL
    );
    CREATE TABLE brand (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        json        TEXT NOT NULL,            -- Brand JSON
        updated_at  TEXT NOT NULL
    );
    "#,
    // 7: SMS short links (`cartback_core::short_link`), kept until they expire.
    r#"
    CREATE TABLE short_links (
        token       TEXT PRIMARY KEY,
        expires_at  TEXT NOT NULL,
        json        TEXT NOT NULL             -- ShortLink JSON
    );
    CREATE INDEX short_links_expires_at ON short_links (expires_at);
    "#,
];

/// Errors opening the database (calls through the ports answer [`PortError`]).
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot use the data folder {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot open the database {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("the database {path} has schema version {found}, newer than this Cartback understands ({supported}); upgrade Cartback")]
    NewerSchema { path: PathBuf, found: i64, supported: i64 },
}

/// What [`Database::purge_expired`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub carts: usize,
    pub dedupe: usize,
    pub messages: usize,
    pub timeline: usize,
    /// Measurement facts past their own, longer retention.
    pub facts: usize,
    /// Vouchers expired longer ago than the facts' retention (kept that
    /// long so that no code is issued twice while its redemption can still
    /// be reported).
    pub vouchers: usize,
}

pub use cartback_core::measure::facts::DEFAULT_FACT_RETENTION_DAYS;

/// A handle on the database; cheap to clone (all clones share the connection).
#[derive(Clone)]
pub struct Database {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
    clock: Arc<dyn Clock>,
    fact_retention: Duration,
    /// Where sent messages' copies are (an erasure removes the customer's).
    pub(crate) outbox: Option<crate::outbox::Outbox>,
    /// Wakes a queue's idle worker (by [`crate::queues::index`]): a job is
    /// queued, or the message record a queued job waited for is written.
    pub(crate) job_signals: Arc<[Arc<Notify>; 4]>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (creating it and the folder if needed) `DIR/cartback.db`, in WAL
    /// mode, and brings its schema up to date.
    pub fn open(dir: impl AsRef<Path>) -> Result<Database, LocalError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| LocalError::Io { path: dir.to_owned(), source })?;
        Self::open_file(dir.join(DB_FILE))
    }

    /// Opens a database file at an explicit path.
    pub fn open_file(path: impl AsRef<Path>) -> Result<Database, LocalError> {
        let path = path.as_ref().to_owned();
        let sqlite = |source| LocalError::Sqlite { path: path.clone(), source };
        let conn = Connection::open(&path).map_err(sqlite)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
        // Returns the mode in force ("wal"; "memory" for an in-memory database).
        let _mode: String = conn.query_row_cached("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(sqlite)?;
        // Checkpoints are the background thread's (see the module notes);
        // SQLite's automatic one stays as the bound on the WAL's size: without
        // it, steady writes kept the WAL from restarting (260 KB per cart).
        let checkpoints = Connection::open(&path).map_err(sqlite)?;
        checkpoints.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
        let database = Self::from_connection(conn, path.clone())?;
        checkpoint_in_background(checkpoints, Arc::downgrade(&database.conn))
            .map_err(|source| LocalError::Io { path, source })?;
        Ok(database)
    }

    /// A private in-memory database (for tests of code built on these adapters).
    pub fn open_in_memory() -> Result<Database, LocalError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| LocalError::Sqlite { path: path.clone(), source })?;
        Self::from_connection(conn, path)
    }

    fn from_connection(mut conn: Connection, path: PathBuf) -> Result<Database, LocalError> {
        migrate(&mut conn, &path)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Database {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path),
            clock: Arc::new(SystemClock),
            fact_retention: Duration::days(DEFAULT_FACT_RETENTION_DAYS),
            outbox: None,
            job_signals: Arc::new([Arc::default(), Arc::default(), Arc::default(), Arc::default()]),
        })
    }

    /// The clock used where a port method takes no time (a campaign's
    /// `updated_at`, a job's enqueue time). Default: the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Database {
        self.clock = clock;
        self
    }

    /// How long [`Database::purge_expired`] keeps measurement facts
    /// (default [`DEFAULT_FACT_RETENTION_DAYS`]).
    pub fn with_fact_retention(mut self, fact_retention: Duration) -> Database {
        self.fact_retention = fact_retention;
        self
    }

    /// The outbox whose copies of a customer's messages an erasure removes
    /// (see [`cartback_core::ports::CustomerDataStore`]).
    pub fn with_outbox(mut self, outbox: crate::outbox::Outbox) -> Database {
        self.outbox = Some(outbox);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Runs `f` with the connection on the blocking pool (see the module notes).
    pub(crate) async fn call<T, F>(&self, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, PortError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic mid-call cannot leave a half-written transaction behind
            // (an unfinished `Transaction` rolls back on drop), so a poisoned
            // lock still guards a consistent connection.
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| PortError::Unavailable("sqlite", Box::new(e)))?
    }

    /// Deletes what is older than `retention` at `now`: carts not updated
    /// since (with their timeline), event dedupe records, message records
    /// decided before, and timeline lines from before; and the facts of the
    /// days before their own retention (see [`Database::with_fact_retention`])
    /// and the vouchers that expired before it.
    /// Customers are kept: their history has its own horizon. Timers and
    /// queues empty themselves.
    pub async fn purge_expired(&self, now: DateTime<Utc>, retention: Duration) -> Result<PurgeReport, PortError> {
        let cutoff = ts(now - retention);
        let fact_cutoff = day_text((now - self.fact_retention).date_naive());
        let voucher_cutoff = ts(now - self.fact_retention);
        let now_text = ts(now);
        self.call(move |conn| {
            let tx = immediate(conn)?;
            let timeline = tx
                .execute_cached("DELETE FROM timeline WHERE at < ?1 OR cart_id IN (SELECT cart_id FROM carts WHERE updated_at < ?1)", [&cutoff])
                .map_err(db)?;
            let carts = tx.execute_cached("DELETE FROM carts WHERE updated_at < ?1", [&cutoff]).map_err(db)?;
            tx.execute_cached("DELETE FROM cart_customers WHERE cart_id NOT IN (SELECT cart_id FROM carts)", [])
                .map_err(db)?;
            let dedupe = tx.execute_cached("DELETE FROM dedupe WHERE received_at < ?1", [&cutoff]).map_err(db)?;
            let messages = tx.execute_cached("DELETE FROM messages WHERE decided_at < ?1", [&cutoff]).map_err(db)?;
            tx.execute_cached("DELETE FROM send_ledgers WHERE updated_at < ?1", [&cutoff]).map_err(db)?;
            let facts = tx.execute_cached("DELETE FROM facts WHERE day < ?1", [&fact_cutoff]).map_err(db)?;
            let vouchers = tx.execute_cached("DELETE FROM vouchers WHERE expires_at < ?1", [&voucher_cutoff]).map_err(db)?;
            // A short link is useless once expired: its own expiry, not the retention.
            tx.execute_cached("DELETE FROM short_links WHERE expires_at < ?1", [&now_text]).map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(PurgeReport { carts, dedupe, messages, timeline, facts, vouchers })
        })
        .await
    }
}

/// Checkpoints the WAL every [`CHECKPOINT_EVERY`] until the database's
/// handles are all dropped. `PASSIVE` never waits for the writer: commits go
/// on while the pages are copied, and the WAL restarts from its beginning
/// once a checkpoint has caught up.
fn checkpoint_in_background(conn: Connection, alive: Weak<Mutex<Connection>>) -> std::io::Result<()> {
    std::thread::Builder::new().name("sqlite-checkpoint".into()).spawn(move || loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        if alive.strong_count() == 0 {
            break;
        }
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "WAL checkpoint failed; the next one retries");
        }
    })?;
    Ok(())
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), LocalError> {
    let sqlite = |source| LocalError::Sqlite { path: path.to_owned(), source };
    let current: i64 = conn.query_row_cached("PRAGMA user_version", [], |r| r.get(0)).map_err(sqlite)?;
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(LocalError::NewerSchema { path: path.to_owned(), found: current, supported });
    }
    for (index, step) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive).map_err(sqlite)?;
        tx.execute_batch(step).map_err(sqlite)?;
        tx.pragma_update(None, "user_version", index as i64 + 1).map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
    }
    Ok(())
}

// ---- helpers shared with timers.rs and queues.rs ----

/// A time as stored: RFC 3339, nine fraction digits, `Z`; clamped to years
/// 0000-9999 so that text order is time order.
pub(crate) fn ts(at: DateTime<Utc>) -> String {
    let at = if at.year() < 0 {
        Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).single().unwrap_or(at)
    } else if at.year() > 9999 {
        Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).single().unwrap_or(at)
    } else {
        at
    };
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub(crate) fn parse_ts(text: &str) -> Result<DateTime<Utc>, PortError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| PortError::Corrupt(format!("stored time {text:?} does not parse: {e}")))
}

/// Maps a SQLite error: damaged files and unreadable values are `Corrupt`,
/// a value over SQLite's size limit is `Refused`, everything else (busy,
/// locked, I/O, full disk) is worth retrying.
pub(crate) fn db(e: rusqlite::Error) -> PortError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::TooBig => {
            PortError::Refused("sqlite", Box::new(e))
        }
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) =>
        {
            PortError::Corrupt(format!("sqlite: {e}"))
        }
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => PortError::Corrupt(format!("sqlite: {e}")),
        _ => PortError::Unavailable("sqlite", Box::new(e)),
    }
}

pub(crate) fn to_json<T: serde::Serialize>(what: &str, value: &T) -> Result<String, PortError> {
    serde_json::to_string(value).map_err(|e| PortError::Corrupt(format!("cannot encode {what}: {e}")))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, PortError> {
    serde_json::from_str(text).map_err(|e| PortError::Corrupt(format!("stored {what} does not decode: {e}")))
}

/// Statements through the connection's prepared-statement cache (see the
/// module notes); the same calls as rusqlite's uncached ones.
pub(crate) trait Cached {
    fn execute_cached<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn query_row_cached<T, P: Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn execute_cached<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T, P: Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// A write transaction that takes the lock up front (no upgrade deadlocks).
pub(crate) fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, PortError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)
}

fn version_param(version: u64) -> Result<i64, PortError> {
    i64::try_from(version).map_err(|_| PortError::Corrupt(format!("version {version} is out of range")))
}

fn version_from(stored: i64) -> Result<u64, PortError> {
    u64::try_from(stored).map_err(|_| PortError::Corrupt(format!("stored version {stored} is negative")))
}

// ---- carts, customers, timeline ----

pub(crate) fn read_cart(conn: &Connection, cart_id: &str) -> Result<Option<CartRecord>, PortError> {
    let row: Option<(i64, String)> = conn
        .query_row_cached("SELECT version, record FROM carts WHERE cart_id = ?1", [cart_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(db)?;
    row.map(|(version, json)| {
        let mut record: CartRecord = from_json("cart", &json)?;
        record.version = version_from(version)?;
        Ok(record)
    })
    .transpose()
}

/// Writes `cart` if the stored version is `cart.version` (0: absent); the
/// stored copy gets `cart.version + 1`. False on a version mismatch.
fn write_cart(tx: &Transaction, cart: &CartRecord) -> Result<bool, PortError> {
    let expected = version_param(cart.version)?;
    let new_version = cart.version.checked_add(1).ok_or_else(|| PortError::Corrupt("cart version overflow".into()))?;
    let mut stored = cart.clone();
    stored.version = new_version;
    let json = to_json("cart", &stored)?;
    let changed = if expected == 0 {
        tx.execute_cached(
            "INSERT INTO carts (cart_id, version, record, updated_at) VALUES (?1, 1, ?2, ?3) ON CONFLICT (cart_id) DO NOTHING",
            params![cart.cart_id.as_str(), json, ts(cart.updated_at)],
        )
    } else {
        tx.execute_cached(
            "UPDATE carts SET version = ?2, record = ?3, updated_at = ?4 WHERE cart_id = ?1 AND version = ?5",
            params![cart.cart_id.as_str(), version_param(new_version)?, json, ts(cart.updated_at), expected],
        )
    }
    .map_err(db)?;
    if changed == 1 {
        link_customers(tx, cart)?;
    }
    Ok(changed == 1)
}

/// Records each customer the cart's events name (see migration 4).
fn link_customers(tx: &Transaction, cart: &CartRecord) -> Result<(), PortError> {
    let mut named: Vec<&str> = cart.events.iter().filter_map(|e| e.customer_id.as_deref()).collect();
    named.sort_unstable();
    named.dedup();
    for customer_id in named {
        tx.prepare_cached("INSERT OR IGNORE INTO cart_customers (customer_id, cart_id) VALUES (?1, ?2)")
            .map_err(db)?
            .execute(params![customer_id, cart.cart_id.as_str()])
            .map_err(db)?;
    }
    Ok(())
}

fn write_customer(tx: &Transaction, customer: &Customer, version: u64, now: DateTime<Utc>) -> Result<bool, PortError> {
    let json = to_json("customer", customer)?;
    let changed = if version == 0 {
        tx.execute_cached(
            "INSERT INTO customers (customer_id, version, record, updated_at) VALUES (?1, 1, ?2, ?3) ON CONFLICT (customer_id) DO NOTHING",
            params![customer.customer_id.as_str(), json, ts(now)],
        )
    } else {
        let new_version = version.checked_add(1).ok_or_else(|| PortError::Corrupt("customer version overflow".into()))?;
        tx.execute_cached(
            "UPDATE customers SET version = ?2, record = ?3, updated_at = ?4 WHERE customer_id = ?1 AND version = ?5",
            params![customer.customer_id.as_str(), version_param(new_version)?, json, ts(now), version_param(version)?],
        )
    }
    .map_err(db)?;
    Ok(changed == 1)
}

fn insert_timeline(conn: &Connection, cart_id: &str, entry: &TimelineEntry) -> Result<(), PortError> {
    conn.execute_cached(
        "INSERT INTO timeline (cart_id, at, entry) VALUES (?1, ?2, ?3)",
        params![cart_id, ts(entry.at), to_json("timeline entry", entry)?],
    )
    .map_err(db)?;
    Ok(())
}

// ---- messages ----

pub(crate) fn read_message(conn: &Connection, message_id: &str) -> Result<Option<MessageRecord>, PortError> {
    let json: Option<String> = conn
        .query_row_cached("SELECT record FROM messages WHERE message_id = ?1", [message_id], |r| r.get(0))
        .optional()
        .map_err(db)?;
    json.map(|j| from_json("message", &j)).transpose()
}

fn update_message(conn: &Connection, record: &MessageRecord) -> Result<(), PortError> {
    conn.execute_cached(
        "UPDATE messages SET record = ?2 WHERE message_id = ?1",
        params![record.message_id.as_str(), to_json("message", record)?],
    )
    .map_err(db)?;
    Ok(())
}

/// Reads, changes and writes back one message record in one transaction.
/// Nothing happens for an unknown message.
fn modify_message(
    conn: &mut Connection,
    message_id: &str,
    change: impl FnOnce(&mut MessageRecord),
) -> Result<(), PortError> {
    let tx = immediate(conn)?;
    if let Some(mut record) = read_message(&tx, message_id)? {
        change(&mut record);
        update_message(&tx, &record)?;
        tx.commit().map_err(db)?;
    }
    Ok(())
}

#[async_trait]
impl CartStore for Database {
    async fn get_cart(&self, cart_id: &CartId) -> Result<Option<CartRecord>, PortError> {
        let cart_id = cart_id.to_string();
        self.call(move |conn| read_cart(conn, &cart_id)).await
    }

    async fn save_cart(&self, cart: &CartRecord) -> Result<SaveOutcome, PortError> {
        let cart = cart.clone();
        self.call(move |conn| {
            let tx = immediate(conn)?;
            let saved = write_cart(&tx, &cart)?;
            tx.commit().map_err(db)?;
            Ok(if saved { SaveOutcome::Saved } else { SaveOutcome::Conflict })
        })
        .await
    }
}

/// One transaction: the version check and the write cannot interleave with
/// another writer (the connection is shared, and `BEGIN IMMEDIATE` holds
/// the write lock against other processes).
#[async_trait]
impl SendLedgerStore for Database {
    async fn send_ledger(&self, customer_key: &CustomerKey) -> Result<SendLedger, PortError> {
        let key = customer_key.clone();
        self.call(move |conn| {
            let row: Option<(i64, String)> = conn
                .query_row_cached(
                    "SELECT version, record FROM send_ledgers WHERE customer_key = ?1",
                    [key.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(db)?;
            match row {
                None => Ok(SendLedger::new(key)),
                Some((version, json)) => {
                    let mut ledger: SendLedger = from_json("send ledger", &json)?;
                    ledger.version = version_from(version)?;
                    Ok(ledger)
                }
            }
        })
        .await
    }

    async fn save_send_ledger(&self, ledger: &SendLedger) -> Result<SaveOutcome, PortError> {
        let ledger = ledger.clone();
        let now = self.clock.now();
        self.call(move |conn| {
            let expected = version_param(ledger.version)?;
            let overflow = || PortError::Corrupt("ledger version overflow".into());
            let next = ledger.version.checked_add(1).ok_or_else(overflow)?;
            let json = to_json("send ledger", &SendLedger { version: next, ..ledger.clone() })?;
            let key = ledger.customer_key.to_string();
            let tx = immediate(conn)?;
            let changed = if expected == 0 {
                tx.execute_cached(
                    "INSERT INTO send_ledgers (customer_key, version, record, updated_at) VALUES (?1, 1, ?2, ?3)
                     ON CONFLICT (customer_key) DO NOTHING",
                    params![key, json, ts(now)],
                )
            } else {
                tx.execute_cached(
                    "UPDATE send_ledgers SET version = ?2, record = ?3, updated_at = ?4 \
                     WHERE customer_key = ?1 AND version = ?5",
                    params![key, version_param(next)?, json, ts(now), expected],
                )
            }
            .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(if changed == 1 { SaveOutcome::Saved } else { SaveOutcome::Conflict })
        })
        .await
    }
}

#[async_trait]
impl CustomerStore for Database {
    async fn get_customer(&self, customer_id: &CustomerId) -> Result<Option<(Customer, u64)>, PortError> {
        let customer_id = customer_id.to_string();
        self.call(move |conn| {
            let row: Option<(i64, String)> = conn
                .query_row_cached("SELECT version, record FROM customers WHERE customer_id = ?1", [&customer_id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(db)?;
            row.map(|(version, json)| Ok((from_json::<Customer>("customer", &json)?, version_from(version)?)))
                .transpose()
        })
        .await
    }
}

#[async_trait]
impl EventLog for Database {
    async fn commit_event(&self, commit: EventCommit) -> Result<CommitOutcome, PortError> {
        self.call(move |conn| {
            // Dropping `tx` without commit rolls everything back: a duplicate
            // or a conflict writes nothing at all.
            let tx = immediate(conn)?;
            let seen: Option<i64> = tx
                .query_row_cached("SELECT 1 FROM dedupe WHERE event_id = ?1", [commit.event_id.as_str()], |r| r.get(0))
                .optional()
                .map_err(db)?;
            if seen.is_some() {
                return Ok(CommitOutcome::Duplicate);
            }
            if let Some(cart) = &commit.cart {
                if !write_cart(&tx, cart)? {
                    return Ok(CommitOutcome::Conflict);
                }
            }
            if let Some((customer, version)) = &commit.customer {
                if !write_customer(&tx, customer, *version, commit.received_at)? {
                    return Ok(CommitOutcome::Conflict);
                }
            }
            match (&commit.timeline, &commit.cart) {
                (Some(entry), Some(cart)) => insert_timeline(&tx, &cart.cart_id, entry)?,
                // A timeline belongs to a cart; ingest only writes one with a cart.
                (Some(_), None) => tracing::warn!("timeline entry without a cart in an event commit: not stored"),
                (None, _) => {}
            }
            tx.execute_cached(
                "INSERT INTO dedupe (event_id, received_at) VALUES (?1, ?2)",
                params![commit.event_id.as_str(), ts(commit.received_at)],
            )
            .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(CommitOutcome::Applied)
        })
        .await
    }

    async fn event_seen(&self, event_id: &str) -> Result<bool, PortError> {
        let event_id = event_id.to_owned();
        self.call(move |conn| {
            let seen: Option<i64> = conn
                .query_row_cached("SELECT 1 FROM dedupe WHERE event_id = ?1", [event_id.as_str()], |r| r.get(0))
                .optional()
                .map_err(db)?;
            Ok(seen.is_some())
        })
        .await
    }
}

#[async_trait]
impl Timeline for Database {
    async fn append_timeline(&self, cart_id: &CartId, entry: &TimelineEntry) -> Result<(), PortError> {
        let (cart_id, entry) = (cart_id.to_string(), entry.clone());
        self.call(move |conn| insert_timeline(conn, &cart_id, &entry)).await
    }

    async fn timeline(&self, cart_id: &CartId) -> Result<Vec<TimelineEntry>, PortError> {
        let cart_id = cart_id.to_string();
        self.call(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT entry FROM timeline WHERE cart_id = ?1 ORDER BY at, seq").map_err(db)?;
            let rows = stmt.query_map([&cart_id], |r| r.get::<_, String>(0)).map_err(db)?;
            rows.map(|row| from_json("timeline entry", &row.map_err(db)?)).collect()
        })
        .await
    }
}

#[async_trait]
impl MessageStore for Database {
    /// A job queued before this record waits for it (see
    /// `SqliteQueue::enqueue`): the same transaction shows it to the
    /// sender, whose worker is woken.
    async fn create_message(&self, record: &MessageRecord) -> Result<CreateOutcome, PortError> {
        let record = record.clone();
        let (now, queue) = (ts(self.clock.now()), record.channel.queue());
        let (outcome, released) = self
            .call(move |conn| {
                let tx = immediate(conn)?;
                let created = tx
                    .execute_cached(
                        "INSERT INTO messages (message_id, cart_id, customer_key, decided_at, record) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (message_id) DO NOTHING",
                        params![record.message_id.as_str(), record.cart_id.as_str(), record.customer_key.to_string(), ts(record.decided_at), to_json("message", &record)?],
                    )
                    .map_err(db)?;
                if created != 1 {
                    return Ok((CreateOutcome::AlreadyExists, 0));
                }
                let released = tx
                    .execute_cached(
                        "UPDATE jobs SET visible_at = ?2 WHERE message_id = ?1 AND attempts = 0 AND visible_at > ?2",
                        params![record.message_id.as_str(), now],
                    )
                    .map_err(db)?;
                tx.commit().map_err(db)?;
                Ok((CreateOutcome::Created, released))
            })
            .await?;
        if released > 0 {
            self.job_signals[crate::queues::index(queue)].notify_one();
        }
        Ok(outcome)
    }

    async fn get_message(&self, message_id: &MessageId) -> Result<Option<MessageRecord>, PortError> {
        let message_id = message_id.to_string();
        self.call(move |conn| read_message(conn, &message_id)).await
    }

    async fn claim_message(
        &self,
        message_id: &MessageId,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Claim, PortError> {
        let message_id = message_id.to_string();
        self.call(move |conn| {
            // Read and write under one write lock: two claimers are serialised
            // and the second sees the first one's lease.
            let tx = immediate(conn)?;
            let Some(mut record) = read_message(&tx, &message_id)? else {
                return Ok(Claim::NotFound);
            };
            // The `Sending` status written here is the intent record: should
            // this sender die after marking the provider call and before
            // recording the outcome, whoever claims next learns it took over
            // an attempt that may have gone out.
            let (attempts, taken_over) = match &record.status {
                MessageStatus::Queued => (1, false),
                MessageStatus::Sending { lease_until: held, attempts, provider_called } if *held <= now => {
                    (attempts.saturating_add(1), *provider_called)
                }
                MessageStatus::Sending { .. } => return Ok(Claim::InFlight),
                MessageStatus::Sent { .. } => return Ok(Claim::AlreadySent),
                MessageStatus::Rejected { .. }
                | MessageStatus::Cancelled { .. }
                | MessageStatus::Unknown { .. }
                | MessageStatus::HeldOut { .. } => return Ok(Claim::Closed),
            };
            // A takeover keeps the mark: until a sender settles what the
            // marked attempt did, any later claim must ask the provider too.
            record.status = MessageStatus::Sending { lease_until, attempts, provider_called: taken_over };
            update_message(&tx, &record)?;
            tx.commit().map_err(db)?;
            Ok(if taken_over { Claim::TakenOver(record) } else { Claim::Claimed(record) })
        })
        .await
    }

    async fn set_message_status(&self, message_id: &MessageId, status: &MessageStatus) -> Result<(), PortError> {
        let (message_id, status) = (message_id.to_string(), status.clone());
        self.call(move |conn| modify_message(conn, &message_id, |record| record.status = status)).await
    }

    /// Read and write under one write lock: a claim taken in between is
    /// seen, and the write is refused.
    async fn settle_message(
        &self,
        message_id: &MessageId,
        held: &MessageStatus,
        status: &MessageStatus,
    ) -> Result<SettleOutcome, PortError> {
        let (message_id, held, status) = (message_id.to_string(), held.clone(), status.clone());
        self.call(move |conn| {
            let tx = immediate(conn)?;
            let Some(mut record) = read_message(&tx, &message_id)? else {
                return Err(PortError::Corrupt(format!("message {message_id} does not exist")));
            };
            if record.status != held {
                // The same write made twice (a retry) finds its own result;
                // `queued` is no proof of that (any holder may write it).
                let own = record.status == status && status != MessageStatus::Queued;
                return Ok(if own { SettleOutcome::Settled } else { SettleOutcome::ClaimLost });
            }
            record.status = status;
            update_message(&tx, &record)?;
            tx.commit().map_err(db)?;
            Ok(SettleOutcome::Settled)
        })
        .await
    }

    async fn record_engagement(
        &self,
        message_id: &MessageId,
        label: EngagementLabel,
        at: DateTime<Utc>,
    ) -> Result<Option<Tally>, PortError> {
        let message_id = message_id.to_string();
        // One row update under the write lock, however many clicks: the
        // count grows, the earliest and latest times are kept whatever order
        // the reports arrive in.
        self.call(move |conn| {
            let tx = immediate(conn)?;
            let Some(mut record) = read_message(&tx, &message_id)? else { return Ok(None) };
            let tally = record.engagement.add(label, at);
            update_message(&tx, &record)?;
            tx.commit().map_err(db)?;
            Ok(Some(tally))
        })
        .await
    }

    async fn customer_messages(
        &self,
        customer_key: &CustomerKey,
        since: DateTime<Utc>,
    ) -> Result<Vec<MessageRecord>, PortError> {
        let customer_key = customer_key.to_string();
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT record FROM messages WHERE customer_key = ?1 AND decided_at >= ?2 ORDER BY decided_at, message_id")
                .map_err(db)?;
            let rows = stmt.query_map(params![customer_key, ts(since)], |r| r.get::<_, String>(0)).map_err(db)?;
            rows.map(|row| from_json("message", &row.map_err(db)?)).collect()
        })
        .await
    }

    async fn save_short_link(&self, link: &ShortLink) -> Result<(), PortError> {
        let json = to_json("short link", link)?;
        let (token, expires) = (link.token.to_string(), link.claims.expires);
        let expires_at = ts(DateTime::from_timestamp(expires, 0).unwrap_or(DateTime::<Utc>::MAX_UTC));
        self.call(move |conn| {
            conn.execute_cached(
                "INSERT INTO short_links (token, expires_at, json) VALUES (?1, ?2, ?3) ON CONFLICT (token) DO NOTHING",
                params![token, expires_at, json],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn short_link(&self, token: &ShortToken) -> Result<Option<ShortLink>, PortError> {
        let token = token.to_string();
        self.call(move |conn| {
            let json: Option<String> = conn
                .query_row_cached("SELECT json FROM short_links WHERE token = ?1", [&token], |r| r.get(0))
                .optional()
                .map_err(db)?;
            json.map(|json| from_json("short link", &json)).transpose()
        })
        .await
    }
}

/// The stored form of a day: ISO 8601, so text order is day order.
pub(crate) fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

#[async_trait]
impl FactStore for Database {
    async fn record_fact(&self, fact: &Fact) -> Result<CreateOutcome, PortError> {
        let json = to_json("fact", fact)?;
        let (fact_id, day, at) = (fact.fact_id.clone(), day_text(fact.day()), ts(fact.at));
        self.call(move |conn| {
            let created = conn
                .execute_cached(
                    "INSERT INTO facts (fact_id, day, at, fact) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (fact_id) DO NOTHING",
                    params![fact_id, day, at, json],
                )
                .map_err(db)?;
            Ok(if created == 1 { CreateOutcome::Created } else { CreateOutcome::AlreadyExists })
        })
        .await
    }

    async fn facts(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Fact>, PortError> {
        let (from, to) = (day_text(from), day_text(to));
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT fact FROM facts WHERE day >= ?1 AND day <= ?2 ORDER BY at, fact_id")
                .map_err(db)?;
            let rows = stmt.query_map(params![from, to], |r| r.get::<_, String>(0)).map_err(db)?;
            rows.map(|row| from_json("fact", &row.map_err(db)?)).collect()
        })
        .await
    }

    /// By the primary key.
    async fn fact(&self, fact_id: &str) -> Result<Option<Fact>, PortError> {
        let fact_id = fact_id.to_owned();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT fact FROM facts WHERE fact_id = ?1").map_err(db)?;
            let json: Option<String> = stmt.query_row([&fact_id], |r| r.get(0)).optional().map_err(db)?;
            json.map(|json| from_json("fact", &json)).transpose()
        })
        .await
    }
}

#[async_trait]
impl CampaignStore for Database {
    /// Every stored campaign, enabled or not, by id.
    async fn list(&self) -> Result<Vec<Campaign>, PortError> {
        self.call(|conn| {
            let mut stmt = conn.prepare_cached("SELECT json FROM campaigns ORDER BY id").map_err(db)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(db)?;
            rows.map(|row| from_json("campaign", &row.map_err(db)?)).collect()
        })
        .await
    }

    async fn put(&self, campaign: &Campaign) -> Result<(), PortError> {
        let json = to_json("campaign", campaign)?;
        let (id, enabled, now) = (campaign.id.clone(), campaign.enabled, ts(self.clock.now()));
        self.call(move |conn| {
            conn.execute_cached(
                "INSERT INTO campaigns (id, json, enabled, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET json = excluded.json, enabled = excluded.enabled, updated_at = excluded.updated_at",
                params![id, json, enabled, now],
            )
            .map_err(db)?;
            Ok(())
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

    #[test]
    fn given_times_when_stored_as_text_then_text_order_is_time_order_and_they_round_trip() {
        let times = [
            at("0999-01-01T00:00:00Z"),
            at("2026-11-23T10:00:00Z"),
            at("2026-11-23T10:00:00.000000001Z"),
            at("2026-11-23T10:00:01Z"),
        ];
        for pair in times.windows(2) {
            assert!(ts(pair[0]) < ts(pair[1]));
        }
        for t in times {
            assert_eq!(parse_ts(&ts(t)).unwrap(), t);
        }
        assert_eq!(ts(DateTime::<Utc>::MAX_UTC), "9999-12-31T23:59:59.000000000Z");
        assert!(ts(DateTime::<Utc>::MIN_UTC) < ts(times[0]));
    }

    #[test]
    fn given_a_database_written_by_a_newer_cartback_when_opened_then_it_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        drop(Database::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Database::open(dir.path()).unwrap_err();
        assert!(matches!(err, LocalError::NewerSchema { found: 99, .. }), "{err}");
    }

    #[tokio::test]
    async fn given_a_reopened_database_when_read_then_the_schema_is_not_recreated_and_data_remains() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let mut cart = CartRecord::new("c1", at("2026-11-23T10:00:00Z"));
        assert_eq!(db.save_cart(&cart).await.unwrap(), cartback_core::ports::SaveOutcome::Saved);
        drop(db);
        let db = Database::open(dir.path()).unwrap();
        cart.version = 1;
        assert_eq!(db.get_cart(&"c1".into()).await.unwrap(), Some(cart));
        let mode: String =
            db.call(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).map_err(db_err)).await.unwrap();
        assert_eq!(mode, "wal");
    }

    fn db_err(e: rusqlite::Error) -> PortError {
        db(e)
    }

    /// GIVEN a database file WHEN commits leave fewer pages in the WAL than
    /// the automatic checkpoint waits for THEN the background checkpoint copies
    /// them into the database file while the handle stays open.
    #[tokio::test]
    async fn given_commits_in_the_wal_when_the_background_checkpoint_runs_then_the_database_file_has_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let file = dir.path().join(DB_FILE);
        let before = std::fs::metadata(&file).unwrap().len();
        db.call(|c| {
            for n in 0..100 {
                c.execute("INSERT INTO dedupe VALUES (?1, 'x')", [format!("{n}-{}", "x".repeat(4000))])
                    .map_err(db_err)?;
            }
            Ok(())
        })
        .await
        .unwrap();
        let deadline = std::time::Instant::now() + StdDuration::from_secs(60);
        while std::fs::metadata(&file).unwrap().len() < before + 300_000 {
            assert!(std::time::Instant::now() < deadline, "the rows never reached the database file");
            std::thread::sleep(CHECKPOINT_EVERY);
        }
    }

    #[tokio::test]
    async fn given_a_corrupt_cart_row_when_read_then_the_error_is_corrupt_not_a_panic() {
        let db = Database::open_in_memory().unwrap();
        db.call(|c| c.execute("INSERT INTO carts VALUES ('c1', 1, '{not json', 'x')", []).map_err(db_err))
            .await
            .unwrap();
        assert!(matches!(db.get_cart(&"c1".into()).await, Err(PortError::Corrupt(_))));
    }

    #[tokio::test]
    async fn given_old_and_recent_records_when_purged_then_only_the_expired_ones_go() {
        let db = Database::open_in_memory().unwrap();
        let old = at("2026-01-01T00:00:00Z");
        let recent = at("2026-11-20T00:00:00Z");
        let now = at("2026-11-23T00:00:00Z");
        for (id, t) in [("old", old), ("new", recent)] {
            let mut cart = CartRecord::new(id, t);
            cart.updated_at = t;
            let entry = TimelineEntry {
                at: t,
                kind: cartback_core::ports::TimelineKind::Event,
                code: "add_to_cart".into(),
                message: "m".into(),
                details: serde_json::Value::Null,
            };
            let commit = EventCommit {
                event_id: format!("e-{id}").into(),
                received_at: t,
                cart: Some(cart),
                customer: None,
                timeline: Some(entry),
            };
            assert_eq!(db.commit_event(commit).await.unwrap(), CommitOutcome::Applied);
        }
        let report = db.purge_expired(now, Duration::days(90)).await.unwrap();
        assert_eq!(report, PurgeReport { carts: 1, dedupe: 1, messages: 0, timeline: 1, facts: 0, vouchers: 0 });
        assert!(db.get_cart(&"old".into()).await.unwrap().is_none());
        assert!(db.get_cart(&"new".into()).await.unwrap().is_some());
        assert!(db.timeline(&"old".into()).await.unwrap().is_empty());
        assert_eq!(db.timeline(&"new".into()).await.unwrap().len(), 1);
    }

    fn order(order_id: &str, when: &str) -> Fact {
        use cartback_core::measure::facts::FactKind;
        let kind = FactKind::Order {
            order_id: order_id.into(),
            cart_id: None,
            customer_key: None,
            value: None,
            currency: None,
            coupon: None,
        };
        Fact::new(at(when), kind)
    }

    /// GIVEN facts of 401, 400 and 10 days ago, and carts' 90-day retention
    /// WHEN purged THEN only the facts of days before the 400 days go: facts
    /// outlive the carts they describe.
    #[tokio::test]
    async fn given_old_and_recent_facts_when_purged_then_only_those_past_the_fact_retention_go() {
        let db = Database::open_in_memory().unwrap();
        let now = at("2026-11-23T12:00:00Z");
        for (id, when) in
            [("o-401", "2025-10-18T23:59:59Z"), ("o-400", "2025-10-19T00:00:00Z"), ("o-10", "2026-11-13T09:00:00Z")]
        {
            assert_eq!(db.record_fact(&order(id, when)).await.unwrap(), CreateOutcome::Created);
        }
        let report = db.purge_expired(now, Duration::days(90)).await.unwrap();
        assert_eq!(report.facts, 1);
        let kept = db.facts(at("2024-01-01T00:00:00Z").date_naive(), now.date_naive()).await.unwrap();
        let ids: Vec<&str> = kept.iter().map(|f| f.fact_id.as_str()).collect();
        assert_eq!(ids, ["order#o-400", "order#o-10"]);

        let shorter = db.with_fact_retention(Duration::days(30));
        assert_eq!(shorter.purge_expired(now, Duration::days(90)).await.unwrap().facts, 1);
    }
}
