use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;

use super::facts::{event_fact, EventFact};
use super::vouchers::{redeem_purchase_coupon, Order};
use super::{retry_on_conflict, Attempt, CampaignCache};
use crate::cart::{Cart, CartStatus};
use crate::customer::Customer;
use crate::event::{parse_body, parse_event, BodyError, Checked, Event, EventType, FieldError, FieldWarning, Parsed};
use crate::ids::CustomerKey;
use crate::measure::facts::{Fact, FactKind};
use crate::ports::TimelineKind;
use crate::ports::{
    CartRecord, CartStore, Clock, CommitOutcome, CustomerStore, EventCommit, EventLog, FactStore, PortError, Scheduler,
    StateStore, Timeline, TimelineEntry, TimerPayload, VoucherStore,
};
use crate::sources::{MappedEvent, NotYet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Accepted,
    Duplicate,
    Rejected,
    /// Valid, but storage failed for this event alone: send it again (its
    /// `event_id` makes a repeat harmless).
    Retry,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventResult {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub status: EventStatus,
    /// Why a `rejected` event was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<FieldError>,
    /// Why a `retry` event was not stored (a sentence; no internals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Contact values an `accepted` event carried that their channels
    /// cannot use, left out of what was stored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<FieldWarning>,
}

/// The answer to `POST /v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestAnswer {
    pub received_at: DateTime<Utc>,
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    /// Events to send again; the HTTP answer is then 503 (see the README).
    pub retry: usize,
    pub results: Vec<EventResult>,
}

/// Why a request body was not ingested. Storage failures are not here:
/// they are answered per event ([`EventStatus::Retry`]).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body itself is refused (too large, not JSON, wrong shape).
    #[error(transparent)]
    Body(#[from] BodyError),
}

/// What a `retry` result says: the cause stays in the logs.
const RETRY_REASON: &str = "Cartback could not store this event just now; send it again (a repeat is harmless)";

/// What a `rejected` result says when the store, not the event's fields,
/// refused it: a repeat would be refused too, so it is not asked for.
const REFUSED_BY_STORE: &str =
    "Cartback's store refused this event and would refuse it again; the cause is logged for an operator";

/// What became of one valid event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    Accepted,
    Duplicate,
    /// Valid, but this cart cannot take it (it is full).
    Rejected(FieldError),
}

impl ApplyOutcome {
    pub fn into_result(self) -> Result<EventStatus, FieldError> {
        match self {
            ApplyOutcome::Accepted => Ok(EventStatus::Accepted),
            ApplyOutcome::Duplicate => Ok(EventStatus::Duplicate),
            ApplyOutcome::Rejected(error) => Err(error),
        }
    }
}

/// Events in: needs carts, customers, the atomic event commit, the facts
/// (orders and returns) and the vouchers a purchase's coupon redeems (with
/// their lines on the voucher's cart).
pub struct Ingest<S: ?Sized = dyn StateStore> {
    pub store: Arc<S>,
    pub scheduler: Arc<dyn Scheduler>,
    pub campaigns: Arc<CampaignCache>,
    pub clock: Arc<dyn Clock>,
}

impl<S: CartStore + CustomerStore + EventLog + FactStore + Timeline + VoucherStore + ?Sized> Ingest<S> {
    /// Parses and applies a request body. Only a refused body is an error:
    /// bad events are answered one by one and never sink the others, and an
    /// event that storage fails is answered `retry` while the rest go on.
    pub async fn ingest_body(&self, body: &[u8]) -> Result<IngestAnswer, IngestError> {
        let received_at = self.clock.now();
        let parsed = parse_body(body, received_at)?;
        Ok(self.apply_all(parsed.into_iter().map(Ok).collect(), received_at).await)
    }

    /// Ingests the canonical events a source mapped from a platform's
    /// payload: each goes through the same validation and the same
    /// per-event answer as `POST /v1/events`; a part the mapping refused is
    /// answered `rejected` with the platform's field, and what the mapping
    /// left out of an event is among its warnings. A return that names only
    /// its order takes its customer from the order's stored purchase first.
    pub async fn ingest_mapped(&self, mapped: Vec<MappedEvent>) -> IngestAnswer {
        let received_at = self.clock.now();
        let mut ready = Vec::with_capacity(mapped.len());
        for MappedEvent { event_id, result, warnings: left_out, owner_from_order, not_yet } in mapped {
            if let (Err(_), Some(NotYet { occurred_at, reason })) = (&result, not_yet) {
                if may_still_arrive(occurred_at, received_at) {
                    ready.push(Err((event_id, NotReady::Wait(reason))));
                    continue;
                }
            }
            let result = match (result, owner_from_order) {
                (Ok(mut raw), Some(field)) => match self.order_owner(&mut raw, &field, received_at).await {
                    Ok(()) => Ok(raw),
                    Err(OwnerError::Refused(refused)) => Err(refused),
                    Err(OwnerError::NotReady(not_ready)) => {
                        ready.push(Err((event_id, not_ready)));
                        continue;
                    }
                },
                (result, _) => result,
            };
            let parsed = match result.and_then(|raw| parse_event(&raw, received_at)) {
                Ok(Checked { value, mut warnings }) => {
                    warnings.splice(0..0, left_out);
                    Parsed { event_id, result: Ok(value), warnings }
                }
                Err(error) => Parsed { event_id, result: Err(error), warnings: Vec::new() },
            };
            ready.push(Ok(parsed));
        }
        self.apply_all(ready, received_at).await
    }

    /// Whether a platform's delivery (`delivery`: the source and its
    /// delivery id) was ingested in full before: a retried delivery is
    /// answered a duplicate before anything is fetched for it.
    pub async fn delivery_seen(&self, delivery: &str) -> Result<bool, PortError> {
        self.store.event_seen(&delivery_key(delivery)).await
    }

    /// Records a delivery every event of which got its final answer (see
    /// [`Ingest::delivery_seen`]): a dedupe record alone.
    pub async fn record_delivery(&self, delivery: &str) -> Result<(), PortError> {
        let commit = EventCommit {
            event_id: delivery_key(delivery).into(),
            received_at: self.clock.now(),
            cart: None,
            customer: None,
            timeline: None,
        };
        self.store.commit_event(commit).await.map(|_| ())
    }

    /// The answer to a delivery seen before: one duplicate (its events'
    /// ids are not kept; the delivery key is internal, so none is named).
    pub fn seen_delivery_answer(&self) -> IngestAnswer {
        let result = EventResult {
            index: 0,
            event_id: None,
            status: EventStatus::Duplicate,
            error: None,
            reason: None,
            warnings: Vec::new(),
        };
        let received_at = self.clock.now();
        IngestAnswer { received_at, accepted: 0, duplicates: 1, rejected: 0, retry: 0, results: vec![result] }
    }

    /// Gives a return the customer of its order (and the order's cart and
    /// currency when it names none), from the purchase stored for the
    /// order. A refusal names `field` (the platform's field for the order).
    async fn order_owner(&self, raw: &mut Value, field: &str, received_at: DateTime<Utc>) -> Result<(), OwnerError> {
        let Some(order_id) = raw.get("order_id").and_then(Value::as_str).map(str::to_owned) else {
            return Err(OwnerError::Refused(FieldError::new(field, "is required")));
        };
        let order = self
            .store
            .fact(&FactKind::order_fact_id(&order_id))
            .await
            .map_err(|e| OwnerError::NotReady(NotReady::Store(e)))?;
        owner_of(raw, &order_id, order.as_ref(), received_at).map_err(|unowned| match unowned {
            Unowned::NotYet(reason) => OwnerError::NotReady(NotReady::Wait(reason)),
            Unowned::Refused(message) => OwnerError::Refused(FieldError::new(field, message)),
        })
    }

    /// Applies parsed events one by one and answers each.
    async fn apply_all(&self, items: Vec<Ready>, received_at: DateTime<Utc>) -> IngestAnswer {
        let mut results = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let (event_id, outcome) = match item {
                Ok(Parsed { event_id, result: Err(error), .. }) => (event_id, Err(error)),
                Ok(Parsed { event_id, result: Ok(event), warnings }) => {
                    (event_id, Ok(self.apply_parsed(&event, &warnings, received_at).await.map(|o| (o, warnings))))
                }
                Err((event_id, NotReady::Store(error))) => (event_id, Ok(Err(error))),
                Err((event_id, NotReady::Wait(reason))) => {
                    results.push(EventResult {
                        index,
                        event_id,
                        status: EventStatus::Retry,
                        error: None,
                        reason: Some(reason),
                        warnings: Vec::new(),
                    });
                    continue;
                }
            };
            let mut result = EventResult {
                index,
                event_id,
                status: EventStatus::Rejected,
                error: None,
                reason: None,
                warnings: Vec::new(),
            };
            match outcome {
                Err(error) => result.error = Some(error),
                Ok(Ok((ApplyOutcome::Accepted, warnings))) => {
                    result.status = EventStatus::Accepted;
                    result.warnings = warnings;
                }
                Ok(Ok((ApplyOutcome::Duplicate, _))) => result.status = EventStatus::Duplicate,
                Ok(Ok((ApplyOutcome::Rejected(error), _))) => result.error = Some(error),
                // The cause may name the store's internals: logged, not answered.
                Ok(Err(error)) if error.is_transient() => {
                    tracing::warn!(index, %error, "event not stored; answered retry");
                    result.status = EventStatus::Retry;
                    result.reason = Some(RETRY_REASON.to_owned());
                }
                Ok(Err(error)) => {
                    tracing::error!(index, %error, "event not stored; the store refuses it for good");
                    result.error = Some(FieldError::new("event", REFUSED_BY_STORE));
                }
            }
            results.push(result);
        }
        let count = |s| results.iter().filter(|r| r.status == s).count();
        IngestAnswer {
            received_at,
            accepted: count(EventStatus::Accepted),
            duplicates: count(EventStatus::Duplicate),
            rejected: count(EventStatus::Rejected),
            retry: count(EventStatus::Retry),
            results,
        }
    }

    /// Applies one valid event: one atomic write (dedupe, cart, customer,
    /// timeline), preceded by a timer arm only when the cart has none.
    pub async fn apply(&self, event: &Event, received_at: DateTime<Utc>) -> Result<ApplyOutcome, PortError> {
        self.apply_parsed(event, &[], received_at).await
    }

    /// [`Ingest::apply`] for an event parsed with `warnings`: what was left
    /// out of it goes on the cart's timeline with the event.
    pub async fn apply_parsed(
        &self,
        event: &Event,
        warnings: &[FieldWarning],
        received_at: DateTime<Utc>,
    ) -> Result<ApplyOutcome, PortError> {
        retry_on_conflict("cart", || self.try_apply(event, warnings, received_at)).await
    }

    async fn try_apply(
        &self,
        event: &Event,
        warnings: &[FieldWarning],
        received_at: DateTime<Utc>,
    ) -> Result<Attempt<ApplyOutcome>, PortError> {
        let mut cart = match &event.cart_id {
            Some(id) => Some(self.store.get_cart(id).await?.unwrap_or_else(|| CartRecord::new(id, received_at))),
            None => None,
        };
        if cart.as_ref().is_some_and(|c| c.has_event(&event.event_id)) {
            return Ok(Attempt::Done(ApplyOutcome::Duplicate));
        }
        if let Some(record) = cart.as_mut() {
            if !is_repeated_view(record, event) {
                // Bounded on the cart as it will be written, the event in it.
                if let Err(full) = add_within_bounds(record, event) {
                    return Ok(Attempt::Done(ApplyOutcome::Rejected(full)));
                }
            }
        }
        let customer = match &event.customer_id {
            Some(id) => {
                let (mut customer, version) =
                    self.store.get_customer(id).await?.unwrap_or_else(|| (Customer::new(id), 0));
                customer.apply(event).then_some((customer, version))
            }
            None => None,
        };
        let cart = match cart {
            Some(mut record) => {
                record.updated_at = received_at;
                self.arm_if_needed(&mut record).await?;
                Some(record)
            }
            None => None,
        };
        // Only orders and returns are facts: a cart edit is not folded for them.
        let folded = match event.kind {
            EventType::Purchase | EventType::Return => cart.as_ref().map(CartRecord::cart),
            _ => None,
        };
        let fact = event_fact(event, folded.as_ref());
        let timeline = event.cart_id.as_ref().map(|_| {
            let mut details = serde_json::json!({ "event_id": event.event_id });
            if !warnings.is_empty() {
                details["warnings"] = serde_json::json!(warnings);
            }
            let mut message = describe(event, warnings);
            if let EventFact::NotCounted(why) = &fact {
                message = format!("{message}; {why}");
            }
            let code = event.kind.as_str().into();
            TimelineEntry { at: event.occurred_at, kind: TimelineKind::Event, code, message, details }
        });
        // Before the commit, like the order's fact: a retry after a failed
        // commit finds its own redemption (see `redeem_purchase_coupon`).
        let (value, currency) = match &fact {
            EventFact::Record(Fact { kind: FactKind::Order { value, currency, .. }, .. }) => {
                (*value, currency.as_deref())
            }
            _ => (event.value, event.currency.as_deref()),
        };
        redeem_purchase_coupon(&*self.store, Order { event, value, currency }).await?;
        match &fact {
            // Before the commit: a retry after a failed commit rewrites the
            // same fact, a second purchase event for the order finds it.
            EventFact::Record(fact) => {
                self.store.record_fact(fact).await?;
            }
            EventFact::NotCounted(why) if timeline.is_none() => {
                tracing::info!(event_id = %event.event_id, kind = event.kind.as_str(), "{why}");
            }
            EventFact::NotCounted(_) | EventFact::Nothing => {}
        }
        let commit = EventCommit { event_id: event.event_id.clone(), received_at, cart, customer, timeline };
        Ok(match self.store.commit_event(commit).await? {
            CommitOutcome::Applied => Attempt::Done(ApplyOutcome::Accepted),
            CommitOutcome::Duplicate => Attempt::Done(ApplyOutcome::Duplicate),
            CommitOutcome::Conflict => Attempt::Conflict,
        })
    }

    /// Arms the cart's single timer when none is pending early enough. A
    /// later edit only moves the cart's activity time; the checker re-arms.
    async fn arm_if_needed(&self, record: &mut CartRecord) -> Result<(), PortError> {
        let now = self.clock.now();
        let first_check_delay = self.campaigns.first_check_delay().await?;
        let Some(due) = timer_to_arm(&record.cart(), record.timer_armed_for, first_check_delay, now) else {
            return Ok(());
        };
        // Arm before the write: a failed write leaves a spare timer that fires
        // into a no-op, never a cart without a timer.
        self.scheduler.arm(&TimerPayload { cart_id: record.cart_id.clone(), due_at: due }).await?;
        record.timer_armed_for = Some(due);
        Ok(())
    }
}

/// A delivery's dedupe key, apart from canonical event ids.
fn delivery_key(delivery: &str) -> String {
    format!("delivery:{delivery}")
}

/// An event to apply, or (with its id) why it is not ready yet.
type Ready = Result<Parsed, (Option<String>, NotReady)>;

/// Why a source's return could not be made ready now: answered `retry`.
#[derive(Debug)]
enum NotReady {
    /// The order lookup failed.
    Store(PortError),
    /// Its order's purchase may still arrive (the sentence says so).
    Wait(String),
}

enum OwnerError {
    Refused(FieldError),
    NotReady(NotReady),
}

/// How long after a return Cartback waits for its order's purchase (by
/// asking the platform to resend): platforms send the order webhook within
/// minutes of the order, and a refund follows its order; past this, the
/// order predates the source and will not come. Platforms deactivate a
/// webhook that keeps failing (BigCommerce after repeated failed
/// deliveries, Shopify after 19 over 48 hours), so the wait stays short.
pub const ORDER_WAIT_MINUTES: i64 = 60;

/// Whether what a platform event that occurred at `occurred` (platform
/// time) waits for may still arrive. `received_at` is the business clock,
/// which `cartback dev --clock-speed` runs fast: there the window is
/// [`ORDER_WAIT_MINUTES`] of business time (see the README).
fn may_still_arrive(occurred: DateTime<Utc>, received_at: DateTime<Utc>) -> bool {
    received_at - occurred < Duration::minutes(ORDER_WAIT_MINUTES)
}

#[derive(Debug, PartialEq, Eq)]
enum Unowned {
    /// Send it again: the order may still arrive.
    NotYet(String),
    Refused(String),
}

/// Fills a source's return with the customer of its order's stored purchase
/// (`order`), and the order's cart and currency where the return names
/// none; or says why it cannot be. A guest's order has no customer to
/// count a return against (returns are counted per registered customer).
/// An unknown order of a return that occurred less than
/// [`ORDER_WAIT_MINUTES`] before `received_at` is not known *yet*.
fn owner_of(raw: &mut Value, order_id: &str, order: Option<&Fact>, received_at: DateTime<Utc>) -> Result<(), Unowned> {
    let Some(Fact { kind: FactKind::Order { cart_id, customer_key, currency, .. }, .. }) = order else {
        let occurred = raw.get("occurred_at").and_then(Value::as_str).and_then(|t| t.parse::<DateTime<Utc>>().ok());
        if occurred.is_some_and(|t| may_still_arrive(t, received_at)) {
            return Err(Unowned::NotYet(format!(
                "names order {order_id:?}, whose purchase Cartback has not received yet (its order webhook may \
                 still be on its way); send it again (a repeat is harmless)"
            )));
        }
        return Err(Unowned::Refused(format!(
            "names order {order_id:?}, whose purchase Cartback has not received (the order predates the \
             source, or its order webhook never arrived): the return cannot be given a customer"
        )));
    };
    let Some(customer_id) = customer_key.as_ref().and_then(CustomerKey::customer) else {
        return Err(Unowned::Refused(format!(
            "names order {order_id:?}, a guest's: a return belongs to a registered customer"
        )));
    };
    let Some(event) = raw.as_object_mut() else {
        return Err(Unowned::Refused("the mapped event is not an object".into()));
    };
    event.insert("customer_id".into(), Value::String(customer_id.to_string()));
    if let Some(cart_id) = cart_id.as_ref().filter(|_| !event.contains_key("cart_id")) {
        event.insert("cart_id".into(), Value::String(cart_id.to_string()));
    }
    if let Some(currency) = currency.as_ref().filter(|_| !event.contains_key("currency")) {
        event.insert("currency".into(), Value::String(currency.clone()));
    }
    Ok(())
}

/// A timer this far past its time without being cleared is presumed lost.
const STALE_TIMER_MINUTES: i64 = 15;

/// The timer an edit of `cart` at `now` arms, if any (the backtest replays
/// edits through this too): none for a cart that is not active, nor while a
/// pending timer at or before the due time will re-arm when it fires. One
/// long past its time already fired and may have failed for good (the
/// scheduler gives up after its retries): arm anew then.
pub(crate) fn timer_to_arm(
    cart: &Cart,
    armed: Option<DateTime<Utc>>,
    first_check_delay: Duration,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let (CartStatus::Active, Some(last_activity)) = (cart.status, cart.last_activity_at) else {
        return None;
    };
    let due = (last_activity + first_check_delay).max(now);
    let pending = armed.is_some_and(|armed| armed <= due && armed > now - Duration::minutes(STALE_TIMER_MINUTES));
    (!pending).then_some(due)
}

/// Events kept per cart; each cart's state is the fold of its events. The
/// bounds keep a cart within one DynamoDB item (400 KB) with room to spare.
pub const MAX_EVENTS_PER_CART: usize = 300;
/// Largest a cart may be, as it will be written with the new event, for a
/// cart edit to be taken. Sizes are of the cart's JSON form, which DynamoDB's
/// item measure never exceeds (its per-attribute overhead is smaller than
/// JSON's quotes, colons and commas). What is left of the 400 KB item is
/// room for purchases and the campaign progress the checker adds.
pub const MAX_CART_BYTES: usize = 300 * 1024;
/// Largest a cart may be with a purchase added: still under 400 KB with
/// the item's keys, version and the checker's progress.
const MAX_CONVERTED_CART_BYTES: usize = 380 * 1024;

/// A view of items this cart already viewed changes nothing in its state
/// (views count distinct items), so it is acknowledged but not stored;
/// unless it carries what the fold also reads: contact data, or a customer
/// id or currency other than the cart's (the simulation found views with a
/// guest's email dropped this way).
fn is_repeated_view(record: &CartRecord, event: &Event) -> bool {
    let seen = |id: &str| {
        record.events.iter().any(|e| e.kind == EventType::ViewItem && e.items.iter().any(|i| i.item_id == id))
    };
    if event.kind != EventType::ViewItem || event.customer.is_some() || !event.items.iter().all(|i| seen(&i.item_id)) {
        return false;
    }
    let cart = record.cart();
    let same_customer = event.customer_id.is_none() || event.customer_id == cart.customer_id;
    same_customer && (event.currency.is_none() || event.currency == cart.currency)
}

/// Adds the event to the cart when the cart, as it will be written, stays
/// within its bounds; otherwise says why not. A purchase always fits unless
/// the cart is pathologically full: refusing it would leave a bought cart
/// looking abandoned, so past the edit bound it is kept without its items,
/// which the cart's state never reads from a purchase.
fn add_within_bounds(record: &mut CartRecord, event: &Event) -> Result<(), FieldError> {
    let is_purchase = event.kind == EventType::Purchase;
    if !is_purchase && record.events.len() >= MAX_EVENTS_PER_CART {
        return Err(cart_full(record));
    }
    record.insert_event(event.clone());
    if stored_bytes(record) <= MAX_CART_BYTES {
        return Ok(());
    }
    if is_purchase {
        if let Some(stored) = record.events.iter_mut().find(|e| e.event_id == event.event_id) {
            stored.items.clear();
        }
        if stored_bytes(record) <= MAX_CONVERTED_CART_BYTES {
            return Ok(());
        }
    }
    record.events.retain(|e| e.event_id != event.event_id);
    Err(cart_full(record))
}

/// The cart's size as written (its JSON form, see [`MAX_CART_BYTES`]).
fn stored_bytes(record: &CartRecord) -> usize {
    serde_json::to_vec(record).map_or(usize::MAX, |json| json.len())
}

fn cart_full(record: &CartRecord) -> FieldError {
    FieldError::new(
        "cart_id",
        format!(
            "cart holds {} events ({} KB), the most one cart may hold; start a new cart_id",
            record.events.len(),
            stored_bytes(record) / 1024
        ),
    )
}

fn describe(event: &Event, warnings: &[FieldWarning]) -> String {
    let items = event.items.iter().map(|i| format!("{} x{}", i.item_id, i.quantity)).collect::<Vec<_>>().join(", ");
    let what = match (event.kind, items.is_empty()) {
        (EventType::Purchase, _) => format!("purchase, order {}", event.order_id.as_deref().unwrap_or("?")),
        (kind, true) => kind.as_str().to_owned(),
        (kind, false) => format!("{}: {items}", kind.as_str()),
    };
    // The channel a left-out value served is unreachable; say so where the
    // cart's story is read. Warnings never quote the value.
    let left_out: Vec<String> = warnings.iter().map(|w| format!("{} left out ({})", w.field, w.message)).collect();
    if left_out.is_empty() {
        what
    } else {
        format!("{what}; {}", left_out.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order(customer_key: Option<CustomerKey>) -> Fact {
        Fact::new(
            "2026-11-23T17:00:00Z".parse().unwrap(),
            FactKind::Order {
                order_id: "o-1".into(),
                cart_id: Some("cart-1".into()),
                customer_key,
                value: None,
                currency: Some("EUR".into()),
                coupon: None,
            },
        )
    }

    fn now() -> DateTime<Utc> {
        "2026-11-23T18:00:00Z".parse().unwrap()
    }

    /// GIVEN a source's return naming only its order WHEN the order's purchase is stored for a customer THEN
    /// the return is that customer's, on the order's cart, in the order's currency (a currency it names wins).
    #[test]
    fn given_a_return_naming_only_its_order_when_the_order_is_known_then_it_takes_the_orders_customer_and_cart() {
        let mut raw = json!({"type": "return", "order_id": "o-1"});
        owner_of(&mut raw, "o-1", Some(&order(Some(CustomerKey::Customer("c-9".into())))), now()).unwrap();
        assert_eq!(
            raw,
            json!({"type": "return", "order_id": "o-1", "customer_id": "c-9", "cart_id": "cart-1", "currency": "EUR"})
        );
        let mut priced = json!({"type": "return", "order_id": "o-1", "currency": "USD"});
        owner_of(&mut priced, "o-1", Some(&order(Some(CustomerKey::Customer("c-9".into())))), now()).unwrap();
        assert_eq!(priced["currency"], "USD");
    }

    /// GIVEN a return of an order Cartback never received, or of a guest's order WHEN its owner is looked up
    /// THEN a fresh return waits for its order (send it again), an old one or a guest's is refused saying
    /// why, and the event is left as it was.
    #[test]
    fn given_a_return_of_an_unknown_or_a_guests_order_when_looked_up_then_it_waits_or_is_refused_saying_why() {
        // GIVEN a return that occurred 5 minutes ago THEN not yet: its order webhook may be late
        let mut fresh = json!({"type": "return", "order_id": "o-1", "occurred_at": "2026-11-23T17:55:00Z"});
        let Err(Unowned::NotYet(wait)) = owner_of(&mut fresh, "o-1", None, now()) else { panic!("waits") };
        assert!(wait.contains("send it again") && wait.contains("\"o-1\""), "{wait}");
        // GIVEN one that occurred longer ago than the wait, or that names no time THEN refused
        let mut old = json!({"type": "return", "order_id": "o-1", "occurred_at": "2026-11-23T16:59:00Z"});
        let Err(Unowned::Refused(unknown)) = owner_of(&mut old, "o-1", None, now()) else { panic!("refused") };
        assert!(unknown.contains("has not received"), "{unknown}");
        let mut raw = json!({"type": "return", "order_id": "o-1"});
        assert!(matches!(owner_of(&mut raw, "o-1", None, now()), Err(Unowned::Refused(_))));
        let guest = owner_of(&mut raw, "o-1", Some(&order(Some(CustomerKey::Guest("cart-1".into())))), now());
        assert!(matches!(guest, Err(Unowned::Refused(ref m)) if m.contains("guest")), "{guest:?}");
        assert_eq!(raw, json!({"type": "return", "order_id": "o-1"}));
    }
}
