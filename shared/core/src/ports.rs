//! Ports: what the services need from the outside world. Each runtime
//! (local, AWS) supplies adapters; one contract suite tests both.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::campaign::Campaign;
use crate::cart::Cart;
use crate::customer::Customer;
use crate::customer_data::{CustomerData, Erasure};
use crate::engagement::{EngagementLabel, Tally};
use crate::engine::Progress;
use crate::event::Event;
use crate::ids::{CartId, CustomerId, CustomerKey, EventId, MessageId};
use crate::measure::Fact;
use crate::message::{Channel, MessageJob, MessageRecord, MessageStatus};
use crate::template::{Brand, TemplateName, TemplateSet};
use crate::voucher::{IssueOutcome, RedeemOutcome, Redemption, Voucher, VoucherCode, VoucherOwner};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The cause an adapter reports, kept whole so `source()` walks its chain.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Worth retrying: network, throttling, a busy database. Names the
    /// service; the cause is the adapter's own error (or a sentence).
    #[error("{0} is unavailable: {1}")]
    Unavailable(&'static str, #[source] Cause),
    /// The service took the request and refused it as malformed or beyond
    /// its limits (a validation error, an item over its size limit): the
    /// same request will be refused again, so it is not retried as is.
    #[error("{0} refused the request: {1}")]
    Refused(&'static str, #[source] Cause),
    /// Stored data that cannot be read back: a bug or a manual edit.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl PortError {
    /// Whether the same call may succeed later (only an outage heals).
    pub fn is_transient(&self) -> bool {
        matches!(self, PortError::Unavailable(..))
    }
}

/// A cart as stored: its events (the source of truth for its state), its
/// campaign progress and its timer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartRecord {
    pub cart_id: CartId,
    /// Optimistic-concurrency version; 0 means "not stored yet".
    #[serde(default)]
    pub version: u64,
    pub events: Vec<Event>,
    #[serde(default)]
    pub progress: Progress,
    /// Each shadow campaign's own progress on this cart, by campaign id:
    /// what it would have sent, which its next steps count from.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub shadow: std::collections::BTreeMap<String, Progress>,
    /// When the pending timer fires, if one is armed.
    #[serde(default)]
    pub timer_armed_for: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CartRecord {
    pub fn new(cart_id: impl Into<CartId>, now: DateTime<Utc>) -> Self {
        CartRecord {
            cart_id: cart_id.into(),
            version: 0,
            events: Vec::new(),
            progress: Progress::default(),
            shadow: Default::default(),
            timer_armed_for: None,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn cart(&self) -> Cart {
        Cart::from_events(&self.cart_id, &self.events)
    }

    /// Keeps the log in (`occurred_at`, `event_id`) order, the fold's order.
    pub fn insert_event(&mut self, event: Event) {
        let pos = self.events.partition_point(|e| (e.occurred_at, &e.event_id) <= (event.occurred_at, &event.event_id));
        self.events.insert(pos, event);
    }

    pub fn has_event(&self, event_id: &EventId) -> bool {
        self.events.iter().any(|e| &e.event_id == event_id)
    }
}

/// What a timeline line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    /// An event applied to the cart.
    Event,
    /// The engine's decision.
    Decision,
    /// A message's fate: sent, rejected, cancelled, delivered, bounced.
    Message,
    /// The customer opened or clicked.
    Engagement,
}

impl TimelineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TimelineKind::Event => "event",
            TimelineKind::Decision => "decision",
            TimelineKind::Message => "message",
            TimelineKind::Engagement => "engagement",
        }
    }
}

impl PartialEq<&str> for TimelineKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for TimelineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a cart's timeline: an event applied, a decision, a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub kind: TimelineKind,
    /// Event type, reason code or message status.
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

/// Everything one accepted event writes, committed atomically together with
/// the `event_id` dedupe record.
#[derive(Debug, Clone)]
pub struct EventCommit {
    pub event_id: EventId,
    pub received_at: DateTime<Utc>,
    /// The new cart state and the version it replaces.
    pub cart: Option<CartRecord>,
    pub customer: Option<(Customer, u64)>,
    pub timeline: Option<TimelineEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    Applied,
    /// The `event_id` was seen before: nothing was written.
    Duplicate,
    /// Another writer changed the cart or customer first: re-read and retry.
    Conflict,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This caller holds the send until the lease ends (from `Queued`, or
    /// from an ended lease whose holder never marked the provider call).
    Claimed(MessageRecord),
    /// This caller holds the send, taken over from a sender whose lease
    /// ended after it marked the provider call and before it recorded an
    /// outcome: that sender may have reached the provider, so ask
    /// [`Sender::prior_attempt`] before sending again.
    TakenOver(MessageRecord),
    AlreadySent,
    /// Another sender holds a live lease.
    InFlight,
    /// Rejected or cancelled for good.
    Closed,
    NotFound,
}

/// Whether a write conditional on holding a send claim went in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleOutcome {
    Settled,
    /// Another sender claimed the message since (this sender's lease ran
    /// out and was taken over): nothing was written.
    ClaimLost,
}

/// Whether a versioned write went in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    Saved,
    /// Another writer changed the record first: re-read and retry.
    Conflict,
}

/// Whether a create-if-absent made a new record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// A record with that id exists; it was left as it is.
    AlreadyExists,
}

/// Carts: read, and replace under optimistic concurrency.
#[async_trait]
pub trait CartStore: Send + Sync {
    async fn get_cart(&self, cart_id: &CartId) -> Result<Option<CartRecord>, PortError>;
    /// Replaces the cart when its stored version is `cart.version`; the
    /// stored copy gets `cart.version + 1`.
    async fn save_cart(&self, cart: &CartRecord) -> Result<SaveOutcome, PortError>;
}

/// Customer profiles, with the version a commit must replace.
#[async_trait]
pub trait CustomerStore: Send + Sync {
    async fn get_customer(&self, customer_id: &CustomerId) -> Result<Option<(Customer, u64)>, PortError>;
}

/// The atomic write of one accepted event (or feedback effect).
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Writes dedupe record, cart, customer and timeline entry atomically.
    /// The cart's `version` is the version it replaces (0: must not exist).
    async fn commit_event(&self, commit: EventCommit) -> Result<CommitOutcome, PortError>;
    /// Whether a commit with this id was applied (its dedupe record exists).
    async fn event_seen(&self, event_id: &str) -> Result<bool, PortError>;
}

/// A cart's timeline: what happened and why.
#[async_trait]
pub trait Timeline: Send + Sync {
    async fn append_timeline(&self, cart_id: &CartId, entry: &TimelineEntry) -> Result<(), PortError>;
    /// Oldest first.
    async fn timeline(&self, cart_id: &CartId) -> Result<Vec<TimelineEntry>, PortError>;
}

/// Message records: the send claim per cart/step/channel and its outcome.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Creates the record unless one with its id exists.
    async fn create_message(&self, record: &MessageRecord) -> Result<CreateOutcome, PortError>;
    async fn get_message(&self, message_id: &MessageId) -> Result<Option<MessageRecord>, PortError>;
    /// Atomically takes the send: from `Queued` ([`Claim::Claimed`]), or from
    /// `Sending` whose lease has ended ([`Claim::TakenOver`] if its holder
    /// marked the provider call, [`Claim::Claimed`] if not). The new status
    /// is `Sending` with one more attempt, marked `provider_called` only on a
    /// takeover (the mark stays until a sender settles the attempt).
    async fn claim_message(
        &self,
        message_id: &MessageId,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Claim, PortError>;
    /// Writes `status` whatever the record holds (operator tools, tests).
    /// A sender writes through [`MessageStore::settle_message`] instead.
    async fn set_message_status(&self, message_id: &MessageId, status: &MessageStatus) -> Result<(), PortError>;
    /// Writes the outcome of a claimed send only while the stored status is
    /// still `held`, the `Sending` status this sender's claim wrote (its
    /// attempt number and lease fence it): a sender whose lease ran out and
    /// was taken over gets [`SettleOutcome::ClaimLost`] and writes nothing,
    /// so it can never overwrite a later claimant's outcome. A settle whose
    /// `status` (other than `Queued`) is already stored by the same claim
    /// answers `Settled` (a retried write whose first attempt landed, its
    /// answer lost). `held` may also
    /// be an `Unknown` status, which a provider report settles (once: the
    /// second report finds it settled and gets `ClaimLost`).
    async fn settle_message(
        &self,
        message_id: &MessageId,
        held: &MessageStatus,
        status: &MessageStatus,
    ) -> Result<SettleOutcome, PortError>;
    /// Counts one open or click of `label` at `at` on the message, keeping
    /// the first time: one conditional write, whatever the count, so
    /// repeated clicks never add records. Returns the label's tally after
    /// the write (`count == 1`: the first of its label), or `None` when the
    /// message does not exist (nothing is written).
    async fn record_engagement(
        &self,
        message_id: &MessageId,
        label: EngagementLabel,
        at: DateTime<Utc>,
    ) -> Result<Option<Tally>, PortError>;
    /// Messages to a customer decided at or after `since`.
    async fn customer_messages(
        &self,
        customer_key: &CustomerKey,
        since: DateTime<Utc>,
    ) -> Result<Vec<MessageRecord>, PortError>;
    /// Stores an SMS's short link until its claims expire (see
    /// `crate::short_link`). A token already stored keeps its first link:
    /// tokens are random, so only a retried write meets its own.
    async fn save_short_link(&self, link: &crate::short_link::ShortLink) -> Result<(), PortError>;
    /// The stored link of `token`, expired or not (the caller checks its
    /// expiry: a store may keep it a little past it), or `None`.
    async fn short_link(
        &self,
        token: &crate::short_link::ShortToken,
    ) -> Result<Option<crate::short_link::ShortLink>, PortError>;
}

/// How long a reservation counts without its message record: the record is
/// written seconds after the ledger (and read back from the history index
/// within a second or so on DynamoDB).
pub const UNCONFIRMED_RESERVATION_TTL: chrono::Duration = chrono::Duration::hours(1);

/// One send reserved in a customer's [`SendLedger`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReservedSend {
    pub message_id: MessageId,
    pub cart_id: CartId,
    pub campaign_id: String,
    pub step: u32,
    pub channel: Channel,
    /// When it was decided.
    pub at: DateTime<Utc>,
}

/// The sends reserved for one customer, across all their carts: what the
/// per-customer caps (entry cooldown, push cap) count before a message
/// record exists. A checker reads it (strongly consistent), decides, and
/// replaces it under its version BEFORE queueing: of two checkers deciding
/// for two carts of one customer at once, one write wins and the other
/// re-reads, sees the reservation and decides again. The message history
/// alone cannot do that: it is written after the enqueue, and on DynamoDB
/// read from an eventually consistent index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendLedger {
    pub customer_key: CustomerKey,
    /// Optimistic-concurrency version; 0 means "not stored yet".
    #[serde(default)]
    pub version: u64,
    #[serde(default)]
    pub sends: Vec<ReservedSend>,
}

impl SendLedger {
    pub fn new(customer_key: CustomerKey) -> Self {
        SendLedger { customer_key, version: 0, sends: Vec::new() }
    }

    /// Adds the send unless its message is reserved already (a retried check).
    pub fn reserve(&mut self, send: ReservedSend) {
        if !self.sends.iter().any(|s| s.message_id == send.message_id) {
            self.sends.push(send);
        }
    }

    /// Drops reservations decided before `since`: no cap window reaches them.
    pub fn forget_before(&mut self, since: DateTime<Utc>) {
        self.sends.retain(|s| s.at >= since);
    }

    /// Reservations of other carts not in `history`, as the queued message
    /// records they stand for, so the engine counts them. This cart's own
    /// reservations are left out: its cart record (progress) is the truth
    /// for it, and a lost step decided again must not count against itself.
    /// A reservation still without its record [`UNCONFIRMED_RESERVATION_TTL`]
    /// after `now` stands for nothing (its check failed after the ledger was
    /// saved and then decided otherwise) and no longer blocks other carts.
    pub fn pending_elsewhere<'a>(
        &'a self,
        cart_id: &'a CartId,
        history: &'a [MessageRecord],
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = MessageRecord> + 'a {
        let confirmable_since = now - UNCONFIRMED_RESERVATION_TTL;
        self.sends
            .iter()
            .filter(move |s| {
                &s.cart_id != cart_id
                    && s.at >= confirmable_since
                    && !history.iter().any(|m| m.message_id == s.message_id)
            })
            .map(|s| MessageRecord {
                message_id: s.message_id.clone(),
                cart_id: s.cart_id.clone(),
                customer_key: self.customer_key.clone(),
                campaign_id: s.campaign_id.clone(),
                step: s.step,
                channel: s.channel,
                decided_at: s.at,
                status: MessageStatus::Queued,
                engagement: Default::default(),
                variant: None,
            })
    }
}

/// Per-customer send ledgers, replaced under optimistic concurrency.
#[async_trait]
pub trait SendLedgerStore: Send + Sync {
    /// The customer's ledger, read strongly consistent; version 0 and no
    /// sends when none is stored.
    async fn send_ledger(&self, customer_key: &CustomerKey) -> Result<SendLedger, PortError>;
    /// Replaces the ledger when its stored version is `ledger.version` (0:
    /// must not exist yet); the stored copy gets `ledger.version + 1`.
    async fn save_send_ledger(&self, ledger: &SendLedger) -> Result<SaveOutcome, PortError>;
}

/// A customer's data as a whole: the export (GDPR art. 15) and the erasure
/// (GDPR art. 17, CCPA) of everything held about them; see
/// [`crate::customer_data`] for what belongs to a customer and what an
/// erasure keeps in anonymous form.
#[async_trait]
pub trait CustomerDataStore: Send + Sync {
    /// Everything held about the customer (empty when nothing is).
    async fn customer_data(&self, customer_id: &CustomerId) -> Result<CustomerData, PortError>;
    /// Deletes the customer's profile, carts (events and timelines),
    /// message records and send ledgers, cancels their queued messages and
    /// rewrites their facts without identifiers. Erasing again finds
    /// nothing and answers zeros.
    async fn erase_customer(&self, customer_id: &CustomerId, now: DateTime<Utc>) -> Result<Erasure, PortError>;
}

/// Issued vouchers (see [`crate::voucher`]): one per cart, each code
/// unique; issuing and redeeming are conditional writes, so two checkers or
/// two orders racing for one get exactly one through.
#[async_trait]
pub trait VoucherStore: Send + Sync {
    /// Stores `voucher` unless its cart has one already (that one is
    /// answered) or its code exists (draw another code). Atomic.
    async fn issue_voucher(&self, voucher: &Voucher) -> Result<IssueOutcome, PortError>;
    async fn voucher(&self, code: &VoucherCode) -> Result<Option<Voucher>, PortError>;
    async fn cart_voucher(&self, cart_id: &CartId) -> Result<Option<Voucher>, PortError>;
    /// The owner's vouchers issued at or after `since`, newest first.
    async fn owner_vouchers(&self, owner: &VoucherOwner, since: DateTime<Utc>) -> Result<Vec<Voucher>, PortError>;
    /// Redeems the code for `redemption.order_id`, once: conditional on the
    /// voucher still being issued (a second order is refused, the same
    /// order again answered as such).
    async fn redeem_voucher(&self, code: &VoucherCode, redemption: &Redemption) -> Result<RedeemOutcome, PortError>;
    /// Revokes an issued voucher; answers it as it now stands (`None`: no such code).
    async fn revoke_voucher(&self, code: &VoucherCode, at: DateTime<Utc>) -> Result<Option<Voucher>, PortError>;
    /// Notes that the storefront acknowledged the voucher's `voucher.issued` webhook.
    async fn mark_voucher_published(&self, code: &VoucherCode, at: DateTime<Utc>) -> Result<(), PortError>;
    /// Vouchers, newest issued first, at most `limit`.
    async fn list_vouchers(&self, limit: usize) -> Result<Vec<Voucher>, PortError>;
}

/// Tells the storefront about an issued voucher (the signed `voucher.issued`
/// webhook), so a platform that applies discounts itself knows the code
/// before a message shows it. Publishing one voucher again is harmless: the
/// event's id is the same on every attempt.
#[async_trait]
pub trait VoucherPublisher: Send + Sync {
    /// `Ok` once the receiver acknowledged it (a 2xx answer). A signed
    /// request is stamped with the wall clock, never the runtime's (virtual
    /// in `cartback dev`): receivers check the stamp against their own.
    async fn publish(&self, voucher: &Voucher) -> Result<(), PublishError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Not delivered for now (no connection, a timeout, a 5xx, 408 or 429).
    #[error("voucher webhook not delivered: {0}")]
    Retryable(String),
    /// The receiver answered and refused it (another 4xx: a wrong secret or
    /// URL, a body it cannot take). Still retried, since acknowledging is
    /// what the message may wait for, but an operator must look.
    #[error("voucher webhook refused by the receiver: {0}")]
    Refused(String),
}

/// Every state capability: what one runtime's state adapter provides. Each
/// service asks only for the capabilities it uses.
pub trait StateStore:
    CartStore
    + CustomerStore
    + EventLog
    + Timeline
    + MessageStore
    + SendLedgerStore
    + FactStore
    + CustomerDataStore
    + VoucherStore
{
}

impl<T> StateStore for T where
    T: CartStore
        + CustomerStore
        + EventLog
        + Timeline
        + MessageStore
        + SendLedgerStore
        + FactStore
        + CustomerDataStore
        + VoucherStore
        + ?Sized
{
}

/// What a cart's timer delivers when it fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerPayload {
    pub cart_id: CartId,
    pub due_at: DateTime<Utc>,
}

#[async_trait]
pub trait Scheduler: Send + Sync {
    /// Arms a one-time timer for the cart. Arming the same cart and time
    /// twice is one timer.
    async fn arm(&self, timer: &TimerPayload) -> Result<(), PortError>;
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Puts the job on its channel's queue.
    async fn enqueue(&self, job: &MessageJob) -> Result<(), PortError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying with backoff (throttling, provider outage).
    #[error("temporary provider failure: {0}")]
    Retryable(String),
    /// Retryable, and the receiver said when (an HTTP `Retry-After`): not
    /// before `after` from now.
    #[error("temporary provider failure: {error} (retry after {}s)", after.num_seconds())]
    RetryAfter { error: String, after: chrono::Duration },
    /// Will never succeed (invalid address, suppressed recipient).
    #[error("provider rejected the message: {0}")]
    Permanent(String),
    /// The request may have reached the provider and been accepted (a
    /// timeout after it was sent, an answer that could not be read, a server
    /// error that does not say it refused): sending again could deliver it
    /// twice, so it is recorded as `unknown`, never resent blindly.
    #[error("the provider may or may not have accepted the message: {0}")]
    Unknown(String),
    /// The recipient opted out at the provider (an SMS `STOP` reply puts the
    /// number on the carrier's opt-out list): nothing was sent, and the
    /// channel's consent is withdrawn with source `sms_stop`.
    #[error("the recipient opted out at the provider: {0}")]
    OptedOut(String),
    /// The address no longer exists at the provider (a web push service's
    /// 404 or 410: the browser unsubscribed or the subscription expired):
    /// nothing was sent, and the channel is withdrawn with source
    /// `subscription_gone` until the storefront reports a new one.
    #[error("the recipient's address is gone: {0}")]
    Gone(String),
}

/// What a sender can tell about an earlier attempt at a message whose sender
/// stopped (a crash, a timeout) between the provider call and recording it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriorAttempt {
    /// It went out: record it as sent, do not send again.
    Delivered { provider_message_id: String },
    /// It certainly did not go out: sending now is the first delivery.
    NotDelivered,
    /// The provider cannot say: never send again blindly.
    Unknown,
}

#[async_trait]
pub trait Sender: Send + Sync {
    /// Sends and returns the provider's message id.
    async fn send(&self, job: &MessageJob, now: DateTime<Utc>) -> Result<String, SendError>;

    /// Whether an interrupted earlier attempt at `job` reached the provider.
    /// A sender that can find out (the local outbox; a provider with
    /// idempotency keys or a lookup) says so; the default cannot.
    async fn prior_attempt(&self, _job: &MessageJob) -> Result<PriorAttempt, SendError> {
        Ok(PriorAttempt::Unknown)
    }
}

/// Measurement facts: appended, never changed; read by day for reports.
#[async_trait]
pub trait FactStore: Send + Sync {
    /// Stores the fact unless one with its `fact_id` exists (then nothing
    /// changes, whatever the new copy holds).
    async fn record_fact(&self, fact: &Fact) -> Result<CreateOutcome, PortError>;
    /// Every fact whose `at` falls on a day from `from` to `to` (UTC,
    /// inclusive), in no particular order.
    async fn facts(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Fact>, PortError>;
    /// The fact with this id (a source's refund finds its order's purchase
    /// by `order#<order id>`), read consistently.
    async fn fact(&self, fact_id: &str) -> Result<Option<Fact>, PortError>;
}

#[async_trait]
pub trait CampaignStore: Send + Sync {
    async fn list(&self) -> Result<Vec<Campaign>, PortError>;
    /// Stores a validated campaign, replacing one with the same id.
    async fn put(&self, campaign: &Campaign) -> Result<(), PortError>;
}

/// Template sets and the brand, in the config store next to campaigns.
/// Writers validate first ([`TemplateSet::validate`]); a store only keeps.
#[async_trait]
pub trait TemplateStore: Send + Sync {
    async fn list_templates(&self) -> Result<Vec<TemplateSet>, PortError>;
    /// Stores a set, replacing one with the same name.
    async fn put_template(&self, set: &TemplateSet) -> Result<(), PortError>;
    /// Removes a set; a step naming it falls back to the shipped default.
    async fn delete_template(&self, name: &TemplateName) -> Result<bool, PortError>;
    /// The brand settings, when any were stored.
    async fn brand(&self) -> Result<Option<Brand>, PortError>;
    async fn put_brand(&self, brand: &Brand) -> Result<(), PortError>;
    /// Refuses a set this store could not keep (DynamoDB: an item's size),
    /// without writing: asked of every set before any is stored, so an
    /// apply stores all of them or none.
    async fn check_fits(&self, _set: &TemplateSet) -> Result<(), PortError> {
        Ok(())
    }
}

/// A read-only pass over everything stored, for backtests: never writes.
/// Each method hands records to `visit` as they are read (a history does
/// not fit in memory as JSON), in no particular order, and returns how many.
#[async_trait]
pub trait HistoryReader: Send + Sync {
    async fn scan_carts(&self, visit: &mut (dyn FnMut(CartRecord) + Send)) -> Result<u64, PortError>;
    async fn scan_customers(&self, visit: &mut (dyn FnMut(Customer) + Send)) -> Result<u64, PortError>;
    async fn scan_messages(&self, visit: &mut (dyn FnMut(MessageRecord) + Send)) -> Result<u64, PortError>;
    /// Every voucher live traffic issued: the replay counts them for the
    /// voucher caps of the carts it runs.
    async fn scan_vouchers(&self, visit: &mut (dyn FnMut(Voucher) + Send)) -> Result<u64, PortError>;
}

/// A stored cart as a backtest reads it: the identity and event log only.
/// Live progress, shadow progress and the armed timer are what the replay
/// works out again, so a reader decodes past them without building them
/// (most of a reminded cart's record beside its events).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "StoredEvents")]
pub struct ReplayCart(pub CartRecord);

#[derive(Deserialize)]
struct StoredEvents {
    cart_id: CartId,
    events: Vec<Event>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<StoredEvents> for ReplayCart {
    fn from(stored: StoredEvents) -> Self {
        let StoredEvents { cart_id, mut events, created_at, updated_at } = stored;
        // Decoded lists grow by doubling; a history holds millions of them.
        events.shrink_to_fit();
        events.iter_mut().for_each(|e| e.items.shrink_to_fit());
        ReplayCart(CartRecord { events, created_at, updated_at, ..CartRecord::new(cart_id, created_at) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_reminded_cart_when_read_for_a_replay_then_its_events_are_kept_and_its_live_progress_left_out() {
        // GIVEN a stored cart with two events, live progress, a shadow's and an armed timer
        let at: DateTime<Utc> = "2026-06-01T10:00:00Z".parse().unwrap();
        let mut cart = CartRecord::new("c1", at);
        for (id, minutes) in [("e2", 5), ("e1", 0)] {
            let mut event = Event::identify(id.into(), at + chrono::Duration::minutes(minutes));
            event.cart_id = Some("c1".into());
            cart.insert_event(event);
        }
        cart.version = 7;
        cart.progress.campaign_id = Some("default".into());
        cart.shadow.insert("draft".into(), cart.progress.clone());
        cart.timer_armed_for = Some(at);
        cart.updated_at = at + chrono::Duration::minutes(5);
        let stored = serde_json::to_string(&cart).unwrap();

        // WHEN decoded as a backtest reads it
        let ReplayCart(read) = serde_json::from_str(&stored).unwrap();

        // THEN the identity, times and events in order, nothing of the live state
        let ids: Vec<&str> = read.events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!((read.cart_id.as_str(), ids), ("c1", vec!["e1", "e2"]));
        assert_eq!((read.created_at, read.updated_at), (cart.created_at, cart.updated_at));
        assert_eq!((read.version, read.progress, read.timer_armed_for), (0, Progress::default(), None));
        assert!(read.shadow.is_empty());
        // and a record without its events is refused, naming them
        let error = serde_json::from_str::<ReplayCart>(r#"{"cart_id":"c1","created_at":"2026-06-01T10:00:00Z"}"#);
        assert!(error.unwrap_err().to_string().contains("events"));
    }

    fn reserved(cart: &str, at: DateTime<Utc>) -> ReservedSend {
        ReservedSend {
            message_id: MessageRecord::id_for(cart, 0, Channel::Push),
            cart_id: cart.into(),
            campaign_id: "default".into(),
            step: 0,
            channel: Channel::Push,
            at,
        }
    }

    #[test]
    fn given_a_reservation_that_never_got_its_record_when_an_hour_has_passed_then_it_no_longer_counts() {
        let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let mut ledger = SendLedger::new(CustomerKey::Customer("u1".into()));
        ledger.reserve(reserved("cart-a", now - chrono::Duration::minutes(5)));
        ledger.reserve(reserved("cart-b", now - chrono::Duration::hours(2)));
        ledger.reserve(reserved("cart-c", now));
        let counted: Vec<CartId> = ledger.pending_elsewhere(&"cart-c".into(), &[], now).map(|m| m.cart_id).collect();
        assert_eq!(counted, [CartId::from("cart-a")], "recent others count; stale and own do not");
    }
}
