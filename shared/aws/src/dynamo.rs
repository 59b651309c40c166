//! `StateStore` and `CampaignStore` on DynamoDB.
//!
//! # State table: single-table design
//!
//! Key `pk` (S) / `sk` (S); TTL attribute `expires_at` (epoch seconds); GSI
//! `gsi1` on `gsi1pk` / `gsi1sk` (projection ALL).
//!
//! | item       | pk               | sk                              | gsi1pk / gsi1sk                     |
//! |------------|------------------|---------------------------------|-------------------------------------|
//! | cart       | `CART#<id>`      | `STATE`                         |                                     |
//! | customer   | `CUST#<id>`      | `PROFILE`                       |                                     |
//! | dedupe     | `EVENT#<id>`     | `EVENT`                         |                                     |
//! | timeline   | `CART#<id>`      | `TL#<at, RFC 3339 ns>#<suffix>` |                                     |
//! | message    | `MSG#<id>`       | `MSG`                           | `CUSTMSG#<customer key>` / decided_at |
//! | ledger     | `LEDGER#<customer key>` | `SENDS`                  |                                     |
//! | fact       | `FACT#<day>#<shard>` | `<at, RFC 3339 ns>#<fact id>` |                                 |
//! | fact id    | `FACTID#<fact id>` | `FACT`                        | (`fact_pk` / `fact_sk`: the fact's key) |
//! | voucher    | `VOUCHER#<code>` | `VOUCHER`                       | `VOUCHEROWNER#<owner>` / issued_at#code |
//! | cart's voucher | `VCART#<cart id>` | `VOUCHER`                  | `VOUCHERMONTH#<yyyy-mm>` / issued_at#code |
//! | SMS short link | `LINK#<token>` | `LINK`                         | (`expires_at`: the link's own expiry) |
//!
//! Vouchers are described in `crate::vouchers`.
//!
//! A cart naming a customer also carries `cart_customer` (the customer id),
//! the key of the sparse KEYS_ONLY index `customer_carts`: how an export or
//! an erasure finds a customer's carts (see [`CUSTOMER_INDEX`]).
//!
//! # Measurement facts: day x shard partitions
//!
//! A fact (see `cartback_core::measure::facts`) is written once and read
//! by day. Its partition is its UTC day plus one of [`FACT_SHARDS`] shards
//! (from the first bytes of the SHA-256 of its id), so a sale's burst of
//! one busy campaign's facts spreads over that many partitions instead of
//! one hot key; a report for a window queries every day x shard partition,
//! in parallel. The item is the `serde_dynamo` form of the fact (flat
//! attributes: `fact_id`, `at`, `fact` (the kind), `campaign_id`,
//! `order_id`, ...) plus `pk`, `sk`, `day` and `expires_at`: flat, so an
//! export of the table reads straight into Athena (see the README).
//! Recording is one `TransactWriteItems`: the fact, and a guard item keyed
//! by the fact id alone, conditioned on `attribute_not_exists(pk)`. The
//! guard is what makes a fact id unique: the fact's own key holds its
//! time, and a second copy with another time (a late repeat of a purchase
//! event, a re-read message) would otherwise land beside the first. A
//! second copy leaves the first as it is. The guard also holds the fact's
//! key (`fact_pk`, `fact_sk`), so a fact is found by its id in two
//! `GetItem`s: how a source's refund finds the purchase of its order
//! (`order#<order id>`). Guards written before they held it find nothing.
//!
//! # Armed timers: the sparse `timers` index
//!
//! A cart whose timer is armed (`timer_armed_for` set) also carries
//! `timer_shard` (`TIMERS#<0..TIMER_SHARDS>`, from a hash of the cart id) and
//! `timer_due` (the armed time, sort-key format); both are left out of the
//! item when no timer is armed, so the GSI `timers` (KEYS_ONLY) holds exactly
//! the carts with a pending timer. The timer sweep (`crate::sweep`) queries
//! each shard for `timer_due` older than a grace period: carts whose timer
//! should have fired and been handled but was not (a dropped invocation).
//! That read costs what the overdue carts cost, never a scan. The shards
//! spread the index's writes over several partitions; an index entry is
//! only rewritten when the armed time changes, not on every cart edit.
//!
//! Carts, customers and messages are the `serde_dynamo` form of the core's
//! types plus `pk`, `sk`, `expires_at` and a `version` (carts, customers) or
//! `rev` (messages) number used as the optimistic-concurrency condition.
//! A ledger (the sends reserved for one customer, the per-customer caps'
//! atomic check) is replaced by a `PutItem` conditioned on its `version`.
//!
//! A message's opens and clicks are flat attributes per label
//! (`click`, `scanner_click`, `open`, `machine_open`):
//! `engagement_<label>_count` (N), `engagement_<label>_first_at` and
//! `engagement_<label>_last_at` (S, RFC 3339), so counting one more is a
//! single `UpdateItem` (`ADD` the count, `SET` the first time only if
//! absent) that neither grows the item nor touches `rev`: a flood of clicks
//! on one link writes one item, a fixed size, and never races a sender's
//! conditional status write. The first time is the first *recorded* (the
//! local runtime keeps the earliest; reports arrive nearly in order).
//!
//! # Retention
//!
//! Every item expires `retention` (`CARTBACK_RETENTION_DAYS`, 90 by default
//! in the template) after its **last write**: each write sets
//! `expires_at = now + retention`. So an active cart, a customer who keeps
//! coming back or a message still being engaged with never expires, while a
//! dead cart, its timeline, its dedupe records and its messages go away on
//! their own. Facts are the exception: a report compares periods months
//! apart, so they expire `fact_retention` (400 days by default) after they
//! are recorded. A dedupe record lives the full retention, far longer than any
//! storefront retry or replay window, so a replayed `event_id` is still
//! recognised. DynamoDB deletes expired items within days, not at the
//! second; nothing reads `expires_at` as a business rule.
//!
//! # Write costs
//!
//! An accepted event is ONE `TransactWriteItems` (dedupe + cart + customer +
//! timeline), decided by conditions, never by a read-then-write: a replayed
//! `event_id` fails the dedupe condition (`Duplicate`), a concurrent writer
//! fails the version condition (`Conflict`, the service re-reads and
//! retries). A purchase or a return adds one more, before it: its order or
//! return fact (see above). A cart item holds at most `MAX_EVENTS_PER_CART` events; with
//! typical events (~0.5 KB) that stays under DynamoDB's 400 KB item limit.
//!
//! # Config table
//!
//! Campaigns are `pk = CAMPAIGNS`, `sk = CAMPAIGN#<id>` with the campaign as
//! a JSON string in `campaign`. One partition lets `list` be a single
//! `Query`, which is all the functions' IAM policies allow on that table (no
//! `Scan`); the handful of campaigns a shop runs fits in it easily.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_dynamo::aws_sdk_dynamodb_1::{from_attribute_value, from_item, to_attribute_value, to_item};

use cartback_core::campaign::Campaign;
use cartback_core::customer::Customer;
use cartback_core::customer_data::{anonymize, facts_of, CartData, CustomerData, Erasure, Pseudonyms};
use cartback_core::engagement::{Engagement, EngagementLabel, Tally};
use cartback_core::ids::{CartId, CustomerId, CustomerKey, MessageId};
use cartback_core::measure::facts::{Fact, FactKind};
use cartback_core::message::{MessageRecord, MessageStatus};
use cartback_core::ports::{
    CampaignStore, CartRecord, CartStore, Claim, Clock, CommitOutcome, CreateOutcome, CustomerDataStore, CustomerStore,
    EventCommit, EventLog, FactStore, MessageStore, PortError, SaveOutcome, SendLedger, SendLedgerStore, SettleOutcome,
    Timeline, TimelineEntry,
};
use cartback_core::short_link::{ShortLink, ShortToken};

use crate::error::{build_error, dynamodb_error, refused_transaction};

pub(crate) const SERVICE: &str = "dynamodb";
pub(crate) type Item = HashMap<String, AttributeValue>;
type RecordWithRev = (MessageRecord, u64, u64);

/// The sparse index of carts with an armed timer, and its key attributes.
pub const TIMER_INDEX: &str = "timers";
pub const TIMER_SHARD: &str = "timer_shard";
pub const TIMER_DUE: &str = "timer_due";
/// The sparse index of carts by their customer (KEYS_ONLY): a cart that
/// names a customer carries `cart_customer`, the customer id, so an export
/// or erasure finds the customer's carts (guest carts identified later
/// included) with one `Query`. Why an index and not a link item written
/// with the cart: a KEYS_ONLY entry is written only when the cart gets its
/// customer (DynamoDB skips the index when a put leaves its key alone),
/// while a link item would cost a transactional write on every event.
pub const CUSTOMER_INDEX: &str = "customer_carts";
pub const CUSTOMER_CART: &str = "cart_customer";
/// How often the sweep moved the cart's timer since the cart was last
/// written (any cart write drops it: the attribute is not part of the cart).
const SWEEP_MOVES: &str = "sweep_moves";

/// What [`DynamoStateStore::move_timer`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerMove {
    /// The timer now fires at the new time.
    Moved,
    /// A checker handled the cart meanwhile: nothing to do.
    MovedOn,
    /// Moved too often without a checker ever handling the cart: taken out
    /// of the overdue index.
    GaveUp,
}
/// Partitions of the `timers` index: a sale's burst of cart writes spreads
/// over them; the sweep reads each.
pub const TIMER_SHARDS: u32 = 8;

/// `TIMERS#<n>`: the cart's shard of the `timers` index, stable per cart.
pub fn timer_shard(cart_id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(cart_id.as_bytes());
    format!("TIMERS#{}", u32::from(digest[0]) % TIMER_SHARDS)
}

/// Sort-key time format: fixed width, so string order is time order.
pub fn sort_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// Partitions per day of the facts (see the module notes).
pub const FACT_SHARDS: u32 = 16;

pub use cartback_core::measure::facts::DEFAULT_FACT_RETENTION_DAYS;

/// How many partitions `facts` reads at once.
const FACT_READ_PARALLELISM: usize = 16;

/// How often a fact write cancelled by a racing writer of the same fact is tried.
const FACT_WRITE_ATTEMPTS: u64 = 4;

/// The guard item that makes a fact id unique (see the module notes).
pub fn fact_guard_key(fact_id: &str) -> (String, String) {
    (format!("FACTID#{fact_id}"), "FACT".into())
}

/// `FACT#<day>#<n>`: the partition of the facts of `day` in shard `n`.
pub fn fact_partition(day: NaiveDate, shard: u32) -> String {
    format!("FACT#{}#{shard}", day.format("%Y-%m-%d"))
}

/// The key of a fact: its day and shard (stable per fact id), then its time
/// and id, so a partition reads back in time order.
pub fn fact_key(fact: &Fact) -> (String, String) {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(fact.fact_id.as_bytes());
    let shard = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % FACT_SHARDS;
    (fact_partition(fact.day(), shard), format!("{}#{}", sort_time(fact.at), fact.fact_id))
}

pub fn cart_key(cart_id: &str) -> (String, String) {
    (format!("CART#{cart_id}"), "STATE".into())
}
pub fn customer_key(customer_id: &str) -> (String, String) {
    (format!("CUST#{customer_id}"), "PROFILE".into())
}
pub fn dedupe_key(event_id: &str) -> (String, String) {
    (format!("EVENT#{event_id}"), "EVENT".into())
}
pub fn message_key(message_id: &str) -> (String, String) {
    (format!("MSG#{message_id}"), "MSG".into())
}
pub fn ledger_key(customer_key: &CustomerKey) -> (String, String) {
    (format!("LEDGER#{customer_key}"), "SENDS".into())
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn key((pk, sk): (String, String)) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub(crate) fn corrupt(what: &str, error: impl std::fmt::Display) -> PortError {
    PortError::Corrupt(format!("{what}: {error}"))
}

fn number(item: &Item, name: &str) -> Option<u64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

/// The attribute names of one engagement label's tally: count, first, last.
fn engagement_attributes(label: EngagementLabel) -> [String; 3] {
    ["count", "first_at", "last_at"].map(|part| format!("engagement_{}_{part}", label.as_str()))
}

/// A label's tally as stored in `item`, if it has one.
fn read_tally(item: &Item, label: EngagementLabel) -> Result<Option<Tally>, PortError> {
    let [count, first_at, last_at] = engagement_attributes(label);
    let Some(count) = number(item, &count) else { return Ok(None) };
    let time = |name: &str| -> Result<DateTime<Utc>, PortError> {
        let value = item.get(name).cloned().ok_or_else(|| corrupt("engagement", format!("{name} is missing")))?;
        from_attribute_value(value).map_err(|e| corrupt(name, e))
    };
    Ok(Some(Tally { count, first_at: time(&first_at)?, last_at: time(&last_at)? }))
}

/// A stored message item as the core's record: its serde form, with the
/// engagement tallies read from their flat attributes.
pub(crate) fn message_from_item(item: Item) -> Result<MessageRecord, PortError> {
    let mut tallies = Vec::new();
    for label in EngagementLabel::ALL {
        if let Some(tally) = read_tally(&item, label)? {
            tallies.push((label, tally));
        }
    }
    let message_id = item.get("message_id").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    let mut record: MessageRecord = from_item(item).map_err(|e| corrupt(&format!("message {message_id}"), e))?;
    for (label, tally) in tallies {
        record.engagement.set(label, tally);
    }
    Ok(record)
}

/// The flat attributes of `engagement` (see the module documentation).
fn engagement_item(engagement: &Engagement) -> Result<Item, PortError> {
    let mut item = Item::new();
    for (label, tally) in engagement.iter() {
        let [count, first_at, last_at] = engagement_attributes(label);
        let time = |at| to_attribute_value(at).map_err(|e| corrupt("time does not serialise", e));
        item.insert(count, n(tally.count));
        item.insert(first_at, time(tally.first_at)?);
        item.insert(last_at, time(tally.last_at)?);
    }
    Ok(item)
}

pub(crate) fn is_condition_failed<E: ProvideErrorMetadata>(
    error: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> bool {
    error.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// The state table.
pub struct DynamoStateStore {
    pub(crate) client: Client,
    pub(crate) table: String,
    retention: Duration,
    fact_retention: Duration,
    /// Items per `Query` page when reading facts; `None`: DynamoDB's own
    /// page (1 MB).
    fact_page_limit: Option<i32>,
    pub(crate) clock: Arc<dyn Clock>,
    instance: u64,
    last_write: AtomicU64,
}

impl DynamoStateStore {
    pub fn new(client: Client, table: impl Into<String>, retention: Duration, clock: Arc<dyn Clock>) -> Self {
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new().build_hasher().finish()
        };
        DynamoStateStore {
            client,
            table: table.into(),
            retention,
            fact_retention: Duration::days(DEFAULT_FACT_RETENTION_DAYS),
            fact_page_limit: None,
            clock,
            instance: seed,
            last_write: AtomicU64::new(0),
        }
    }

    /// How long facts are kept (default [`DEFAULT_FACT_RETENTION_DAYS`]).
    pub fn with_fact_retention(mut self, fact_retention: Duration) -> Self {
        self.fact_retention = fact_retention;
        self
    }

    /// Reads facts `items` per `Query` page instead of DynamoDB's 1 MB
    /// pages: smaller reads per call (tests use it to make a day's facts
    /// span many pages without writing megabytes).
    pub fn with_fact_page_limit(mut self, items: u32) -> Self {
        self.fact_page_limit = Some(i32::try_from(items.max(1)).unwrap_or(i32::MAX));
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn expires_at(&self) -> AttributeValue {
        n((self.clock.now() + self.retention).timestamp())
    }

    /// The timeline sort-key suffix: the wall-clock time of the write in
    /// nanoseconds (strictly increasing within this process), then this
    /// instance's random id. Entries with the same `at` therefore read back
    /// in the order they were written, and two Lambda instances never
    /// collide.
    fn write_suffix(&self) -> String {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut last = self.last_write.load(Ordering::Relaxed);
        let next = loop {
            let next = wall.max(last + 1);
            match self.last_write.compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break next,
                Err(actual) => last = actual,
            }
        };
        format!("{next:020}-{:016x}", self.instance)
    }

    fn cart_item(&self, cart: &CartRecord) -> Result<Item, PortError> {
        let mut item: Item = to_item(cart).map_err(|e| corrupt("cart does not serialise", e))?;
        item.extend(key(cart_key(&cart.cart_id)));
        item.insert("version".into(), n(cart.version + 1));
        item.insert("expires_at".into(), self.expires_at());
        if let Some(customer_id) = cart.cart().customer_id {
            item.insert(CUSTOMER_CART.into(), s(customer_id));
        }
        if let Some(armed) = cart.timer_armed_for {
            item.insert(TIMER_SHARD.into(), s(timer_shard(&cart.cart_id)));
            item.insert(TIMER_DUE.into(), s(sort_time(armed)));
        }
        Ok(item)
    }

    /// Carts whose armed timer is due before `before`, oldest first within
    /// each shard, at most `limit` in all: one `Query` per shard on the
    /// sparse `timers` index (see the module notes).
    pub async fn overdue_timers(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(CartId, DateTime<Utc>)>, PortError> {
        let mut overdue = Vec::new();
        for shard in 0..TIMER_SHARDS {
            let mut start: Option<Item> = None;
            while overdue.len() < limit {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(TIMER_INDEX)
                    .key_condition_expression("#shard = :shard AND #due < :before")
                    .expression_attribute_names("#shard", TIMER_SHARD)
                    .expression_attribute_names("#due", TIMER_DUE)
                    .expression_attribute_values(":shard", s(format!("TIMERS#{shard}")))
                    .expression_attribute_values(":before", s(sort_time(before)))
                    .limit(i32::try_from(limit - overdue.len()).unwrap_or(i32::MAX))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| dynamodb_error(SERVICE, e))?;
                for item in out.items.unwrap_or_default() {
                    let cart_id = match item.get("pk") {
                        Some(AttributeValue::S(pk)) => pk.strip_prefix("CART#").map(CartId::from),
                        _ => None,
                    };
                    let due = match item.get(TIMER_DUE) {
                        Some(AttributeValue::S(due)) => due.parse::<DateTime<Utc>>().ok(),
                        _ => None,
                    };
                    match (cart_id, due) {
                        (Some(cart_id), Some(due)) => overdue.push((cart_id, due)),
                        _ => {
                            return Err(PortError::Corrupt(
                                "a timers index entry without a cart key or due time".into(),
                            ))
                        }
                    }
                }
                match out.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
        }
        overdue.truncate(limit);
        Ok(overdue)
    }

    /// Moves a cart's armed time from `from` to `to` when it is still `from`
    /// (one conditional `UpdateItem`, which also bumps the cart's version so a
    /// writer holding an older read re-reads). False when the cart moved on.
    pub async fn move_timer(
        &self,
        cart_id: &CartId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        max_moves: u32,
    ) -> Result<TimerMove, PortError> {
        let armed = to_attribute_value(to).map_err(|e| corrupt("time does not serialise", e))?;
        let moved = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(cart_key(cart_id))))
            .update_expression(
                "SET timer_armed_for = :armed, #due = :to, #moves = if_not_exists(#moves, :zero) + :one ADD version :one",
            )
            .condition_expression("#due = :from AND (attribute_not_exists(#moves) OR #moves < :max)")
            .expression_attribute_names("#due", TIMER_DUE)
            .expression_attribute_names("#moves", SWEEP_MOVES)
            .expression_attribute_values(":armed", armed)
            .expression_attribute_values(":to", s(sort_time(to)))
            .expression_attribute_values(":from", s(sort_time(from)))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(u64::from(max_moves)))
            .send()
            .await;
        match moved {
            Ok(_) => return Ok(TimerMove::Moved),
            Err(e) if is_condition_failed(&e) => {}
            Err(e) => return Err(dynamodb_error(SERVICE, e)),
        }
        // Either a checker handled the cart meanwhile, or the sweep has
        // moved this timer `max_moves` times already: then it leaves the
        // index, armed time included (any later cart write would otherwise
        // put it back); its next event arms anew.
        let gave_up = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(cart_key(cart_id))))
            .update_expression("REMOVE #shard, #due, timer_armed_for ADD version :one")
            .condition_expression("#due = :from AND #moves >= :max")
            .expression_attribute_names("#shard", TIMER_SHARD)
            .expression_attribute_names("#due", TIMER_DUE)
            .expression_attribute_names("#moves", SWEEP_MOVES)
            .expression_attribute_values(":from", s(sort_time(from)))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(u64::from(max_moves)))
            .send()
            .await;
        match gave_up {
            Ok(_) => Ok(TimerMove::GaveUp),
            Err(e) if is_condition_failed(&e) => Ok(TimerMove::MovedOn),
            Err(e) => Err(dynamodb_error(SERVICE, e)),
        }
    }

    fn timeline_item(&self, cart_id: &str, entry: &TimelineEntry, suffix: &str) -> Result<Item, PortError> {
        let mut item: Item = to_item(entry).map_err(|e| corrupt("timeline entry does not serialise", e))?;
        item.insert("pk".into(), s(format!("CART#{cart_id}")));
        item.insert("sk".into(), s(format!("TL#{}#{suffix}", sort_time(entry.at))));
        item.insert("expires_at".into(), self.expires_at());
        Ok(item)
    }

    fn message_item(&self, record: &MessageRecord) -> Result<Item, PortError> {
        let mut item: Item = to_item(record).map_err(|e| corrupt("message does not serialise", e))?;
        item.remove("engagement");
        item.extend(engagement_item(&record.engagement)?);
        item.extend(key(message_key(&record.message_id)));
        item.insert("gsi1pk".into(), s(format!("CUSTMSG#{}", record.customer_key)));
        item.insert("gsi1sk".into(), s(sort_time(record.decided_at)));
        item.insert("rev".into(), n(0));
        item.insert("send_attempts".into(), n(0));
        item.insert("expires_at".into(), self.expires_at());
        Ok(item)
    }

    /// Puts `item` if the stored one has `version = expected` (absent when
    /// `expected` is 0); a conflict otherwise.
    async fn put_if_version(&self, item: Item, expected: u64) -> Result<SaveOutcome, PortError> {
        let mut request = self.client.put_item().table_name(&self.table).set_item(Some(item));
        request = if expected == 0 {
            request.condition_expression("attribute_not_exists(pk)")
        } else {
            request.condition_expression("version = :expected").expression_attribute_values(":expected", n(expected))
        };
        match request.send().await {
            Ok(_) => Ok(SaveOutcome::Saved),
            Err(e) if is_condition_failed(&e) => Ok(SaveOutcome::Conflict),
            Err(e) => Err(dynamodb_error(SERVICE, e)),
        }
    }

    /// A versioned put: the stored item must have `version = expected`, or
    /// not exist when `expected` is 0.
    fn versioned_put(&self, item: Item, expected: u64) -> Result<Put, PortError> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        put = if expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :expected").expression_attribute_values(":expected", n(expected))
        };
        put.build().map_err(|e| build_error(SERVICE, e))
    }

    pub(crate) async fn get(&self, k: (String, String)) -> Result<Option<Item>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(k)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamodb_error(SERVICE, e))?;
        Ok(out.item)
    }

    /// The record, its `rev` and its `send_attempts`.
    async fn message_with_rev(&self, message_id: &str) -> Result<Option<RecordWithRev>, PortError> {
        let Some(item) = self.get(message_key(message_id)).await? else { return Ok(None) };
        let rev = number(&item, "rev").unwrap_or(0);
        let attempts = number(&item, "send_attempts").unwrap_or(0);
        Ok(Some((message_from_item(item)?, rev, attempts)))
    }

    /// Queries a partition (or index partition), all pages.
    async fn query_all(
        &self,
        index: Option<&str>,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(condition)
                .set_exclusive_start_key(start.take());
            for (k, v) in &values {
                q = q.expression_attribute_values(*k, v.clone());
            }
            q = match index {
                Some(index) => q.index_name(index),
                None => q.consistent_read(true),
            };
            let out = q.send().await.map_err(|e| dynamodb_error(SERVICE, e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }
}

#[async_trait]
impl CartStore for DynamoStateStore {
    async fn get_cart(&self, cart_id: &CartId) -> Result<Option<CartRecord>, PortError> {
        let Some(item) = self.get(cart_key(cart_id)).await? else { return Ok(None) };
        // `version` in the item is the stored version, which is what the
        // record must carry for the next conditional write.
        from_item(item).map(Some).map_err(|e| corrupt(&format!("cart {cart_id}"), e))
    }

    async fn save_cart(&self, cart: &CartRecord) -> Result<SaveOutcome, PortError> {
        self.put_if_version(self.cart_item(cart)?, cart.version).await
    }
}

#[async_trait]
impl SendLedgerStore for DynamoStateStore {
    async fn send_ledger(&self, customer_key: &CustomerKey) -> Result<SendLedger, PortError> {
        let Some(item) = self.get(ledger_key(customer_key)).await? else {
            return Ok(SendLedger::new(customer_key.clone()));
        };
        // `version` in the item is the stored version, the next write's condition.
        from_item(item).map_err(|e| corrupt(&format!("send ledger of {customer_key}"), e))
    }

    async fn save_send_ledger(&self, ledger: &SendLedger) -> Result<SaveOutcome, PortError> {
        let mut item: Item = to_item(ledger).map_err(|e| corrupt("send ledger does not serialise", e))?;
        item.extend(key(ledger_key(&ledger.customer_key)));
        item.insert("version".into(), n(ledger.version + 1));
        item.insert("expires_at".into(), self.expires_at());
        self.put_if_version(item, ledger.version).await
    }
}

#[async_trait]
impl CustomerStore for DynamoStateStore {
    async fn get_customer(&self, customer_id: &CustomerId) -> Result<Option<(Customer, u64)>, PortError> {
        let Some(item) = self.get(customer_key(customer_id)).await? else { return Ok(None) };
        let version = number(&item, "version").unwrap_or(0);
        let customer = from_item(item).map_err(|e| corrupt(&format!("customer {customer_id}"), e))?;
        Ok(Some((customer, version)))
    }
}

#[async_trait]
impl EventLog for DynamoStateStore {
    async fn commit_event(&self, commit: EventCommit) -> Result<CommitOutcome, PortError> {
        let mut dedupe = key(dedupe_key(&commit.event_id));
        dedupe.insert("received_at".into(), s(sort_time(commit.received_at)));
        dedupe.insert("expires_at".into(), self.expires_at());
        let mut items = vec![Put::builder()
            .table_name(&self.table)
            .set_item(Some(dedupe))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| build_error(SERVICE, e))?];
        if let Some(cart) = &commit.cart {
            items.push(self.versioned_put(self.cart_item(cart)?, cart.version)?);
            if let Some(entry) = &commit.timeline {
                let suffix = self.write_suffix();
                let put = Put::builder().table_name(&self.table).set_item(Some(self.timeline_item(
                    &cart.cart_id,
                    entry,
                    &suffix,
                )?));
                items.push(put.build().map_err(|e| build_error(SERVICE, e))?);
            }
        }
        if let Some((customer, version)) = &commit.customer {
            let mut item: Item = to_item(customer).map_err(|e| corrupt("customer does not serialise", e))?;
            item.extend(key(customer_key(&customer.customer_id)));
            item.insert("version".into(), n(version + 1));
            item.insert("expires_at".into(), self.expires_at());
            items.push(self.versioned_put(item, *version)?);
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items.into_iter().map(|p| TransactWriteItem::builder().put(p).build()).collect()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(CommitOutcome::Applied),
            Err(error) => {
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
                match error.as_service_error() {
                    Some(E::TransactionCanceledException(cancelled)) => {
                        let codes: Vec<&str> =
                            cancelled.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect();
                        if codes.first() == Some(&"ConditionalCheckFailed") {
                            Ok(CommitOutcome::Duplicate)
                        } else if codes.iter().any(|c| *c == "ConditionalCheckFailed" || *c == "TransactionConflict") {
                            Ok(CommitOutcome::Conflict)
                        } else if codes.contains(&"ValidationError") {
                            Err(refused_transaction(SERVICE, error))
                        } else {
                            Err(dynamodb_error(SERVICE, error))
                        }
                    }
                    _ => Err(dynamodb_error(SERVICE, error)),
                }
            }
        }
    }

    async fn event_seen(&self, event_id: &str) -> Result<bool, PortError> {
        Ok(self.get(dedupe_key(event_id)).await?.is_some())
    }
}

#[async_trait]
impl Timeline for DynamoStateStore {
    async fn append_timeline(&self, cart_id: &CartId, entry: &TimelineEntry) -> Result<(), PortError> {
        let item = self.timeline_item(cart_id, entry, &self.write_suffix())?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| dynamodb_error(SERVICE, e))?;
        Ok(())
    }

    async fn timeline(&self, cart_id: &CartId) -> Result<Vec<TimelineEntry>, PortError> {
        let items = self
            .query_all(
                None,
                "pk = :pk AND begins_with(sk, :tl)",
                vec![(":pk", s(format!("CART#{cart_id}"))), (":tl", s("TL#"))],
            )
            .await?;
        items
            .into_iter()
            .map(|item| from_item(item).map_err(|e| corrupt(&format!("timeline of cart {cart_id}"), e)))
            .collect()
    }
}

#[async_trait]
impl MessageStore for DynamoStateStore {
    async fn create_message(&self, record: &MessageRecord) -> Result<CreateOutcome, PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.message_item(record)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(CreateOutcome::Created),
            Err(e) if is_condition_failed(&e) => Ok(CreateOutcome::AlreadyExists),
            Err(e) => Err(dynamodb_error(SERVICE, e)),
        }
    }

    async fn get_message(&self, message_id: &MessageId) -> Result<Option<MessageRecord>, PortError> {
        Ok(self.message_with_rev(message_id).await?.map(|(record, _, _)| record))
    }

    /// Read, decide, then a conditional `UpdateItem` on the message's `rev`:
    /// of two concurrent claimants exactly one passes the condition; the
    /// other re-reads and sees `InFlight`.
    async fn claim_message(
        &self,
        message_id: &MessageId,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Claim, PortError> {
        for _ in 0..5 {
            let Some((mut record, rev, attempts)) = self.message_with_rev(message_id).await? else {
                return Ok(Claim::NotFound);
            };
            let taken_over = match &record.status {
                MessageStatus::Sent { .. } => return Ok(Claim::AlreadySent),
                MessageStatus::Rejected { .. }
                | MessageStatus::Cancelled { .. }
                | MessageStatus::Unknown { .. }
                | MessageStatus::HeldOut { .. } => return Ok(Claim::Closed),
                MessageStatus::Sending { lease_until, .. } if *lease_until > now => return Ok(Claim::InFlight),
                // A holder that stopped before calling the provider sent nothing.
                MessageStatus::Sending { provider_called, .. } => *provider_called,
                MessageStatus::Queued => false,
            };
            let attempts = u32::try_from(attempts + 1).unwrap_or(u32::MAX);
            // A takeover keeps the mark: until a sender settles what the
            // marked attempt did, any later claim must ask the provider too.
            record.status = MessageStatus::Sending { lease_until, attempts, provider_called: taken_over };
            let status = to_attribute_value(&record.status).map_err(|e| corrupt("status does not serialise", e))?;
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(message_key(message_id))))
                .update_expression("SET #status = :status, rev = :next, send_attempts = :attempts, expires_at = :exp")
                .condition_expression("rev = :rev")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", status)
                .expression_attribute_values(":next", n(rev + 1))
                .expression_attribute_values(":rev", n(rev))
                .expression_attribute_values(":attempts", n(attempts))
                .expression_attribute_values(":exp", self.expires_at())
                .send()
                .await;
            match result {
                Ok(_) => return Ok(if taken_over { Claim::TakenOver(record) } else { Claim::Claimed(record) }),
                Err(e) if is_condition_failed(&e) => continue,
                Err(e) => return Err(dynamodb_error(SERVICE, e)),
            }
        }
        Ok(Claim::InFlight)
    }

    async fn set_message_status(&self, message_id: &MessageId, status: &MessageStatus) -> Result<(), PortError> {
        let status = to_attribute_value(status).map_err(|e| corrupt("status does not serialise", e))?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(message_key(message_id))))
            .update_expression("SET #status = :status, expires_at = :exp ADD rev :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", status)
            .expression_attribute_values(":exp", self.expires_at())
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => {
                Err(PortError::Corrupt(format!("message {message_id} does not exist")))
            }
            Err(e) => Err(dynamodb_error(SERVICE, e)),
        }
    }

    /// A conditional `UpdateItem` fenced by the claim: `send_attempts` only
    /// grows (each claim adds one, nothing resets it), so a stored
    /// `sending` status with the held attempt number is this sender's claim
    /// and no other.
    async fn settle_message(
        &self,
        message_id: &MessageId,
        held: &MessageStatus,
        status: &MessageStatus,
    ) -> Result<SettleOutcome, PortError> {
        let wanted = status;
        let status = to_attribute_value(status).map_err(|e| corrupt("status does not serialise", e))?;
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(message_key(message_id))))
            .update_expression("SET #status = :status, expires_at = :exp ADD rev :one")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":status", status)
            .expression_attribute_values(":exp", self.expires_at())
            .expression_attribute_values(":one", n(1));
        let request = match held {
            MessageStatus::Sending { attempts, .. } => request
                .condition_expression(
                    "attribute_exists(pk) AND send_attempts = :attempts AND #status.#state = :sending",
                )
                .expression_attribute_values(":attempts", n(u64::from(*attempts)))
                .expression_attribute_values(":sending", s("sending")),
            // `unknown` is left only by a reconciliation, from itself.
            MessageStatus::Unknown { .. } => request
                .condition_expression("attribute_exists(pk) AND #status.#state = :unknown")
                .expression_attribute_values(":unknown", s("unknown")),
            other => {
                let held = other.name();
                return Err(PortError::Corrupt(format!("message {message_id}: a settle from {held} is not fenced")));
            }
        };
        let result = request.send().await;
        match result {
            Ok(_) => Ok(SettleOutcome::Settled),
            // The SDK retries an attempt whose answer was lost; if the first
            // one landed, the retry finds its own write: settled, not lost.
            // Its own: the same status from the same claim (`queued` is no
            // proof, any holder may write it).
            Err(e) if is_condition_failed(&e) => {
                let held_attempts = match held {
                    MessageStatus::Sending { attempts, .. } => Some(u64::from(*attempts)),
                    _ => None,
                };
                Ok(match self.message_with_rev(message_id).await? {
                    Some((stored, _, attempts))
                        if &stored.status == wanted
                            && *wanted != MessageStatus::Queued
                            && held_attempts.is_none_or(|held| held == attempts) =>
                    {
                        SettleOutcome::Settled
                    }
                    _ => SettleOutcome::ClaimLost,
                })
            }
            Err(e) => Err(dynamodb_error(SERVICE, e)),
        }
    }

    /// One `UpdateItem`, whatever the count (see the module documentation).
    async fn record_engagement(
        &self,
        message_id: &MessageId,
        label: EngagementLabel,
        at: DateTime<Utc>,
    ) -> Result<Option<Tally>, PortError> {
        let [count, first_at, last_at] = engagement_attributes(label);
        let at = to_attribute_value(at).map_err(|e| corrupt("time does not serialise", e))?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(message_key(message_id))))
            .update_expression(
                "ADD #count :one SET #first = if_not_exists(#first, :at), #last = :at, expires_at = :exp",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#count", count)
            .expression_attribute_names("#first", first_at)
            .expression_attribute_names("#last", last_at)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":at", at)
            .expression_attribute_values(":exp", self.expires_at())
            // The whole item: `UPDATED_NEW` leaves out a first time that
            // `if_not_exists` kept.
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => read_tally(&out.attributes.unwrap_or_default(), label),
            // A click on a link whose message has expired: nothing to record.
            Err(e) if is_condition_failed(&e) => Ok(None),
            Err(e) => Err(dynamodb_error(SERVICE, e)),
        }
    }

    async fn customer_messages(
        &self,
        customer_key: &CustomerKey,
        since: DateTime<Utc>,
    ) -> Result<Vec<MessageRecord>, PortError> {
        let items = self
            .query_all(
                Some("gsi1"),
                "gsi1pk = :pk AND gsi1sk >= :since",
                vec![(":pk", s(format!("CUSTMSG#{customer_key}"))), (":since", s(sort_time(since)))],
            )
            .await?;
        items.into_iter().map(message_from_item).collect()
    }

    /// `PutItem` unless the token exists; the link's own expiry is the item's TTL.
    async fn save_short_link(&self, link: &ShortLink) -> Result<(), PortError> {
        let mut item: Item = to_item(link).map_err(|e| corrupt("short link does not serialise", e))?;
        item.extend(key(short_link_key(&link.token)));
        item.insert("expires_at".into(), n(link.claims.expires));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(dynamodb_error(SERVICE, e)),
        }
    }

    async fn short_link(&self, token: &ShortToken) -> Result<Option<ShortLink>, PortError> {
        let Some(item) = self.get(short_link_key(token)).await? else { return Ok(None) };
        from_item(item).map(Some).map_err(|e| corrupt("stored short link does not decode", e))
    }
}

fn short_link_key(token: &ShortToken) -> (String, String) {
    (format!("LINK#{token}"), "LINK".into())
}

/// The guard of a fact's id, pointing at the fact (see the module notes).
fn fact_guard_item(fact: &Fact, expires_at: AttributeValue) -> Item {
    let mut guard = key(fact_guard_key(&fact.fact_id));
    let (pk, sk) = fact_key(fact);
    guard.insert("fact_pk".into(), s(pk));
    guard.insert("fact_sk".into(), s(sk));
    guard.insert("expires_at".into(), expires_at);
    guard
}

/// A fact as stored (see the module notes).
fn fact_item(fact: &Fact, expires_at: AttributeValue) -> Result<Item, PortError> {
    let mut item: Item = to_item(fact).map_err(|e| corrupt("fact does not serialise", e))?;
    item.extend(key(fact_key(fact)));
    item.insert("day".into(), s(fact.day().format("%Y-%m-%d").to_string()));
    item.insert("expires_at".into(), expires_at);
    item.insert("gsi1pk".into(), s(fact_owner(fact)));
    item.insert("gsi1sk".into(), s(sort_time(fact.at)));
    Ok(item)
}

/// Whose a fact is, as its `gsi1` partition: an erasure finds a customer's
/// facts there in one query, however old (facts outlive the carts and
/// messages that would date them; reading every retained day's partitions
/// would cost thousands of queries). The customer's key when the fact has
/// one, else its cart.
fn fact_owner(fact: &Fact) -> String {
    match &fact.kind {
        FactKind::Entered { customer_key, .. }
        | FactKind::Message { customer_key, .. }
        | FactKind::Return { customer_key, .. }
        | FactKind::Order { customer_key: Some(customer_key), .. }
        | FactKind::VoucherIssued { customer_key, .. }
        | FactKind::VoucherRedeemed { customer_key, .. } => format!("CUSTFACT#{customer_key}"),
        FactKind::Order { cart_id: Some(cart_id), .. }
        | FactKind::Answer { cart_id, .. }
        | FactKind::VoucherAbuse { cart_id, .. } => {
            format!("CARTFACT#{cart_id}")
        }
        FactKind::Order { order_id, .. } => format!("ORDERFACT#{order_id}"),
    }
}

fn fact_from_item(mut item: Item) -> Result<Fact, PortError> {
    for storage_only in ["pk", "sk", "day", "expires_at", "gsi1pk", "gsi1sk"] {
        item.remove(storage_only);
    }
    let fact_id = item.get("fact_id").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    from_item(item).map_err(|e| corrupt(&format!("fact {fact_id}"), e))
}

/// Every item of one partition, all pages. Eventually consistent: a report
/// does not need a fact recorded in the last second, and it costs half.
async fn query_partition(
    client: Client,
    table: String,
    pk: String,
    page_limit: Option<i32>,
) -> Result<Vec<Item>, PortError> {
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = client
            .query()
            .table_name(&table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk.as_str()))
            .set_limit(page_limit)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| dynamodb_error(SERVICE, e))?;
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(items),
        }
    }
}

#[async_trait]
impl FactStore for DynamoStateStore {
    /// The fact and its id's guard in one transaction (see the module
    /// notes). Racing writers of one fact may cancel each other
    /// (`TransactionConflict`): tried again a few times, then left to the
    /// caller's retry.
    async fn record_fact(&self, fact: &Fact) -> Result<CreateOutcome, PortError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
        let expires_at = n((self.clock.now() + self.fact_retention).timestamp());
        let guard = Put::builder()
            .table_name(&self.table)
            .set_item(Some(fact_guard_item(fact, expires_at.clone())))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| build_error(SERVICE, e))?;
        let item = Put::builder()
            .table_name(&self.table)
            .set_item(Some(fact_item(fact, expires_at)?))
            .build()
            .map_err(|e| build_error(SERVICE, e))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(guard.clone()).build())
                .transact_items(TransactWriteItem::builder().put(item.clone()).build())
                .send()
                .await
            {
                Ok(_) => return Ok(CreateOutcome::Created),
                Err(error) => error,
            };
            let Some(E::TransactionCanceledException(cancelled)) = error.as_service_error() else {
                return Err(dynamodb_error(SERVICE, error));
            };
            let codes: Vec<&str> =
                cancelled.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect();
            if codes.first() == Some(&"ConditionalCheckFailed") {
                return Ok(CreateOutcome::AlreadyExists);
            }
            if codes.contains(&"ValidationError") {
                return Err(refused_transaction(SERVICE, error));
            }
            if !codes.contains(&"TransactionConflict") || attempt >= FACT_WRITE_ATTEMPTS {
                return Err(dynamodb_error(SERVICE, error));
            }
            tokio::time::sleep(std::time::Duration::from_millis(10 * attempt)).await;
        }
    }

    /// One `Query` per day x shard partition (all pages), up to
    /// `FACT_READ_PARALLELISM` at a time.
    async fn facts(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Fact>, PortError> {
        let partitions: Vec<String> = from
            .iter_days()
            .take_while(|day| *day <= to)
            .flat_map(|day| (0..FACT_SHARDS).map(move |shard| fact_partition(day, shard)))
            .collect();
        let partitions = Arc::new(partitions);
        let mut readers = tokio::task::JoinSet::new();
        for worker in 0..FACT_READ_PARALLELISM.min(partitions.len()) {
            let (client, table, partitions) = (self.client.clone(), self.table.clone(), partitions.clone());
            let page_limit = self.fact_page_limit;
            readers.spawn(async move {
                let mut items = Vec::new();
                for pk in partitions.iter().skip(worker).step_by(FACT_READ_PARALLELISM) {
                    items.extend(query_partition(client.clone(), table.clone(), pk.clone(), page_limit).await?);
                }
                Ok::<_, PortError>(items)
            });
        }
        let mut facts = Vec::new();
        while let Some(joined) = readers.join_next().await {
            let items = joined.map_err(|e| PortError::Unavailable(SERVICE, Box::new(e)))??;
            for item in items {
                facts.push(fact_from_item(item)?);
            }
        }
        Ok(facts)
    }

    /// The guard of the id, then the fact it points at.
    async fn fact(&self, fact_id: &str) -> Result<Option<Fact>, PortError> {
        let Some(guard) = self.get(fact_guard_key(fact_id)).await? else { return Ok(None) };
        let pointer = |name: &str| guard.get(name).and_then(|v| v.as_s().ok()).cloned();
        let (Some(pk), Some(sk)) = (pointer("fact_pk"), pointer("fact_sk")) else { return Ok(None) };
        self.get((pk, sk)).await?.map(fact_from_item).transpose()
    }
}

// ---- a customer's data: export and erasure ----

/// What an erasure found, with the keys it deletes.
struct FoundCustomer {
    data: CustomerData,
    /// Every item of the customer's carts' partitions: the cart and its timeline.
    cart_items: Vec<Item>,
    timeline_entries: u64,
    /// The ledgers' keys as found (tagged or older form).
    ledger_keys: Vec<(String, String)>,
}

/// The stored forms of a key: tagged, and the one written before keys were
/// tagged (a bare customer id, `cart:<id>` for a guest).
fn key_forms(key: &CustomerKey) -> [String; 2] {
    match key {
        CustomerKey::Customer(id) => [key.to_string(), id.to_string()],
        CustomerKey::Guest(cart) => [key.to_string(), format!("cart:{cart}")],
    }
}

/// How often a batch's unprocessed deletes are sent again before giving up.
const BATCH_ATTEMPTS: u32 = 8;

impl DynamoStateStore {
    async fn find_customer(&self, customer_id: &CustomerId) -> Result<FoundCustomer, PortError> {
        let mut data = CustomerData::new(customer_id.clone());
        if let Some(item) = self.get(customer_key(customer_id)).await? {
            data.customer = Some(from_item(item).map_err(|e| corrupt(&format!("customer {customer_id}"), e))?);
        }
        let index =
            self.query_all(Some(CUSTOMER_INDEX), "cart_customer = :id", vec![(":id", s(customer_id.as_str()))]).await?;
        let mut cart_items = Vec::new();
        let mut timeline_entries = 0;
        for entry in index {
            let Some(AttributeValue::S(pk)) = entry.get("pk") else { continue };
            let items = self.query_all(None, "pk = :pk", vec![(":pk", s(pk.as_str()))]).await?;
            let mut cart: Option<CartRecord> = None;
            let mut timeline = Vec::new();
            for item in &items {
                match item.get("sk") {
                    Some(AttributeValue::S(sk)) if sk == "STATE" => {
                        cart = Some(from_item(item.clone()).map_err(|e| corrupt(&format!("cart {pk}"), e))?);
                    }
                    Some(AttributeValue::S(sk)) if sk.starts_with("TL#") => {
                        timeline.push(from_item(item.clone()).map_err(|e| corrupt(&format!("timeline {pk}"), e))?);
                    }
                    _ => {}
                }
            }
            timeline_entries += timeline.len() as u64;
            cart_items.extend(items.iter().map(|item| {
                item.iter().filter(|(k, _)| *k == "pk" || *k == "sk").map(|(k, v)| (k.clone(), v.clone())).collect()
            }));
            if let Some(cart) = cart {
                data.carts.push(CartData { cart, timeline });
            }
        }

        let mut messages = std::collections::BTreeMap::new();
        let own = CustomerKey::Customer(customer_id.clone());
        let guests = data.carts.iter().map(|c| CustomerKey::Guest(c.cart.cart_id.clone())).collect::<Vec<_>>();
        for key in std::iter::once(own).chain(guests) {
            for form in key_forms(&key) {
                let items =
                    self.query_all(Some("gsi1"), "gsi1pk = :pk", vec![(":pk", s(format!("CUSTMSG#{form}")))]).await?;
                for item in items {
                    let message = message_from_item(item)?;
                    messages.insert(message.message_id.clone(), message);
                }
            }
        }
        data.messages = messages.into_values().collect();

        let mut ledger_keys = Vec::new();
        for key in data.keys() {
            for form in key_forms(&key) {
                let k = (format!("LEDGER#{form}"), "SENDS".to_owned());
                if let Some(item) = self.get(k.clone()).await? {
                    data.send_ledgers.push(from_item(item).map_err(|e| corrupt(&format!("send ledger {form}"), e))?);
                    ledger_keys.push(k);
                }
            }
        }

        // Facts outlive carts and messages (400 days against 90 by default):
        // those of the customer's keys and carts come from their `gsi1`
        // partitions (see `fact_owner`), however old; facts recorded before
        // they were indexed, from the days since the oldest stored record.
        let now = self.clock.now();
        let mut facts = self.facts(data.earliest(now).date_naive(), now.date_naive()).await?;
        let keys = data.keys();
        let mut owners: Vec<String> = keys.iter().flat_map(key_forms).map(|form| format!("CUSTFACT#{form}")).collect();
        owners.extend(data.cart_ids().iter().map(|c| format!("CARTFACT#{c}")));
        for owner in owners {
            for item in self.query_all(Some("gsi1"), "gsi1pk = :pk", vec![(":pk", s(owner))]).await? {
                facts.push(fact_from_item(item)?);
            }
        }
        facts.sort_by(|a, b| a.fact_id.cmp(&b.fact_id));
        facts.dedup_by(|a, b| a.fact_id == b.fact_id);
        data.facts = facts_of(&facts, &data.keys(), &data.cart_ids());
        data.vouchers = self.customer_vouchers(&data).await?;
        Ok(FoundCustomer { data, cart_items, timeline_entries, ledger_keys })
    }

    /// Deletes the items (`pk`/`sk` only), 25 per `BatchWriteItem`, sending
    /// unprocessed ones again with a growing pause.
    async fn delete_items(&self, keys: Vec<Item>) -> Result<(), PortError> {
        use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
        for chunk in keys.chunks(25) {
            let mut requests = chunk
                .iter()
                .map(|k| {
                    let delete = DeleteRequest::builder().set_key(Some(k.clone())).build();
                    delete.map(|d| WriteRequest::builder().delete_request(d).build())
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| build_error(SERVICE, e))?;
            let mut attempt = 0;
            while !requests.is_empty() {
                attempt += 1;
                if attempt > BATCH_ATTEMPTS {
                    return Err(PortError::Unavailable(SERVICE, "deletes left unprocessed after retries".into()));
                }
                if attempt > 1 {
                    tokio::time::sleep(std::time::Duration::from_millis(50 << attempt.min(6))).await;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| dynamodb_error(SERVICE, e))?;
                requests = out.unprocessed_items.and_then(|mut left| left.remove(&self.table)).unwrap_or_default();
            }
        }
        Ok(())
    }

    /// The message, cancelled and made anonymous in place (see
    /// `cartback_core::customer_data`); its `rev` moves, so a sender's
    /// fenced settle fails and the cancellation stays.
    async fn cancel_message(&self, cancelled: &MessageRecord) -> Result<(), PortError> {
        let status = to_attribute_value(&cancelled.status).map_err(|e| corrupt("status does not serialise", e))?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(message_key(&cancelled.message_id))))
            .update_expression(
                "SET #status = :status, customer_key = :key, cart_id = :cart, gsi1pk = :gsi ADD rev :one",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", status)
            .expression_attribute_values(":key", s(cancelled.customer_key.to_string()))
            .expression_attribute_values(":cart", s(cancelled.cart_id.as_str()))
            .expression_attribute_values(":gsi", s(format!("CUSTMSG#{}", cancelled.customer_key)))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Gone meanwhile (expired): nothing left to cancel.
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(dynamodb_error(SERVICE, e)),
        }
    }

    /// Replaces a fact by its anonymous copy in one transaction: the copy
    /// and its id's guard in, the fact and its guard out. A retried call
    /// whose first attempt landed finds the fact gone and does nothing.
    async fn replace_fact(&self, fact: &Fact, anonymous: &Fact) -> Result<(), PortError> {
        use aws_sdk_dynamodb::types::Delete;
        let expires_at = n((self.clock.now() + self.fact_retention).timestamp());
        let guard = fact_guard_item(anonymous, expires_at.clone());
        let put = |item: Item, condition: Option<&str>| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .set_condition_expression(condition.map(str::to_owned))
                .build()
                .map_err(|e| build_error(SERVICE, e))
        };
        let delete = |k: (String, String), condition: Option<&str>| {
            Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(k)))
                .set_condition_expression(condition.map(str::to_owned))
                .build()
                .map_err(|e| build_error(SERVICE, e))
        };
        let items = vec![
            TransactWriteItem::builder().put(put(guard, Some("attribute_not_exists(pk)"))?).build(),
            TransactWriteItem::builder().put(put(fact_item(anonymous, expires_at)?, None)?).build(),
            TransactWriteItem::builder().delete(delete(fact_key(fact), Some("attribute_exists(pk)"))?).build(),
            TransactWriteItem::builder().delete(delete(fact_guard_key(&fact.fact_id), None)?).build(),
        ];
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(error) => {
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
                match error.as_service_error() {
                    Some(E::TransactionCanceledException(cancelled))
                        if cancelled.cancellation_reasons().get(2).and_then(|r| r.code())
                            == Some("ConditionalCheckFailed") =>
                    {
                        Ok(())
                    }
                    _ => Err(dynamodb_error(SERVICE, error)),
                }
            }
        }
    }
}

#[async_trait]
impl CustomerDataStore for DynamoStateStore {
    async fn customer_data(&self, customer_id: &CustomerId) -> Result<CustomerData, PortError> {
        Ok(self.find_customer(customer_id).await?.data)
    }

    /// Facts first (each replaced atomically), then cancellations, then the
    /// deletes, the profile last: an erasure interrupted anywhere is
    /// completed by erasing again, which finds what is left through the
    /// profile, the customer's index entries and their message keys.
    async fn erase_customer(&self, customer_id: &CustomerId, now: DateTime<Utc>) -> Result<Erasure, PortError> {
        let FoundCustomer { data, cart_items, timeline_entries, ledger_keys } = self.find_customer(customer_id).await?;
        let pseudonyms = Pseudonyms::random();
        let mut erasure = Erasure::default();
        for fact in &data.facts {
            self.replace_fact(fact, &anonymize(fact, &pseudonyms)).await?;
            erasure.facts_anonymized += 1;
        }
        let mut deletes: Vec<Item> = Vec::new();
        for message in &data.messages {
            if CustomerData::is_live(message) {
                self.cancel_message(&pseudonyms.cancelled_message(message, now)).await?;
                erasure.messages_cancelled += 1;
            } else {
                deletes.push(key(message_key(&message.message_id)));
                erasure.messages += 1;
            }
        }
        erasure.send_ledgers = ledger_keys.len() as u64;
        deletes.extend(ledger_keys.into_iter().map(key));
        erasure.carts = data.carts.len() as u64;
        erasure.timeline_entries = timeline_entries;
        deletes.extend(cart_items);
        for voucher in &data.vouchers {
            deletes.extend(crate::vouchers::voucher_item_keys(voucher).into_iter().map(key));
            erasure.vouchers += 1;
        }
        self.delete_items(deletes).await?;
        if data.customer.is_some() {
            self.delete_items(vec![key(customer_key(customer_id))]).await?;
            erasure.profiles = 1;
        }
        Ok(erasure)
    }
}

/// Every item of one config partition whose sort key starts with `prefix`
/// (campaigns, template sets), read consistently, page after page.
pub(crate) async fn query_config_items(
    client: &Client,
    table: &str,
    pk: &str,
    prefix: &str,
) -> Result<Vec<Item>, PortError> {
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = client
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| dynamodb_error(SERVICE, e))?;
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(items),
        }
    }
}

/// A config item's string attribute; its absence makes the item corrupt.
pub(crate) fn text_attribute<'a>(item: &'a Item, name: &str, sk: &str) -> Result<&'a str, PortError> {
    match item.get(name) {
        Some(AttributeValue::S(text)) => Ok(text),
        _ => Err(PortError::Corrupt(format!("config item {sk} has no `{name}` string"))),
    }
}

/// Campaigns in the config table.
pub struct DynamoCampaignStore {
    client: Client,
    table: String,
}

pub const CAMPAIGNS_PK: &str = "CAMPAIGNS";

impl DynamoCampaignStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoCampaignStore { client, table: table.into() }
    }
}

#[async_trait]
impl CampaignStore for DynamoCampaignStore {
    async fn list(&self) -> Result<Vec<Campaign>, PortError> {
        let mut campaigns = Vec::new();
        for item in query_config_items(&self.client, &self.table, CAMPAIGNS_PK, "CAMPAIGN#").await? {
            let sk = text_attribute(&item, "sk", "?")?;
            let json = text_attribute(&item, "campaign", sk)?;
            let campaign: Campaign = serde_json::from_str(json).map_err(|e| corrupt(&format!("campaign {sk}"), e))?;
            if let Err(errors) = campaign.validate() {
                let list = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                return Err(PortError::Corrupt(format!("campaign {sk} is invalid: {list}")));
            }
            campaigns.push(campaign);
        }
        campaigns.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(campaigns)
    }

    async fn put(&self, campaign: &Campaign) -> Result<(), PortError> {
        let json = serde_json::to_string(campaign).map_err(|e| corrupt("campaign does not serialise", e))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(CAMPAIGNS_PK))
            .item("sk", s(format!("CAMPAIGN#{}", campaign.id)))
            .item("campaign_id", s(&campaign.id))
            .item("campaign", s(json))
            .item("updated_at", s(sort_time(Utc::now())))
            .send()
            .await
            .map_err(|e| dynamodb_error(SERVICE, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cartback_core::ids::CustomerKey;
    use cartback_core::message::Channel;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("a valid time")
    }

    fn record() -> MessageRecord {
        MessageRecord {
            message_id: "m_1".into(),
            cart_id: "cart-1".into(),
            customer_key: CustomerKey::Customer("u1".into()),
            campaign_id: "default".into(),
            step: 0,
            channel: Channel::Email,
            decided_at: at("2026-11-23T10:30:00Z"),
            status: MessageStatus::Queued,
            engagement: Engagement::default(),
            variant: None,
        }
    }

    #[test]
    fn given_a_message_with_tallies_when_stored_and_read_then_they_are_flat_attributes_and_come_back_whole() {
        let mut message = record();
        message.engagement.add(EngagementLabel::HumanClick, at("2026-11-23T11:00:00.123456789Z"));
        message.engagement.add(EngagementLabel::HumanClick, at("2026-11-23T12:00:00Z"));
        message.engagement.add(EngagementLabel::MachineOpen, at("2026-11-23T10:30:02Z"));
        let mut item: Item = to_item(&message).unwrap();
        item.remove("engagement");
        item.extend(engagement_item(&message.engagement).unwrap());
        assert_eq!(number(&item, "engagement_click_count"), Some(2));
        assert_eq!(number(&item, "engagement_machine_open_count"), Some(1));
        assert!(!item.contains_key("engagement"), "no nested map: a count is one ADD");
        assert_eq!(message_from_item(item).unwrap(), message);
    }

    #[test]
    fn given_a_message_item_from_before_labels_when_read_then_its_engaged_at_is_a_human_click() {
        let mut item: Item = to_item(record()).unwrap();
        item.insert("engaged_at".into(), s("2026-11-23T11:00:00Z"));
        let read = message_from_item(item).unwrap();
        let tally = read.engagement.tally(EngagementLabel::HumanClick).copied();
        assert_eq!(tally, Some(Tally::once(at("2026-11-23T11:00:00Z"))));
    }

    fn facts_of_every_kind() -> Vec<Fact> {
        use cartback_core::measure::assign::Group;
        use cartback_core::measure::facts::{FactKind, MessageOutcome, SegmentLabel};
        let customer = CustomerKey::Customer("u1".into());
        let value = Some("59.90".parse().unwrap());
        vec![
            Fact::new(
                at("2026-11-23T10:30:00.123456789Z"),
                FactKind::Entered {
                    campaign_id: "default".into(),
                    cart_id: "cart-1".into(),
                    customer_key: customer.clone(),
                    group: Group::HeldOut,
                    variant: Some("late".into()),
                    segment: SegmentLabel::Returner,
                    value,
                    currency: Some("EUR".into()),
                },
            ),
            Fact::new(
                at("2026-11-23T11:00:00Z"),
                FactKind::Message {
                    campaign_id: "default".into(),
                    cart_id: "cart-1".into(),
                    customer_key: customer.clone(),
                    message_id: "m_1".into(),
                    group: Group::Treated,
                    variant: None,
                    step: 2,
                    channel: Channel::Sms,
                    outcome: MessageOutcome::OpenedMachine,
                },
            ),
            Fact::new(
                at("2026-11-23T23:59:59Z"),
                FactKind::Order {
                    order_id: "o-1".into(),
                    cart_id: Some("cart-1".into()),
                    customer_key: Some(customer.clone()),
                    value,
                    currency: Some("EUR".into()),
                    coupon: Some("SAVE10".into()),
                },
            ),
            Fact::new(
                at("2026-11-24T00:00:00Z"),
                FactKind::Return {
                    return_id: "ev-9".into(),
                    order_id: "o-1".into(),
                    customer_key: customer,
                    value: "19.95".parse().unwrap(),
                    currency: "EUR".into(),
                },
            ),
            Fact::new(
                at("2026-11-24T08:00:00Z"),
                FactKind::Answer {
                    campaign_id: "default".into(),
                    cart_id: "cart-1".into(),
                    message_id: "m_1".into(),
                    reason: cartback_core::consent::AnswerReason::AlreadyBought,
                },
            ),
            Fact::new(
                at("2026-11-23T11:00:00Z"),
                FactKind::VoucherIssued {
                    campaign_id: "default".into(),
                    cart_id: "cart-1".into(),
                    customer_key: CustomerKey::Customer("u1".into()),
                    variant: Some("late".into()),
                    tier: cartback_core::voucher::TierName::Recovery,
                },
            ),
            Fact::new(
                at("2026-11-23T23:59:59Z"),
                FactKind::VoucherRedeemed {
                    order_id: "o-1".into(),
                    campaign_id: "default".into(),
                    cart_id: "cart-1".into(),
                    customer_key: CustomerKey::Customer("u1".into()),
                    tier: cartback_core::voucher::TierName::Recovery,
                    discount: Some("5.99".parse().unwrap()),
                    currency: "EUR".into(),
                },
            ),
            Fact::new(
                at("2026-11-24T09:00:00Z"),
                FactKind::VoucherAbuse {
                    order_id: "o-2".into(),
                    campaign_id: "default".into(),
                    cart_id: "cart-1".into(),
                    refusal: cartback_core::voucher::Refusal::AlreadyRedeemed,
                },
            ),
        ]
    }

    #[test]
    fn given_facts_of_every_kind_when_stored_and_read_then_attributes_are_flat_and_the_facts_come_back_whole() {
        for fact in facts_of_every_kind() {
            let item = fact_item(&fact, n(1)).unwrap();
            let (pk, sk) = fact_key(&fact);
            assert_eq!(item.get("pk"), Some(&s(pk.clone())));
            assert!(pk.starts_with(&format!("FACT#{}#", fact.day())), "{pk}");
            assert_eq!(sk, format!("{}#{}", sort_time(fact.at), fact.fact_id));
            assert!(matches!(item.get("fact"), Some(AttributeValue::S(_))), "the kind is a flat attribute: {item:?}");
            assert_eq!(item.get("day"), Some(&s(fact.day().format("%Y-%m-%d").to_string())));
            assert_eq!(fact_from_item(item).unwrap(), fact);
        }
    }

    /// The README's Athena table (`CREATE EXTERNAL TABLE cartback_facts`):
    /// each attribute's name and DynamoDB type letter.
    fn athena_columns() -> HashMap<String, char> {
        let readme = include_str!("../../../README.md");
        let start = readme.find("CREATE EXTERNAL TABLE cartback_facts").expect("the README's Athena table");
        let end = start + readme[start..].find("ROW FORMAT").expect("the end of its columns");
        let mut columns = HashMap::new();
        for field in readme[start..end].split(">,").flat_map(|chunk| chunk.split("item struct<").last()) {
            let field = field.trim();
            if let Some((name, kind)) = field.split_once(":struct<") {
                let kind = kind.chars().next().expect("a type letter");
                columns.insert(name.trim().trim_matches('`').to_owned(), kind);
            }
        }
        columns
    }

    #[test]
    fn given_the_readmes_athena_table_when_compared_with_fact_items_then_it_names_every_attribute_with_its_type() {
        let columns = athena_columns();
        assert!(columns.len() >= 20, "{columns:?}");
        let guard = key(fact_guard_key("order#o-1"));
        let facts = facts_of_every_kind();
        let items = facts.iter().map(|f| fact_item(f, n(1)).unwrap()).chain([guard]);
        for item in items {
            for (name, value) in item {
                let kind = match value {
                    AttributeValue::S(_) => 's',
                    AttributeValue::N(_) => 'n',
                    other => panic!("{name} is stored as {other:?}: the Athena table reads only S and N"),
                };
                assert_eq!(columns.get(&name), Some(&kind), "{name} ({kind}) in the README's Athena table");
            }
        }
    }

    #[test]
    fn given_many_facts_of_one_day_when_keyed_then_they_spread_over_every_shard_and_keep_their_shard() {
        let template = facts_of_every_kind().remove(2);
        let mut per_shard = HashMap::<String, usize>::new();
        for i in 0..1_600 {
            let mut fact = template.clone();
            fact.fact_id = format!("order#o-{i}");
            *per_shard.entry(fact_key(&fact).0).or_default() += 1;
            assert_eq!(fact_key(&fact), fact_key(&fact.clone()));
        }
        assert_eq!(per_shard.len(), FACT_SHARDS as usize);
        assert!(per_shard.values().all(|&count| (60..=140).contains(&count)), "{per_shard:?}");
    }

    #[test]
    fn given_a_count_without_its_times_when_read_then_the_item_is_reported_corrupt() {
        let mut item: Item = to_item(record()).unwrap();
        item.insert("engagement_click_count".into(), n(3));
        assert!(matches!(message_from_item(item), Err(PortError::Corrupt(_))));
    }
}
