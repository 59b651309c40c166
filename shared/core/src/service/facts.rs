//! The measurement facts the services record as things happen (see
//! [`crate::measure::facts`]): orders and returns from ingest, a message's
//! outcomes from delivery, feedback and engagement. The checker records the
//! `entered` and `would send` facts itself.
//!
//! Every fact is written before the write that makes its cause final (the
//! event commit, the message's settle, the engagement count), and recording
//! it is idempotent: a retry after a failure in between rewrites the same
//! fact, a repeated cause finds it there, and a failed fact write fails the
//! whole step, which its caller retries. So a fact is never lost and never
//! counted twice.

use chrono::{DateTime, Utc};

use crate::cart::Cart;
use crate::engagement::EngagementLabel;
use crate::event::{Event, EventType};
use crate::ids::CustomerKey;
use crate::measure::assign::Group;
use crate::measure::facts::{Fact, FactKind, MessageOutcome};
use crate::message::MessageRecord;
use crate::Decimal;

/// What an ingested event means for the facts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EventFact {
    /// Not an order or a return.
    Nothing,
    Record(Fact),
    /// A return that cannot be counted against an order; the sentence says
    /// why (it goes on the cart's timeline, or in the log without a cart).
    NotCounted(&'static str),
}

/// The order or return fact of `event`; `cart` is the cart's state with the
/// event in it, when the event names a cart.
pub(crate) fn event_fact(event: &Event, cart: Option<&Cart>) -> EventFact {
    match event.kind {
        EventType::Purchase => match &event.order_id {
            Some(order_id) => EventFact::Record(Fact::new(
                event.occurred_at,
                FactKind::Order {
                    order_id: order_id.clone(),
                    cart_id: event.cart_id.clone(),
                    customer_key: customer_key(event, cart),
                    value: amount(event),
                    currency: event.currency.clone().or_else(|| cart.and_then(|c| c.currency.clone())),
                    coupon: event.coupon.clone(),
                },
            )),
            // Validation requires it; an event applied without parsing may lack it.
            None => EventFact::NotCounted("this purchase names no order_id, so it is not counted as an order"),
        },
        EventType::Return => {
            let Some(order_id) = &event.order_id else {
                return EventFact::NotCounted(
                    "this return names no order_id, so it cannot reduce any order's revenue in the report",
                );
            };
            let (Some(value), Some(currency), Some(customer_key)) =
                (amount(event), event.currency.clone(), customer_key(event, cart))
            else {
                return EventFact::NotCounted(
                    "this return carries no amount (no value and no item prices), so the report cannot \
                     reduce its order's revenue",
                );
            };
            EventFact::Record(Fact::new(
                event.occurred_at,
                FactKind::Return {
                    return_id: event.event_id.to_string(),
                    order_id: order_id.clone(),
                    customer_key,
                    value,
                    currency,
                },
            ))
        }
        _ => EventFact::Nothing,
    }
}

/// Whose order or return it is, keyed as the checker keys the cart's
/// messages and `entered` facts: by the cart's customer (known from any of
/// its events, not only this one), else as the cart's guest; an event
/// without a cart by its customer id.
fn customer_key(event: &Event, cart: Option<&Cart>) -> Option<CustomerKey> {
    match cart {
        Some(cart) => Some(CustomerKey::for_cart(cart.customer_id.as_ref(), &cart.cart_id)),
        None => event.customer_id.clone().map(CustomerKey::Customer),
    }
}

/// The event's `value`, else the sum of its items' price x quantity (items
/// without a price add nothing); none when it has neither.
fn amount(event: &Event) -> Option<Decimal> {
    event.value.or_else(|| {
        let priced: Vec<Decimal> =
            event.items.iter().filter_map(|i| i.price.map(|p| p * Decimal::from(i.quantity))).collect();
        (!priced.is_empty()).then(|| priced.into_iter().sum())
    })
}

/// A message's outcome. Only treated messages are ever sent, so the group
/// is `Treated`; the variant is left to the report, which joins it from the
/// cart's `entered` fact.
pub(crate) fn message_fact(message: &MessageRecord, outcome: MessageOutcome, at: DateTime<Utc>) -> Fact {
    Fact::new(
        at,
        FactKind::Message {
            campaign_id: message.campaign_id.clone(),
            cart_id: message.cart_id.clone(),
            customer_key: message.customer_key.clone(),
            message_id: message.message_id.clone(),
            group: Group::Treated,
            variant: None,
            step: message.step,
            channel: message.channel,
            outcome,
        },
    )
}

/// The outcome an open or click label is counted as. A link scanner's click
/// is none: no one clicked, and counting it would inflate the click rate.
pub(crate) fn engagement_outcome(label: EngagementLabel) -> Option<MessageOutcome> {
    match label {
        EngagementLabel::HumanClick => Some(MessageOutcome::Clicked),
        EngagementLabel::ScannerClick => None,
        EngagementLabel::Open => Some(MessageOutcome::OpenedHuman),
        EngagementLabel::MachineOpen => Some(MessageOutcome::OpenedMachine),
    }
}
