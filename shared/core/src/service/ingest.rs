use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{retry_on_conflict, Attempt, CampaignCache};
use crate::cart::CartStatus;
use crate::customer::Customer;
use crate::event::{parse_body, BodyError, Event, EventType, FieldError};
use crate::ports::TimelineKind;
use crate::ports::{
    CartRecord, CartStore, Clock, CommitOutcome, CustomerStore, EventCommit, EventLog, PortError, Scheduler,
    StateStore, TimelineEntry, TimerPayload,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Accepted,
    Duplicate,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventResult {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub status: EventStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<FieldError>,
}

/// The answer to `POST /v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestAnswer {
    pub received_at: DateTime<Utc>,
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub results: Vec<EventResult>,
}

/// Why a request body was not ingested.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body itself is refused (too large, not JSON, wrong shape).
    #[error(transparent)]
    Body(#[from] BodyError),
    /// Storage is unavailable: the caller should retry the whole request.
    #[error(transparent)]
    Store(#[from] PortError),
}

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

/// Events in: needs carts, customers and the atomic event commit.
pub struct Ingest<S: ?Sized = dyn StateStore> {
    pub store: Arc<S>,
    pub scheduler: Arc<dyn Scheduler>,
    pub campaigns: Arc<CampaignCache>,
    pub clock: Arc<dyn Clock>,
}

impl<S: CartStore + CustomerStore + EventLog + ?Sized> Ingest<S> {
    /// Parses and applies a request body. Only a refused body or a storage
    /// outage is an error: bad events are answered one by one and never sink
    /// the others.
    pub async fn ingest_body(&self, body: &[u8]) -> Result<IngestAnswer, IngestError> {
        let received_at = self.clock.now();
        let parsed = parse_body(body, received_at)?;
        let mut results = Vec::with_capacity(parsed.len());
        for (index, item) in parsed.into_iter().enumerate() {
            let (status, error) = match item.result {
                Err(error) => (EventStatus::Rejected, Some(error)),
                Ok(event) => match self.apply(&event, received_at).await?.into_result() {
                    Ok(status) => (status, None),
                    Err(error) => (EventStatus::Rejected, Some(error)),
                },
            };
            results.push(EventResult { index, event_id: item.event_id, status, error });
        }
        let count = |s| results.iter().filter(|r| r.status == s).count();
        Ok(IngestAnswer {
            received_at,
            accepted: count(EventStatus::Accepted),
            duplicates: count(EventStatus::Duplicate),
            rejected: count(EventStatus::Rejected),
            results,
        })
    }

    /// Applies one valid event: one atomic write (dedupe, cart, customer,
    /// timeline), preceded by a timer arm only when the cart has none.
    pub async fn apply(&self, event: &Event, received_at: DateTime<Utc>) -> Result<ApplyOutcome, PortError> {
        retry_on_conflict("cart", || self.try_apply(event, received_at)).await
    }

    async fn try_apply(&self, event: &Event, received_at: DateTime<Utc>) -> Result<Attempt<ApplyOutcome>, PortError> {
        let cart = match &event.cart_id {
            Some(id) => Some(self.store.get_cart(id).await?.unwrap_or_else(|| CartRecord::new(id, received_at))),
            None => None,
        };
        if cart.as_ref().is_some_and(|c| c.has_event(&event.event_id)) {
            return Ok(Attempt::Done(ApplyOutcome::Duplicate));
        }
        if let Some(full) = cart.as_ref().and_then(|c| cart_is_full(c, event)) {
            return Ok(Attempt::Done(ApplyOutcome::Rejected(full)));
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
                if !is_repeated_view(&record, event) {
                    record.insert_event(event.clone());
                }
                record.updated_at = received_at;
                self.arm_if_needed(&mut record).await?;
                Some(record)
            }
            None => None,
        };
        let timeline = event.cart_id.as_ref().map(|_| TimelineEntry {
            at: event.occurred_at,
            kind: TimelineKind::Event,
            code: event.kind.as_str().into(),
            message: describe(event),
            details: serde_json::json!({ "event_id": event.event_id }),
        });
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
        let cart = record.cart();
        let (CartStatus::Active, Some(last_activity)) = (cart.status, cart.last_activity_at) else {
            return Ok(());
        };
        let now = self.clock.now();
        let due = (last_activity + self.campaigns.first_check_delay().await?).max(now);
        // A pending timer at or before the due time will re-arm when it fires.
        // One long past its time already fired and may have failed for good
        // (the scheduler gives up after its retries): arm anew then.
        if record
            .timer_armed_for
            .is_some_and(|armed| armed <= due && armed > now - Duration::minutes(STALE_TIMER_MINUTES))
        {
            return Ok(());
        }
        // Arm before the write: a failed write leaves a spare timer that fires
        // into a no-op, never a cart without a timer.
        self.scheduler.arm(&TimerPayload { cart_id: record.cart_id.clone(), due_at: due }).await?;
        record.timer_armed_for = Some(due);
        Ok(())
    }
}

/// A timer this far past its time without being cleared is presumed lost.
const STALE_TIMER_MINUTES: i64 = 15;

/// Events kept per cart; each cart's state is the fold of its events. The
/// bounds keep a cart within one DynamoDB item (400 KB) with room to spare.
pub const MAX_EVENTS_PER_CART: usize = 300;
const MAX_CART_LOG_BYTES: usize = 300 * 1024;

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

/// Why a cart cannot take this event, if it cannot. A purchase always fits:
/// refusing it would leave a bought cart looking abandoned.
fn cart_is_full(record: &CartRecord, event: &Event) -> Option<FieldError> {
    if event.kind == EventType::Purchase || is_repeated_view(record, event) {
        return None;
    }
    let bytes: usize = record.events.iter().map(|e| serde_json::to_vec(e).map_or(0, |v| v.len())).sum();
    if record.events.len() >= MAX_EVENTS_PER_CART || bytes >= MAX_CART_LOG_BYTES {
        return Some(FieldError::new(
            "cart_id",
            format!(
                "cart holds {} events ({} KB), the most one cart may hold; start a new cart_id",
                record.events.len(),
                bytes / 1024
            ),
        ));
    }
    None
}

fn describe(event: &Event) -> String {
    let items = event.items.iter().map(|i| format!("{} x{}", i.item_id, i.quantity)).collect::<Vec<_>>().join(", ");
    match (event.kind, items.is_empty()) {
        (EventType::Purchase, _) => format!("purchase, order {}", event.order_id.as_deref().unwrap_or("?")),
        (kind, true) => kind.as_str().to_owned(),
        (kind, false) => format!("{}: {items}", kind.as_str()),
    }
}
