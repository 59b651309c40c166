//! Issue 10 item 4: the services record the measurement facts the report is
//! computed from, as things happen: ingest the orders and returns, delivery
//! the sends, feedback what providers report, engagement the first open,
//! machine open and click of each message. Each fact is recorded once, and
//! a failed fact write fails its step, which is then retried: never lost.
//! Run on the local adapters (SQLite, queues, outbox) and a manual clock.
//!
//! The checker's own facts (`entered`, `would_send`) are another part's;
//! these tests look only at the kinds they are about.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Value};

use cartback_core::customer::Customer;
use cartback_core::engagement::{EngagementLabel, Tally};
use cartback_core::ids::{CartId, CustomerId, CustomerKey, MessageId};
use cartback_core::measure::assign::Group;
use cartback_core::measure::facts::{Fact, FactKind, MessageOutcome};
use cartback_core::message::{Channel, MessageJob, MessageRecord, MessageStatus, QueueName};
use cartback_core::ports::{
    CartRecord, CartStore, Claim, Clock, CommitOutcome, CreateOutcome, CustomerStore, EventCommit, EventLog, FactStore,
    MessageStore, PortError, SaveOutcome, SendLedger, SendLedgerStore, SettleOutcome, Timeline, TimelineEntry,
};
use cartback_core::service::{
    record_link_click, CampaignCache, CheckOutcome, Delivery, DeliveryError, DeliveryOutcome, EventStatus, Feedback,
    FeedbackEvent, FeedbackKind, FeedbackOutcome, Ingest,
};
use cartback_core::Decimal;
use cartback_local::{Database, SqliteScheduler};
use cartback_tests::samples::{LocalStack, SENDER};

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn money(text: &str) -> Decimal {
    text.parse().unwrap()
}

const START: &str = "2026-11-23T10:00:00Z";
const BROWSER: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 \
                       (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
/// Apple Mail Privacy Protection's proxy: a machine open.
const APPLE_PROXY: &str = "Mozilla/5.0";
/// A link scanner (Bing's preview robot, as Safe Links presents itself).
const SAFE_LINKS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                          BingPreview/1.0b";

/// Every fact stored from a week before START to a week after.
async fn all_facts(db: &Database) -> Vec<Fact> {
    let start = at(START).date_naive();
    db.facts(start - Duration::days(7), start + Duration::days(7)).await.unwrap()
}

async fn orders_and_returns(db: &Database) -> Vec<Fact> {
    let mut facts: Vec<Fact> = all_facts(db)
        .await
        .into_iter()
        .filter(|f| matches!(f.kind, FactKind::Order { .. } | FactKind::Return { .. }))
        .collect();
    facts.sort_by(|a, b| a.fact_id.cmp(&b.fact_id));
    facts
}

/// The message facts with one of these outcomes, oldest first.
async fn message_facts(db: &Database, outcomes: &[MessageOutcome]) -> Vec<Fact> {
    let mut facts: Vec<Fact> = all_facts(db)
        .await
        .into_iter()
        .filter(|f| matches!(&f.kind, FactKind::Message { outcome, .. } if outcomes.contains(outcome)))
        .collect();
    facts.sort_by(|a, b| (a.at, &a.fact_id).cmp(&(b.at, &b.fact_id)));
    facts
}

async fn ingest_ok(ingest: &Ingest, events: Value) -> Vec<EventStatus> {
    let body = json!({ "events": events });
    let answer = ingest.ingest_body(body.to_string().as_bytes()).await.unwrap();
    answer.results.into_iter().map(|r| r.status).collect()
}

/// Cart `cart-1` of customer `cust-1` (email consent), abandoned at START.
fn abandoned_cart() -> Value {
    json!([
        { "event_id": "id-1", "type": "identify", "occurred_at": "2026-11-23T09:59:00Z", "customer_id": "cust-1",
          "customer": { "email": "ana@example.com", "timezone": "Europe/Paris", "consents": { "email": true } } },
        { "event_id": "add-1", "type": "add_to_cart", "occurred_at": START, "cart_id": "cart-1",
          "customer_id": "cust-1", "device": "desktop", "currency": "EUR",
          "items": [{ "item_id": "sku-mug", "item_name": "Stoneware mug", "price": "14.90" }] }
    ])
}

fn order(order_id: &str, cart: Option<&str>, customer: CustomerKey, value: &str, coupon: Option<&str>) -> FactKind {
    FactKind::Order {
        order_id: order_id.into(),
        cart_id: cart.map(CartId::from),
        customer_key: Some(customer),
        value: Some(money(value)),
        currency: Some("EUR".into()),
        coupon: coupon.map(Into::into),
    }
}

fn customer(id: &str) -> CustomerKey {
    CustomerKey::Customer(id.into())
}

// ---------------------------------------------------------------- ingest

/// GIVEN a cart identified as customer cust-1 by an earlier event
/// WHEN its purchase arrives without a customer id and without a value
/// THEN one order fact: keyed by the cart's customer (as the checker keys
/// the cart's messages), worth its items' price x quantity, with its
/// coupon, at the purchase's time.
#[tokio::test]
async fn given_an_identified_cart_when_bought_without_a_value_then_the_order_fact_is_the_customers_and_worth_its_items()
{
    let stack = LocalStack::new(at(START));
    assert_eq!(ingest_ok(&stack.api.ingest, abandoned_cart()).await, [EventStatus::Accepted; 2]);
    let purchase = json!([{ "event_id": "buy-1", "type": "purchase", "occurred_at": "2026-11-23T11:00:00Z",
        "cart_id": "cart-1", "order_id": "o-1", "currency": "EUR", "coupon": "COMEBACK10",
        "items": [{ "item_id": "sku-mug", "price": "14.90", "quantity": 2 },
                  { "item_id": "sku-card", "quantity": 1 },
                  { "item_id": "sku-tea", "price": "3.25" }] }]);
    stack.clock.set(at("2026-11-23T11:00:05Z"));

    assert_eq!(ingest_ok(&stack.api.ingest, purchase).await, [EventStatus::Accepted]);

    let expected = Fact::new(
        at("2026-11-23T11:00:00Z"),
        order("o-1", Some("cart-1"), customer("cust-1"), "33.05", Some("COMEBACK10")),
    );
    assert_eq!(orders_and_returns(&stack.db).await, vec![expected]);
}

/// GIVEN a guest cart, and a customer buying without a cart
/// WHEN each purchase arrives with a value
/// THEN the guest's order is keyed by its cart, the other by the customer.
#[tokio::test]
async fn given_a_guest_cart_and_a_cartless_order_when_bought_then_each_order_fact_has_its_customer_key() {
    let stack = LocalStack::new(at(START));
    let events = json!([
        { "event_id": "buy-g", "type": "purchase", "occurred_at": START, "cart_id": "guest-cart",
          "order_id": "o-guest", "value": "20.00", "currency": "EUR" },
        { "event_id": "buy-c", "type": "purchase", "occurred_at": START, "customer_id": "cust-9",
          "order_id": "o-phone", "value": "7.5", "currency": "EUR" }
    ]);
    assert_eq!(ingest_ok(&stack.api.ingest, events).await, [EventStatus::Accepted; 2]);
    let guest = CustomerKey::Guest("guest-cart".into());
    assert_eq!(
        orders_and_returns(&stack.db).await,
        vec![
            Fact::new(at(START), order("o-guest", Some("guest-cart"), guest, "20.00", None)),
            Fact::new(at(START), order("o-phone", None, customer("cust-9"), "7.5", None)),
        ]
    );
}

/// GIVEN an order
/// WHEN a return with a value, a return with priced items only, a return
/// naming no order and a return with no amount arrive
/// THEN the first two are return facts (the event's id, its value, else its
/// items' sum), the last two are none, and their timeline lines say why.
#[tokio::test]
async fn given_returns_with_and_without_order_or_amount_when_ingested_then_only_countable_ones_are_facts_saying_why() {
    let stack = LocalStack::new(at(START));
    let ret = |id: &str, extra: Value| {
        let mut event = json!({ "event_id": id, "type": "return", "occurred_at": "2026-11-25T09:00:00Z",
            "cart_id": "cart-1", "customer_id": "cust-1", "items": [{ "item_id": "sku-mug" }] });
        event.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        event
    };
    let events = json!([
        ret("ret-value", json!({ "order_id": "o-1", "value": "14.90", "currency": "EUR" })),
        ret(
            "ret-items",
            json!({ "order_id": "o-1", "currency": "EUR",
            "items": [{ "item_id": "sku-mug", "price": "14.90", "quantity": 2 }] })
        ),
        ret("ret-no-order", json!({ "value": "5.00", "currency": "EUR" })),
        ret("ret-no-amount", json!({ "order_id": "o-1" })),
    ]);
    stack.clock.set(at("2026-11-25T09:00:05Z"));
    assert_eq!(ingest_ok(&stack.api.ingest, events).await, [EventStatus::Accepted; 4]);

    let returned = |id: &str, value: &str| {
        Fact::new(
            at("2026-11-25T09:00:00Z"),
            FactKind::Return {
                return_id: id.into(),
                order_id: "o-1".into(),
                customer_key: customer("cust-1"),
                value: money(value),
                currency: "EUR".into(),
            },
        )
    };
    let expected = vec![returned("ret-items", "29.80"), returned("ret-value", "14.90")];
    assert_eq!(orders_and_returns(&stack.db).await, expected);
    let timeline = stack.db.timeline(&"cart-1".into()).await.unwrap();
    let line = |event_id: &str| {
        let found = timeline.iter().find(|e| e.details["event_id"] == event_id).expect("a line per event");
        found.message.clone()
    };
    assert!(line("ret-no-order").contains("names no order_id"), "{}", line("ret-no-order"));
    assert!(line("ret-no-amount").contains("carries no amount"), "{}", line("ret-no-amount"));
    assert!(!line("ret-value").contains("order_id"), "{}", line("ret-value"));
}

/// GIVEN a purchase ingested
/// WHEN the same event is sent again, and another event reports the same
/// order later with another value
/// THEN the repeat is a duplicate and the order is still one fact, the first.
#[tokio::test]
async fn given_a_purchase_when_repeated_or_reported_again_later_then_the_order_is_one_fact() {
    let stack = LocalStack::new(at(START));
    let buy = |id: &str, when: &str, value: &str| {
        json!({ "event_id": id, "type": "purchase", "occurred_at": when, "cart_id": "cart-1",
                "customer_id": "cust-1", "order_id": "o-1", "value": value, "currency": "EUR" })
    };
    assert_eq!(ingest_ok(&stack.api.ingest, json!([buy("buy-1", START, "10")])).await, [EventStatus::Accepted]);
    assert_eq!(ingest_ok(&stack.api.ingest, json!([buy("buy-1", START, "10")])).await, [EventStatus::Duplicate]);
    let late = json!([buy("buy-2", "2026-11-24T08:00:00Z", "99")]);
    stack.clock.set(at("2026-11-24T08:00:05Z"));
    assert_eq!(ingest_ok(&stack.api.ingest, late).await, [EventStatus::Accepted]);
    let first = Fact::new(at(START), order("o-1", Some("cart-1"), customer("cust-1"), "10", None));
    assert_eq!(orders_and_returns(&stack.db).await, vec![first]);
}

// ---------------------------------------------------------------- failures

/// SQLite, with fact writes and event commits that fail on demand (a
/// throttled table, a dropped connection).
struct Flaky {
    db: Database,
    facts_down: AtomicBool,
    commits_down: AtomicBool,
}

fn outage(what: &'static str) -> PortError {
    PortError::Unavailable(what, "throttled".into())
}

#[async_trait]
impl FactStore for Flaky {
    async fn record_fact(&self, fact: &Fact) -> Result<CreateOutcome, PortError> {
        if self.facts_down.load(Ordering::SeqCst) {
            return Err(outage("facts"));
        }
        self.db.record_fact(fact).await
    }
    async fn facts(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Fact>, PortError> {
        self.db.facts(from, to).await
    }
    async fn fact(&self, fact_id: &str) -> Result<Option<Fact>, PortError> {
        self.db.fact(fact_id).await
    }
}

#[async_trait]
impl EventLog for Flaky {
    async fn commit_event(&self, commit: EventCommit) -> Result<CommitOutcome, PortError> {
        if self.commits_down.load(Ordering::SeqCst) {
            return Err(outage("events"));
        }
        self.db.commit_event(commit).await
    }

    async fn event_seen(&self, event_id: &str) -> Result<bool, PortError> {
        self.db.event_seen(event_id).await
    }
}

#[async_trait]
impl CartStore for Flaky {
    async fn get_cart(&self, cart_id: &CartId) -> Result<Option<CartRecord>, PortError> {
        self.db.get_cart(cart_id).await
    }
    async fn save_cart(&self, cart: &CartRecord) -> Result<SaveOutcome, PortError> {
        self.db.save_cart(cart).await
    }
}

#[async_trait]
impl CustomerStore for Flaky {
    async fn get_customer(&self, id: &CustomerId) -> Result<Option<(Customer, u64)>, PortError> {
        self.db.get_customer(id).await
    }
}

#[async_trait]
impl Timeline for Flaky {
    async fn append_timeline(&self, cart_id: &CartId, entry: &TimelineEntry) -> Result<(), PortError> {
        self.db.append_timeline(cart_id, entry).await
    }
    async fn timeline(&self, cart_id: &CartId) -> Result<Vec<TimelineEntry>, PortError> {
        self.db.timeline(cart_id).await
    }
}

#[async_trait]
impl SendLedgerStore for Flaky {
    async fn send_ledger(&self, key: &CustomerKey) -> Result<SendLedger, PortError> {
        self.db.send_ledger(key).await
    }
    async fn save_send_ledger(&self, ledger: &SendLedger) -> Result<SaveOutcome, PortError> {
        self.db.save_send_ledger(ledger).await
    }
}

#[async_trait]
impl MessageStore for Flaky {
    async fn create_message(&self, record: &MessageRecord) -> Result<CreateOutcome, PortError> {
        self.db.create_message(record).await
    }
    async fn get_message(&self, id: &MessageId) -> Result<Option<MessageRecord>, PortError> {
        self.db.get_message(id).await
    }
    async fn claim_message(
        &self,
        id: &MessageId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Claim, PortError> {
        self.db.claim_message(id, now, until).await
    }
    async fn set_message_status(&self, id: &MessageId, status: &MessageStatus) -> Result<(), PortError> {
        self.db.set_message_status(id, status).await
    }
    async fn settle_message(
        &self,
        id: &MessageId,
        held: &MessageStatus,
        status: &MessageStatus,
    ) -> Result<SettleOutcome, PortError> {
        self.db.settle_message(id, held, status).await
    }
    async fn record_engagement(
        &self,
        id: &MessageId,
        label: EngagementLabel,
        at: DateTime<Utc>,
    ) -> Result<Option<Tally>, PortError> {
        self.db.record_engagement(id, label, at).await
    }
    async fn customer_messages(
        &self,
        key: &CustomerKey,
        since: DateTime<Utc>,
    ) -> Result<Vec<MessageRecord>, PortError> {
        self.db.customer_messages(key, since).await
    }
    async fn save_short_link(&self, link: &cartback_core::short_link::ShortLink) -> Result<(), PortError> {
        self.db.save_short_link(link).await
    }
    async fn short_link(
        &self,
        token: &cartback_core::short_link::ShortToken,
    ) -> Result<Option<cartback_core::short_link::ShortLink>, PortError> {
        self.db.short_link(token).await
    }
}

cartback_tests::delegate_voucher_store!(Flaky, db);

/// The stack's services over a [`Flaky`] view of its database.
struct FlakyServices {
    store: Arc<Flaky>,
    ingest: Ingest<Flaky>,
    delivery: Delivery<Flaky>,
    feedback: Feedback<Flaky>,
}

fn flaky(stack: &LocalStack) -> FlakyServices {
    let clock: Arc<dyn Clock> = stack.clock.clone();
    let store = Arc::new(Flaky {
        db: stack.db.clone(),
        facts_down: AtomicBool::new(false),
        commits_down: AtomicBool::new(false),
    });
    let campaigns = Arc::new(CampaignCache::new(Arc::new(stack.db.clone()), clock.clone(), Duration::seconds(60)));
    FlakyServices {
        ingest: Ingest {
            store: store.clone(),
            scheduler: Arc::new(SqliteScheduler::new(stack.db.clone())),
            campaigns: campaigns.clone(),
            clock: clock.clone(),
        },
        delivery: Delivery {
            store: store.clone(),
            sender: Arc::new(stack.outbox.sender(SENDER)),
            campaigns,
            clock: clock.clone(),
            webhook: None,
        },
        feedback: Feedback { store: store.clone(), clock },
        store,
    }
}

async fn ingest_flaky(ingest: &Ingest<Flaky>, events: Value) -> Vec<EventStatus> {
    let body = json!({ "events": events });
    let answer = ingest.ingest_body(body.to_string().as_bytes()).await.unwrap();
    answer.results.into_iter().map(|r| r.status).collect()
}

/// GIVEN fact writes failing
/// WHEN a purchase is ingested
/// THEN it is answered `retry` and nothing of it is stored (the cart is not
/// converted); sent again once facts are back, it is accepted with one fact.
#[tokio::test]
async fn given_fact_writes_failing_when_a_purchase_is_ingested_then_it_is_retried_not_half_stored() {
    let stack = LocalStack::new(at(START));
    let services = flaky(&stack);
    let buy = json!([{ "event_id": "buy-1", "type": "purchase", "occurred_at": START, "cart_id": "cart-1",
        "customer_id": "cust-1", "order_id": "o-1", "value": "10", "currency": "EUR" }]);
    services.store.facts_down.store(true, Ordering::SeqCst);

    assert_eq!(ingest_flaky(&services.ingest, buy.clone()).await, [EventStatus::Retry]);
    assert_eq!(stack.db.get_cart(&"cart-1".into()).await.unwrap(), None, "the event was not committed");

    services.store.facts_down.store(false, Ordering::SeqCst);
    assert_eq!(ingest_flaky(&services.ingest, buy).await, [EventStatus::Accepted]);
    assert_eq!(orders_and_returns(&stack.db).await.len(), 1);
}

/// GIVEN event commits failing after the fact is written
/// WHEN a purchase is ingested, then sent again once commits are back
/// THEN the retry writes the same fact again: one order fact, one event.
#[tokio::test]
async fn given_a_commit_failing_after_the_fact_when_the_purchase_is_retried_then_the_order_is_one_fact() {
    let stack = LocalStack::new(at(START));
    let services = flaky(&stack);
    let buy = json!([{ "event_id": "buy-1", "type": "purchase", "occurred_at": START, "cart_id": "cart-1",
        "order_id": "o-1", "value": "10", "currency": "EUR" }]);
    services.store.commits_down.store(true, Ordering::SeqCst);
    assert_eq!(ingest_flaky(&services.ingest, buy.clone()).await, [EventStatus::Retry]);
    assert_eq!(orders_and_returns(&stack.db).await.len(), 1, "the fact is written before the commit");

    services.store.commits_down.store(false, Ordering::SeqCst);
    assert_eq!(ingest_flaky(&services.ingest, buy).await, [EventStatus::Accepted]);
    let guest = CustomerKey::Guest("cart-1".into());
    assert_eq!(
        orders_and_returns(&stack.db).await,
        vec![Fact::new(at(START), order("o-1", Some("cart-1"), guest, "10", None))]
    );
    assert_eq!(stack.db.get_cart(&"cart-1".into()).await.unwrap().unwrap().events.len(), 1);
}

/// GIVEN a voucher for cart-1, fact writes failing, then event commits
/// failing WHEN a purchase using its code is sent three times (retry,
/// retry, then with the store healthy) THEN the code is redeemed once by
/// the order (10% off: 40 paid is 4.44 off), one redemption fact and one timeline line come of it, and
/// the event is stored once.
#[tokio::test]
async fn given_storage_failing_after_a_redemption_when_the_purchase_is_retried_then_it_is_redeemed_once() {
    use cartback_core::ports::{Timeline, VoucherStore};
    let stack = LocalStack::new(at(START));
    let services = flaky(&stack);
    let owner = cartback_core::voucher::VoucherOwner::guest_cart(&"cart-1".into());
    let voucher = cartback_core::voucher::Voucher {
        cart_id: "cart-1".into(),
        ..cartback_tests::voucher_contract::voucher_for(&owner, at(START))
    };
    stack.db.issue_voucher(&voucher).await.unwrap();
    let buy = json!([{ "event_id": "buy-1", "type": "purchase", "occurred_at": START, "cart_id": "cart-1",
        "order_id": "o-1", "value": "40", "currency": "EUR", "coupon": voucher.code.to_string() }]);

    services.store.facts_down.store(true, Ordering::SeqCst);
    assert_eq!(ingest_flaky(&services.ingest, buy.clone()).await, [EventStatus::Retry]);
    services.store.facts_down.store(false, Ordering::SeqCst);
    services.store.commits_down.store(true, Ordering::SeqCst);
    assert_eq!(ingest_flaky(&services.ingest, buy.clone()).await, [EventStatus::Retry]);
    services.store.commits_down.store(false, Ordering::SeqCst);
    assert_eq!(ingest_flaky(&services.ingest, buy).await, [EventStatus::Accepted]);

    let stored = stack.db.voucher(&voucher.code).await.unwrap().unwrap();
    assert!(
        matches!(&stored.status, cartback_core::voucher::VoucherStatus::Redeemed { order_id, discount, .. }
        if order_id == "o-1" && *discount == Some("4.44".parse().unwrap())),
        "{:?}",
        stored.status
    );
    let day = at(START).date_naive();
    let redeemed = stack.db.facts(day, day).await.unwrap();
    let redeemed: Vec<_> = redeemed.iter().filter(|f| matches!(f.kind, FactKind::VoucherRedeemed { .. })).collect();
    assert_eq!(redeemed.len(), 1);
    let lines = stack.db.timeline(&"cart-1".into()).await.unwrap();
    assert_eq!(lines.iter().filter(|e| e.code == "voucher_redeemed").count(), 1, "{lines:#?}");
    assert_eq!(stack.db.get_cart(&"cart-1".into()).await.unwrap().unwrap().events.len(), 1);
}

// ---------------------------------------------------------------- delivery

/// cart-1 abandoned at START; its first email decided 30 minutes later and
/// taken off its queue (not yet delivered).
async fn email_decided() -> (LocalStack, MessageJob) {
    let stack = LocalStack::new(at(START));
    assert_eq!(ingest_ok(&stack.api.ingest, abandoned_cart()).await, [EventStatus::Accepted; 2]);
    let timer = stack.timers.next_due(at("2030-01-01T00:00:00Z")).await.unwrap().expect("a timer is armed");
    stack.timers.complete(&timer).await.unwrap();
    stack.clock.set(timer.due_at);
    let outcome = stack.checker.on_timer(&timer).await.unwrap();
    let CheckOutcome::Decided { sent, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(sent.len(), 1, "{outcome:?}");
    let job = stack.queue.receive(QueueName::Email, stack.clock.now(), Duration::minutes(5)).await.unwrap();
    let job = job.expect("an email job");
    stack.queue.ack(job.id).await.unwrap();
    (stack, job.job)
}

/// [`email_decided`], then delivered a second later.
async fn email_sent() -> (LocalStack, MessageJob) {
    let (stack, job) = email_decided().await;
    stack.clock.set(stack.clock.now() + Duration::seconds(1));
    let outcome = stack.delivery.deliver(&job).await.unwrap();
    assert!(matches!(outcome, DeliveryOutcome::Sent { .. }), "{outcome:?}");
    (stack, job)
}

fn message_fact(job: &MessageJob, outcome: MessageOutcome, when: DateTime<Utc>) -> Fact {
    Fact::new(
        when,
        FactKind::Message {
            campaign_id: "default".into(),
            cart_id: "cart-1".into(),
            customer_key: customer("cust-1"),
            message_id: job.message_id.clone(),
            group: Group::Treated,
            variant: None,
            step: 0,
            channel: Channel::Email,
            outcome,
        },
    )
}

/// GIVEN a queued first email
/// WHEN it is delivered, and the same job comes back (a queue redelivery)
/// THEN one `sent` fact: the message's campaign, step, channel and customer,
/// treated, at the send time.
#[tokio::test]
async fn given_a_queued_email_when_delivered_and_redelivered_then_one_sent_fact() {
    let (stack, job) = email_sent().await;
    let sent_at = stack.clock.now();
    stack.clock.set(sent_at + Duration::minutes(1));
    assert_eq!(stack.delivery.deliver(&job).await.unwrap(), DeliveryOutcome::Skipped("already sent".into()));
    let facts = message_facts(&stack.db, &[MessageOutcome::Sent]).await;
    assert_eq!(facts, vec![message_fact(&job, MessageOutcome::Sent, sent_at)]);
}

/// GIVEN fact writes failing
/// WHEN the email is delivered (the provider takes it)
/// THEN delivery fails before the sent status is written; once facts are
/// back and the claim's lease has ended, the next try finds the message
/// delivered, writes the fact and settles `sent`: one email, one fact.
#[tokio::test]
async fn given_fact_writes_failing_when_an_email_is_sent_then_the_retry_records_the_fact_without_sending_again() {
    let (stack, job) = email_decided().await;
    let services = flaky(&stack);
    services.store.facts_down.store(true, Ordering::SeqCst);

    let error = services.delivery.deliver(&job).await.expect_err("the fact write fails");
    assert!(matches!(error, DeliveryError::Port(_)), "{error}");
    let status = stack.db.get_message(&job.message_id).await.unwrap().unwrap().status;
    assert!(matches!(status, MessageStatus::Sending { provider_called: true, .. }), "{status:?}");
    assert!(message_facts(&stack.db, &[MessageOutcome::Sent]).await.is_empty());

    services.store.facts_down.store(false, Ordering::SeqCst);
    let retry_at = stack.clock.now() + Duration::minutes(6);
    stack.clock.set(retry_at);
    let outcome = services.delivery.deliver(&job).await.unwrap();
    assert!(matches!(outcome, DeliveryOutcome::Sent { .. }), "{outcome:?}");
    assert_eq!(message_facts(&stack.db, &[MessageOutcome::Sent]).await.len(), 1);
    let sent = std::fs::read_dir(stack.dir.path().join("outbox").join("email")).unwrap().count();
    assert_eq!(sent, 1, "sent once");
}

// ---------------------------------------------------------------- feedback

fn report(job: &MessageJob, kind: FeedbackKind, when: DateTime<Utc>, user_agent: Option<&str>) -> FeedbackEvent {
    FeedbackEvent {
        message_id: job.message_id.clone(),
        provider: "ses".into(),
        provider_message_id: "ses-0001".into(),
        kind,
        at: when,
        user_agent: user_agent.map(Into::into),
    }
}

/// GIVEN a sent email
/// WHEN the provider reports its delivery (twice: a redelivered
/// notification), a temporary bounce and a complaint
/// THEN one `delivered`, one `bounced` and one `complained` fact, each at
/// the time the provider reports.
#[tokio::test]
async fn given_a_sent_email_when_delivery_bounce_and_complaint_are_reported_then_one_fact_each_at_their_times() {
    let (stack, job) = email_sent().await;
    let sent_at = stack.clock.now();
    let (delivered, bounced, complained) =
        (sent_at + Duration::seconds(3), sent_at + Duration::minutes(5), sent_at + Duration::hours(2));
    let delivery = report(&job, FeedbackKind::Delivered, delivered, None);
    let recorded = FeedbackOutcome::Recorded { consent_withdrawn_for: None };
    assert_eq!(stack.feedback.record(&delivery).await.unwrap(), recorded);
    assert_eq!(stack.feedback.record(&delivery).await.unwrap(), FeedbackOutcome::Duplicate);
    let bounce = report(&job, FeedbackKind::Bounced { permanent: false }, bounced, None);
    assert_eq!(stack.feedback.record(&bounce).await.unwrap(), recorded);
    stack.feedback.record(&report(&job, FeedbackKind::Complained, complained, None)).await.unwrap();

    let outcomes = [MessageOutcome::Delivered, MessageOutcome::Bounced, MessageOutcome::Complained];
    assert_eq!(
        message_facts(&stack.db, &outcomes).await,
        vec![
            message_fact(&job, MessageOutcome::Delivered, delivered),
            message_fact(&job, MessageOutcome::Bounced, bounced),
            message_fact(&job, MessageOutcome::Complained, complained),
        ]
    );
}

/// GIVEN an email whose send's answer was lost (recorded `unknown`)
/// WHEN the provider reports its delivery
/// THEN the send is settled `sent` and its `sent` fact is recorded at the
/// attempt's time, beside the `delivered` fact.
#[tokio::test]
async fn given_an_unknown_send_when_its_delivery_is_reported_then_a_sent_fact_is_recorded_at_the_attempt() {
    let (stack, job) = email_decided().await;
    let attempted = stack.clock.now();
    let unknown = MessageStatus::Unknown { reason: "timeout".into(), at: attempted };
    stack.db.set_message_status(&job.message_id, &unknown).await.unwrap();
    let delivered = attempted + Duration::seconds(4);

    stack.feedback.record(&report(&job, FeedbackKind::Delivered, delivered, None)).await.unwrap();

    let facts = message_facts(&stack.db, &[MessageOutcome::Sent, MessageOutcome::Delivered]).await;
    assert_eq!(
        facts,
        vec![
            message_fact(&job, MessageOutcome::Sent, attempted),
            message_fact(&job, MessageOutcome::Delivered, delivered)
        ]
    );
}

// ---------------------------------------------------------------- engagement

/// GIVEN a sent email
/// WHEN it is opened by a person twice, opened by Apple's privacy proxy,
/// clicked by a link scanner, then clicked by the person twice
/// THEN one `opened_human` (the first open), one `opened_machine` and one
/// `clicked` (the first click) fact: a scanner's click is no click.
#[tokio::test]
async fn given_a_sent_email_when_opened_and_clicked_repeatedly_then_the_first_of_each_label_is_a_fact() {
    let (stack, job) = email_sent().await;
    let sent_at = stack.clock.now();
    let minutes = |m: i64| sent_at + Duration::minutes(m);
    let sightings = [
        (FeedbackKind::Opened, minutes(10), BROWSER),
        (FeedbackKind::Opened, minutes(11), BROWSER),
        (FeedbackKind::Opened, minutes(12), APPLE_PROXY),
        (FeedbackKind::Clicked, minutes(13), SAFE_LINKS),
        (FeedbackKind::Clicked, minutes(20), BROWSER),
        (FeedbackKind::Clicked, minutes(21), BROWSER),
    ];
    for (kind, when, user_agent) in sightings {
        stack.feedback.record(&report(&job, kind, when, Some(user_agent))).await.unwrap();
    }
    let outcomes = [MessageOutcome::OpenedHuman, MessageOutcome::OpenedMachine, MessageOutcome::Clicked];
    assert_eq!(
        message_facts(&stack.db, &outcomes).await,
        vec![
            message_fact(&job, MessageOutcome::OpenedHuman, minutes(10)),
            message_fact(&job, MessageOutcome::OpenedMachine, minutes(12)),
            message_fact(&job, MessageOutcome::Clicked, minutes(20)),
        ]
    );
    let record = stack.db.get_message(&job.message_id).await.unwrap().unwrap();
    assert_eq!(record.engagement.tally(EngagementLabel::HumanClick).map(|t| t.count), Some(2));
    assert_eq!(record.engagement.tally(EngagementLabel::ScannerClick).map(|t| t.count), Some(1));
}

/// GIVEN a sent email
/// WHEN the customer follows its tracked link (`GET /r/{token}`) twice
/// THEN one `clicked` fact, at the first click.
#[tokio::test]
async fn given_a_sent_email_when_its_tracked_link_is_followed_twice_then_one_clicked_fact() {
    let (stack, job) = email_sent().await;
    let first = stack.clock.now() + Duration::minutes(30);
    for when in [first, first + Duration::minutes(1)] {
        record_link_click(&stack.db, &job.message_id, &"cart-1".into(), Some(BROWSER), when).await.unwrap();
    }
    let facts = message_facts(&stack.db, &[MessageOutcome::Clicked]).await;
    assert_eq!(facts, vec![message_fact(&job, MessageOutcome::Clicked, first)]);
}

/// GIVEN fact writes failing
/// WHEN the first click on a sent email is reported
/// THEN the report fails and the click is not counted yet; redelivered once
/// facts are back, it is counted once and its fact is written.
#[tokio::test]
async fn given_fact_writes_failing_when_the_first_click_is_reported_then_its_redelivery_counts_it_and_writes_the_fact()
{
    let (stack, job) = email_sent().await;
    let services = flaky(&stack);
    let click = report(&job, FeedbackKind::Clicked, stack.clock.now() + Duration::minutes(30), Some(BROWSER));
    services.store.facts_down.store(true, Ordering::SeqCst);

    assert!(services.feedback.record(&click).await.is_err());
    let record = stack.db.get_message(&job.message_id).await.unwrap().unwrap();
    assert_eq!(record.engagement.tally(EngagementLabel::HumanClick), None, "not counted before its fact");

    services.store.facts_down.store(false, Ordering::SeqCst);
    let outcome = services.feedback.record(&click).await.unwrap();
    assert_eq!(outcome, FeedbackOutcome::Recorded { consent_withdrawn_for: None });
    assert_eq!(
        message_facts(&stack.db, &[MessageOutcome::Clicked]).await,
        vec![message_fact(&job, MessageOutcome::Clicked, click.at)]
    );
}
